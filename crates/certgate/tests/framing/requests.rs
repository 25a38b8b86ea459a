//! Request side: what a client sends, and what the client and the backend must see; then the
//! cases that measure time.

use std::sync::Arc;
use std::time::Duration;

use certgate_testkit::{Framing, Options, Piece, RawOutcome, Reading, Received};

use super::harness::*;
use super::responses::CHUNKED;
use super::{Check, GRACE};

/// Request-side cases.
pub(crate) fn cases() -> Vec<Case> {
    cases![
        http10_request_without_host_is_forwarded,
        http10_client_gets_a_chunked_backend_body_unchunked,
        request_with_cl_and_te_is_never_forwarded_ambiguously,
        request_with_te_then_cl_is_never_forwarded_ambiguously,
        request_te_gzip_is_400_and_closed,
        request_te_chunked_twice_is_refused,
        request_bad_chunk_size_is_400,
        request_chunk_size_overflow_is_400,
        request_cl_larger_than_sent_then_close,
        request_chunked_cut_off_then_close,
        request_exact_bytes_get,
        request_exact_bytes_post_with_length,
        request_chunked_body_is_rechunked,
        request_chunked_with_trailers,
        request_cl_list_of_equal_values,
        request_two_equal_cl_fields,
        request_hop_by_hop_fields_never_reach_the_backend,
        request_connection_close_is_the_clients_alone,
        request_pipelined_after_connection_close_is_not_served,
        request_absolute_form_target,
        request_bodyless_post,
    ]
}

/// Cases that measure time; they run one at a time.
pub(crate) fn timed() -> Vec<Case> {
    cases![
        early_413_while_the_client_uploads,
        early_401_to_expect_100_continue_without_the_body,
        expect_100_continue_gets_100_then_the_answer,
        slow_request_head_and_body,
    ]
}

/// Sends `wire` (with `{p}` replaced by the API prefix) to an echoing backend.
/// A request the gateway must refuse with `status`, forwarding nothing.
pub(crate) struct Refusal {
    pub name: &'static str,
    /// Exact bytes; `{p}` is the case's API prefix, the first token its method.
    pub wire: &'static str,
    pub status: u16,
}

/// Requests refused before anything is forwarded.
pub(crate) fn refusals() -> Vec<Refusal> {
    vec![
        Refusal { name: "request_without_host_is_400", wire: "GET {p}/case HTTP/1.1\r\n\r\n", status: 400 },
        Refusal {
            name: "request_with_two_hosts_is_400",
            wire: "GET {p}/case HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            status: 400,
        },
        Refusal {
            name: "http10_request_with_two_hosts_is_400",
            wire: "GET {p}/case HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n",
            status: 400,
        },
        // RFC 9112 §6.1: a transfer coding the server does not understand is 501.
        Refusal {
            name: "request_te_gzip_chunked_is_501",
            wire: "POST {p}/case HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            status: 501,
        },
        Refusal {
            name: "request_te_gzip_in_two_fields_is_501",
            wire: "POST {p}/case HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            status: 501,
        },
        Refusal {
            name: "request_te_on_http10_is_400",
            wire: "POST {p}/case HTTP/1.0\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            status: 400,
        },
        Refusal {
            name: "request_two_different_cl_fields_is_400",
            wire: "POST {p}/case HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
            status: 400,
        },
        Refusal {
            name: "request_cl_with_sign_is_400",
            wire: "POST {p}/case HTTP/1.1\r\nHost: t\r\nContent-Length: +5\r\n\r\nhello",
            status: 400,
        },
        // RFC 9112 §5.2 allows replacing obs-fold by spaces; hyper rejects, which is the safer half.
        Refusal {
            name: "request_obs_fold_is_400",
            wire: "GET {p}/case HTTP/1.1\r\nHost: t\r\nX-Folded: one\r\n two\r\n\r\n",
            status: 400,
        },
        Refusal {
            name: "request_nul_in_field_is_400",
            wire: "GET {p}/case HTTP/1.1\r\nHost: t\r\nX-Nul: a\0b\r\n\r\n",
            status: 400,
        },
        // RFC 9112 §5.1: a server MUST reject whitespace between a field name and the colon with 400.
        Refusal {
            name: "request_whitespace_before_colon_is_400",
            wire: "GET {p}/case HTTP/1.1\r\nHost: t\r\nX-Space : v\r\n\r\n",
            status: 400,
        },
    ]
}

pub(crate) async fn run_refusal(table: Arc<Table>, refusal: Refusal) -> Check {
    let method = refusal.wire.split(' ').next().unwrap_or_default();
    let (bench, seen) = raw_to_echo(&table, refusal.wire, &[method]).await;
    refused(&bench, &seen, &[refusal.status])
}

pub(crate) async fn raw_to_echo(table: &Table, wire: &str, methods: &[&str]) -> (Bench, RawOutcome) {
    let bench = table.plain(echo).await;
    let wire = wire.replace("{p}", &bench.prefix);
    let seen = bench.client().send(wire).until_responses(methods, GRACE).run().await;
    (bench, seen)
}

/// The client got `status`, and nothing at all reached the backend.
pub(crate) fn refused(bench: &Bench, seen: &RawOutcome, statuses: &[u16]) -> Check {
    let status = seen.response(0).map(|r| r.status);
    ensure!(status.is_some_and(|s| statuses.contains(&s)), "expected {statuses:?}: {}", seen.text());
    ensure!(bench.received().is_empty(), "it was forwarded: {:?}", bench.lines());
    Ok(())
}

pub(crate) async fn http10_request_without_host_is_forwarded(table: Arc<Table>) -> Check {
    let (bench, seen) = raw_to_echo(&table, "GET {p}/case HTTP/1.0\r\n\r\n", &["GET"]).await;
    let response = seen.response(0).ok_or_else(|| seen.text())?;
    ensure!(response.status == 200 && response.body == b"GET /case HTTP/1.1", "{}", seen.text());
    ensure!(seen.closed(), "an HTTP/1.0 client without keep-alive is closed after its response");
    let received = bench.received();
    ensure!(received.len() == 1, "backend saw {:?}", bench.lines());
    let hosts = received[0].header_values("host");
    ensure!(hosts == [bench.backend.addr.to_string()], "the backend's Host is {hosts:?}");
    Ok(())
}

pub(crate) async fn http10_client_gets_a_chunked_backend_body_unchunked(table: Arc<Table>) -> Check {
    let bench = table.plain(on_case(vec![w(format!("{CHUNKED}5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"))])).await;
    let seen = bench.client().send(format!("GET {}/case HTTP/1.0\r\n\r\n", bench.prefix)).run().await;
    let response = seen.response(0).ok_or_else(|| seen.text())?;
    ensure!(response.body == b"hello world", "{}", seen.text());
    ensure!(response.framing != Framing::Chunked, "chunked framing sent to an HTTP/1.0 client");
    Ok(())
}

/// RFC 9112 §6.1: the server MAY reject a request with both; if it processes it, as chunked,
/// it MUST close the connection afterwards. Either way the backend never sees both.
pub(crate) async fn cl_and_te(table: &Table, fields: &str) -> Check {
    let wire = format!("POST {{p}}/case HTTP/1.1\r\nHost: t\r\n{fields}\r\n5\r\nhello\r\n0\r\n\r\n");
    let (bench, seen) = raw_to_echo(table, &wire, &["POST"]).await;
    let received = bench.received();
    for request in &received {
        let both = !request.header_values("content-length").is_empty()
            && !request.header_values("transfer-encoding").is_empty();
        ensure!(!both, "the backend saw both Content-Length and Transfer-Encoding: {:?}", request.header_lines());
    }
    match seen.response(0).map(|r| r.status) {
        Some(400) => ensure!(received.is_empty(), "refused but forwarded"),
        Some(200) => {
            ensure!(received.len() == 1, "backend saw {:?}", bench.lines());
            ensure!(
                dechunked(received[0].body()) == b"hello",
                "body {:?}",
                String::from_utf8_lossy(received[0].body())
            );
            ensure!(seen.closed(), "the client connection must close after an ambiguously framed request");
        }
        _ => return Err(format!("neither 400 nor 200: {}", seen.text())),
    }
    Ok(())
}

pub(crate) async fn request_with_cl_and_te_is_never_forwarded_ambiguously(table: Arc<Table>) -> Check {
    cl_and_te(&table, "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n").await
}

pub(crate) async fn request_with_te_then_cl_is_never_forwarded_ambiguously(table: Arc<Table>) -> Check {
    cl_and_te(&table, "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n").await
}

/// A chunked body's data; the bytes themselves when they are not chunked.
pub(crate) fn dechunked(body: &[u8]) -> Vec<u8> {
    let wire = [b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n".as_slice(), body].concat();
    match certgate_testkit::parse_responses(&wire, &[], true).responses.first() {
        Some(response) => response.body.clone(),
        None => body.to_vec(),
    }
}

/// RFC 9112 §6.3 item 4: chunked not last makes the length unknowable: 400, then close.
pub(crate) async fn request_te_gzip_is_400_and_closed(table: Arc<Table>) -> Check {
    let wire = "POST {p}/case HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\nhello";
    let (bench, seen) = raw_to_echo(&table, wire, &["POST"]).await;
    refused(&bench, &seen, &[400])?;
    ensure!(seen.closed(), "the connection must close after the 400");
    Ok(())
}

/// RFC 9112 §6.1: a sender MUST NOT apply chunked more than once; such a request is refused
/// (400 malformed, or 501 as a coding not implemented) and never forwarded.
pub(crate) async fn request_te_chunked_twice_is_refused(table: Arc<Table>) -> Check {
    let wire =
        "POST {p}/case HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
    let (bench, seen) = raw_to_echo(&table, wire, &["POST"]).await;
    refused(&bench, &seen, &[400, 501])
}

/// A malformed request body: 400, and the backend never receives a complete-looking request;
/// the backend connection that carried its start is closed.
pub(crate) async fn malformed_request_body(table: &Table, wire: &str) -> Check {
    let (bench, seen) = raw_to_echo(table, wire, &["POST"]).await;
    let status = seen.response(0).map(|r| r.status);
    ensure!(status == Some(400), "expected 400: {}", seen.text());
    assert_nothing_complete_forwarded(&bench).await
}

pub(crate) async fn assert_nothing_complete_forwarded(bench: &Bench) -> Check {
    ensure!(bench.received().is_empty(), "the backend got a complete request: {:?}", bench.lines());
    for index in 0..bench.backend.connections() {
        let log = bench.backend.wait_closed(index, Duration::from_secs(2)).await;
        ensure!(log.is_some_and(|l| l.is_closed()), "backend connection {index} with a partial request left open");
    }
    Ok(())
}

pub(crate) async fn request_bad_chunk_size_is_400(table: Arc<Table>) -> Check {
    let wire = "POST {p}/case HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n";
    malformed_request_body(&table, wire).await
}

pub(crate) async fn request_chunk_size_overflow_is_400(table: Arc<Table>) -> Check {
    let wire = "POST {p}/case HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n10000000000000005\r\nhello\r\n";
    malformed_request_body(&table, wire).await
}

pub(crate) async fn request_cl_larger_than_sent_then_close(table: Arc<Table>) -> Check {
    let bench = table.plain(echo).await;
    let seen = bench
        .client()
        .send(format!("POST {}/case HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n0123456789", bench.prefix))
        .pause(Duration::from_millis(100))
        .shutdown_write()
        .run()
        .await;
    ensure!(seen.response(0).is_none_or(|r| r.status >= 300), "a success for a cut-off request: {}", seen.text());
    assert_nothing_complete_forwarded(&bench).await
}

pub(crate) async fn request_chunked_cut_off_then_close(table: Arc<Table>) -> Check {
    let bench = table.plain(echo).await;
    let seen = bench
        .client()
        .send(format!("POST {}/case HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel", bench.prefix))
        .pause(Duration::from_millis(100))
        .shutdown_write()
        .run()
        .await;
    ensure!(seen.response(0).is_none_or(|r| r.status >= 300), "a success for a cut-off request: {}", seen.text());
    assert_nothing_complete_forwarded(&bench).await
}

/// The backend's head, as an unordered set of field lines (the gateway may reorder fields).
/// The backend's header lines, sorted; a well-formed `traceparent` the gateway started (it
/// differs per request) reads as `traceparent: (new trace)`.
pub(crate) fn field_set(request: &Received) -> Vec<String> {
    let mut lines: Vec<String> = request
        .header_lines()
        .into_iter()
        .map(|line| match line.strip_prefix("traceparent: ") {
            Some(value) if is_new_trace(value) => "traceparent: (new trace)".to_owned(),
            _ => line,
        })
        .collect();
    lines.sort();
    lines
}

/// `00-<32 hex>-<16 hex>-01`, lower-case.
fn is_new_trace(value: &str) -> bool {
    let parts: Vec<&str> = value.split('-').collect();
    let hex =
        |part: &str, len: usize| part.len() == len && part.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    matches!(parts.as_slice(), ["00", trace, parent, "01"] if hex(trace, 32) && hex(parent, 16))
}

pub(crate) fn expected_fields(bench: &Bench, extra: &[&str]) -> Vec<String> {
    let mut lines = vec![
        format!("host: {}", bench.backend.addr),
        "x-forwarded-for: 127.0.0.1".to_owned(),
        "x-forwarded-proto: http".to_owned(),
        "x-forwarded-host: t".to_owned(),
        "traceparent: (new trace)".to_owned(),
    ];
    lines.extend(extra.iter().map(|l| (*l).to_owned()));
    lines.sort();
    lines
}

pub(crate) async fn request_exact_bytes_get(table: Arc<Table>) -> Check {
    let wire = "GET {p}/case?q=1&r=%20 HTTP/1.1\r\nHost: t\r\nX-One: 1\r\nAccept: */*\r\n\r\n";
    let (bench, seen) = raw_to_echo(&table, wire, &["GET"]).await;
    assert_clean(&seen, "GET", 200, "GET /case?q=1&r=%20 HTTP/1.1")?;
    let received = bench.received();
    ensure!(received.len() == 1 && bench.backend.connections() == 1, "backend saw {:?}", bench.lines());
    let fields = field_set(&received[0]);
    ensure!(fields == expected_fields(&bench, &["x-one: 1", "accept: */*"]), "backend head fields {fields:?}");
    ensure!(received[0].body().is_empty(), "a body on a GET");
    Ok(())
}

pub(crate) async fn request_exact_bytes_post_with_length(table: Arc<Table>) -> Check {
    let wire = "POST {p}/case HTTP/1.1\r\nHost: t\r\nContent-Type: text/plain\r\nContent-Length: 11\r\n\r\nhello world";
    let (bench, seen) = raw_to_echo(&table, wire, &["POST"]).await;
    assert_clean(&seen, "POST", 200, "POST /case HTTP/1.1")?;
    let received = bench.received();
    ensure!(received.len() == 1, "backend saw {:?}", bench.lines());
    let fields = field_set(&received[0]);
    let expected = expected_fields(&bench, &["content-type: text/plain", "content-length: 11"]);
    ensure!(fields == expected, "backend head fields {fields:?}");
    ensure!(received[0].body() == b"hello world", "body {:?}", String::from_utf8_lossy(received[0].body()));
    Ok(())
}

pub(crate) async fn request_chunked_body_is_rechunked(table: Arc<Table>) -> Check {
    let wire = "POST {p}/case HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n";
    let (bench, seen) = raw_to_echo(&table, wire, &["POST"]).await;
    assert_clean(&seen, "POST", 200, "POST /case HTTP/1.1")?;
    let received = bench.received();
    ensure!(received.len() == 1, "backend saw {:?}", bench.lines());
    let fields = field_set(&received[0]);
    ensure!(fields == expected_fields(&bench, &["transfer-encoding: chunked"]), "backend head fields {fields:?}");
    ensure!(dechunked(received[0].body()) == b"hello world", "body {:?}", String::from_utf8_lossy(received[0].body()));
    Ok(())
}

pub(crate) async fn request_chunked_with_trailers(table: Arc<Table>) -> Check {
    let wire =
        "POST {p}/case HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-Sum: 1\r\n\r\n";
    let (bench, seen) = raw_to_echo(&table, wire, &["POST"]).await;
    assert_clean(&seen, "POST", 200, "POST /case HTTP/1.1")?;
    let received = bench.received();
    ensure!(received.len() == 1 && dechunked(received[0].body()) == b"hello", "backend saw {:?}", bench.lines());
    Ok(())
}

/// RFC 9110 §8.6: a list of equal values MAY be rejected or replaced by one; what the backend
/// gets is then exactly one Content-Length.
pub(crate) async fn request_cl_list_of_equal_values(table: Arc<Table>) -> Check {
    one_content_length(&table, "Content-Length: 5, 5\r\n").await
}

pub(crate) async fn request_two_equal_cl_fields(table: Arc<Table>) -> Check {
    one_content_length(&table, "Content-Length: 5\r\nContent-Length: 5\r\n").await
}

pub(crate) async fn one_content_length(table: &Table, fields: &str) -> Check {
    let wire = format!("POST {{p}}/case HTTP/1.1\r\nHost: t\r\n{fields}\r\nhello");
    let (bench, seen) = raw_to_echo(table, &wire, &["POST"]).await;
    match seen.response(0).map(|r| r.status) {
        Some(400) => ensure!(bench.received().is_empty(), "refused but forwarded"),
        Some(200) => {
            let received = bench.received();
            ensure!(received.len() == 1, "backend saw {:?}", bench.lines());
            let lengths = received[0].header_values("content-length");
            ensure!(lengths == ["5"], "the backend saw Content-Length {lengths:?}");
            ensure!(received[0].body() == b"hello", "body {:?}", received[0].body());
        }
        _ => return Err(format!("neither 400 nor 200: {}", seen.text())),
    }
    Ok(())
}

/// RFC 9110 §7.6.1: Connection and the fields it names, Keep-Alive, TE, Upgrade, Trailer and
/// Proxy-Connection are for one hop only.
pub(crate) async fn request_hop_by_hop_fields_never_reach_the_backend(table: Arc<Table>) -> Check {
    let wire = "GET {p}/case HTTP/1.1\r\nHost: t\r\nConnection: keep-alive, X-Custom, Upgrade\r\nX-Custom: secret\r\n\
                Keep-Alive: timeout=5\r\nTE: trailers\r\nUpgrade: websocket\r\nProxy-Connection: keep-alive\r\n\
                Trailer: X-T\r\nX-Kept: yes\r\n\r\n";
    let (bench, seen) = raw_to_echo(&table, wire, &["GET"]).await;
    let response = seen.response(0).ok_or_else(|| seen.text())?;
    ensure!(response.status == 200, "{}", seen.text());
    let received = bench.received();
    ensure!(received.len() == 1, "backend saw {:?}", bench.lines());
    let fields = field_set(&received[0]);
    ensure!(fields == expected_fields(&bench, &["x-kept: yes"]), "backend head fields {fields:?}");
    Ok(())
}

pub(crate) async fn request_connection_close_is_the_clients_alone(table: Arc<Table>) -> Check {
    let bench = table.plain(echo).await;
    let seen = bench.request("GET", "/case", "Connection: close\r\n").await;
    ensure!(seen.response(0).is_some_and(|r| r.status == 200), "{}", seen.text());
    ensure!(seen.closed(), "the gateway keeps a connection the client asked to close");
    bench.follow_up().await?;
    let received = bench.received();
    ensure!(received[0].header_values("connection").is_empty(), "Connection reached the backend");
    ensure!(
        received.len() == 2 && received[1].connection == 0,
        "the backend connection was not reused: {:?}",
        bench.lines()
    );
    Ok(())
}

pub(crate) async fn request_pipelined_after_connection_close_is_not_served(table: Arc<Table>) -> Check {
    let wire = "GET {p}/a HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\nGET {p}/b HTTP/1.1\r\nHost: t\r\n\r\n";
    let (bench, seen) = raw_to_echo(&table, wire, &["GET"]).await;
    ensure!(seen.parsed.finals().count() == 1 && seen.closed(), "{}", seen.text());
    ensure!(bench.received().len() == 1, "backend saw {:?}", bench.lines());
    Ok(())
}

/// RFC 9112 §3.2.2: a server MUST accept the absolute form; the backend gets the origin form.
pub(crate) async fn request_absolute_form_target(table: Arc<Table>) -> Check {
    let wire = "GET http://t{p}/case HTTP/1.1\r\nHost: t\r\n\r\n";
    let (bench, seen) = raw_to_echo(&table, wire, &["GET"]).await;
    assert_clean(&seen, "GET", 200, "GET /case HTTP/1.1").map_err(|why| format!("{why}: {}", seen.text()))?;
    ensure!(bench.received().len() == 1, "backend saw {:?}", bench.lines());
    Ok(())
}

pub(crate) async fn request_bodyless_post(table: Arc<Table>) -> Check {
    let (bench, seen) = raw_to_echo(&table, "POST {p}/case HTTP/1.1\r\nHost: t\r\n\r\n", &["POST"]).await;
    assert_clean(&seen, "POST", 200, "POST /case HTTP/1.1").map_err(|why| format!("{why}: {}", seen.text()))?;
    let received = bench.received();
    ensure!(received.len() == 1 && received[0].body().is_empty(), "backend saw {:?}", bench.lines());
    ensure!(received[0].header_values("transfer-encoding").is_empty(), "a bodyless request sent chunked");
    Ok(())
}

/// A backend refuses an upload after its head and stops reading; the client, still uploading
/// 5 MB over about 3 s, gets the 413 within a second; the connection that carried the
/// unfinished body is not reused.
pub(crate) async fn early_413_while_the_client_uploads(table: Arc<Table>) -> Check {
    const SIZE: usize = 5 * 1024 * 1024;
    const PIECE: usize = 64 * 1024;
    let options = Options { reading: Reading::HeadOnly, ..Options::default() };
    let bench = table
        .bench(options, |r: &Received| {
            if is_case(r) {
                vec![w("HTTP/1.1 413 Content Too Large\r\nContent-Length: 8\r\n\r\ntoo big!"), sleep(3000)]
            } else {
                echo(r)
            }
        })
        .await;
    let mut pieces = vec![Piece::Bytes(
        format!("POST {}/case HTTP/1.1\r\nHost: t\r\nContent-Length: {SIZE}\r\n\r\n", bench.prefix).into_bytes(),
    )];
    for _ in 0..SIZE / PIECE {
        pieces.push(Piece::Bytes(vec![b'u'; PIECE]));
        pieces.push(Piece::Pause(Duration::from_millis(37)));
    }
    let seen =
        bench.client().pieces(pieces).until_responses(&["POST"], GRACE).deadline(Duration::from_secs(8)).run().await;
    let response = seen.response(0).ok_or_else(|| format!("no response: {}", seen.text()))?;
    ensure!(response.status == 413 && response.body == b"too big!", "{}", seen.text());
    let after = seen.completed_at[0];
    ensure!(
        after < Duration::from_secs(1),
        "the 413 arrived after {after:?} (upload finished after {:?})",
        seen.write_finished
    );
    bench.follow_up().await?;
    let received = bench.received();
    ensure!(
        received.len() == 2 && received[1].connection == 1,
        "the refused upload's connection was reused: {:?}",
        bench.lines()
    );
    let log = bench.backend.wait_closed(0, Duration::from_secs(6)).await;
    ensure!(
        log.is_some_and(|l| l.closed_by_gateway.is_some()),
        "the gateway never closed the refused upload's connection"
    );
    Ok(())
}

/// RFC 9110 §10.1.1: a client that sent `Expect: 100-continue` waits before sending its body;
/// a backend answering from the head alone must reach it without that body.
pub(crate) async fn early_401_to_expect_100_continue_without_the_body(table: Arc<Table>) -> Check {
    let options = Options { reading: Reading::HeadOnly, ..Options::default() };
    let bench = table
        .bench(options, |r: &Received| {
            if is_case(r) { vec![w("HTTP/1.1 401 Unauthorized\r\nContent-Length: 4\r\n\r\nnope")] } else { echo(r) }
        })
        .await;
    let seen = bench
        .client()
        .send(format!(
            "POST {}/case HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n",
            bench.prefix
        ))
        .pause(Duration::from_secs(3))
        .until_responses(&["POST"], GRACE)
        .run()
        .await;
    let response = seen.response(0).ok_or_else(|| format!("no response: {}", seen.text()))?;
    ensure!(response.status == 401 && response.body == b"nope", "{}", seen.text());
    ensure!(seen.completed_at[0] < Duration::from_secs(1), "the 401 waited {:?} for a body", seen.completed_at[0]);
    bench.follow_up().await?;
    let received = bench.received();
    ensure!(
        received.len() == 2 && received[1].connection == 1,
        "the connection without its body was reused: {:?}",
        bench.lines()
    );
    Ok(())
}

pub(crate) async fn expect_100_continue_gets_100_then_the_answer(table: Arc<Table>) -> Check {
    let bench = table.plain(echo).await;
    let seen = bench
        .client()
        .send(format!(
            "POST {}/case HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n",
            bench.prefix
        ))
        .pause(Duration::from_millis(1000))
        .send("hello")
        .until_responses(&["POST"], GRACE)
        .run()
        .await;
    let continues: Vec<_> = seen.parsed.informational().collect();
    ensure!(continues.len() == 1 && continues[0].status == 100, "no 100 Continue: {}", seen.text());
    ensure!(seen.first_byte.is_some_and(|t| t < Duration::from_millis(1000)), "the 100 came only after the body");
    let response = seen.response(0).ok_or_else(|| seen.text())?;
    ensure!(response.status == 200 && response.body == b"POST /case HTTP/1.1", "{}", seen.text());
    let received = bench.received();
    ensure!(received.len() == 1 && received[0].body() == b"hello", "backend saw {:?}", bench.lines());
    Ok(())
}

/// A client sending its head a byte at a time and its chunked body in pauses.
pub(crate) async fn slow_request_head_and_body(table: Arc<Table>) -> Check {
    let bench = table.plain(echo).await;
    let head = format!("POST {}/case HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n", bench.prefix);
    let mut pieces: Vec<Piece> =
        head.bytes().flat_map(|b| [Piece::Bytes(vec![b]), Piece::Pause(Duration::from_millis(3))]).collect();
    for chunk in ["5\r\nhello\r\n", "1\r\n \r\n", "5\r\nworld\r\n", "0\r\n\r\n"] {
        pieces.push(Piece::Bytes(chunk.as_bytes().to_vec()));
        pieces.push(Piece::Pause(Duration::from_millis(100)));
    }
    let seen = bench.client().pieces(pieces).until_responses(&["POST"], GRACE).run().await;
    assert_clean(&seen, "POST", 200, "POST /case HTTP/1.1").map_err(|why| format!("{why}: {}", seen.text()))?;
    let received = bench.received();
    ensure!(received.len() == 1 && dechunked(received[0].body()) == b"hello world", "backend saw {:?}", bench.lines());
    Ok(())
}
