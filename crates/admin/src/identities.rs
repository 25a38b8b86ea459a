//! `/identities`: the vault identities configured on this node (ids and methods, never secrets).

use axum::Json;
use axum::extract::{Path, State};
use certgate_vault::SecretFolder;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::envelope::{Page, Resource};
use crate::error::ErrorResponse;
use crate::extract::JsonBody;
use crate::{AdminState, ApiError};

pub fn routes() -> OpenApiRouter<AdminState> {
    OpenApiRouter::new().routes(routes!(list_identities)).routes(routes!(list_secrets))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ListSecretsRequest {
    /// A KV v2 folder, `https://host:8200/v1/<mount>/data/<path>/` (what follows the last `/` is
    /// ignored, so a secret identifier names its folder).
    folder: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretEntryContract {
    /// The key in the folder; a subfolder's ends with `/`.
    name: String,
    /// What to reference it with as `keyVault.secretIdentifier` (or browse further, for a folder).
    secret_identifier: String,
    is_folder: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SecretList {
    /// The folder listed, as its entries' identifiers begin.
    folder: String,
    value: Vec<SecretEntryContract>,
}

/// List the secrets of a vault folder through an identity (needs `list` on the folder's metadata).
/// A POST because it acts in the vault as the gateway: only contributors may.
#[utoipa::path(post, path = "/identities/{id}/listSecrets", tag = "identities", params(("id" = String, Path)),
    request_body = ListSecretsRequest,
    responses((status = 200, body = SecretList), (status = 400, body = ErrorResponse), (status = 404, body = ErrorResponse)))]
async fn list_secrets(
    State(state): State<AdminState>,
    Path(id): Path<String>,
    JsonBody(request): JsonBody<ListSecretsRequest>,
) -> Result<Json<SecretList>, ApiError> {
    let vault = state
        .vault
        .as_ref()
        .filter(|vault| vault.has_identity(Some(&id)))
        .ok_or_else(|| ApiError::not_found("identities", &id))?;
    let folder = SecretFolder::parse(&request.folder).map_err(|e| ApiError::validation("folder", e.to_string()))?;
    let entries = vault.list(Some(&id), &folder).await.map_err(|e| ApiError::validation("folder", e.message))?;
    let value = entries
        .into_iter()
        .map(|entry| SecretEntryContract {
            is_folder: entry.is_folder(),
            name: entry.name,
            secret_identifier: entry.identifier,
        })
        .collect();
    Ok(Json(SecretList { folder: folder.to_string(), value }))
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
