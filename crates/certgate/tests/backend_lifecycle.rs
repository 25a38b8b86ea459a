//! Backend connection lifecycle against a scripted hostile backend (exact bytes out, exact bytes
//! in recorded): a pooled connection with unread bytes or a closed peer is never reused, so no
//! client receives a response sent for another; requests are sent twice only when idempotent.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use certgate_testkit::{Options, Received, ScriptedBackend, SlowHandshakes, Step};
use serde_json::json;
use support::{Stage, must_put};

fn ok(body: &str) -> Step {
    Step::write(format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}", body.len()))
}

const LATE: &str = "HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nPOISONED";

/// An API at `/{name}` whose service URL is the scripted backend.
async fn route(stage: &Stage, name: &str, backend: &ScriptedBackend) {
    must_put(
        &stage.api,
        &format!("/apis/{name}"),
        json!({"properties": {"displayName": name, "path": name, "serviceUrl": backend.url()}}),
    )
    .await;
}

async fn send(stage: &Stage, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut request = stage.http.request(method, format!("{}{path}", stage.node.gateway));
    if let Some(body) = body {
        request = request.body(body.to_owned());
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

/// The first response on each connection is followed, in a later write, by bytes its framing
/// does not cover; every later request must still get the answer meant for it.
async fn assert_late_bytes_never_reach_the_next_client(first: &'static str, method: &str) {
    let stage = Stage::start();
    let backend = ScriptedBackend::start(None, move |request: &Received| {
        if request.index == 0 && request.request_line().contains("/first") {
            vec![Step::write(first), Step::Sleep(Duration::from_millis(30)), Step::write(LATE)]
        } else {
            vec![ok(&format!("for {}", request.request_line()))]
        }
    })
    .await;
    route(&stage, "late", &backend).await;
    for round in 0..5 {
        let (status, _) = send(&stage, method, &format!("/late/first?round={round}"), None).await;
        assert!(status < 300, "{first:?}: {status}");
        tokio::time::sleep(Duration::from_millis(100)).await;
        let (status, body) = send(&stage, "GET", &format!("/late/second?round={round}"), None).await;
        assert_eq!(status, 200);
        assert_eq!(
            body,
            format!("for GET /second?round={round} HTTP/1.1"),
            "{first:?}: a client got bytes sent after another's response"
        );
    }
    assert!(!stage.node.logs().contains("POISONED"));
}

#[tokio::test]
async fn bytes_after_a_content_length_body_discard_the_connection() {
    assert_late_bytes_never_reach_the_next_client("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst", "GET").await;
}

#[tokio::test]
async fn bytes_after_the_last_chunk_discard_the_connection() {
    assert_late_bytes_never_reach_the_next_client(
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n0\r\n\r\n",
        "GET",
    )
    .await;
}

#[tokio::test]
async fn a_body_after_a_head_response_discards_the_connection() {
    assert_late_bytes_never_reach_the_next_client("HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\n", "HEAD").await;
}

#[tokio::test]
async fn a_body_after_a_204_discards_the_connection() {
    assert_late_bytes_never_reach_the_next_client("HTTP/1.1 204 No Content\r\n\r\n", "GET").await;
}

/// gunicorn closes idle keep-alive connections after 2 s; our pool keeps them longer. A write
/// after the pause must go out on a fresh connection, not fail with 502.
#[tokio::test]
async fn a_backend_closing_idle_connections_gets_no_502_under_a_get_post_mix() {
    let stage = Stage::start();
    let backend =
        ScriptedBackend::start(Some(Duration::from_secs(2)), |r: &Received| vec![ok(&r.request_line())]).await;
    route(&stage, "idle", &backend).await;
    assert_eq!(send(&stage, "GET", "/idle/a", None).await.0, 200);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (status, body) = send(&stage, "POST", "/idle/b", Some("payload")).await;
    assert_eq!((status, body.as_str()), (200, "POST /b HTTP/1.1"));
    let posts = backend.received().iter().filter(|r| r.request_line().starts_with("POST")).count();
    assert_eq!(posts, 1, "the POST reached the backend once");

    // A mix with pauses on both sides of the backend's limit.
    let mut pauses = [0u64, 2100, 150, 1900, 2300, 50, 2050, 0].iter().cycle();
    for n in 0..24 {
        let (status, _) = if n % 2 == 0 {
            send(&stage, "GET", &format!("/idle/g{n}"), None).await
        } else {
            send(&stage, "POST", &format!("/idle/p{n}"), Some("x")).await
        };
        assert_eq!(status, 200, "request {n}\n{}", stage.node.logs());
        tokio::time::sleep(Duration::from_millis(*pauses.next().unwrap() / 4)).await;
    }
}

/// The backend reads a request on a reused connection and closes without answering: it may
/// have acted on it. A POST is not sent again (502); a GET is, once, on a fresh connection.
#[tokio::test]
async fn only_idempotent_requests_are_retried_after_a_silent_close() {
    let (_stage, backend, (status, _)) = after_a_silent_close("POST").await;
    assert_eq!(status, 502);
    let posts: Vec<_> = backend.received().into_iter().filter(|r| r.request_line().starts_with("POST")).collect();
    assert_eq!(posts.len(), 1, "a bodyless POST is never sent twice: {posts:?}");

    let (_stage, backend, answer) = after_a_silent_close("GET").await;
    assert_eq!(answer, (200, "GET /order HTTP/1.1".to_owned()), "a GET is retried on a fresh connection");
    let gets = backend.received().iter().filter(|r| r.request_line().starts_with("GET /order")).count();
    assert_eq!(gets, 2);
    assert_eq!(backend.connections(), 2);
}

/// Sends `method /order` on a warm pooled connection that the backend reads and closes.
async fn after_a_silent_close(method: &str) -> (Stage, ScriptedBackend, (u16, String)) {
    let stage = Stage::start();
    let backend = ScriptedBackend::start(None, |r: &Received| {
        if r.connection == 0 && r.index == 1 { vec![Step::Close] } else { vec![ok(&r.request_line())] }
    })
    .await;
    route(&stage, "silent", &backend).await;
    assert_eq!(send(&stage, "GET", "/silent/warm", None).await.0, 200);
    let answer = send(&stage, method, "/silent/order", None).await;
    (stage, backend, answer)
}

/// RFC 9112 §6.3 from the client's side: Transfer-Encoding wins over Content-Length, which is
/// not forwarded; a signed Content-Length is no framing at all; a transfer coding other than
/// chunked is refused rather than passed on undeclared.
#[tokio::test]
async fn ambiguous_framing_is_resolved_or_refused_never_forwarded() {
    let stage = Stage::start();
    let backend = ScriptedBackend::start(None, |r: &Received| {
        if r.request_line().contains("/both") {
            vec![Step::write(
                "HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            )]
        } else if r.request_line().contains("/gzip") {
            vec![Step::write("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")]
        } else if r.request_line().contains("/signed") {
            vec![Step::write("HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\nhello")]
        } else {
            vec![ok("plain")]
        }
    })
    .await;
    route(&stage, "framing", &backend).await;
    let response = stage.http.get(format!("{}/framing/both", stage.node.gateway)).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_ne!(response.headers().get("content-length").map(|v| v.as_bytes()), Some(&b"100"[..]));
    assert_eq!(response.text().await.unwrap(), "hello");
    assert_eq!(send(&stage, "GET", "/framing/signed", None).await.0, 502);
    assert_eq!(send(&stage, "GET", "/framing/gzip", None).await.0, 502, "a coding we would pass on undeclared");
    assert_eq!(send(&stage, "GET", "/framing/after", None).await, (200, "plain".to_owned()));
}

/// RFC 9112 §3.2: no Host, or two, is a 400 and nothing reaches the backend.
#[tokio::test]
async fn requests_without_exactly_one_host_are_refused() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let stage = Stage::start();
    let backend = ScriptedBackend::start(None, |r: &Received| vec![ok(&r.request_line())]).await;
    route(&stage, "hosts", &backend).await;
    let gateway = stage.node.gateway.trim_start_matches("http://").to_owned();
    for raw in [
        "GET /hosts/none HTTP/1.1\r\n\r\n",
        "GET /hosts/two HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        "GET /hosts/two10 HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n",
    ] {
        let mut stream = tokio::net::TcpStream::connect(&gateway).await.unwrap();
        stream.write_all(raw.as_bytes()).await.unwrap();
        let mut answer = vec![0u8; 4096];
        let n = stream.read(&mut answer).await.unwrap();
        let answer = String::from_utf8_lossy(&answer[..n]);
        assert!(answer.starts_with("HTTP/1.1 400") || answer.starts_with("HTTP/1.0 400"), "{raw:?}: {answer}");
    }
    assert!(backend.received().is_empty(), "nothing was forwarded: {:?}", backend.received());
    assert_eq!(send(&stage, "GET", "/hosts/one", None).await.0, 200, "one Host is forwarded");
}

/// A backend announcing `Keep-Alive: timeout=2` drops a connection idle that long even when its
/// close has not reached us yet (here: it reads the request and closes without answering). The
/// pool retires such a connection a second early, so a POST after 2.5 s still gets through.
#[tokio::test]
async fn an_announced_keep_alive_timeout_is_honoured() {
    let stage = Stage::start();
    let backend = ScriptedBackend::start(None, |r: &Received| {
        if r.idle_for > Duration::from_secs(2) {
            vec![Step::Close]
        } else {
            let line = r.request_line();
            vec![Step::write(format!(
                "HTTP/1.1 200 OK\r\nKeep-Alive: timeout=2\r\nContent-Length: {}\r\n\r\n{line}",
                line.len()
            ))]
        }
    })
    .await;
    route(&stage, "ka", &backend).await;
    assert_eq!(send(&stage, "GET", "/ka/a", None).await.0, 200);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(send(&stage, "GET", "/ka/b", None).await.0, 200);
    assert_eq!(backend.connections(), 1, "reused within the announced time");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(send(&stage, "POST", "/ka/c", None).await, (200, "POST /c HTTP/1.1".to_owned()));
    assert_eq!(backend.connections(), 2);
}

/// A client's malformed chunked body is the client's fault: 400, not 502, and the backend
/// connection that carried the start of it is not kept.
#[tokio::test]
async fn a_malformed_chunked_request_body_is_a_400() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let stage = Stage::start();
    let backend = ScriptedBackend::start(None, |r: &Received| vec![ok(&r.request_line())]).await;
    route(&stage, "chunks", &backend).await;
    let gateway = stage.node.gateway.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&gateway).await.unwrap();
    stream
        .write_all(b"POST /chunks/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert_eq!(send(&stage, "GET", "/chunks/after", None).await, (200, "GET /after HTTP/1.1".to_owned()));
}

/// A backend that reads only the request head, answers 413 at once and stops reading (as an
/// upload limit does). The client, still uploading 8 MiB, gets the 413 within a second; the
/// connection is not reused for the next request.
#[tokio::test]
async fn an_early_answer_reaches_the_client_while_it_is_still_uploading() {
    let stage = Stage::start();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut stream, _)) = listener.accept().await {
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).await.unwrap_or(0) == 1 {
                    head.push(byte[0]);
                }
                let answer = if head.starts_with(b"POST") { "413 Payload Too Large" } else { "200 OK" };
                let response = format!("HTTP/1.1 {answer}\r\nContent-Length: 4\r\n\r\nnope");
                let _ = stream.write_all(response.as_bytes()).await;
                // Never reads the body; keeps the connection open well past the test.
                tokio::time::sleep(Duration::from_secs(30)).await;
            });
        }
    });
    must_put(
        &stage.api,
        "/apis/early",
        json!({"properties": {"displayName": "early", "path": "early", "serviceUrl": format!("http://{addr}")}}),
    )
    .await;
    let started = std::time::Instant::now();
    let response =
        stage.http.post(format!("{}/early/upload", stage.node.gateway)).body(vec![b'x'; 8 << 20]).send().await.unwrap();
    assert_eq!(response.status(), 413, "{}", stage.node.logs());
    assert!(started.elapsed() < Duration::from_secs(1), "took {:?}", started.elapsed());
    assert_eq!(response.text().await.unwrap_or_default(), "nope");
    // A fresh client: the gateway closes the downstream connection whose upload it cut short,
    // and the client's pool may not have noticed yet (what is checked is the backend side).
    let next = reqwest::Client::new().get(format!("{}/early/next", stage.node.gateway)).send().await.unwrap();
    assert_eq!(next.status(), 200);
    assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 2, "the interrupted connection was not reused");
}

#[tokio::test]
async fn request_transfer_codings_other_than_chunked_are_not_implemented() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let stage = Stage::start();
    let backend = ScriptedBackend::start(None, |r: &Received| vec![ok(&r.request_line())]).await;
    route(&stage, "codings", &backend).await;
    let gateway = stage.node.gateway.trim_start_matches("http://").to_owned();
    let mut client = tokio::net::TcpStream::connect(&gateway).await.unwrap();
    client
        .write_all(
            b"POST /codings/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        )
        .await
        .unwrap();
    let mut answer = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), client.read(&mut answer)).await.unwrap().unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 501"), "{answer}");
    assert!(answer.contains("activityId"), "{answer}");
    assert!(backend.received().is_empty(), "nothing was forwarded");
}

/// The backend sends a head and closes (or resets) before a byte of its body: nothing has gone
/// downstream yet, so the client gets a 502 with an activity id. When it breaks off after part
/// of the body, the client's message is aborted (never a clean short body) and one WARN line
/// names the activity, API, backend and cause.
#[tokio::test]
async fn failures_after_the_head_are_a_502_or_an_aborted_message() {
    let stage = Stage::start();
    let backend = ScriptedBackend::start(None, |r: &Received| {
        let head = "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n";
        if r.request_line().contains("/before") {
            vec![Step::write(head), Step::Close]
        } else {
            vec![Step::write(head), Step::write([b'a'; 5000]), Step::Sleep(Duration::from_millis(300)), Step::Close]
        }
    })
    .await;
    route(&stage, "broken", &backend).await;
    let (status, body) = send(&stage, "GET", "/broken/before", None).await;
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("activityId"), "{body}");

    let response = stage.http.get(format!("{}/broken/midway", stage.node.gateway)).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.bytes().await.is_err(), "a truncated body must not read as complete");
    // The node's log arrives through a pipe: give it a moment.
    let mut logs = stage.node.logs();
    for _ in 0..50 {
        if logs.contains("broke off after its head") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        logs = stage.node.logs();
    }
    let line = logs
        .lines()
        .find(|l| l.contains("broke off after its head"))
        .unwrap_or_else(|| panic!("no log line for the aborted body:\n{logs}"));
    for field in ["WARN", "activity_id=", "api=\"broken\"", "backend=", "cause=backend closed the connection mid-body"]
    {
        assert!(line.contains(field), "{field} missing: {line}");
    }
}

/// `--backend-read-timeout`: a backend that pauses within a body for longer has the response
/// cut — a 502 while nothing went downstream yet, an aborted message with its WARN line after
/// that — and one that keeps sending, however long the whole body takes, is not cut.
#[tokio::test]
async fn a_backend_pausing_within_a_body_beyond_the_read_timeout_is_cut() {
    let stage = Stage::start_with(&["--backend-read-timeout", "1s"]);
    let backend = ScriptedBackend::start(None, |r: &Received| {
        let line = r.request_line();
        let pause = |ms| Step::Sleep(Duration::from_millis(ms));
        if line.contains("/stall-first") {
            vec![Step::write("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"), pause(3000), Step::write("0123456789")]
        } else if line.contains("/stall-midway") {
            let head = "HTTP/1.1 200 OK\r\nContent-Length: 10000\r\n\r\n";
            vec![Step::write(head), Step::write([b'a'; 5000]), pause(3000), Step::write([b'b'; 5000])]
        } else {
            let mut steps = vec![Step::write("HTTP/1.1 200 OK\r\nContent-Length: 4000\r\n\r\n")];
            for _ in 0..4 {
                steps.extend([pause(600), Step::write([b'c'; 1000])]);
            }
            steps
        }
    })
    .await;
    route(&stage, "slow", &backend).await;

    let started = std::time::Instant::now();
    let (status, body) = send(&stage, "GET", "/slow/stall-first", None).await;
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("activityId"), "{body}");
    assert!(started.elapsed() < Duration::from_millis(2500), "cut after {:?}", started.elapsed());
    let line = stage.node.wait_for_log("request failed");
    assert!(line.contains("status=502") && line.contains("sent nothing of the response body for 1s"), "{line}");

    let started = std::time::Instant::now();
    let response = stage.http.get(format!("{}/slow/stall-midway", stage.node.gateway)).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.bytes().await.is_err(), "a body cut by the timeout must not read as complete");
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(900) && elapsed < Duration::from_millis(2500), "cut after {elapsed:?}");
    let line = stage.node.wait_for_log("broke off after its head");
    assert!(line.contains("sent nothing of the response body for 1s"), "{line}");

    let started = std::time::Instant::now();
    let (status, body) = send(&stage, "GET", "/slow/steady", None).await;
    assert_eq!((status, body.len()), (200, 4000));
    assert!(started.elapsed() > Duration::from_secs(2), "the whole body took longer than the timeout");
}

/// A backend slow to take new connections (one busy streaming to the connections it has answers
/// new handshakes late): a request that finds no idle connection is served by the first one
/// released, not after its own handshake; the connect it started goes on and joins the pool.
#[tokio::test]
async fn a_request_finding_no_idle_connection_takes_the_first_one_released() {
    let stage = Stage::start();
    let server = support::trusted_backend_identity(&stage.api, "waiting-ca", "waiting-client").await;
    let held = Duration::from_secs(4);
    let options = Options {
        tls: Some(Options::tls_presenting(&server)),
        slow_handshakes: Some(SlowHandshakes { after: 1, delay: held }),
        ..Options::default()
    };
    let backend = ScriptedBackend::start_with(options, |r: &Received| {
        vec![Step::Sleep(Duration::from_millis(300)), ok(&r.request_line())]
    })
    .await;
    support::expose(&stage.api, "waiting", &backend.url(), json!({}), "waiting-client").await;
    assert_eq!(send(&stage, "GET", "/waiting/warm", None).await.0, 200, "{}", stage.node.logs());

    // Two at once: one takes the pooled connection, the other finds none and waits.
    let started = std::time::Instant::now();
    let (a, b) = tokio::join!(send(&stage, "GET", "/waiting/a", None), send(&stage, "GET", "/waiting/b", None));
    let took = started.elapsed();
    assert_eq!((a.0, a.1.as_str()), (200, "GET /a HTTP/1.1"));
    assert_eq!((b.0, b.1.as_str()), (200, "GET /b HTTP/1.1"));
    assert!(took < held / 2, "both answered in {took:?}: the second waited for its own handshake");
    let lines: Vec<_> = backend.received().iter().map(|r| (r.connection, r.request_line())).collect();
    assert!(lines.iter().all(|(connection, _)| *connection == 0), "all on the pooled connection: {lines:?}");

    // The connect the waiting request started completes on its own and is pooled: two at once
    // again, each on a connection of its own, with no new one.
    tokio::time::sleep(held).await;
    assert_eq!(backend.connections(), 2, "the connect went on");
    let started = std::time::Instant::now();
    let (a, b) = tokio::join!(send(&stage, "GET", "/waiting/c", None), send(&stage, "GET", "/waiting/d", None));
    assert_eq!((a.0, b.0), (200, 200));
    let took = started.elapsed();
    assert!(took < Duration::from_millis(550), "served side by side, in {took:?}");
    let used: std::collections::BTreeSet<_> = backend.received().iter().skip(3).map(|r| r.connection).collect();
    assert_eq!(
        used,
        [0, 1].into(),
        "{:?}",
        backend.received().iter().map(|r| (r.connection, r.request_line())).collect::<Vec<_>>()
    );
    assert_eq!(backend.connections(), 2);
}
