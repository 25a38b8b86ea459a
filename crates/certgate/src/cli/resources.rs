//! The subcommands per collection. `new` PUTs a whole resource; `set` reads the resource and
//! PATCHes only what it was given, with `If-Match` of what it read, so a concurrent change is
//! refused (412) instead of overwritten.

use std::path::PathBuf;

use base64::Engine;
use clap::{Args, Subcommand, ValueEnum};
use reqwest::Method;
use serde_json::{Map, Value, json};
use zeroize::Zeroizing;

use super::CliError;
use super::client::AdminClient;
use super::connection::{ClientOptions, Format};
use super::output::{self, Column, expiry, text};
use super::secrets::secret_from_stdin;
use certgate_policy::{InboundElement, InboundElementKind};

/// A resource's id: its `name`.
fn name(resource: &Value) -> String {
    text(resource, "/name")
}

/// What every collection command needs: the connection and where output goes.
struct Session {
    client: AdminClient,
    format: Format,
}

impl Session {
    fn open(options: &ClientOptions) -> Result<Self, CliError> {
        Ok(Self { client: options.connection.connect()?, format: options.output })
    }

    async fn list(&self, path: &str, filter: Option<&str>, columns: &[Column]) -> Result<(), CliError> {
        let list = self.client.list(path, filter).await?;
        output::print(&list, self.format, columns)
    }

    async fn show(&self, path: &str, columns: &[Column]) -> Result<(), CliError> {
        let reply = self.client.get(path).await?;
        output::print(&reply.body, self.format, columns)
    }

    async fn put(&self, path: &str, properties: Value, columns: &[Column]) -> Result<(), CliError> {
        let reply = self.client.send(Method::PUT, path, Some(&json!({ "properties": properties })), None).await?;
        output::print(&reply.body, self.format, columns)
    }

    /// Reads the resource, lets `change` compute the properties to PATCH from it, and PATCHes
    /// them under `If-Match`.
    async fn set(
        &self,
        path: &str,
        columns: &[Column],
        change: impl FnOnce(&Value) -> Map<String, Value>,
    ) -> Result<(), CliError> {
        let current = self.client.get(path).await?;
        let properties = change(&current.body);
        let body = json!({ "properties": properties });
        let reply = self.client.send(Method::PATCH, path, Some(&body), current.etag.as_deref()).await?;
        output::print(&reply.body, self.format, columns)
    }

    async fn delete(&self, path: &str) -> Result<(), CliError> {
        self.client.send(Method::DELETE, path, None, None).await?;
        if self.format == Format::Table {
            println!("deleted {path}");
        }
        Ok(())
    }
}

// ---------------------------------------------------------------- certificates

#[derive(Args)]
pub struct Certificates {
    #[command(flatten)]
    options: ClientOptions,
    #[command(subcommand)]
    action: CertificateAction,
}

#[derive(Subcommand)]
enum CertificateAction {
    /// Uploads a PFX (password from stdin or an environment variable) or references a vault secret.
    New(NewCertificate),
    /// Lists certificates; `--filter` takes APIM's `$filter` (e.g. "contains(subject, 'api')").
    List {
        #[arg(long)]
        filter: Option<String>,
    },
    Show {
        id: String,
    },
    /// Reads a vault reference again now (refreshSecret).
    Refresh {
        id: String,
    },
    /// Deletes a certificate; refused, naming them, while backends or policies reference it.
    Delete {
        id: String,
    },
}

#[derive(Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["pfx", "key_vault_secret_id"])))]
struct NewCertificate {
    #[arg(long)]
    id: String,
    /// A PKCS#12 file (.pfx / .p12)
    #[arg(long)]
    pfx: Option<PathBuf>,
    /// Read the PFX password from the first line of standard input
    #[arg(long, requires = "pfx", conflicts_with = "password_env")]
    password_stdin: bool,
    /// Read the PFX password from this environment variable
    #[arg(long, requires = "pfx", value_name = "VAR")]
    password_env: Option<String>,
    /// The vault secret's URI (KV v2 data path, optionally `?version=N`, or a PKI issue endpoint)
    #[arg(long, value_name = "URI")]
    key_vault_secret_id: Option<String>,
    /// The vault identity to read it with [default: the system identity]
    #[arg(long, requires = "key_vault_secret_id", value_name = "ID")]
    identity_client_id: Option<String>,
}

const CERTIFICATE_COLUMNS: &[Column] = &[
    Column { header: "ID", cell: name },
    Column { header: "SUBJECT", cell: |r| text(r, "/properties/subject") },
    Column { header: "THUMBPRINT", cell: |r| text(r, "/properties/thumbprint") },
    Column { header: "EXPIRES", cell: |r| expiry(&text(r, "/properties/expirationDate"), certgate_model::unix_now()) },
    Column {
        header: "SOURCE",
        cell: |r| {
            if r.pointer("/properties/keyVault").is_some_and(|v| !v.is_null()) { "KeyVault" } else { "Custom" }.into()
        },
    },
    Column {
        header: "LAST STATUS",
        cell: |r| {
            let code = text(r, "/properties/keyVault/lastStatus/code");
            let message = text(r, "/properties/keyVault/lastStatus/message");
            if message.is_empty() { code } else { format!("{code}: {message}") }
        },
    },
];

impl Certificates {
    pub async fn run(self) -> Result<(), CliError> {
        let session = Session::open(&self.options)?;
        let path = |id: &str| format!("/certificates/{id}");
        match self.action {
            CertificateAction::New(new) => {
                let properties = new.properties()?;
                session.put(&path(&new.id), properties, CERTIFICATE_COLUMNS).await
            }
            CertificateAction::List { filter } => {
                session.list("/certificates", filter.as_deref(), CERTIFICATE_COLUMNS).await
            }
            CertificateAction::Show { id } => session.show(&path(&id), CERTIFICATE_COLUMNS).await,
            CertificateAction::Refresh { id } => {
                let reply =
                    session.client.send(Method::POST, &format!("{}/refreshSecret", path(&id)), None, None).await?;
                output::print(&reply.body, session.format, CERTIFICATE_COLUMNS)
            }
            CertificateAction::Delete { id } => session.delete(&path(&id)).await,
        }
    }
}

impl NewCertificate {
    fn properties(&self) -> Result<Value, CliError> {
        if let Some(uri) = &self.key_vault_secret_id {
            let mut key_vault = json!({ "secretIdentifier": uri });
            if let Some(identity) = &self.identity_client_id {
                key_vault["identityClientId"] = json!(identity);
            }
            return Ok(json!({ "keyVault": key_vault }));
        }
        let Some(file) = &self.pfx else { return Err(CliError::Usage("give --pfx or --key-vault-secret-id".into())) };
        let pfx = Zeroizing::new(
            std::fs::read(file).map_err(|e| CliError::Usage(format!("cannot read {}: {e}", file.display())))?,
        );
        let password = match (&self.password_env, self.password_stdin) {
            (Some(variable), _) => Zeroizing::new(std::env::var(variable).map_err(|_| {
                CliError::Usage(format!("the environment variable {variable} (--password-env) is not set"))
            })?),
            (None, true) => secret_from_stdin("password")?,
            (None, false) => Zeroizing::new(String::new()),
        };
        let data = Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(pfx.as_slice()));
        Ok(json!({ "data": data.as_str(), "password": password.as_str() }))
    }
}

// ---------------------------------------------------------------- CA certificates

#[derive(Args)]
pub struct CaCertificates {
    #[command(flatten)]
    options: ClientOptions,
    #[command(subcommand)]
    action: CaCertificateAction,
}

#[derive(Subcommand)]
enum CaCertificateAction {
    /// Uploads a public CA certificate (PEM or DER).
    New {
        #[arg(long)]
        id: String,
        #[arg(long)]
        file: PathBuf,
        #[arg(long, value_enum)]
        store: CaStore,
    },
    List {
        #[arg(long)]
        filter: Option<String>,
    },
    Show {
        id: String,
    },
    Delete {
        id: String,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum CaStore {
    #[value(name = "Root")]
    Root,
    #[value(name = "CertificateAuthority")]
    CertificateAuthority,
}

const CA_COLUMNS: &[Column] = &[
    Column { header: "ID", cell: name },
    Column { header: "SUBJECT", cell: |r| text(r, "/properties/subject") },
    Column { header: "THUMBPRINT", cell: |r| text(r, "/properties/thumbprint") },
    Column { header: "EXPIRES", cell: |r| expiry(&text(r, "/properties/expirationDate"), certgate_model::unix_now()) },
    Column { header: "STORE", cell: |r| text(r, "/properties/storeName") },
];

impl CaCertificates {
    pub async fn run(self) -> Result<(), CliError> {
        let session = Session::open(&self.options)?;
        let path = |id: &str| format!("/caCertificates/{id}");
        match self.action {
            CaCertificateAction::New { id, file, store } => {
                let bytes = std::fs::read(&file)
                    .map_err(|e| CliError::Usage(format!("cannot read {}: {e}", file.display())))?;
                let store = match store {
                    CaStore::Root => "Root",
                    CaStore::CertificateAuthority => "CertificateAuthority",
                };
                let data = base64::engine::general_purpose::STANDARD.encode(bytes);
                session.put(&path(&id), json!({ "data": data, "storeName": store }), CA_COLUMNS).await
            }
            CaCertificateAction::List { filter } => {
                session.list("/caCertificates", filter.as_deref(), CA_COLUMNS).await
            }
            CaCertificateAction::Show { id } => session.show(&path(&id), CA_COLUMNS).await,
            CaCertificateAction::Delete { id } => session.delete(&path(&id)).await,
        }
    }
}

// ---------------------------------------------------------------- backends

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
    List {
        #[arg(long)]
        filter: Option<String>,
    },
    Show {
        id: String,
    },
    Delete {
        id: String,
    },
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
            BackendAction::List { filter } => session.list("/backends", filter.as_deref(), BACKEND_COLUMNS).await,
            BackendAction::Show { id } => session.show(&path(&id), BACKEND_COLUMNS).await,
            BackendAction::Delete { id } => session.delete(&path(&id)).await,
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

// ---------------------------------------------------------------- APIs

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
    List {
        #[arg(long)]
        filter: Option<String>,
    },
    Show {
        id: String,
    },
    Delete {
        id: String,
    },
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
            ApiAction::List { filter } => session.list("/apis", filter.as_deref(), API_COLUMNS).await,
            ApiAction::Show { id } => session.show(&path(&id), API_COLUMNS).await,
            ApiAction::Delete { id } => session.delete(&path(&id)).await,
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

// ---------------------------------------------------------------- operations

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

// ---------------------------------------------------------------- policies

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

// ---------------------------------------------------------------- tokens

#[derive(Args)]
pub struct Tokens {
    #[command(flatten)]
    options: ClientOptions,
    #[command(subcommand)]
    action: TokenAction,
}

#[derive(Subcommand)]
enum TokenAction {
    /// Creates a token; its secret is printed this once.
    New {
        #[arg(long)]
        id: String,
        #[arg(long, value_enum)]
        role: Role,
    },
    List,
    Delete {
        id: String,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Role {
    Reader,
    Contributor,
}

const TOKEN_COLUMNS: &[Column] =
    &[Column { header: "ID", cell: name }, Column { header: "ROLE", cell: |r| text(r, "/properties/role") }];

const NEW_TOKEN_COLUMNS: &[Column] = &[
    Column { header: "ID", cell: name },
    Column { header: "ROLE", cell: |r| text(r, "/properties/role") },
    Column { header: "SECRET (shown once)", cell: |r| text(r, "/properties/secret") },
];

impl Tokens {
    pub async fn run(self) -> Result<(), CliError> {
        let session = Session::open(&self.options)?;
        match self.action {
            TokenAction::New { id, role } => {
                let role = match role {
                    Role::Reader => "reader",
                    Role::Contributor => "contributor",
                };
                session.put(&format!("/tokens/{id}"), json!({ "role": role }), NEW_TOKEN_COLUMNS).await
            }
            TokenAction::List => session.list("/tokens", None, TOKEN_COLUMNS).await,
            TokenAction::Delete { id } => session.delete(&format!("/tokens/{id}")).await,
        }
    }
}
