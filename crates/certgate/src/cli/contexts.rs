//! Named contexts, like `New-AzApiManagementContext`: a management URL with its token (and
//! the CA that signed its HTTPS certificate), kept in `contexts.toml` in the user's config
//! directory (`$CERTGATE_CONFIG_DIR`, else `$XDG_CONFIG_HOME/certgate`, else
//! `~/.config/certgate`), written with mode 0600 because it holds tokens.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use reqwest::Url;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::CliError;
use super::secrets::{read_token, secret_from_stdin};

#[derive(Subcommand)]
pub enum ContextCommand {
    /// Adds (or replaces) a context; the first one becomes the current one.
    Add(AddContext),
    /// Makes a context the current one.
    Use { name: String },
    /// Lists the contexts; `*` marks the current one.
    List,
    /// Deletes a context.
    Delete { name: String },
}

#[derive(Args)]
#[command(group(clap::ArgGroup::new("token").required(true).args(["token_file", "token_stdin"])))]
pub struct AddContext {
    name: String,
    #[arg(long)]
    admin_url: Url,
    /// Read the token from this file (it is copied into the context)
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// Read the token from the first line of standard input
    #[arg(long)]
    token_stdin: bool,
    /// PEM file of the CA that signed the node's HTTPS certificate
    #[arg(long)]
    ca_file: Option<PathBuf>,
}

#[derive(Clone)]
pub(super) struct Context {
    pub admin_url: Url,
    pub token: Option<Zeroizing<String>>,
    pub ca_file: Option<PathBuf>,
}

/// The file's form.
#[derive(Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ContextsFile {
    current: Option<String>,
    #[serde(default)]
    contexts: BTreeMap<String, ContextEntry>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ContextEntry {
    admin_url: String,
    token: Option<Zeroizing<String>>,
    ca_file: Option<PathBuf>,
}

pub(super) struct Contexts {
    file: ContextsFile,
}

impl Contexts {
    fn path() -> Result<PathBuf, CliError> {
        let dir = std::env::var_os("CERTGATE_CONFIG_DIR")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("XDG_CONFIG_HOME").map(|d| PathBuf::from(d).join("certgate")))
            .or_else(|| std::env::var_os("HOME").map(|d| PathBuf::from(d).join(".config/certgate")))
            .ok_or_else(|| CliError::Usage("no config directory: set CERTGATE_CONFIG_DIR or HOME".into()))?;
        Ok(dir.join("contexts.toml"))
    }

    pub(super) fn load() -> Result<Self, CliError> {
        let path = Self::path()?;
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => Zeroizing::new(text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self { file: ContextsFile::default() }),
            Err(e) => return Err(CliError::Usage(format!("cannot read {}: {e}", path.display()))),
        };
        let file = toml::from_str(&text)
            .map_err(|e| CliError::Usage(format!("{} is not a contexts file: {}", path.display(), e.message())))?;
        Ok(Self { file })
    }

    fn save(&self) -> Result<(), CliError> {
        let path = Self::path()?;
        let failed = |e: std::io::Error| CliError::Usage(format!("cannot write {}: {e}", path.display()));
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(failed)?;
        }
        let text = Zeroizing::new(
            toml::to_string(&self.file).map_err(|e| CliError::Usage(format!("cannot encode the contexts: {e}")))?,
        );
        // Written beside and renamed over, so a crash leaves the old file or the new one.
        let temporary = path.with_extension("toml.tmp");
        {
            use std::os::unix::fs::OpenOptionsExt;
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&temporary)
                .map_err(failed)?;
            file.write_all(text.as_bytes()).map_err(failed)?;
            file.sync_all().map_err(failed)?;
        }
        std::fs::rename(&temporary, &path).map_err(failed)
    }

    pub(super) fn get(&self, name: &str) -> Option<Context> {
        let entry = self.file.contexts.get(name)?;
        Some(Context {
            admin_url: Url::parse(&entry.admin_url).ok()?,
            token: entry.token.clone(),
            ca_file: entry.ca_file.clone(),
        })
    }

    pub(super) fn current(&self) -> Option<Context> {
        self.get(self.file.current.as_deref()?)
    }
}

pub(super) fn run(command: ContextCommand) -> Result<(), CliError> {
    let mut contexts = Contexts::load()?;
    let missing = |name: &str| CliError::Usage(format!("no context named {name:?}"));
    match command {
        ContextCommand::Add(add) => {
            let token = match (&add.token_file, add.token_stdin) {
                (Some(path), _) => read_token(path)?,
                (None, _) => token_from_stdin()?,
            };
            let entry = ContextEntry { admin_url: add.admin_url.to_string(), token: Some(token), ca_file: add.ca_file };
            contexts.file.contexts.insert(add.name.clone(), entry);
            if contexts.file.current.is_none() {
                contexts.file.current = Some(add.name);
            }
            contexts.save()
        }
        ContextCommand::Use { name } => {
            if !contexts.file.contexts.contains_key(&name) {
                return Err(missing(&name));
            }
            contexts.file.current = Some(name);
            contexts.save()
        }
        ContextCommand::List => {
            let rows = contexts.file.contexts.iter().map(|(name, entry)| {
                let current = if contexts.file.current.as_deref() == Some(name) { "*" } else { "" };
                vec![current.to_owned(), name.clone(), entry.admin_url.clone()]
            });
            super::output::print_table(&["CURRENT", "NAME", "ADMIN URL"], rows.collect());
            Ok(())
        }
        ContextCommand::Delete { name } => {
            contexts.file.contexts.remove(&name).ok_or_else(|| missing(&name))?;
            if contexts.file.current.as_deref() == Some(name.as_str()) {
                contexts.file.current = None;
            }
            contexts.save()
        }
    }
}

fn token_from_stdin() -> Result<Zeroizing<String>, CliError> {
    let token = secret_from_stdin("token")?;
    if token.trim().is_empty() {
        return Err(CliError::Usage("no token on standard input".into()));
    }
    Ok(Zeroizing::new(token.trim().to_owned()))
}
