//! The body of every gateway response: generated here (error bodies, `return-response`) or the
//! backend's, streamed. Both are an [`UpstreamBody`]; a generated one is simply complete.
//!
//! A backend body that fails midway ends the downstream message with an error, which makes
//! hyper abort it (HTTP/1.1: the connection closes without the last chunk, or short of its
//! content-length), so no client takes a truncated body for a complete one. The failure is
//! logged once, with the request's activity id and the route it came through.
//!
//! The body carries its request's [`Exchange`]: dropping the body (sent in full, aborted, or
//! never polled, as for `HEAD`) ends the exchange, which counts and logs the request.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};

use crate::telemetry::Exchange;
use crate::upstream::{BoxError, UpstreamBody};

pub struct GatewayBody {
    /// The backend body's first frames, read before the head went out (see `proxy::read_ahead`).
    ahead: VecDeque<Frame<Bytes>>,
    body: UpstreamBody,
    /// The request this body answers, once the response is complete (see `proxy::handle`).
    exchange: Option<Exchange>,
}

impl GatewayBody {
    pub(crate) fn complete(bytes: Bytes) -> Self {
        GatewayBody { ahead: VecDeque::new(), body: UpstreamBody::complete(bytes), exchange: None }
    }

    /// A backend's body, of which the frames `ahead` were read already.
    pub(crate) fn backend(ahead: VecDeque<Frame<Bytes>>, body: UpstreamBody) -> Self {
        GatewayBody { ahead, body, exchange: None }
    }

    /// Ties the request to this body: it ends when the body is dropped.
    pub(crate) fn carry(&mut self, exchange: Exchange) {
        self.exchange = Some(exchange);
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
        let polled = match this.ahead.pop_front() {
            Some(frame) => Poll::Ready(Some(Ok(frame))),
            None => Pin::new(&mut this.body).poll_frame(cx),
        };
        match (&polled, &mut this.exchange) {
            (Poll::Ready(Some(Ok(frame))), Some(exchange)) => exchange.sent(frame.data_ref().map_or(0, Bytes::len)),
            (Poll::Ready(Some(Err(error))), exchange) => log_abort(exchange.as_ref(), error.as_ref()),
            _ => {}
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
fn log_abort(exchange: Option<&Exchange>, error: &(dyn std::error::Error + 'static)) {
    let (activity_id, route) = match exchange {
        Some(exchange) => (exchange.activity_id.to_string(), Some(exchange.route())),
        None => ("-".to_owned(), None),
    };
    tracing::warn!(
        activity_id,
        error = "BackendConnectionFailure",
        cause = %certgate_model::error_chain(error),
        api = route.map_or("-", |r| r.api.as_str()),
        backend = route.map_or("-", |r| r.backend.as_str()),
        "backend response broke off after its head; the client's response was aborted"
    );
}
