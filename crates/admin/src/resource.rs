//! Plumbing shared by every collection: typed loads, writes with ETags, deletes, responses.

use axum::Json;
use axum::http::{HeaderMap, StatusCode, header::ETAG};
use axum::response::{IntoResponse, Response};
use certgate_model::{EntityId, EntityKind};
use certgate_store::{Record, StoreError};
use serde::Serialize;
use serde::de::DeserializeOwned;
use zeroize::Zeroizing;

use crate::envelope::Resource;
use crate::etag::{etag, expected_revision};
use crate::{AdminState, ApiError};

/// A stored entity decoded into its model type.
pub struct Loaded<T> {
    pub id: EntityId,
    pub revision: i64,
    pub entity: T,
}

impl AdminState {
    pub(crate) async fn load<T: DeserializeOwned>(
        &self,
        kind: EntityKind,
        id: &EntityId,
    ) -> Result<Loaded<T>, ApiError> {
        let record =
            self.store.get(kind, id).await?.ok_or_else(|| ApiError::not_found(kind.collection(), id.as_str()))?;
        decode(&record)
    }

    pub(crate) async fn load_all<T: DeserializeOwned>(&self, kind: EntityKind) -> Result<Vec<Loaded<T>>, ApiError> {
        self.store.list(kind).await?.iter().map(decode).collect()
    }

    /// Writes an entity honouring `If-Match`, and answers 201 (created) or 200 with its ETag.
    pub(crate) async fn write<T: Serialize, P: Serialize>(
        &self,
        kind: EntityKind,
        id: &EntityId,
        headers: &HeaderMap,
        entity: &T,
        secret: Option<Zeroizing<Vec<u8>>>,
        respond: impl FnOnce(&EntityId) -> Resource<P>,
    ) -> Result<Response, ApiError> {
        let body = serde_json::to_string(entity).map_err(|e| ApiError::internal(&e))?;
        let written = self.store.put(kind, id, body, secret, expected_revision(headers)?).await?;
        self.await_publication(written.revision).await;
        let status = if written.created { StatusCode::CREATED } else { StatusCode::OK };
        Ok(respond_with(status, written.revision, respond(&written.id)))
    }

    pub(crate) async fn remove(
        &self,
        kind: EntityKind,
        id: &EntityId,
        headers: &HeaderMap,
    ) -> Result<StatusCode, ApiError> {
        match self.store.delete(kind, id, expected_revision(headers)?).await {
            Ok(revision) => {
                self.await_publication(revision).await;
                Ok(StatusCode::NO_CONTENT)
            }
            Err(StoreError::NotFound) => Err(ApiError::not_found(kind.collection(), id.as_str())),
            Err(other) => Err(other.into()),
        }
    }
}

impl AdminState {
    /// Read-your-writes for the data plane: a change is acknowledged once the gateway serves a
    /// snapshot that contains it, so the caller's next request already sees it. Bounded, so a
    /// stuck compiler delays answers by at most [`PUBLICATION_WAIT`] rather than blocking them.
    pub(crate) async fn await_publication(&self, revision: i64) {
        if let Some(published) = &self.published {
            let mut published = published.clone();
            let reached = tokio::time::timeout(PUBLICATION_WAIT, published.wait_for(|r| *r >= revision)).await;
            if !matches!(reached, Ok(Ok(_))) {
                tracing::warn!(revision, "the gateway has not published this change yet");
            }
        }
    }
}

const PUBLICATION_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

fn decode<T: DeserializeOwned>(record: &Record) -> Result<Loaded<T>, ApiError> {
    Ok(Loaded { id: record.id.clone(), revision: record.revision, entity: record.decode()? })
}

/// A single-entity response with its ETag.
pub fn respond_with<P: Serialize>(status: StatusCode, revision: i64, resource: Resource<P>) -> Response {
    let mut response = (status, Json(resource)).into_response();
    response.headers_mut().insert(ETAG, etag(revision));
    response
}

/// Decodes standard base64, tolerating line breaks (as pasted from `base64` output); the same
/// rule as every PKCS#12 given inline (`certgate_pki::import_pkcs12_base64`).
pub fn decode_base64(target: &str, text: &str) -> Result<Vec<u8>, ApiError> {
    certgate_pki::decode_wrapped_base64(text)
        .map(|der| der.to_vec())
        .ok_or_else(|| ApiError::validation(target, certgate_pki::Pkcs12Error::NotBase64.to_string()))
}
