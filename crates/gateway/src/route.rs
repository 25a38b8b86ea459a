//! What a request resolves to: compiled, immutable, shared by every request of a snapshot.

use std::sync::Arc;
use std::time::Duration;

use certgate_model::{EntityId, EntityKind, Thumbprint};
use http::Method;

use crate::headers::{CannedResponse, CredentialSteps, HeaderStep};
use crate::sharded::{Prehashed, Sharded};

use crate::telemetry::RouteTelemetry;
use crate::template::UrlTemplate;
use crate::upstream::{Destination, UpstreamKey};

/// An API as the router sees it.
#[derive(Debug)]
pub(crate) struct CompiledApi {
    pub id: EntityId,
    /// `/orders` (no trailing slash), or empty for an API at the root.
    pub prefix: String,
    pub http: bool,
    pub https: bool,
    /// Most specific first.
    pub operations: Vec<CompiledOperation>,
    /// Used when no operation matches: the API-level policy alone.
    pub fallback: Arc<Route>,
    pub fallback_telemetry: Arc<RouteTelemetry>,
    pub depends_on: Dependencies,
}

/// What an API's routes were compiled from besides the API's own entities, so that a change
/// recompiles exactly the APIs it concerns (recorded by the compiler, see `compile`).
#[derive(Debug, Default)]
pub(crate) struct Dependencies {
    /// (kind, key) of every backend and certificate named (found or not).
    pub references: Vec<(EntityKind, String)>,
    /// The connection pools its routes use, each once: the snapshot counts the APIs per pool,
    /// so a pool no API uses any more is retired.
    pub upstreams: Vec<UpstreamKey>,
    /// A certificate is named by thumbprint: any certificate change may concern this API.
    pub any_certificate: bool,
}

#[derive(Debug)]
pub(crate) struct CompiledOperation {
    /// `None` matches any method (`*`).
    pub method: Option<Method>,
    pub template: UrlTemplate,
    pub route: Arc<Route>,
    pub telemetry: Arc<RouteTelemetry>,
}

/// The outcome of routing plus inbound policy, decided at compile time: the supported policy
/// subset has no conditions, so each (API, operation) pair always goes to the same place.
#[derive(Debug)]
pub(crate) enum Route {
    Forward(Box<Forward>),
    /// `<return-response>` in inbound: answered by the gateway.
    Respond(CannedResponse),
    /// The configuration cannot be served (e.g. no backend URL). 500, and the log says why.
    Broken(String),
}

#[derive(Debug)]
pub(crate) struct Forward {
    /// The backend entity, when the target came from one (for logs and metrics).
    pub backend: Option<EntityId>,
    /// The client certificate presented to the backend (for the access log).
    pub client_certificate: Option<Thumbprint>,
    /// Request changes in policy order.
    pub request_steps: Vec<RequestStep>,
    /// The backend's origin and its pooled connections for this route's TLS identity.
    pub destination: Destination,
    /// Path of the backend URL without a trailing `/`.
    pub base_path: String,
    pub credentials: CredentialSteps,
    /// `<forward-request timeout>`: how long the backend may take to send its response head.
    pub timeout: Duration,
    /// How long the backend may then pause within the body (none: as long as it likes).
    pub read_timeout: Option<Duration>,
    /// `<set-header>` on the response, or a `<return-response>` that replaces it.
    pub outbound: Vec<ResponseStep>,
    pub on_error: Vec<ResponseStep>,
}

#[derive(Debug, Clone)]
pub(crate) enum RequestStep {
    SetHeader(HeaderStep),
    RewriteUri { template: String, copy_unmatched_params: bool },
}

#[derive(Debug, Clone)]
pub(crate) enum ResponseStep {
    SetHeader(HeaderStep),
    Replace(CannedResponse),
}

/// A matched request: the route and the template parameters.
pub(crate) struct Matched<'s, 'p> {
    pub route: &'s Arc<Route>,
    pub telemetry: &'s Arc<RouteTelemetry>,
    pub params: Vec<(&'s str, &'p str)>,
    /// The request path below the API prefix (starts with `/`, or is empty).
    pub remainder: &'p str,
}

/// The compiled APIs, indexed by path prefix: matching costs one hash lookup per segment of
/// the request path, not a scan of every API. Both indexes are [`Sharded`], so the next
/// snapshot's router is this one with the changed APIs replaced, sharing everything else.
#[derive(Debug, Default, Clone)]
pub(crate) struct Router {
    /// Caseless hash of a prefix → the APIs with a prefix of that hash (normally one), by key.
    by_prefix: Sharded<u64, Vec<Arc<CompiledApi>>, Prehashed>,
    /// Record key (case-folded id) → the API.
    by_key: Sharded<String, Arc<CompiledApi>>,
}

impl Router {
    pub(crate) fn new(apis: impl IntoIterator<Item = Arc<CompiledApi>>) -> Self {
        let mut router = Self::default();
        for api in apis {
            router.insert(api);
        }
        router
    }

    /// Adds `api`, replacing the API of the same key.
    pub(crate) fn insert(&mut self, api: Arc<CompiledApi>) {
        let key = api.id.key();
        self.remove(&key);
        let bucket = self.by_prefix.get_or_insert_with(caseless_hash(&api.prefix), Vec::new);
        // Two APIs whose prefixes differ only in case (or collide): the lower key matches.
        let at = bucket.partition_point(|other| other.id.key() < key);
        bucket.insert(at, api.clone());
        self.by_key.insert(key, api);
    }

    /// Takes out the API with record key `key`.
    pub(crate) fn remove(&mut self, key: &str) -> Option<Arc<CompiledApi>> {
        let api = self.by_key.remove(key)?;
        let hash = caseless_hash(&api.prefix);
        if let Some(bucket) = self.by_prefix.get_mut(&hash) {
            bucket.retain(|other| !Arc::ptr_eq(other, &api));
            if bucket.is_empty() {
                self.by_prefix.remove(&hash);
            }
        }
        Some(api)
    }

    /// Every API, in no particular order.
    pub(crate) fn apis(&self) -> impl Iterator<Item = &Arc<CompiledApi>> {
        self.by_key.values()
    }

    /// The API with the longest prefix that ends at a segment boundary of `path`, then the most
    /// specific operation for the method.
    pub(crate) fn find<'s, 'p>(&'s self, path: &'p str, method: &Method, https: bool) -> Option<Matched<'s, 'p>> {
        let boundaries = std::iter::once(path.len()).chain(path.rmatch_indices('/').map(|(at, _)| at));
        let api = boundaries.filter_map(|end| self.api_at(&path[..end])).next()?;
        if !(if https { api.https } else { api.http }) {
            return None;
        }
        let remainder = &path[api.prefix.len()..];
        for operation in &api.operations {
            if operation.method.as_ref().is_some_and(|m| m != method) {
                continue;
            }
            if let Some(params) = operation.template.matches(remainder) {
                let (route, telemetry) = (&operation.route, &operation.telemetry);
                return Some(Matched { route, telemetry, params, remainder });
            }
        }
        let (route, telemetry) = (&api.fallback, &api.fallback_telemetry);
        Some(Matched { route, telemetry, params: Vec::new(), remainder })
    }

    fn api_at(&self, head: &str) -> Option<&CompiledApi> {
        let candidates = self.by_prefix.get(&caseless_hash(head))?;
        candidates.iter().map(AsRef::as_ref).find(|api| api.prefix.eq_ignore_ascii_case(head))
    }
}

/// FNV-1a over ASCII-lower-cased bytes: API paths match case-insensitively.
fn caseless_hash(text: &str) -> u64 {
    text.bytes()
        .fold(0xcbf2_9ce4_8422_2325, |hash, b| (hash ^ u64::from(b.to_ascii_lowercase())).wrapping_mul(0x100_0000_01b3))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(id: &str, prefix: &str) -> CompiledApi {
        let id = EntityId::parse(id).expect("valid id");
        CompiledApi {
            fallback_telemetry: Arc::new(RouteTelemetry::new(Some(&id), None, String::new(), None)),
            id,
            prefix: prefix.to_owned(),
            http: true,
            https: false,
            operations: Vec::new(),
            fallback: Arc::new(Route::Broken(String::new())),
            depends_on: Dependencies::default(),
        }
    }

    #[test]
    fn the_longest_prefix_ending_at_a_segment_boundary_wins_case_insensitively() {
        let router = Router::new([api("root", ""), api("orders", "/orders"), api("v2", "/Orders/V2")].map(Arc::new));
        let found =
            |path: &'static str| router.find(path, &Method::GET, false).map(|m| (m.telemetry.api.clone(), m.remainder));
        assert_eq!(found("/orders/v2/x"), Some(("v2".into(), "/x")));
        assert_eq!(found("/ORDERS/v2"), Some(("v2".into(), "")));
        assert_eq!(found("/orders/v20"), Some(("orders".into(), "/v20")));
        assert_eq!(found("/orders/"), Some(("orders".into(), "/")));
        assert_eq!(found("/ordersx"), Some(("root".into(), "/ordersx")));
        assert!(router.find("/orders", &Method::GET, true).is_none(), "the API is not on HTTPS");
        assert!(Router::new(vec![Arc::new(api("orders", "/orders"))]).find("/other", &Method::GET, false).is_none());
    }

    #[test]
    fn replacing_and_removing_apis_leaves_the_previous_router_as_it_was() {
        let before =
            Router::new(vec![Arc::new(api("a", "/shop")), Arc::new(api("b", "/SHOP")), Arc::new(api("c", "/c"))]);
        let found = |router: &Router, path: &'static str| {
            router.find(path, &Method::GET, false).map(|m| m.telemetry.api.clone())
        };
        assert_eq!(found(&before, "/shop/x"), Some("a".into()), "of two equal prefixes the lower key matches");
        let mut after = before.clone();
        after.insert(Arc::new(api("a", "/moved")));
        assert_eq!(found(&after, "/shop/x"), Some("b".into()), "a's old prefix is free, b's matches");
        assert_eq!(found(&after, "/moved"), Some("a".into()));
        assert!(after.remove("c").is_some() && after.remove("c").is_none());
        assert_eq!(found(&after, "/c"), None);
        assert_eq!((found(&before, "/shop/x"), found(&before, "/c")), (Some("a".into()), Some("c".into())));
        assert_eq!((before.apis().count(), after.apis().count()), (3, 2));
    }

    #[test]
    fn prefixes_spread_over_the_shards() {
        let router = Router::new((0..100_000).map(|i| Arc::new(api(&format!("api{i}"), &format!("/api{i}")))));
        let largest = router.by_prefix.largest_shard();
        assert!(largest < 2 * 100_000 / crate::sharded::SHARDS, "largest shard {largest}");
    }
}
