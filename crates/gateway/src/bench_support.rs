//! Entry points for the criterion benches (`benches/hot_path.rs`): the pure per-request work of
//! the data plane — route matching and inbound policy evaluation — without sockets. Not an API.

use std::net::{Ipv4Addr, SocketAddr};

use certgate_model::ConfigState;
use http::Request;

use crate::compile::Compiler;
use crate::proxy::{self, Downstream, Target};
use crate::route::Route;
use crate::snapshot::Snapshot;

/// A snapshot compiled from `state` (no system roots: nothing here connects).
pub struct Fixture {
    snapshot: Snapshot,
    downstream: Downstream,
}

impl Fixture {
    pub fn new(state: &ConfigState) -> Self {
        let snapshot = Compiler::new(Vec::new()).compile(state, None);
        let downstream = Downstream::new(SocketAddr::from((Ipv4Addr::new(192, 0, 2, 7), 50_000)), false);
        Self { snapshot, downstream }
    }

    /// Whether some API claims `path` (and the operation's template matched, if any).
    pub fn matches(&self, path: &str) -> bool {
        self.snapshot.router.find(path, &http::Method::GET, false).is_some()
    }

    /// Routes `request` and applies the inbound policy of its route, as a request is before it
    /// is sent: returns the backend path and query, `None` when the route does not forward.
    pub fn inbound(&self, request: Request<()>) -> Option<String> {
        let (mut parts, ()) = request.into_parts();
        let uri = parts.uri.clone();
        let matched = self.snapshot.router.find(uri.path(), &parts.method, false)?;
        let Route::Forward(forward) = matched.route.as_ref() else { return None };
        let target = Target { remainder: matched.remainder, query: uri.query(), params: &matched.params };
        proxy::prepare(forward, &mut parts, &target, &self.downstream).ok()
    }
}
