//! `/tokens`: management API credentials. The secret is returned once, at creation; only its
//! SHA-256 is stored.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use certgate_model::{EntityId, EntityKind, Role, Token};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use zeroize::Zeroizing;

use crate::auth::issue_token;
use crate::envelope::{Envelope, Page, Resource};
use crate::error::ErrorResponse;
use crate::extract::{IdPath, JsonBody, QueryParams};
use crate::list::{Filterable, ListQuery};
use crate::resource::{Loaded, respond_with};
use crate::{AdminState, ApiError};

const KIND: EntityKind = EntityKind::Token;

pub fn routes() -> OpenApiRouter<AdminState> {
    OpenApiRouter::new()
        .routes(routes!(list_tokens))
        .routes(routes!(get_token, put_token, delete_token))
        .routes(routes!(get_caller))
}

/// Who is calling: the role of the presented token.
#[derive(Debug, Serialize, ToSchema)]
pub struct CallerContract {
    /// `reader` or `contributor`.
    role: &'static str,
}

/// The caller's role (the portal hides write controls from readers with it).
#[utoipa::path(get, path = "/caller", tag = "tokens",
    responses((status = 200, body = CallerContract), (status = 401, body = ErrorResponse)))]
async fn get_caller(axum::Extension(role): axum::Extension<Role>) -> Json<CallerContract> {
    Json(CallerContract { role: role.as_str() })
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenProperties {
    /// `reader` may read; `contributor` may also change.
    #[schema(value_type = String)]
    role: Role,
}

#[derive(Serialize, ToSchema)]
pub struct TokenContract {
    role: String,
    /// The bearer secret: present only in the response that created it.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    secret: Option<Zeroizing<String>>,
}

impl std::fmt::Debug for TokenContract {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secret = self.secret.as_ref().map(|_| "<redacted>");
        f.debug_struct("TokenContract").field("role", &self.role).field("secret", &secret).finish()
    }
}

impl Filterable for Loaded<Token> {
    const FIELDS: &'static [&'static str] = &["name", "role"];

    fn field(&self, name: &str) -> Option<String> {
        match name {
            "name" => Some(self.id.to_string()),
            "role" => Some(self.entity.role.as_str().to_owned()),
            _ => None,
        }
    }
}

fn resource(id: &EntityId, role: Role, secret: Option<Zeroizing<String>>) -> Resource<TokenContract> {
    Resource::new(KIND.collection(), id.as_str(), TokenContract { role: role.as_str().to_owned(), secret })
}

/// List tokens (ids and roles, never secrets).
#[utoipa::path(get, path = "/tokens", tag = "tokens", params(ListQuery),
    responses((status = 200, body = Page<TokenContract>), (status = 401, body = ErrorResponse)))]
async fn list_tokens(
    State(state): State<AdminState>,
    QueryParams(query): QueryParams<ListQuery>,
) -> Result<Json<Page<TokenContract>>, ApiError> {
    let all = state.load_all::<Token>(KIND).await?;
    Ok(Json(query.page(KIND.collection(), all, |t| resource(&t.id, t.entity.role, None))?))
}

/// Get a token's role.
#[utoipa::path(get, path = "/tokens/{id}", tag = "tokens", params(("id" = String, Path)),
    responses((status = 200, body = Resource<TokenContract>), (status = 404, body = ErrorResponse)))]
async fn get_token(State(state): State<AdminState>, IdPath(id): IdPath) -> Result<Response, ApiError> {
    let loaded = state.load::<Token>(KIND, &id).await?;
    Ok(respond_with(StatusCode::OK, loaded.revision, resource(&loaded.id, loaded.entity.role, None)))
}

/// Create a token, or replace it with a new secret. The secret is in this response only.
#[utoipa::path(put, path = "/tokens/{id}", tag = "tokens",
    params(("id" = String, Path), ("If-Match" = Option<String>, Header)),
    request_body = Envelope<TokenProperties>,
    responses((status = 201, body = Resource<TokenContract>), (status = 200, body = Resource<TokenContract>),
              (status = 400, body = ErrorResponse), (status = 403, body = ErrorResponse)))]
async fn put_token(
    State(state): State<AdminState>,
    IdPath(id): IdPath,
    headers: HeaderMap,
    JsonBody(envelope): JsonBody<Envelope<TokenProperties>>,
) -> Result<Response, ApiError> {
    let role = envelope.properties.role;
    let issued = issue_token(role).map_err(|_| ApiError::internal(&"the system random generator failed"))?;
    state.write(KIND, &id, &headers, &issued.token, None, |stored| resource(stored, role, Some(issued.secret))).await
}

/// Revoke a token.
#[utoipa::path(delete, path = "/tokens/{id}", tag = "tokens",
    params(("id" = String, Path), ("If-Match" = Option<String>, Header)),
    responses((status = 204), (status = 404, body = ErrorResponse)))]
async fn delete_token(
    State(state): State<AdminState>,
    IdPath(id): IdPath,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    state.remove(KIND, &id, &headers).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_secret() {
        let contract = TokenContract { role: "reader".into(), secret: Some(Zeroizing::new("cg_s3cr3t".into())) };
        let shown = format!("{contract:?}");
        assert!(shown.contains("redacted") && !shown.contains("cg_s3cr3t"), "{shown}");
    }
}
