//! Extractors that turn request parts into validated values or APIM-shaped errors: the JSON body
//! (size limit first, then strict parsing naming the field at fault), the entity id in the path,
//! and query parameters.

use axum::body::Body;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::header::CONTENT_LENGTH;
use axum::http::request::Parts;
use certgate_model::EntityId;
use http_body_util::BodyExt;
use serde::de::DeserializeOwned;

use crate::{AdminState, ApiError};

/// A JSON request body, read up to the configured limit and parsed strictly: unknown fields are
/// errors naming the field (typos must not pass silently).
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AdminState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AdminState) -> Result<Self, ApiError> {
        let limit = state.max_body_bytes;
        let declared =
            request.headers().get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<usize>().ok());
        if declared.is_some_and(|len| len > limit.saturating_add(DRAIN_ALLOWANCE)) {
            return Err(ApiError::payload_too_large(limit));
        }
        let bytes = read_limited(request.into_body(), limit).await?;
        parse(&bytes).map(JsonBody)
    }
}

/// How much of an oversized body is read and discarded so that the client, still sending,
/// receives the 413 instead of a reset connection. Larger bodies are cut off at once.
const DRAIN_ALLOWANCE: usize = 8 * 1024 * 1024;

async fn read_limited(mut body: Body, limit: usize) -> Result<bytes::Bytes, ApiError> {
    let mut collected = bytes::BytesMut::new();
    let mut seen = 0usize;
    while let Some(frame) = body.frame().await {
        let frame =
            frame.map_err(|e| ApiError::validation("body", format!("the request body could not be read: {e}")))?;
        let Ok(data) = frame.into_data() else { continue };
        seen = seen.saturating_add(data.len());
        if seen > limit.saturating_add(DRAIN_ALLOWANCE) {
            break;
        }
        if seen <= limit {
            collected.extend_from_slice(&data);
        }
    }
    if seen > limit {
        return Err(ApiError::payload_too_large(limit));
    }
    Ok(collected.freeze())
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

/// `/apis/{apiId}/operations/{operationId}`: both ids validated (targets `apiId`, `operationId`).
pub struct OperationPath(pub EntityId, pub EntityId);

impl<S: Send + Sync> FromRequestParts<S> for OperationPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path((api, operation)) = Path::<(String, String)>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::validation("id", e.body_text()))?;
        let api = EntityId::parse(&api).map_err(|e| ApiError::validation("apiId", e.to_string()))?;
        let operation = EntityId::parse(&operation).map_err(|e| ApiError::validation("operationId", e.to_string()))?;
        Ok(OperationPath(api, operation))
    }
}

/// Query parameters parsed into `T` (unknown ones, such as `api-version`, are ignored), a
/// malformed one a 400 naming the query: `QueryParams<ListQuery>` for `$top`, `$skip`, `$filter`.
pub struct QueryParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(q)| QueryParams(q))
            .map_err(|e| ApiError::validation("query", e.body_text()))
    }
}

/// Parses JSON, reporting the JSON path of the fault as `target`.
pub(crate) fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let parsed = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let inner = e.inner();
        let path = e.path().to_string();
        let message = inner.to_string();
        if inner.is_syntax() || inner.is_eof() {
            // Not JSON at all: the position is the useful part.
            return ApiError::validation("body", format!("the body is not valid JSON: {message}"));
        }
        // The path names the field at fault (for unknown fields, the unknown field itself).
        let target = if path == "." { "body".to_owned() } else { path };
        ApiError::validation(target, strip_position(&message))
    })?;
    deserializer.end().map_err(|e| ApiError::validation("body", strip_position(&e.to_string())))?;
    Ok(parsed)
}

/// serde_json appends " at line L column C"; the target already says where.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(at) => message[..at].to_owned(),
        None => message.to_owned(),
    }
}
