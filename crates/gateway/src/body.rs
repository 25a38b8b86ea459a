//! The body of every gateway response: generated here (error bodies, `return-response`) or the
//! backend's, streamed. Both are an [`UpstreamBody`]; a generated one is simply complete.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};

use crate::upstream::{BoxError, UpstreamBody};

pub struct GatewayBody(UpstreamBody);

impl GatewayBody {
    pub(crate) fn complete(bytes: Bytes) -> Self {
        GatewayBody(UpstreamBody::complete(bytes))
    }

    pub(crate) fn backend(body: UpstreamBody) -> Self {
        GatewayBody(body)
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
        Pin::new(&mut self.get_mut().0).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.0.size_hint()
    }
}
