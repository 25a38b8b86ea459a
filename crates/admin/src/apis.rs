//! `/apis`: public path prefixes mapped to backends.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use certgate_model::{
    Api, ApiContact, ApiDescription, ApiLicense, EntityId, EntityKind, Operation, Policy, PolicyScope,
};
use certgate_store::Precondition;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::backends::absolute_http_url;
use crate::envelope::{Envelope, Page, Resource};
use crate::error::{ErrorResponse, Unsupported};
use crate::extract::{IdPath, JsonBody, QueryParams};
use crate::list::{Filterable, ListQuery};
use crate::resource::{Loaded, respond_with};
use crate::{AdminState, ApiError};

const KIND: EntityKind = EntityKind::Api;

pub fn routes() -> OpenApiRouter<AdminState> {
    OpenApiRouter::new().routes(routes!(list_apis)).routes(routes!(get_api, put_api, patch_api, delete_api))
}

#[derive(Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ApiProperties {
    /// Required on PUT.
    display_name: Option<String>,
    /// Public URL prefix, unique among APIs (e.g. `orders` serves `/orders/...`). Required on PUT.
    path: Option<String>,
    /// Default backend URL when no policy sets one.
    service_url: Option<String>,
    /// `http` and/or `https` (default both): which gateway listeners serve the API.
    protocols: Option<Vec<String>>,
    /// Only `false` is supported.
    subscription_required: Option<bool>,
    /// Descriptive: stored and returned as given.
    description: Option<String>,
    /// Descriptive: an absolute http(s) URL, stored and returned as given.
    terms_of_service_url: Option<String>,
    /// Descriptive: stored and returned as given (`url` an absolute http(s) URL, `email` an
    /// address).
    contact: Option<ContactContract>,
    /// Descriptive: stored and returned as given (`url` an absolute http(s) URL).
    license: Option<LicenseContract>,
    /// Only `1`: certgate keeps one revision of each API.
    api_revision: Option<String>,
    /// Only `true`, for the same reason.
    is_current: Option<bool>,
    /// Only `http` (REST over HTTP); `soap`, `websocket` and `graphql` APIs are not supported.
    #[serde(rename = "type")]
    api_type: Option<String>,
    /// Not supported (no API versions); refused by name, as are `apiVersionSetId`,
    /// `apiVersionSet` and `apiVersionDescription`.
    #[schema(value_type = Option<Object>)]
    api_version: Option<serde::de::IgnoredAny>,
    #[schema(value_type = Option<Object>)]
    api_version_set_id: Option<serde::de::IgnoredAny>,
    #[schema(value_type = Option<Object>)]
    api_version_set: Option<serde::de::IgnoredAny>,
    #[schema(value_type = Option<Object>)]
    api_version_description: Option<serde::de::IgnoredAny>,
    /// Not supported (one revision per API); refused by name.
    #[schema(value_type = Option<Object>)]
    api_revision_description: Option<serde::de::IgnoredAny>,
    /// Not supported (no cloning); refused by name.
    #[schema(value_type = Option<Object>)]
    source_api_id: Option<serde::de::IgnoredAny>,
    /// Not supported (no subscriptions); refused by name.
    #[schema(value_type = Option<Object>)]
    subscription_key_parameter_names: Option<serde::de::IgnoredAny>,
    /// Not supported (certgate does not authenticate API callers); refused by name.
    #[schema(value_type = Option<Object>)]
    authentication_settings: Option<serde::de::IgnoredAny>,
    /// Not supported (no import of an OpenAPI or WSDL definition); refused by name, as are
    /// `format`, `wsdlSelector`, `apiType` and `translateRequiredQueryParameters`.
    #[schema(value_type = Option<Object>)]
    value: Option<serde::de::IgnoredAny>,
    #[schema(value_type = Option<Object>)]
    format: Option<serde::de::IgnoredAny>,
    #[schema(value_type = Option<Object>)]
    wsdl_selector: Option<serde::de::IgnoredAny>,
    #[schema(value_type = Option<Object>, rename = "apiType")]
    #[serde(rename = "apiType")]
    soap_api_type: Option<serde::de::IgnoredAny>,
    #[schema(value_type = Option<Object>)]
    translate_required_query_parameters: Option<serde::de::IgnoredAny>,
}

#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactContract {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<String>,
}

#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LicenseContract {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiContract {
    display_name: String,
    path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    service_url: Option<String>,
    protocols: Vec<String>,
    subscription_required: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    terms_of_service_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    contact: Option<ContactContract>,
    #[serde(skip_serializing_if = "Option::is_none")]
    license: Option<LicenseContract>,
    api_revision: &'static str,
    is_current: bool,
    #[serde(rename = "type")]
    api_type: &'static str,
}

impl Filterable for Loaded<Api> {
    const FIELDS: &'static [&'static str] = &["name", "displayName", "path", "serviceUrl"];

    fn field(&self, name: &str) -> Option<String> {
        match name {
            "name" => Some(self.id.to_string()),
            "displayName" => Some(self.entity.display_name.clone()),
            "path" => Some(self.entity.path.clone()),
            "serviceUrl" => self.entity.service_url.clone(),
            _ => None,
        }
    }
}

fn resource(id: &EntityId, api: &Api) -> Resource<ApiContract> {
    Resource::new(
        KIND.collection(),
        id.as_str(),
        ApiContract {
            display_name: api.display_name.clone(),
            path: api.path.clone(),
            service_url: api.service_url.clone(),
            protocols: api.protocols.clone(),
            subscription_required: api.subscription_required,
            description: api.description.description.clone(),
            terms_of_service_url: api.description.terms_of_service_url.clone(),
            contact: api.description.contact.as_ref().map(|c| ContactContract {
                name: c.name.clone(),
                url: c.url.clone(),
                email: c.email.clone(),
            }),
            license: api
                .description
                .license
                .as_ref()
                .map(|l| LicenseContract { name: l.name.clone(), url: l.url.clone() }),
            api_revision: "1",
            is_current: true,
            api_type: "http",
        },
    )
}

fn build(mut properties: ApiProperties, base: Option<Api>) -> Result<Api, ApiError> {
    let mut faults = Vec::new();
    const VERSIONS: &str = "API versions are not supported: give each version its own API and path";
    const IMPORT: &str =
        "importing an API definition (OpenAPI, WSDL, …) is not supported: create the API and its operations";
    let p = &properties;
    Unsupported::refuse([
        Unsupported {
            target: "properties.apiRevision",
            asked: p.api_revision.as_deref().is_some_and(|r| r != "1"),
            message: "API revisions are not supported: apiRevision is always 1",
        },
        Unsupported {
            target: "properties.isCurrent",
            asked: p.is_current == Some(false),
            message: "API revisions are not supported: the one revision is current",
        },
        Unsupported {
            target: "properties.apiRevisionDescription",
            asked: p.api_revision_description.is_some(),
            message: "API revisions are not supported: an API has one revision",
        },
        Unsupported {
            target: "properties.type",
            asked: p.api_type.as_deref().is_some_and(|t| !t.eq_ignore_ascii_case("http")),
            message: "only http APIs are supported (not soap, websocket or graphql)",
        },
        Unsupported {
            target: "properties.subscriptionRequired",
            asked: p.subscription_required == Some(true),
            message: "subscriptions are not supported; set subscriptionRequired to false",
        },
        Unsupported {
            target: "properties.subscriptionKeyParameterNames",
            asked: p.subscription_key_parameter_names.is_some(),
            message: "subscriptions are not supported, so there are no subscription key names",
        },
        Unsupported {
            target: "properties.authenticationSettings",
            asked: p.authentication_settings.is_some(),
            message: "OAuth 2.0 / OpenID Connect settings for API callers are not supported",
        },
        Unsupported { target: "properties.apiVersion", asked: p.api_version.is_some(), message: VERSIONS },
        Unsupported { target: "properties.apiVersionSetId", asked: p.api_version_set_id.is_some(), message: VERSIONS },
        Unsupported { target: "properties.apiVersionSet", asked: p.api_version_set.is_some(), message: VERSIONS },
        Unsupported {
            target: "properties.apiVersionDescription",
            asked: p.api_version_description.is_some(),
            message: VERSIONS,
        },
        Unsupported {
            target: "properties.sourceApiId",
            asked: p.source_api_id.is_some(),
            message: "cloning an API is not supported: create the API and its operations",
        },
        Unsupported { target: "properties.value", asked: p.value.is_some(), message: IMPORT },
        Unsupported { target: "properties.format", asked: p.format.is_some(), message: IMPORT },
        Unsupported { target: "properties.wsdlSelector", asked: p.wsdl_selector.is_some(), message: IMPORT },
        Unsupported { target: "properties.apiType", asked: p.soap_api_type.is_some(), message: IMPORT },
        Unsupported {
            target: "properties.translateRequiredQueryParameters",
            asked: p.translate_required_query_parameters.is_some(),
            message: IMPORT,
        },
    ])?;
    let mut description = base.as_ref().map(|b| b.description.clone()).unwrap_or_default();
    describe(&mut description, &mut properties)?;
    let display_name = properties.display_name.or_else(|| base.as_ref().map(|b| b.display_name.clone()));
    let path = match properties.path {
        Some(raw) => Some(normalise_path(&raw)?),
        None => base.as_ref().map(|b| b.path.clone()),
    };
    if display_name.as_deref().is_none_or(|d| d.trim().is_empty()) {
        faults.push(("properties.displayName".to_owned(), "displayName is required".to_owned()));
    }
    let Some(path) = path else {
        faults.push(("properties.path".to_owned(), "path is required".to_owned()));
        return Err(ApiError::validations(faults));
    };
    if !faults.is_empty() {
        return Err(ApiError::validations(faults));
    }
    let service_url = match properties.service_url {
        Some(url) if url.is_empty() => None,
        Some(url) => Some(absolute_http_url("properties.serviceUrl", &url)?),
        None => base.as_ref().and_then(|b| b.service_url.clone()),
    };
    let protocols = match properties.protocols {
        Some(protocols) => {
            if protocols.is_empty() || protocols.iter().any(|p| p != "http" && p != "https") {
                return Err(ApiError::validation(
                    "properties.protocols",
                    "protocols must be a non-empty subset of http, https",
                ));
            }
            protocols
        }
        None => base.as_ref().map_or_else(|| vec!["http".into(), "https".into()], |b| b.protocols.clone()),
    };
    Ok(Api {
        display_name: display_name.unwrap_or_default(),
        path,
        service_url,
        protocols,
        subscription_required: false,
        description,
    })
}

/// Applies the descriptive properties given to `description` (PATCH keeps those not given),
/// checking the URLs and the address as APIM does.
fn describe(description: &mut ApiDescription, properties: &mut ApiProperties) -> Result<(), ApiError> {
    let url =
        |target: &str, raw: Option<String>| raw.map(|raw| absolute_http_url(target, &raw).map(|_| raw)).transpose();
    if let Some(text) = properties.description.take() {
        description.description = Some(text);
    }
    if let Some(terms) = url("properties.termsOfServiceUrl", properties.terms_of_service_url.take())? {
        description.terms_of_service_url = Some(terms);
    }
    if let Some(contact) = properties.contact.take() {
        if let Some(email) = &contact.email
            && !is_email_address(email)
        {
            return Err(ApiError::validation("properties.contact.email", format!("'{email}' is not an email address")));
        }
        description.contact = Some(ApiContact {
            name: contact.name,
            url: url("properties.contact.url", contact.url)?,
            email: contact.email,
        });
    }
    if let Some(license) = properties.license.take() {
        description.license = Some(ApiLicense { name: license.name, url: url("properties.license.url", license.url)? });
    }
    Ok(())
}

/// `local@domain.tld`: one `@`, both sides non-empty, a dot in the domain, no spaces.
fn is_email_address(text: &str) -> bool {
    match text.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.contains('@')
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !text.chars().any(|c| c.is_whitespace() || c.is_control())
        }
        None => false,
    }
}

/// `/orders/` → `orders`; the path may have several segments but no query or fragment.
/// APIM's limit; it also keeps a claimed path well within a database index entry.
const MAX_PATH: usize = 400;

fn normalise_path(raw: &str) -> Result<String, ApiError> {
    let path = raw.trim().trim_matches('/');
    if path.chars().count() > MAX_PATH {
        return Err(ApiError::validation("properties.path", format!("path must be at most {MAX_PATH} characters")));
    }
    if path.chars().any(|c| c.is_whitespace() || c.is_control() || matches!(c, '?' | '#' | '{' | '}'))
        || path.contains("//")
    {
        return Err(ApiError::validation("properties.path", format!("'{raw}' is not a valid URL path prefix")));
    }
    Ok(path.to_owned())
}

/// List APIs.
#[utoipa::path(get, path = "/apis", tag = "apis", params(ListQuery),
    responses((status = 200, body = Page<ApiContract>), (status = 400, body = ErrorResponse)))]
async fn list_apis(
    State(state): State<AdminState>,
    QueryParams(query): QueryParams<ListQuery>,
) -> Result<Json<Page<ApiContract>>, ApiError> {
    let all = state.load_all::<Api>(KIND).await?;
    Ok(Json(query.page(KIND.collection(), all, |a| resource(&a.id, &a.entity))?))
}

/// Get an API.
#[utoipa::path(get, path = "/apis/{id}", tag = "apis", params(("id" = String, Path)),
    responses((status = 200, body = Resource<ApiContract>), (status = 404, body = ErrorResponse)))]
async fn get_api(State(state): State<AdminState>, IdPath(id): IdPath) -> Result<Response, ApiError> {
    let loaded = state.load::<Api>(KIND, &id).await?;
    Ok(respond_with(StatusCode::OK, loaded.revision, resource(&loaded.id, &loaded.entity)))
}

/// Create or replace an API.
#[utoipa::path(put, path = "/apis/{id}", tag = "apis",
    params(("id" = String, Path), ("If-Match" = Option<String>, Header)), request_body = Envelope<ApiProperties>,
    responses((status = 201, body = Resource<ApiContract>), (status = 200, body = Resource<ApiContract>),
              (status = 400, body = ErrorResponse), (status = 412, body = ErrorResponse)))]
async fn put_api(
    State(state): State<AdminState>,
    IdPath(id): IdPath,
    headers: HeaderMap,
    JsonBody(envelope): JsonBody<Envelope<ApiProperties>>,
) -> Result<Response, ApiError> {
    let (state, id, headers, properties) = (&state, &id, &headers, &envelope.properties);
    let api = build(properties.clone(), None)?;
    state.write_checked(KIND, id, headers, &api, None, unique_path(&api), |stored| resource(stored, &api)).await
}

/// Update named properties of an API.
#[utoipa::path(patch, path = "/apis/{id}", tag = "apis",
    params(("id" = String, Path), ("If-Match" = Option<String>, Header)), request_body = Envelope<ApiProperties>,
    responses((status = 200, body = Resource<ApiContract>), (status = 400, body = ErrorResponse),
              (status = 404, body = ErrorResponse), (status = 412, body = ErrorResponse)))]
async fn patch_api(
    State(state): State<AdminState>,
    IdPath(id): IdPath,
    headers: HeaderMap,
    JsonBody(envelope): JsonBody<Envelope<ApiProperties>>,
) -> Result<Response, ApiError> {
    let (state, id, headers, properties) = (&state, &id, &headers, &envelope.properties);
    // Read, merge, write: a write of another API in between makes it read again, so a
    // concurrent change of this one is not overwritten with what was read before it.
    state
        .without_races(&[EntityKind::Api], |unchanged| async move {
            let current = state.load::<Api>(KIND, id).await?;
            let api = build(properties.clone(), Some(current.entity))?;
            let respond = |stored: &EntityId| resource(stored, &api);
            let checks = Precondition { unchanged: Some(unchanged), ..unique_path(&api) };
            state.write_checked(KIND, &current.id, headers, &api, None, checks, respond).await
        })
        .await
}

/// An API's path is its own: the store refuses the write while another API holds it (compared
/// ASCII-case-insensitively, as the router matches).
fn unique_path(api: &Api) -> Precondition {
    Precondition::unique("path", &api.path)
}

/// Delete an API with its operations and policies.
#[utoipa::path(delete, path = "/apis/{id}", tag = "apis",
    params(("id" = String, Path), ("If-Match" = Option<String>, Header)),
    responses((status = 204), (status = 404, body = ErrorResponse), (status = 412, body = ErrorResponse)))]
async fn delete_api(
    State(state): State<AdminState>,
    IdPath(id): IdPath,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let status = state.remove(KIND, &id, &headers).await?;
    for operation in state.load_all::<Operation>(EntityKind::Operation).await? {
        if operation.entity.api_id.key() == id.key() {
            state.remove(EntityKind::Operation, &operation.id, &HeaderMap::new()).await?;
        }
    }
    for policy in state.load_all::<Policy>(EntityKind::Policy).await? {
        let belongs = match PolicyScope::from_record_id(&policy.id) {
            Some(PolicyScope::Api(api) | PolicyScope::Operation(api, _)) => api.key() == id.key(),
            _ => false,
        };
        if belongs {
            state.remove(EntityKind::Policy, &policy.id, &HeaderMap::new()).await?;
        }
    }
    Ok(status)
}
