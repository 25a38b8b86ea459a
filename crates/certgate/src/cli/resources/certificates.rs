//! `certificate` and `ca-certificate`: client certificates (an uploaded PFX or a vault
//! reference) and the CA certificates that extend backend trust.

use std::path::PathBuf;

use base64::Engine;
use clap::{Args, Subcommand, ValueEnum};
use reqwest::Method;
use serde_json::{Value, json};
use zeroize::Zeroizing;

use super::{Common, Session, name};
use crate::cli::CliError;
use crate::cli::connection::ClientOptions;
use crate::cli::output::{self, Column, expiry, text};
use crate::cli::secrets::secret_from_stdin;

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
    /// Reads a vault reference again now (refreshSecret).
    Refresh { id: String },
    #[command(flatten)]
    Common(Common),
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
            CertificateAction::Refresh { id } => {
                let reply =
                    session.client.send(Method::POST, &format!("{}/refreshSecret", path(&id)), None, None).await?;
                output::print(&reply.body, session.format, CERTIFICATE_COLUMNS)
            }
            CertificateAction::Common(common) => common.run(&session, "/certificates", CERTIFICATE_COLUMNS).await,
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
    #[command(flatten)]
    Common(Common),
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
            CaCertificateAction::Common(common) => common.run(&session, "/caCertificates", CA_COLUMNS).await,
        }
    }
}
