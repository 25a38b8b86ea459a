//! `backend`: backend services with their TLS switches and client certificates.

use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{Map, Value, json};

use super::{Common, Session, name};
use crate::cli::CliError;
use crate::cli::connection::{ClientOptions, Format};
use crate::cli::output::{self, Column, text};

#[derive(Args)]
pub struct Backends {
    #[command(flatten)]
    options: ClientOptions,
    #[command(subcommand)]
    action: BackendAction,
}

#[derive(Subcommand)]
enum BackendAction {
    /// Creates or replaces a backend (New-AzApiManagementBackend).
    New(BackendFields),
    /// Changes only the given fields (Set-AzApiManagementBackend).
    Set(BackendFields),
    /// Tests the TLS handshake with the backend, presenting its client certificate or a
    /// candidate; reports each step and a hint, and changes nothing.
    Test {
        id: String,
        /// Present this certificate instead of the backend's own
        #[arg(long)]
        certificate_id: Option<String>,
    },
    #[command(flatten)]
    Common(Common),
}

#[derive(Args)]
struct BackendFields {
    #[arg(long)]
    id: String,
    /// The backend's base URL (required for `new`)
    #[arg(long)]
    url: Option<String>,
    /// Only `http` (HTTP/1.1 or HTTP/2 over TCP or TLS), as in APIM
    #[arg(long)]
    protocol: Option<String>,
    #[arg(long)]
    title: Option<String>,
    #[arg(long)]
    description: Option<String>,
    /// Descriptive: the resource in another system this backend is (e.g. an ARM resource id)
    #[arg(long)]
    resource_id: Option<String>,
    /// Accept a backend certificate that no trusted CA issued (self-signed); `=false` to undo
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    skip_certificate_chain_validation: Option<bool>,
    /// Accept a backend certificate whose names do not match the host; `=false` to undo
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    skip_certificate_name_validation: Option<bool>,
    /// Client certificate(s) presented to the backend, by id (replaces the list)
    #[arg(long = "client-certificate-id", value_name = "ID")]
    client_certificate_ids: Vec<String>,
}

const BACKEND_COLUMNS: &[Column] = &[
    Column { header: "ID", cell: name },
    Column { header: "URL", cell: |r| text(r, "/properties/url") },
    Column { header: "VALIDATE CHAIN", cell: |r| text(r, "/properties/tls/validateCertificateChain") },
    Column { header: "VALIDATE NAME", cell: |r| text(r, "/properties/tls/validateCertificateName") },
    Column {
        header: "CLIENT CERTIFICATES",
        cell: |r| {
            let ids = r.pointer("/properties/credentials/certificateIds").and_then(Value::as_array);
            ids.into_iter().flatten().filter_map(Value::as_str).collect::<Vec<_>>().join(",")
        },
    },
];

const PROBE_STEP_COLUMNS: &[Column] = &[
    Column { header: "STEP", cell: |r| text(r, "/step") },
    Column { header: "OK", cell: |r| text(r, "/ok") },
    Column { header: "DETAIL", cell: |r| text(r, "/detail") },
];

impl Backends {
    pub async fn run(self) -> Result<(), CliError> {
        let session = Session::open(&self.options)?;
        let path = |id: &str| format!("/backends/{id}");
        match self.action {
            BackendAction::New(fields) => {
                if fields.url.is_none() {
                    return Err(CliError::Usage("`backend new` needs --url".into()));
                }
                let properties = fields.properties(&Value::Null);
                session.put(&path(&fields.id), Value::Object(properties), BACKEND_COLUMNS).await
            }
            BackendAction::Set(fields) => {
                session.set(&path(&fields.id), BACKEND_COLUMNS, |current| fields.properties(current)).await
            }
            BackendAction::Test { id, certificate_id } => {
                let query = certificate_id
                    .map(|c| format!("?certificateId={}", certgate_model::percent_encode(&c)))
                    .unwrap_or_default();
                let reply =
                    session.client.send(Method::POST, &format!("{}/test{query}", path(&id)), None, None).await?;
                if session.format != Format::Table {
                    return output::print(&reply.body, session.format, &[]);
                }
                output::print(&json!({ "value": reply.body["steps"] }), Format::Table, PROBE_STEP_COLUMNS)?;
                println!("{}", text(&reply.body, "/hint"));
                Ok(())
            }
            BackendAction::Common(common) => common.run(&session, "/backends", BACKEND_COLUMNS).await,
        }
    }
}

impl BackendFields {
    /// The properties given; `current` (the resource as read, or null) supplies the parts of
    /// `tls` and `credentials` that are sent whole but were not given.
    fn properties(&self, current: &Value) -> Map<String, Value> {
        let mut properties = Map::new();
        for (key, value) in [
            ("url", &self.url),
            ("protocol", &self.protocol),
            ("title", &self.title),
            ("description", &self.description),
            ("resourceId", &self.resource_id),
        ] {
            if let Some(value) = value {
                properties.insert(key.into(), json!(value));
            }
        }
        if !properties.contains_key("protocol") && current.is_null() {
            properties.insert("protocol".into(), json!("http"));
        }
        let mut tls = Map::new();
        if let Some(skip) = self.skip_certificate_chain_validation {
            tls.insert("validateCertificateChain".into(), json!(!skip));
        }
        if let Some(skip) = self.skip_certificate_name_validation {
            tls.insert("validateCertificateName".into(), json!(!skip));
        }
        if !tls.is_empty() {
            properties.insert("tls".into(), Value::Object(tls));
        }
        if !self.client_certificate_ids.is_empty() {
            let mut credentials = current.pointer("/properties/credentials").cloned().unwrap_or_else(|| json!({}));
            credentials["certificateIds"] = json!(self.client_certificate_ids);
            properties.insert("credentials".into(), credentials);
        }
        properties
    }
}
