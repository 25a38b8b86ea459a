//! The node shared by every case, a scripted backend per case, and the judgement of what the
//! client and the backend saw.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use certgate_testkit::{End, Identity, Options, RawClient, RawOutcome, RawResponse, Received, ScriptedBackend, Step};
use serde_json::{Value, json};

use super::support::{self, Stage, must_put};
use super::{Check, GRACE};

pub(crate) type CaseFuture = Pin<Box<dyn Future<Output = Check> + Send>>;
pub(crate) type Case = (&'static str, fn(Arc<Table>) -> CaseFuture);

pub(crate) struct Table {
    pub(crate) stage: Stage,
    pub(crate) gateway: SocketAddr,
    pub(crate) next_api: AtomicUsize,
    /// The TLS backends' identity, issued by a CA the node trusts.
    pub(crate) tls_server: Identity,
}

/// The certificate the node presents to TLS backends.
pub(crate) const CLIENT_CERTIFICATE: &str = "framing-client";

impl Table {
    pub(crate) async fn start() -> Arc<Table> {
        let stage = Stage::start();
        let gateway = stage.node.gateway.trim_start_matches("http://").parse().unwrap();
        let tls_server = support::trusted_backend_identity(&stage.api, "framing-ca", CLIENT_CERTIFICATE).await;
        Arc::new(Table { stage, gateway, next_api: AtomicUsize::new(0), tls_server })
    }

    /// A scripted backend behind an API of its own.
    pub(crate) async fn bench(
        &self,
        options: Options,
        script: impl Fn(&Received) -> Vec<Step> + Send + Sync + 'static,
    ) -> Bench {
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

    pub(crate) async fn plain(&self, script: impl Fn(&Received) -> Vec<Step> + Send + Sync + 'static) -> Bench {
        self.bench(Options::default(), script).await
    }

    pub(crate) fn tls_options(&self) -> Options {
        Options { tls: Some(Options::tls_presenting(&self.tls_server)), ..Options::default() }
    }

    /// The log line carrying `activity_id` (every 502 is logged once with its cause).
    pub(crate) async fn log_line(&self, activity_id: &str) -> Result<String, String> {
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
pub(crate) struct Bench {
    pub(crate) backend: ScriptedBackend,
    /// The API's path: `/cN`.
    pub(crate) prefix: String,
    pub(crate) gateway: SocketAddr,
}

impl Bench {
    pub(crate) fn client(&self) -> RawClient {
        RawClient::new(self.gateway)
    }

    /// `{method} {prefix}{path}` with a Host and `extra` header lines, read until its response
    /// is complete (plus the grace period).
    pub(crate) async fn request(&self, method: &str, path: &str, extra: &str) -> RawOutcome {
        let head = format!("{method} {}{path} HTTP/1.1\r\nHost: t\r\n{extra}\r\n", self.prefix);
        self.client().send(head).until_responses(&[method], GRACE).run().await
    }

    /// A GET on a fresh client connection gets its own answer (never bytes meant for another).
    pub(crate) async fn follow_up(&self) -> Check {
        let seen = self.request("GET", "/next", "").await;
        let response = seen.response(0).ok_or_else(|| format!("the follow-up got no response: {}", seen.text()))?;
        ensure!(
            response.status == 200 && response.body == b"GET /next HTTP/1.1",
            "the follow-up got an answer not meant for it: {}",
            seen.text()
        );
        Ok(())
    }

    pub(crate) fn received(&self) -> Vec<Received> {
        self.backend.received()
    }

    /// The request lines the backend saw, for failure messages.
    pub(crate) fn lines(&self) -> Vec<String> {
        self.received().iter().map(|r| format!("conn {} #{}: {}", r.connection, r.index, r.request_line())).collect()
    }

    /// After the case's request and a follow-up: two requests, the first as sent, and the
    /// backend connection reused or discarded (then closed, not left open) as expected.
    pub(crate) async fn assert_after(&self, seen: &Seen, first_line: &str) -> Check {
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

pub(crate) fn ok(body: &str) -> Step {
    Step::write(format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}", body.len()))
}

pub(crate) fn w(bytes: impl AsRef<[u8]>) -> Step {
    Step::write(bytes)
}

pub(crate) fn sleep(ms: u64) -> Step {
    Step::Sleep(Duration::from_millis(ms))
}

/// Whether the request targets `/case` (below the API prefix).
pub(crate) fn is_case(r: &Received) -> bool {
    r.request_line().split(' ').nth(1).is_some_and(|target| target.starts_with("/case"))
}

/// Answers `/case` with `steps`, every other request with its own request line.
pub(crate) fn on_case(steps: Vec<Step>) -> impl Fn(&Received) -> Vec<Step> + Send + Sync + 'static {
    move |r| if is_case(r) { steps.clone() } else { vec![ok(&r.request_line())] }
}

pub(crate) fn echo(r: &Received) -> Vec<Step> {
    vec![ok(&r.request_line())]
}

/// What becomes of the backend connection after a clean response.
#[derive(Clone, Copy, Debug)]
pub(crate) enum After {
    Reused,
    Discarded,
    /// The RFC leaves it open (a repaired message).
    Either,
}

/// What the client must see.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Expect {
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

pub(crate) const fn clean(body: &'static str, after: After) -> Expect {
    Expect::Clean { status: 200, body, after }
}

/// What the client did see, as far as the backend side of a case depends on it.
pub(crate) enum Seen {
    Clean(After),
    BadGateway(String),
    Aborted,
}

pub(crate) fn judge(seen: &RawOutcome, method: &str, expect: Expect) -> Result<Seen, String> {
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

pub(crate) fn assert_clean(seen: &RawOutcome, method: &str, status: u16, body: &str) -> Check {
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
pub(crate) fn assert_sane_framing(response: &RawResponse, method: &str) -> Check {
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

pub(crate) fn assert_no_hop_by_hop(response: &RawResponse) -> Check {
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
pub(crate) fn bad_gateway(seen: &RawOutcome) -> Result<String, String> {
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
pub(crate) fn aborted(seen: &RawOutcome) -> Check {
    ensure!(seen.parsed.finals().count() == 0, "a complete response arrived (a clean short body?)");
    let head = seen.parsed.cut_off.as_ref().ok_or("no response head arrived before the end")?;
    ensure!(head.status == 200, "the cut-off response has status {}", head.status);
    ensure!(seen.closed(), "the connection was not closed ({:?})", seen.end);
    Ok(())
}
