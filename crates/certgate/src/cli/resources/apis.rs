//! `api`, `operation` and `policy`: APIs, their operations, and policy documents at every
//! scope; `api --backend-id / --client-certificate-id` edit the API policy in place.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{Map, Value, json};

use super::{Common, Session, name};
use crate::cli::CliError;
use crate::cli::connection::{ClientOptions, Format};
use crate::cli::output::{self, Column, text};
use certgate_policy::{InboundElement, InboundElementKind};

#[derive(Args)]
pub struct Apis {
    #[command(flatten)]
    options: ClientOptions,
    #[command(subcommand)]
    action: ApiAction,
}

#[derive(Subcommand)]
enum ApiAction {
    /// Creates or replaces an API.
    New(ApiFields),
    /// Changes only the given fields.
    Set(ApiFields),
    #[command(flatten)]
    Common(Common),
}

#[derive(Args)]
struct ApiFields {
    #[arg(long)]
    id: String,
    /// Public path prefix (required for `new`)
    #[arg(long)]
    path: Option<String>,
    /// [default for `new`: the id]
    #[arg(long)]
    display_name: Option<String>,
    #[arg(long)]
    service_url: Option<String>,
    /// Writes `<set-backend-service backend-id="…"/>` into the API's inbound policy
    #[arg(long)]
    backend_id: Option<String>,
    /// Writes `<authentication-certificate certificate-id="…"/>` into the API's inbound policy
    #[arg(long, conflicts_with = "no_client_certificate")]
    client_certificate_id: Option<String>,
    /// Removes the API policy's `<authentication-certificate>`
    #[arg(long)]
    no_client_certificate: bool,
}

const API_COLUMNS: &[Column] = &[
    Column { header: "ID", cell: name },
    Column { header: "PATH", cell: |r| format!("/{}", text(r, "/properties/path")) },
    Column { header: "DISPLAY NAME", cell: |r| text(r, "/properties/displayName") },
    Column { header: "SERVICE URL", cell: |r| text(r, "/properties/serviceUrl") },
];

impl Apis {
    pub async fn run(self) -> Result<(), CliError> {
        let session = Session::open(&self.options)?;
        let path = |id: &str| format!("/apis/{id}");
        match self.action {
            ApiAction::New(fields) => {
                if fields.path.is_none() {
                    return Err(CliError::Usage("`api new` needs --path".into()));
                }
                let mut properties = fields.properties();
                properties.entry("displayName").or_insert_with(|| json!(fields.id));
                session.put(&path(&fields.id), Value::Object(properties), API_COLUMNS).await?;
                fields.edit_policy(&session).await
            }
            ApiAction::Set(fields) => {
                let properties = fields.properties();
                if properties.is_empty() {
                    session.client.get(&path(&fields.id)).await?;
                } else {
                    session.set(&path(&fields.id), API_COLUMNS, |_| properties).await?;
                }
                fields.edit_policy(&session).await
            }
            ApiAction::Common(common) => common.run(&session, "/apis", API_COLUMNS).await,
        }
    }
}

impl ApiFields {
    fn properties(&self) -> Map<String, Value> {
        let mut properties = Map::new();
        let given = [("path", &self.path), ("displayName", &self.display_name), ("serviceUrl", &self.service_url)];
        for (key, value) in given {
            if let Some(value) = value {
                properties.insert(key.into(), json!(value));
            }
        }
        properties
    }

    /// The policy elements asked for, written into the API's policy document (created when it
    /// has none), the rest of the document kept byte for byte.
    async fn edit_policy(&self, session: &Session) -> Result<(), CliError> {
        let mut edits = Vec::new();
        if let Some(backend_id) = &self.backend_id {
            edits.push(Edit::Set(InboundElement::SetBackendService { backend_id }));
        }
        match (&self.client_certificate_id, self.no_client_certificate) {
            (Some(certificate_id), _) => {
                edits.push(Edit::Set(InboundElement::AuthenticationCertificate { certificate_id }))
            }
            (None, true) => edits.push(Edit::Remove(InboundElementKind::AuthenticationCertificate)),
            (None, false) => {}
        }
        if edits.is_empty() {
            return Ok(());
        }
        let path = format!("/apis/{}/policies/policy", self.id);
        let current = session.client.get_optional(&path).await?;
        let (mut document, etag) = match &current {
            Some(reply) => (text(&reply.body, "/properties/value"), reply.etag.clone()),
            None => (certgate_policy::EMPTY_POLICY.to_owned(), None),
        };
        let before = document.clone();
        for edit in edits {
            document = match edit {
                Edit::Set(element) => certgate_policy::set_inbound_element(&document, element),
                Edit::Remove(kind) => certgate_policy::remove_inbound_element(&document, kind),
            }
            .map_err(|e| CliError::Usage(format!("the API's policy cannot be edited: {e}")))?;
        }
        if current.is_some() && document == before {
            return Ok(());
        }
        let body = json!({ "properties": { "format": "rawxml", "value": document } });
        session.client.send(Method::PUT, &path, Some(&body), etag.as_deref()).await?;
        if session.format == Format::Table {
            println!("policy of API {} updated", self.id);
        }
        Ok(())
    }
}

enum Edit<'a> {
    Set(InboundElement<'a>),
    Remove(InboundElementKind),
}

#[derive(Args)]
pub struct Operations {
    #[command(flatten)]
    options: ClientOptions,
    #[command(subcommand)]
    action: OperationAction,
}

#[derive(Subcommand)]
enum OperationAction {
    /// Creates or replaces an operation.
    New(OperationFields),
    /// Changes only the given fields.
    Set(OperationFields),
    List {
        #[arg(long)]
        api: String,
    },
    Show {
        #[arg(long)]
        api: String,
        #[arg(long)]
        id: String,
    },
    Delete {
        #[arg(long)]
        api: String,
        #[arg(long)]
        id: String,
    },
}

#[derive(Args)]
struct OperationFields {
    #[arg(long)]
    api: String,
    #[arg(long)]
    id: String,
    /// HTTP method, or `*` for any (required for `new`)
    #[arg(long)]
    method: Option<String>,
    /// e.g. `/orders/{orderId}` (required for `new`)
    #[arg(long)]
    url_template: Option<String>,
    /// [default for `new`: the id]
    #[arg(long)]
    display_name: Option<String>,
}

const OPERATION_COLUMNS: &[Column] = &[
    Column { header: "ID", cell: name },
    Column { header: "METHOD", cell: |r| text(r, "/properties/method") },
    Column { header: "URL TEMPLATE", cell: |r| text(r, "/properties/urlTemplate") },
    Column { header: "DISPLAY NAME", cell: |r| text(r, "/properties/displayName") },
];

impl Operations {
    pub async fn run(self) -> Result<(), CliError> {
        let session = Session::open(&self.options)?;
        let path = |api: &str, id: &str| format!("/apis/{api}/operations/{id}");
        match self.action {
            OperationAction::New(fields) => {
                if fields.method.is_none() || fields.url_template.is_none() {
                    return Err(CliError::Usage("`operation new` needs --method and --url-template".into()));
                }
                let mut properties = fields.properties();
                properties.entry("displayName").or_insert_with(|| json!(fields.id));
                session.put(&path(&fields.api, &fields.id), Value::Object(properties), OPERATION_COLUMNS).await
            }
            OperationAction::Set(fields) => {
                let properties = fields.properties();
                session.set(&path(&fields.api, &fields.id), OPERATION_COLUMNS, |_| properties).await
            }
            OperationAction::List { api } => {
                session.list(&format!("/apis/{api}/operations"), None, OPERATION_COLUMNS).await
            }
            OperationAction::Show { api, id } => session.show(&path(&api, &id), OPERATION_COLUMNS).await,
            OperationAction::Delete { api, id } => session.delete(&path(&api, &id)).await,
        }
    }
}

impl OperationFields {
    fn properties(&self) -> Map<String, Value> {
        let mut properties = Map::new();
        let given =
            [("method", &self.method), ("urlTemplate", &self.url_template), ("displayName", &self.display_name)];
        for (key, value) in given {
            if let Some(value) = value {
                properties.insert(key.into(), json!(value));
            }
        }
        properties
    }
}

#[derive(Args)]
pub struct Policies {
    #[command(flatten)]
    options: ClientOptions,
    #[command(subcommand)]
    action: PolicyAction,
}

#[derive(Subcommand)]
enum PolicyAction {
    /// Prints a policy document as stored.
    Get {
        /// `global`, `api:ID` or `operation:ID/OP`
        #[arg(long)]
        scope: PolicyScopeArg,
    },
    /// Saves a policy document from a file or `-` (standard input).
    Set {
        #[arg(long)]
        scope: PolicyScopeArg,
        #[arg(long, short)]
        file: Option<PathBuf>,
        /// `-` reads the document from standard input
        #[arg(value_name = "-")]
        stdin: Option<String>,
    },
    /// Deletes a policy document.
    Delete {
        #[arg(long)]
        scope: PolicyScopeArg,
    },
}

/// A policy scope as the command line spells it, turned into its resource path.
#[derive(Clone)]
struct PolicyScopeArg(String);

impl std::str::FromStr for PolicyScopeArg {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let path = match text.split_once(':') {
            _ if text.eq_ignore_ascii_case("global") => "/policies/policy".to_owned(),
            Some(("api", api)) if !api.is_empty() && !api.contains('/') => format!("/apis/{api}/policies/policy"),
            Some(("operation", rest)) => match rest.split_once('/') {
                Some((api, op)) if !api.is_empty() && !op.is_empty() => {
                    format!("/apis/{api}/operations/{op}/policies/policy")
                }
                _ => return Err("an operation scope is operation:API/OPERATION".into()),
            },
            _ => return Err("the scope is global, api:ID or operation:API/OPERATION".into()),
        };
        Ok(Self(path))
    }
}

const POLICY_COLUMNS: &[Column] = &[Column { header: "POLICY", cell: |r| text(r, "/properties/value") }];

impl Policies {
    pub async fn run(self) -> Result<(), CliError> {
        let session = Session::open(&self.options)?;
        match self.action {
            PolicyAction::Get { scope } => {
                let reply = session.client.get(&scope.0).await?;
                match session.format {
                    // The document itself, ready to be edited and set again.
                    Format::Table => {
                        print!("{}", text(&reply.body, "/properties/value"));
                        Ok(())
                    }
                    format => output::print(&reply.body, format, POLICY_COLUMNS),
                }
            }
            PolicyAction::Set { scope, file, stdin } => {
                let document = match (file, stdin.as_deref()) {
                    (Some(file), None) => std::fs::read_to_string(&file)
                        .map_err(|e| CliError::Usage(format!("cannot read {}: {e}", file.display())))?,
                    (None, Some("-")) => std::io::read_to_string(std::io::stdin())
                        .map_err(|e| CliError::Usage(format!("cannot read standard input: {e}")))?,
                    _ => return Err(CliError::Usage("give --file FILE or - (standard input)".into())),
                };
                let body = json!({ "properties": { "format": "rawxml", "value": document } });
                let reply = session.client.send(Method::PUT, &scope.0, Some(&body), None).await?;
                if session.format == Format::Table {
                    println!("saved {}", scope.0);
                    Ok(())
                } else {
                    output::print(&reply.body, session.format, POLICY_COLUMNS)
                }
            }
            PolicyAction::Delete { scope } => session.delete(&scope.0).await,
        }
    }
}
