//! `/backends`: backend services with their credentials (client certificates) and TLS switches.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use certgate_model::{Authorization, Backend, BackendCredentials, BackendTls, EntityId, EntityKind};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::envelope::{Envelope, Page, Resource};
use crate::error::{ErrorResponse, Unsupported};
use crate::extract::{IdPath, JsonBody, QueryParams};
use crate::list::{Filterable, ListQuery};
use crate::references::References;
use crate::resource::{Loaded, respond_with};
use crate::{AdminState, ApiError};

const KIND: EntityKind = EntityKind::Backend;
/// APIM's limit on client certificates per backend.
const MAX_CERTIFICATES: usize = 32;
/// APIM's length limit on `resourceId`.
const MAX_RESOURCE_ID: usize = 2000;

pub fn routes() -> OpenApiRouter<AdminState> {
    OpenApiRouter::new()
        .routes(routes!(list_backends))
        .routes(routes!(get_backend, put_backend, patch_backend, delete_backend))
        .routes(routes!(crate::backend_test::test_backend))
}

#[derive(Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BackendProperties {
    /// Absolute `http://` or `https://` URL of the backend. Required on PUT.
    url: Option<String>,
    /// Only `http` is supported.
    protocol: Option<String>,
    title: Option<String>,
    description: Option<String>,
    /// Descriptive: the resource in another system this backend is (in APIM, e.g. a Function
    /// App's ARM id); stored and returned as given, 1 to 2000 characters.
    resource_id: Option<String>,
    credentials: Option<CredentialsContract>,
    tls: Option<TlsContract>,
    /// Not supported: the gateway connects to backends directly. Refused by name when given.
    #[schema(value_type = Option<Object>)]
    proxy: Option<serde::de::IgnoredAny>,
    /// Not supported: backends are URLs. Refused by name when given (APIM's `properties.properties`).
    #[schema(value_type = Option<Object>)]
    properties: Option<serde::de::IgnoredAny>,
    /// Not supported (no circuit breaker). Refused by name when given.
    #[schema(value_type = Option<Object>)]
    circuit_breaker: Option<serde::de::IgnoredAny>,
    /// Not supported (no load-balanced pools). Refused by name when given.
    #[schema(value_type = Option<Object>)]
    pool: Option<serde::de::IgnoredAny>,
    /// Only `Single`: one backend URL.
    #[serde(rename = "type")]
    backend_type: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CredentialsContract {
    /// Client certificates by id (presented to the backend); ids win over thumbprints.
    #[serde(default)]
    certificate_ids: Vec<String>,
    /// Uploaded client certificates by thumbprint.
    #[serde(default)]
    certificate: Vec<String>,
    #[serde(default)]
    header: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    query: BTreeMap<String, Vec<String>>,
    authorization: Option<AuthorizationContract>,
}

#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AuthorizationContract {
    scheme: String,
    parameter: String,
}

#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TlsContract {
    /// Validate the backend's certificate chain (default true).
    validate_certificate_chain: Option<bool>,
    /// Validate that the backend's certificate matches its host name (default true).
    validate_certificate_name: Option<bool>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackendContract {
    url: String,
    protocol: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    title: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    resource_id: Option<String>,
    credentials: CredentialsContract,
    tls: TlsContract,
}

impl Filterable for Loaded<Backend> {
    const FIELDS: &'static [&'static str] = &["name", "title", "url"];

    fn field(&self, name: &str) -> Option<String> {
        match name {
            "name" => Some(self.id.to_string()),
            "title" => self.entity.title.clone(),
            "url" => Some(self.entity.url.clone()),
            _ => None,
        }
    }
}

fn resource(id: &EntityId, backend: &Backend) -> Resource<BackendContract> {
    let credentials = &backend.credentials;
    Resource::new(
        KIND.collection(),
        id.as_str(),
        BackendContract {
            url: backend.url.clone(),
            protocol: "http",
            title: backend.title.clone(),
            description: backend.description.clone(),
            resource_id: backend.resource_id.clone(),
            credentials: CredentialsContract {
                certificate_ids: credentials.certificate_ids.iter().map(ToString::to_string).collect(),
                certificate: credentials.certificate.iter().map(ToString::to_string).collect(),
                header: credentials.header.clone(),
                query: credentials.query.clone(),
                authorization: credentials
                    .authorization
                    .as_ref()
                    .map(|a| AuthorizationContract { scheme: a.scheme.clone(), parameter: a.parameter.clone() }),
            },
            tls: TlsContract {
                validate_certificate_chain: Some(backend.tls.validate_certificate_chain),
                validate_certificate_name: Some(backend.tls.validate_certificate_name),
            },
        },
    )
}

/// Applies the request to `base` (PATCH) or to nothing (PUT), validating every field.
async fn build(
    references: &mut References<'_>,
    properties: BackendProperties,
    base: Option<Backend>,
) -> Result<Backend, ApiError> {
    Unsupported::refuse([
        Unsupported {
            target: "properties.proxy",
            asked: properties.proxy.is_some(),
            message: "backend proxies are not supported: the gateway connects to the backend's url directly",
        },
        Unsupported {
            target: "properties.properties",
            asked: properties.properties.is_some(),
            message: "Service Fabric backends (properties.serviceFabricCluster) are not supported: give the backend's url",
        },
        Unsupported {
            target: "properties.circuitBreaker",
            asked: properties.circuit_breaker.is_some(),
            message: "circuit breakers are not supported: a failing backend answers 502 or 504 with an activity id",
        },
        Unsupported {
            target: "properties.pool",
            asked: properties.pool.is_some(),
            message: "load-balanced backend pools are not supported: give one url per backend",
        },
        Unsupported {
            target: "properties.type",
            asked: properties.backend_type.as_deref().is_some_and(|t| !t.eq_ignore_ascii_case("single")),
            message: "only Single backends (one url) are supported, not Pool",
        },
    ])?;
    if let Some(protocol) = &properties.protocol
        && protocol != "http"
    {
        return Err(ApiError::validation("properties.protocol", "only 'http' is supported"));
    }
    let url = match (properties.url, &base) {
        (Some(url), _) => absolute_http_url("properties.url", &url)?,
        (None, Some(base)) => base.url.clone(),
        (None, None) => return Err(ApiError::validation("properties.url", "url is required")),
    };
    let mut backend = base.unwrap_or(Backend {
        url: String::new(),
        title: None,
        description: None,
        resource_id: None,
        credentials: BackendCredentials::default(),
        tls: BackendTls::default(),
    });
    backend.url = url;
    backend.title = properties.title.or(backend.title);
    backend.description = properties.description.or(backend.description);
    if let Some(resource_id) = properties.resource_id {
        if !(1..=MAX_RESOURCE_ID).contains(&resource_id.chars().count()) {
            return Err(ApiError::validation(
                "properties.resourceId",
                format!("resourceId must be 1 to {MAX_RESOURCE_ID} characters"),
            ));
        }
        backend.resource_id = Some(resource_id);
    }
    if let Some(tls) = properties.tls {
        backend.tls.validate_certificate_chain =
            tls.validate_certificate_chain.unwrap_or(backend.tls.validate_certificate_chain);
        backend.tls.validate_certificate_name =
            tls.validate_certificate_name.unwrap_or(backend.tls.validate_certificate_name);
    }
    if let Some(credentials) = properties.credentials {
        backend.credentials = credentials_from(references, credentials).await?;
    }
    Ok(backend)
}

async fn credentials_from(
    references: &mut References<'_>,
    contract: CredentialsContract,
) -> Result<BackendCredentials, ApiError> {
    if contract.certificate_ids.len() + contract.certificate.len() > MAX_CERTIFICATES {
        return Err(ApiError::validation(
            "properties.credentials",
            format!("at most {MAX_CERTIFICATES} certificates may be given"),
        ));
    }
    let mut certificate_ids = Vec::new();
    for (i, raw) in contract.certificate_ids.iter().enumerate() {
        let target = format!("properties.credentials.certificateIds[{i}]");
        certificate_ids.push(references.certificate(&target, raw).await?);
    }
    let mut certificate = Vec::new();
    for (i, raw) in contract.certificate.iter().enumerate() {
        let target = format!("properties.credentials.certificate[{i}]");
        certificate.push(references.certificate_by_thumbprint(&target, raw).await?);
    }
    Ok(BackendCredentials {
        certificate_ids,
        certificate,
        header: contract.header,
        query: contract.query,
        authorization: contract.authorization.map(|a| Authorization { scheme: a.scheme, parameter: a.parameter }),
    })
}

/// An absolute http(s) URL with a host, without a trailing `/`.
pub(crate) fn absolute_http_url(target: &str, raw: &str) -> Result<String, ApiError> {
    let invalid = || ApiError::validation(target, format!("'{raw}' is not an absolute http:// or https:// URL"));
    let uri: axum::http::Uri = raw.parse().map_err(|_| invalid())?;
    match (uri.scheme_str(), uri.host()) {
        (Some("http" | "https"), Some(host)) if !host.is_empty() && uri.query().is_none() => {
            Ok(raw.trim_end_matches('/').to_owned())
        }
        _ => Err(invalid()),
    }
}

/// List backends.
#[utoipa::path(get, path = "/backends", tag = "backends", params(ListQuery),
    responses((status = 200, body = Page<BackendContract>), (status = 400, body = ErrorResponse)))]
async fn list_backends(
    State(state): State<AdminState>,
    QueryParams(query): QueryParams<ListQuery>,
) -> Result<Json<Page<BackendContract>>, ApiError> {
    let all = state.load_all::<Backend>(KIND).await?;
    Ok(Json(query.page(KIND.collection(), all, |b| resource(&b.id, &b.entity))?))
}

/// Get a backend.
#[utoipa::path(get, path = "/backends/{id}", tag = "backends", params(("id" = String, Path)),
    responses((status = 200, body = Resource<BackendContract>), (status = 404, body = ErrorResponse)))]
async fn get_backend(State(state): State<AdminState>, IdPath(id): IdPath) -> Result<Response, ApiError> {
    let loaded = state.load::<Backend>(KIND, &id).await?;
    Ok(respond_with(StatusCode::OK, loaded.revision, resource(&loaded.id, &loaded.entity)))
}

/// Create or replace a backend.
#[utoipa::path(put, path = "/backends/{id}", tag = "backends",
    params(("id" = String, Path), ("If-Match" = Option<String>, Header)),
    request_body = Envelope<BackendProperties>,
    responses((status = 201, body = Resource<BackendContract>), (status = 200, body = Resource<BackendContract>),
              (status = 400, body = ErrorResponse), (status = 412, body = ErrorResponse)))]
async fn put_backend(
    State(state): State<AdminState>,
    IdPath(id): IdPath,
    headers: HeaderMap,
    JsonBody(envelope): JsonBody<Envelope<BackendProperties>>,
) -> Result<Response, ApiError> {
    let (state, id, headers, properties) = (&state, &id, &headers, &envelope.properties);
    state
        .without_races(References::RACED_BY, |unchanged| async move {
            let mut references = References::new(state);
            let backend = build(&mut references, properties.clone(), None).await?;
            let checks = references.precondition(unchanged);
            state.write_checked(KIND, id, headers, &backend, None, checks, |stored| resource(stored, &backend)).await
        })
        .await
}

/// Update named properties of a backend.
#[utoipa::path(patch, path = "/backends/{id}", tag = "backends",
    params(("id" = String, Path), ("If-Match" = Option<String>, Header)),
    request_body = Envelope<BackendProperties>,
    responses((status = 200, body = Resource<BackendContract>), (status = 400, body = ErrorResponse),
              (status = 404, body = ErrorResponse), (status = 412, body = ErrorResponse)))]
async fn patch_backend(
    State(state): State<AdminState>,
    IdPath(id): IdPath,
    headers: HeaderMap,
    JsonBody(envelope): JsonBody<Envelope<BackendProperties>>,
) -> Result<Response, ApiError> {
    let (state, id, headers, properties) = (&state, &id, &headers, &envelope.properties);
    state
        .without_races(References::RACED_BY, |unchanged| async move {
            let current = state.load::<Backend>(KIND, id).await?;
            let mut references = References::new(state);
            let backend = build(&mut references, properties.clone(), Some(current.entity)).await?;
            let respond = |stored: &EntityId| resource(stored, &backend);
            let checks = references.precondition(unchanged);
            state.write_checked(KIND, &current.id, headers, &backend, None, checks, respond).await
        })
        .await
}

/// Delete a backend (409 while a policy names it in set-backend-service).
#[utoipa::path(delete, path = "/backends/{id}", tag = "backends",
    params(("id" = String, Path), ("If-Match" = Option<String>, Header)),
    responses((status = 204), (status = 404, body = ErrorResponse), (status = 409, body = ErrorResponse),
              (status = 412, body = ErrorResponse)))]
async fn delete_backend(
    State(state): State<AdminState>,
    IdPath(id): IdPath,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let (state, id, headers) = (&state, &id, &headers);
    state
        .without_races(&[EntityKind::Policy], |unchanged| async move {
            let current = state.load::<Backend>(KIND, id).await?;
            crate::references::refuse_if_referenced(state, crate::references::Target::Backend(&current.id)).await?;
            state.remove_checked(KIND, id, headers, Some(unchanged)).await
        })
        .await
}
