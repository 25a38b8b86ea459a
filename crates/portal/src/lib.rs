//! The web portal at `/portal`: server-rendered pages (askama) for the people who look after
//! certificates. Every action works without JavaScript.
//!
//! The portal holds no state of its own beyond sessions: it reads and writes through the
//! management API, called in-process with the signed-in token ([`api::ManagementApi`]), so it
//! cannot do anything the API would refuse, and a reader's forged POST gets the API's 403.
//! Forms carry a per-session CSRF token; the session cookie is HttpOnly and SameSite=Strict.

mod api;
mod apis;
mod certificates;
mod infrastructure;
mod page;
mod policies;
mod session;

use std::sync::Arc;

use axum::routing::{get, post};

pub use session::{IDLE, LIFETIME};

/// How the portal is served.
#[derive(Clone, Copy, Debug, Default)]
pub struct PortalSettings {
    /// Mark cookies `Secure` (the portal is served over HTTPS).
    pub secure_cookies: bool,
}

/// What every portal handler can reach.
#[derive(Clone)]
pub struct Portal {
    api: api::ManagementApi,
    sessions: Arc<session::Sessions>,
    settings: PortalSettings,
}

/// The portal's routes under `/portal`, in front of `management` (the management API's router),
/// which serves every other path and which the portal calls for everything it shows or changes.
pub fn router(management: axum::Router, settings: PortalSettings) -> axum::Router {
    let sessions = Arc::<session::Sessions>::default();
    let portal = Portal { api: api::ManagementApi::new(management.clone(), sessions.clone()), sessions, settings };
    axum::Router::new()
        .route("/portal", get(page::home))
        .route("/portal/", get(page::home))
        .route("/portal/portal.css", get(page::stylesheet))
        .route("/portal/signin", get(page::sign_in_form).post(page::sign_in))
        .route("/portal/signout", post(page::sign_out))
        .route("/portal/certificates", get(certificates::list))
        .route("/portal/certificates/add", get(certificates::add_form).post(certificates::add))
        .route("/portal/certificates/{id}/refresh", post(certificates::refresh))
        .route("/portal/certificates/{id}/delete", get(certificates::confirm_delete).post(certificates::delete))
        .route("/portal/ca-certificates", get(infrastructure::ca_list).post(infrastructure::ca_add))
        .route("/portal/ca-certificates/{id}/delete", post(infrastructure::ca_delete))
        .route("/portal/backends", get(infrastructure::backend_list))
        .route("/portal/backends/new", get(infrastructure::backend_add_form).post(infrastructure::backend_add))
        .route("/portal/backends/{id}/edit", get(infrastructure::backend_edit_form).post(infrastructure::backend_save))
        .route("/portal/apis", get(apis::list))
        .route("/portal/apis/{id}", get(apis::design))
        .route("/portal/apis/{id}/credentials", post(apis::save_credentials))
        .route("/portal/policy", get(policies::global).post(policies::save_global))
        .route("/portal/apis/{id}/policy", get(policies::api).post(policies::save_api))
        .route(
            "/portal/apis/{id}/operations/{operation}/policy",
            get(policies::operation).post(policies::save_operation),
        )
        .with_state(portal)
        .fallback_service(management)
}
