//! HTTP/1.1 towards clients: the gateway listeners' own server side of the protocol (the
//! management API keeps hyper's). One task per connection runs this loop:
//!
//! 1. **Idle**: wait until the socket is readable, holding no buffer — an idle keep-alive
//!    connection costs its socket, its task and little else (hyper keeps an 8 KiB read and an
//!    8 KiB write buffer per connection for its whole life; nginx, like this, none).
//! 2. **Head**: read into a buffer taken now (4 KiB, grown up to the 64 KiB limit) and parse
//!    it ([`head::parse_request`]); a malformed head gets its 400 (431 when too large) and the
//!    connection closes.
//! 3. **Busy**: the request goes to [`crate::proxy::handle`] with a [`RequestBody`] that reads
//!    the client's body from the connection as the upstream forwards it; the response head and
//!    body are written as they come — small pieces gathered into one write, large ones written
//!    from where they lie, behind a vectored write of their framing.
//! 4. The connection is reused only if the client wants it, the request body was read to its end,
//!    the response was framed and sent in full, and the listener is not draining; otherwise it
//!    is shut down (and lingers, see `listener/linger.rs`) or, after a failure, dropped.
//!
//! Pipelined requests are served in order from what is left in the buffer. Timeouts are the
//! listener's (`listener/watch.rs`): the request in flight is marked busy from its head to the
//! end of its response.

mod head;
mod wire;

/// The pure parser, for the fuzz entry points.
#[cfg(feature = "fuzzing")]
pub(crate) mod fuzzing {
    pub(crate) use super::head::{MAX_HEAD_BYTES, parse_request};
}

use std::collections::VecDeque;
use std::future::{Future, poll_fn};
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes};
use http::{Request, Response};
use hyper::body::Body;
use tokio::io::AsyncWrite;

use self::head::{Refusal, RequestFacts, RequestHead, ResponseFraming, encode_response, parse_request};
use self::wire::{HEAD_READ, SharedWire, Wire};
use crate::body::GatewayBody;
use crate::framing::chunk_size_line;
use crate::listener::{
    Accepted, ClientIo, Drain, ListenerSettings, Protocol, Requests, SnapshotHandle, TlsSource, accept_loop,
};
use crate::proxy::{self, Downstream};
use crate::request_body::RequestBody;
use crate::snapshot::HttpsListener;

/// Body pieces up to this size are copied next to their framing; larger ones are written from
/// their own buffer.
const COPY_AT_MOST: usize = 4 * 1024;
/// How much is gathered for one write, and in how many pieces at most.
const GATHER: usize = 64 * 1024;
const MAX_PIECES: usize = 16;
/// What a response head usually takes, with a small body behind it.
const HEAD_CAPACITY: usize = 1024;

/// Serves plain HTTP on `listener` until `shutdown` completes, then drains open connections.
pub async fn serve_http(
    listener: tokio::net::TcpListener,
    settings: ListenerSettings,
    snapshots: SnapshotHandle,
    shutdown: impl Future<Output = ()>,
) {
    accept_loop(listener, settings, None, Gateway { snapshots, https: false }, shutdown).await;
}

/// Serves HTTPS with the certificate of the current snapshot (a replaced certificate is used
/// from the next connection on); connections are refused while the snapshot has none.
pub async fn serve_https(
    listener: tokio::net::TcpListener,
    settings: ListenerSettings,
    snapshots: SnapshotHandle,
    shutdown: impl Future<Output = ()>,
) {
    let tls = TlsSource { snapshots: snapshots.clone(), listener: HttpsListener::Gateway };
    accept_loop(listener, settings, Some(tls), Gateway { snapshots, https: true }, shutdown).await;
}

/// The gateway's side of a listener: each connection runs [`serve`] over the current snapshot.
struct Gateway {
    snapshots: SnapshotHandle,
    https: bool,
}

impl Protocol for Gateway {
    fn serve<IO: ClientIo>(&self, io: IO, accepted: Accepted) -> impl Future<Output = ()> + Send + 'static {
        let Accepted { peer, requests, drain } = accepted;
        serve(io, self.snapshots.clone(), Downstream::new(peer, self.https), requests, drain)
    }
}

/// Serves requests on `io` until the client closes, a limit ends the connection, or the
/// listener drains; the snapshot is loaded once per request, so the whole request sees one
/// configuration.
async fn serve<IO: ClientIo>(
    io: IO,
    snapshots: SnapshotHandle,
    downstream: Downstream,
    requests: Arc<Requests>,
    drain: Drain,
) {
    let wire = SharedWire::new(Wire::new(io));
    // One wait for the drain for the connection's life: it registers once, not per request.
    let drained = drain.clone().signalled();
    tokio::pin!(drained);
    loop {
        let Some(next) = next_head(&wire, drained.as_mut()).await else { return };
        // Boxed: answering holds a request's state (the backend exchange, the response being
        // written), a few KiB, and this loop lives as long as the connection; boxed, that
        // memory is held only while a request is in flight.
        match Box::pin(answer(next, &wire, &snapshots, &downstream, &requests, &drain)).await {
            After::Next => wire.lock().release_buffer(),
            After::Close => {
                shut_down(&wire).await;
                return;
            }
            After::Abort => return,
        }
    }
}

/// What becomes of the connection after a response.
enum After {
    /// On to the next request.
    Next,
    /// Shut down, then closed (lingering).
    Close,
    /// Dropped at once: the response was cut short, and the client must not take it for whole.
    Abort,
}

/// Answers one request head (or refuses a malformed one) and says what becomes of the connection.
async fn answer<IO: ClientIo>(
    head: Result<RequestHead, Refusal>,
    wire: &Arc<SharedWire<IO>>,
    snapshots: &SnapshotHandle,
    downstream: &Downstream,
    requests: &Arc<Requests>,
    drain: &Drain,
) -> After {
    let RequestHead { parts, body, facts, .. } = match head {
        Ok(head) => head,
        Err(refusal) => {
            tracing::debug!(peer = %downstream.peer(), %refusal, "request refused before routing");
            let mut response = Response::new(GatewayBody::complete(Bytes::new()));
            *response.status_mut() = refusal.status();
            let facts = RequestFacts { head_method: false, http10: false, keep_alive: false, expect_continue: false };
            let _ = write_response(wire, response, facts, false).await;
            return After::Close;
        }
    };
    let guard = requests.begin();
    let request_body = match body.is_done() {
        true => RequestBody::empty(),
        false => {
            wire.lock().begin_body(body, facts.expect_continue);
            RequestBody::from_wire(wire)
        }
    };
    let request = Request::from_parts(parts, request_body);
    let snapshot = snapshots.load_full();
    let response = proxy::handle(&snapshot, request, downstream).await;
    drop(snapshot);
    let reusable = !drain.is_signalled() && wire.lock().body_read();
    let sent = write_response(wire, response, facts, reusable).await;
    drop(guard);
    let body_read = wire.lock().end_request();
    match sent {
        Ok(true) if body_read => After::Next,
        Ok(_) => After::Close,
        Err(error) => {
            tracing::debug!(peer = %downstream.peer(), %error, "response to the client broke off");
            After::Abort
        }
    }
}

/// Waits for the next request head: parsed from what is buffered (a pipelined request), or read
/// once the socket is readable — no buffer is held while waiting for that. `None` when there is
/// nothing to answer: the client closed, a read failed or timed out, or the listener drains an
/// idle connection.
async fn next_head<IO: ClientIo>(
    wire: &SharedWire<IO>,
    mut drained: Pin<&mut impl Future<Output = ()>>,
) -> Option<Result<RequestHead, Refusal>> {
    loop {
        let buffered = {
            let mut wire = wire.lock();
            if !wire.buf.is_empty() {
                match parse_request(&mut wire.buf) {
                    Ok(Some(head)) => {
                        wire.keep_head(&head.bytes);
                        return Some(Ok(head));
                    }
                    Ok(None) => {}
                    Err(refusal) => return Some(Err(refusal)),
                }
            }
            !wire.buf.is_empty()
        };
        if !buffered {
            tokio::select! {
                biased;
                () = drained.as_mut() => return None,
                ready = poll_fn(|cx| wire.lock().io.poll_read_ready(cx)) => ready.ok()?,
            }
        }
        match poll_fn(|cx| wire.lock().poll_fill(cx, HEAD_READ)).await {
            Ok(0) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}

/// Sends the response; `Ok(keep)` once it is all written, `keep` saying whether the connection
/// may carry another request; `Err` when the body failed or did not match its framing, or the
/// client's socket did, and the connection must be dropped.
async fn write_response<IO: ClientIo>(
    wire: &SharedWire<IO>,
    response: Response<GatewayBody>,
    facts: RequestFacts,
    reusable: bool,
) -> io::Result<bool> {
    let (parts, body) = response.into_parts();
    let mut out = Outgoing { small: Vec::with_capacity(HEAD_CAPACITY), ..Outgoing::default() };
    let interim_rest = wire.lock().response_starts();
    out.copy(interim_rest);
    let date = date::now();
    let length = body.size_hint().exact();
    let head = out.gather(|small| encode_response(small, &parts, facts, length, reusable, &date));
    drop(parts);
    let mut framer = Framer::new(head.framing);
    // Never polled when bodiless: a HEAD response's body is the backend's nothing, an error's
    // or a 204's is empty. Dropping it ends the exchange.
    let mut body = Some(body).filter(|_| head.framing != ResponseFraming::Bodiless);
    framer.done = body.is_none();
    poll_fn(|cx| {
        loop {
            let mut waiting = false;
            while let Some(body) = body.as_mut().filter(|_| !framer.done && out.has_room()) {
                match Pin::new(body).poll_frame(cx) {
                    Poll::Ready(Some(Ok(frame))) => {
                        if let Ok(data) = frame.into_data() {
                            framer.push(&mut out, data)?;
                        }
                    }
                    // The body logged why (see `GatewayBody`).
                    Poll::Ready(Some(Err(_))) => return Poll::Ready(Err(io::Error::other("the response body failed"))),
                    Poll::Ready(None) => framer.finish(&mut out)?,
                    Poll::Pending => {
                        waiting = true;
                        break;
                    }
                }
            }
            let mut wire = wire.lock();
            ready!(out.poll_write(&mut wire.io, cx))?;
            if framer.done || waiting {
                ready!(Pin::new(&mut wire.io).poll_flush(cx))?;
                if framer.done {
                    return Poll::Ready(Ok(head.keep_alive));
                }
                return Poll::Pending;
            }
        }
    })
    .await
}

/// Half-closes the connection after its last response (the drop that follows lingers).
async fn shut_down<IO: ClientIo>(wire: &SharedWire<IO>) {
    let _ = poll_fn(|cx| Pin::new(&mut wire.lock().io).poll_shutdown(cx)).await;
}

/// Bytes on their way to the client, in order: large pieces of body written from their own
/// buffers, each behind the framing gathered before it, then what is gathered in `small`
/// (framing and small pieces of body, copied).
#[derive(Default)]
struct Outgoing {
    large: VecDeque<Bytes>,
    small: Vec<u8>,
    /// How much of `small` the socket has taken.
    small_sent: usize,
    /// Bytes queued in all.
    queued: usize,
}

impl Outgoing {
    /// Appends what `write` puts in the small buffer (a head, framing).
    fn gather<T>(&mut self, write: impl FnOnce(&mut Vec<u8>) -> T) -> T {
        let before = self.small.len();
        let written = write(&mut self.small);
        self.queued += self.small.len() - before;
        written
    }

    fn copy(&mut self, bytes: &[u8]) {
        self.gather(|small| small.extend_from_slice(bytes));
    }

    /// Queues `data` to be written from where it lies, after everything queued so far.
    fn share(&mut self, data: Bytes) {
        if !self.small.is_empty() {
            self.large.push_back(Bytes::from(std::mem::take(&mut self.small)));
        }
        self.queued += data.len();
        self.large.push_back(data);
    }

    /// Whether more may be gathered before a write: up to [`GATHER`] bytes, in at most
    /// [`MAX_PIECES`] pieces (one vectored write takes them all).
    fn has_room(&self) -> bool {
        self.queued < GATHER && self.large.len() < MAX_PIECES
    }

    /// Writes everything queued; ready once the socket has taken it all.
    fn poll_write<IO: AsyncWrite + Unpin>(&mut self, io: &mut IO, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.queued > 0 {
            let mut slices = [IoSlice::new(&[]); MAX_PIECES + 1];
            for (slice, piece) in slices.iter_mut().zip(&self.large) {
                *slice = IoSlice::new(piece);
            }
            slices[self.large.len()] = IoSlice::new(&self.small[self.small_sent..]);
            let mut written = match ready!(Pin::new(&mut *io).poll_write_vectored(cx, &slices[..=self.large.len()]))? {
                0 => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                written => written,
            };
            self.queued -= written;
            while let Some(piece) = self.large.front_mut() {
                if written < piece.len() {
                    piece.advance(written);
                    written = 0;
                    break;
                }
                written -= piece.len();
                self.large.pop_front();
            }
            self.small_sent += written;
        }
        self.small.clear();
        self.small_sent = 0;
        Poll::Ready(Ok(()))
    }
}

/// Frames the body's pieces as the response head announced.
struct Framer {
    framing: ResponseFraming,
    /// What a content-length still expects.
    remaining: u64,
    done: bool,
}

impl Framer {
    fn new(framing: ResponseFraming) -> Self {
        let remaining = match framing {
            ResponseFraming::Length(length) => length,
            _ => 0,
        };
        Framer { framing, remaining, done: false }
    }

    fn push(&mut self, out: &mut Outgoing, data: Bytes) -> io::Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        match self.framing {
            ResponseFraming::Length(_) => {
                self.remaining = self
                    .remaining
                    .checked_sub(data.len() as u64)
                    .ok_or_else(|| io::Error::other("the response body is longer than its content-length"))?;
            }
            ResponseFraming::Chunked => out.gather(|small| chunk_size_line(small, data.len())),
            ResponseFraming::UntilClose | ResponseFraming::Bodiless => {}
        }
        let suffix: &'static [u8] = if self.framing == ResponseFraming::Chunked { b"\r\n" } else { b"" };
        if data.len() <= COPY_AT_MOST {
            out.copy(&data);
        } else {
            out.share(data);
        }
        out.copy(suffix);
        Ok(())
    }

    fn finish(&mut self, out: &mut Outgoing) -> io::Result<()> {
        self.done = true;
        match self.framing {
            ResponseFraming::Length(_) if self.remaining > 0 => {
                Err(io::Error::other("the response body is shorter than its content-length"))
            }
            ResponseFraming::Chunked => {
                out.copy(b"0\r\n\r\n");
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

/// The `Date` field's value (RFC 9110 §6.6.1), formatted once a second per thread.
mod date {
    use std::cell::RefCell;
    use std::time::{SystemTime, UNIX_EPOCH};

    /// `Sun, 06 Nov 1994 08:49:37 GMT`
    pub(super) type HttpDate = [u8; 29];

    thread_local! {
        static CACHED: RefCell<(u64, HttpDate)> = const { RefCell::new((u64::MAX, [b' '; 29])) };
    }

    pub(super) fn now() -> HttpDate {
        let now = SystemTime::now();
        let second = now.duration_since(UNIX_EPOCH).map_or(0, |since| since.as_secs());
        CACHED.with_borrow_mut(|(cached_second, date)| {
            if *cached_second != second {
                let formatted = httpdate::fmt_http_date(now);
                if formatted.len() == date.len() {
                    date.copy_from_slice(formatted.as_bytes());
                }
                *cached_second = second;
            }
            *date
        })
    }
}
