//! `certgate export` and `certgate apply`: the whole configuration as one YAML file that can
//! live in git, and a plan (create / update / delete / unchanged, with the changed fields)
//! before anything is applied.
//!
//! No private key ever leaves a node, so an uploaded certificate is exported by thumbprint with
//! a placeholder for its PFX file; `apply` needs that file only when the node does not already
//! hold a certificate with that thumbprint. Everything the file says is checked (YAML shape,
//! PFX files and passwords, CA certificates, policy XML) before the first write; a failure
//! mid-apply stops at once and reports what was done.

use std::path::{Path, PathBuf};

use base64::Engine;
use clap::Args;
use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use zeroize::Zeroizing;

use super::CliError;
use super::client::AdminClient;
use super::connection::ConnectionOptions;
use super::output::text;

#[derive(Args)]
pub struct Export {
    #[command(flatten)]
    connection: ConnectionOptions,
    /// Write to this file instead of standard output
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
}

#[derive(Args)]
pub struct Apply {
    #[command(flatten)]
    connection: ConnectionOptions,
    /// The configuration file (as `certgate export` writes it)
    #[arg(short, long, value_name = "FILE")]
    file: PathBuf,
    /// Print the plan and change nothing
    #[arg(long)]
    dry_run: bool,
    /// Also delete what the file does not name
    #[arg(long)]
    prune: bool,
}

// ---------------------------------------------------------------- the file

#[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ConfigFile {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    certificates: Vec<CertificateEntry>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    ca_certificates: Vec<CaCertificateEntry>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    backends: Vec<BackendEntry>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    apis: Vec<ApiEntry>,
    /// The global policy document.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    policy: Option<String>,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct CertificateEntry {
    id: String,
    /// An uploaded certificate's thumbprint: when the node holds it already, no file is read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    thumbprint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pfx: Option<PfxFile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    key_vault: Option<KeyVault>,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PfxFile {
    /// Relative to the configuration file.
    file: PathBuf,
    /// The environment variable holding its password (none: no password).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    password_env: Option<String>,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct KeyVault {
    secret_identifier: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    identity_client_id: Option<String>,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct CaCertificateEntry {
    id: String,
    store_name: String,
    pem: String,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct BackendEntry {
    id: String,
    url: String,
    #[serde(default = "http")]
    protocol: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    resource_id: Option<String>,
    #[serde(default)]
    tls: Tls,
    /// As the management API spells it (`certificateIds`, `certificate`, `header`, `query`,
    /// `authorization`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    credentials: Option<Value>,
}

fn http() -> String {
    "http".into()
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Tls {
    validate_certificate_chain: bool,
    validate_certificate_name: bool,
}

impl Default for Tls {
    fn default() -> Self {
        Self { validate_certificate_chain: true, validate_certificate_name: true }
    }
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ApiEntry {
    id: String,
    display_name: String,
    path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    service_url: Option<String>,
    #[serde(default = "both_protocols")]
    protocols: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    terms_of_service_url: Option<String>,
    /// `contact` and `license`, as the management API spells them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    contact: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    license: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    policy: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    operations: Vec<OperationEntry>,
}

fn both_protocols() -> Vec<String> {
    vec!["http".into(), "https".into()]
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct OperationEntry {
    id: String,
    display_name: String,
    method: String,
    url_template: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    /// The descriptive properties, as the management API spells them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    template_parameters: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    request: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    responses: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    policy: Option<String>,
}

/// The properties an entry sends to the management API: its fields but `id` and those that
/// are resources of their own (`policy`, `operations`).
fn properties_of(entry: &impl Serialize) -> Map<String, Value> {
    let mut properties = match serde_json::to_value(entry) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    };
    for own in ["id", "policy", "operations"] {
        properties.remove(own);
    }
    properties
}

// ---------------------------------------------------------------- the node's state

/// What the node holds, read through the management API.
struct NodeState {
    certificates: Vec<Value>,
    ca_certificates: Vec<Value>,
    backends: Vec<Value>,
    apis: Vec<NodeApi>,
    /// The global policy document.
    policy: Option<String>,
}

struct NodeApi {
    resource: Value,
    policy: Option<String>,
    operations: Vec<(Value, Option<String>)>,
}

async fn read_state(client: &AdminClient) -> Result<NodeState, CliError> {
    let list = |path: &'static str| async move {
        let page = client.list(path, None).await?;
        Ok::<_, CliError>(page["value"].as_array().cloned().unwrap_or_default())
    };
    let policy = |path: String| async move {
        Ok::<_, CliError>(client.get_optional(&path).await?.map(|reply| text(&reply.body, "/properties/value")))
    };
    let mut apis = Vec::new();
    for resource in list("/apis").await? {
        let id = text(&resource, "/name");
        let mut operations = Vec::new();
        let page = client.list(&format!("/apis/{id}/operations"), None).await?;
        for operation in page["value"].as_array().cloned().unwrap_or_default() {
            let op = text(&operation, "/name");
            operations.push((operation, policy(format!("/apis/{id}/operations/{op}/policies/policy")).await?));
        }
        apis.push(NodeApi { policy: policy(format!("/apis/{id}/policies/policy")).await?, resource, operations });
    }
    Ok(NodeState {
        certificates: list("/certificates").await?,
        ca_certificates: list("/caCertificates").await?,
        backends: list("/backends").await?,
        apis,
        policy: policy("/policies/policy".into()).await?,
    })
}

// ---------------------------------------------------------------- export

impl Export {
    pub async fn run(self) -> Result<(), CliError> {
        let client = self.connection.connect()?;
        let state = read_state(&client).await?;
        let file = exported(&state)?;
        let yaml = serde_yaml_ng::to_string(&file).map_err(|e| CliError::Usage(format!("cannot write YAML: {e}")))?;
        match &self.output {
            Some(path) => {
                std::fs::write(path, yaml).map_err(|e| CliError::Usage(format!("cannot write {}: {e}", path.display())))
            }
            None => {
                print!("{yaml}");
                Ok(())
            }
        }
    }
}

/// The node's state as a configuration file, every list sorted by id.
fn exported(state: &NodeState) -> Result<ConfigFile, CliError> {
    let entry = |resource: &Value, skip: &[&str]| {
        let mut map = resource["properties"].as_object().cloned().unwrap_or_default();
        map.retain(|key, value| !skip.contains(&key.as_str()) && !is_empty(value));
        map.insert("id".into(), json!(text(resource, "/name")));
        Value::Object(map)
    };
    let mut file = ConfigFile { policy: state.policy.clone(), ..ConfigFile::default() };
    for certificate in &state.certificates {
        let id = text(certificate, "/name");
        file.certificates.push(match certificate.pointer("/properties/keyVault").filter(|v| !v.is_null()) {
            Some(key_vault) => CertificateEntry {
                id,
                thumbprint: None,
                pfx: None,
                key_vault: Some(KeyVault {
                    secret_identifier: text(key_vault, "/secretIdentifier"),
                    identity_client_id: Some(text(key_vault, "/identityClientId")).filter(|s| !s.is_empty()),
                }),
            },
            None => CertificateEntry {
                thumbprint: Some(text(certificate, "/properties/thumbprint")),
                pfx: Some(PfxFile { file: format!("{id}.pfx").into(), password_env: Some(password_variable(&id)) }),
                key_vault: None,
                id,
            },
        });
    }
    for ca in &state.ca_certificates {
        file.ca_certificates.push(CaCertificateEntry {
            id: text(ca, "/name"),
            store_name: text(ca, "/properties/storeName"),
            pem: text(ca, "/properties/pem"),
        });
    }
    for backend in &state.backends {
        file.backends.push(decode(strip_nulls(entry(backend, &[])))?);
    }
    for api in &state.apis {
        // Fixed by certgate (one revision of an http API): not part of a file.
        let mut value = entry(&api.resource, &["subscriptionRequired", "apiRevision", "isCurrent", "type"]);
        value["policy"] = json!(api.policy);
        let mut operations = Vec::new();
        for (operation, policy) in &api.operations {
            let mut value = entry(operation, &[]);
            value["policy"] = json!(policy);
            operations.push(value);
        }
        value["operations"] = Value::Array(operations);
        file.apis.push(decode(strip_nulls(value))?);
    }
    file.certificates.sort_by(|a, b| a.id.cmp(&b.id));
    file.ca_certificates.sort_by(|a, b| a.id.cmp(&b.id));
    file.backends.sort_by(|a, b| a.id.cmp(&b.id));
    file.apis.sort_by(|a, b| a.id.cmp(&b.id));
    for api in &mut file.apis {
        api.operations.sort_by(|a, b| a.id.cmp(&b.id));
    }
    Ok(file)
}

fn decode<T: serde::de::DeserializeOwned>(value: Value) -> Result<T, CliError> {
    serde_json::from_value(value)
        .map_err(|e| CliError::Usage(format!("the node sent a resource this CLI does not know: {e}")))
}

/// `PFX_PASSWORD_ORDERS_CLIENT` for certificate `orders-client`.
fn password_variable(id: &str) -> String {
    let name: String =
        id.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' }).collect();
    format!("PFX_PASSWORD_{name}")
}

/// Null, `[]` and `{}` say nothing: an absent field means the same.
fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Array(items) => items.is_empty(),
        Value::Object(map) => map.values().all(is_empty),
        _ => false,
    }
}

fn strip_nulls(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            Value::Object(map.into_iter().filter(|(_, v)| !is_empty(v)).map(|(k, v)| (k, strip_nulls(v))).collect())
        }
        other => other,
    }
}

// ---------------------------------------------------------------- plan and apply

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Create,
    Update,
    Unchanged,
    Delete,
}

/// One entity's line of the plan, with the request that carries it out.
struct Step {
    action: Action,
    what: &'static str,
    id: String,
    /// The changed fields of an update.
    fields: Vec<String>,
    path: String,
    /// The body of a PUT (`None`: a DELETE, or nothing to send).
    body: Option<Value>,
}

impl Step {
    fn describe(&self) -> String {
        let action = match self.action {
            Action::Create => "create",
            Action::Update => "update",
            Action::Unchanged => "unchanged",
            Action::Delete => "delete",
        };
        let fields = if self.fields.is_empty() { String::new() } else { format!(" ({})", self.fields.join(", ")) };
        format!("{action:<10}{:<16}{}{fields}", self.what, self.id)
    }
}

impl Apply {
    pub async fn run(self) -> Result<(), CliError> {
        let file = load(&self.file)?;
        let base = self.file.parent().map(Path::to_path_buf).unwrap_or_default();
        let client = self.connection.connect()?;
        let state = read_state(&client).await?;
        let steps = plan(&file, &state, &base, self.prune)?;
        for step in &steps {
            println!("{}", step.describe());
        }
        let changes: Vec<&Step> = steps.iter().filter(|s| s.action != Action::Unchanged).collect();
        println!("plan: {} to change, {} unchanged", changes.len(), steps.len() - changes.len());
        if self.dry_run {
            return Ok(());
        }
        for (done, step) in changes.iter().enumerate() {
            let result = match (&step.action, &step.body) {
                (Action::Delete, _) => client.send(Method::DELETE, &step.path, None, None).await,
                (_, body) => client.send(Method::PUT, &step.path, body.as_ref(), None).await,
            };
            if let Err(error) = result {
                eprintln!("applied {done} of {} changes; stopped at: {}", changes.len(), step.describe().trim_end());
                return Err(error);
            }
        }
        println!("applied {} changes", changes.len());
        Ok(())
    }
}

/// Reads and checks the file's shape; serde names the line and field at fault.
fn load(path: &Path) -> Result<ConfigFile, CliError> {
    let text =
        std::fs::read_to_string(path).map_err(|e| CliError::Usage(format!("cannot read {}: {e}", path.display())))?;
    serde_yaml_ng::from_str(&text).map_err(|e| CliError::Usage(format!("{}: {e}", path.display())))
}

/// The steps that bring the node to the file, in an order that resolves references:
/// certificates and backends before the policies that name them; deletes last, in reverse.
/// Every check of the file's content happens here, before anything is sent.
fn plan(file: &ConfigFile, state: &NodeState, base: &Path, prune: bool) -> Result<Vec<Step>, CliError> {
    let mut steps = Vec::new();
    let mut policies = Vec::new();
    let mut deletes = Vec::new();
    let find = |list: &[Value], id: &str| list.iter().find(|r| text(r, "/name").eq_ignore_ascii_case(id)).cloned();

    for (i, entry) in file.certificates.iter().enumerate() {
        let current = find(&state.certificates, &entry.id);
        steps.push(certificate_step(entry, current.as_ref(), base, &format!("certificates[{i}]"))?);
    }
    for (i, entry) in file.ca_certificates.iter().enumerate() {
        let at = format!("caCertificates[{i}]");
        let imported = certgate_pki::import_ca_certificate(entry.pem.as_bytes())
            .map_err(|e| CliError::Usage(format!("{at}.pem: {e}")))?;
        let current = find(&state.ca_certificates, &entry.id);
        let mut fields = Vec::new();
        if let Some(current) = &current {
            if text(current, "/properties/thumbprint") != imported.thumbprint.as_str() {
                fields.push("pem".to_owned());
            }
            if text(current, "/properties/storeName") != entry.store_name {
                fields.push("storeName".to_owned());
            }
        }
        let body = json!({ "properties": { "data": entry.pem, "storeName": entry.store_name } });
        steps.push(step(
            "caCertificate",
            &entry.id,
            format!("/caCertificates/{}", entry.id),
            current.is_some(),
            fields,
            body,
        ));
    }
    for entry in &file.backends {
        let current = find(&state.backends, &entry.id);
        steps.push(resource_step(
            "backend",
            &entry.id,
            format!("/backends/{}", entry.id),
            properties_of(entry),
            current.as_ref(),
        ));
    }
    for (i, api) in file.apis.iter().enumerate() {
        let node_api = state.apis.iter().find(|a| text(&a.resource, "/name").eq_ignore_ascii_case(&api.id));
        let path = format!("/apis/{}", api.id);
        steps.push(resource_step("api", &api.id, path.clone(), properties_of(api), node_api.map(|a| &a.resource)));
        let current_policy = node_api.and_then(|a| a.policy.as_deref());
        policies.push(policy_step(
            &format!("apis[{i}].policy"),
            &api.id,
            &format!("{path}/policies/policy"),
            api.policy.as_deref(),
            current_policy,
            prune,
        )?);
        for (j, operation) in api.operations.iter().enumerate() {
            let current = node_api
                .and_then(|a| a.operations.iter().find(|(o, _)| text(o, "/name").eq_ignore_ascii_case(&operation.id)));
            let op_path = format!("{path}/operations/{}", operation.id);
            let name = format!("{}/{}", api.id, operation.id);
            steps.push(resource_step(
                "operation",
                &name,
                op_path.clone(),
                properties_of(operation),
                current.map(|(o, _)| o),
            ));
            let at = format!("apis[{i}].operations[{j}].policy");
            policies.push(policy_step(
                &at,
                &name,
                &format!("{op_path}/policies/policy"),
                operation.policy.as_deref(),
                current.and_then(|(_, p)| p.as_deref()),
                prune,
            )?);
        }
        if prune {
            for (operation, _) in node_api.map(|a| a.operations.as_slice()).unwrap_or_default() {
                let id = text(operation, "/name");
                if !api.operations.iter().any(|o| o.id.eq_ignore_ascii_case(&id)) {
                    deletes.push(delete("operation", &format!("{}/{id}", api.id), format!("{path}/operations/{id}")));
                }
            }
        }
    }
    policies.insert(
        0,
        policy_step("policy", "global", "/policies/policy", file.policy.as_deref(), state.policy.as_deref(), prune)?,
    );
    steps.extend(policies.into_iter().flatten());
    if prune {
        // Deleting an API deletes its operations and policies with it.
        for api in &state.apis {
            let id = text(&api.resource, "/name");
            if !file.apis.iter().any(|a| a.id.eq_ignore_ascii_case(&id)) {
                deletes.push(delete("api", &id, format!("/apis/{id}")));
            }
        }
        let named = |ids: Vec<&String>, id: &str| ids.iter().any(|i| i.eq_ignore_ascii_case(id));
        for (what, collection, list, ids) in [
            ("backend", "backends", &state.backends, file.backends.iter().map(|e| &e.id).collect::<Vec<_>>()),
            (
                "caCertificate",
                "caCertificates",
                &state.ca_certificates,
                file.ca_certificates.iter().map(|e| &e.id).collect(),
            ),
            ("certificate", "certificates", &state.certificates, file.certificates.iter().map(|e| &e.id).collect()),
        ] {
            for resource in list {
                let id = text(resource, "/name");
                if !named(ids.clone(), &id) {
                    deletes.push(delete(what, &id, format!("/{collection}/{id}")));
                }
            }
        }
    }
    steps.extend(deletes);
    Ok(steps)
}

fn step(what: &'static str, id: &str, path: String, exists: bool, fields: Vec<String>, body: Value) -> Step {
    let action = match (exists, fields.is_empty()) {
        (false, _) => Action::Create,
        (true, false) => Action::Update,
        (true, true) => Action::Unchanged,
    };
    Step { action, what, id: id.to_owned(), fields, path, body: Some(body) }
}

fn delete(what: &'static str, id: &str, path: String) -> Step {
    Step { action: Action::Delete, what, id: id.to_owned(), fields: Vec::new(), path, body: None }
}

/// A resource whose properties are compared field by field with the node's.
fn resource_step(
    what: &'static str,
    id: &str,
    path: String,
    desired: Map<String, Value>,
    current: Option<&Value>,
) -> Step {
    let mut fields = Vec::new();
    if let Some(current) = current {
        let empty = Map::new();
        let held = current["properties"].as_object().unwrap_or(&empty);
        for (key, value) in &desired {
            let now = held.get(key).cloned().unwrap_or(Value::Null);
            if strip_nulls(value.clone()) != strip_nulls(now.clone()) && !(is_empty(value) && is_empty(&now)) {
                fields.push(key.clone());
            }
        }
    }
    step(what, id, path, current.is_some(), fields, json!({ "properties": desired }))
}

/// A policy document: `None` in the file leaves the node's alone, unless pruning.
fn policy_step(
    at: &str,
    owner: &str,
    path: &str,
    desired: Option<&str>,
    current: Option<&str>,
    prune: bool,
) -> Result<Option<Step>, CliError> {
    let Some(desired) = desired else {
        return Ok((prune && current.is_some()).then(|| delete("policy", owner, path.to_owned())));
    };
    certgate_policy::parse(desired).map_err(|e| CliError::Usage(format!("{at}: {e}")))?;
    let body = json!({ "properties": { "format": "rawxml", "value": desired } });
    let fields = if current.is_some_and(|c| c != desired) { vec!["value".to_owned()] } else { Vec::new() };
    Ok(Some(step("policy", owner, path.to_owned(), current.is_some(), fields, body)))
}

/// An uploaded certificate is unchanged when the node holds its thumbprint (its file is not
/// read then); otherwise its PFX is read and imported here, so a wrong file or password is
/// refused before anything is sent.
fn certificate_step(
    entry: &CertificateEntry,
    current: Option<&Value>,
    base: &Path,
    at: &str,
) -> Result<Step, CliError> {
    let path = format!("/certificates/{}", entry.id);
    let held_thumbprint = current.map(|c| text(c, "/properties/thumbprint"));
    match (&entry.key_vault, &entry.pfx) {
        (Some(key_vault), None) => {
            let mut fields = Vec::new();
            if let Some(current) = current {
                if text(current, "/properties/keyVault/secretIdentifier") != key_vault.secret_identifier {
                    fields.push("keyVault.secretIdentifier".to_owned());
                }
                let identity = text(current, "/properties/keyVault/identityClientId");
                if identity != key_vault.identity_client_id.clone().unwrap_or_default() {
                    fields.push("keyVault.identityClientId".to_owned());
                }
            }
            let mut reference = json!({ "secretIdentifier": key_vault.secret_identifier });
            if let Some(identity) = &key_vault.identity_client_id {
                reference["identityClientId"] = json!(identity);
            }
            Ok(step(
                "certificate",
                &entry.id,
                path,
                current.is_some(),
                fields,
                json!({ "properties": { "keyVault": reference } }),
            ))
        }
        (None, Some(pfx)) => {
            if held_thumbprint.is_some() && held_thumbprint == entry.thumbprint {
                return Ok(step("certificate", &entry.id, path, true, Vec::new(), Value::Null));
            }
            let file = base.join(&pfx.file);
            let bytes = Zeroizing::new(
                std::fs::read(&file)
                    .map_err(|e| CliError::Usage(format!("{at}.pfx.file: cannot read {}: {e}", file.display())))?,
            );
            let password = match &pfx.password_env {
                Some(variable) => Zeroizing::new(
                    std::env::var(variable)
                        .map_err(|_| CliError::Usage(format!("{at}.pfx.passwordEnv: {variable} is not set")))?,
                ),
                None => Zeroizing::new(String::new()),
            };
            let imported = certgate_pki::import_pkcs12(&bytes, &password)
                .map_err(|e| CliError::Usage(format!("{at}.pfx: {}: {e}", file.display())))?;
            let fields = match &held_thumbprint {
                Some(held) if held == imported.thumbprint.as_str() => Vec::new(),
                _ => vec!["thumbprint".to_owned()],
            };
            let data = base64::engine::general_purpose::STANDARD.encode(bytes.as_slice());
            let body = json!({ "properties": { "data": data, "password": password.as_str() } });
            let fields = if current.is_some() { fields } else { Vec::new() };
            Ok(step("certificate", &entry.id, path, current.is_some(), fields, body))
        }
        _ => Err(CliError::Usage(format!("{at}: give exactly one of pfx and keyVault"))),
    }
}
