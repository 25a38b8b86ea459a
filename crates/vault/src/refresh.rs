//! Re-reading one vault reference and persisting the outcome: the shared step of the
//! scheduled refresher and of `POST /certificates/{id}/refreshSecret`.

use certgate_model::{Certificate, CertificateSource, EntityId, EntityKind, LastStatus, LastStatusCode};
use certgate_store::{Store, StoreError};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use std::sync::LazyLock;

use crate::{ReadFailure, SecretReference, SecretSource};

/// What a refresh did.
#[derive(Debug)]
pub enum Outcome {
    /// The vault holds the material already in use.
    Unchanged,
    /// New material was validated and stored; it serves from the next backend connection on.
    Rotated { from: String, to: String },
    /// The read failed; the last good certificate keeps serving and `lastStatus` says why.
    Failed(ReadFailure),
}

#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    #[error("certificate '{0}' does not exist")]
    NotFound(String),
    #[error("certificate '{0}' was uploaded, not referenced from a vault")]
    NotAReference(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Reads the reference of certificate `id` now and stores what changed: new material (validated
/// by the read) or the failure in `lastStatus`. A concurrent change to the entity wins; this
/// refresh is then skipped (it will run again). Counted in `vault_refreshes` by outcome.
pub async fn refresh(
    store: &dyn Store,
    source: &dyn SecretSource,
    id: &EntityId,
) -> Result<(Certificate, Outcome), RefreshError> {
    let result = read_and_store(store, source, id).await;
    let (outcome, code) = match &result {
        Ok((_, Outcome::Unchanged)) => ("unchanged", ""),
        Ok((_, Outcome::Rotated { .. })) => ("rotated", ""),
        Ok((_, Outcome::Failed(failure))) => ("failed", failure.code.as_str()),
        Err(_) => ("error", ""),
    };
    REFRESHES.get_or_create(&RefreshLabels { outcome, code }).inc();
    result
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RefreshLabels {
    /// `rotated`, `unchanged`, `failed` (the vault's answer, in `code`) or `error` (the store).
    outcome: &'static str,
    code: &'static str,
}

static REFRESHES: LazyLock<Family<RefreshLabels, Counter>> = LazyLock::new(Family::default);

/// Adds `vault_refreshes` (scheduled and on-demand refreshes by outcome) to `registry`.
pub fn register_metrics(registry: &mut Registry) {
    registry.register("vault_refreshes", "Vault reference refreshes by outcome and failure code", REFRESHES.clone());
}

async fn read_and_store(
    store: &dyn Store,
    source: &dyn SecretSource,
    id: &EntityId,
) -> Result<(Certificate, Outcome), RefreshError> {
    let record = store.get(EntityKind::Certificate, id).await?.ok_or_else(|| RefreshError::NotFound(id.to_string()))?;
    let mut certificate: Certificate = record.decode()?;
    let CertificateSource::KeyVault { secret_identifier, identity_client_id, version, last_status } =
        &mut certificate.source
    else {
        return Err(RefreshError::NotAReference(id.to_string()));
    };
    let now = certgate_model::unix_now();
    let read = match SecretReference::parse(secret_identifier) {
        Ok(reference) => source.read(identity_client_id.as_deref(), &reference).await,
        Err(e) => Err(ReadFailure { code: LastStatusCode::InvalidSecret, message: e.to_string() }),
    };
    let (outcome, secret) = match read {
        Ok(material) => {
            let status = material.success_status();
            let imported = material.certificate;
            if imported.thumbprint == certificate.thumbprint && last_status.code == LastStatusCode::Success {
                return Ok((certificate, Outcome::Unchanged));
            }
            let from = certificate.thumbprint.to_string();
            let to = imported.thumbprint.to_string();
            *version = material.version;
            *last_status = status;
            certificate.subject = imported.subject;
            certificate.thumbprint = imported.thumbprint;
            certificate.not_after = imported.not_after;
            certificate.chain = imported.chain;
            let outcome = if from == to { Outcome::Unchanged } else { Outcome::Rotated { from, to } };
            (outcome, Some(imported.private_key))
        }
        Err(failure) => {
            if last_status.code == failure.code && last_status.message == failure.message {
                return Ok((certificate, Outcome::Failed(failure)));
            }
            *last_status = LastStatus { code: failure.code, message: failure.message.clone(), time: now };
            (Outcome::Failed(failure), record.secret.clone())
        }
    };
    let body = serde_json::to_string(&certificate).map_err(|e| StoreError::Corrupt {
        kind: "certificates",
        id: id.to_string(),
        reason: e.to_string(),
    })?;
    match store.put(EntityKind::Certificate, &record.id, body, secret, Some(record.revision)).await {
        Ok(_) | Err(StoreError::PreconditionFailed { .. }) => Ok((certificate, outcome)),
        Err(other) => Err(other.into()),
    }
}
