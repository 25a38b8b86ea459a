//! The one accept loop behind every listener of a node: the gateway's HTTP and HTTPS listeners
//! (their HTTP/1.1 is the gateway's own, in `downstream/`) and, handed its router as a hyper
//! service by the binary, the management API (hyper's HTTP/1.1). A [`Protocol`] is what differs
//! between them.
//!
//! What a listener does with its connections:
//! - **Connection cap.** Every open connection holds a permit of the listener's
//!   [`ConnectionCap`]. The binary gives the two gateway listeners one shared cap and the
//!   management API its own, so a flood on the gateway ports never takes `/health`, `/ready`
//!   or the management API with it. At the cap the loop *stops accepting*, as nginx
//!   (`worker_connections`) and HAProxy (`maxconn`) do: new connections wait in the kernel's
//!   listen backlog and are served as soon as an open one closes; once the backlog is full
//!   too, the kernel drops new SYNs and clients retry. Accepting and closing at once would
//!   turn a short overload into errors for clients that would only have waited, and costs a
//!   descriptor and two syscalls per refused connection while the flood lasts. Reaching the
//!   cap is logged at most once a second.
//! - **Timeouts** (see `watch.rs`): a connection must deliver a complete request head within
//!   the header-read timeout (from its start, or from the first byte after an idle wait),
//!   however slowly its bytes trickle; between requests it may sit idle for the idle
//!   timeout; a TLS client must finish its handshake within the handshake timeout, after
//!   which the header-read clock starts. A request in flight is not timed out here.
//! - **Accept errors** that would repeat at once (out of descriptors: `EMFILE`, `ENFILE`;
//!   `ENOBUFS`, `ENOMEM`) pause the loop, 10 ms doubling to 1 s, and are logged at most once
//!   a second with the number held back; a peer that gave up before its accept is skipped.
//! - **Lingering close** (see `linger.rs`): a connection the server ends while its client may
//!   still be sending (an answer before the whole request body) is half-closed and drained
//!   briefly, so the client reads its response instead of a reset.
//! - **Shutdown**: the listener closes at once; open connections finish the request they
//!   are serving (keep-alive off) for up to 30 s, then are closed.

mod accept;
mod linger;
mod watch;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use arc_swap::ArcSwap;
use hyper::body::{Body, Incoming};
use hyper::server::conn::http1;
use hyper::service::{Service, service_fn};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use self::accept::{Backoff, Throttle, is_peer_error};
use self::linger::Lingering;
pub(crate) use self::watch::Requests;
use self::watch::{Clock, TrackedBody, Watched};
use crate::snapshot::{HttpsListener, Snapshot};
use crate::upstream::BoxError;

/// How long in-flight requests may run after shutdown begins.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// The data plane's only input: the current snapshot, replaced as a whole on every change.
pub type SnapshotHandle = Arc<ArcSwap<Snapshot>>;

/// How long a client connection may take for each thing it owes the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// From the start of the connection (or the first byte after an idle wait) to a complete
    /// request head.
    pub header_read: Duration,
    /// Between the end of a response and the first byte of the next request.
    pub idle: Duration,
    /// From accept to a completed TLS handshake (HTTPS only).
    pub tls_handshake: Duration,
}

impl Default for Timeouts {
    /// 30 s for a head and 10 s for a handshake, as before; 60 s idle, nginx's `keepalive_timeout`
    /// order of magnitude and above what HTTP client pools keep idle connections (reqwest 90 s
    /// would see a close it can handle; browsers and curl reuse well under 60 s).
    fn default() -> Self {
        Timeouts {
            header_read: Duration::from_secs(30),
            idle: Duration::from_secs(60),
            tls_handshake: Duration::from_secs(10),
        }
    }
}

/// How many connections one or several listeners may hold open at once (a clone shares the
/// count). At the cap the listeners stop accepting until a connection closes.
#[derive(Clone, Debug)]
pub struct ConnectionCap {
    permits: Arc<Semaphore>,
    limit: usize,
}

impl ConnectionCap {
    /// At least one connection; more than tokio's semaphore can count is clamped to its maximum.
    pub fn new(limit: usize) -> Self {
        let limit = limit.clamp(1, Semaphore::MAX_PERMITS);
        ConnectionCap { permits: Arc::new(Semaphore::new(limit)), limit }
    }

    pub fn limit(&self) -> usize {
        self.limit
    }
}

/// What one listener enforces: its name (for logs), its cap and its timeouts.
#[derive(Clone, Debug)]
pub struct ListenerSettings {
    pub name: &'static str,
    pub cap: ConnectionCap,
    pub timeouts: Timeouts,
}

/// Where an HTTPS listener finds its current server configuration: a replaced certificate is
/// used from the next connection on.
pub(crate) struct TlsSource {
    pub snapshots: SnapshotHandle,
    pub listener: HttpsListener,
}

/// How a listener speaks HTTP on the connections it accepts: the gateway's own HTTP/1.1
/// (`downstream/`), or hyper's for the management API.
pub(crate) trait Protocol: Send + Sync + 'static {
    /// Serves one connection until it ends.
    fn serve<IO: ClientIo>(&self, io: IO, accepted: Accepted) -> impl Future<Output = ()> + Send + 'static;
}

/// What the listener hands a [`Protocol`] with each connection besides its stream.
pub(crate) struct Accepted {
    pub peer: SocketAddr,
    /// Where each request is marked busy, for the timeouts.
    pub requests: Arc<Requests>,
    /// Tells when the listener shuts down.
    pub drain: Drain,
}

/// A client stream the connection loop can wait on without holding a buffer: an idle
/// keep-alive connection costs its socket and little else.
pub(crate) trait ClientIo: AsyncRead + AsyncWrite + Unpin + Send + 'static {
    /// Ready when a read would not wait (bytes, end of file or an error), with no buffer lent.
    fn poll_read_ready(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
}

impl ClientIo for tokio::net::TcpStream {
    fn poll_read_ready(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        tokio::net::TcpStream::poll_read_ready(self, cx)
    }
}

impl ClientIo for tokio_rustls::server::TlsStream<tokio::net::TcpStream> {
    /// Decrypts what has arrived (into rustls's own buffer) until there is plaintext or an end.
    fn poll_read_ready(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        tokio::io::AsyncBufRead::poll_fill_buf(Pin::new(self), cx).map_ok(|_| ())
    }
}

/// The listener's shutdown, as its connections see it: an idle connection closes at once, a
/// busy one after the response it is sending (without keep-alive).
#[derive(Clone, Debug)]
pub(crate) struct Drain(tokio::sync::watch::Receiver<bool>);

impl Drain {
    pub(crate) fn is_signalled(&self) -> bool {
        *self.0.borrow()
    }

    /// Completes once the listener drains (at once if it already does).
    pub(crate) async fn signalled(mut self) {
        let _ = self.0.wait_for(|draining| *draining).await;
    }
}

/// Serves any hyper service (the management API's router) with the same cap, timeouts, accept
/// backoff and graceful drain as the gateway's listeners: over plain HTTP/1.1, or with
/// `admin_tls` over HTTPS with those snapshots' management API certificate
/// (`Compiler::with_admin_https_certificate`).
pub async fn serve<S, B>(
    listener: TcpListener,
    settings: ListenerSettings,
    admin_tls: Option<SnapshotHandle>,
    service: S,
    shutdown: impl Future<Output = ()>,
) where
    S: Service<Request<Incoming>, Response = Response<B>> + Clone + Send + Sync + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: Body + Unpin + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let tls = admin_tls.map(|snapshots| TlsSource { snapshots, listener: HttpsListener::Admin });
    let mut builder = http1::Builder::new();
    // hyper's own timer would also cut idle keep-alive connections at the header timeout and
    // boxes a timer per request; `Watched` does both jobs (see watch.rs).
    builder.header_read_timeout(None);
    accept_loop(listener, settings, tls, Hyper { builder, service }, shutdown).await;
}

/// hyper's HTTP/1.1 server with one service.
struct Hyper<S> {
    builder: http1::Builder,
    service: S,
}

impl<S, B> Protocol for Hyper<S>
where
    S: Service<Request<Incoming>, Response = Response<B>> + Clone + Send + Sync + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: Body + Unpin + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    fn serve<IO: ClientIo>(&self, io: IO, accepted: Accepted) -> impl Future<Output = ()> + Send + 'static {
        let Accepted { peer, requests, drain } = accepted;
        let service = self.service.clone();
        // Every request is in flight, for the idle clock, from its head to its body's end.
        let service = service_fn(move |request| {
            let guard = requests.begin();
            let response = service.call(request);
            async move { response.await.map(|response| response.map(|body| TrackedBody::new(body, guard))) }
        });
        let connection = self.builder.serve_connection(TokioIo::new(io), service);
        async move {
            tokio::pin!(connection);
            let ended = tokio::select! {
                ended = connection.as_mut() => ended,
                () = drain.signalled() => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(error) = ended {
                tracing::debug!(%peer, %error, "client connection ended with an error");
            }
        }
    }
}

/// `tls`: where an HTTPS listener finds its server configuration; `None` for plain HTTP.
pub(crate) async fn accept_loop<P: Protocol>(
    listener: TcpListener,
    settings: ListenerSettings,
    tls: Option<TlsSource>,
    protocol: P,
    shutdown: impl Future<Output = ()>,
) {
    let ListenerSettings { name, cap, timeouts } = settings;
    let clock = Clock { header_read: timeouts.header_read, idle: timeouts.idle };
    let protocol = Arc::new(protocol);
    let (drain_sender, drain) = tokio::sync::watch::channel(false);
    let mut backoff = Backoff::default();
    let (mut cap_log, mut error_log, mut no_certificate_log) =
        (Throttle::default(), Throttle::default(), Throttle::default());
    tokio::pin!(shutdown);
    loop {
        let permit = match cap.permits.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                if let Some(suppressed) = cap_log.admit(Instant::now()) {
                    tracing::warn!(
                        listener = name,
                        limit = cap.limit,
                        suppressed,
                        "connection cap reached: new connections wait in the listen backlog until one closes"
                    );
                }
                tokio::select! {
                    permit = cap.permits.clone().acquire_owned() => match permit {
                        Ok(permit) => permit,
                        // Never happens: nothing closes the semaphore.
                        Err(_closed) => break,
                    },
                    () = &mut shutdown => break,
                }
            }
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) if is_peer_error(&error) => {
                    tracing::debug!(listener = name, %error, "client gave up before its connection was accepted");
                    continue;
                }
                Err(error) => {
                    let pause = backoff.failed();
                    if let Some(suppressed) = error_log.admit(Instant::now()) {
                        tracing::warn!(
                            listener = name,
                            %error,
                            suppressed,
                            pause_ms = pause.as_millis() as u64,
                            "accept failed; pausing before the next accept"
                        );
                    }
                    tokio::select! {
                        () = tokio::time::sleep(pause) => continue,
                        () = &mut shutdown => break,
                    }
                }
            },
            () = &mut shutdown => break,
        };
        backoff.succeeded();
        let _ = stream.set_nodelay(true);
        let connection = Connection { clock, drain: Drain(drain.clone()), peer, permit };
        let Some(tls) = &tls else {
            tokio::spawn(connection.serve(stream, protocol.clone()));
            continue;
        };
        let Some(config) = tls.snapshots.load().https.get(tls.listener) else {
            if let Some(suppressed) = no_certificate_log.admit(Instant::now()) {
                tracing::warn!(listener = name, %peer, suppressed, "HTTPS connection refused: no usable listener certificate");
            }
            continue;
        };
        let handshake_timeout = timeouts.tls_handshake;
        let protocol = protocol.clone();
        tokio::spawn(async move {
            let accept = tokio_rustls::TlsAcceptor::from(config).accept(stream);
            match tokio::time::timeout(handshake_timeout, accept).await {
                Ok(Ok(tls)) => connection.serve(tls, protocol).await,
                Ok(Err(error)) => tracing::debug!(%peer, %error, "client TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "client TLS handshake timed out"),
            }
        });
    }
    drop(listener);
    drop(drain);
    let _ = drain_sender.send(true);
    if tokio::time::timeout(DRAIN_TIMEOUT, drain_sender.closed()).await.is_err() {
        tracing::warn!(listener = name, "connections still open after the drain timeout; closing them");
    }
}

/// One accepted connection and what it holds until it ends: its cap permit (handed to the
/// stream, which keeps it while it lingers) and its place in the graceful drain.
struct Connection {
    clock: Clock,
    drain: Drain,
    peer: SocketAddr,
    permit: OwnedSemaphorePermit,
}

impl Connection {
    async fn serve<IO: ClientIo, P: Protocol>(self, io: IO, protocol: Arc<P>) {
        let Connection { clock, drain, peer, permit } = self;
        let requests = Arc::new(Requests::default());
        let io = Lingering::new(Watched::new(io, clock, requests.clone()), permit);
        protocol.serve(io, Accepted { peer, requests, drain }).await;
    }
}
