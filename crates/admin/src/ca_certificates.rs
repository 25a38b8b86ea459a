//! `/caCertificates`: public CA certificates that extend the trust used to validate backends.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use certgate_model::{CaCertificate, CaStoreName, EntityId, EntityKind};
use certgate_pki::{format_utc, import_ca_certificate};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::envelope::{Envelope, Page, Resource};
use crate::error::ErrorResponse;
use crate::extract::{IdPath, JsonBody, QueryParams};
use crate::list::{Filterable, ListQuery};
use crate::resource::{Loaded, decode_base64, respond_with};
use crate::{AdminState, ApiError};

const KIND: EntityKind = EntityKind::CaCertificate;

pub fn routes() -> OpenApiRouter<AdminState> {
    OpenApiRouter::new().routes(routes!(list_ca_certificates)).routes(routes!(
        get_ca_certificate,
        put_ca_certificate,
        patch_ca_certificate,
        delete_ca_certificate
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CaCertificateProperties {
    /// The certificate: PEM text, or base64 of DER or PEM. Public certificates only.
    data: Option<String>,
    /// `Root` (a trust anchor) or `CertificateAuthority` (an intermediate).
    #[schema(value_type = Option<String>)]
    store_name: Option<CaStoreName>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CaCertificateContract {
    subject: String,
    thumbprint: String,
    expiration_date: String,
    store_name: String,
    /// The certificate itself, as PEM: it is public, and `certgate export` writes it out.
    pem: String,
}

impl Filterable for Loaded<CaCertificate> {
    const FIELDS: &'static [&'static str] = &["name", "subject", "thumbprint", "expirationDate", "storeName"];

    fn field(&self, name: &str) -> Option<String> {
        match name {
            "name" => Some(self.id.to_string()),
            "subject" => Some(self.entity.subject.clone()),
            "thumbprint" => Some(self.entity.thumbprint.to_string()),
            "expirationDate" => Some(format_utc(self.entity.not_after)),
            "storeName" => Some(self.entity.store_name.as_str().to_owned()),
            _ => None,
        }
    }
}

fn resource(id: &EntityId, ca: &CaCertificate) -> Resource<CaCertificateContract> {
    Resource::new(
        KIND.collection(),
        id.as_str(),
        CaCertificateContract {
            subject: ca.subject.clone(),
            thumbprint: ca.thumbprint.to_string(),
            expiration_date: format_utc(ca.not_after),
            store_name: ca.store_name.as_str().to_owned(),
            pem: certgate_pki::certificate_pem(&ca.der),
        },
    )
    .with_expiry_warning(ca.not_after)
}

/// Builds the entity from the request, taking what the request leaves out from `current`.
fn build(properties: CaCertificateProperties, current: Option<&CaCertificate>) -> Result<CaCertificate, ApiError> {
    let store_name = properties.store_name.or(current.map(|c| c.store_name));
    let der = match (&properties.data, current) {
        (Some(data), _) => Some(decode_certificate(data)?),
        (None, current) => current.map(|c| c.der.clone()),
    };
    let mut faults = Vec::new();
    if der.is_none() {
        faults.push(("properties.data".to_owned(), "data is required: the CA certificate as PEM or base64".to_owned()));
    }
    if store_name.is_none() {
        faults.push((
            "properties.storeName".to_owned(),
            "storeName is required: Root or CertificateAuthority".to_owned(),
        ));
    }
    match (der, store_name) {
        (Some(der), Some(store_name)) => {
            let imported =
                import_ca_certificate(&der).map_err(|e| ApiError::validation("properties.data", e.to_string()))?;
            Ok(CaCertificate {
                subject: imported.subject,
                thumbprint: imported.thumbprint,
                not_after: imported.not_after,
                store_name,
                der: imported.der,
            })
        }
        _ => Err(ApiError::validations(faults)),
    }
}

/// PEM text as is; otherwise base64 of DER or of PEM.
fn decode_certificate(data: &str) -> Result<Vec<u8>, ApiError> {
    if data.trim_start().starts_with("-----BEGIN") {
        Ok(data.as_bytes().to_vec())
    } else {
        decode_base64("properties.data", data)
    }
}

/// List CA certificates.
#[utoipa::path(get, path = "/caCertificates", tag = "caCertificates", params(ListQuery),
    responses((status = 200, body = Page<CaCertificateContract>), (status = 400, body = ErrorResponse)))]
async fn list_ca_certificates(
    State(state): State<AdminState>,
    QueryParams(query): QueryParams<ListQuery>,
) -> Result<Json<Page<CaCertificateContract>>, ApiError> {
    let all = state.load_all::<CaCertificate>(KIND).await?;
    Ok(Json(query.page(KIND.collection(), all, |c| resource(&c.id, &c.entity))?))
}

/// Get a CA certificate.
#[utoipa::path(get, path = "/caCertificates/{id}", tag = "caCertificates", params(("id" = String, Path)),
    responses((status = 200, body = Resource<CaCertificateContract>, headers(("ETag" = String))),
              (status = 404, body = ErrorResponse)))]
async fn get_ca_certificate(State(state): State<AdminState>, IdPath(id): IdPath) -> Result<Response, ApiError> {
    let loaded = state.load::<CaCertificate>(KIND, &id).await?;
    Ok(respond_with(StatusCode::OK, loaded.revision, resource(&loaded.id, &loaded.entity)))
}

/// Upload a CA certificate (creates or replaces).
#[utoipa::path(put, path = "/caCertificates/{id}", tag = "caCertificates",
    params(("id" = String, Path), ("If-Match" = Option<String>, Header)),
    request_body = Envelope<CaCertificateProperties>,
    responses((status = 201, body = Resource<CaCertificateContract>), (status = 200, body = Resource<CaCertificateContract>),
              (status = 400, body = ErrorResponse), (status = 412, body = ErrorResponse)))]
async fn put_ca_certificate(
    State(state): State<AdminState>,
    IdPath(id): IdPath,
    headers: HeaderMap,
    JsonBody(envelope): JsonBody<Envelope<CaCertificateProperties>>,
) -> Result<Response, ApiError> {
    let ca = build(envelope.properties, None)?;
    state.write(KIND, &id, &headers, &ca, None, |stored| resource(stored, &ca)).await
}

/// Update a CA certificate's data or store name.
#[utoipa::path(patch, path = "/caCertificates/{id}", tag = "caCertificates",
    params(("id" = String, Path), ("If-Match" = Option<String>, Header)),
    request_body = Envelope<CaCertificateProperties>,
    responses((status = 200, body = Resource<CaCertificateContract>), (status = 400, body = ErrorResponse),
              (status = 404, body = ErrorResponse), (status = 412, body = ErrorResponse)))]
async fn patch_ca_certificate(
    State(state): State<AdminState>,
    IdPath(id): IdPath,
    headers: HeaderMap,
    JsonBody(envelope): JsonBody<Envelope<CaCertificateProperties>>,
) -> Result<Response, ApiError> {
    let current = state.load::<CaCertificate>(KIND, &id).await?;
    let ca = build(envelope.properties, Some(&current.entity))?;
    state.write(KIND, &current.id, &headers, &ca, None, |stored| resource(stored, &ca)).await
}

/// Delete a CA certificate.
#[utoipa::path(delete, path = "/caCertificates/{id}", tag = "caCertificates",
    params(("id" = String, Path), ("If-Match" = Option<String>, Header)),
    responses((status = 204), (status = 404, body = ErrorResponse), (status = 412, body = ErrorResponse)))]
async fn delete_ca_certificate(
    State(state): State<AdminState>,
    IdPath(id): IdPath,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    state.remove(KIND, &id, &headers).await
}
