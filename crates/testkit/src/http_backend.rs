//! A real HTTPS backend that *requires* a client certificate and answers every request with a
//! JSON description of what it saw: the client certificate's SHA-1 and subject, the path, the
//! protocol version and the headers. `/slow` streams its answer over ~2 s; `/arrivals` reports when
//! the first and last body bytes arrived; `/sleep/<ms>` waits
//! before answering; `/count` answers with the number of request body bytes it read. It records
//! when each connection closed and which certificate it had presented.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

use crate::Identity;
use crate::tls_peer::{ClientAuth, server_config, sha1_hex};

/// A running backend.
pub struct HttpsBackend {
    pub addr: SocketAddr,
    /// TLS connections accepted so far (handshakes, successful or not).
    pub connections: Arc<AtomicUsize>,
    /// Connections that completed their handshake and have since closed, in closing order.
    closed: Arc<Mutex<Vec<ClosedConnection>>>,
}

/// A connection the backend saw end (the gateway closed it, or it broke).
#[derive(Clone, Debug)]
pub struct ClosedConnection {
    /// SHA-1 of the client certificate it presented (lower-case hex), empty for none.
    pub fingerprint: String,
    pub at: Instant,
}

impl HttpsBackend {
    pub fn url(&self, host: &str) -> String {
        format!("https://{host}:{}", self.addr.port())
    }

    pub fn connection_count(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// Every connection closed so far.
    pub fn closed_connections(&self) -> Vec<ClosedConnection> {
        self.closed.lock().unwrap().clone()
    }
}

/// The common case: a self-signed `localhost` backend that requires some client certificate
/// (any) and speaks HTTP/1.1.
pub async fn self_signed_echo_backend() -> HttpsBackend {
    https_echo_backend(&Identity::self_signed_server("localhost"), ClientAuth::AnyCertificate, false).await
}

/// Starts the backend on a free loopback port with `server` as its certificate. With `h2`, it
/// offers HTTP/2 by ALPN as well as HTTP/1.1.
pub async fn https_echo_backend(server: &Identity, client_auth: ClientAuth<'_>, h2: bool) -> HttpsBackend {
    let alpn: &[&[u8]] = if h2 { &[b"h2", b"http/1.1"] } else { &[b"http/1.1"] };
    let config = server_config(server, client_auth, alpn);
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let counter = connections.clone();
    let closed = Arc::new(Mutex::new(Vec::new()));
    let closings = closed.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            counter.fetch_add(1, Ordering::SeqCst);
            let acceptor = acceptor.clone();
            let closings = closings.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(stream).await else { return };
                let (_, session) = tls.get_ref();
                let certificate =
                    session.peer_certificates().and_then(|c| c.first()).map(|c| c.to_vec()).unwrap_or_default();
                let seen = Arc::new(Seen::of(&certificate));
                let fingerprint = seen.fingerprint.clone();
                let service = hyper::service::service_fn(move |request| answer(seen.clone(), request));
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
                closings.lock().unwrap().push(ClosedConnection { fingerprint, at: Instant::now() });
            });
        }
    });
    HttpsBackend { addr, connections, closed }
}

struct Seen {
    fingerprint: String,
    subject: String,
}

impl Seen {
    fn of(der: &[u8]) -> Self {
        let subject = x509_subject(der);
        Self { fingerprint: if der.is_empty() { String::new() } else { sha1_hex(der) }, subject }
    }
}

fn x509_subject(der: &[u8]) -> String {
    // The CN is enough to tell test certificates apart; find it without a full X.509 parser.
    const CN_OID: &[u8] = &[0x06, 0x03, 0x55, 0x04, 0x03];
    der.windows(CN_OID.len())
        .rposition(|w| w == CN_OID)
        .and_then(|at| {
            let value = der.get(at + CN_OID.len()..)?;
            let len = usize::from(*value.get(1)?);
            std::str::from_utf8(value.get(2..2 + len)?).ok().map(|cn| format!("CN={cn}"))
        })
        .unwrap_or_default()
}

type Body = BoxBody<Bytes, Infallible>;

async fn answer(seen: Arc<Seen>, request: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let path = request.uri().path_and_query().map(|p| p.to_string()).unwrap_or_default();
    let version = format!("{:?}", request.version());
    let headers: serde_json::Map<String, serde_json::Value> = request
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), serde_json::Value::String(v.to_str().unwrap_or_default().to_owned())))
        .collect();
    let description = serde_json::json!({
        "fingerprint": seen.fingerprint,
        "subject": seen.subject,
        "path": path,
        "method": request.method().as_str(),
        "version": version,
        "headers": headers,
    });
    if path.starts_with("/slow") {
        let text = description.to_string();
        let chunks = (0..10).map(move |i| {
            let piece = if i == 9 { format!("{text}\n") } else { String::from(" ") };
            Ok::<_, Infallible>(Frame::data(Bytes::from(piece)))
        });
        let stream = futures_lite_stream(chunks, Duration::from_millis(200));
        return Ok(Response::new(BoxBody::new(StreamBody::new(stream))));
    }
    if let Some(ms) = path.strip_prefix("/sleep/").and_then(|ms| ms.parse::<u64>().ok()) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    if path.starts_with("/arrivals") {
        // Milliseconds from the request head to the first and to the last body byte.
        let started = std::time::Instant::now();
        let mut body = request.into_body();
        let (mut first, mut last) = (None, 0u128);
        while let Some(Ok(frame)) = body.frame().await {
            if frame.data_ref().is_some_and(|d| !d.is_empty()) {
                let at = started.elapsed().as_millis();
                first.get_or_insert(at);
                last = at;
            }
        }
        let text = format!("{} {last}", first.unwrap_or_default());
        return Ok(Response::new(BoxBody::new(Full::new(Bytes::from(text)))));
    }
    if let Some(length) = path.strip_prefix("/bytes/").and_then(|n| n.parse::<usize>().ok()) {
        return Ok(Response::new(BoxBody::new(Full::new(Bytes::from(pattern(length))))));
    }
    if path.starts_with("/count") {
        let mut body = request.into_body();
        let mut total = 0usize;
        while let Some(Ok(frame)) = body.frame().await {
            total += frame.data_ref().map_or(0, Bytes::len);
        }
        return Ok(Response::new(BoxBody::new(Full::new(Bytes::from(total.to_string())))));
    }
    Ok(Response::new(BoxBody::new(Full::new(Bytes::from(description.to_string())))))
}

/// What `GET /bytes/N` answers: `N` bytes counting through 0..251, shifted by one every 4 KiB,
/// so a piece lost, doubled or moved shows.
pub fn pattern(length: usize) -> Vec<u8> {
    (0..length).map(|i| ((i % 251) as u8).wrapping_add((i / 4096) as u8)).collect()
}

/// Yields `items` with `delay` between them.
fn futures_lite_stream<T: Send + 'static>(
    items: impl Iterator<Item = T> + Send + 'static,
    delay: Duration,
) -> ReceiverStream<T> {
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    tokio::spawn(async move {
        for item in items {
            tokio::time::sleep(delay).await;
            if tx.send(item).await.is_err() {
                return;
            }
        }
    });
    ReceiverStream(rx)
}

struct ReceiverStream<T>(tokio::sync::mpsc::Receiver<T>);

impl<T> futures_core::Stream for ReceiverStream<T> {
    type Item = T;

    fn poll_next(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Option<T>> {
        self.0.poll_recv(cx)
    }
}
