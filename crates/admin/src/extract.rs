//! Extractors that turn request parts into validated values or APIM-shaped errors: the JSON body
//! (size limit first, then strict parsing naming the field at fault), the entity id in the path,
//! and list query parameters.

use axum::body::Body;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use certgate_model::EntityId;
use axum::http::header::CONTENT_LENGTH;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde::de::DeserializeOwned;

use crate::list::ListQuery;
use crate::{AdminState, ApiError};

/// A JSON request body, read up to the configured limit and parsed strictly: unknown fields are
/// errors naming the field (typos must not pass silently).
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AdminState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AdminState) -> Result<Self, ApiError> {
        let limit = state.max_body_bytes;
        let declared = request
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|len| len > limit as u64) {
            return Err(ApiError::payload_too_large(limit));
        }
        let bytes = read_limited(request.into_body(), limit).await?;
        parse(&bytes).map(JsonBody)
    }
}

/// The `{id}` path segment, validated against APIM's id rules (target `id`).
pub struct IdPath(pub EntityId);

impl<S: Send + Sync> FromRequestParts<S> for IdPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::validation("id", e.body_text()))?;
        EntityId::parse(&raw).map(IdPath).map_err(|e| ApiError::validation("id", e.to_string()))
    }
}

/// `$top`, `$skip`, `$filter` (and the ignored `api-version`).
pub struct ListParams(pub ListQuery);

impl<S: Send + Sync> FromRequestParts<S> for ListParams {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Query::<ListQuery>::from_request_parts(parts, state)
            .await
            .map(|Query(q)| ListParams(q))
            .map_err(|e| ApiError::validation("query", e.body_text()))
    }
}

async fn read_limited(body: Body, limit: usize) -> Result<bytes::Bytes, ApiError> {
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => Err(ApiError::payload_too_large(limit)),
        Err(e) => Err(ApiError::validation("body", format!("the request body could not be read: {e}"))),
    }
}

/// Parses JSON, reporting the JSON path of the fault as `target`.
pub(crate) fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let parsed = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let inner = e.inner();
        let path = e.path().to_string();
        let message = inner.to_string();
        // serde reports an unknown field at its parent's path; name the field itself.
        let target = match unknown_field_name(&message) {
            Some(field) if path == "." => field.to_owned(),
            Some(field) => format!("{path}.{field}"),
            None if path == "." => "body".to_owned(),
            None => path,
        };
        ApiError::validation(target, strip_position(&message))
    })?;
    deserializer.end().map_err(|e| ApiError::validation("body", strip_position(&e.to_string())))?;
    Ok(parsed)
}

fn unknown_field_name(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("unknown field `")?;
    rest.split('`').next()
}

/// serde_json appends " at line L column C"; the target already says where.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(at) => message[..at].to_owned(),
        None => message.to_owned(),
    }
}
