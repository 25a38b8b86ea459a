//! The management REST API, shaped like Azure API Management's: the same resource paths,
//! envelopes, property names, status codes and error bodies.
//!
//! Only this crate knows JSON DTOs. Handlers convert DTOs into model entities by validating
//! conversions (PKCS#12 import included) and hand them to the [`Store`]; they never talk to the
//! data plane, which learns of changes through the store's change feed.

mod apis;
mod arm;
mod auth;
mod backend_test;
mod backends;
mod ca_certificates;
mod certificates;
mod envelope;
mod error;
mod etag;
mod extract;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod health;
mod identities;
mod list;
mod nodes;
mod operations;
mod policies;
mod references;
mod resource;
mod tokens;

use std::sync::Arc;

use axum::Json;
use axum::routing::get;
use certgate_store::Store;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{OpenApi, SecurityRequirement};
use utoipa_axum::router::OpenApiRouter;

use arm::Scheme;
pub use arm::ServiceIdentity;
pub use auth::{Authenticator, IssuedToken, issue_token};
pub use error::ApiError;
pub use nodes::HEARTBEAT_INTERVAL;

/// What every handler can reach. Cheap to clone.
#[derive(Clone)]
pub struct AdminState {
    store: Arc<dyn Store>,
    auth: Arc<Authenticator>,
    /// Request bodies above this size are refused with 413 before they are parsed.
    max_body_bytes: usize,
    /// The store revision the data plane serves; writes wait for it to catch up.
    published: Option<tokio::sync::watch::Receiver<i64>>,
    /// Reads vault references; `None` when no vault identity is configured.
    vault: Option<Arc<certgate_vault::VaultClient>>,
    readiness: Arc<health::Readiness>,
    /// Who the node is on ARM paths.
    service: Arc<ServiceIdentity>,
    /// Renders `/metrics`; `None` serves no metrics.
    metrics: Option<MetricsSource>,
}

/// Renders the node's metrics (OpenMetrics text) for `/metrics`.
pub type RenderMetrics = Arc<dyn Fn() -> String + Send + Sync>;

#[derive(Clone)]
struct MetricsSource {
    render: RenderMetrics,
    /// Served without a token.
    public: bool,
}

impl AdminState {
    pub fn new(store: Arc<dyn Store>, auth: Authenticator, max_body_bytes: usize) -> Self {
        Self {
            store,
            auth: Arc::new(auth),
            max_body_bytes,
            published: None,
            vault: None,
            readiness: Arc::default(),
            service: Arc::default(),
            metrics: None,
        }
    }

    /// Serves `/metrics` with `render`: for any valid token, or for anyone when `public`.
    pub fn with_metrics(mut self, render: RenderMetrics, public: bool) -> Self {
        self.metrics = Some(MetricsSource { render, public });
        self
    }

    /// Names the node on ARM paths (`/subscriptions/…/service/{name}`); unnamed parts accept any.
    pub fn with_service(mut self, service: ServiceIdentity) -> Self {
        self.service = Arc::new(service);
        self
    }

    /// Enables vault references, read with these identities.
    pub fn with_vault(mut self, vault: Arc<certgate_vault::VaultClient>) -> Self {
        self.vault = Some(vault);
        self
    }

    /// Makes every write wait until the data plane serves a snapshot containing it.
    pub fn with_publication(mut self, published: tokio::sync::watch::Receiver<i64>) -> Self {
        self.published = Some(published);
        self
    }
}

/// The default limit for request bodies: 1 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;

/// The management API: `/health`, `/ready` and `/openapi.json` are open (and `/metrics` when
/// configured so), everything else needs a token. Every resource is also served at its ARM path
/// (see `arm`), rewritten before routing.
pub fn router(state: AdminState) -> axum::Router {
    let (protected, openapi) = api().split_for_parts();
    let metrics = axum::Router::new().route("/metrics", get(metrics));
    let (protected, open) = match state.metrics.as_ref().is_some_and(|m| m.public) {
        true => (protected, metrics),
        false => (protected.merge(metrics), axum::Router::new()),
    };
    let protected = protected.layer(axum::middleware::from_fn_with_state(state.clone(), auth::require_token));
    let openapi = Arc::new(with_security(openapi));
    let routes = axum::Router::new()
        .route("/health", get(health::health))
        .route("/ready", get(health::ready))
        .route("/openapi.json", get(move || std::future::ready(Json(openapi.as_ref().clone()))))
        .merge(open)
        .merge(protected)
        .fallback(|| async { ApiError::unknown_path() })
        .with_state(state.clone());
    // A layer on a router runs after its routing: the ARM rewrite wraps the routes as a whole.
    axum::Router::new().fallback_service(routes).layer(axum::middleware::from_fn_with_state(state, arm::arm_paths))
}

/// `/metrics`: the node's metrics in the OpenMetrics text format Prometheus scrapes.
async fn metrics(axum::extract::State(state): axum::extract::State<AdminState>) -> axum::response::Response {
    use axum::response::IntoResponse;
    match &state.metrics {
        Some(metrics) => {
            let content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8";
            ([(axum::http::header::CONTENT_TYPE, content_type)], (metrics.render)()).into_response()
        }
        None => ApiError::unknown_path().into_response(),
    }
}

/// The management API as served on its HTTPS listener: absolute links (ARM `nextLink`s) name
/// the scheme the client used.
pub fn https_router(state: AdminState) -> axum::Router {
    router(state).layer(axum::Extension(Scheme("https")))
}

/// The OpenAPI document, generated from the same handlers the router serves.
pub fn openapi() -> OpenApi {
    with_security(api().into_openapi())
}

fn api() -> OpenApiRouter<AdminState> {
    OpenApiRouter::new()
        .merge(certificates::routes())
        .merge(ca_certificates::routes())
        .merge(backends::routes())
        .merge(apis::routes())
        .merge(operations::routes())
        .merge(policies::routes())
        .merge(identities::routes())
        .merge(tokens::routes())
        .merge(nodes::routes())
}

fn with_security(mut openapi: OpenApi) -> OpenApi {
    openapi.info.title = "certgate management API".into();
    openapi.info.version = env!("CARGO_PKG_VERSION").into();
    openapi.info.description = Some(
        "APIM-shaped management API of certgate. Every path requires `Authorization: Bearer <token>`; \
         `reader` tokens may read, `contributor` tokens may also write."
            .into(),
    );
    let components = openapi.components.get_or_insert_with(Default::default);
    components.security_schemes.insert(
        "bearer".into(),
        SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()).into(),
    );
    openapi.security = Some(vec![SecurityRequirement::new("bearer", Vec::<String>::new())]);
    openapi
}
