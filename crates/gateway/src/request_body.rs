//! The body of a client's request, read off the client connection (`downstream/`) as the
//! backend exchange asks for it; the exchange sees only this type.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};

use crate::framing::BodyDecoder;

/// Where a request body's bytes come from: the client connection, behind its lock.
pub(crate) trait BodySource: Send + Sync {
    fn poll_data(&self, cx: &mut Context<'_>) -> Poll<Option<io::Result<Bytes>>>;
    fn decoder(&self) -> BodyDecoder;
}

/// The body of a client's request, read from the connection as the backend exchange asks for it.
pub(crate) struct RequestBody {
    /// `None` for a request without a body, and once the body has ended.
    source: Option<Arc<dyn BodySource>>,
}

impl RequestBody {
    pub(crate) fn empty() -> Self {
        RequestBody { source: None }
    }

    pub(crate) fn from_source(source: Arc<dyn BodySource>) -> Self {
        RequestBody { source: Some(source) }
    }
}

impl std::fmt::Debug for RequestBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RequestBody")
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<io::Result<Frame<Bytes>>>> {
        let this = self.get_mut();
        let Some(source) = &this.source else { return Poll::Ready(None) };
        let polled = ready!(source.poll_data(cx));
        if !matches!(polled, Some(Ok(_))) {
            this.source = None;
        }
        Poll::Ready(polled.map(|data| data.map(Frame::data)))
    }

    fn is_end_stream(&self) -> bool {
        self.source.as_ref().is_none_or(|source| source.decoder().is_done())
    }

    fn size_hint(&self) -> SizeHint {
        let remaining = self.source.as_ref().map_or(Some(0), |source| source.decoder().remaining());
        remaining.map_or_else(SizeHint::default, SizeHint::with_exact)
    }
}
