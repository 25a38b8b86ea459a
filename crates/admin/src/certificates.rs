//! `/certificates`: client certificates the gateway presents to backends.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use certgate_model::{Certificate, CertificateSource, EntityId, EntityKind};
use certgate_pki::{ImportedCertificate, Pkcs12Error, format_utc, import_pkcs12};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use zeroize::Zeroizing;

use crate::envelope::{Envelope, Page, Resource};
use crate::error::ErrorResponse;
use crate::extract::{IdPath, JsonBody, ListParams};
use crate::list::{Filterable, ListQuery};
use crate::resource::{Loaded, decode_base64, respond_with};
use crate::{AdminState, ApiError};

const KIND: EntityKind = EntityKind::Certificate;

pub fn routes() -> OpenApiRouter<AdminState> {
    OpenApiRouter::new()
        .routes(routes!(list_certificates))
        .routes(routes!(get_certificate, put_certificate, patch_certificate, delete_certificate))
        .routes(routes!(refresh_secret))
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
    /// `Custom` for uploaded files.
    source: String,
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
        },
    )
}

/// Validates the request and imports the material; `None` when nothing was asked to change.
fn import(properties: CertificateCreateOrUpdateProperties) -> Result<Option<ImportedCertificate>, ApiError> {
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
        (None, Some(reference)) => Err(ApiError::validation(
            "properties.keyVault",
            format!(
                "cannot read '{}' with identity '{}': this node has no vault identity configured",
                reference.secret_identifier,
                reference.identity_client_id.as_deref().unwrap_or("system")
            ),
        )),
        (None, None) if properties.password.is_some() => {
            Err(ApiError::validation("properties.password", "a password is only meaningful together with data"))
        }
        (None, None) => Ok(None),
        (Some(data), None) => {
            let pfx = Zeroizing::new(decode_base64("properties.data", &data)?);
            let password = properties.password.as_deref().map_or("", String::as_str);
            let imported = import_pkcs12(&pfx, password).map_err(|e| {
                let target = match e {
                    Pkcs12Error::WrongPassword | Pkcs12Error::WrongPasswordOrCorrupt => "properties.password",
                    _ => "properties.data",
                };
                ApiError::validation(target, e.to_string())
            })?;
            Ok(Some(imported))
        }
    }
}

/// List certificates.
#[utoipa::path(get, path = "/certificates", tag = "certificates", params(ListQuery),
    responses((status = 200, body = Page<CertificateContract>), (status = 400, body = ErrorResponse),
              (status = 401, body = ErrorResponse)))]
async fn list_certificates(
    State(state): State<AdminState>,
    ListParams(query): ListParams,
) -> Result<Json<Page<CertificateContract>>, ApiError> {
    let all = state.load_all::<Certificate>(KIND).await?;
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
    let Some(imported) = import(envelope.properties)? else {
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
    match import(envelope.properties)? {
        Some(imported) => store(&state, &current.id, &headers, imported).await,
        None => Ok(respond_with(StatusCode::OK, current.revision, resource(&current.id, &current.entity))),
    }
}

async fn store(
    state: &AdminState,
    id: &EntityId,
    headers: &HeaderMap,
    imported: ImportedCertificate,
) -> Result<Response, ApiError> {
    let ImportedCertificate { subject, thumbprint, not_after, chain, private_key, warnings } = imported;
    let certificate = Certificate { subject, thumbprint, not_after, chain, source: CertificateSource::Upload };
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
    let current = state.load::<Certificate>(KIND, &id).await?;
    let target = crate::references::Target::Certificate(&current.id, &current.entity.thumbprint);
    crate::references::refuse_if_referenced(&state, target).await?;
    state.remove(KIND, &id, &headers).await
}

/// Re-read a vault-referenced certificate now.
#[utoipa::path(post, path = "/certificates/{id}/refreshSecret", tag = "certificates", params(("id" = String, Path)),
    responses((status = 200, body = Resource<CertificateContract>), (status = 400, body = ErrorResponse),
              (status = 404, body = ErrorResponse)))]
async fn refresh_secret(State(state): State<AdminState>, IdPath(id): IdPath) -> Result<Response, ApiError> {
    let current = state.load::<Certificate>(KIND, &id).await?;
    match current.entity.source {
        CertificateSource::Upload => Err(ApiError::validation(
            "id",
            format!(
                "certificate '{}' was uploaded, not referenced from a vault; upload a new file to change it",
                current.id
            ),
        )),
    }
}
