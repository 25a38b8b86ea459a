use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use certgate_model::LastStatusCode;
use certgate_pki::{ImportedCertificate, import_pem, import_pkcs12_base64};
use serde_json::Value;
use zeroize::Zeroizing;

use crate::identity::{RENEWAL_RETRY, relogin_at};
use crate::reference::ReferenceKind;
use crate::{AuthMethod, Identity, SecretFolder, SecretReference};

/// One key of a KV folder: a secret, or a subfolder (`name` ends with `/`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FolderEntry {
    pub name: String,
    /// The secret identifier to reference it with (or to browse further, for a folder).
    pub identifier: String,
}

impl FolderEntry {
    pub fn is_folder(&self) -> bool {
        self.name.ends_with('/')
    }
}

/// A certificate read from the vault, validated (parses, key matches) before anyone uses it.
#[derive(Debug)]
pub struct SecretMaterial {
    /// The KV version that was read.
    pub version: Option<u64>,
    pub certificate: ImportedCertificate,
}

/// Why a read failed, as `lastStatus` reports it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code:?}: {message}")]
pub struct ReadFailure {
    pub code: LastStatusCode,
    pub message: String,
}

impl SecretMaterial {
    /// The `lastStatus` of the read that produced this material.
    pub fn success_status(&self) -> certgate_model::LastStatus {
        let message = match self.version {
            Some(version) => format!("read version {version}"),
            None => format!("issued; valid until {}", certgate_pki::format_utc(self.certificate.not_after)),
        };
        certgate_model::LastStatus { code: LastStatusCode::Success, message, time: certgate_model::unix_now() }
    }
}

impl ReadFailure {
    fn new(code: LastStatusCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }
}

/// Where certificate material is read from: the seam between the refresh logic and a secret
/// manager. [`VaultClient`] serves OpenBao / HashiCorp Vault (KV v2 and PKI).
#[async_trait::async_trait]
pub trait SecretSource: Send + Sync {
    /// Reads and validates the certificate `reference` points at, as `identity` (absent = system).
    async fn read(&self, identity: Option<&str>, reference: &SecretReference) -> Result<SecretMaterial, ReadFailure>;
}

#[async_trait::async_trait]
impl SecretSource for VaultClient {
    async fn read(&self, identity: Option<&str>, reference: &SecretReference) -> Result<SecretMaterial, ReadFailure> {
        VaultClient::read(self, identity, reference).await
    }
}

/// Reads certificates from OpenBao / HashiCorp Vault with the configured identities.
pub struct VaultClient {
    http: reqwest::Client,
    identities: HashMap<String, Arc<Identity>>,
}

const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

impl VaultClient {
    /// `ca_pem` adds a private CA for vaults served over TLS.
    pub fn new(identities: Vec<Identity>, ca_pem: Option<&[u8]>) -> Result<Self, String> {
        let mut builder = reqwest::Client::builder().timeout(REQUEST_TIMEOUT).connect_timeout(Duration::from_secs(5));
        if let Some(pem) = ca_pem {
            for certificate in reqwest::Certificate::from_pem_bundle(pem).map_err(|e| format!("vault CA file: {e}"))? {
                builder = builder.add_root_certificate(certificate);
            }
        }
        let http = builder.build().map_err(|e| format!("cannot build the vault HTTP client: {e}"))?;
        let identities = identities.into_iter().map(|i| (i.id.to_lowercase(), Arc::new(i))).collect();
        Ok(Self { http, identities })
    }

    /// The configured identities (for `GET /identities`), system first.
    pub fn identities(&self) -> Vec<(&str, &'static str)> {
        let mut list: Vec<(&str, &'static str)> =
            self.identities.values().map(|i| (i.id.as_str(), i.method.name())).collect();
        list.sort_by_key(|(id, _)| (*id != Identity::SYSTEM, id.to_lowercase()));
        list
    }

    pub fn has_identity(&self, id: Option<&str>) -> bool {
        self.identities.contains_key(&id.unwrap_or(Identity::SYSTEM).to_lowercase())
    }

    /// Reads and validates the certificate `reference` points at, as `identity` (absent = system).
    pub async fn read(
        &self,
        identity: Option<&str>,
        reference: &SecretReference,
    ) -> Result<SecretMaterial, ReadFailure> {
        let identity = self.identity(identity)?;
        self.retrying_login(identity, &reference.server, || self.read_once(identity, reference)).await
    }

    /// The identity named `name` (absent = system).
    fn identity(&self, name: Option<&str>) -> Result<&Identity, ReadFailure> {
        let name = name.unwrap_or(Identity::SYSTEM);
        self.identities.get(&name.to_lowercase()).map(|identity| identity.as_ref()).ok_or_else(|| {
            ReadFailure::new(LastStatusCode::Forbidden, format!("identity '{name}' is not configured on this node"))
        })
    }

    /// Runs `attempt`; when an AppRole identity's token was refused (revoked, or expired before
    /// its lease said), logs in to `server` again and runs it once more.
    async fn retrying_login<T, Attempt>(
        &self,
        identity: &Identity,
        server: &str,
        attempt: impl Fn() -> Attempt,
    ) -> Result<T, ReadFailure>
    where
        Attempt: std::future::Future<Output = Result<T, ReadFailure>>,
    {
        match attempt().await {
            Err(failure)
                if failure.code == LastStatusCode::Forbidden
                    && matches!(identity.method, AuthMethod::AppRole { .. }) =>
            {
                identity.session.lock().await.remove(server);
                attempt().await
            }
            other => other,
        }
    }

    /// Lists the keys of a KV v2 folder as `identity` (absent = system), which needs the `list`
    /// capability on `<mount>/metadata/<path>`. An empty or missing folder lists nothing.
    pub async fn list(&self, identity: Option<&str>, folder: &SecretFolder) -> Result<Vec<FolderEntry>, ReadFailure> {
        let identity = self.identity(identity)?;
        self.retrying_login(identity, &folder.server, || self.list_once(identity, folder)).await
    }

    async fn list_once(&self, identity: &Identity, folder: &SecretFolder) -> Result<Vec<FolderEntry>, ReadFailure> {
        let token = self.token(identity, &folder.server).await?;
        let response =
            self.http.get(folder.list_url()).header("X-Vault-Token", token.as_str()).send().await.map_err(|e| {
                ReadFailure::new(
                    LastStatusCode::VaultUnreachable,
                    format!("cannot reach {}: {}", folder.server, certgate_model::error_chain(&e)),
                )
            })?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        match status.as_u16() {
            200 => {
                let keys = body["data"]["keys"].as_array().into_iter().flatten().filter_map(Value::as_str);
                Ok(keys
                    .map(|key| FolderEntry { name: key.to_owned(), identifier: folder.identifier_of(key) })
                    .collect())
            }
            404 => Ok(Vec::new()),
            401 | 403 => Err(ReadFailure::new(
                LastStatusCode::Forbidden,
                format!(
                    "identity '{}' may not list {folder}: {} (its policy needs the list capability on {}/metadata/{}*)",
                    identity.id,
                    vault_errors(&body, "permission denied"),
                    folder.mount,
                    folder.path
                ),
            )),
            code => Err(ReadFailure::new(
                LastStatusCode::VaultUnreachable,
                format!("the vault answered {code}: {}", vault_errors(&body, "no details")),
            )),
        }
    }

    async fn read_once(&self, identity: &Identity, reference: &SecretReference) -> Result<SecretMaterial, ReadFailure> {
        let token = self.token(identity, &reference.server).await?;
        let request = match &reference.kind {
            ReferenceKind::Kv { .. } => self.http.get(reference.read_url()),
            ReferenceKind::PkiIssue { params } => {
                let mut body: serde_json::Map<String, Value> =
                    params.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect();
                body.insert("private_key_format".into(), Value::String("pkcs8".into()));
                self.http.post(reference.read_url()).json(&body)
            }
        };
        let response = request.header("X-Vault-Token", token.as_str()).send().await.map_err(|e| {
            ReadFailure::new(
                LastStatusCode::VaultUnreachable,
                format!("cannot reach {}: {}", reference.server, certgate_model::error_chain(&e)),
            )
        })?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if status.is_success() {
            self.renew_token(identity, &reference.server, &token).await;
        }
        match status.as_u16() {
            200 if reference.is_pki() => parse_issued(&body),
            200 => parse_secret(&body),
            400 if reference.is_pki() => Err(ReadFailure::new(
                LastStatusCode::InvalidSecret,
                format!("the PKI role refused to issue: {}", vault_errors(&body, "no details")),
            )),
            401 | 403 => Err(ReadFailure::new(
                LastStatusCode::Forbidden,
                format!(
                    "identity '{}' may not read {reference}: {}",
                    identity.id,
                    vault_errors(&body, "permission denied")
                ),
            )),
            404 => Err(ReadFailure::new(LastStatusCode::SecretNotFound, format!("no secret at {reference}"))),
            code => Err(ReadFailure::new(
                LastStatusCode::VaultUnreachable,
                format!("the vault answered {code}: {}", vault_errors(&body, "no details")),
            )),
        }
    }

    /// Keeps a token alive while it is used: `renew-self` on first use and then at half of the
    /// lease it returns. Tokens that cannot be renewed (root, non-renewable) are retried hourly.
    async fn renew_token(&self, identity: &Identity, server: &str, token: &str) {
        if !matches!(identity.method, AuthMethod::Token(_)) {
            return;
        }
        let mut renew_at = identity.renew_at.lock().await;
        if renew_at.get(server).is_some_and(|at| Instant::now() < *at) {
            return;
        }
        let url = format!("{server}/v1/auth/token/renew-self");
        let reply = self.http.post(url).header("X-Vault-Token", token).json(&serde_json::json!({})).send().await;
        let next = match reply {
            Ok(r) if r.status().is_success() => {
                let body: Value = r.json().await.unwrap_or(Value::Null);
                match body["auth"]["lease_duration"].as_u64().filter(|s| *s > 0) {
                    Some(ttl) => {
                        tracing::debug!(identity = %identity.id, ttl, "vault token renewed");
                        // Renewal rides on reads, which come once per refresh interval (jittered):
                        // at half the lease the next read still finds the token alive when the
                        // interval is close to the lease (two thirds left only a sixth of it).
                        Instant::now() + Duration::from_secs(ttl) / 2
                    }
                    None => Instant::now() + RENEWAL_RETRY,
                }
            }
            Ok(r) => {
                tracing::debug!(identity = %identity.id, status = %r.status(), "vault token not renewable");
                Instant::now() + RENEWAL_RETRY
            }
            Err(e) => {
                tracing::debug!(identity = %identity.id, error = %e, "vault token renewal failed");
                Instant::now() + Duration::from_secs(5)
            }
        };
        renew_at.insert(server.to_owned(), next);
    }

    async fn token(&self, identity: &Identity, server: &str) -> Result<Zeroizing<String>, ReadFailure> {
        let (mount, role_id, secret_id) = match &identity.method {
            AuthMethod::Token(token) => return Ok(token.clone()),
            AuthMethod::AppRole { mount, role_id, secret_id } => (mount, role_id, secret_id),
        };
        let mut session = identity.session.lock().await;
        if let Some((token, renew_at)) = session.get(server)
            && Instant::now() < *renew_at
        {
            return Ok(token.clone());
        }
        let response = self
            .http
            .post(format!("{server}/v1/auth/{mount}/login"))
            .json(&serde_json::json!({"role_id": role_id, "secret_id": secret_id.as_str()}))
            .send()
            .await
            .map_err(|e| {
                ReadFailure::new(
                    LastStatusCode::VaultUnreachable,
                    format!("cannot reach {server}: {}", certgate_model::error_chain(&e)),
                )
            })?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            return Err(ReadFailure::new(
                LastStatusCode::Forbidden,
                format!(
                    "AppRole login of identity '{}' failed ({status}): {}",
                    identity.id,
                    vault_errors(&body, "no details")
                ),
            ));
        }
        let token = body["auth"]["client_token"]
            .as_str()
            .map(|t| Zeroizing::new(t.to_owned()))
            .ok_or_else(|| ReadFailure::new(LastStatusCode::Forbidden, "AppRole login returned no token"))?;
        let ttl = Duration::from_secs(body["auth"]["lease_duration"].as_u64().unwrap_or(60).max(1));
        session.insert(server.to_owned(), (token.clone(), relogin_at(ttl)));
        Ok(token)
    }
}

/// The decoders of a vault's answers, for the fuzz entry points.
#[cfg(feature = "fuzzing")]
pub(crate) mod fuzzing {
    pub(crate) use super::{parse_issued, parse_secret};
}

/// `{"data": {"data": {...}, "metadata": {"version": N}}}` with either `pfx` (+ `password`) or
/// `certificate` + `private_key` (+ `ca_chain`).
pub(crate) fn parse_secret(body: &Value) -> Result<SecretMaterial, ReadFailure> {
    let invalid = |message: String| ReadFailure::new(LastStatusCode::InvalidSecret, message);
    let data = &body["data"]["data"];
    let version = body["data"]["metadata"]["version"].as_u64();
    let certificate = if let Some(pfx) = data["pfx"].as_str() {
        let password = data["password"].as_str().unwrap_or("");
        import_pkcs12_base64(pfx, password).map_err(|e| invalid(format!("'pfx': {e}")))?
    } else if let (Some(certificate), Some(key)) = (data["certificate"].as_str(), data["private_key"].as_str()) {
        let mut chain = certificate.to_owned();
        match &data["ca_chain"] {
            Value::String(pem) => chain.push_str(&format!("\n{pem}")),
            Value::Array(pems) => {
                pems.iter().filter_map(Value::as_str).for_each(|pem| chain.push_str(&format!("\n{pem}")))
            }
            _ => {}
        }
        import_pem(&chain, key).map_err(|e| invalid(format!("'certificate'/'private_key': {e}")))?
    } else {
        return Err(invalid("the secret holds neither 'pfx' nor 'certificate' + 'private_key'".into()));
    };
    Ok(SecretMaterial { version, certificate })
}

/// A PKI issue response: `certificate`, `private_key` (PKCS#8, as requested), `ca_chain`.
pub(crate) fn parse_issued(body: &Value) -> Result<SecretMaterial, ReadFailure> {
    let data = &body["data"];
    let (Some(certificate), Some(key)) = (data["certificate"].as_str(), data["private_key"].as_str()) else {
        return Err(ReadFailure::new(LastStatusCode::InvalidSecret, "the PKI response holds no certificate and key"));
    };
    let mut chain = certificate.to_owned();
    for pem in data["ca_chain"].as_array().into_iter().flatten().filter_map(Value::as_str) {
        chain.push('\n');
        chain.push_str(pem);
    }
    let certificate = import_pem(&chain, key)
        .map_err(|e| ReadFailure::new(LastStatusCode::InvalidSecret, format!("issued certificate: {e}")))?;
    Ok(SecretMaterial { version: None, certificate })
}

fn vault_errors(body: &Value, default: &str) -> String {
    let errors: Vec<&str> =
        body["errors"].as_array().map(|e| e.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
    if errors.is_empty() { default.to_owned() } else { errors.join("; ") }
}
