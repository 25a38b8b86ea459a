//! Backends, APIs, operations and policies: what the data plane is compiled from.

use std::collections::BTreeMap;

use crate::{EntityId, Thumbprint};

/// A backend service, as APIM's `backends` resource describes it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Backend {
    /// Absolute `http://` or `https://` base URL.
    pub url: String,
    pub title: Option<String>,
    pub description: Option<String>,
    /// Descriptive only (APIM: the resource in another system this backend is, such as a
    /// Function App's ARM id); records written before it existed read as none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_id: Option<String>,
    pub credentials: BackendCredentials,
    pub tls: BackendTls,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackendCredentials {
    /// Certificates by id; ids win over thumbprints.
    pub certificate_ids: Vec<EntityId>,
    /// Uploaded certificates by thumbprint.
    pub certificate: Vec<Thumbprint>,
    pub header: BTreeMap<String, Vec<String>>,
    pub query: BTreeMap<String, Vec<String>>,
    pub authorization: Option<Authorization>,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Authorization {
    pub scheme: String,
    pub parameter: String,
}

/// The backend's TLS switches; both default to on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackendTls {
    pub validate_certificate_chain: bool,
    pub validate_certificate_name: bool,
}

impl Default for BackendTls {
    fn default() -> Self {
        Self { validate_certificate_chain: true, validate_certificate_name: true }
    }
}

/// An API: a public path prefix mapped to a backend.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Api {
    pub display_name: String,
    /// The public URL prefix without leading or trailing `/` (empty = the root).
    pub path: String,
    pub service_url: Option<String>,
    pub protocols: Vec<String>,
    pub subscription_required: bool,
    /// Stored beside the other fields (flattened), so records written before a descriptive
    /// property existed read it as none.
    #[serde(flatten)]
    pub description: ApiDescription,
}

/// An API's descriptive properties: the gateway does not act on them, they are stored and
/// returned as given.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiDescription {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terms_of_service_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact: Option<ApiContact>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub license: Option<ApiLicense>,
}

/// Who to contact about an API (descriptive, as APIM's `contact`).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiContact {
    pub name: Option<String>,
    pub url: Option<String>,
    pub email: Option<String>,
}

/// The licence an API is offered under (descriptive, as APIM's `license`).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiLicense {
    pub name: Option<String>,
    pub url: Option<String>,
}

/// An operation of an API: a method and a URL template such as `/orders/{id}`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Operation {
    pub api_id: EntityId,
    pub display_name: String,
    /// Upper-case HTTP method, or `*` for any.
    pub method: String,
    pub url_template: String,
    /// What APIM records only to describe the operation; records written before it existed
    /// read as empty.
    #[serde(default, skip_serializing_if = "OperationDescription::is_empty")]
    pub description: OperationDescription,
}

/// An operation's descriptive properties: the gateway does not act on them, they are stored
/// and returned as given (APIM's clients and developer tools read them). The structured ones
/// are kept as the JSON text the client sent.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OperationDescription {
    pub description: Option<String>,
    /// `templateParameters`: a JSON array whose names are exactly the template's `{param}`s.
    pub template_parameters: Option<String>,
    /// `request` and `responses`, as JSON text.
    pub request: Option<String>,
    pub responses: Option<String>,
}

impl OperationDescription {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// Where a policy document applies.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PolicyScope {
    Global,
    Api(EntityId),
    Operation(EntityId, EntityId),
}

impl PolicyScope {
    /// The id of the policy's record in the store.
    pub fn record_id(&self) -> EntityId {
        match self {
            PolicyScope::Global => EntityId::service_scope(),
            PolicyScope::Api(api) => api.clone(),
            PolicyScope::Operation(api, op) => EntityId::scoped(api, op),
        }
    }

    /// The inverse of [`PolicyScope::record_id`].
    pub fn from_record_id(id: &EntityId) -> Option<Self> {
        let text = id.as_str();
        if text == ":" {
            return Some(PolicyScope::Global);
        }
        match text.split_once(':') {
            Some((api, op)) => Some(PolicyScope::Operation(EntityId::parse(api).ok()?, EntityId::parse(op).ok()?)),
            None => Some(PolicyScope::Api(id.clone())),
        }
    }

    /// The management path of the policy, as listed in conflicts (`/apis/a/policies/policy`).
    pub fn path(&self) -> String {
        match self {
            PolicyScope::Global => "/policies/policy".into(),
            PolicyScope::Api(api) => format!("/apis/{api}/policies/policy"),
            PolicyScope::Operation(api, op) => format!("/apis/{api}/operations/{op}/policies/policy"),
        }
    }
}

/// A policy document as stored: the text exactly as given, and what it references (computed
/// when it was validated, so delete protection needs no XML parsing).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Policy {
    pub format: String,
    pub certificate_ids: Vec<String>,
    pub thumbprints: Vec<String>,
    pub backend_ids: Vec<String>,
}
