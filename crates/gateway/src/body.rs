//! The body of every gateway response: generated here (error bodies, `return-response`) or the
//! backend's, streamed. Both are an [`UpstreamBody`]; a generated one is simply complete.
//!
//! A backend body that fails midway ends the downstream message with an error, which makes
//! hyper abort it (HTTP/1.1: the connection closes without the last chunk, or short of its
//! content-length), so no client takes a truncated body for a complete one. The failure is
//! logged once, with an activity id and the route it came through.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};

use crate::activity::activity_id;
use crate::route::Route;
use crate::upstream::{BoxError, UpstreamBody};

pub struct GatewayBody {
    /// The backend body's first frames, read before the head went out (see `proxy::read_ahead`).
    ahead: VecDeque<Frame<Bytes>>,
    body: UpstreamBody,
    /// The route a backend body came through, named in the log line if it fails.
    route: Option<Arc<Route>>,
}

impl GatewayBody {
    pub(crate) fn complete(bytes: Bytes) -> Self {
        GatewayBody { ahead: VecDeque::new(), body: UpstreamBody::complete(bytes), route: None }
    }

    /// A backend's body, of which the frames `ahead` were read already.
    pub(crate) fn backend(ahead: VecDeque<Frame<Bytes>>, body: UpstreamBody, route: Arc<Route>) -> Self {
        GatewayBody { ahead, body, route: Some(route) }
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
        if let Some(frame) = this.ahead.pop_front() {
            return Poll::Ready(Some(Ok(frame)));
        }
        let polled = Pin::new(&mut this.body).poll_frame(cx);
        if let Poll::Ready(Some(Err(error))) = &polled {
            log_abort(this.route.as_deref(), error.as_ref());
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.ahead.is_empty() && self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let first: u64 = self.ahead.iter().filter_map(Frame::data_ref).map(|b| b.len() as u64).sum();
        let rest = self.body.size_hint();
        let mut hint = SizeHint::new();
        hint.set_lower(rest.lower() + first);
        if let Some(upper) = rest.upper() {
            hint.set_upper(upper + first);
        }
        hint
    }
}

/// A backend body failed after the response head went downstream: the message is aborted; this
/// is its one log line.
fn log_abort(route: Option<&Route>, error: &(dyn std::error::Error + 'static)) {
    let (api, backend) = match route {
        Some(Route::Forward(forward)) => (forward.api.as_str(), forward.backend.as_ref().map_or("-", |b| b.as_str())),
        _ => ("-", "-"),
    };
    tracing::warn!(
        activity_id = activity_id(),
        error = "BackendConnectionFailure",
        cause = %certgate_model::error_chain(error),
        api,
        backend,
        "backend response broke off after its head; the client's response was aborted"
    );
}
