//! The body of a backend's response, as the upstream hands it over: whole (it arrived with the
//! head), streamed from a pooled HTTP/1.1 connection, or an HTTP/2 stream; optionally bounded
//! by a read timeout (`--backend-read-timeout`).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use tokio::time::{Instant, Sleep};

use super::UpstreamError;
use super::h1::H1Body;

pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

pub(crate) struct UpstreamBody {
    kind: Kind,
    read_timeout: Option<ReadTimeout>,
}

/// The longest the backend may go without delivering a frame; restarted by each one.
struct ReadTimeout {
    limit: Duration,
    expires: Pin<Box<Sleep>>,
}

enum Kind {
    Complete(Option<Bytes>),
    Http1(H1Body),
    Http2(Incoming),
}

impl UpstreamBody {
    pub(crate) fn complete(bytes: Bytes) -> Self {
        Self::new(Kind::Complete(Some(bytes).filter(|b| !b.is_empty())))
    }

    pub(super) fn http1(body: H1Body) -> Self {
        Self::new(Kind::Http1(body))
    }

    pub(super) fn http2(body: Incoming) -> Self {
        Self::new(Kind::Http2(body))
    }

    fn new(kind: Kind) -> Self {
        UpstreamBody { kind, read_timeout: None }
    }

    /// Fails the body (as a broken connection would) when the backend sends nothing for `limit`.
    pub(crate) fn with_read_timeout(mut self, limit: Duration) -> Self {
        if !self.is_end_stream() {
            self.read_timeout = Some(ReadTimeout { limit, expires: Box::pin(tokio::time::sleep(limit)) });
        }
        self
    }

    fn poll_kind(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match &mut self.kind {
            Kind::Complete(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Kind::Http1(body) => Pin::new(body).poll_frame(cx).map_err(Into::into),
            Kind::Http2(body) => Pin::new(body).poll_frame(cx).map_err(Into::into),
        }
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        let polled = this.poll_kind(cx);
        let Some(timeout) = &mut this.read_timeout else { return polled };
        match polled {
            Poll::Ready(_) => timeout.expires.as_mut().reset(Instant::now() + timeout.limit),
            Poll::Pending if timeout.expires.as_mut().poll(cx).is_ready() => {
                let limit = timeout.limit;
                this.read_timeout = None;
                return Poll::Ready(Some(Err(UpstreamError::BodyReadTimeout(limit).into())));
            }
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Complete(bytes) => bytes.is_none(),
            Kind::Http1(body) => body.is_end_stream(),
            Kind::Http2(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Complete(bytes) => SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64)),
            Kind::Http1(body) => body.size_hint(),
            Kind::Http2(body) => body.size_hint(),
        }
    }
}
