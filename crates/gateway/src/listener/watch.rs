//! The per-connection clock: closes a client connection that takes too long to send a request
//! head, or that sits idle between requests, and leaves alone one with a request in flight.
//!
//! Why not hyper's own `header_read_timeout`: in hyper 1.x (`proto/h1/conn.rs`,
//! `poll_read_head`) that timer is armed whenever the connection starts waiting for a head — at
//! the first poll of a new connection and again right after every response ends — and is
//! dropped when a head is complete. It is therefore one window covering *idle wait + head
//! read*: with it at 30 s an idle keep-alive connection is closed after 30 s, so a longer
//! idle timeout cannot exist beside it. It also boxes a new timer for every request head. Here
//! one timer per connection serves both limits, and it is reset only when a deadline moves
//! earlier or fires early, not per request.
//!
//! Phases, as HAProxy's `timeout http-request` / `timeout http-keep-alive` define them:
//! - **head**: from the start of the connection, or from the first byte after an idle wait,
//!   until a complete head — at most the header-read timeout, however slowly bytes trickle;
//! - **busy**: a request's head has been parsed and its response body has not ended — no
//!   limit here (the forward-request timeout bounds the backend; a slow client body is
//!   bounded by that too);
//! - **idle**: a response has ended and no byte of the next request has arrived — at most the
//!   idle timeout.
//!
//! "Busy" is known exactly, not guessed from socket traffic: every request holds a
//! [`RequestGuard`] from its parsed head to the end of its response: the gateway's connection
//! loop (`downstream/`) holds it itself; for hyper (the management API) it goes from the
//! moment hyper hands the request to the service until hyper drops its response body (which
//! it does at the body's end, or when the connection dies). The gateway's loop waits for an
//! idle connection's next bytes through [`ClientIo::poll_read_ready`], which keeps the clock
//! too.
//!
//! One approximation: bytes of a pipelined next head that arrive while a response is still
//! being sent are not seen as the start of a head; if that head stays incomplete, the
//! connection gets the idle timeout instead of the header-read timeout (still bounded).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use hyper::body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use super::ClientIo;

/// The two limits a [`Watched`] connection enforces.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Clock {
    pub header_read: Duration,
    pub idle: Duration,
}

/// Requests of one connection begun and finished, shared by the connection's reader side
/// ([`Watched`]) and its requests ([`RequestGuard`]); all of them run on the connection's task.
#[derive(Debug, Default)]
pub(crate) struct Requests {
    begun: AtomicU64,
    finished: AtomicU64,
}

impl Requests {
    /// Marks a request as in flight until the returned guard is dropped.
    pub(crate) fn begin(self: &Arc<Self>) -> RequestGuard {
        self.begun.fetch_add(1, Ordering::Relaxed);
        RequestGuard(self.clone())
    }
}

/// Held by a request from its head to the end of its response body.
#[derive(Debug)]
pub(crate) struct RequestGuard(Arc<Requests>);

impl Drop for RequestGuard {
    fn drop(&mut self) {
        self.0.finished.fetch_add(1, Ordering::Relaxed);
    }
}

/// A response body that keeps its request in flight until hyper drops it.
#[derive(Debug)]
pub(crate) struct TrackedBody<B> {
    body: B,
    _request: RequestGuard,
}

impl<B> TrackedBody<B> {
    pub(crate) fn new(body: B, request: RequestGuard) -> Self {
        TrackedBody { body, _request: request }
    }
}

impl<B: Body + Unpin> Body for TrackedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Head { since: Instant },
    Busy,
    Idle { since: Instant },
}

/// A client stream whose reads fail with `TimedOut` once the current phase's limit passes
/// while hyper waits for bytes; hyper then closes the connection (no response: an idle
/// client gets the silent close RFC 9112 §9.3 allows; a client mid-head gets what nginx's
/// `client_header_timeout` gives it).
pub(crate) struct Watched<IO> {
    io: IO,
    clock: Clock,
    requests: Arc<Requests>,
    /// `Requests::begun` when the phase was last brought up to date: a request that began and
    /// ended between two reads still ends the head phase.
    begun_seen: u64,
    phase: Phase,
    /// Armed no later than the current deadline; when it fires early (the deadline moved on)
    /// it is pushed to the real one.
    timer: Pin<Box<Sleep>>,
}

impl<IO> Watched<IO> {
    /// Starts in the head phase: a new connection gets the header-read timeout to send its
    /// first complete head, counted from now.
    pub(crate) fn new(io: IO, clock: Clock, requests: Arc<Requests>) -> Self {
        let now = Instant::now();
        Watched {
            io,
            clock,
            requests,
            begun_seen: 0,
            phase: Phase::Head { since: now },
            timer: Box::pin(tokio::time::sleep_until(now + clock.header_read)),
        }
    }

    /// Brings the phase up to date with the requests begun and finished since the last look.
    fn refresh_phase(&mut self) {
        let begun = self.requests.begun.load(Ordering::Relaxed);
        let finished = self.requests.finished.load(Ordering::Relaxed);
        if begun != finished {
            self.phase = Phase::Busy;
        } else if begun != self.begun_seen || self.phase == Phase::Busy {
            self.phase = Phase::Idle { since: Instant::now() };
        }
        self.begun_seen = begun;
    }

    /// Bytes arrived: an idle connection starts its next head.
    fn on_bytes(&mut self) {
        self.refresh_phase();
        if let Phase::Idle { .. } = self.phase {
            self.phase = Phase::Head { since: Instant::now() };
        }
    }

    /// The response just ended: arm the idle clock now. hyper (without its own header timer)
    /// does not read again when it goes idle if its last read, made while the request was in
    /// flight, was already waiting — so no read would come to arm it, and an idle connection
    /// would never be closed. hyper flushes the end of every response, so this runs in time.
    fn arm_when_idle(&mut self, cx: &mut Context<'_>) {
        if self.phase == Phase::Busy {
            self.refresh_phase();
            if self.phase != Phase::Busy {
                // Registers the timer with this task; the deadline is a full idle timeout away,
                // and when it passes the read hyper is then waiting in reports the error.
                let _ = self.poll_deadline(cx);
            }
        }
    }

    /// Called when a read would wait: `Ready(Err)` once the current phase's limit has passed.
    fn poll_deadline(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        self.refresh_phase();
        let (deadline, what) = match self.phase {
            Phase::Busy => return Poll::Pending,
            Phase::Head { since } => (since + self.clock.header_read, "the request head did not arrive in time"),
            Phase::Idle { since } => (since + self.clock.idle, "idle keep-alive connection timed out"),
        };
        if self.timer.deadline() > deadline {
            self.timer.as_mut().reset(deadline);
        }
        loop {
            ready!(self.timer.as_mut().poll(cx));
            if self.timer.deadline() >= deadline {
                return Poll::Ready(io::Error::new(io::ErrorKind::TimedOut, what));
            }
            self.timer.as_mut().reset(deadline);
        }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Watched<IO> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    this.on_bytes();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(error)) => Poll::Ready(Err(error)),
            Poll::Pending => this.poll_deadline(cx).map(Err),
        }
    }
}

impl<IO: ClientIo> ClientIo for Watched<IO> {
    fn poll_read_ready(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.io.poll_read_ready(cx) {
            Poll::Ready(ready) => Poll::Ready(ready),
            Poll::Pending => self.poll_deadline(cx).map(Err),
        }
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Watched<IO> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.arm_when_idle(cx);
        Pin::new(&mut this.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.arm_when_idle(cx);
        Pin::new(&mut this.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.arm_when_idle(cx);
        Pin::new(&mut this.io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

    const CLOCK: Clock = Clock { header_read: Duration::from_secs(30), idle: Duration::from_secs(60) };

    fn watched() -> (Watched<DuplexStream>, DuplexStream, Arc<Requests>) {
        let (server, client) = tokio::io::duplex(1024);
        let requests = Arc::new(Requests::default());
        (Watched::new(server, CLOCK, requests.clone()), client, requests)
    }

    /// Reads until the stream fails or `limit` passes (paused time); the error's kind and when.
    async fn read_until_error(stream: &mut Watched<DuplexStream>, limit: Duration) -> Option<(Duration, String)> {
        let start = Instant::now();
        let mut buf = [0u8; 64];
        match tokio::time::timeout(limit, async {
            loop {
                if let Err(error) = stream.read(&mut buf).await {
                    return error;
                }
            }
        })
        .await
        {
            Ok(error) => {
                assert_eq!(error.kind(), io::ErrorKind::TimedOut);
                Some((start.elapsed(), error.to_string()))
            }
            Err(_) => None,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_new_connection_gets_the_header_timeout_even_when_bytes_trickle() {
        let (mut server, mut client, _) = watched();
        tokio::spawn(async move {
            for _ in 0..100 {
                if client.write_all(b"G").await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        });
        let (after, message) = read_until_error(&mut server, Duration::from_secs(120)).await.expect("closed");
        assert_eq!(after, Duration::from_secs(30));
        assert!(message.contains("head"), "{message}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_in_flight_is_never_timed_out() {
        let (mut server, _client, requests) = watched();
        let guard = requests.begin();
        assert_eq!(read_until_error(&mut server, Duration::from_secs(600)).await, None);
        drop(guard);
        let (after, message) = read_until_error(&mut server, Duration::from_secs(120)).await.expect("closed");
        assert_eq!(after, Duration::from_secs(60), "the idle clock starts when the response ends");
        assert!(message.contains("idle"), "{message}");
    }

    #[tokio::test(start_paused = true)]
    async fn after_a_response_the_idle_timeout_applies_then_the_header_timeout_from_the_first_byte() {
        let (mut server, mut client, requests) = watched();
        // A request that begins and ends between two reads still ends the head phase.
        drop(requests.begin());
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(50)).await;
            client.write_all(b"GET / HT").await.unwrap();
            tokio::time::sleep(Duration::from_secs(600)).await;
        });
        let (after, message) = read_until_error(&mut server, Duration::from_secs(600)).await.expect("closed");
        assert_eq!(after, Duration::from_secs(50 + 30), "idle for 50 s (under 60), then 30 s for the head");
        assert!(message.contains("head"), "{message}");
    }

    /// A real hyper connection over an in-memory stream, as the listener builds it, answering
    /// every request after `answer_after`: how long after the client read its response does
    /// the connection end?
    async fn hyper_closes_idle_connection_after(answer_after: Duration) -> Duration {
        let (server, mut client) = tokio::io::duplex(4096);
        let requests = Arc::new(Requests::default());
        let io = hyper_util::rt::TokioIo::new(Watched::new(server, CLOCK, requests.clone()));
        let service = hyper::service::service_fn(move |_request| {
            let guard = requests.begin();
            async move {
                tokio::time::sleep(answer_after).await;
                let body = TrackedBody::new(crate::GatewayBody::complete(bytes::Bytes::from_static(b"hi")), guard);
                Ok::<_, std::convert::Infallible>(hyper::Response::new(body))
            }
        });
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder.header_read_timeout(None);
        let connection = tokio::spawn(async move { builder.serve_connection(io, service).await });
        client.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
        let mut response = Vec::new();
        while !response.ends_with(b"hi") {
            let mut buf = [0u8; 256];
            let n = client.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed before the response ended");
            response.extend_from_slice(&buf[..n]);
        }
        let answered = Instant::now();
        let ended = tokio::time::timeout(Duration::from_secs(600), connection).await;
        // hyper ends an idle connection whose read fails quietly (Ok), as it does on EOF.
        let _ = ended.expect("hyper ended the idle connection").unwrap();
        answered.elapsed()
    }

    #[tokio::test(start_paused = true)]
    async fn hyper_is_made_to_close_an_idle_connection_even_though_it_does_not_read_when_idle() {
        assert_eq!(hyper_closes_idle_connection_after(Duration::ZERO).await, CLOCK.idle);
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_answer_longer_than_both_limits_is_served_then_idle_counts() {
        assert_eq!(hyper_closes_idle_connection_after(Duration::from_secs(200)).await, CLOCK.idle);
    }

    #[test]
    fn the_body_guard_ends_the_request_when_the_body_is_dropped() {
        let requests = Arc::new(Requests::default());
        let body = TrackedBody::new(Empty, requests.begin());
        assert_eq!(requests.begun.load(Ordering::Relaxed), 1);
        assert_eq!(requests.finished.load(Ordering::Relaxed), 0);
        assert!(body.is_end_stream(), "is_end_stream is passed through, so hyper drops the body early");
        drop(body);
        assert_eq!(requests.finished.load(Ordering::Relaxed), 1);
    }

    struct Empty;

    impl Body for Empty {
        type Data = bytes::Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<bytes::Bytes>, Self::Error>>> {
            Poll::Ready(None)
        }

        fn is_end_stream(&self) -> bool {
            true
        }
    }
}
