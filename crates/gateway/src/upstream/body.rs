//! The body of a backend's response, as the upstream hands it over: whole (it arrived with the
//! head), streamed from a pooled HTTP/1.1 connection, or an HTTP/2 stream.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};

use super::h1::H1Body;

pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

pub(crate) struct UpstreamBody(Kind);

enum Kind {
    Complete(Option<Bytes>),
    Http1(H1Body),
    Http2(Incoming),
}

impl UpstreamBody {
    pub(crate) fn complete(bytes: Bytes) -> Self {
        UpstreamBody(Kind::Complete(Some(bytes).filter(|b| !b.is_empty())))
    }

    pub(super) fn http1(body: H1Body) -> Self {
        UpstreamBody(Kind::Http1(body))
    }

    pub(super) fn http2(body: Incoming) -> Self {
        UpstreamBody(Kind::Http2(body))
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match &mut self.get_mut().0 {
            Kind::Complete(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Kind::Http1(body) => Pin::new(body).poll_frame(cx).map_err(Into::into),
            Kind::Http2(body) => Pin::new(body).poll_frame(cx).map_err(Into::into),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.0 {
            Kind::Complete(bytes) => bytes.is_none(),
            Kind::Http1(body) => body.is_end_stream(),
            Kind::Http2(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.0 {
            Kind::Complete(bytes) => SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64)),
            Kind::Http1(body) => body.size_hint(),
            Kind::Http2(body) => body.size_hint(),
        }
    }
}
