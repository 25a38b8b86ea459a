//! Response side: what a backend sends, and what the client and the backend must see.

use std::sync::Arc;
use std::time::Duration;

use certgate_testkit::{RawOutcome, RawResponse, Received, Step};

use super::harness::*;
use super::{Check, GRACE};

pub(crate) struct Reply {
    pub(crate) name: &'static str,
    method: &'static str,
    steps: Vec<Step>,
    expect: Expect,
    /// Headers that must not reach the client (when the response is clean).
    absent: &'static [&'static str],
    /// Headers the client must see with exactly this value (when the response is clean).
    present: &'static [(&'static str, &'static str)],
}

pub(crate) fn reply(name: &'static str, steps: Vec<Step>, expect: Expect) -> Reply {
    Reply { name, method: "GET", steps, expect, absent: &[], present: &[] }
}

impl Reply {
    fn method(self, method: &'static str) -> Self {
        Reply { method, ..self }
    }
    fn absent(self, absent: &'static [&'static str]) -> Self {
        Reply { absent, ..self }
    }
    fn present(self, present: &'static [(&'static str, &'static str)]) -> Self {
        Reply { present, ..self }
    }
}

pub(crate) async fn run_reply(table: Arc<Table>, case: Reply) -> Check {
    let bench = table.plain(on_case(case.steps)).await;
    let seen = bench.request(case.method, "/case", "").await;
    let judged =
        judge(&seen, case.method, case.expect).map_err(|why| format!("{why}\n    client saw {}", seen.text()))?;
    match &judged {
        Seen::Clean(_) => {
            let response = seen.response(0).ok_or("no response")?;
            for name in case.absent {
                ensure!(response.header(name).is_none(), "{name} reached the client: {}", seen.text());
            }
            for (name, value) in case.present {
                ensure!(
                    response.header_str(name).as_deref() == Some(*value),
                    "{name} is {:?}, expected {value:?}",
                    response.header_str(name)
                );
            }
        }
        Seen::BadGateway(id) => {
            table.log_line(id).await?;
        }
        Seen::Aborted => {}
    }
    bench.assert_after(&judged, &format!("{} /case HTTP/1.1", case.method)).await
}

pub(crate) const OK: &str = "HTTP/1.1 200 OK\r\n";
pub(crate) const HELLO: &str = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
pub(crate) const CHUNKED: &str = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";

pub(crate) fn head(fields: &str) -> String {
    format!("{OK}{fields}\r\n")
}

pub(crate) fn replies() -> Vec<Reply> {
    use After::{Discarded, Either, Reused};
    use Expect::{Aborted, BadGateway, BadGatewayOrAborted, OneOf};
    const REPAIRED_HELLO: Expect = clean("hello", Either);
    let big = "a".repeat(70 * 1024);
    let big_head = format!("{OK}X-Big: {big}\r\nContent-Length: 5\r\n\r\nhello");
    let near_limit = format!("{OK}X-Big: {}\r\nContent-Length: 5\r\n\r\nhello", "a".repeat(60 * 1024));
    vec![
        // Content-Length (RFC 9110 §8.6, RFC 9112 §6.3)
        reply("cl: valid", vec![w(HELLO)], clean("hello", Reused)).present(&[("content-length", "5")]),
        reply("cl: zero", vec![w(head("Content-Length: 0\r\n"))], clean("", Reused)),
        reply("cl: leading zeros", vec![w(head("Content-Length: 005\r\n") + "hello")], clean("hello", Reused)),
        reply("cl: surrounding whitespace", vec![w(head("Content-Length:  5 \r\n") + "hello")], clean("hello", Reused)),
        reply("cl: 20 digits", vec![w(head("Content-Length: 99999999999999999999\r\n") + "hello")], BadGateway),
        reply("cl: +5", vec![w(head("Content-Length: +5\r\n") + "hello")], BadGateway),
        reply("cl: -1", vec![w(head("Content-Length: -1\r\n") + "hello")], BadGateway),
        reply("cl: 5 5", vec![w(head("Content-Length: 5 5\r\n") + "hello")], BadGateway),
        reply("cl: 5,5", vec![w(head("Content-Length: 5,5\r\n") + "hello")], OneOf(&[BadGateway, REPAIRED_HELLO])),
        reply(
            "cl: two equal fields",
            vec![w(head("Content-Length: 5\r\nContent-Length: 5\r\n") + "hello")],
            OneOf(&[BadGateway, REPAIRED_HELLO]),
        ),
        reply("cl: two different fields", vec![w(head("Content-Length: 5\r\nContent-Length: 6\r\n") + "hello!")], BadGateway),
        reply(
            "cl: huge, body cut off",
            vec![w(head("Content-Length: 1000000000\r\n") + "hello"), sleep(100), Step::Close],
            Aborted,
        ),
        // Transfer-Encoding (RFC 9112 §6.1, §6.3)
        reply(
            "te: chunked with cl (cl first)",
            vec![w(head("Content-Length: 100\r\nTransfer-Encoding: chunked\r\n") + "5\r\nhello\r\n0\r\n\r\n")],
            clean("hello", Discarded),
        ),
        reply(
            "te: chunked with cl (te first)",
            vec![w(head("Transfer-Encoding: chunked\r\nContent-Length: 3\r\n") + "5\r\nhello\r\n0\r\n\r\n")],
            clean("hello", Discarded),
        ),
        reply("te: gzip", vec![w(head("Transfer-Encoding: gzip\r\n") + "hello"), Step::Close], BadGateway),
        reply(
            "te: gzip, chunked",
            vec![w(head("Transfer-Encoding: gzip, chunked\r\n") + "5\r\nhello\r\n0\r\n\r\n")],
            BadGateway,
        ),
        reply(
            "te: chunked in two fields",
            vec![w(head("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n") + "5\r\nhello\r\n0\r\n\r\n")],
            BadGateway,
        ),
        reply(
            "te: chunked, chunked",
            vec![w(head("Transfer-Encoding: chunked, chunked\r\n") + "5\r\nhello\r\n0\r\n\r\n")],
            BadGateway,
        ),
        reply("te: identity", vec![w(head("Transfer-Encoding: identity\r\n") + "hello"), Step::Close], BadGateway),
        reply(
            "te: CHUNKED in capitals",
            vec![w(head("Transfer-Encoding: CHUNKED\r\n") + "5\r\nhello\r\n0\r\n\r\n")],
            clean("hello", Reused),
        ),
        // Chunked bodies (RFC 9112 §7.1)
        reply("chunk: size of 17 hex digits", vec![w(format!("{CHUNKED}10000000000000005\r\nhello\r\n0\r\n\r\n"))], BadGatewayOrAborted),
        reply("chunk: size not hex", vec![w(format!("{CHUNKED}zz\r\nhello\r\n0\r\n\r\n"))], BadGatewayOrAborted),
        reply(
            "chunk: extension with a bare LF",
            vec![w(format!("{CHUNKED}5;a\nb\r\nhello\r\n0\r\n\r\n"))],
            BadGatewayOrAborted,
        ),
        reply(
            "chunk: extension with a NUL",
            vec![w(format!("{CHUNKED}5;a\0b\r\nhello\r\n0\r\n\r\n"))],
            BadGatewayOrAborted,
        ),
        reply(
            "chunk: valid extensions",
            vec![w(format!("{CHUNKED}5;name=value;flag\r\nhello\r\n0;last\r\n\r\n"))],
            clean("hello", Reused),
        ),
        reply(
            "chunk: a 10 000-byte extension line in one write",
            vec![w(format!("{CHUNKED}5;{}\r\nhello\r\n0\r\n\r\n", "x".repeat(9_998)))],
            BadGatewayOrAborted,
        ),
        reply("chunk: no CRLF after data", vec![w(format!("{CHUNKED}5\r\nhelloX\r\n0\r\n\r\n"))], BadGatewayOrAborted),
        reply("chunk: trailers", vec![w(format!("{CHUNKED}5\r\nhello\r\n0\r\nX-Trailer: t\r\n\r\n"))], clean("hello", Reused)),
        reply(
            "chunk: bytes after the last chunk (same write)",
            vec![w(format!("{CHUNKED}5\r\nhello\r\n0\r\n\r\nEXTRA"))],
            clean("hello", Discarded),
        ),
        reply(
            "chunk: bytes after the last chunk (later write)",
            vec![w(format!("{CHUNKED}5\r\nhello\r\n0\r\n\r\n")), sleep(30), w(HELLO)],
            clean("hello", Discarded),
        ),
        reply(
            "chunk: close before the final CRLF",
            vec![w(format!("{CHUNKED}5\r\nhello\r\n0\r\n")), sleep(100), Step::Close],
            Aborted,
        ),
        reply("chunk: close mid-body", vec![w(format!("{CHUNKED}5\r\nhello\r\n")), sleep(100), Step::Close], Aborted),
        reply("chunk: reset mid-body", vec![w(format!("{CHUNKED}5\r\nhello\r\n")), sleep(100), Step::Reset], Aborted),
        reply(
            "chunk: every byte its own write",
            Step::bytewise(format!("{CHUNKED}5\r\nhello\r\n0\r\n\r\n"), Duration::from_millis(1)),
            clean("hello", Reused),
        ),
        // Bodies where none may be (RFC 9110 §15.3.5, §15.4.5, §9.3.2)
        reply("no body: after 204", vec![w("HTTP/1.1 204 No Content\r\n\r\nBODY")], Expect::Clean { status: 204, body: "", after: Discarded }),
        reply(
            "no body: after 204 with a content-length",
            vec![w("HTTP/1.1 204 No Content\r\nContent-Length: 4\r\n\r\nBODY")],
            Expect::Clean { status: 204, body: "", after: Discarded },
        ),
        reply(
            "no body: after 304",
            vec![w("HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\nBODY")],
            Expect::Clean { status: 304, body: "", after: Discarded },
        ),
        reply("no body: after HEAD", vec![w(HELLO)], clean("", Discarded)).method("HEAD"),
        reply("no body: HEAD answered right", vec![w(head("Content-Length: 5\r\n"))], clean("", Reused))
            .method("HEAD")
            .present(&[("content-length", "5")]),
        reply("cl: bytes after the body (same write)", vec![w(format!("{HELLO}EXTRA"))], clean("hello", Discarded)),
        reply("cl: a response after the body (later write)", vec![w(HELLO), sleep(30), w(HELLO)], clean("hello", Discarded)),
        reply("cl: body in pieces", vec![w(head("Content-Length: 5\r\n")), sleep(50), w("hel"), sleep(50), w("lo")], clean("hello", Reused)),
        reply("cl: close right after the head", vec![w(head("Content-Length: 10\r\n")), Step::Close], BadGatewayOrAborted),
        reply(
            "cl: close 200 ms after the head",
            vec![w(head("Content-Length: 10\r\n")), sleep(200), Step::Close],
            BadGatewayOrAborted,
        ),
        reply(
            "cl: close mid-body",
            vec![w(head("Content-Length: 10\r\n") + "hello"), sleep(100), Step::Close],
            Aborted,
        ),
        reply("cl: reset mid-body", vec![w(head("Content-Length: 10\r\n") + "hello"), sleep(100), Step::Reset], Aborted),
        // Until close, connection management (RFC 9112 §6.3 item 8, §9.3, §9.6)
        reply("close: HTTP/1.0 without length", vec![w("HTTP/1.0 200 OK\r\n\r\nuntil close"), Step::Close], clean("until close", Discarded)),
        reply(
            "close: HTTP/1.1 without length",
            vec![w(head("Connection: close\r\n") + "until close"), sleep(50), Step::Close],
            clean("until close", Discarded),
        ),
        reply("close: Connection: close", vec![w(head("Connection: close\r\nContent-Length: 5\r\n") + "hello")], clean("hello", Discarded)),
        reply(
            "close: Keep-Alive: timeout=1",
            vec![w(head("Keep-Alive: timeout=1\r\nContent-Length: 5\r\n") + "hello")],
            clean("hello", Discarded),
        ),
        reply(
            "close: Keep-Alive: timeout=5",
            vec![w(head("Keep-Alive: timeout=5, max=100\r\nContent-Length: 5\r\n") + "hello")],
            clean("hello", Reused),
        ),
        reply(
            "hop-by-hop response fields are dropped",
            vec![w(head(
                "Connection: x-hop, keep-alive\r\nX-Hop: secret\r\nKeep-Alive: timeout=30\r\nProxy-Authenticate: Basic\r\n\
                 Trailer: X-T\r\nUpgrade: foo/1\r\nX-End: kept\r\nContent-Length: 5\r\n",
            ) + "hello")],
            clean("hello", Reused),
        )
        .absent(&["x-hop"])
        .present(&[("x-end", "kept")]),
        // Heads (RFC 9112 §2, §4, §5; the gateway's 64 KiB limit)
        reply("head: over 64 KiB in one write", vec![w(&big_head)], BadGateway),
        reply(
            "head: over 64 KiB in 1 KiB writes",
            big_head.as_bytes().chunks(1024).map(w).collect(),
            BadGateway,
        ),
        reply("head: 60 KiB", vec![w(&near_limit)], clean("hello", Reused)),
        reply("head: every byte its own write", Step::bytewise(HELLO, Duration::from_millis(2)), clean("hello", Reused)),
        reply("1xx: 100 Continue, then 200", vec![w("HTTP/1.1 100 Continue\r\n\r\n"), w(HELLO)], clean("hello", Reused)),
        reply(
            "1xx: several, then 200",
            vec![
                w("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\n\r\n"),
                sleep(50),
                w("HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n"),
                sleep(50),
                w(HELLO),
            ],
            clean("hello", Reused),
        ),
        reply("1xx: 101 to a plain request", vec![w("HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: upgrade\r\n\r\n")], BadGateway),
        reply("status: two digits", vec![w("HTTP/1.1 20 OK\r\nContent-Length: 5\r\n\r\nhello")], BadGateway),
        reply("status: four digits", vec![w("HTTP/1.1 2000 OK\r\nContent-Length: 5\r\n\r\nhello")], BadGateway),
        reply("status: not a number", vec![w("HTTP/1.1 abc OK\r\nContent-Length: 5\r\n\r\nhello")], BadGateway),
        reply("status: HTTP/2 status line", vec![w("HTTP/2 200 OK\r\nContent-Length: 5\r\n\r\nhello")], BadGateway),
        reply("status: not HTTP at all", vec![w("SSH-2.0-OpenSSH_9.6\r\n\r\n")], BadGateway),
        reply(
            "field: obs-fold",
            vec![w(head("X-Folded: one\r\n two\r\nContent-Length: 5\r\n") + "hello")],
            OneOf(&[BadGateway, REPAIRED_HELLO]),
        ),
        reply("field: NUL in a value", vec![w(head("X-Nul: a\0b\r\nContent-Length: 5\r\n") + "hello")], BadGateway),
        reply("field: no colon", vec![w(head("X-No-Colon value\r\nContent-Length: 5\r\n") + "hello")], BadGateway),
        reply(
            "field: whitespace before the colon",
            vec![w(head("X-Space : v\r\nContent-Length: 5\r\n") + "hello")],
            OneOf(&[BadGateway, REPAIRED_HELLO]),
        ),
        reply(
            "field: CR without LF",
            vec![w(head("X-Cr: a\rb\r\nContent-Length: 5\r\n") + "hello")],
            BadGateway,
        ),
    ]
}

/// Response-side cases with a shape of their own.
pub(crate) fn cases() -> Vec<Case> {
    cases![
        silent_close_get_is_retried_once_on_a_fresh_connection,
        silent_close_post_is_not_retried,
        reset_before_any_byte_get_is_retried,
        pipelined_requests_get_their_own_responses_in_order,
        pipelined_behind_a_slow_response_stay_in_order,
        pipelined_head_then_get,
        tls_content_length_response,
        tls_until_close_with_close_notify,
        tls_until_close_truncated_without_close_notify,
        tls_content_length_truncated_without_close_notify,
    ]
}

pub(crate) async fn after_warm_connection_fails(
    table: &Table,
    method: &str,
    body: &str,
    how: Step,
) -> (Bench, RawOutcome) {
    let bench = table
        .plain(move |r: &Received| if r.connection == 0 && r.index == 1 { vec![how.clone()] } else { echo(r) })
        .await;
    let _ = bench.request("GET", "/warm", "").await;
    let head =
        format!("{method} {}/order HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n{body}", bench.prefix, body.len());
    let seen = bench.client().send(head).until_responses(&[method], GRACE).run().await;
    (bench, seen)
}

pub(crate) async fn silent_close_get_is_retried_once_on_a_fresh_connection(table: Arc<Table>) -> Check {
    let (bench, seen) = after_warm_connection_fails(&table, "GET", "", Step::Close).await;
    assert_clean(&seen, "GET", 200, "GET /order HTTP/1.1").map_err(|why| format!("{why}: {}", seen.text()))?;
    let orders: Vec<_> = bench.received().into_iter().filter(|r| r.request_line().starts_with("GET /order")).collect();
    ensure!(orders.len() == 2, "the GET reached the backend {} times: {:?}", orders.len(), bench.lines());
    ensure!(orders[1].connection == 1 && bench.backend.connections() == 2, "not retried on a fresh connection");
    Ok(())
}

pub(crate) async fn silent_close_post_is_not_retried(table: Arc<Table>) -> Check {
    let (bench, seen) = after_warm_connection_fails(&table, "POST", "abc", Step::Close).await;
    let id = bad_gateway(&seen).map_err(|why| format!("{why}: {}", seen.text()))?;
    table.log_line(&id).await?;
    let posts = bench.received().into_iter().filter(|r| r.request_line().starts_with("POST")).count();
    ensure!(posts == 1, "the POST reached the backend {posts} times");
    Ok(())
}

pub(crate) async fn reset_before_any_byte_get_is_retried(table: Arc<Table>) -> Check {
    let (bench, seen) = after_warm_connection_fails(&table, "GET", "", Step::Reset).await;
    assert_clean(&seen, "GET", 200, "GET /order HTTP/1.1").map_err(|why| format!("{why}: {}", seen.text()))?;
    ensure!(bench.received().len() == 3, "warm-up, the reset GET and its retry: {:?}", bench.lines());
    Ok(())
}

pub(crate) async fn pipelined_requests_get_their_own_responses_in_order(table: Arc<Table>) -> Check {
    let bench = table.plain(echo).await;
    let p = &bench.prefix;
    let wire = format!(
        "GET {p}/one HTTP/1.1\r\nHost: t\r\n\r\nPOST {p}/two HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabcGET {p}/three HTTP/1.1\r\nHost: t\r\n\r\n"
    );
    let seen = bench.client().send(wire).until_responses(&["GET", "POST", "GET"], GRACE).run().await;
    let bodies: Vec<String> = seen.parsed.finals().map(RawResponse::body_text).collect();
    ensure!(
        bodies == ["GET /one HTTP/1.1", "POST /two HTTP/1.1", "GET /three HTTP/1.1"],
        "responses {bodies:?}: {}",
        seen.text()
    );
    ensure!(bench.received().len() == 3 && bench.received()[1].body() == b"abc", "backend saw {:?}", bench.lines());
    Ok(())
}

pub(crate) async fn pipelined_behind_a_slow_response_stay_in_order(table: Arc<Table>) -> Check {
    let bench = table
        .plain(|r: &Received| {
            let mut steps = if r.request_line().contains("/slow") { vec![sleep(300)] } else { vec![] };
            steps.extend(echo(r));
            steps
        })
        .await;
    let p = &bench.prefix;
    let wire = format!("GET {p}/slow HTTP/1.1\r\nHost: t\r\n\r\nGET {p}/fast HTTP/1.1\r\nHost: t\r\n\r\n");
    let seen = bench.client().send(wire).until_responses(&["GET", "GET"], GRACE).run().await;
    let bodies: Vec<String> = seen.parsed.finals().map(RawResponse::body_text).collect();
    ensure!(bodies == ["GET /slow HTTP/1.1", "GET /fast HTTP/1.1"], "responses {bodies:?}");
    Ok(())
}

pub(crate) async fn pipelined_head_then_get(table: Arc<Table>) -> Check {
    let bench = table
        .plain(
            |r: &Received| {
                if r.request_line().starts_with("HEAD") { vec![w(head("Content-Length: 17\r\n"))] } else { echo(r) }
            },
        )
        .await;
    let p = &bench.prefix;
    let wire = format!("HEAD {p}/h HTTP/1.1\r\nHost: t\r\n\r\nGET {p}/g HTTP/1.1\r\nHost: t\r\n\r\n");
    let seen = bench.client().send(wire).until_responses(&["HEAD", "GET"], GRACE).run().await;
    let finals: Vec<&RawResponse> = seen.parsed.finals().collect();
    ensure!(finals.len() == 2 && seen.parsed.rest.is_empty(), "{}", seen.text());
    ensure!(finals[0].body.is_empty() && finals[1].body == b"GET /g HTTP/1.1", "{}", seen.text());
    ensure!(bench.backend.connections() == 1, "a HEAD answered right keeps the backend connection");
    Ok(())
}

/// A TLS backend answering `/case` with `steps`; the client's view of a GET for it.
pub(crate) async fn tls_case(table: &Table, steps: Vec<Step>) -> (Bench, RawOutcome) {
    let bench = table.bench(table.tls_options(), on_case(steps)).await;
    let seen = bench.request("GET", "/case", "").await;
    (bench, seen)
}

pub(crate) async fn tls_content_length_response(table: Arc<Table>) -> Check {
    let (bench, seen) = tls_case(&table, vec![w(HELLO)]).await;
    let judged = judge(&seen, "GET", clean("hello", After::Reused)).map_err(|why| format!("{why}: {}", seen.text()))?;
    bench.assert_after(&judged, "GET /case HTTP/1.1").await
}

pub(crate) async fn tls_until_close_with_close_notify(table: Arc<Table>) -> Check {
    let (bench, seen) = tls_case(&table, vec![w("HTTP/1.0 200 OK\r\n\r\nuntil close"), Step::Close]).await;
    let judged =
        judge(&seen, "GET", clean("until close", After::Discarded)).map_err(|why| format!("{why}: {}", seen.text()))?;
    bench.assert_after(&judged, "GET /case HTTP/1.1").await
}

/// RFC 9112 §9.8: a close without close_notify may be a truncation; a body delimited by the
/// close is then incomplete.
pub(crate) async fn tls_until_close_truncated_without_close_notify(table: Arc<Table>) -> Check {
    let steps = vec![w("HTTP/1.0 200 OK\r\n\r\nuntil close"), sleep(100), Step::CloseWithoutNotify];
    let (bench, seen) = tls_case(&table, steps).await;
    let judged = judge(&seen, "GET", Expect::Aborted).map_err(|why| format!("{why}: {}", seen.text()))?;
    bench.assert_after(&judged, "GET /case HTTP/1.1").await
}

pub(crate) async fn tls_content_length_truncated_without_close_notify(table: Arc<Table>) -> Check {
    let steps = vec![w(head("Content-Length: 10\r\n") + "hello"), sleep(100), Step::CloseWithoutNotify];
    let (bench, seen) = tls_case(&table, steps).await;
    let judged = judge(&seen, "GET", Expect::Aborted).map_err(|why| format!("{why}: {}", seen.text()))?;
    bench.assert_after(&judged, "GET /case HTTP/1.1").await
}
