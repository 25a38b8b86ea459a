//! Vault settings: the system identity (`CERTGATE_VAULT_TOKEN` / `--vault-token-file`), named
//! identities from the config file (`[identities.<id>]`), the refresh interval and the CA file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use certgate_vault::{AuthMethod, Identity};
use serde::Deserialize;
use zeroize::Zeroizing;

use crate::config_error::ConfigError;

/// `[identities.<id>]` in the config file: a token (inline or file) or an AppRole.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityFile {
    token: Option<String>,
    token_file: Option<PathBuf>,
    role_id: Option<String>,
    secret_id: Option<String>,
    secret_id_file: Option<PathBuf>,
    approle_mount: Option<String>,
}

/// The resolved vault settings of a node.
#[derive(Debug, Default)]
pub struct VaultConfig {
    pub identities: Vec<(String, Secret)>,
    pub refresh_interval: Duration,
    pub ca_file: Option<PathBuf>,
}

/// What an identity authenticates with, read from its files at start-up.
pub enum Secret {
    Token(Zeroizing<String>),
    AppRole { mount: String, role_id: String, secret_id: Zeroizing<String> },
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Secret::Token(_) => "Token(<redacted>)",
            Secret::AppRole { .. } => "AppRole(<redacted>)",
        })
    }
}

impl VaultConfig {
    pub fn resolve(
        system_token: Option<Zeroizing<String>>,
        system_token_file: Option<&Path>,
        named: BTreeMap<String, IdentityFile>,
        refresh_interval: Option<&str>,
        ca_file: Option<PathBuf>,
    ) -> Result<Self, ConfigError> {
        let mut identities = Vec::new();
        match (system_token, system_token_file) {
            (Some(token), _) => identities.push((Identity::SYSTEM.to_owned(), Secret::Token(token))),
            (None, Some(file)) => identities.push((Identity::SYSTEM.to_owned(), Secret::Token(read_secret(file)?))),
            (None, None) => {}
        }
        for (id, file) in named {
            if identities.iter().any(|(existing, _)| existing.eq_ignore_ascii_case(&id)) {
                return Err(ConfigError::Identity {
                    id,
                    reason: "configured twice (system comes from CERTGATE_VAULT_TOKEN)".into(),
                });
            }
            let secret = identity_secret(&id, file)?;
            identities.push((id, secret));
        }
        let refresh_interval = match refresh_interval {
            Some(text) => parse_duration(text).ok_or_else(|| ConfigError::Duration(text.to_owned()))?,
            None => Duration::from_secs(4 * 3600),
        };
        Ok(Self { identities, refresh_interval, ca_file })
    }

    pub fn into_identities(self) -> Vec<Identity> {
        self.identities
            .into_iter()
            .map(|(id, secret)| {
                let method = match secret {
                    Secret::Token(token) => AuthMethod::Token(token),
                    Secret::AppRole { mount, role_id, secret_id } => AuthMethod::AppRole { mount, role_id, secret_id },
                };
                Identity::new(id, method)
            })
            .collect()
    }
}

fn identity_secret(id: &str, file: IdentityFile) -> Result<Secret, ConfigError> {
    let fail = |reason: &str| ConfigError::Identity { id: id.to_owned(), reason: reason.to_owned() };
    match file {
        IdentityFile {
            token: Some(token),
            token_file: None,
            role_id: None,
            secret_id: None,
            secret_id_file: None,
            approle_mount: None,
        } => Ok(Secret::Token(Zeroizing::new(token))),
        IdentityFile {
            token: None,
            token_file: Some(path),
            role_id: None,
            secret_id: None,
            secret_id_file: None,
            approle_mount: None,
        } => Ok(Secret::Token(read_secret(&path)?)),
        IdentityFile {
            token: None,
            token_file: None,
            role_id: Some(role_id),
            secret_id,
            secret_id_file,
            approle_mount,
        } => {
            let secret_id = match (secret_id, secret_id_file) {
                (Some(inline), None) => Zeroizing::new(inline),
                (None, Some(path)) => read_secret(&path)?,
                _ => return Err(fail("an AppRole needs exactly one of secret_id or secret_id_file")),
            };
            Ok(Secret::AppRole { mount: approle_mount.unwrap_or_else(|| "approle".into()), role_id, secret_id })
        }
        _ => Err(fail("give token, token_file, or role_id with secret_id / secret_id_file")),
    }
}

fn read_secret(path: &Path) -> Result<Zeroizing<String>, ConfigError> {
    let text = Zeroizing::new(
        std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.into(), source })?,
    );
    Ok(Zeroizing::new(text.trim().to_owned()))
}

/// `90`, `90s`, `15m`, `4h`, `1d`.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let (number, unit) = text.find(|c: char| !c.is_ascii_digit()).map_or((text, ""), |at| text.split_at(at));
    let number: u64 = number.parse().ok()?;
    let seconds = match unit {
        "" | "s" => number,
        "m" => number.checked_mul(60)?,
        "h" => number.checked_mul(3600)?,
        "d" => number.checked_mul(86_400)?,
        _ => return None,
    };
    (seconds > 0).then(|| Duration::from_secs(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1s"), Some(Duration::from_secs(1)));
        assert_eq!(parse_duration("4h"), Some(Duration::from_secs(14_400)));
        assert_eq!(parse_duration("90"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("0s"), None);
        assert_eq!(parse_duration("5x"), None);
    }

    #[test]
    fn identities_need_one_method() {
        let both = IdentityFile { token: Some("t".into()), role_id: Some("r".into()), ..Default::default() };
        assert!(identity_secret("x", both).is_err());
        let approle = IdentityFile { role_id: Some("r".into()), secret_id: Some("s".into()), ..Default::default() };
        assert!(matches!(identity_secret("x", approle), Ok(Secret::AppRole { .. })));
    }
}
