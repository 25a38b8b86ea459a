//! Plumbing shared by every collection: typed loads, writes with ETags, deletes, responses.

use axum::Json;
use axum::http::{HeaderMap, StatusCode, header::ETAG};
use axum::response::{IntoResponse, Response};
use certgate_model::{EntityId, EntityKind};
use certgate_store::{Precondition, Record, StoreError, Unchanged};
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
        self.write_checked(kind, id, headers, entity, secret, Precondition::default(), respond).await
    }

    /// [`AdminState::write`] subject to `checks` besides `If-Match`: refused as raced if the
    /// records it was checked against changed (see [`AdminState::without_races`]), or with
    /// 400 if another record holds its unique value.
    #[allow(clippy::too_many_arguments)] // `write`'s, and what the write is checked against
    pub(crate) async fn write_checked<T: Serialize, P: Serialize>(
        &self,
        kind: EntityKind,
        id: &EntityId,
        headers: &HeaderMap,
        entity: &T,
        secret: Option<Zeroizing<Vec<u8>>>,
        checks: Precondition,
        respond: impl FnOnce(&EntityId) -> Resource<P>,
    ) -> Result<Response, ApiError> {
        let body = serde_json::to_string(entity).map_err(|e| ApiError::internal(&e))?;
        let precondition = Precondition { revision: expected_revision(headers)?, ..checks };
        let written = self.store.put_checked(kind, id, body, secret, precondition).await?;
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
        self.remove_checked(kind, id, headers, None).await
    }

    /// [`AdminState::remove`] checked like [`AdminState::write_checked`].
    pub(crate) async fn remove_checked(
        &self,
        kind: EntityKind,
        id: &EntityId,
        headers: &HeaderMap,
        unchanged: Option<Unchanged>,
    ) -> Result<StatusCode, ApiError> {
        let precondition = Precondition { revision: expected_revision(headers)?, unchanged, ..Precondition::default() };
        match self.store.delete_checked(kind, id, precondition).await {
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
    /// Runs a handler's check-then-write `attempt`, which read records of `kinds` for its
    /// checks, again while a write of those kinds (through any node) commits between its checks
    /// and its write. Invariants spanning records — an API path used once, a certificate
    /// deleted only while nothing refers to it — then hold under concurrent writes, without a
    /// lock; writes of other kinds never make it retry.
    pub(crate) async fn without_races<T, F, Fut>(
        &self,
        kinds: &'static [EntityKind],
        mut attempt: F,
    ) -> Result<T, ApiError>
    where
        F: FnMut(Unchanged) -> Fut,
        Fut: std::future::Future<Output = Result<T, ApiError>>,
    {
        const ATTEMPTS: u32 = 8;
        let mut outcome = Err(StoreError::Raced.into());
        for tried in 0..ATTEMPTS {
            if tried > 0 {
                // Writers that keep colliding spread out: 2, 4, 8 … ms, each with jitter.
                let mut jitter = [0u8; 1];
                let _ = aws_lc_rs::rand::fill(&mut jitter);
                let base = 1u64 << tried.min(7);
                tokio::time::sleep(std::time::Duration::from_millis(base + u64::from(jitter[0]) % (base + 1))).await;
            }
            let since = self.store.revision().await?;
            outcome = attempt(Unchanged { since, kinds }).await;
            if !outcome.as_ref().is_err_and(ApiError::is_raced) {
                break;
            }
        }
        outcome
    }

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
