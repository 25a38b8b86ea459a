use std::fmt;

/// A certificate in a vault: a KV v2 secret, `http(s)://host:port/v1/<mount>/data/<path>[?version=N]`,
/// or a PKI issue endpoint, `http(s)://host:port/v1/<pki>/issue/<role>?common_name=…&ttl=…`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretReference {
    /// `scheme://host:port` of the vault.
    pub server: String,
    pub mount: String,
    /// The secret path (KV) or the role (PKI).
    pub path: String,
    pub kind: ReferenceKind,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReferenceKind {
    /// A KV v2 secret; a pinned version never rotates.
    Kv { version: Option<u64> },
    /// Vault PKI: every read issues a fresh certificate with these parameters.
    PkiIssue { params: Vec<(String, String)> },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{identifier}' is not a KV v2 secret URL (https://host:8200/v1/<mount>/data/<path>[?version=N]): {reason}")]
pub struct ReferenceError {
    identifier: String,
    reason: &'static str,
}

impl SecretReference {
    pub fn parse(identifier: &str) -> Result<Self, ReferenceError> {
        let fail = |reason| ReferenceError { identifier: identifier.to_owned(), reason };
        let (scheme, rest) = identifier.split_once("://").ok_or_else(|| fail("no scheme"))?;
        if scheme != "http" && scheme != "https" {
            return Err(fail("the scheme must be http or https"));
        }
        let (authority, rest) = rest.split_once('/').ok_or_else(|| fail("no path"))?;
        if authority.is_empty() || authority.contains('@') {
            return Err(fail("no host, or credentials in the URL"));
        }
        let (path, query) = match rest.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (rest, None),
        };
        let rest = path.strip_prefix("v1/").ok_or_else(|| fail("the path must start with /v1/"))?;
        let server = format!("{scheme}://{authority}");
        if let Some((mount, role)) = rest.split_once("/issue/") {
            if mount.is_empty() || role.is_empty() || role.contains('/') {
                return Err(fail("a PKI reference is /v1/<pki mount>/issue/<role>"));
            }
            let params: Vec<(String, String)> = query
                .unwrap_or_default()
                .split('&')
                .filter(|p| !p.is_empty())
                .map(|pair| {
                    let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                    (percent_decode(k), percent_decode(v))
                })
                .collect();
            if !params.iter().any(|(k, v)| k == "common_name" && !v.is_empty()) {
                return Err(fail("a PKI reference needs ?common_name=…"));
            }
            return Ok(Self {
                server,
                mount: mount.to_owned(),
                path: role.to_owned(),
                kind: ReferenceKind::PkiIssue { params },
            });
        }
        let version = match query {
            None | Some("") => None,
            Some(query) => match query.strip_prefix("version=").map(str::parse::<u64>) {
                Some(Ok(version)) if version > 0 => Some(version),
                _ => return Err(fail("the only query parameter allowed is version=N (N ≥ 1)")),
            },
        };
        let (mount, secret) =
            rest.split_once("/data/").ok_or_else(|| fail("the path must contain /data/ (KV v2) or /issue/ (PKI)"))?;
        let secret = secret.trim_end_matches('/');
        if mount.is_empty() || secret.is_empty() || secret.split('/').any(|s| s.is_empty() || s == "." || s == "..") {
            return Err(fail("empty or relative mount or secret path"));
        }
        Ok(Self { server, mount: mount.to_owned(), path: secret.to_owned(), kind: ReferenceKind::Kv { version } })
    }

    pub fn is_pinned(&self) -> bool {
        matches!(self.kind, ReferenceKind::Kv { version: Some(_) })
    }

    pub fn is_pki(&self) -> bool {
        matches!(self.kind, ReferenceKind::PkiIssue { .. })
    }

    pub(crate) fn read_url(&self) -> String {
        match &self.kind {
            ReferenceKind::Kv { version: None } => format!("{}/v1/{}/data/{}", self.server, self.mount, self.path),
            ReferenceKind::Kv { version: Some(v) } => {
                format!("{}/v1/{}/data/{}?version={v}", self.server, self.mount, self.path)
            }
            ReferenceKind::PkiIssue { .. } => format!("{}/v1/{}/issue/{}", self.server, self.mount, self.path),
        }
    }
}

impl fmt::Display for SecretReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.read_url())
    }
}

/// Query-string decoding: `+` is a space, `%XX` a byte; anything malformed stays as written.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let decoded = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match (bytes[i], decoded) {
            (_, Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (b'+', None) => {
                out.push(b' ');
                i += 1;
            }
            (byte, None) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_version_less_and_pinned_references() {
        let reference =
            SecretReference::parse("https://vault.contoso.com:8200/v1/secret/data/gateway/orders-client").unwrap();
        assert_eq!(reference.server, "https://vault.contoso.com:8200");
        assert_eq!((reference.mount.as_str(), reference.path.as_str()), ("secret", "gateway/orders-client"));
        assert_eq!(reference.kind, ReferenceKind::Kv { version: None });
        let pinned = SecretReference::parse("http://127.0.0.1:8200/v1/kv/data/c?version=3").unwrap();
        assert!(pinned.is_pinned());
        assert_eq!(pinned.to_string(), "http://127.0.0.1:8200/v1/kv/data/c?version=3");
    }

    #[test]
    fn parses_pki_issue_endpoints() {
        let reference = SecretReference::parse(
            "https://v:8200/v1/pki/issue/gateway?common_name=gw.contoso.com&ttl=30s&alt_names=a%2Cb",
        )
        .unwrap();
        assert_eq!((reference.mount.as_str(), reference.path.as_str()), ("pki", "gateway"));
        let ReferenceKind::PkiIssue { params } = &reference.kind else { panic!("not PKI") };
        assert_eq!(params[0], ("common_name".into(), "gw.contoso.com".into()));
        assert_eq!(params[2], ("alt_names".into(), "a,b".into()));
        assert!(reference.is_pki() && !reference.is_pinned());
        assert!(SecretReference::parse("https://v/v1/pki/issue/gateway?ttl=30s").is_err(), "common_name is required");
    }

    #[test]
    fn rejects_what_is_not_a_kv_v2_read_url() {
        for bad in [
            "vault.contoso.com/v1/secret/data/x",
            "ftp://v/v1/secret/data/x",
            "https://v/secret/data/x",
            "https://v/v1/secret/x",
            "https://v/v1/secret/data/",
            "https://v/v1/secret/data/a/../b",
            "https://v/v1/secret/data/x?version=0",
            "https://v/v1/secret/data/x?foo=1",
            "https://user:pw@v/v1/secret/data/x",
        ] {
            assert!(SecretReference::parse(bad).is_err(), "{bad}");
        }
    }
}
