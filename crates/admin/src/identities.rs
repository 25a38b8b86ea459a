//! `/identities`: the vault identities configured on this node (ids and methods, never secrets).

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::envelope::{Page, Resource};
use crate::error::ErrorResponse;
use crate::{AdminState, ApiError};

pub fn routes() -> OpenApiRouter<AdminState> {
    OpenApiRouter::new().routes(routes!(list_identities))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct IdentityContract {
    /// `token` or `approle`.
    method: String,
}

/// List the vault identities (`system` and named ones) usable as `identityClientId`.
#[utoipa::path(get, path = "/identities", tag = "identities",
    responses((status = 200, body = Page<IdentityContract>), (status = 401, body = ErrorResponse)))]
async fn list_identities(State(state): State<AdminState>) -> Result<Json<Page<IdentityContract>>, ApiError> {
    let value: Vec<Resource<IdentityContract>> = state
        .vault
        .as_ref()
        .map(|vault| vault.identities())
        .unwrap_or_default()
        .into_iter()
        .map(|(id, method)| Resource::new("identities", id, IdentityContract { method: method.to_owned() }))
        .collect();
    Ok(Json(Page { count: value.len(), value, next_link: None }))
}
