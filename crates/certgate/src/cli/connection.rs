//! Where the node is and which token to send.
//!
//! The URL: `--admin-url`, else `CERTGATE_ADMIN_URL`, else the context's, else the default
//! admin listener. The token: `--token-file`, else `CERTGATE_ADMIN_TOKEN`, else the context's,
//! else the `admin-token` file of the local data directory (what a node generates at its first
//! start). The context: `--context`, else the current one — unless a URL was given another
//! way, since a context's token belongs to its own node.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use reqwest::Url;
use zeroize::Zeroizing;

use super::CliError;
use super::client::AdminClient;
use super::contexts::{Context, Contexts};
use super::secrets::read_token;

const DEFAULT_ADMIN_URL: &str = "http://127.0.0.1:8081";

/// Options every client subcommand that shows resources takes: where, and in which format.
#[derive(Args, Debug, Clone)]
pub struct ClientOptions {
    #[command(flatten)]
    pub connection: ConnectionOptions,
    /// Output format
    #[arg(short, long, value_enum, default_value_t = Format::Table, global = true)]
    pub output: Format,
}

/// Where the node is and how to authenticate to it.
#[derive(Args, Debug, Clone)]
pub struct ConnectionOptions {
    /// The node's management API [default: the context's, else http://127.0.0.1:8081]
    #[arg(long, env = "CERTGATE_ADMIN_URL", global = true)]
    admin_url: Option<Url>,
    /// A named context (see `certgate context`) instead of the current one
    #[arg(long, global = true)]
    context: Option<String>,
    /// File holding the management token (CERTGATE_ADMIN_TOKEN gives it inline)
    #[arg(long, global = true)]
    token_file: Option<PathBuf>,
    /// PEM file of the CA that signed an HTTPS management API's certificate
    #[arg(long, global = true)]
    ca_file: Option<PathBuf>,
    /// The local node's data directory, whose `admin-token` is the last resort [default: ./certgate-data]
    #[arg(long, env = "CERTGATE_DATA_DIR", global = true)]
    data_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Json,
    Yaml,
}

impl ConnectionOptions {
    pub(super) fn connect(&self) -> Result<AdminClient, CliError> {
        let context = self.context()?;
        let url = match (&self.admin_url, &context) {
            (Some(url), _) => url.clone(),
            (None, Some(context)) => context.admin_url.clone(),
            (None, None) => Url::parse(DEFAULT_ADMIN_URL).map_err(|e| CliError::Usage(e.to_string()))?,
        };
        let token = self.token(context.as_ref())?;
        let ca_file = self.ca_file.as_deref().or(context.as_ref().and_then(|c| c.ca_file.as_deref()));
        AdminClient::new(&url, token, ca_file)
    }

    fn context(&self) -> Result<Option<Context>, CliError> {
        let contexts = Contexts::load()?;
        match &self.context {
            Some(name) => contexts
                .get(name)
                .map(Some)
                .ok_or_else(|| CliError::Usage(format!("no context named {name:?} (see `certgate context list`)"))),
            None if self.admin_url.is_some() => Ok(None),
            None => Ok(contexts.current()),
        }
    }

    fn token(&self, context: Option<&Context>) -> Result<Zeroizing<String>, CliError> {
        if let Some(path) = &self.token_file {
            return read_token(path);
        }
        if let Some(token) = std::env::var("CERTGATE_ADMIN_TOKEN").ok().filter(|t| !t.is_empty()) {
            return Ok(Zeroizing::new(token));
        }
        if let Some(token) = context.and_then(|c| c.token.clone()) {
            return Ok(token);
        }
        let path = self.data_dir.clone().unwrap_or_else(|| PathBuf::from("./certgate-data")).join("admin-token");
        read_token(&path).map_err(|_| {
            CliError::Usage(format!(
                "no management token: give --token-file, CERTGATE_ADMIN_TOKEN or a context, or run where {} exists",
                path.display()
            ))
        })
    }
}
