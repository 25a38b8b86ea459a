//! `/apis/{apiId}/operations`: method + URL template routes inside an API.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use certgate_model::{Api, EntityId, EntityKind, Operation, OperationDescription, PolicyScope};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::envelope::{Envelope, Page, Resource};
use crate::error::{ErrorResponse, Unsupported};
use crate::extract::{IdPath, JsonBody, OperationPath, QueryParams};
use crate::list::{Filterable, ListQuery};
use crate::resource::{Loaded, respond_with};
use crate::{AdminState, ApiError};

const KIND: EntityKind = EntityKind::Operation;

pub fn routes() -> OpenApiRouter<AdminState> {
    OpenApiRouter::new().routes(routes!(list_operations)).routes(routes!(
        get_operation,
        put_operation,
        patch_operation,
        delete_operation
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct OperationProperties {
    display_name: Option<String>,
    /// HTTP method (`GET`, `POST`, …) or `*`. Required on PUT.
    method: Option<String>,
    /// Path below the API, with `{param}` segments, e.g. `/orders/{id}`. Required on PUT.
    url_template: Option<String>,
    /// Descriptive: stored and returned as given.
    description: Option<String>,
    /// APIM's ParameterContracts (`name`, `type`, …), one per `{param}` of the template and no
    /// more; stored and returned as given.
    #[schema(value_type = Option<Vec<Object>>)]
    template_parameters: Option<Vec<Value>>,
    /// Descriptive (APIM's RequestContract): stored and returned as given.
    #[schema(value_type = Option<Object>)]
    request: Option<Value>,
    /// Descriptive (APIM's ResponseContracts): stored and returned as given.
    #[schema(value_type = Option<Vec<Object>>)]
    responses: Option<Vec<Value>>,
    /// Not supported here: an operation's policy is its own resource,
    /// `…/operations/{id}/policies/policy`. Refused by name when given.
    #[schema(value_type = Option<Object>)]
    policies: Option<serde::de::IgnoredAny>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OperationContract {
    display_name: String,
    method: String,
    url_template: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Object>>)]
    template_parameters: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    request: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Object>>)]
    responses: Option<Value>,
}

impl Filterable for Loaded<Operation> {
    const FIELDS: &'static [&'static str] = &["name", "method", "urlTemplate", "displayName"];

    fn field(&self, name: &str) -> Option<String> {
        match name {
            "name" => Some(self.id.child().to_owned()),
            "method" => Some(self.entity.method.clone()),
            "urlTemplate" => Some(self.entity.url_template.clone()),
            "displayName" => Some(self.entity.display_name.clone()),
            _ => None,
        }
    }
}

fn resource(operation: &Operation, id: &str) -> Resource<OperationContract> {
    Resource::at(
        format!("/apis/{}/operations/{id}", operation.api_id),
        "operations",
        id,
        OperationContract {
            display_name: operation.display_name.clone(),
            method: operation.method.clone(),
            url_template: operation.url_template.clone(),
            description: operation.description.description.clone(),
            template_parameters: parsed(&operation.description.template_parameters),
            request: parsed(&operation.description.request),
            responses: parsed(&operation.description.responses),
        },
    )
}

/// Stored JSON text back as JSON (it was JSON when it was stored).
fn parsed(text: &Option<String>) -> Option<Value> {
    text.as_deref().and_then(|t| serde_json::from_str(t).ok())
}

fn build(
    api: &EntityId,
    id: &EntityId,
    properties: OperationProperties,
    base: Option<Operation>,
) -> Result<Operation, ApiError> {
    Unsupported::refuse([Unsupported {
        target: "properties.policies",
        asked: properties.policies.is_some(),
        message: "an operation's policy is its own resource: PUT it at …/operations/{operationId}/policies/policy",
    }])?;
    let method = match properties.method {
        Some(m) if m == "*" || (!m.is_empty() && m.bytes().all(|b| b.is_ascii_alphabetic())) => m.to_ascii_uppercase(),
        Some(m) => return Err(ApiError::validation("properties.method", format!("'{m}' is not an HTTP method"))),
        None => match &base {
            Some(base) => base.method.clone(),
            None => return Err(ApiError::validation("properties.method", "method is required")),
        },
    };
    let url_template = match properties.url_template {
        Some(t) => validate_template(&t)?,
        None => match &base {
            Some(base) => base.url_template.clone(),
            None => return Err(ApiError::validation("properties.urlTemplate", "urlTemplate is required")),
        },
    };
    let base_description = base.as_ref().map(|b| b.description.clone()).unwrap_or_default();
    // Kept parameters are checked again: a PATCH may have changed the template.
    let given = properties
        .template_parameters
        .or_else(|| base_description.template_parameters.as_deref().and_then(|text| serde_json::from_str(text).ok()));
    let template_parameters = given.map(|parameters| template_parameters(&url_template, &parameters)).transpose()?;
    let text = |value: Option<Value>| value.map(|v| v.to_string());
    let description = OperationDescription {
        description: properties.description.or(base_description.description),
        template_parameters,
        request: text(properties.request).or(base_description.request),
        responses: text(properties.responses.map(Value::Array)).or(base_description.responses),
    };
    let display_name =
        properties.display_name.or_else(|| base.map(|b| b.display_name)).unwrap_or_else(|| id.to_string());
    Ok(Operation { api_id: api.clone(), display_name, method, url_template, description })
}

/// APIM's rule: each `{param}` of the template declared once, by `name` (with a `type`), and
/// nothing else. Returns the parameters as the JSON text to store.
fn template_parameters(template: &str, parameters: &[Value]) -> Result<String, ApiError> {
    let target = "properties.templateParameters";
    let mut declared = Vec::new();
    for (i, parameter) in parameters.iter().enumerate() {
        let field = |name: &str| parameter.get(name).and_then(Value::as_str).filter(|v| !v.is_empty());
        let (Some(name), Some(_)) = (field("name"), field("type")) else {
            return Err(ApiError::validation(
                format!("{target}[{i}]"),
                "each template parameter needs a name and a type",
            ));
        };
        if declared.contains(&name) {
            return Err(ApiError::validation(format!("{target}[{i}]"), format!("'{name}' is declared twice")));
        }
        declared.push(name);
    }
    let in_template: Vec<&str> = template
        .split('?')
        .next()
        .unwrap_or_default()
        .split('/')
        .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
        .collect();
    if let Some(missing) = in_template.iter().find(|p| !declared.contains(p)) {
        return Err(ApiError::validation(target, format!("the template's parameter '{missing}' is not declared")));
    }
    if let Some(extra) = declared.iter().find(|p| !in_template.contains(p)) {
        return Err(ApiError::validation(target, format!("'{extra}' is not a parameter of the template '{template}'")));
    }
    Ok(Value::Array(parameters.to_vec()).to_string())
}

/// `/orders/{id}`: starts with `/`; each `{param}` is a whole segment with a non-empty name.
fn validate_template(template: &str) -> Result<String, ApiError> {
    let invalid = |why: &str| ApiError::validation("properties.urlTemplate", format!("'{template}': {why}"));
    if !template.starts_with('/') {
        return Err(invalid("must start with '/'"));
    }
    for segment in template.split('?').next().unwrap_or_default().split('/').skip(1) {
        let opens = segment.matches('{').count();
        let closes = segment.matches('}').count();
        let whole = segment.starts_with('{') && segment.ends_with('}') && segment.len() > 2;
        if (opens, closes) != (0, 0) && !(opens == 1 && closes == 1 && whole) {
            return Err(invalid("a {parameter} must be a whole path segment"));
        }
    }
    Ok(template.to_owned())
}

async fn require_api(state: &AdminState, api: &EntityId) -> Result<EntityId, ApiError> {
    Ok(state.load::<Api>(EntityKind::Api, api).await?.id)
}

/// List the operations of an API.
#[utoipa::path(get, path = "/apis/{id}/operations", tag = "apis", params(("id" = String, Path), ListQuery),
    responses((status = 200, body = Page<OperationContract>), (status = 404, body = ErrorResponse)))]
async fn list_operations(
    State(state): State<AdminState>,
    IdPath(api): IdPath,
    QueryParams(query): QueryParams<ListQuery>,
) -> Result<Json<Page<OperationContract>>, ApiError> {
    let api = require_api(&state, &api).await?;
    let all: Vec<Loaded<Operation>> =
        state.load_all::<Operation>(KIND).await?.into_iter().filter(|o| o.entity.api_id.key() == api.key()).collect();
    let collection = format!("apis/{api}/operations");
    Ok(Json(query.page(&collection, all, |o| resource(&o.entity, o.id.child()))?))
}

/// Get an operation.
#[utoipa::path(get, path = "/apis/{id}/operations/{operationId}", tag = "apis",
    params(("id" = String, Path), ("operationId" = String, Path)),
    responses((status = 200, body = Resource<OperationContract>), (status = 404, body = ErrorResponse)))]
async fn get_operation(
    State(state): State<AdminState>,
    OperationPath(api, id): OperationPath,
) -> Result<Response, ApiError> {
    let api = require_api(&state, &api).await?;
    let loaded = state.load::<Operation>(KIND, &EntityId::scoped(&api, &id)).await?;
    Ok(respond_with(StatusCode::OK, loaded.revision, resource(&loaded.entity, loaded.id.child())))
}

/// Create or replace an operation.
#[utoipa::path(put, path = "/apis/{id}/operations/{operationId}", tag = "apis",
    params(("id" = String, Path), ("operationId" = String, Path), ("If-Match" = Option<String>, Header)),
    request_body = Envelope<OperationProperties>,
    responses((status = 201, body = Resource<OperationContract>), (status = 200, body = Resource<OperationContract>),
              (status = 400, body = ErrorResponse), (status = 404, body = ErrorResponse)))]
async fn put_operation(
    State(state): State<AdminState>,
    OperationPath(api, id): OperationPath,
    headers: HeaderMap,
    JsonBody(envelope): JsonBody<Envelope<OperationProperties>>,
) -> Result<Response, ApiError> {
    let api = require_api(&state, &api).await?;
    let operation = build(&api, &id, envelope.properties, None)?;
    let key = EntityId::scoped(&api, &id);
    state.write(KIND, &key, &headers, &operation, None, |stored| resource(&operation, stored.child())).await
}

/// Update named properties of an operation.
#[utoipa::path(patch, path = "/apis/{id}/operations/{operationId}", tag = "apis",
    params(("id" = String, Path), ("operationId" = String, Path), ("If-Match" = Option<String>, Header)),
    request_body = Envelope<OperationProperties>,
    responses((status = 200, body = Resource<OperationContract>), (status = 400, body = ErrorResponse),
              (status = 404, body = ErrorResponse)))]
async fn patch_operation(
    State(state): State<AdminState>,
    OperationPath(api, id): OperationPath,
    headers: HeaderMap,
    JsonBody(envelope): JsonBody<Envelope<OperationProperties>>,
) -> Result<Response, ApiError> {
    let api = require_api(&state, &api).await?;
    let current = state.load::<Operation>(KIND, &EntityId::scoped(&api, &id)).await?;
    let operation = build(&api, &id, envelope.properties, Some(current.entity))?;
    state.write(KIND, &current.id, &headers, &operation, None, |stored| resource(&operation, stored.child())).await
}

/// Delete an operation and its policy.
#[utoipa::path(delete, path = "/apis/{id}/operations/{operationId}", tag = "apis",
    params(("id" = String, Path), ("operationId" = String, Path), ("If-Match" = Option<String>, Header)),
    responses((status = 204), (status = 404, body = ErrorResponse)))]
async fn delete_operation(
    State(state): State<AdminState>,
    OperationPath(api, id): OperationPath,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let api = require_api(&state, &api).await?;
    let status = state.remove(KIND, &EntityId::scoped(&api, &id), &headers).await?;
    let policy = PolicyScope::Operation(api, id).record_id();
    match state.remove(EntityKind::Policy, &policy, &HeaderMap::new()).await {
        Ok(_) => Ok(status),
        Err(e) if e.status() == StatusCode::NOT_FOUND => Ok(status),
        Err(e) => Err(e),
    }
}
