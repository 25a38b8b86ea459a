//! What a request resolves to: compiled, immutable, shared by every request of a snapshot.

use std::sync::Arc;
use std::time::Duration;

use certgate_model::EntityId;
use http::Method;

use crate::headers::{CannedResponse, CredentialSteps, HeaderStep};

use crate::template::UrlTemplate;
use crate::upstream::{Origin, Upstream};

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
}

#[derive(Debug)]
pub(crate) struct CompiledOperation {
    /// `None` matches any method (`*`).
    pub method: Option<Method>,
    pub template: UrlTemplate,
    pub route: Arc<Route>,
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
    pub api: EntityId,
    /// The backend entity, when the target came from one (for logs and metrics).
    pub backend: Option<EntityId>,
    /// Request changes in policy order.
    pub request_steps: Vec<RequestStep>,
    pub origin: Origin,
    /// Path of the backend URL without a trailing `/`.
    pub base_path: String,
    pub upstream: Arc<Upstream>,
    pub credentials: CredentialSteps,
    pub timeout: Duration,
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
    pub api: &'s EntityId,
    pub route: &'s Arc<Route>,
    pub params: Vec<(&'s str, &'p str)>,
    /// The request path below the API prefix (starts with `/`, or is empty).
    pub remainder: &'p str,
}

/// Longest API prefix first, then the most specific operation for the method.
pub(crate) fn find<'s, 'p>(
    apis: &'s [CompiledApi],
    path: &'p str,
    method: &Method,
    https: bool,
) -> Option<Matched<'s, 'p>> {
    let api = apis.iter().find(|api| {
        path.get(..api.prefix.len()).is_some_and(|head| head.eq_ignore_ascii_case(&api.prefix))
            && matches!(path.as_bytes().get(api.prefix.len()), None | Some(b'/'))
    })?;
    if !(if https { api.https } else { api.http }) {
        return None;
    }
    let remainder = &path[api.prefix.len()..];
    for operation in &api.operations {
        if operation.method.as_ref().is_some_and(|m| m != method) {
            continue;
        }
        if let Some(params) = operation.template.matches(remainder) {
            return Some(Matched { api: &api.id, route: &operation.route, params, remainder });
        }
    }
    Some(Matched { api: &api.id, route: &api.fallback, params: Vec::new(), remainder })
}
