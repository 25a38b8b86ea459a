//! The body of every gateway response: generated here, or the backend's (see
//! [`UpstreamBody`]), streamed.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};

use crate::upstream::{BoxError, UpstreamBody};

pub struct GatewayBody(Kind);

enum Kind {
    Generated(Option<Bytes>),
    Backend(UpstreamBody),
}

impl GatewayBody {
    pub(crate) fn complete(bytes: Bytes) -> Self {
        GatewayBody(Kind::Generated(Some(bytes).filter(|b| !b.is_empty())))
    }

    pub(crate) fn backend(body: UpstreamBody) -> Self {
        GatewayBody(Kind::Backend(body))
    }
}

impl std::fmt::Debug for GatewayBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GatewayBody")
    }
}

impl Body for GatewayBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match &mut self.get_mut().0 {
            Kind::Generated(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Kind::Backend(body) => Pin::new(body).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.0 {
            Kind::Generated(bytes) => bytes.is_none(),
            Kind::Backend(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.0 {
            Kind::Generated(bytes) => SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64)),
            Kind::Backend(body) => body.size_hint(),
        }
    }
}
