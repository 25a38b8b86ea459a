//! Backend connections, pooled per TLS identity.
//!
//! Every [`Upstream`] owns the connections made with one client certificate (and one set of TLS
//! switches and trusted CAs), so a connection authenticated with one certificate can never carry
//! a request configured for another. HTTP/1.1 exchanges run in the task serving the downstream
//! request (see [`h1`]); a backend that chooses HTTP/2 by ALPN gets one multiplexed connection.

mod body;
mod h1;
mod head;
mod pool;
mod transport;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::request_body::RequestBody;
use crate::telemetry::{ConnectionEvent, connection_event};

use certgate_model::{BackendTls, Thumbprint};
use http::header::CONTENT_LENGTH;
use http::{Request, Response, Uri, request};
use hyper::body::Body;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls_pki_types::ServerName;

pub(crate) use body::{BoxError, UpstreamBody};

/// The pure parsers, for the fuzz entry points.
#[cfg(feature = "fuzzing")]
pub(crate) mod fuzzing {
    pub(crate) use super::head::{Head, parse_head};
}

use h1::{H1Conn, ResponseBody, Retry};
use head::RequestHead;
use pool::{Connecting, Handoff, Home, OriginPool, Pool, PoolKey, Pooled, Waiting};
use transport::Transport;

/// Everything that decides how a backend connection is authenticated and validated; with the
/// origin it is the full pool key.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct UpstreamKey {
    /// The client certificate presented, by thumbprint; `None` = no client certificate.
    pub identity: Option<Thumbprint>,
    pub switches: BackendTls,
    /// Hash of the trusted CA set, so uploading a CA certificate yields fresh connections.
    pub trust: u64,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum UpstreamError {
    #[error("cannot connect to {authority}: {source}")]
    Connect { authority: String, source: std::io::Error },
    #[error("TLS handshake with {authority} failed: {source}")]
    Handshake { authority: String, source: std::io::Error },
    #[error("backend connection failed: {0}")]
    Io(#[source] std::io::Error),
    #[error("the client's request body broke off or is malformed: {0}")]
    RequestBody(#[source] std::io::Error),
    #[error("the backend closed the connection without responding")]
    ClosedBeforeResponse,
    #[error("invalid response from the backend: {0}")]
    InvalidResponse(String),
    #[error("HTTP/2 exchange with the backend failed: {0}")]
    Http2(#[source] hyper::Error),
    #[error("invalid backend URL: {0}")]
    Url(String),
    #[error("the backend sent nothing of the response body for {0:?} (--backend-read-timeout)")]
    BodyReadTimeout(std::time::Duration),
}

/// Where a route's requests go: scheme, authority and the TLS server name, resolved once at
/// compile time.
#[derive(Debug)]
pub(crate) struct Origin {
    pub scheme: http::uri::Scheme,
    pub authority: http::uri::Authority,
    host: String,
    port: u16,
    /// `None` for plain HTTP.
    server_name: Option<ServerName<'static>>,
    pool_key: PoolKey,
}

impl Origin {
    pub(crate) fn new(scheme: http::uri::Scheme, authority: http::uri::Authority) -> Result<Self, String> {
        let tls = scheme == http::uri::Scheme::HTTPS;
        let host = authority.host().trim_start_matches('[').trim_end_matches(']').to_owned();
        let port = authority.port_u16().unwrap_or(if tls { 443 } else { 80 });
        let server_name = match tls {
            true => Some(ServerName::try_from(host.clone()).map_err(|e| format!("invalid host {host:?}: {e}"))?),
            false => None,
        };
        let pool_key = format!("{scheme}://{authority}").to_ascii_lowercase().into();
        Ok(Self { scheme, authority, host, port, server_name, pool_key })
    }
}

/// `scheme://authority`, as in metrics and logs.
impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.pool_key)
    }
}

/// Where a route's requests go: the origin, and that origin's connections among those made with
/// one TLS identity, both found when the snapshot is compiled.
pub(crate) struct Destination {
    pub origin: Arc<Origin>,
    upstream: Arc<Upstream>,
    connections: Arc<OriginPool<H1Conn>>,
}

impl Destination {
    pub(crate) fn new(origin: Origin, upstream: Arc<Upstream>) -> Self {
        let connections = upstream.pool.origin(&origin.pool_key);
        Destination { origin: Arc::new(origin), upstream, connections }
    }

    /// Sends `parts` + `body` to `path_and_query` (which the caller has checked is a valid
    /// request target) and returns the response head with its body still streaming.
    pub(crate) async fn send(
        &self,
        parts: request::Parts,
        body: RequestBody,
        path_and_query: &str,
    ) -> Result<Response<UpstreamBody>, UpstreamError> {
        self.upstream.send(self, parts, body, path_and_query).await
    }
}

impl std::fmt::Debug for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Destination").field("origin", &self.origin).finish_non_exhaustive()
    }
}

/// The connections made with one TLS identity (the snapshot keys it by its [`UpstreamKey`]).
pub(crate) struct Upstream {
    tls: tokio_rustls::TlsConnector,
    pool: Arc<Pool<H1Conn>>,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream").finish_non_exhaustive()
    }
}

impl Upstream {
    /// `usable_until`: the client certificate's notAfter, from which on no pooled connection
    /// made with it is used (see [`Pool`]).
    pub(crate) fn new(tls: Arc<rustls::ClientConfig>, usable_until: Option<std::time::Instant>) -> Arc<Self> {
        let mut tls = (*tls).clone();
        tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let pool = Arc::new(Pool::new(usable_until));
        Arc::new(Self { tls: tokio_rustls::TlsConnector::from(Arc::new(tls)), pool })
    }

    /// No snapshot uses this identity any more: close its idle connections now and the others
    /// when their exchanges end.
    pub(crate) fn retire(&self) {
        self.pool.retire();
    }

    async fn send(
        &self,
        destination: &Destination,
        parts: request::Parts,
        body: RequestBody,
        path_and_query: &str,
    ) -> Result<Response<UpstreamBody>, UpstreamError> {
        let origin = &destination.origin;
        let (mut conn, reused) = match self.acquire(destination).await? {
            Acquired::Http1 { conn, reused } => (conn, reused),
            Acquired::Http2(sender) => return Box::pin(send_h2(sender, origin, parts, body, path_and_query)).await,
        };
        let has_body = !body.is_end_stream();
        let head = RequestHead {
            parts: &parts,
            path_and_query,
            authority: origin.authority.as_str(),
            chunked: has_body && !parts.headers.contains_key(CONTENT_LENGTH),
        };
        let release = || Home::new(self.pool.clone(), destination.connections.clone());
        let (request_body, empty_body) = if has_body { (Some(body), None) } else { (None, Some(body)) };
        let upload = conn.upload(&head, request_body);
        let exchange = match conn.exchange(upload, &parts.method, release()).await {
            Ok(exchange) => exchange,
            // A pooled connection the backend closed in the instant after checkout. A fresh
            // connection failing is the backend's answer, not a reason to try again.
            Err(failed) if reused && failed.retry.allows(&parts.method) => {
                tracing::debug!(error = %failed.error, retry = ?failed.retry, "pooled backend connection failed; retrying once on a fresh one");
                match (Box::pin(self.connect(destination)).await?, failed.retry) {
                    (Connected::Http1(conn), Retry::Always(upload)) => {
                        conn.exchange(upload, &parts.method, release()).await.map_err(|again| again.error)?
                    }
                    // Only a bodyless request is repeated once written (see `Retry`).
                    (Connected::Http1(mut conn), _) => {
                        let upload = conn.upload(&head, None);
                        conn.exchange(upload, &parts.method, release()).await.map_err(|again| again.error)?
                    }
                    (Connected::Http2(sender), _) => match empty_body {
                        Some(body) => return Box::pin(send_h2(sender, origin, parts, body, path_and_query)).await,
                        // The body's first bytes were taken for HTTP/1.1 framing.
                        None => return Err(failed.error),
                    },
                }
            }
            Err(failed) => return Err(failed.error),
        };
        let (response, ()) = exchange.response.into_parts();
        let body = match exchange.body {
            ResponseBody::Complete(bytes) => UpstreamBody::complete(bytes),
            ResponseBody::Streaming(body) => UpstreamBody::http1(body),
        };
        Ok(Response::from_parts(response, body))
    }

    /// The origin's HTTP/2 connection, or an idle HTTP/1.1 one that can carry a request, or a
    /// place in the queue for the next; connections with unread bytes or a closed peer are
    /// dropped on the way.
    fn checkout(&self, destination: &Destination) -> Pooled<H1Conn> {
        loop {
            match self.pool.checkout(&destination.connections) {
                Pooled::Http1(mut conn) => {
                    if conn.is_idle_and_open() {
                        connection_event(ConnectionEvent::Reused, 1);
                        return Pooled::Http1(conn);
                    }
                    tracing::debug!(backend = %destination.origin.authority, "discarded an idle backend connection that was readable");
                }
                Pooled::Http2(sender) => {
                    connection_event(ConnectionEvent::Reused, 1);
                    return Pooled::Http2(sender);
                }
                pooled @ (Pooled::Wait(_) | Pooled::Empty) => return pooled,
            }
        }
    }

    /// A connection for one request: an idle one, or the first the queue hands over (released
    /// by another exchange, or opened), or, from a closed pool, one of its own.
    async fn acquire(&self, destination: &Destination) -> Result<Acquired, UpstreamError> {
        loop {
            let waiting = match self.checkout(destination) {
                Pooled::Http1(conn) => return Ok(Acquired::Http1 { conn, reused: true }),
                Pooled::Http2(sender) => return Ok(Acquired::Http2(sender)),
                Pooled::Empty => return Ok(Box::pin(self.connect(destination)).await?.into()),
                Pooled::Wait(waiting) => waiting,
            };
            match self.wait(destination, waiting).await {
                // Released an instant ago with nothing unread, and checked as a checkout checks
                // an idle one: bytes a backend sends after its response reach no request.
                Some(Handoff::Released(mut conn)) => {
                    if conn.is_idle_and_open() {
                        connection_event(ConnectionEvent::Reused, 1);
                        return Ok(Acquired::Http1 { conn, reused: true });
                    }
                    tracing::debug!(backend = %destination.origin.authority, "discarded a released backend connection that was readable");
                }
                Some(Handoff::Opened(conn)) => return Ok(Acquired::Http1 { conn, reused: false }),
                Some(Handoff::Http2(sender)) => return Ok(Acquired::Http2(sender)),
                Some(Handoff::Failed(error)) => return Err(error),
                // The queue dropped its end unanswered, which it does not: connect, then.
                None => return Ok(Box::pin(self.connect(destination)).await?.into()),
            }
        }
    }

    /// Waits for what the queue hands this request. When the request is to start a connect, it
    /// drives that connect itself and keeps what it opens if that comes first; when a released
    /// connection comes first (or the request is dropped), the connect goes on in a task of its
    /// own and what it opens goes to the next request waiting.
    async fn wait(&self, destination: &Destination, waiting: Waiting<H1Conn>) -> Option<Handoff<H1Conn>> {
        let Waiting { mut handoff, connect } = waiting;
        let Some(connecting) = connect else { return handoff.await.ok() };
        let mut own = OwnConnect::start(destination, connecting);
        let opened = tokio::select! {
            biased;
            handed = &mut handoff => return handed.ok(),
            opened = own.opening() => opened,
        };
        own.keep();
        // Anything handed over meanwhile goes to the next request waiting; a multiplexed
        // connection serves them all.
        handoff.close();
        if let Ok(unused) = handoff.try_recv() {
            self.pool.pass_on(&destination.connections, unused);
        }
        if let Handoff::Http2(sender) = &opened {
            self.pool.pass_on(&destination.connections, Handoff::Http2(sender.clone()));
        }
        Some(opened)
    }

    /// A connection of the request's own (closed pool, retry): boxed where it is awaited, so
    /// the futures of every request do not carry a handshake's state.
    async fn connect(&self, destination: &Destination) -> Result<Connected, UpstreamError> {
        self.open(&destination.origin, &destination.connections).await
    }

    async fn open(&self, origin: &Origin, connections: &OriginPool<H1Conn>) -> Result<Connected, UpstreamError> {
        let transport = Transport::connect(origin, &self.tls).await?;
        connection_event(ConnectionEvent::Opened, 1);
        if !transport.is_http2() {
            return Ok(Connected::Http1(H1Conn::new(transport)));
        }
        let (sender, connection) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .handshake(TokioIo::new(transport))
            .await
            .map_err(UpstreamError::Http2)?;
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "HTTP/2 backend connection ended with an error");
            }
        });
        self.pool.put_h2(connections, sender.clone());
        Ok(Connected::Http2(sender))
    }
}

/// A connect for the pool's waiting requests, as a [`Handoff`].
async fn open_for_pool(
    upstream: Arc<Upstream>,
    origin: Arc<Origin>,
    connections: Arc<OriginPool<H1Conn>>,
) -> Handoff<H1Conn> {
    match upstream.open(&origin, &connections).await {
        Ok(Connected::Http1(conn)) => Handoff::Opened(conn),
        Ok(Connected::Http2(sender)) => Handoff::Http2(sender),
        Err(error) => Handoff::Failed(error),
    }
}

/// A connect a waiting request started, driven by that request's own task (no task, no wake-up
/// from another, when it finishes first, as it always does when nothing is released; the
/// request's forward timeout bounds it). Dropped before it ends, it finishes in a task of its
/// own, bounded by [`POOL_CONNECT_TIMEOUT`] (a backend that accepts the connection and never
/// answers the handshake must not hold a waiting request's only hope), and delivers to the
/// queue.
struct OwnConnect {
    opening: Option<Pin<Box<dyn Future<Output = Handoff<H1Conn>> + Send>>>,
    connecting: Option<Connecting<H1Conn>>,
    origin: Arc<Origin>,
}

impl OwnConnect {
    fn start(destination: &Destination, connecting: Connecting<H1Conn>) -> Self {
        let upstream = destination.upstream.clone();
        let origin = destination.origin.clone();
        let opening = open_for_pool(upstream, origin.clone(), destination.connections.clone());
        OwnConnect { opening: Some(Box::pin(opening)), connecting: Some(connecting), origin }
    }

    async fn opening(&mut self) -> Handoff<H1Conn> {
        match self.opening.as_mut() {
            Some(opening) => opening.await,
            None => std::future::pending().await,
        }
    }

    /// The connect ended and its result stays with the request that drove it.
    fn keep(mut self) {
        self.opening = None;
        if let Some(connecting) = self.connecting.take() {
            connecting.kept();
        }
    }
}

impl Drop for OwnConnect {
    fn drop(&mut self) {
        let (Some(opening), Some(connecting)) = (self.opening.take(), self.connecting.take()) else { return };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        let authority = self.origin.authority.to_string();
        runtime.spawn(async move {
            let handoff = tokio::time::timeout(POOL_CONNECT_TIMEOUT, opening).await.unwrap_or_else(|_| {
                let late = format!("no connection within {POOL_CONNECT_TIMEOUT:?}");
                let source = std::io::Error::new(std::io::ErrorKind::TimedOut, late);
                Handoff::Failed(UpstreamError::Handshake { authority, source })
            });
            connecting.deliver(handoff);
        });
    }
}

/// How long a connect may go on once no request drives it, TCP and TLS together.
const POOL_CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

enum Connected {
    Http1(H1Conn),
    Http2(hyper::client::conn::http2::SendRequest<RequestBody>),
}

/// A connection to carry one request.
enum Acquired {
    /// `reused` when it carried an exchange before: failing at once, it may be one the backend
    /// closed meanwhile, and the request may go out again on a fresh one (see `Retry`).
    Http1 {
        conn: H1Conn,
        reused: bool,
    },
    Http2(hyper::client::conn::http2::SendRequest<RequestBody>),
}

impl From<Connected> for Acquired {
    fn from(connected: Connected) -> Self {
        match connected {
            Connected::Http1(conn) => Acquired::Http1 { conn, reused: false },
            Connected::Http2(sender) => Acquired::Http2(sender),
        }
    }
}

async fn send_h2(
    mut sender: hyper::client::conn::http2::SendRequest<RequestBody>,
    origin: &Origin,
    mut parts: request::Parts,
    body: RequestBody,
    path_and_query: &str,
) -> Result<Response<UpstreamBody>, UpstreamError> {
    parts.uri = Uri::builder()
        .scheme(origin.scheme.clone())
        .authority(origin.authority.clone())
        .path_and_query(path_and_query)
        .build()
        .map_err(|e| UpstreamError::Url(e.to_string()))?;
    parts.version = http::Version::HTTP_2;
    sender.ready().await.map_err(UpstreamError::Http2)?;
    let response = sender.send_request(Request::from_parts(parts, body)).await.map_err(UpstreamError::Http2)?;
    let (parts, body) = response.into_parts();
    Ok(Response::from_parts(parts, UpstreamBody::http2(body)))
}
