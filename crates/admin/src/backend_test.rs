//! `POST /backends/{id}/test[?certificateId=ID]`: the handshake probe. Connects to the backend
//! with its TLS switches, the node's trust (system roots and uploaded CA certificates) and its
//! configured client certificate — or a candidate one — and reports each step. It writes nothing.

use axum::Json;
use axum::extract::{Query, State};
use certgate_model::{Backend, CaCertificate, Certificate, EntityId, EntityKind};
use certgate_pki::{BackendTrust, ClientIdentity, certificate_facts, format_utc};
use certgate_probe::{ProbeCertificate, ProbeReport, ProbeTarget};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::ErrorResponse;
use crate::extract::IdPath;
use crate::{AdminState, ApiError};

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
pub struct ProbeQuery {
    /// A candidate certificate to present instead of the backend's own.
    certificate_id: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProbeStepContract {
    /// `resolve`, `connect`, `serverCertificate`, `clientCertificateRequest`, `handshake`, `request`.
    step: &'static str,
    ok: bool,
    detail: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProbedCertificateContract {
    subject: String,
    issuer: String,
    thumbprint: String,
    expiration_date: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProbeContract {
    backend_id: String,
    url: String,
    /// The certificate presented (the candidate, else the backend's first), if any.
    certificate_id: Option<String>,
    /// The backend answered an HTTP request over a connection made as traffic's would be.
    succeeded: bool,
    /// Why not, in the vocabulary of the gateway's 500 log line and handshake-failure metric
    /// (`unreachable`, `untrusted_chain`, `name_mismatch`, `expired_certificate`,
    /// `client_certificate_rejected`, `handshake_failed`).
    reason: Option<String>,
    hint: String,
    steps: Vec<ProbeStepContract>,
    /// The backend's certificates as sent, leaf first.
    server_certificates: Vec<ProbedCertificateContract>,
    client_certificate_requested: bool,
    /// The CA names the backend's certificate request listed (empty: any, or not asked).
    acceptable_issuers: Vec<String>,
    /// The thumbprint of the client certificate sent, if one was.
    certificate_sent: Option<String>,
    http_status: Option<u16>,
}

/// Test the TLS handshake with a backend, with its own or a candidate client certificate;
/// changes nothing. A POST because it presents a private key to the network: contributors only.
#[utoipa::path(post, path = "/backends/{id}/test", tag = "backends",
    params(("id" = String, Path), ProbeQuery),
    responses((status = 200, body = ProbeContract), (status = 400, body = ErrorResponse),
              (status = 404, body = ErrorResponse)))]
pub(crate) async fn test_backend(
    State(state): State<AdminState>,
    IdPath(id): IdPath,
    Query(query): Query<ProbeQuery>,
) -> Result<Json<ProbeContract>, ApiError> {
    let backend = state.load::<Backend>(EntityKind::Backend, &id).await?;
    let certificate_id =
        match &query.certificate_id {
            Some(raw) => Some(EntityId::parse(raw).map_err(|_| {
                ApiError::validation("certificateId", format!("Certificate with id '{raw}' not found."))
            })?),
            None => configured_certificate(&state, &backend.entity).await?,
        };
    let certificate = match &certificate_id {
        Some(certificate_id) => Some(probe_certificate(&state, certificate_id).await?),
        None => None,
    };
    let uploaded = state.load_all::<CaCertificate>(EntityKind::CaCertificate).await?;
    let trust = BackendTrust::with_uploaded(BackendTrust::system_roots(), uploaded.iter().map(|ca| &ca.entity));
    let target = ProbeTarget {
        url: &backend.entity.url,
        switches: backend.entity.tls,
        trust: &trust,
        certificate: certificate.as_ref(),
    };
    let report = certgate_probe::probe(target).await.map_err(|e| ApiError::validation("properties.url", e.0))?;
    tracing::info!(backend = %backend.id, succeeded = report.succeeded(), reason = report.failure.as_ref().map(|f| f.reason), "backend probe");
    Ok(Json(contract(&backend.id, &backend.entity.url, certificate.map(|c| c.id), report)))
}

/// The backend's own client certificate: its first by id, else its first by thumbprint.
async fn configured_certificate(state: &AdminState, backend: &Backend) -> Result<Option<EntityId>, ApiError> {
    if let Some(id) = backend.credentials.certificate_ids.first() {
        return Ok(Some(id.clone()));
    }
    let Some(thumbprint) = backend.credentials.certificate.first() else { return Ok(None) };
    let certificates = state.load_all::<Certificate>(EntityKind::Certificate).await?;
    Ok(certificates.into_iter().find(|c| c.entity.thumbprint == *thumbprint).map(|c| c.id))
}

/// A stored certificate with its key, ready to present.
async fn probe_certificate(state: &AdminState, id: &EntityId) -> Result<ProbeCertificate, ApiError> {
    let not_found = || ApiError::validation("certificateId", format!("Certificate with id '{id}' not found."));
    let record = state.store.get(EntityKind::Certificate, id).await?.ok_or_else(not_found)?;
    let certificate: Certificate = record.decode()?;
    let key = record.secret.as_ref().ok_or_else(not_found)?;
    let leaf = certificate.chain.first().ok_or_else(not_found)?;
    let facts = certificate_facts(leaf).map_err(|e| ApiError::validation("certificateId", e.to_string()))?;
    let identity = ClientIdentity::from_der(&certificate.chain, key);
    Ok(ProbeCertificate { id: record.id.to_string(), facts, identity })
}

fn contract(backend_id: &EntityId, url: &str, certificate_id: Option<String>, report: ProbeReport) -> ProbeContract {
    ProbeContract {
        backend_id: backend_id.to_string(),
        url: url.to_owned(),
        certificate_id,
        succeeded: report.succeeded(),
        reason: report.failure.as_ref().map(|f| f.reason.to_owned()),
        hint: report.hint,
        steps: report
            .steps
            .into_iter()
            .map(|s| ProbeStepContract { step: s.name.as_str(), ok: s.ok, detail: s.detail })
            .collect(),
        server_certificates: report
            .server_chain
            .into_iter()
            .map(|c| ProbedCertificateContract {
                subject: c.subject,
                issuer: c.issuer,
                thumbprint: c.thumbprint.to_string(),
                expiration_date: format_utc(c.not_after),
            })
            .collect(),
        client_certificate_requested: report.client_certificate_requested,
        acceptable_issuers: report.acceptable_issuers,
        certificate_sent: report.certificate_sent,
        http_status: report.http_status,
    }
}
