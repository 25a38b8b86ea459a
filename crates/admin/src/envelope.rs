//! APIM's resource envelope for requests and responses.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A request body: `{"properties": {...}}`. The read-only `id`, `type` and `name` that a client
/// may echo back from a GET are accepted and ignored.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Envelope<P> {
    pub properties: P,
    #[serde(default, rename = "id")]
    #[schema(read_only, value_type = Option<String>)]
    _id: Option<serde::de::IgnoredAny>,
    #[serde(default, rename = "type")]
    #[schema(read_only, value_type = Option<String>)]
    _type: Option<serde::de::IgnoredAny>,
    #[serde(default, rename = "name")]
    #[schema(read_only, value_type = Option<String>)]
    _name: Option<serde::de::IgnoredAny>,
}

/// A response body: `{"id": "/certificates/x", "type": "certificates", "name": "x", "properties": {...}}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Resource<P> {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    pub properties: P,
    /// Facts worth knowing about the entity or an accepted write (a certificate expiring within
    /// 30 days or expired, a vault reference pinned to a version).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

impl<P> Resource<P> {
    /// An entity of a top-level collection: `id` is `/{collection}/{name}`.
    pub fn new(collection: &str, name: &str, properties: P) -> Self {
        Self::at(format!("/{collection}/{name}"), collection, name, properties)
    }

    /// An entity below another one (operations, policies), whose path is not `/{type}/{name}`.
    pub fn at(id: String, kind: &str, name: &str, properties: P) -> Self {
        Self { id, kind: kind.to_owned(), name: name.to_owned(), properties, warnings: Vec::new() }
    }

    /// Adds `warnings`, each once.
    pub fn with_warnings(mut self, warnings: Vec<String>) -> Self {
        for warning in warnings {
            if !self.warnings.contains(&warning) {
                self.warnings.push(warning);
            }
        }
        self
    }

    /// Warns when the certificate valid until `not_after` expires within 30 days or expired.
    pub fn with_expiry_warning(self, not_after: i64) -> Self {
        let warning = certgate_pki::expiry_warning(not_after, certgate_model::unix_now());
        self.with_warnings(warning.into_iter().collect())
    }
}

/// A page of a collection: `{"value": [...], "count": N, "nextLink": "..."}`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Page<P> {
    pub value: Vec<Resource<P>>,
    /// How many entities match the filter in all pages.
    pub count: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_link: Option<String>,
}
