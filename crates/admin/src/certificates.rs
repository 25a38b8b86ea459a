//! `/certificates`: client certificates the gateway presents to backends.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use certgate_model::{Certificate, CertificateSource, EntityId, EntityKind, LastStatusCode};
use certgate_pki::{ImportedCertificate, Pkcs12Error, format_utc, import_pkcs12_base64};
use certgate_vault::{Identity, SecretReference};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use zeroize::Zeroizing;

use crate::envelope::{Envelope, Page, Resource};
use crate::error::ErrorResponse;
use crate::extract::{IdPath, JsonBody, QueryParams};
use crate::list::{Filterable, ListQuery};
use crate::resource::{Loaded, respond_with};
use crate::{AdminState, ApiError};

const KIND: EntityKind = EntityKind::Certificate;

pub fn routes() -> OpenApiRouter<AdminState> {
    OpenApiRouter::new()
        .routes(routes!(list_certificates))
        .routes(routes!(get_certificate, put_certificate, patch_certificate, delete_certificate))
        .routes(routes!(refresh_secret))
        .routes(routes!(list_referrers))
}

/// What names a certificate: the paths a delete would be refused for.
#[derive(Debug, Serialize, ToSchema)]
pub struct Referrers {
    /// Management paths of the policies and backends that reference the certificate.
    value: Vec<String>,
}

/// List the policies and backends that reference a certificate (a delete answers 409 while any do).
#[utoipa::path(get, path = "/certificates/{id}/referrers", tag = "certificates", params(("id" = String, Path)),
    responses((status = 200, body = Referrers), (status = 404, body = ErrorResponse)))]
async fn list_referrers(State(state): State<AdminState>, IdPath(id): IdPath) -> Result<Json<Referrers>, ApiError> {
    let current = state.load::<Certificate>(KIND, &id).await?;
    let target = crate::references::Target::Certificate(&current.id, &current.entity.thumbprint);
    Ok(Json(Referrers { value: crate::references::referrers(&state, target).await? }))
}

/// Create or update: either an uploaded PKCS#12 file or a vault reference.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CertificateCreateOrUpdateProperties {
    /// Base64 of the PKCS#12 (.pfx) file. Never returned.
    #[schema(write_only, value_type = Option<String>)]
    data: Option<Zeroizing<String>>,
    /// Password of the PKCS#12 file; omit for password-less files. Never returned.
    #[schema(write_only, value_type = Option<String>)]
    password: Option<Zeroizing<String>>,
    /// A certificate held in OpenBao / HashiCorp Vault.
    key_vault: Option<KeyVaultProperties>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct KeyVaultProperties {
    /// KV v2 read URL: `https://host:8200/v1/<mount>/data/<path>[?version=N]`.
    secret_identifier: String,
    /// The identity used to read it; absent = the gateway's system identity.
    identity_client_id: Option<String>,
}

/// A certificate as the API shows it. Key material never appears.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CertificateContract {
    /// Distinguished name of the leaf, most specific attribute first.
    subject: String,
    /// Upper-case hex SHA-1 of the leaf certificate.
    thumbprint: String,
    /// `notAfter` of the leaf, UTC, `yyyy-MM-ddTHH:mm:ssZ`.
    expiration_date: String,
    /// `Custom` for uploaded files, `KeyVault` for vault references.
    source: String,
    /// The vault reference and its last refresh, for `KeyVault` certificates.
    #[serde(skip_serializing_if = "Option::is_none")]
    key_vault: Option<KeyVaultContract>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeyVaultContract {
    secret_identifier: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    identity_client_id: Option<String>,
    last_status: LastStatusContract,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LastStatusContract {
    /// `Success`, `Forbidden`, `VaultUnreachable`, `SecretNotFound` or `InvalidSecret`.
    code: String,
    message: String,
    time_stamp_utc: String,
}

impl Filterable for Loaded<Certificate> {
    const FIELDS: &'static [&'static str] = &["name", "subject", "thumbprint", "expirationDate"];

    fn field(&self, name: &str) -> Option<String> {
        match name {
            "name" => Some(self.id.to_string()),
            "subject" => Some(self.entity.subject.clone()),
            "thumbprint" => Some(self.entity.thumbprint.to_string()),
            "expirationDate" => Some(format_utc(self.entity.not_after)),
            _ => None,
        }
    }
}

fn resource(id: &EntityId, certificate: &Certificate) -> Resource<CertificateContract> {
    Resource::new(
        KIND.collection(),
        id.as_str(),
        CertificateContract {
            subject: certificate.subject.clone(),
            thumbprint: certificate.thumbprint.to_string(),
            expiration_date: format_utc(certificate.not_after),
            source: certificate.source.as_str().to_owned(),
            key_vault: match &certificate.source {
                CertificateSource::Upload => None,
                CertificateSource::KeyVault { secret_identifier, identity_client_id, last_status, .. } => {
                    Some(KeyVaultContract {
                        secret_identifier: secret_identifier.clone(),
                        identity_client_id: identity_client_id.clone(),
                        last_status: LastStatusContract {
                            code: format!("{:?}", last_status.code),
                            message: last_status.message.clone(),
                            time_stamp_utc: format_utc(last_status.time),
                        },
                    })
                }
            },
        },
    )
    .with_expiry_warning(certificate.not_after)
}

/// A validated certificate ready to store: entity, private key, warnings for the caller.
struct Imported {
    certificate: Certificate,
    private_key: Zeroizing<Vec<u8>>,
    warnings: Vec<String>,
}

/// Validates the request and imports the material (reading a vault reference at once);
/// `None` when nothing was asked to change.
async fn import(
    state: &AdminState,
    properties: CertificateCreateOrUpdateProperties,
) -> Result<Option<Imported>, ApiError> {
    match (properties.data, properties.key_vault) {
        (Some(_), Some(_)) => Err(ApiError::validations(vec![
            (
                "properties.data".into(),
                "give either data (an uploaded file) or keyVault (a reference), not both".into(),
            ),
            (
                "properties.keyVault".into(),
                "give either data (an uploaded file) or keyVault (a reference), not both".into(),
            ),
        ])),
        (None, Some(_)) if properties.password.is_some() => {
            Err(ApiError::validation("properties.password", "a password is only meaningful together with data"))
        }
        (None, Some(reference)) => import_reference(state, reference).await.map(Some),
        (None, None) if properties.password.is_some() => {
            Err(ApiError::validation("properties.password", "a password is only meaningful together with data"))
        }
        (None, None) => Ok(None),
        (Some(data), None) => {
            let password = properties.password.as_deref().map_or("", String::as_str);
            let imported = import_pkcs12_base64(&data, password).map_err(|e| {
                let target = match e {
                    Pkcs12Error::WrongPassword | Pkcs12Error::WrongPasswordOrCorrupt => "properties.password",
                    _ => "properties.data",
                };
                ApiError::validation(target, e.to_string())
            })?;
            Ok(Some(imported_with(imported, CertificateSource::Upload, Vec::new())))
        }
    }
}

/// Reads the reference now: an unreadable reference is a 400 with the vault's reason.
async fn import_reference(state: &AdminState, reference: KeyVaultProperties) -> Result<Imported, ApiError> {
    let identifier_target = "properties.keyVault.secretIdentifier";
    let parsed = SecretReference::parse(&reference.secret_identifier)
        .map_err(|e| ApiError::validation(identifier_target, e.to_string()))?;
    let Some(vault) = &state.vault else {
        return Err(ApiError::validation("properties.keyVault", "this node has no vault identity configured"));
    };
    let identity = reference.identity_client_id.filter(|i| !i.is_empty());
    if !vault.has_identity(identity.as_deref()) {
        let known: Vec<&str> = vault.identities().into_iter().map(|(id, _)| id).collect();
        return Err(ApiError::validation(
            "properties.keyVault.identityClientId",
            format!(
                "identity '{}' is not configured; configured: {}",
                identity.as_deref().unwrap_or(Identity::SYSTEM),
                known.join(", ")
            ),
        ));
    }
    let material = vault
        .read(identity.as_deref(), &parsed)
        .await
        .map_err(|f| ApiError::validation(identifier_target, format!("{:?}: {}", f.code, f.message)))?;
    let mut warnings = Vec::new();
    if let certgate_vault::ReferenceKind::Kv { version: Some(version) } = parsed.kind {
        warnings.push(format!(
            "the reference is pinned to version {version} and will not rotate; remove ?version= to follow new versions"
        ));
    }
    let source = CertificateSource::KeyVault {
        secret_identifier: reference.secret_identifier,
        identity_client_id: identity,
        version: material.version,
        last_status: material.success_status(),
    };
    Ok(imported_with(material.certificate, source, warnings))
}

fn imported_with(imported: ImportedCertificate, source: CertificateSource, mut warnings: Vec<String>) -> Imported {
    let ImportedCertificate { subject, thumbprint, not_after, chain, private_key, warnings: facts } = imported;
    warnings.extend(facts);
    Imported { certificate: Certificate { subject, thumbprint, not_after, chain, source }, private_key, warnings }
}

/// List certificates.
#[utoipa::path(get, path = "/certificates", tag = "certificates", params(ListQuery),
    responses((status = 200, body = Page<CertificateContract>), (status = 400, body = ErrorResponse),
              (status = 401, body = ErrorResponse)))]
async fn list_certificates(
    State(state): State<AdminState>,
    QueryParams(query): QueryParams<ListQuery>,
) -> Result<Json<Page<CertificateContract>>, ApiError> {
    let mut all = state.load_all::<Certificate>(KIND).await?;
    if let Some(failed) = query.is_key_vault_refresh_failed {
        all.retain(|c| match &c.entity.source {
            CertificateSource::KeyVault { last_status, .. } => (last_status.code != LastStatusCode::Success) == failed,
            CertificateSource::Upload => !failed,
        });
    }
    Ok(Json(query.page(KIND.collection(), all, |c| resource(&c.id, &c.entity))?))
}

/// Get a certificate (HEAD answers the same without a body).
#[utoipa::path(get, path = "/certificates/{id}", tag = "certificates", params(("id" = String, Path)),
    responses((status = 200, body = Resource<CertificateContract>, headers(("ETag" = String))),
              (status = 404, body = ErrorResponse)))]
async fn get_certificate(State(state): State<AdminState>, IdPath(id): IdPath) -> Result<Response, ApiError> {
    let loaded = state.load::<Certificate>(KIND, &id).await?;
    Ok(respond_with(StatusCode::OK, loaded.revision, resource(&loaded.id, &loaded.entity)))
}

/// Upload a PKCS#12 certificate (creates or replaces).
#[utoipa::path(put, path = "/certificates/{id}", tag = "certificates",
    params(("id" = String, Path), ("If-Match" = Option<String>, Header)),
    request_body = Envelope<CertificateCreateOrUpdateProperties>,
    responses((status = 201, body = Resource<CertificateContract>), (status = 200, body = Resource<CertificateContract>),
              (status = 400, body = ErrorResponse), (status = 412, body = ErrorResponse),
              (status = 413, body = ErrorResponse)))]
async fn put_certificate(
    State(state): State<AdminState>,
    IdPath(id): IdPath,
    headers: HeaderMap,
    JsonBody(envelope): JsonBody<Envelope<CertificateCreateOrUpdateProperties>>,
) -> Result<Response, ApiError> {
    let Some(imported) = import(&state, envelope.properties).await? else {
        return Err(ApiError::validation("properties", "give data (a base64 PKCS#12 file) or keyVault (a reference)"));
    };
    store(&state, &id, &headers, imported).await
}

/// Update a certificate: a new file (data, password) replaces the material.
#[utoipa::path(patch, path = "/certificates/{id}", tag = "certificates",
    params(("id" = String, Path), ("If-Match" = Option<String>, Header)),
    request_body = Envelope<CertificateCreateOrUpdateProperties>,
    responses((status = 200, body = Resource<CertificateContract>), (status = 400, body = ErrorResponse),
              (status = 404, body = ErrorResponse), (status = 412, body = ErrorResponse)))]
async fn patch_certificate(
    State(state): State<AdminState>,
    IdPath(id): IdPath,
    headers: HeaderMap,
    JsonBody(envelope): JsonBody<Envelope<CertificateCreateOrUpdateProperties>>,
) -> Result<Response, ApiError> {
    let current = state.load::<Certificate>(KIND, &id).await?;
    match import(&state, envelope.properties).await? {
        Some(imported) => store(&state, &current.id, &headers, imported).await,
        None => Ok(respond_with(StatusCode::OK, current.revision, resource(&current.id, &current.entity))),
    }
}

async fn store(
    state: &AdminState,
    id: &EntityId,
    headers: &HeaderMap,
    imported: Imported,
) -> Result<Response, ApiError> {
    let Imported { certificate, private_key, warnings } = imported;
    state
        .write(KIND, id, headers, &certificate, Some(private_key), |stored| {
            resource(stored, &certificate).with_warnings(warnings)
        })
        .await
}

/// Delete a certificate.
#[utoipa::path(delete, path = "/certificates/{id}", tag = "certificates",
    params(("id" = String, Path), ("If-Match" = Option<String>, Header)),
    responses((status = 204), (status = 404, body = ErrorResponse), (status = 409, body = ErrorResponse),
              (status = 412, body = ErrorResponse)))]
async fn delete_certificate(
    State(state): State<AdminState>,
    IdPath(id): IdPath,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let (state, id, headers) = (&state, &id, &headers);
    state
        .without_races(&[EntityKind::Policy, EntityKind::Backend, EntityKind::Certificate], |unchanged| async move {
            let current = state.load::<Certificate>(KIND, id).await?;
            let target = crate::references::Target::Certificate(&current.id, &current.entity.thumbprint);
            crate::references::refuse_if_referenced(state, target).await?;
            state.remove_checked(KIND, id, headers, Some(unchanged)).await
        })
        .await
}

/// Re-read a vault-referenced certificate now.
#[utoipa::path(post, path = "/certificates/{id}/refreshSecret", tag = "certificates", params(("id" = String, Path)),
    responses((status = 200, body = Resource<CertificateContract>), (status = 400, body = ErrorResponse),
              (status = 404, body = ErrorResponse)))]
async fn refresh_secret(State(state): State<AdminState>, IdPath(id): IdPath) -> Result<Response, ApiError> {
    let current = state.load::<Certificate>(KIND, &id).await?;
    if !current.entity.source.is_vault() {
        return Err(ApiError::validation(
            "id",
            format!(
                "certificate '{}' was uploaded, not referenced from a vault; upload a new file to change it",
                current.id
            ),
        ));
    }
    let Some(vault) = &state.vault else {
        return Err(ApiError::validation("id", "this node has no vault identity configured"));
    };
    let (certificate, _) = certgate_vault::refresh::refresh(state.store.as_ref(), vault.as_ref(), &current.id)
        .await
        .map_err(|e| match e {
            certgate_vault::refresh::RefreshError::Store(store) => ApiError::from(store),
            other => ApiError::validation("id", other.to_string()),
        })?;
    let reloaded = state.load::<Certificate>(KIND, &current.id).await?;
    state.await_publication(reloaded.revision).await;
    Ok(respond_with(StatusCode::OK, reloaded.revision, resource(&reloaded.id, &certificate)))
}
