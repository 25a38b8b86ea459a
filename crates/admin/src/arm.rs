//! Azure Resource Manager paths: every resource is also served below
//! `/subscriptions/{s}/resourceGroups/{g}/providers/Microsoft.ApiManagement/service/{n}`, the
//! way APIM's own clients (the Azure SDKs, Terraform's azurerm, az, Az PowerShell) address it.
//!
//! One layer in front of the router does all of it, so no handler knows ARM: it strips the
//! prefix (segment names match case-insensitively, as in ARM), requires `api-version` there as
//! ARM does (and drops it from every query, where the short paths accept it too), and rewrites
//! the JSON it answers with: `id`s below the prefix, APIM's `type` values
//! (`Microsoft.ApiManagement/service/apis/operations`, …) and absolute `nextLink`s in the same
//! form. `GET …/service/{n}` describes the node the way APIM's service resource does.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::AdminState;
use crate::error::ApiError;

/// Who this node is in ARM's terms. A name left out accepts any value.
#[derive(Debug, Clone, Default)]
pub struct ServiceIdentity {
    pub subscription_id: Option<String>,
    pub resource_group: Option<String>,
    pub service_name: Option<String>,
    /// The gateway's base URL, as the service resource's `gatewayUrl`.
    pub gateway_url: Option<String>,
}

/// Collection names as the router spells them, found case-insensitively.
const SEGMENTS: &[&str] = &[
    "certificates",
    "caCertificates",
    "backends",
    "apis",
    "operations",
    "policies",
    "policy",
    "refreshSecret",
    "tokens",
    "identities",
];

/// The largest response body the layer rewrites; management responses are far smaller.
const MAX_BODY: usize = 16 * 1024 * 1024;

/// An ARM path taken apart.
struct ArmPath {
    /// `/subscriptions/{s}/resourceGroups/{g}/providers/Microsoft.ApiManagement/service/{n}`:
    /// segment names spelled as ARM spells them, the values as the client sent them.
    prefix: String,
    subscription_id: String,
    resource_group: String,
    service_name: String,
    /// The short path below the prefix (`/certificates/c1`), empty for the service itself.
    rest: String,
}

impl ArmPath {
    fn parse(path: &str) -> Option<Self> {
        let mut segments = path.strip_prefix('/')?.splitn(9, '/');
        // `name/value`, the name matched case-insensitively, the value non-empty.
        let mut value_after = |name: &str| {
            segments.next().filter(|s| s.eq_ignore_ascii_case(name))?;
            segments.next().filter(|s| !s.is_empty()).map(str::to_owned)
        };
        let subscription_id = value_after("subscriptions")?;
        let resource_group = value_after("resourceGroups")?;
        value_after("providers").filter(|p| p.eq_ignore_ascii_case("Microsoft.ApiManagement"))?;
        let service_name = value_after("service")?;
        let rest = segments.next().map(canonical).unwrap_or_default();
        let prefix = format!(
            "/subscriptions/{subscription_id}/resourceGroups/{resource_group}/providers/Microsoft.ApiManagement/service/{service_name}"
        );
        Some(Self { prefix, subscription_id, resource_group, service_name, rest })
    }

    fn is_this_node(&self, node: &ServiceIdentity) -> bool {
        let matches = |configured: &Option<String>, given: &str| {
            configured.as_ref().is_none_or(|c| c.eq_ignore_ascii_case(given))
        };
        matches(&node.subscription_id, &self.subscription_id)
            && matches(&node.resource_group, &self.resource_group)
            && matches(&node.service_name, &self.service_name)
    }
}

/// `/Certificates/c1` → `/certificates/c1`: collection segments (every other one) in the
/// router's spelling, ids as given.
fn canonical(rest: &str) -> String {
    let mut path = String::with_capacity(rest.len() + 1);
    for (i, segment) in rest.split('/').enumerate() {
        path.push('/');
        let known = (i % 2 == 0).then(|| SEGMENTS.iter().find(|s| s.eq_ignore_ascii_case(segment))).flatten();
        path.push_str(known.copied().unwrap_or(segment));
    }
    path.trim_end_matches('/').to_owned()
}

/// The query without `api-version`, and the version if there was one.
fn split_api_version(query: Option<&str>) -> (String, Option<String>) {
    let mut version = None;
    let rest: Vec<&str> = query
        .unwrap_or_default()
        .split('&')
        .filter(|pair| !pair.is_empty())
        .filter(|pair| match pair.split_once('=') {
            Some((name, value)) if name.eq_ignore_ascii_case("api-version") => {
                version = Some(value.to_owned());
                false
            }
            _ => true,
        })
        .collect();
    (rest.join("&"), version)
}

pub(crate) async fn arm_paths(State(state): State<AdminState>, mut request: Request, next: Next) -> Response {
    let (query, api_version) = split_api_version(request.uri().query());
    let Some(arm) = ArmPath::parse(request.uri().path()) else {
        if api_version.is_some() {
            let path = request.uri().path().to_owned();
            set_path(&mut request, path, &query);
        }
        return next.run(request).await;
    };
    if !arm.is_this_node(&state.service) {
        return ApiError::unknown_service(&arm.prefix).into_response();
    }
    let Some(api_version) = api_version else {
        return ApiError::missing_api_version().into_response();
    };
    let origin = origin(&request);
    if arm.rest.is_empty() {
        return service_resource(&arm, &state.service, &origin, request.method());
    }
    set_path(&mut request, arm.rest.clone(), &query);
    let response = next.run(request).await;
    rewrite(response, &arm, &origin, &api_version).await
}

fn set_path(request: &mut Request, path: String, query: &str) {
    let path_and_query = if query.is_empty() { path } else { format!("{path}?{query}") };
    if let Ok(uri) = Uri::builder().path_and_query(path_and_query).build() {
        *request.uri_mut() = uri;
    }
}

/// `scheme://host` the client addressed, for absolute links.
fn origin(request: &Request) -> String {
    let host = request.headers().get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("localhost");
    let scheme = request.extensions().get::<Scheme>().map_or("http", |s| s.0);
    format!("{scheme}://{host}")
}

/// The scheme of the listener a request came through (`https` on the HTTPS admin listener).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Scheme(pub &'static str);

fn service_resource(arm: &ArmPath, node: &ServiceIdentity, origin: &str, method: &axum::http::Method) -> Response {
    if method != axum::http::Method::GET {
        let message = "the service resource describes this node; it is changed through the node's configuration";
        return ApiError::method_not_allowed(message).into_response();
    }
    let body = json!({
        "id": arm.prefix,
        "name": arm.service_name,
        "type": "Microsoft.ApiManagement/service",
        "location": "certgate",
        "sku": { "name": "Developer", "capacity": 1 },
        "properties": {
            "provisioningState": "Succeeded",
            "gatewayUrl": node.gateway_url,
            "managementApiUrl": origin,
            "publisherEmail": "certgate@localhost",
            "publisherName": "certgate",
        },
    });
    (StatusCode::OK, axum::Json(body)).into_response()
}

/// ARM-form ids, types and links in a JSON response.
async fn rewrite(response: Response, arm: &ArmPath, origin: &str, api_version: &str) -> Response {
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !is_json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_BODY).await else {
        return ApiError::internal(&"the response could not be read for its ARM form").into_response();
    };
    let Ok(mut value) = serde_json::from_slice::<Value>(&bytes) else {
        return Response::from_parts(parts, Body::from(bytes));
    };
    rewrite_resource(&mut value, &arm.prefix);
    if let Some(items) = value.get_mut("value").and_then(Value::as_array_mut) {
        items.iter_mut().for_each(|item| rewrite_resource(item, &arm.prefix));
    }
    if let Some(Value::String(link)) = value.get_mut("nextLink")
        && link.starts_with('/')
    {
        *link = format!("{origin}{}{link}&api-version={api_version}", arm.prefix);
    }
    let body = value.to_string();
    parts.headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    Response::from_parts(parts, Body::from(body))
}

/// `{"id": "/apis/a/operations/o", "type": "operations"}` → the id below the prefix and
/// `Microsoft.ApiManagement/service/apis/operations`: the type is the id's collection segments.
fn rewrite_resource(resource: &mut Value, prefix: &str) {
    let Some(id) = resource.get("id").and_then(Value::as_str).filter(|id| id.starts_with('/')).map(str::to_owned)
    else {
        return;
    };
    let collections: Vec<&str> = id.trim_start_matches('/').split('/').step_by(2).collect();
    resource["type"] = json!(format!("Microsoft.ApiManagement/service/{}", collections.join("/")));
    resource["id"] = json!(format!("{prefix}{id}"));
}

#[cfg(test)]
mod tests {
    use super::*;

    const PREFIX: &str = "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.ApiManagement/service/gw";

    #[test]
    fn arm_paths_match_case_insensitively_and_keep_ids_as_given() {
        let arm = ArmPath::parse(
            "/SUBSCRIPTIONS/s1/resourcegroups/rg/Providers/microsoft.apimanagement/Service/gw/APIS/Orders/Operations/Get",
        )
        .expect("an ARM path");
        assert_eq!(arm.rest, "/apis/Orders/operations/Get");
        assert_eq!(
            (arm.subscription_id.as_str(), arm.resource_group.as_str(), arm.service_name.as_str()),
            ("s1", "rg", "gw")
        );
        assert_eq!(ArmPath::parse(PREFIX).expect("the service").rest, "");
        assert_eq!(
            ArmPath::parse(&format!("{PREFIX}/certificates/c1/refreshsecret")).expect("ok").rest,
            "/certificates/c1/refreshSecret"
        );
        for not_arm in [
            "/certificates",
            "/subscriptions/s1",
            "/subscriptions//resourceGroups/rg/providers/Microsoft.ApiManagement/service/gw",
            "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.Web/service/gw/apis",
        ] {
            assert!(ArmPath::parse(not_arm).is_none(), "{not_arm}");
        }
    }

    #[test]
    fn a_configured_name_must_match_and_others_accept_anything() {
        let arm = ArmPath::parse(&format!("{PREFIX}/apis")).expect("ok");
        assert!(arm.is_this_node(&ServiceIdentity::default()));
        let named = |name: &str| ServiceIdentity { service_name: Some(name.into()), ..Default::default() };
        assert!(arm.is_this_node(&named("GW")));
        assert!(!arm.is_this_node(&named("other")));
    }

    #[test]
    fn api_version_is_taken_out_of_the_query() {
        assert_eq!(
            split_api_version(Some("api-version=2022-08-01&$top=2")),
            ("$top=2".into(), Some("2022-08-01".into()))
        );
        assert_eq!(split_api_version(Some("$top=2")), ("$top=2".into(), None));
        assert_eq!(split_api_version(None), (String::new(), None));
    }

    #[test]
    fn types_follow_the_id_collections() {
        for (id, kind) in [
            ("/certificates/c1", "Microsoft.ApiManagement/service/certificates"),
            ("/apis/a/operations/o", "Microsoft.ApiManagement/service/apis/operations"),
            ("/apis/a/operations/o/policies/policy", "Microsoft.ApiManagement/service/apis/operations/policies"),
            ("/apis/a/policies/policy", "Microsoft.ApiManagement/service/apis/policies"),
            ("/policies/policy", "Microsoft.ApiManagement/service/policies"),
        ] {
            let mut resource = json!({ "id": id, "type": "short", "name": "x" });
            rewrite_resource(&mut resource, PREFIX);
            assert_eq!(resource["type"], kind);
            assert_eq!(resource["id"], format!("{PREFIX}{id}"));
        }
    }
}
