//! HTTP/1.1 to a backend, driven by the task serving the downstream request: no connection task,
//! no channel between the two sides. The exchange is full duplex: the response is read while the
//! request body is still being written, so a backend that answers early (413, 401) is heard at
//! once; the upload then goes on alongside the response body and the connection is reused only if
//! both ended cleanly. A response body is read straight from the backend connection, which goes
//! back to its pool when the body ends. Message heads are [`super::head`]'s pure functions.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, Waker, ready};

use bytes::{Bytes, BytesMut};
use http::{Method, Response};
use hyper::body::{Body, Frame, SizeHint};
use tokio::io::{AsyncReadExt, AsyncWrite};

use super::UpstreamError;
use super::head::{Head, Keep, MAX_HEAD_BYTES, RequestHead, ResponseHead, encode_head, parse_head};
use super::pool::Home;
use super::transport::Transport;
use crate::framing::{BodyDecoder, Decoded, Sender, chunk_size_line};
use crate::request_body::RequestBody;

/// Read size; also the request body bytes gathered before a write.
const IO_CHUNK: usize = 16 * 1024;
/// Interim (1xx) responses accepted before the final one: a backend sending them without end
/// would otherwise hold the request until its timeout while looking alive.
const MAX_INTERIM_RESPONSES: usize = 16;

pub(crate) struct H1Conn {
    io: Transport,
    /// Bytes read from the backend and not yet consumed.
    buf: BytesMut,
    /// The last request's buffer, kept to reuse its allocation.
    spare: Vec<u8>,
}

/// A request on its way to a backend: its bytes gathered and not yet written, and the part of
/// the client's body not read yet.
pub(crate) struct Upload {
    out: Vec<u8>,
    /// How much of `out` the socket has accepted.
    sent: usize,
    /// `None` once the client's body ended (its terminator is then in `out`), or if it had none.
    body: Option<RequestBody>,
    bodyless: bool,
    chunked: bool,
    /// Whether any byte went into the socket. Until then `out` holds everything taken from
    /// the client, so the request can be sent again, whole, on another connection.
    written_any: bool,
    /// Everything written and flushed.
    finished: bool,
}

impl Upload {
    fn push(&mut self, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        if self.chunked {
            chunk_size_line(&mut self.out, data.len());
        }
        self.out.extend_from_slice(data);
        if self.chunked {
            self.out.extend_from_slice(b"\r\n");
        }
    }

    fn end_body(&mut self) {
        self.body = None;
        if self.chunked {
            self.out.extend_from_slice(b"0\r\n\r\n");
        }
    }
}

/// A failed HTTP/1.1 exchange, and whether its request may go out again on a fresh connection.
#[derive(Debug)]
pub(crate) struct ExchangeError {
    pub error: UpstreamError,
    pub retry: Retry,
}

/// When a request that failed on one connection may be sent again (RFC 9112 §9.3.1).
pub(crate) enum Retry {
    /// Nothing of it reached the socket: here it is, untouched, for another connection.
    Always(Upload),
    /// It may have reached the backend: only an idempotent method may be repeated (and only a
    /// bodyless request can be, since a body is consumed as it is written).
    IfIdempotent,
    Never,
}

impl std::fmt::Debug for Retry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Retry::Always(_) => "Always",
            Retry::IfIdempotent => "IfIdempotent",
            Retry::Never => "Never",
        })
    }
}

impl Retry {
    pub(crate) fn allows(&self, method: &Method) -> bool {
        match self {
            Retry::Always(_) => true,
            // RFC 9110 §9.2.2.
            Retry::IfIdempotent => method.is_idempotent(),
            Retry::Never => false,
        }
    }
}

/// A response whose head has been read; its body is still on the connection, or already in
/// hand when it was small enough to arrive with the head.
pub(crate) struct Exchange {
    pub response: Response<()>,
    pub body: ResponseBody,
}

pub(crate) enum ResponseBody {
    /// The whole body arrived with the head; the connection is already back in its pool.
    Complete(Bytes),
    Streaming(H1Body),
}

/// Why the exchange stopped before a final response head.
enum HeadFailure {
    /// The client's request body broke off or was malformed.
    Client(io::Error),
    Backend(UpstreamError),
}

/// How far the exchange got before the final response head.
#[derive(Default)]
struct HeadProgress {
    /// The upload failed; the backend may still have answered before it stopped reading.
    write_error: Option<io::Error>,
    /// Some response byte arrived.
    answered: bool,
    /// Interim (1xx) responses skipped.
    interim: usize,
}

/// Why the upload stopped.
enum UploadError {
    Client(io::Error),
    Backend(io::Error),
}

impl H1Conn {
    pub(crate) fn new(io: Transport) -> Self {
        Self { io, buf: BytesMut::with_capacity(IO_CHUNK), spare: Vec::with_capacity(1024) }
    }

    /// Whether an idle connection can carry a request: nothing unread and the backend has not
    /// closed it. Bytes a backend wrote after a complete response (more than its
    /// content-length, a body after HEAD or 204) would otherwise be taken as the next
    /// request's response — another client's. One poll with a no-op waker: while tokio's
    /// readiness says the socket has nothing, this costs no system call; when it has something
    /// (data, EOF, an error, or only TLS session tickets) it is read, and anything but tickets
    /// condemns the connection.
    pub(crate) fn is_idle_and_open(&mut self) -> bool {
        if !self.buf.is_empty() {
            return false;
        }
        let mut cx = Context::from_waker(Waker::noop());
        matches!(self.poll_fill(&mut cx), Poll::Pending) && self.buf.is_empty()
    }

    /// The request, serialised into this connection's spare buffer, ready for [`Self::exchange`].
    pub(crate) fn upload(&mut self, head: &RequestHead<'_>, body: Option<RequestBody>) -> Upload {
        let mut out = std::mem::take(&mut self.spare);
        out.clear();
        encode_head(&mut out, head);
        let chunked = head.chunked && body.is_some();
        Upload { out, sent: 0, bodyless: body.is_none(), body, chunked, written_any: false, finished: false }
    }

    /// Sends the request and reads the response head, both at once. On failure the error says
    /// whether the request may be sent again on a fresh connection.
    pub(crate) async fn exchange(
        mut self,
        mut upload: Upload,
        method: &Method,
        release: Home<H1Conn>,
    ) -> Result<Exchange, ExchangeError> {
        let mut progress = HeadProgress::default();
        let head = std::future::poll_fn(|cx| self.poll_head(cx, &mut upload, method, &mut progress)).await;
        let ResponseHead { response, mut decoder, keep } = match head {
            Ok(head) => head,
            Err(HeadFailure::Client(error)) => {
                return Err(ExchangeError { error: UpstreamError::RequestBody(error), retry: Retry::Never });
            }
            Err(HeadFailure::Backend(error)) => {
                // The upload's failure is the cause; the read only confirmed it.
                let error = progress.write_error.map_or(error, UpstreamError::Io);
                let retry = if progress.answered {
                    Retry::Never
                } else if !upload.written_any {
                    Retry::Always(upload)
                } else if upload.bodyless {
                    Retry::IfIdempotent
                } else {
                    Retry::Never
                };
                return Err(ExchangeError { error, retry });
            }
        };
        // Answered before the request was whole: the upload goes on beside the response body,
        // unless that failed already (then the backend stopped reading: the connection is done).
        let upload = match (upload.finished, progress.write_error) {
            (true, _) => {
                self.spare = upload.out;
                None
            }
            (false, None) => Some(upload),
            (false, Some(_)) => return Ok(self.stream(response, decoder, None, None)),
        };
        // Small bodies usually arrive with the head: hand them over whole and free the
        // connection before the response is even written downstream.
        if let Some(remaining) = decoder.remaining()
            && remaining <= self.buf.len() as u64
        {
            let body = match decoder.decode(&mut self.buf) {
                Ok(Decoded::Data(data)) => data,
                _ => Bytes::new(),
            };
            if let (Keep::Idle(limit), None) = (keep, &upload)
                && self.buf.is_empty()
            {
                self.io.release_buffers();
                release.idle_at_most(limit).put(self);
            }
            return Ok(Exchange { response, body: ResponseBody::Complete(body) });
        }
        let release = match keep {
            Keep::Idle(limit) => Some(release.idle_at_most(limit)),
            Keep::Close => None,
        };
        Ok(self.stream(response, decoder, upload, release))
    }

    fn stream(
        self,
        response: Response<()>,
        decoder: BodyDecoder,
        upload: Option<Upload>,
        release: Option<Home<H1Conn>>,
    ) -> Exchange {
        let body = H1Body { conn: Some(self), decoder, upload, release };
        Exchange { response, body: ResponseBody::Streaming(body) }
    }

    /// One step of the exchange before the final response head: the upload moves as far as the
    /// socket and the client's body allow, and whatever the backend sent is parsed. A failed
    /// write does not end it at once: the backend may have answered (413) before it stopped
    /// reading, and that answer is what the client should get.
    fn poll_head(
        &mut self,
        cx: &mut Context<'_>,
        upload: &mut Upload,
        method: &Method,
        progress: &mut HeadProgress,
    ) -> Poll<Result<ResponseHead, HeadFailure>> {
        if progress.write_error.is_none() {
            match self.poll_upload(cx, upload) {
                Poll::Ready(Err(UploadError::Client(error))) => return Poll::Ready(Err(HeadFailure::Client(error))),
                Poll::Ready(Err(UploadError::Backend(error))) => progress.write_error = Some(error),
                Poll::Ready(Ok(())) | Poll::Pending => {}
            }
        }
        let backend = |error| Poll::Ready(Err(HeadFailure::Backend(error)));
        loop {
            if !self.buf.is_empty() {
                progress.answered = true;
                match parse_head(&mut self.buf, method) {
                    Ok(Some(Head::Final(head))) => return Poll::Ready(Ok(head)),
                    Ok(Some(Head::Informational)) if progress.interim < MAX_INTERIM_RESPONSES => {
                        progress.interim += 1;
                        continue;
                    }
                    Ok(Some(Head::Informational)) => {
                        return backend(UpstreamError::InvalidResponse("too many interim responses".into()));
                    }
                    Ok(None) if self.buf.len() > MAX_HEAD_BYTES => {
                        return backend(UpstreamError::InvalidResponse("response head too large".into()));
                    }
                    Ok(None) => {}
                    Err(error) => return backend(error),
                }
            }
            match ready!(self.poll_fill(cx)) {
                Ok(0) => return backend(UpstreamError::ClosedBeforeResponse),
                Ok(_) => {}
                Err(error) => return backend(UpstreamError::Io(error)),
            }
        }
    }

    /// Moves the upload on: gathers what the client's body has ready (up to [`IO_CHUNK`]) and
    /// writes it; ready once everything is written and flushed. Whatever is gathered goes out
    /// as soon as the body has nothing more ready, so a slowly streamed body is never held back.
    fn poll_upload(&mut self, cx: &mut Context<'_>, up: &mut Upload) -> Poll<Result<(), UploadError>> {
        while !up.finished {
            let mut waiting = false;
            while up.out.len() < IO_CHUNK
                && let Some(body) = up.body.as_mut()
            {
                match Pin::new(body).poll_frame(cx) {
                    Poll::Pending => {
                        waiting = true;
                        break;
                    }
                    Poll::Ready(None) => up.end_body(),
                    Poll::Ready(Some(Err(error))) => return Poll::Ready(Err(UploadError::Client(error))),
                    Poll::Ready(Some(Ok(frame))) => {
                        if let Ok(data) = frame.into_data() {
                            up.push(&data);
                        }
                    }
                }
            }
            while up.sent < up.out.len() {
                match ready!(Pin::new(&mut self.io).poll_write(cx, &up.out[up.sent..])) {
                    Ok(0) => return Poll::Ready(Err(UploadError::Backend(io::ErrorKind::WriteZero.into()))),
                    Ok(written) => {
                        up.sent += written;
                        up.written_any = true;
                    }
                    Err(error) => return Poll::Ready(Err(UploadError::Backend(error))),
                }
            }
            up.out.clear();
            up.sent = 0;
            if up.body.is_none() || waiting {
                ready!(Pin::new(&mut self.io).poll_flush(cx)).map_err(UploadError::Backend)?;
                if waiting {
                    return Poll::Pending;
                }
                up.finished = true;
            }
        }
        Poll::Ready(Ok(()))
    }

    /// The buffer is never shared, so this reclaims consumed space instead of allocating.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        if self.buf.capacity() - self.buf.len() < IO_CHUNK / 4 {
            self.buf.reserve(IO_CHUNK);
        }
        let read = self.io.read_buf(&mut self.buf);
        tokio::pin!(read);
        std::future::Future::poll(read, cx)
    }
}

/// A response body read from the backend connection as the downstream side asks for it; an
/// upload still under way moves on with it.
pub(crate) struct H1Body {
    conn: Option<H1Conn>,
    decoder: BodyDecoder,
    /// The rest of a request the backend answered before it was whole.
    upload: Option<Upload>,
    /// Where the connection goes when the body ends; `None` when it must close instead.
    release: Option<Home<H1Conn>>,
}

impl H1Body {
    fn finish(&mut self) {
        let conn = self.conn.take();
        // An unfinished upload leaves the backend mid-request: that connection cannot be reused.
        if let (Some(mut conn), Some(home), None) = (conn, self.release.take(), &self.upload)
            && conn.buf.is_empty()
        {
            conn.io.release_buffers();
            home.put(conn);
        }
    }
}

impl Body for H1Body {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<io::Result<Frame<Bytes>>>> {
        let this = self.get_mut();
        if let (Some(conn), Some(upload)) = (this.conn.as_mut(), this.upload.as_mut()) {
            match conn.poll_upload(cx, upload) {
                Poll::Pending => {}
                Poll::Ready(Ok(())) => {
                    conn.spare = this.upload.take().map(|u| u.out).unwrap_or_default();
                }
                // The backend stopped reading, or the client's body broke off: the response
                // may still be whole, but the connection is done.
                Poll::Ready(Err(_)) => {
                    this.upload = None;
                    this.release = None;
                }
            }
        }
        loop {
            let Some(conn) = this.conn.as_mut() else { return Poll::Ready(None) };
            match this.decoder.decode(&mut conn.buf).map_err(|error| error.into_io(Sender::Backend))? {
                Decoded::Data(data) => {
                    if this.decoder.is_done() {
                        this.finish();
                    }
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Decoded::Done => {
                    this.finish();
                    return Poll::Ready(None);
                }
                Decoded::NeedMore => {}
            }
            if ready!(conn.poll_fill(cx))? == 0 {
                this.decoder.at_eof().map_err(|error| error.into_io(Sender::Backend))?;
                this.conn = None;
                return Poll::Ready(None);
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.conn.is_none() || self.decoder.is_done()
    }

    fn size_hint(&self) -> SizeHint {
        self.decoder.remaining().map_or_else(SizeHint::default, SizeHint::with_exact)
    }
}
