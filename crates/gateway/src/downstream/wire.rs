//! The client connection, shared by the connection loop (heads in, responses out) and the body
//! of the request in flight, which the upstream reads as it forwards it — while the response may
//! already be going out (full duplex). Both sides run on the connection's task, except when an
//! HTTP/2 backend's connection task reads the body; the lock is held for one poll at a time and
//! never across a wait.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, ready};

use bytes::{Bytes, BytesMut};
use tokio::io::AsyncReadExt;

use crate::framing::{BodyDecoder, Decoded, Sender};
use crate::listener::ClientIo;
use crate::request_body::{BodySource, RequestBody};

/// The first read of a head; most heads fit in one.
pub(super) const HEAD_READ: usize = 4 * 1024;
/// Read size for request bodies.
const BODY_READ: usize = 16 * 1024;
/// Written before the body's first read when the client expects it.
const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

pub(super) struct Wire<IO> {
    pub io: IO,
    /// Bytes read and not yet consumed: a head, a body, pipelined requests. No allocation while
    /// the connection is idle.
    pub buf: BytesMut,
    /// The last head taken off `buf`: once the request is done with it, its allocation is the
    /// next head's buffer (see [`spare`]).
    head: Option<Bytes>,
    body: BodyState,
}

/// The request body being read, as far as the connection is concerned.
struct BodyState {
    decoder: BodyDecoder,
    /// How much of the interim `100 Continue` is still to be written (and then flushed) before
    /// the body is read; `None` when none is owed (not asked for, sent, or overtaken by the
    /// response).
    continue_owed: Option<&'static [u8]>,
    /// The response has ended and the connection took the wire back: the body reads no more.
    detached: bool,
}

impl<IO: ClientIo> Wire<IO> {
    pub(super) fn new(io: IO) -> Self {
        let body = BodyState { decoder: BodyDecoder::Done, continue_owed: None, detached: true };
        Wire { io, buf: BytesMut::new(), head: None, body }
    }

    /// Reads into the buffer, at least a quarter of `size` at a time; `Ok(0)` at end of file.
    pub(super) fn poll_fill(&mut self, cx: &mut Context<'_>, size: usize) -> Poll<io::Result<usize>> {
        if self.buf.capacity() == 0 && size <= HEAD_READ {
            self.buf = spare::take();
        }
        if self.buf.capacity() - self.buf.len() < size / 4 {
            self.buf.reserve(size);
        }
        let read = self.io.read_buf(&mut self.buf);
        tokio::pin!(read);
        std::future::Future::poll(read, cx)
    }

    /// A head parsed off `buf`, to be reclaimed with it.
    pub(super) fn keep_head(&mut self, head: &Bytes) {
        self.head = Some(head.clone());
    }

    /// Lets go of the buffer when nothing is left in it, so that an idle connection holds
    /// none: its allocation (and the last head's, which nothing refers to any more once its
    /// request is done) goes back to the thread's spares.
    pub(super) fn release_buffer(&mut self) {
        if self.buf.is_empty() {
            spare::keep(std::mem::take(&mut self.buf));
            if let Some(Ok(head)) = self.head.take().map(Bytes::try_into_mut) {
                spare::keep(head);
            }
        }
    }

    /// A new request's body starts on the wire.
    pub(super) fn begin_body(&mut self, decoder: BodyDecoder, expect_continue: bool) {
        self.body = BodyState { decoder, continue_owed: expect_continue.then_some(CONTINUE), detached: false };
    }

    /// The response head is about to go out: an interim response not begun is no longer owed;
    /// one half written is finished first (returned, to go before the head).
    pub(super) fn response_starts(&mut self) -> &'static [u8] {
        match self.body.continue_owed.take() {
            Some(rest) if rest.len() < CONTINUE.len() => rest,
            _ => b"",
        }
    }

    /// Whether the request's body (if any) has been read to its end.
    pub(super) fn body_read(&self) -> bool {
        self.body.decoder.is_done()
    }

    /// The response has ended: takes the wire back from the body, and says whether the body
    /// was read to its end (else the connection cannot carry another request).
    pub(super) fn end_request(&mut self) -> bool {
        self.body.detached = true;
        self.body.decoder.is_done()
    }

    fn poll_body(&mut self, cx: &mut Context<'_>) -> Poll<Option<io::Result<Bytes>>> {
        if self.body.detached {
            return Poll::Ready(match self.body.decoder.is_done() {
                true => None,
                false => Some(Err(io::Error::other("the response ended before the request body was read"))),
            });
        }
        // Written, then flushed (an empty rest is written but maybe not flushed yet).
        while let Some(rest) = self.body.continue_owed {
            if rest.is_empty() {
                if let Err(error) = ready!(Pin::new(&mut self.io).poll_flush(cx)) {
                    return Poll::Ready(Some(Err(error)));
                }
                self.body.continue_owed = None;
                break;
            }
            match ready!(Pin::new(&mut self.io).poll_write(cx, rest)) {
                Ok(0) => return Poll::Ready(Some(Err(io::ErrorKind::WriteZero.into()))),
                Ok(written) => self.body.continue_owed = Some(&rest[written..]),
                Err(error) => return Poll::Ready(Some(Err(error))),
            }
        }
        loop {
            match self.body.decoder.decode(&mut self.buf) {
                Ok(Decoded::Data(data)) => return Poll::Ready(Some(Ok(data))),
                Ok(Decoded::Done) => return Poll::Ready(None),
                Ok(Decoded::NeedMore) => {}
                Err(error) => return Poll::Ready(Some(Err(error.into_io(Sender::Client)))),
            }
            match ready!(self.poll_fill(cx, BODY_READ)) {
                Ok(0) => {
                    let ended = self.body.decoder.at_eof().map_err(|error| error.into_io(Sender::Client));
                    return Poll::Ready(ended.err().map(Err));
                }
                Ok(_) => {}
                Err(error) => return Poll::Ready(Some(Err(error))),
            }
        }
    }
}

/// The wire as the connection loop and the request body share it.
pub(super) struct SharedWire<IO>(Mutex<Wire<IO>>);

impl<IO> SharedWire<IO> {
    pub(super) fn new(wire: Wire<IO>) -> Arc<Self> {
        Arc::new(SharedWire(Mutex::new(wire)))
    }

    /// A panic while the lock was held cannot leave the wire half-updated in a way that matters
    /// more than the panic: the poisoned guard is used as is.
    pub(super) fn lock(&self) -> MutexGuard<'_, Wire<IO>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<IO: ClientIo> BodySource for SharedWire<IO> {
    fn poll_data(&self, cx: &mut Context<'_>) -> Poll<Option<io::Result<Bytes>>> {
        self.lock().poll_body(cx)
    }

    fn decoder(&self) -> BodyDecoder {
        self.lock().body.decoder
    }
}

impl RequestBody {
    /// The body of the request just parsed on `wire` (see [`Wire::begin_body`]).
    pub(super) fn from_wire<IO: ClientIo>(wire: &Arc<SharedWire<IO>>) -> Self {
        let source: Arc<dyn BodySource> = wire.clone();
        RequestBody::from_source(source)
    }
}

/// Head buffers between requests, per thread: a connection takes one when a request arrives and
/// gives it back when the response is out, so an idle connection holds no buffer and a busy one
/// does not allocate (and free) one per request.
mod spare {
    use std::cell::RefCell;

    use bytes::BytesMut;

    use super::HEAD_READ;

    /// About the requests one thread has in flight at once under load; a burst beyond that
    /// allocates as before, and the spares never hold more than this.
    const KEPT: usize = 64;

    thread_local! {
        static SPARES: RefCell<Vec<BytesMut>> = const { RefCell::new(Vec::new()) };
    }

    /// A spare buffer, or an empty one (which allocates on its first reserve).
    pub(super) fn take() -> BytesMut {
        SPARES.with_borrow_mut(Vec::pop).unwrap_or_default()
    }

    /// Keeps `buf` (its contents cleared) if it is a whole head buffer and there is room.
    pub(super) fn keep(mut buf: BytesMut) {
        buf.clear();
        if buf.capacity() == HEAD_READ {
            SPARES.with_borrow_mut(|spares| {
                if spares.len() < KEPT {
                    spares.push(buf);
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use std::future::poll_fn;

    use tokio::io::AsyncWriteExt;
    use tokio::net::{TcpListener, TcpStream};

    use super::*;
    use crate::downstream::head::{RequestHead, parse_request};

    /// One request's head read into the wire's buffer and parsed as the connection loop does,
    /// with where that buffer's memory lies.
    async fn next_head(wire: &mut Wire<TcpStream>, client: &mut TcpStream) -> (*const u8, RequestHead) {
        client.write_all(b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n").await.unwrap();
        poll_fn(|cx| wire.poll_fill(cx, HEAD_READ)).await.unwrap();
        let at = wire.buf.as_ptr();
        let head = parse_request(&mut wire.buf).unwrap().unwrap();
        wire.keep_head(&head.bytes);
        (at, head)
    }

    #[tokio::test]
    async fn a_finished_request_s_head_buffer_is_the_next_head_s_and_an_idle_wire_holds_none() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let mut wire = Wire::new(listener.accept().await.unwrap().0);

        // Its request still holds the fields: the buffer is not taken back.
        let (first, held) = next_head(&mut wire, &mut client).await;
        wire.release_buffer();
        assert_eq!(wire.buf.capacity(), 0, "idle, the wire holds no buffer");
        let (second, done) = next_head(&mut wire, &mut client).await;
        assert_ne!(second, first, "a buffer still in use was handed out again");
        drop((held, done));

        wire.release_buffer();
        assert_eq!(wire.buf.capacity(), 0);
        // Had the buffer been freed, the allocator would hand its memory to this.
        let decoy = Vec::<u8>::with_capacity(HEAD_READ);
        let (third, _) = next_head(&mut wire, &mut client).await;
        assert_eq!(third, second, "the finished request's buffer carries the next head");
        drop(decoy);
    }
}
