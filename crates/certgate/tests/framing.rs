//! The framing and lifecycle table (RFC 9112 §6, §3.2, §9.3; RFC 9110): a hostile scripted
//! backend on one side (exact bytes out, exact bytes in recorded, connections watched), a raw
//! TCP client on the other, one node for every case. Each case asserts what the client saw
//! (status, headers, body bytes, whether its connection was closed or the message aborted) and
//! what the backend saw (exact request bytes, connections, requests). Every case runs and the
//! test then lists all that failed, so one report shows the whole state of the gateway.
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use certgate_testkit::{
    End, Framing, Identity, KeyKind, Options, Piece, RawClient, RawOutcome, RawResponse, Reading, Received,
    ScriptedBackend, Step,
};
use serde_json::{Value, json};
use support::{Stage, must_put, upload_certificate};

/// How long a client keeps reading after its responses, to see whether the gateway closes.
const GRACE: Duration = Duration::from_millis(150);
/// Cases run this many at a time (the machine has two cores, shared).
const PARALLEL: usize = 6;

type Check = Result<(), String>;

macro_rules! ensure {
    ($cond:expr, $($why:tt)+) => {
        if !$cond {
            return Err(format!($($why)+));
        }
    };
}

// ---------------------------------------------------------------------------------------------
// The tests

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn framing_and_lifecycle_table() {
    let table = Table::start().await;
    let replies = reply_cases();
    let customs = custom_cases();
    let timed = timed_cases();
    let total = replies.len() + customs.len() + timed.len();
    assert!(total >= 60, "the table has {total} cases");

    let started = Instant::now();
    let limit = Arc::new(tokio::sync::Semaphore::new(PARALLEL));
    let mut running = tokio::task::JoinSet::new();
    for case in replies {
        let (table, limit) = (table.clone(), limit.clone());
        running.spawn(async move {
            let _permit = limit.acquire_owned().await.unwrap();
            (case.name.to_owned(), run_reply(table, case).await)
        });
    }
    for (name, case) in customs {
        let (table, limit) = (table.clone(), limit.clone());
        running.spawn(async move {
            let _permit = limit.acquire_owned().await.unwrap();
            (name.to_owned(), case(table).await)
        });
    }
    let mut results: Vec<(String, Check)> = running.join_all().await;
    // Cases that measure time run alone, so the machine's load does not decide them.
    for (name, case) in timed {
        results.push((name.to_owned(), case(table.clone()).await));
    }
    results.sort_by(|a, b| a.0.cmp(&b.0));
    let failed: Vec<String> =
        results.iter().filter_map(|(name, result)| result.as_ref().err().map(|why| format!("{name}: {why}"))).collect();
    println!("{total} cases in {:?}, {} failed", started.elapsed(), failed.len());
    for (name, result) in &results {
        println!("{} {name}", if result.is_ok() { "pass" } else { "FAIL" });
    }
    assert!(failed.is_empty(), "{} of {total} cases failed:\n\n{}", failed.len(), failed.join("\n\n"));
}

/// A backend closing idle connections after 2 s (gunicorn's default) under a GET/POST mix from
/// 8 concurrent clients whose pauses cluster around those 2 s: not one error in 2 000
/// requests, every answer the one meant for its request, and no POST sent twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn idle_closing_backend_under_a_concurrent_get_post_mix() {
    const CLIENTS: u64 = 8;
    const PER_CLIENT: u64 = 250;
    let stage = Stage::start();
    let backend = ScriptedBackend::start(Some(Duration::from_secs(2)), |r: &Received| {
        vec![ok(&format!("{} {}", r.request_line(), r.body().len()))]
    })
    .await;
    must_put(
        &stage.api,
        "/apis/mix",
        json!({"properties": {"displayName": "mix", "path": "mix", "serviceUrl": backend.url()}}),
    )
    .await;
    let gateway = stage.node.gateway.clone();
    let started = Instant::now();
    let mut clients = tokio::task::JoinSet::new();
    for client in 0..CLIENTS {
        let gateway = gateway.clone();
        clients.spawn(async move {
            let http = reqwest::Client::new();
            let mut rng = SplitMix64(0x5eed_0000 + client);
            let mut errors = Vec::new();
            for n in 0..PER_CLIENT {
                let post = rng.below(2) == 0;
                let id = format!("{}{client}-{n}", if post { "p" } else { "g" });
                let body = "x".repeat(rng.below(4096) as usize + 1);
                let request = if post {
                    http.post(format!("{gateway}/mix/{id}")).body(body.clone())
                } else {
                    http.get(format!("{gateway}/mix/{id}"))
                };
                let expected =
                    if post { format!("POST /{id} HTTP/1.1 {}", body.len()) } else { format!("GET /{id} HTTP/1.1 0") };
                match request.send().await {
                    Ok(response) => {
                        let status = response.status().as_u16();
                        let text = response.text().await.unwrap_or_default();
                        if status != 200 || text != expected {
                            errors.push(format!("{id}: {status} {text:?}"));
                        }
                    }
                    Err(error) => errors.push(format!("{id}: {error}")),
                }
                if rng.below(12) == 0 {
                    tokio::time::sleep(rng.pause_clustered_at_two_seconds()).await;
                }
            }
            errors
        });
    }
    let errors: Vec<String> = clients.join_all().await.into_iter().flatten().collect();
    let elapsed = started.elapsed();
    let received = backend.received();
    let mut posts: HashMap<String, usize> = HashMap::new();
    for request in received.iter().filter(|r| r.request_line().starts_with("POST")) {
        *posts.entry(request.request_line()).or_default() += 1;
    }
    let repeated: Vec<_> = posts.iter().filter(|(_, n)| **n > 1).collect();
    println!(
        "{} requests in {elapsed:?} over {} backend connections, {} errors",
        CLIENTS * PER_CLIENT,
        backend.connections(),
        errors.len()
    );
    assert!(errors.is_empty(), "{} errors:\n{}\n{}", errors.len(), errors.join("\n"), failures(&stage));
    assert!(repeated.is_empty(), "POSTs sent twice: {repeated:?}");
    assert!(received.len() as u64 >= CLIENTS * PER_CLIENT, "the backend saw {} requests", received.len());
    assert!(backend.connections() > CLIENTS as usize, "the backend's idle closes were exercised");
}

/// The node's failure log lines, for assertion messages.
fn failures(stage: &Stage) -> String {
    stage
        .node
        .logs()
        .lines()
        .filter(|l| l.contains("WARN") || l.contains("ERROR"))
        .take(20)
        .collect::<Vec<_>>()
        .join("\n")
}

/// A seeded generator (SplitMix64): the same pauses on every run.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// In [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// 0–2.5 s: three in four near 2 s (a bell of about ±0.12 s), the rest spread evenly.
    fn pause_clustered_at_two_seconds(&mut self) -> Duration {
        let seconds = if self.below(4) < 3 {
            let bell: f64 = (0..4).map(|_| self.unit()).sum::<f64>() - 2.0;
            2.0 + 0.2 * bell
        } else {
            2.5 * self.unit()
        };
        Duration::from_secs_f64(seconds.clamp(0.0, 2.5))
    }
}

// ---------------------------------------------------------------------------------------------
// The node, a backend per case, and what the client and the backend saw

struct Table {
    stage: Stage,
    gateway: SocketAddr,
    next_api: AtomicUsize,
    /// The TLS backends' identity, issued by a CA the node trusts.
    tls_server: Identity,
}

/// The certificate the node presents to TLS backends.
const CLIENT_CERTIFICATE: &str = "framing-client";

impl Table {
    async fn start() -> Arc<Table> {
        let stage = Stage::start();
        let gateway = stage.node.gateway.trim_start_matches("http://").parse().unwrap();
        let ca = Identity::ca("Framing Backend CA");
        must_put(
            &stage.api,
            "/caCertificates/framing-ca",
            json!({"properties": {"data": ca.cert_pem, "storeName": "Root"}}),
        )
        .await;
        let client = Identity::self_signed_client(CLIENT_CERTIFICATE, KeyKind::EcdsaP256);
        upload_certificate(&stage.api, CLIENT_CERTIFICATE, &client).await;
        let tls_server = ca.server("localhost");
        Arc::new(Table { stage, gateway, next_api: AtomicUsize::new(0), tls_server })
    }

    /// A scripted backend behind an API of its own.
    async fn bench(&self, options: Options, script: impl Fn(&Received) -> Vec<Step> + Send + Sync + 'static) -> Bench {
        let name = format!("c{}", self.next_api.fetch_add(1, Ordering::SeqCst));
        let tls = options.tls.is_some();
        let backend = ScriptedBackend::start_with(options, script).await;
        if tls {
            support::expose(&self.stage.api, &name, &backend.url(), json!({}), CLIENT_CERTIFICATE).await;
        } else {
            must_put(
                &self.stage.api,
                &format!("/apis/{name}"),
                json!({"properties": {"displayName": name, "path": name, "serviceUrl": backend.url()}}),
            )
            .await;
        }
        Bench { backend, prefix: format!("/{name}"), gateway: self.gateway }
    }

    async fn plain(&self, script: impl Fn(&Received) -> Vec<Step> + Send + Sync + 'static) -> Bench {
        self.bench(Options::default(), script).await
    }

    fn tls_options(&self) -> Options {
        Options { tls: Some(Options::tls_presenting(&self.tls_server)), ..Options::default() }
    }

    /// The log line carrying `activity_id` (every 502 is logged once with its cause).
    async fn log_line(&self, activity_id: &str) -> Result<String, String> {
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            if let Some(line) = self.stage.node.logs().lines().find(|l| l.contains(activity_id)) {
                return Ok(line.to_owned());
            }
            ensure!(Instant::now() < deadline, "no log line names activity {activity_id}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// One case's backend and the API in front of it.
struct Bench {
    backend: ScriptedBackend,
    /// The API's path: `/cN`.
    prefix: String,
    gateway: SocketAddr,
}

impl Bench {
    fn client(&self) -> RawClient {
        RawClient::new(self.gateway)
    }

    /// `{method} {prefix}{path}` with a Host and `extra` header lines, read until its response
    /// is complete (plus the grace period).
    async fn request(&self, method: &str, path: &str, extra: &str) -> RawOutcome {
        let head = format!("{method} {}{path} HTTP/1.1\r\nHost: t\r\n{extra}\r\n", self.prefix);
        self.client().send(head).until_responses(&[method], GRACE).run().await
    }

    /// A GET on a fresh client connection gets its own answer (never bytes meant for another).
    async fn follow_up(&self) -> Check {
        let seen = self.request("GET", "/next", "").await;
        let response = seen.response(0).ok_or_else(|| format!("the follow-up got no response: {}", seen.text()))?;
        ensure!(
            response.status == 200 && response.body == b"GET /next HTTP/1.1",
            "the follow-up got an answer not meant for it: {}",
            seen.text()
        );
        Ok(())
    }

    fn received(&self) -> Vec<Received> {
        self.backend.received()
    }

    /// The request lines the backend saw, for failure messages.
    fn lines(&self) -> Vec<String> {
        self.received().iter().map(|r| format!("conn {} #{}: {}", r.connection, r.index, r.request_line())).collect()
    }

    /// After the case's request and a follow-up: two requests, the first as sent, and the
    /// backend connection reused or discarded (then closed, not left open) as expected.
    async fn assert_after(&self, seen: &Seen, first_line: &str) -> Check {
        self.follow_up().await?;
        let received = self.received();
        ensure!(received.len() == 2, "the backend saw {} requests, not 2: {:?}", received.len(), self.lines());
        ensure!(received[0].request_line() == first_line, "the backend saw {:?}", received[0].request_line());
        let after = match seen {
            Seen::Clean(after) => *after,
            Seen::BadGateway(_) | Seen::Aborted => After::Discarded,
        };
        match after {
            After::Reused => ensure!(
                received[1].connection == 0 && self.backend.connections() == 1,
                "the backend connection should have been reused: {:?}",
                self.lines()
            ),
            After::Discarded => {
                ensure!(
                    received[1].connection == 1 && self.backend.connections() == 2,
                    "the backend connection should have been discarded: {:?}",
                    self.lines()
                );
                let log = self.backend.wait_closed(0, Duration::from_secs(2)).await;
                ensure!(log.is_some_and(|l| l.is_closed()), "the discarded backend connection was left open");
            }
            After::Either => {}
        }
        Ok(())
    }
}

fn ok(body: &str) -> Step {
    Step::write(format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}", body.len()))
}

fn w(bytes: impl AsRef<[u8]>) -> Step {
    Step::write(bytes)
}

fn sleep(ms: u64) -> Step {
    Step::Sleep(Duration::from_millis(ms))
}

/// Whether the request targets `/case` (below the API prefix).
fn is_case(r: &Received) -> bool {
    r.request_line().split(' ').nth(1).is_some_and(|target| target.starts_with("/case"))
}

/// Answers `/case` with `steps`, every other request with its own request line.
fn on_case(steps: Vec<Step>) -> impl Fn(&Received) -> Vec<Step> + Send + Sync + 'static {
    move |r| if is_case(r) { steps.clone() } else { vec![ok(&r.request_line())] }
}

fn echo(r: &Received) -> Vec<Step> {
    vec![ok(&r.request_line())]
}

/// What becomes of the backend connection after a clean response.
#[derive(Clone, Copy, Debug)]
enum After {
    Reused,
    Discarded,
    /// The RFC leaves it open (a repaired message).
    Either,
}

/// What the client must see.
#[derive(Clone, Copy, Debug)]
enum Expect {
    /// One complete response with this status and exact body; the client connection stays open.
    Clean { status: u16, body: &'static str, after: After },
    /// APIM's 502 with an activity id, logged with its cause; the backend connection discarded.
    BadGateway,
    /// The head arrived, the message never completed, the connection closed: never a clean
    /// response with a short body.
    Aborted,
    /// 502 when nothing was sent yet, else aborted.
    BadGatewayOrAborted,
    /// The RFC allows any of these (reject, or repair).
    OneOf(&'static [Expect]),
}

const fn clean(body: &'static str, after: After) -> Expect {
    Expect::Clean { status: 200, body, after }
}

/// What the client did see, as far as the backend side of a case depends on it.
enum Seen {
    Clean(After),
    BadGateway(String),
    Aborted,
}

fn judge(seen: &RawOutcome, method: &str, expect: Expect) -> Result<Seen, String> {
    match expect {
        Expect::Clean { status, body, after } => {
            assert_clean(seen, method, status, body)?;
            Ok(Seen::Clean(after))
        }
        Expect::BadGateway => bad_gateway(seen).map(Seen::BadGateway),
        Expect::Aborted => aborted(seen).map(|()| Seen::Aborted),
        Expect::BadGatewayOrAborted => judge(seen, method, Expect::OneOf(&[Expect::BadGateway, Expect::Aborted])),
        Expect::OneOf(options) => {
            let mut reasons = Vec::new();
            for option in options {
                match judge(seen, method, *option) {
                    Ok(judged) => return Ok(judged),
                    Err(why) => reasons.push(why),
                }
            }
            Err(format!("none of the allowed outcomes: {}", reasons.join("; ")))
        }
    }
}

fn assert_clean(seen: &RawOutcome, method: &str, status: u16, body: &str) -> Check {
    let parsed = &seen.parsed;
    let response = seen.response(0).ok_or("no complete response")?;
    ensure!(response.status == status, "status {} (expected {status})", response.status);
    // RFC 9110 §6.2: an intermediary sends its own version, never the backend's.
    ensure!(response.minor_version == 1, "an HTTP/1.{} response to an HTTP/1.1 client", response.minor_version);
    ensure!(response.body == body.as_bytes(), "body {:?} (expected {body:?})", response.body_text());
    ensure!(parsed.finals().count() == 1 && parsed.rest.is_empty(), "bytes beyond the one response");
    ensure!(parsed.error.is_none() && parsed.cut_off.is_none(), "garbage after the response");
    ensure!(
        seen.end == End::Open,
        "the client connection ended ({:?}): a backend's framing must not close it",
        seen.end
    );
    assert_sane_framing(response, method)?;
    assert_no_hop_by_hop(response)
}

/// Downstream framing is never ambiguous: one Content-Length at most, never with
/// Transfer-Encoding, matching the body; none at all where no body can be.
fn assert_sane_framing(response: &RawResponse, method: &str) -> Check {
    let lengths: Vec<_> = response.header_all("content-length").collect();
    let chunked = response.header("transfer-encoding").is_some();
    ensure!(lengths.len() <= 1, "{} Content-Length fields", lengths.len());
    ensure!(lengths.is_empty() || !chunked, "both Content-Length and Transfer-Encoding");
    let no_body = response.status < 200 || response.status == 204;
    ensure!(!no_body || (lengths.is_empty() && !chunked), "framing fields on a {} response", response.status);
    if let Some(length) = lengths.first()
        && method != "HEAD"
        && response.status != 304
        && !no_body
    {
        let length: Option<usize> = std::str::from_utf8(length).ok().and_then(|l| l.trim().parse().ok());
        ensure!(length == Some(response.body.len()), "Content-Length does not match the body");
    }
    Ok(())
}

fn assert_no_hop_by_hop(response: &RawResponse) -> Check {
    for name in ["keep-alive", "proxy-connection", "proxy-authenticate", "upgrade", "trailer", "te"] {
        ensure!(response.header(name).is_none(), "hop-by-hop {name} reached the client");
    }
    for value in response.header_all("connection") {
        ensure!(
            value.eq_ignore_ascii_case(b"keep-alive"),
            "Connection: {:?} reached the client",
            String::from_utf8_lossy(value)
        );
    }
    Ok(())
}

/// APIM's anonymous 502: status code, message and activity id, nothing else.
fn bad_gateway(seen: &RawOutcome) -> Result<String, String> {
    let response = seen.response(0).ok_or("no complete response")?;
    ensure!(response.status == 502, "status {} (expected 502)", response.status);
    let json: Value =
        serde_json::from_slice(&response.body).map_err(|_| format!("502 body not JSON: {}", response.body_text()))?;
    let id = json["activityId"].as_str().unwrap_or_default().to_owned();
    ensure!(id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()), "no activity id: {json}");
    ensure!(json["statusCode"] == 502 && json.as_object().is_some_and(|o| o.len() == 3), "502 body: {json}");
    Ok(id)
}

/// The head arrived, the message did not complete, and the connection ended.
fn aborted(seen: &RawOutcome) -> Check {
    ensure!(seen.parsed.finals().count() == 0, "a complete response arrived (a clean short body?)");
    let head = seen.parsed.cut_off.as_ref().ok_or("no response head arrived before the end")?;
    ensure!(head.status == 200, "the cut-off response has status {}", head.status);
    ensure!(seen.closed(), "the connection was not closed ({:?})", seen.end);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Response side: what a backend sends, what the client must see

struct Reply {
    name: &'static str,
    method: &'static str,
    steps: Vec<Step>,
    expect: Expect,
    /// Headers that must not reach the client (when the response is clean).
    absent: &'static [&'static str],
    /// Headers the client must see with exactly this value (when the response is clean).
    present: &'static [(&'static str, &'static str)],
}

fn reply(name: &'static str, steps: Vec<Step>, expect: Expect) -> Reply {
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

async fn run_reply(table: Arc<Table>, case: Reply) -> Check {
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

const OK: &str = "HTTP/1.1 200 OK\r\n";
const HELLO: &str = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
const CHUNKED: &str = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";

fn head(fields: &str) -> String {
    format!("{OK}{fields}\r\n")
}

fn reply_cases() -> Vec<Reply> {
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

// ---------------------------------------------------------------------------------------------
// Cases with a shape of their own

type CaseFuture = Pin<Box<dyn Future<Output = Check> + Send>>;
type Case = (&'static str, fn(Arc<Table>) -> CaseFuture);

macro_rules! cases {
    ($($case:ident),* $(,)?) => {
        vec![$((stringify!($case), (|table| Box::pin($case(table))) as fn(Arc<Table>) -> CaseFuture)),*]
    };
}

fn custom_cases() -> Vec<Case> {
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
        request_without_host_is_400,
        request_with_two_hosts_is_400,
        http10_request_with_two_hosts_is_400,
        http10_request_without_host_is_forwarded,
        http10_client_gets_a_chunked_backend_body_unchunked,
        request_with_cl_and_te_is_never_forwarded_ambiguously,
        request_with_te_then_cl_is_never_forwarded_ambiguously,
        request_te_gzip_chunked_is_501,
        request_te_gzip_in_two_fields_is_501,
        request_te_gzip_is_400_and_closed,
        request_te_chunked_twice_is_refused,
        request_te_on_http10_is_400,
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
        request_two_different_cl_fields_is_400,
        request_cl_with_sign_is_400,
        request_obs_fold_is_400,
        request_nul_in_field_is_400,
        request_whitespace_before_colon_is_400,
        request_hop_by_hop_fields_never_reach_the_backend,
        request_connection_close_is_the_clients_alone,
        request_pipelined_after_connection_close_is_not_served,
        request_absolute_form_target,
        request_bodyless_post,
    ]
}

fn timed_cases() -> Vec<Case> {
    cases![
        early_413_while_the_client_uploads,
        early_401_to_expect_100_continue_without_the_body,
        expect_100_continue_gets_100_then_the_answer,
        slow_request_head_and_body,
    ]
}

/// A request on a warm pooled connection that the backend reads and then closes or resets.
async fn after_warm_connection_fails(table: &Table, method: &str, body: &str, how: Step) -> (Bench, RawOutcome) {
    let bench = table
        .plain(move |r: &Received| if r.connection == 0 && r.index == 1 { vec![how.clone()] } else { echo(r) })
        .await;
    let _ = bench.request("GET", "/warm", "").await;
    let head =
        format!("{method} {}/order HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n{body}", bench.prefix, body.len());
    let seen = bench.client().send(head).until_responses(&[method], GRACE).run().await;
    (bench, seen)
}

async fn silent_close_get_is_retried_once_on_a_fresh_connection(table: Arc<Table>) -> Check {
    let (bench, seen) = after_warm_connection_fails(&table, "GET", "", Step::Close).await;
    assert_clean(&seen, "GET", 200, "GET /order HTTP/1.1").map_err(|why| format!("{why}: {}", seen.text()))?;
    let orders: Vec<_> = bench.received().into_iter().filter(|r| r.request_line().starts_with("GET /order")).collect();
    ensure!(orders.len() == 2, "the GET reached the backend {} times: {:?}", orders.len(), bench.lines());
    ensure!(orders[1].connection == 1 && bench.backend.connections() == 2, "not retried on a fresh connection");
    Ok(())
}

async fn silent_close_post_is_not_retried(table: Arc<Table>) -> Check {
    let (bench, seen) = after_warm_connection_fails(&table, "POST", "abc", Step::Close).await;
    let id = bad_gateway(&seen).map_err(|why| format!("{why}: {}", seen.text()))?;
    table.log_line(&id).await?;
    let posts = bench.received().into_iter().filter(|r| r.request_line().starts_with("POST")).count();
    ensure!(posts == 1, "the POST reached the backend {posts} times");
    Ok(())
}

async fn reset_before_any_byte_get_is_retried(table: Arc<Table>) -> Check {
    let (bench, seen) = after_warm_connection_fails(&table, "GET", "", Step::Reset).await;
    assert_clean(&seen, "GET", 200, "GET /order HTTP/1.1").map_err(|why| format!("{why}: {}", seen.text()))?;
    ensure!(bench.received().len() == 3, "warm-up, the reset GET and its retry: {:?}", bench.lines());
    Ok(())
}

async fn pipelined_requests_get_their_own_responses_in_order(table: Arc<Table>) -> Check {
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

async fn pipelined_behind_a_slow_response_stay_in_order(table: Arc<Table>) -> Check {
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

async fn pipelined_head_then_get(table: Arc<Table>) -> Check {
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
async fn tls_case(table: &Table, steps: Vec<Step>) -> (Bench, RawOutcome) {
    let bench = table.bench(table.tls_options(), on_case(steps)).await;
    let seen = bench.request("GET", "/case", "").await;
    (bench, seen)
}

async fn tls_content_length_response(table: Arc<Table>) -> Check {
    let (bench, seen) = tls_case(&table, vec![w(HELLO)]).await;
    let judged = judge(&seen, "GET", clean("hello", After::Reused)).map_err(|why| format!("{why}: {}", seen.text()))?;
    bench.assert_after(&judged, "GET /case HTTP/1.1").await
}

async fn tls_until_close_with_close_notify(table: Arc<Table>) -> Check {
    let (bench, seen) = tls_case(&table, vec![w("HTTP/1.0 200 OK\r\n\r\nuntil close"), Step::Close]).await;
    let judged =
        judge(&seen, "GET", clean("until close", After::Discarded)).map_err(|why| format!("{why}: {}", seen.text()))?;
    bench.assert_after(&judged, "GET /case HTTP/1.1").await
}

/// RFC 9112 §9.8: a close without close_notify may be a truncation; a body delimited by the
/// close is then incomplete.
async fn tls_until_close_truncated_without_close_notify(table: Arc<Table>) -> Check {
    let steps = vec![w("HTTP/1.0 200 OK\r\n\r\nuntil close"), sleep(100), Step::CloseWithoutNotify];
    let (bench, seen) = tls_case(&table, steps).await;
    let judged = judge(&seen, "GET", Expect::Aborted).map_err(|why| format!("{why}: {}", seen.text()))?;
    bench.assert_after(&judged, "GET /case HTTP/1.1").await
}

async fn tls_content_length_truncated_without_close_notify(table: Arc<Table>) -> Check {
    let steps = vec![w(head("Content-Length: 10\r\n") + "hello"), sleep(100), Step::CloseWithoutNotify];
    let (bench, seen) = tls_case(&table, steps).await;
    let judged = judge(&seen, "GET", Expect::Aborted).map_err(|why| format!("{why}: {}", seen.text()))?;
    bench.assert_after(&judged, "GET /case HTTP/1.1").await
}

/// Sends `wire` (with `{p}` replaced by the API prefix) to an echoing backend.
async fn raw_to_echo(table: &Table, wire: &str, methods: &[&str]) -> (Bench, RawOutcome) {
    let bench = table.plain(echo).await;
    let wire = wire.replace("{p}", &bench.prefix);
    let seen = bench.client().send(wire).until_responses(methods, GRACE).run().await;
    (bench, seen)
}

/// The client got `status`, and nothing at all reached the backend.
fn refused(bench: &Bench, seen: &RawOutcome, statuses: &[u16]) -> Check {
    let status = seen.response(0).map(|r| r.status);
    ensure!(status.is_some_and(|s| statuses.contains(&s)), "expected {statuses:?}: {}", seen.text());
    ensure!(bench.received().is_empty(), "it was forwarded: {:?}", bench.lines());
    Ok(())
}

async fn request_without_host_is_400(table: Arc<Table>) -> Check {
    let (bench, seen) = raw_to_echo(&table, "GET {p}/case HTTP/1.1\r\n\r\n", &["GET"]).await;
    refused(&bench, &seen, &[400])
}

async fn request_with_two_hosts_is_400(table: Arc<Table>) -> Check {
    let (bench, seen) = raw_to_echo(&table, "GET {p}/case HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", &["GET"]).await;
    refused(&bench, &seen, &[400])
}

async fn http10_request_with_two_hosts_is_400(table: Arc<Table>) -> Check {
    let (bench, seen) = raw_to_echo(&table, "GET {p}/case HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n", &["GET"]).await;
    refused(&bench, &seen, &[400])
}

async fn http10_request_without_host_is_forwarded(table: Arc<Table>) -> Check {
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

async fn http10_client_gets_a_chunked_backend_body_unchunked(table: Arc<Table>) -> Check {
    let bench = table.plain(on_case(vec![w(format!("{CHUNKED}5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"))])).await;
    let seen = bench.client().send(format!("GET {}/case HTTP/1.0\r\n\r\n", bench.prefix)).run().await;
    let response = seen.response(0).ok_or_else(|| seen.text())?;
    ensure!(response.body == b"hello world", "{}", seen.text());
    ensure!(response.framing != Framing::Chunked, "chunked framing sent to an HTTP/1.0 client");
    Ok(())
}

/// RFC 9112 §6.1: the server MAY reject a request with both; if it processes it, as chunked,
/// it MUST close the connection afterwards. Either way the backend never sees both.
async fn cl_and_te(table: &Table, fields: &str) -> Check {
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

async fn request_with_cl_and_te_is_never_forwarded_ambiguously(table: Arc<Table>) -> Check {
    cl_and_te(&table, "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n").await
}

async fn request_with_te_then_cl_is_never_forwarded_ambiguously(table: Arc<Table>) -> Check {
    cl_and_te(&table, "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n").await
}

/// A chunked body's data; the bytes themselves when they are not chunked.
fn dechunked(body: &[u8]) -> Vec<u8> {
    let wire = [b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n".as_slice(), body].concat();
    match certgate_testkit::parse_responses(&wire, &[], true).responses.first() {
        Some(response) => response.body.clone(),
        None => body.to_vec(),
    }
}

/// RFC 9112 §6.1: a transfer coding the server does not understand is 501.
async fn request_te_gzip_chunked_is_501(table: Arc<Table>) -> Check {
    let wire = "POST {p}/case HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
    let (bench, seen) = raw_to_echo(&table, wire, &["POST"]).await;
    refused(&bench, &seen, &[501])
}

async fn request_te_gzip_in_two_fields_is_501(table: Arc<Table>) -> Check {
    let wire = "POST {p}/case HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
    let (bench, seen) = raw_to_echo(&table, wire, &["POST"]).await;
    refused(&bench, &seen, &[501])
}

/// RFC 9112 §6.3 item 4: chunked not last makes the length unknowable: 400, then close.
async fn request_te_gzip_is_400_and_closed(table: Arc<Table>) -> Check {
    let wire = "POST {p}/case HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\nhello";
    let (bench, seen) = raw_to_echo(&table, wire, &["POST"]).await;
    refused(&bench, &seen, &[400])?;
    ensure!(seen.closed(), "the connection must close after the 400");
    Ok(())
}

/// RFC 9112 §6.1: a sender MUST NOT apply chunked more than once; such a request is refused
/// (400 malformed, or 501 as a coding not implemented) and never forwarded.
async fn request_te_chunked_twice_is_refused(table: Arc<Table>) -> Check {
    let wire =
        "POST {p}/case HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
    let (bench, seen) = raw_to_echo(&table, wire, &["POST"]).await;
    refused(&bench, &seen, &[400, 501])
}

async fn request_te_on_http10_is_400(table: Arc<Table>) -> Check {
    let wire = "POST {p}/case HTTP/1.0\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
    let (bench, seen) = raw_to_echo(&table, wire, &["POST"]).await;
    refused(&bench, &seen, &[400])
}

/// A malformed request body: 400, and the backend never receives a complete-looking request;
/// the backend connection that carried its start is closed.
async fn malformed_request_body(table: &Table, wire: &str) -> Check {
    let (bench, seen) = raw_to_echo(table, wire, &["POST"]).await;
    let status = seen.response(0).map(|r| r.status);
    ensure!(status == Some(400), "expected 400: {}", seen.text());
    assert_nothing_complete_forwarded(&bench).await
}

async fn assert_nothing_complete_forwarded(bench: &Bench) -> Check {
    ensure!(bench.received().is_empty(), "the backend got a complete request: {:?}", bench.lines());
    for index in 0..bench.backend.connections() {
        let log = bench.backend.wait_closed(index, Duration::from_secs(2)).await;
        ensure!(log.is_some_and(|l| l.is_closed()), "backend connection {index} with a partial request left open");
    }
    Ok(())
}

async fn request_bad_chunk_size_is_400(table: Arc<Table>) -> Check {
    let wire = "POST {p}/case HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n";
    malformed_request_body(&table, wire).await
}

async fn request_chunk_size_overflow_is_400(table: Arc<Table>) -> Check {
    let wire = "POST {p}/case HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n10000000000000005\r\nhello\r\n";
    malformed_request_body(&table, wire).await
}

async fn request_cl_larger_than_sent_then_close(table: Arc<Table>) -> Check {
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

async fn request_chunked_cut_off_then_close(table: Arc<Table>) -> Check {
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
fn field_set(request: &Received) -> Vec<String> {
    let mut lines = request.header_lines();
    lines.sort();
    lines
}

fn expected_fields(bench: &Bench, extra: &[&str]) -> Vec<String> {
    let mut lines = vec![
        format!("host: {}", bench.backend.addr),
        "x-forwarded-for: 127.0.0.1".to_owned(),
        "x-forwarded-proto: http".to_owned(),
        "x-forwarded-host: t".to_owned(),
    ];
    lines.extend(extra.iter().map(|l| (*l).to_owned()));
    lines.sort();
    lines
}

async fn request_exact_bytes_get(table: Arc<Table>) -> Check {
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

async fn request_exact_bytes_post_with_length(table: Arc<Table>) -> Check {
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

async fn request_chunked_body_is_rechunked(table: Arc<Table>) -> Check {
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

async fn request_chunked_with_trailers(table: Arc<Table>) -> Check {
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
async fn request_cl_list_of_equal_values(table: Arc<Table>) -> Check {
    one_content_length(&table, "Content-Length: 5, 5\r\n").await
}

async fn request_two_equal_cl_fields(table: Arc<Table>) -> Check {
    one_content_length(&table, "Content-Length: 5\r\nContent-Length: 5\r\n").await
}

async fn one_content_length(table: &Table, fields: &str) -> Check {
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

async fn request_two_different_cl_fields_is_400(table: Arc<Table>) -> Check {
    let wire = "POST {p}/case HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!";
    let (bench, seen) = raw_to_echo(&table, wire, &["POST"]).await;
    refused(&bench, &seen, &[400])
}

async fn request_cl_with_sign_is_400(table: Arc<Table>) -> Check {
    let wire = "POST {p}/case HTTP/1.1\r\nHost: t\r\nContent-Length: +5\r\n\r\nhello";
    let (bench, seen) = raw_to_echo(&table, wire, &["POST"]).await;
    refused(&bench, &seen, &[400])
}

/// RFC 9112 §5.2 allows replacing obs-fold by spaces; hyper rejects, which is the safer half.
async fn request_obs_fold_is_400(table: Arc<Table>) -> Check {
    let wire = "GET {p}/case HTTP/1.1\r\nHost: t\r\nX-Folded: one\r\n two\r\n\r\n";
    let (bench, seen) = raw_to_echo(&table, wire, &["GET"]).await;
    refused(&bench, &seen, &[400])
}

async fn request_nul_in_field_is_400(table: Arc<Table>) -> Check {
    let (bench, seen) = raw_to_echo(&table, "GET {p}/case HTTP/1.1\r\nHost: t\r\nX-Nul: a\0b\r\n\r\n", &["GET"]).await;
    refused(&bench, &seen, &[400])
}

/// RFC 9112 §5.1: a server MUST reject whitespace between a field name and the colon with 400.
async fn request_whitespace_before_colon_is_400(table: Arc<Table>) -> Check {
    let (bench, seen) = raw_to_echo(&table, "GET {p}/case HTTP/1.1\r\nHost: t\r\nX-Space : v\r\n\r\n", &["GET"]).await;
    refused(&bench, &seen, &[400])
}

/// RFC 9110 §7.6.1: Connection and the fields it names, Keep-Alive, TE, Upgrade, Trailer and
/// Proxy-Connection are for one hop only.
async fn request_hop_by_hop_fields_never_reach_the_backend(table: Arc<Table>) -> Check {
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

async fn request_connection_close_is_the_clients_alone(table: Arc<Table>) -> Check {
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

async fn request_pipelined_after_connection_close_is_not_served(table: Arc<Table>) -> Check {
    let wire = "GET {p}/a HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\nGET {p}/b HTTP/1.1\r\nHost: t\r\n\r\n";
    let (bench, seen) = raw_to_echo(&table, wire, &["GET"]).await;
    ensure!(seen.parsed.finals().count() == 1 && seen.closed(), "{}", seen.text());
    ensure!(bench.received().len() == 1, "backend saw {:?}", bench.lines());
    Ok(())
}

/// RFC 9112 §3.2.2: a server MUST accept the absolute form; the backend gets the origin form.
async fn request_absolute_form_target(table: Arc<Table>) -> Check {
    let wire = "GET http://t{p}/case HTTP/1.1\r\nHost: t\r\n\r\n";
    let (bench, seen) = raw_to_echo(&table, wire, &["GET"]).await;
    assert_clean(&seen, "GET", 200, "GET /case HTTP/1.1").map_err(|why| format!("{why}: {}", seen.text()))?;
    ensure!(bench.received().len() == 1, "backend saw {:?}", bench.lines());
    Ok(())
}

async fn request_bodyless_post(table: Arc<Table>) -> Check {
    let (bench, seen) = raw_to_echo(&table, "POST {p}/case HTTP/1.1\r\nHost: t\r\n\r\n", &["POST"]).await;
    assert_clean(&seen, "POST", 200, "POST /case HTTP/1.1").map_err(|why| format!("{why}: {}", seen.text()))?;
    let received = bench.received();
    ensure!(received.len() == 1 && received[0].body().is_empty(), "backend saw {:?}", bench.lines());
    ensure!(received[0].header_values("transfer-encoding").is_empty(), "a bodyless request sent chunked");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Cases that measure time (run one at a time)

/// A backend refuses an upload after its head and stops reading; the client, still uploading
/// 5 MB over about 3 s, gets the 413 within a second; the connection that carried the
/// unfinished body is not reused.
async fn early_413_while_the_client_uploads(table: Arc<Table>) -> Check {
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
async fn early_401_to_expect_100_continue_without_the_body(table: Arc<Table>) -> Check {
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

async fn expect_100_continue_gets_100_then_the_answer(table: Arc<Table>) -> Check {
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
async fn slow_request_head_and_body(table: Arc<Table>) -> Check {
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
