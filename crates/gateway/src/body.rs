//! The body of every gateway response: generated here (error bodies, `return-response`) or the
//! backend's, streamed. Both are an [`UpstreamBody`]; a generated one is simply complete.
//!
//! A backend body that fails midway ends the downstream message with an error, which makes
//! hyper abort it (HTTP/1.1: the connection closes without the last chunk, or short of its
//! content-length), so no client takes a truncated body for a complete one. The failure is
//! logged once, with an activity id and the route it came through.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};

use crate::route::Route;
use crate::upstream::{BoxError, UpstreamBody};

pub struct GatewayBody {
    /// The backend body's first frame, read before the head went out (see `proxy::send`).
    first: Option<Frame<Bytes>>,
    body: UpstreamBody,
    /// The route a backend body came through, named in the log line if it fails.
    route: Option<Arc<Route>>,
}

impl GatewayBody {
    pub(crate) fn complete(bytes: Bytes) -> Self {
        GatewayBody { first: None, body: UpstreamBody::complete(bytes), route: None }
    }

    /// A backend's body, of which `first` (if any) was read already.
    pub(crate) fn backend(first: Option<Frame<Bytes>>, body: UpstreamBody, route: Arc<Route>) -> Self {
        GatewayBody { first, body, route: Some(route) }
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
        let this = self.get_mut();
        if let Some(first) = this.first.take() {
            return Poll::Ready(Some(Ok(first)));
        }
        let polled = Pin::new(&mut this.body).poll_frame(cx);
        if let Poll::Ready(Some(Err(error))) = &polled {
            crate::failure::body_aborted(this.route.as_deref(), error.as_ref());
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.first.is_none() && self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let first = self.first.as_ref().and_then(Frame::data_ref).map_or(0, |b| b.len() as u64);
        let rest = self.body.size_hint();
        let mut hint = SizeHint::new();
        hint.set_lower(rest.lower() + first);
        if let Some(upper) = rest.upper() {
            hint.set_upper(upper + first);
        }
        hint
    }
}
