//! Policy documents at global (`/policies/policy`), API and operation scope. The text is
//! validated and its references checked at save; it is stored exactly as given (sealed, since
//! an inline `authentication-certificate body=… password=…` is a secret).

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use certgate_model::{Api, EntityId, EntityKind, Operation, Policy, PolicyScope};
use certgate_policy::CertificateRef;
use certgate_store::Unchanged;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use zeroize::Zeroizing;

use crate::envelope::{Envelope, Page, Resource};
use crate::error::ErrorResponse;
use crate::extract::{IdPath, JsonBody, OperationPath, QueryParams};
use crate::references::References;
use crate::resource::respond_with;
use crate::{AdminState, ApiError};

const KIND: EntityKind = EntityKind::Policy;

pub fn routes() -> OpenApiRouter<AdminState> {
    OpenApiRouter::new()
        .routes(routes!(list_global_policies))
        .routes(routes!(get_global_policy, put_global_policy, delete_global_policy))
        .routes(routes!(list_api_policies))
        .routes(routes!(get_api_policy, put_api_policy, delete_api_policy))
        .routes(routes!(list_operation_policies))
        .routes(routes!(get_operation_policy, put_operation_policy, delete_operation_policy))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyProperties {
    /// `xml` (default) or `rawxml`; both take the document as is. APIM's `xml-link` and
    /// `rawxml-link` (a document fetched from a URL) are refused.
    format: Option<String>,
    /// The `<policies>` document.
    #[schema(value_type = String)]
    value: Zeroizing<String>,
}

#[derive(Serialize, ToSchema)]
pub struct PolicyContract {
    format: String,
    /// The document exactly as it was saved.
    value: String,
}

/// Query parameters of a policy GET.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PolicyQuery {
    /// The format to return the document in, `xml` or `rawxml`; without it, the one it was saved
    /// with.
    format: Option<String>,
}

/// Checks one of APIM's policy formats, given at `target`. certgate holds only inline documents,
/// and since it refuses policy expressions, a document it accepts reads the same in `xml` and
/// `rawxml` (APIM's two differ only in how an expression's `<`, `>` and quotes are escaped): a
/// document is returned as stored in either.
fn checked_format(target: &str, format: &str) -> Result<&'static str, ApiError> {
    match format {
        "xml" => Ok("xml"),
        "rawxml" => Ok("rawxml"),
        "xml-link" | "rawxml-link" => Err(ApiError::validation(
            target,
            format!(
                "format '{format}' (a document fetched from a URL) is not supported; send the document inline as xml or rawxml"
            ),
        )),
        other => Err(ApiError::validation(target, format!("format '{other}' is not supported; use xml or rawxml"))),
    }
}

fn resource(scope: &PolicyScope, format: &str, value: String) -> Resource<PolicyContract> {
    Resource::at(scope.path(), "policies", "policy", PolicyContract { format: format.to_owned(), value })
}

/// The scope's policy with its revision, in the format `asked` (default: as saved), if it has one.
async fn load(
    state: &AdminState,
    scope: &PolicyScope,
    asked: Option<&str>,
) -> Result<Option<(i64, Resource<PolicyContract>)>, ApiError> {
    let Some(record) = state.store.get(KIND, &scope.record_id()).await? else { return Ok(None) };
    let policy: Policy = record.decode()?;
    let text = record.secret.as_deref().map(|b| String::from_utf8_lossy(b).into_owned()).unwrap_or_default();
    let format = asked.unwrap_or(&policy.format);
    Ok(Some((record.revision, resource(scope, format, text))))
}

async fn get(state: &AdminState, scope: PolicyScope, query: PolicyQuery) -> Result<Response, ApiError> {
    let asked = query.format.as_deref().map(|format| checked_format("format", format)).transpose()?;
    let (revision, resource) =
        load(state, &scope, asked).await?.ok_or_else(|| ApiError::not_found("policies", &scope.path()))?;
    Ok(respond_with(StatusCode::OK, revision, resource))
}

/// A scope's policies, as APIM lists them: the one document, or none.
async fn list(state: &AdminState, scope: PolicyScope) -> Result<Json<Page<PolicyContract>>, ApiError> {
    let value: Vec<_> = load(state, &scope, None).await?.into_iter().map(|(_, resource)| resource).collect();
    Ok(Json(Page { count: value.len(), value, next_link: None }))
}

/// Saves a policy; the certificates and backends it names must exist when it commits.
async fn put(
    state: &AdminState,
    scope: PolicyScope,
    headers: &HeaderMap,
    properties: PolicyProperties,
) -> Result<Response, ApiError> {
    let (scope, properties) = (&scope, &properties);
    state
        .without_races(References::RACED_BY, |unchanged| put_checked(state, scope, headers, properties, unchanged))
        .await
}

async fn put_checked(
    state: &AdminState,
    scope: &PolicyScope,
    headers: &HeaderMap,
    properties: &PolicyProperties,
    unchanged: Unchanged,
) -> Result<Response, ApiError> {
    let format = checked_format("properties.format", properties.format.as_deref().unwrap_or("xml"))?;
    let document = certgate_policy::parse(&properties.value)
        .map_err(|e| ApiError::validation("properties.value", e.to_string()))?;
    let references = document.references();
    let mut resolved = References::new(state);
    for id in &references.certificate_ids {
        resolved.certificate("properties.value", id).await?;
    }
    for thumbprint in &references.thumbprints {
        resolved.certificate_by_thumbprint("properties.value", thumbprint).await?;
    }
    for id in &references.backend_ids {
        resolved.backend("properties.value", id).await?;
    }
    check_inline_certificates(&document)?;
    let policy = Policy {
        format: format.to_owned(),
        certificate_ids: references.certificate_ids,
        thumbprints: references.thumbprints,
        backend_ids: references.backend_ids,
    };
    let text = properties.value.to_string();
    let secret = Zeroizing::new(text.clone().into_bytes());
    let respond = |_: &EntityId| resource(scope, format, text);
    state
        .write_checked(
            KIND,
            &scope.record_id(),
            headers,
            &policy,
            Some(secret),
            resolved.precondition(unchanged),
            respond,
        )
        .await
}

/// An inline `body` (+ `password`) must be a PKCS#12 file that imports, as an upload would.
fn check_inline_certificates(document: &certgate_policy::PolicyDocument) -> Result<(), ApiError> {
    use certgate_policy::{SectionKind, Statement};
    for statement in document.section(SectionKind::Inbound).unwrap_or_default() {
        if let Statement::AuthenticationCertificate(CertificateRef::Inline { body_base64, password }) = statement {
            certgate_pki::import_pkcs12_base64(body_base64, password.as_deref().unwrap_or("")).map_err(|e| {
                ApiError::validation("properties.value", format!("authentication-certificate body: {e}"))
            })?;
        }
    }
    Ok(())
}

async fn delete(state: &AdminState, scope: PolicyScope, headers: &HeaderMap) -> Result<StatusCode, ApiError> {
    match state.remove(KIND, &scope.record_id(), headers).await {
        Err(e) if e.status() == StatusCode::NOT_FOUND => Err(ApiError::not_found("policies", &scope.path())),
        other => other,
    }
}

async fn api_scope(state: &AdminState, api: &EntityId) -> Result<PolicyScope, ApiError> {
    Ok(PolicyScope::Api(state.load::<Api>(EntityKind::Api, api).await?.id))
}

async fn operation_scope(state: &AdminState, api: &EntityId, operation: &EntityId) -> Result<PolicyScope, ApiError> {
    let api = state.load::<Api>(EntityKind::Api, api).await?.id;
    let stored = state.load::<Operation>(EntityKind::Operation, &EntityId::scoped(&api, operation)).await?;
    let operation = EntityId::parse(stored.id.child()).map_err(|e| ApiError::internal(&e))?;
    Ok(PolicyScope::Operation(api, operation))
}

/// List the global policies: the one document, or none.
#[utoipa::path(get, path = "/policies", tag = "policies", responses((status = 200, body = Page<PolicyContract>)))]
async fn list_global_policies(State(state): State<AdminState>) -> Result<Json<Page<PolicyContract>>, ApiError> {
    list(&state, PolicyScope::Global).await
}

/// Get the global policy.
#[utoipa::path(get, path = "/policies/policy", tag = "policies", params(PolicyQuery),
    responses((status = 200, body = Resource<PolicyContract>), (status = 404, body = ErrorResponse)))]
async fn get_global_policy(
    State(state): State<AdminState>,
    QueryParams(query): QueryParams<PolicyQuery>,
) -> Result<Response, ApiError> {
    get(&state, PolicyScope::Global, query).await
}

/// Set the global policy.
#[utoipa::path(put, path = "/policies/policy", tag = "policies", request_body = Envelope<PolicyProperties>,
    params(("If-Match" = Option<String>, Header)),
    responses((status = 201, body = Resource<PolicyContract>), (status = 200, body = Resource<PolicyContract>),
              (status = 400, body = ErrorResponse)))]
async fn put_global_policy(
    State(state): State<AdminState>,
    headers: HeaderMap,
    JsonBody(envelope): JsonBody<Envelope<PolicyProperties>>,
) -> Result<Response, ApiError> {
    put(&state, PolicyScope::Global, &headers, envelope.properties).await
}

/// Delete the global policy.
#[utoipa::path(delete, path = "/policies/policy", tag = "policies", params(("If-Match" = Option<String>, Header)),
    responses((status = 204), (status = 404, body = ErrorResponse)))]
async fn delete_global_policy(State(state): State<AdminState>, headers: HeaderMap) -> Result<StatusCode, ApiError> {
    delete(&state, PolicyScope::Global, &headers).await
}

/// List an API's policies: the one document, or none.
#[utoipa::path(get, path = "/apis/{id}/policies", tag = "policies", params(("id" = String, Path)),
    responses((status = 200, body = Page<PolicyContract>), (status = 404, body = ErrorResponse)))]
async fn list_api_policies(
    State(state): State<AdminState>,
    IdPath(api): IdPath,
) -> Result<Json<Page<PolicyContract>>, ApiError> {
    list(&state, api_scope(&state, &api).await?).await
}

/// Get an API's policy.
#[utoipa::path(get, path = "/apis/{id}/policies/policy", tag = "policies", params(("id" = String, Path), PolicyQuery),
    responses((status = 200, body = Resource<PolicyContract>), (status = 404, body = ErrorResponse)))]
async fn get_api_policy(
    State(state): State<AdminState>,
    IdPath(api): IdPath,
    QueryParams(query): QueryParams<PolicyQuery>,
) -> Result<Response, ApiError> {
    get(&state, api_scope(&state, &api).await?, query).await
}

/// Set an API's policy.
#[utoipa::path(put, path = "/apis/{id}/policies/policy", tag = "policies", request_body = Envelope<PolicyProperties>,
    params(("id" = String, Path), ("If-Match" = Option<String>, Header)),
    responses((status = 201, body = Resource<PolicyContract>), (status = 200, body = Resource<PolicyContract>),
              (status = 400, body = ErrorResponse), (status = 404, body = ErrorResponse)))]
async fn put_api_policy(
    State(state): State<AdminState>,
    IdPath(api): IdPath,
    headers: HeaderMap,
    JsonBody(envelope): JsonBody<Envelope<PolicyProperties>>,
) -> Result<Response, ApiError> {
    put(&state, api_scope(&state, &api).await?, &headers, envelope.properties).await
}

/// Delete an API's policy.
#[utoipa::path(delete, path = "/apis/{id}/policies/policy", tag = "policies",
    params(("id" = String, Path), ("If-Match" = Option<String>, Header)),
    responses((status = 204), (status = 404, body = ErrorResponse)))]
async fn delete_api_policy(
    State(state): State<AdminState>,
    IdPath(api): IdPath,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    delete(&state, api_scope(&state, &api).await?, &headers).await
}

/// List an operation's policies: the one document, or none.
#[utoipa::path(get, path = "/apis/{id}/operations/{operationId}/policies", tag = "policies",
    params(("id" = String, Path), ("operationId" = String, Path)),
    responses((status = 200, body = Page<PolicyContract>), (status = 404, body = ErrorResponse)))]
async fn list_operation_policies(
    State(state): State<AdminState>,
    OperationPath(api, op): OperationPath,
) -> Result<Json<Page<PolicyContract>>, ApiError> {
    list(&state, operation_scope(&state, &api, &op).await?).await
}

/// Get an operation's policy.
#[utoipa::path(get, path = "/apis/{id}/operations/{operationId}/policies/policy", tag = "policies",
    params(("id" = String, Path), ("operationId" = String, Path), PolicyQuery),
    responses((status = 200, body = Resource<PolicyContract>), (status = 404, body = ErrorResponse)))]
async fn get_operation_policy(
    State(state): State<AdminState>,
    OperationPath(api, op): OperationPath,
    QueryParams(query): QueryParams<PolicyQuery>,
) -> Result<Response, ApiError> {
    get(&state, operation_scope(&state, &api, &op).await?, query).await
}

/// Set an operation's policy.
#[utoipa::path(put, path = "/apis/{id}/operations/{operationId}/policies/policy", tag = "policies",
    request_body = Envelope<PolicyProperties>,
    params(("id" = String, Path), ("operationId" = String, Path), ("If-Match" = Option<String>, Header)),
    responses((status = 201, body = Resource<PolicyContract>), (status = 200, body = Resource<PolicyContract>),
              (status = 400, body = ErrorResponse), (status = 404, body = ErrorResponse)))]
async fn put_operation_policy(
    State(state): State<AdminState>,
    OperationPath(api, op): OperationPath,
    headers: HeaderMap,
    JsonBody(envelope): JsonBody<Envelope<PolicyProperties>>,
) -> Result<Response, ApiError> {
    put(&state, operation_scope(&state, &api, &op).await?, &headers, envelope.properties).await
}

/// Delete an operation's policy.
#[utoipa::path(delete, path = "/apis/{id}/operations/{operationId}/policies/policy", tag = "policies",
    params(("id" = String, Path), ("operationId" = String, Path), ("If-Match" = Option<String>, Header)),
    responses((status = 204), (status = 404, body = ErrorResponse)))]
async fn delete_operation_policy(
    State(state): State<AdminState>,
    OperationPath(api, op): OperationPath,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    delete(&state, operation_scope(&state, &api, &op).await?, &headers).await
}
