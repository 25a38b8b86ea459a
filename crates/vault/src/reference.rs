use std::fmt;

/// A KV v2 secret: `http(s)://host:port/v1/<mount>/data/<path>[?version=N]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretReference {
    /// `scheme://host:port` of the vault.
    pub server: String,
    pub mount: String,
    pub path: String,
    /// A pinned version never rotates.
    pub version: Option<u64>,
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
        let version = match query {
            None | Some("") => None,
            Some(query) => match query.strip_prefix("version=").map(str::parse::<u64>) {
                Some(Ok(version)) if version > 0 => Some(version),
                _ => return Err(fail("the only query parameter allowed is version=N (N ≥ 1)")),
            },
        };
        let rest = path.strip_prefix("v1/").ok_or_else(|| fail("the path must start with /v1/"))?;
        let (mount, secret) =
            rest.split_once("/data/").ok_or_else(|| fail("the path must contain /data/ after the mount"))?;
        let secret = secret.trim_end_matches('/');
        if mount.is_empty() || secret.is_empty() || secret.split('/').any(|s| s.is_empty() || s == "." || s == "..") {
            return Err(fail("empty or relative mount or secret path"));
        }
        Ok(Self {
            server: format!("{scheme}://{authority}"),
            mount: mount.to_owned(),
            path: secret.to_owned(),
            version,
        })
    }

    pub fn is_pinned(&self) -> bool {
        self.version.is_some()
    }

    pub(crate) fn read_url(&self) -> String {
        let mut url = format!("{}/v1/{}/data/{}", self.server, self.mount, self.path);
        if let Some(version) = self.version {
            url.push_str(&format!("?version={version}"));
        }
        url
    }
}

impl fmt::Display for SecretReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.read_url())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_version_less_and_pinned_references() {
        let reference =
            SecretReference::parse("https://vault.contoso.com:8200/v1/secret/data/gateway/orders-client").unwrap();
        assert_eq!(reference.server, "https://vault.contoso.com:8200");
        assert_eq!(
            (reference.mount.as_str(), reference.path.as_str(), reference.version),
            ("secret", "gateway/orders-client", None)
        );
        let pinned = SecretReference::parse("http://127.0.0.1:8200/v1/kv/data/c?version=3").unwrap();
        assert!(pinned.is_pinned());
        assert_eq!(pinned.to_string(), "http://127.0.0.1:8200/v1/kv/data/c?version=3");
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
