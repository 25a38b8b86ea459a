//! What a request resolves to: compiled, immutable, shared by every request of a snapshot.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use certgate_model::{EntityId, EntityKind, Thumbprint};
use http::Method;

use crate::headers::{CannedResponse, CredentialSteps, HeaderStep};

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
/// the request path, not a scan of every API.
#[derive(Debug, Default)]
pub(crate) struct Router {
    /// Longest prefix first.
    apis: Vec<Arc<CompiledApi>>,
    /// Case-insensitive hash of a prefix → the APIs with a prefix of that hash, in `apis` order.
    by_prefix: HashMap<u64, Vec<usize>>,
}

impl Router {
    pub(crate) fn new(mut apis: Vec<Arc<CompiledApi>>) -> Self {
        apis.sort_by_key(|api| std::cmp::Reverse(api.prefix.len()));
        let mut by_prefix: HashMap<u64, Vec<usize>> = HashMap::with_capacity(apis.len());
        for (index, api) in apis.iter().enumerate() {
            by_prefix.entry(caseless_hash(&api.prefix)).or_default().push(index);
        }
        Self { apis, by_prefix }
    }

    /// The API with the longest prefix that ends at a segment boundary of `path`, then the most
    /// specific operation for the method.
    pub(crate) fn apis(&self) -> &[Arc<CompiledApi>] {
        &self.apis
    }

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
        candidates.iter().map(|&i| self.apis[i].as_ref()).find(|api| api.prefix.eq_ignore_ascii_case(head))
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
        let router = Router::new(
            vec![api("root", ""), api("orders", "/orders"), api("v2", "/Orders/V2")]
                .into_iter()
                .map(Arc::new)
                .collect(),
        );
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
}
