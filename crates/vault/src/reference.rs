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
    /// Parses the identifier once, with the `url` crate (the same parser the HTTP client reads
    /// the URL with), so what is stored is what is read.
    pub fn parse(identifier: &str) -> Result<Self, ReferenceError> {
        let fail = |reason| ReferenceError { identifier: identifier.to_owned(), reason };
        let url = url::Url::parse(identifier).map_err(|_| fail("not an absolute URL"))?;
        if url.scheme() != "http" && url.scheme() != "https" {
            return Err(fail("the scheme must be http or https"));
        }
        // A host of dots only (`http://./…`) names no server.
        let no_host = url.host_str().is_none_or(|host| host.trim_matches('.').is_empty());
        if no_host || !url.username().is_empty() || url.password().is_some() {
            return Err(fail("no host, or credentials in the URL"));
        }
        if url.fragment().is_some() {
            return Err(fail("a URL fragment (#…) is not part of a secret's path"));
        }
        // `url` resolves `.` and `..` segments; a reference that needs resolving is refused.
        let relative =
            |segment: &str| matches!(&*percent_encoding::percent_decode_str(segment).decode_utf8_lossy(), "." | "..");
        if raw_path(identifier).split(['/', '\\']).any(relative) {
            return Err(fail("empty or relative mount or secret path"));
        }
        let server = url[..url::Position::BeforePath].to_owned();
        let segments: Vec<&str> = url.path_segments().map(Iterator::collect).unwrap_or_default();
        let rest = match segments.split_first() {
            Some((&"v1", rest)) => rest,
            _ => return Err(fail("the path must start with /v1/")),
        };
        // The first `data` (KV v2) or `issue` (PKI) segment after the mount splits the path.
        let split = rest.iter().skip(1).position(|s| *s == "data" || *s == "issue").map(|i| i + 1);
        let Some(split) = split else {
            return Err(fail("the path must contain /data/ (KV v2) or /issue/ (PKI)"));
        };
        let mount = rest[..split].join("/");
        let (kind_segment, tail) = (rest[split], &rest[split + 1..]);
        let tail: Vec<&str> = match tail.split_last() {
            // A trailing `/` leaves an empty last segment.
            Some((&"", init)) => init.to_vec(),
            _ => tail.to_vec(),
        };
        if mount.split('/').any(str::is_empty) || tail.is_empty() || tail.iter().any(|s| s.is_empty()) {
            return Err(fail("empty or relative mount or secret path"));
        }
        let params: Vec<(String, String)> = url.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
        if kind_segment == "issue" {
            if tail.len() != 1 {
                return Err(fail("a PKI reference is /v1/<pki mount>/issue/<role>"));
            }
            if !params.iter().any(|(k, v)| k == "common_name" && !v.is_empty()) {
                return Err(fail("a PKI reference needs ?common_name=…"));
            }
            return Ok(Self { server, mount, path: tail[0].to_owned(), kind: ReferenceKind::PkiIssue { params } });
        }
        let version = match params.as_slice() {
            [] => None,
            [(key, value)] if key == "version" => match value.parse::<u64>() {
                Ok(version) if version > 0 => Some(version),
                _ => return Err(fail("the only query parameter allowed is version=N (N ≥ 1)")),
            },
            _ => return Err(fail("the only query parameter allowed is version=N (N ≥ 1)")),
        };
        Ok(Self { server, mount, path: tail.join("/"), kind: ReferenceKind::Kv { version } })
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

/// The path of `identifier` as typed, before `url` resolves it: what follows the authority, up
/// to the query or fragment. (For http and https, `url` reads `\\` as `/` and needs no `//`.)
fn raw_path(identifier: &str) -> &str {
    let after_scheme = identifier.split_once(':').map_or(identifier, |(_, rest)| rest);
    let authority_and_path = after_scheme.trim_start_matches(['/', '\\']);
    let path = authority_and_path.find(['/', '\\']).map_or("", |start| &authority_and_path[start..]);
    path.split(['?', '#']).next().unwrap_or_default()
}

/// A KV v2 folder to browse: `http(s)://host:port/v1/<mount>/[data/[<path>/]]`. The identifier of
/// a secret in it is `…/v1/<mount>/data/<path><name>`, which [`SecretReference::parse`] accepts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretFolder {
    pub server: String,
    pub mount: String,
    /// Empty for the mount's top level, else ends with `/`.
    pub path: String,
}

impl SecretFolder {
    /// Everything up to the last `/` of a (possibly half-typed) secret identifier names a folder,
    /// so a user can type `https://vault:8200/v1/secret/` or the identifier of a sibling secret.
    pub fn parse(location: &str) -> Result<Self, ReferenceError> {
        let fail = |reason| ReferenceError { identifier: location.to_owned(), reason };
        let url = url::Url::parse(location).map_err(|_| fail("not an absolute URL"))?;
        if (url.scheme() != "http" && url.scheme() != "https") || url.host_str().is_none_or(str::is_empty) {
            return Err(fail("the scheme must be http or https, with a host"));
        }
        let server = url[..url::Position::BeforePath].to_owned();
        let mut segments: Vec<&str> = url.path_segments().map(Iterator::collect).unwrap_or_default();
        segments.pop(); // the part after the last `/`: a secret's name, or empty
        let rest = match segments.split_first() {
            Some((&"v1", rest)) if !rest.is_empty() => rest,
            _ => return Err(fail("the path must start with /v1/<mount>/")),
        };
        let split = rest.iter().skip(1).position(|s| *s == "data").map_or(rest.len(), |i| i + 1);
        let mount = rest[..split].join("/");
        let path: String = rest.get(split + 1..).unwrap_or_default().iter().map(|s| format!("{s}/")).collect();
        if mount.split('/').any(str::is_empty) || path.split('/').rev().skip(1).any(|s| s.is_empty() || s == "..") {
            return Err(fail("empty or relative mount or secret path"));
        }
        Ok(Self { server, mount, path })
    }

    /// The identifier of an entry of this folder (a secret, or a subfolder when `name` ends with `/`).
    pub fn identifier_of(&self, name: &str) -> String {
        format!("{}/v1/{}/data/{}{name}", self.server, self.mount, self.path)
    }

    pub(crate) fn list_url(&self) -> String {
        format!("{}/v1/{}/metadata/{}?list=true", self.server, self.mount, self.path)
    }
}

impl fmt::Display for SecretFolder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.identifier_of(""))
    }
}

/// The reference as an identifier that parses back to it: the read URL, and a PKI reference's
/// issue parameters as its query (they are sent in the request body, not the URL).
impl fmt::Display for SecretReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.read_url())?;
        if let ReferenceKind::PkiIssue { params } = &self.kind {
            let query: String = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(params).finish();
            write!(f, "?{query}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_segments_are_looked_for_in_the_path_only() {
        // Found by the vault_reference fuzz target: a host `.` was read as a relative path
        // segment after printing, not before; a host of dots is now no host at all.
        for identifier in ["http:./v1/secret/data/gw/a", "http://./v1/secret/data/gw/a", "http://../v1/secret/data/a"] {
            let refused = SecretReference::parse(identifier).unwrap_err();
            assert!(refused.reason.contains("no host"), "{identifier}: {refused:?}");
        }
        assert!(SecretReference::parse("https://vault.test/v1/secret/data/gw/../a").is_err());
        assert!(SecretReference::parse("https://vault.test\\v1\\secret\\data\\gw\\%2e%2e\\a").is_err());
        assert!(SecretReference::parse("https://vault.test/v1/secret/data/gw/a.b").is_ok());
    }

    #[test]
    fn a_pki_reference_prints_with_its_issue_parameters() {
        // Found by the vault_reference fuzz target: the parameters were dropped.
        let identifier = "https://vault.test/v1/pki/issue/gateway?common_name=gw.contoso.test&ttl=24h";
        let reference = SecretReference::parse(identifier).unwrap();
        assert_eq!(reference.to_string(), identifier);
        assert_eq!(SecretReference::parse(&reference.to_string()).unwrap(), reference);
    }

    #[test]
    fn a_folder_is_what_precedes_the_last_slash() {
        let folder = SecretFolder::parse("http://127.0.0.1:8200/v1/secret/data/team/half-typed").unwrap();
        assert_eq!((folder.mount.as_str(), folder.path.as_str()), ("secret", "team/"));
        assert_eq!(folder.list_url(), "http://127.0.0.1:8200/v1/secret/metadata/team/?list=true");
        assert_eq!(folder.identifier_of("c1"), "http://127.0.0.1:8200/v1/secret/data/team/c1");
        let top = SecretFolder::parse("https://v:8200/v1/kv/").unwrap();
        assert_eq!((top.mount.as_str(), top.path.as_str()), ("kv", ""));
        assert_eq!(SecretFolder::parse("https://v:8200/v1/kv/data/").unwrap().path, "");
        SecretReference::parse(&top.identifier_of("x")).unwrap();
        assert!(SecretFolder::parse("https://v:8200/v1/").is_err());
        assert!(SecretFolder::parse("https://v:8200/secret/").is_err());
    }

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
    fn what_is_stored_is_what_the_http_client_reads() {
        // A secret named `issue` under a KV mount is a KV secret, not a PKI endpoint.
        let kv = SecretReference::parse("https://v:8200/v1/secret/data/issue/x").unwrap();
        assert_eq!(
            (kv.mount.as_str(), kv.path.as_str(), &kv.kind),
            ("secret", "issue/x", &ReferenceKind::Kv { version: None })
        );
        // Nested mounts, a trailing slash, and a default port the URL standard drops.
        let nested = SecretReference::parse("https://V.contoso.com:443/v1/team/kv/data/a/b/").unwrap();
        assert_eq!((nested.mount.as_str(), nested.path.as_str()), ("team/kv", "a/b"));
        assert_eq!(nested.to_string(), "https://v.contoso.com/v1/team/kv/data/a/b");
        for reference in [kv, nested] {
            let read = url::Url::parse(&reference.read_url()).unwrap();
            assert_eq!(read.as_str(), reference.read_url(), "the read URL is already canonical");
        }
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
            "https://v/v1/secret/data/x#y",
            "https://v/v1/secret/data/a/%2e%2e/b",
            "https://v/v1/secret/data/a//b",
            "https://v/v1/pki/issue/a/b?common_name=x",
        ] {
            assert!(SecretReference::parse(bad).is_err(), "{bad}");
        }
    }
}
