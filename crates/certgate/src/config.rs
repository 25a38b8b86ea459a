//! Server configuration: command line over environment over config file over defaults.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use certgate_gateway::ListenerCertificate;
use certgate_model::EntityId;
use clap::Args;

pub use crate::config_error::ConfigError;
use crate::vault_config::{IdentityFile, VaultConfig, parse_duration};
use serde::Deserialize;

/// `certgate server` options. Each also reads `CERTGATE_<NAME>` and the `--config` TOML file.
/// No `Debug`: the database URL may carry a password.
#[derive(Args, Default)]
pub struct ServerArgs {
    /// Where the embedded store, the generated master key and the admin token live [default: ./certgate-data]
    #[arg(long, env = "CERTGATE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Address of the management API [default: 127.0.0.1:8081]
    #[arg(long, env = "CERTGATE_ADMIN_LISTEN")]
    pub admin_listen: Option<SocketAddr>,
    /// Address of the management API's HTTPS listener (off unless set; needs
    /// --admin-https-certificate-id, or --admin-https-cert-file with --admin-https-key-file)
    #[arg(long, env = "CERTGATE_ADMIN_HTTPS_LISTEN")]
    pub admin_https_listen: Option<SocketAddr>,
    /// Id of the certificate entity the management API's HTTPS listener serves
    #[arg(long, env = "CERTGATE_ADMIN_HTTPS_CERTIFICATE_ID")]
    pub admin_https_certificate_id: Option<String>,
    /// PEM file of the certificate chain the management API's HTTPS listener serves, instead of a
    /// certificate entity (read at start)
    #[arg(long, env = "CERTGATE_ADMIN_HTTPS_CERT_FILE")]
    pub admin_https_cert_file: Option<PathBuf>,
    /// PEM file of that certificate's PKCS#8 private key ('BEGIN PRIVATE KEY')
    #[arg(long, env = "CERTGATE_ADMIN_HTTPS_KEY_FILE")]
    pub admin_https_key_file: Option<PathBuf>,
    /// Turns the plain-HTTP management listener off (then --admin-https-listen is required)
    #[arg(long, env = "CERTGATE_NO_ADMIN_HTTP")]
    pub no_admin_http: bool,
    /// Address of the gateway's HTTP listener [default: 0.0.0.0:8080]
    #[arg(long, env = "CERTGATE_HTTP_LISTEN")]
    pub http_listen: Option<SocketAddr>,
    /// Address of the gateway's HTTPS listener (off unless set; needs --https-certificate-id)
    #[arg(long, env = "CERTGATE_HTTPS_LISTEN")]
    pub https_listen: Option<SocketAddr>,
    /// Id of the certificate entity the HTTPS listener serves
    #[arg(long, env = "CERTGATE_HTTPS_CERTIFICATE_ID")]
    pub https_certificate_id: Option<String>,
    /// A PostgreSQL database shared by the nodes of a cluster instead of the embedded store:
    /// postgres://user:password@host:port/database, with `?sslmode=verify-full&sslrootcert=FILE`
    /// for TLS (the system's trust store plus FILE) [default: SQLite in the data folder]
    #[arg(long, env = "CERTGATE_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Connections the node keeps to PostgreSQL [default: 8]
    #[arg(long, env = "CERTGATE_DATABASE_POOL_SIZE")]
    pub database_pool_size: Option<u32>,
    /// How often a node on PostgreSQL reads the store's revision even without a notification,
    /// which bounds how late a change whose notification was lost is served [default: 30s]
    #[arg(long, env = "CERTGATE_DATABASE_RESYNC_INTERVAL")]
    pub database_resync_interval: Option<String>,
    /// File holding the 256-bit master key (64 hex digits or base64); CERTGATE_MASTER_KEY gives it inline
    #[arg(long, env = "CERTGATE_MASTER_KEY_FILE")]
    pub master_key_file: Option<PathBuf>,
    /// File holding the vault token of the gateway's system identity (CERTGATE_VAULT_TOKEN gives it inline)
    #[arg(long, env = "CERTGATE_VAULT_TOKEN_FILE")]
    pub vault_token_file: Option<PathBuf>,
    /// How often version-less vault references are re-read: 1s … 4h … [default: 4h]
    #[arg(long, env = "CERTGATE_VAULT_REFRESH_INTERVAL")]
    pub vault_refresh_interval: Option<String>,
    /// PEM file of the CA that signed the vault's TLS certificate
    #[arg(long, env = "CERTGATE_VAULT_CA_FILE")]
    pub vault_ca_file: Option<PathBuf>,
    /// Largest accepted management request body in bytes [default: 1048576]
    #[arg(long, env = "CERTGATE_MAX_BODY_BYTES")]
    pub max_body_bytes: Option<usize>,
    /// How long a client may take to send a complete request head, from connecting or from its
    /// first byte after an idle wait, on every listener [default: 30s]
    #[arg(long, env = "CERTGATE_HEADER_READ_TIMEOUT")]
    pub header_read_timeout: Option<String>,
    /// How long a client connection may sit idle between requests on every listener [default: 60s]
    #[arg(long, env = "CERTGATE_IDLE_TIMEOUT")]
    pub idle_timeout: Option<String>,
    /// How long a backend may pause within a response body before the response is aborted
    /// [default: no limit; the forward-request timeout bounds the wait for the response head]
    #[arg(long, env = "CERTGATE_BACKEND_READ_TIMEOUT")]
    pub backend_read_timeout: Option<String>,
    /// Open client connections the gateway's HTTP and HTTPS listeners may hold together
    /// [default: (open-file limit - 128 - admin cap) / 2]
    #[arg(long, env = "CERTGATE_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Open connections the management API may hold, apart from the gateway's [default: 256]
    #[arg(long, env = "CERTGATE_ADMIN_MAX_CONNECTIONS")]
    pub admin_max_connections: Option<usize>,
    /// The node's service name on ARM paths (`…/providers/Microsoft.ApiManagement/service/NAME/…`);
    /// others are 404 [default: any name]
    #[arg(long, env = "CERTGATE_SERVICE_NAME")]
    pub service_name: Option<String>,
    /// The subscription id ARM paths must name [default: any]
    #[arg(long, env = "CERTGATE_SUBSCRIPTION_ID")]
    pub subscription_id: Option<String>,
    /// The resource group ARM paths must name [default: any]
    #[arg(long, env = "CERTGATE_RESOURCE_GROUP")]
    pub resource_group: Option<String>,
    /// The gateway's public base URL, as the service resource's gatewayUrl [default: the HTTP listener's address]
    #[arg(long, env = "CERTGATE_GATEWAY_URL")]
    pub gateway_url: Option<String>,
    /// Log lines on stderr as `text` or `json` (one object per line); command line or
    /// environment only, since logging starts before the config file is read
    #[arg(long, env = "CERTGATE_LOG_FORMAT", value_enum, default_value_t)]
    pub log_format: LogFormat,
    /// Turns off the access log (one line per gateway request)
    #[arg(long, env = "CERTGATE_NO_ACCESS_LOG")]
    pub no_access_log: bool,
    /// Serves /metrics without a token, for a scraper that cannot send one [default: a reader or
    /// contributor token is required]
    #[arg(long, env = "CERTGATE_PUBLIC_METRICS")]
    pub public_metrics: bool,
    /// TOML file with any of the options above (snake_case keys)
    #[arg(long, env = "CERTGATE_CONFIG")]
    pub config: Option<PathBuf>,
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// The `--config` file: the same options, lowest precedence. No `Debug`, as for [`ServerArgs`].
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    data_dir: Option<PathBuf>,
    admin_listen: Option<SocketAddr>,
    admin_https_listen: Option<SocketAddr>,
    admin_https_certificate_id: Option<String>,
    admin_https_cert_file: Option<PathBuf>,
    admin_https_key_file: Option<PathBuf>,
    #[serde(default)]
    no_admin_http: bool,
    http_listen: Option<SocketAddr>,
    https_listen: Option<SocketAddr>,
    https_certificate_id: Option<String>,
    master_key_file: Option<PathBuf>,
    database_url: Option<String>,
    database_pool_size: Option<u32>,
    database_resync_interval: Option<String>,
    max_body_bytes: Option<usize>,
    header_read_timeout: Option<String>,
    idle_timeout: Option<String>,
    backend_read_timeout: Option<String>,
    max_connections: Option<usize>,
    admin_max_connections: Option<usize>,
    vault_token_file: Option<PathBuf>,
    vault_refresh_interval: Option<String>,
    vault_ca_file: Option<PathBuf>,
    service_name: Option<String>,
    subscription_id: Option<String>,
    resource_group: Option<String>,
    gateway_url: Option<String>,
    #[serde(default)]
    no_access_log: bool,
    #[serde(default)]
    public_metrics: bool,
    #[serde(default)]
    identities: std::collections::BTreeMap<String, IdentityFile>,
}

/// The resolved configuration of a node.
#[derive(Debug)]
pub struct ServerConfig {
    pub data_dir: PathBuf,
    /// Where the configuration is kept.
    pub store: StoreLocation,
    /// The plain-HTTP management listener; `None` when turned off.
    pub admin_listen: Option<SocketAddr>,
    /// The management API's HTTPS listener and the certificate it serves, when enabled.
    pub admin_https: Option<(SocketAddr, ListenerCertificate)>,
    pub http_listen: SocketAddr,
    /// The HTTPS listener and the certificate it serves, when enabled.
    pub https: Option<(SocketAddr, ListenerCertificate)>,
    pub master_key_file: Option<PathBuf>,
    pub max_body_bytes: usize,
    pub connections: ConnectionLimits,
    /// `--backend-read-timeout`, when set.
    pub backend_read_timeout: Option<Duration>,
    /// One log line per gateway request (`--no-access-log` turns it off).
    pub access_log: bool,
    /// `/metrics` answers without a token.
    pub public_metrics: bool,
    /// Who the node is on ARM paths; `gateway_url` unset means the HTTP listener's address.
    pub service: certgate_admin::ServiceIdentity,
    pub vault: VaultConfig,
}

/// The embedded store, or a PostgreSQL database other nodes share.
#[derive(Debug)]
pub enum StoreLocation {
    /// `certgate.db` in the data folder.
    Embedded,
    Postgres(certgate_store::PostgresOptions),
}

impl StoreLocation {
    fn resolve(url: Option<String>, pool_size: Option<u32>, resync: Option<String>) -> Result<Self, ConfigError> {
        let Some(url) = url else {
            return match (pool_size, resync) {
                (None, None) => Ok(StoreLocation::Embedded),
                _ => Err(ConfigError::DatabaseSettingWithoutDatabase),
            };
        };
        let url = zeroize::Zeroizing::new(url);
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(ConfigError::DatabaseUrl);
        }
        let mut options = certgate_store::PostgresOptions::new(url.as_str());
        match pool_size {
            Some(0) => return Err(ConfigError::ZeroConnectionCap("database_pool_size")),
            Some(size) => options.pool_size = size,
            None => {}
        }
        if let Some(resync) = optional_duration(resync)? {
            options.resync_interval = resync;
        }
        Ok(StoreLocation::Postgres(options))
    }
}

/// What every listener enforces on client connections (see the gateway's listener module).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    /// The gateway listeners' shared cap; `None`: derived from the open-file limit at start.
    pub max_connections: Option<usize>,
    pub admin_max_connections: usize,
}

/// The management API's connection cap unless configured: far more than its operators and
/// probes use, and few enough to leave the gateway nearly all descriptors.
pub const DEFAULT_ADMIN_MAX_CONNECTIONS: usize = 256;

impl ConnectionLimits {
    fn resolve(
        header_read_timeout: Option<String>,
        idle_timeout: Option<String>,
        max_connections: Option<usize>,
        admin_max_connections: Option<usize>,
    ) -> Result<Self, ConfigError> {
        let duration = |text: Option<String>, default: Duration| Ok(optional_duration(text)?.unwrap_or(default));
        let defaults = certgate_gateway::Timeouts::default();
        if max_connections == Some(0) {
            return Err(ConfigError::ZeroConnectionCap("max_connections"));
        }
        if admin_max_connections == Some(0) {
            return Err(ConfigError::ZeroConnectionCap("admin_max_connections"));
        }
        Ok(ConnectionLimits {
            header_read_timeout: duration(header_read_timeout, defaults.header_read)?,
            idle_timeout: duration(idle_timeout, defaults.idle)?,
            max_connections,
            admin_max_connections: admin_max_connections.unwrap_or(DEFAULT_ADMIN_MAX_CONNECTIONS),
        })
    }
}

impl ServerArgs {
    pub fn resolve(self) -> Result<ServerConfig, ConfigError> {
        let file = match &self.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        let max_body_bytes =
            self.max_body_bytes.or(file.max_body_bytes).unwrap_or(certgate_admin::DEFAULT_MAX_BODY_BYTES);
        if max_body_bytes == 0 {
            return Err(ConfigError::ZeroBodyLimit);
        }
        let https = listener_with_certificate(
            self.https_listen.or(file.https_listen),
            self.https_certificate_id.or(file.https_certificate_id),
            PemFiles::default(),
            "https",
            ConfigError::HttpsWithoutCertificate,
        )?;
        let admin_https = listener_with_certificate(
            self.admin_https_listen.or(file.admin_https_listen),
            self.admin_https_certificate_id.or(file.admin_https_certificate_id),
            PemFiles {
                certificate: self.admin_https_cert_file.or(file.admin_https_cert_file),
                key: self.admin_https_key_file.or(file.admin_https_key_file),
            },
            "admin-https",
            ConfigError::AdminHttpsWithoutCertificate,
        )?;
        let admin_listen = match self.no_admin_http || file.no_admin_http {
            true if admin_https.is_none() => return Err(ConfigError::NoAdminListener),
            true => None,
            false => Some(self.admin_listen.or(file.admin_listen).unwrap_or(([127, 0, 0, 1], 8081).into())),
        };
        let connections = ConnectionLimits::resolve(
            self.header_read_timeout.or(file.header_read_timeout),
            self.idle_timeout.or(file.idle_timeout),
            self.max_connections.or(file.max_connections),
            self.admin_max_connections.or(file.admin_max_connections),
        )?;
        let backend_read_timeout = optional_duration(self.backend_read_timeout.or(file.backend_read_timeout))?;
        let vault = VaultConfig::resolve(
            std::env::var("CERTGATE_VAULT_TOKEN").ok().filter(|t| !t.is_empty()).map(zeroize::Zeroizing::new),
            self.vault_token_file.or(file.vault_token_file).as_deref(),
            file.identities,
            self.vault_refresh_interval.or(file.vault_refresh_interval).as_deref(),
            self.vault_ca_file.or(file.vault_ca_file),
        )?;
        let store = StoreLocation::resolve(
            self.database_url.or(file.database_url),
            self.database_pool_size.or(file.database_pool_size),
            self.database_resync_interval.or(file.database_resync_interval),
        )?;
        Ok(ServerConfig {
            data_dir: self.data_dir.or(file.data_dir).unwrap_or_else(|| PathBuf::from("./certgate-data")),
            store,
            admin_listen,
            admin_https,
            http_listen: self.http_listen.or(file.http_listen).unwrap_or(([0, 0, 0, 0], 8080).into()),
            https,
            master_key_file: self.master_key_file.or(file.master_key_file),
            max_body_bytes,
            connections,
            backend_read_timeout,
            access_log: !(self.no_access_log || file.no_access_log),
            public_metrics: self.public_metrics || file.public_metrics,
            service: certgate_admin::ServiceIdentity {
                subscription_id: self.subscription_id.or(file.subscription_id),
                resource_group: self.resource_group.or(file.resource_group),
                service_name: self.service_name.or(file.service_name),
                gateway_url: self.gateway_url.or(file.gateway_url),
            },
            vault,
        })
    }
}

/// The `--…-cert-file` and `--…-key-file` of an HTTPS listener, as given.
#[derive(Default)]
struct PemFiles {
    certificate: Option<PathBuf>,
    key: Option<PathBuf>,
}

/// An HTTPS listener's address with what it serves: a certificate entity, or a pair of PEM
/// files read now; no address, no listener.
fn listener_with_certificate(
    addr: Option<SocketAddr>,
    id: Option<String>,
    files: PemFiles,
    listener: &'static str,
    without_certificate: ConfigError,
) -> Result<Option<(SocketAddr, ListenerCertificate)>, ConfigError> {
    let Some(addr) = addr else { return Ok(None) };
    let certificate = match (id, files.certificate, files.key) {
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) => return Err(ConfigError::TwoListenerCertificates(listener)),
        (Some(id), None, None) => match EntityId::parse(&id) {
            Ok(parsed) => ListenerCertificate::Entity(parsed),
            Err(e) => return Err(ConfigError::BadCertificateId { listener, reason: e.to_string(), id }),
        },
        (None, Some(certificate), Some(key)) => listener_certificate_from_files(&certificate, &key)?,
        (None, Some(_), None) | (None, None, Some(_)) => return Err(ConfigError::HalfAPemPair(listener)),
        (None, None, None) => return Err(without_certificate),
    };
    Ok(Some((addr, certificate)))
}

/// Reads a PEM certificate chain and its private key into a listener's server configuration.
fn listener_certificate_from_files(certificate: &Path, key: &Path) -> Result<ListenerCertificate, ConfigError> {
    let read = |path: &Path| {
        std::fs::read_to_string(path)
            .map(zeroize::Zeroizing::new)
            .map_err(|e| ConfigError::ListenerCertificateFile { path: path.to_owned(), reason: e.to_string() })
    };
    let (chain, private_key) = (read(certificate)?, read(key)?);
    let unusable = |reason: String| ConfigError::ListenerCertificatePair {
        certificate: certificate.to_owned(),
        key: key.to_owned(),
        reason,
    };
    let imported = certgate_pki::import_pem(&chain, &private_key).map_err(|e| unusable(e.to_string()))?;
    for warning in &imported.warnings {
        tracing::warn!(file = %certificate.display(), "{warning}");
    }
    let identity = certgate_pki::ClientIdentity::from_der(&imported.chain, &imported.private_key);
    let config = certgate_pki::listener_server_config(&identity).map_err(|e| unusable(e.to_string()))?;
    Ok(ListenerCertificate::Files { certificate: certificate.display().to_string(), config })
}

fn optional_duration(text: Option<String>) -> Result<Option<Duration>, ConfigError> {
    text.map(|text| parse_duration(&text).ok_or(ConfigError::Duration(text))).transpose()
}

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.into(), source })?;
    toml::from_str(&text).map_err(|e| ConfigError::Parse { path: path.into(), message: e.message().to_owned() })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The id of the certificate entity a listener serves.
    fn entity(listener: Option<(SocketAddr, ListenerCertificate)>) -> Option<String> {
        match listener? {
            (_, ListenerCertificate::Entity(id)) => Some(id.to_string()),
            (_, ListenerCertificate::Files { .. }) => None,
        }
    }

    #[test]
    fn the_admin_https_listener_serves_pem_files_given_as_a_pair_and_instead_of_an_entity() {
        let dir = tempfile::tempdir().expect("tempdir");
        let identity = certgate_testkit::Identity::ca("Admin CA").server("localhost");
        let (cert, key) = (dir.path().join("admin.pem"), dir.path().join("admin.key"));
        std::fs::write(&cert, &identity.cert_pem).expect("write");
        std::fs::write(&key, &identity.key_pem).expect("write");
        let addr = Some(([127, 0, 0, 1], 8444).into());
        let with = |id: Option<&str>, cert: Option<&Path>, key: Option<&Path>| {
            ServerArgs {
                admin_https_listen: addr,
                admin_https_certificate_id: id.map(Into::into),
                admin_https_cert_file: cert.map(Into::into),
                admin_https_key_file: key.map(Into::into),
                ..Default::default()
            }
            .resolve()
        };
        let served = with(None, Some(&cert), Some(&key)).expect("valid").admin_https;
        assert!(matches!(served, Some((_, ListenerCertificate::Files { .. }))), "{served:?}");
        assert!(matches!(with(None, Some(&cert), None), Err(ConfigError::HalfAPemPair("admin-https"))));
        assert!(matches!(with(None, None, Some(&key)), Err(ConfigError::HalfAPemPair("admin-https"))));
        assert!(matches!(
            with(Some("admin-tls"), Some(&cert), Some(&key)),
            Err(ConfigError::TwoListenerCertificates("admin-https"))
        ));
        // The key of another certificate, and a file that is no PEM: refused, naming the file.
        let other = certgate_testkit::Identity::ca("Other CA").server("localhost");
        std::fs::write(&key, &other.key_pem).expect("write");
        for (cert, key) in [(&cert, &key), (&key, &cert)] {
            let error = with(None, Some(cert), Some(key)).expect_err("unusable pair").to_string();
            assert!(error.contains("admin.pem") && error.contains("admin.key"), "{error}");
            assert!(
                !error.contains("PRIVATE KEY") && !error.contains(other.key_pem.lines().nth(1).unwrap_or("-")),
                "{error}"
            );
        }
        let missing = dir.path().join("missing.pem");
        let error = with(None, Some(&missing), Some(&key)).expect_err("missing file").to_string();
        assert!(error.contains("missing.pem"), "{error}");
    }

    #[test]
    fn command_line_wins_over_file_and_file_over_defaults() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("certgate.toml");
        std::fs::write(&path, "data_dir = \"/from/file\"\nadmin_listen = \"127.0.0.1:9000\"\n").expect("write");
        let args =
            ServerArgs { admin_listen: Some(([127, 0, 0, 1], 9100).into()), config: Some(path), ..Default::default() };
        let config = args.resolve().expect("valid");
        assert_eq!(config.data_dir, PathBuf::from("/from/file"));
        assert_eq!(config.admin_listen, Some(([127, 0, 0, 1], 9100).into()));
        assert_eq!(config.http_listen, ([0, 0, 0, 0], 8080).into());
        assert_eq!(config.max_body_bytes, 1024 * 1024);
    }

    #[test]
    fn https_needs_a_certificate_id() {
        let args = ServerArgs { https_listen: Some(([127, 0, 0, 1], 8443).into()), ..Default::default() };
        assert!(matches!(args.resolve(), Err(ConfigError::HttpsWithoutCertificate)));
        let args = ServerArgs {
            https_listen: Some(([127, 0, 0, 1], 8443).into()),
            https_certificate_id: Some("gw".into()),
            ..Default::default()
        };
        assert_eq!(entity(args.resolve().expect("valid").https).as_deref(), Some("gw"));
    }

    #[test]
    fn the_admin_api_has_an_https_listener_and_needs_one_listener_at_least() {
        let addr = Some(([127, 0, 0, 1], 8444).into());
        let args = ServerArgs { admin_https_listen: addr, ..Default::default() };
        assert!(matches!(args.resolve(), Err(ConfigError::AdminHttpsWithoutCertificate)));
        let args = ServerArgs { no_admin_http: true, ..Default::default() };
        assert!(matches!(args.resolve(), Err(ConfigError::NoAdminListener)));
        let args = ServerArgs {
            admin_https_listen: addr,
            admin_https_certificate_id: Some("admin-tls".into()),
            no_admin_http: true,
            ..Default::default()
        };
        let config = args.resolve().expect("valid");
        assert_eq!(config.admin_listen, None);
        assert_eq!(entity(config.admin_https).as_deref(), Some("admin-tls"));
        let args = ServerArgs {
            admin_https_listen: addr,
            admin_https_certificate_id: Some("a/b".into()),
            ..Default::default()
        };
        let result = args.resolve();
        assert!(matches!(result, Err(ConfigError::BadCertificateId { listener: "admin-https", .. })), "{result:?}");
    }

    #[test]
    fn connection_limits_have_defaults_and_come_from_file_or_command_line() {
        let defaults = ServerArgs::default().resolve().expect("valid").connections;
        assert_eq!(
            defaults,
            ConnectionLimits {
                header_read_timeout: Duration::from_secs(30),
                idle_timeout: Duration::from_secs(60),
                max_connections: None,
                admin_max_connections: 256,
            }
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("certgate.toml");
        std::fs::write(
            &path,
            "header_read_timeout = \"5s\"\nidle_timeout = \"2m\"\nmax_connections = 50\nadmin_max_connections = 8\n",
        )
        .expect("write");
        let args = ServerArgs { idle_timeout: Some("15s".into()), config: Some(path), ..Default::default() };
        let limits = args.resolve().expect("valid").connections;
        assert_eq!(limits.header_read_timeout, Duration::from_secs(5));
        assert_eq!(limits.idle_timeout, Duration::from_secs(15), "the command line wins");
        assert_eq!((limits.max_connections, limits.admin_max_connections), (Some(50), 8));
    }

    #[test]
    fn zero_caps_and_bad_durations_are_refused() {
        let args = ServerArgs { max_connections: Some(0), ..Default::default() };
        assert!(matches!(args.resolve(), Err(ConfigError::ZeroConnectionCap("max_connections"))));
        let args = ServerArgs { admin_max_connections: Some(0), ..Default::default() };
        assert!(matches!(args.resolve(), Err(ConfigError::ZeroConnectionCap("admin_max_connections"))));
        let args = ServerArgs { header_read_timeout: Some("0s".into()), ..Default::default() };
        assert!(matches!(args.resolve(), Err(ConfigError::Duration(text)) if text == "0s"));
        let args = ServerArgs { idle_timeout: Some("soon".into()), ..Default::default() };
        assert!(matches!(args.resolve(), Err(ConfigError::Duration(text)) if text == "soon"));
        let args = ServerArgs { backend_read_timeout: Some("-1s".into()), ..Default::default() };
        assert!(matches!(args.resolve(), Err(ConfigError::Duration(text)) if text == "-1s"));
        let args = ServerArgs { backend_read_timeout: Some("15s".into()), ..Default::default() };
        assert_eq!(args.resolve().expect("valid").backend_read_timeout, Some(Duration::from_secs(15)));
        assert_eq!(ServerArgs::default().resolve().expect("valid").backend_read_timeout, None);
    }

    #[test]
    fn the_store_is_embedded_unless_a_postgres_url_is_given() {
        let store = |url: Option<&str>, pool_size| {
            ServerArgs {
                database_url: url.map(Into::into),
                database_pool_size: pool_size,
                database_resync_interval: Some("5s".into()),
                ..Default::default()
            }
            .resolve()
            .map(|config| config.store)
        };
        let embedded = ServerArgs::default().resolve().map(|config| config.store);
        assert!(matches!(embedded, Ok(StoreLocation::Embedded)));
        match store(Some("postgres://certgate:s3cret@db.internal:5433/certgate?sslmode=verify-full"), Some(20)) {
            Ok(StoreLocation::Postgres(options)) => {
                assert_eq!(options.pool_size, 20);
                assert_eq!(options.resync_interval, Duration::from_secs(5));
                let shown = format!("{options:?}");
                assert!(shown.contains("db.internal:5433/certgate") && !shown.contains("s3cret"), "{shown}");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(store(Some("mysql://db/certgate"), None), Err(ConfigError::DatabaseUrl)));
        // An empty URL (a typo in one node's environment file) must not start a lone node.
        assert!(matches!(store(Some(""), None), Err(ConfigError::DatabaseUrl)));
        assert!(matches!(store(None, Some(4)), Err(ConfigError::DatabaseSettingWithoutDatabase)));
        assert!(matches!(
            store(Some("postgres://db/certgate"), Some(0)),
            Err(ConfigError::ZeroConnectionCap("database_pool_size"))
        ));
    }

    #[test]
    fn unknown_keys_in_the_file_are_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("certgate.toml");
        std::fs::write(&path, "data_dirr = \"x\"\n").expect("write");
        let err = ServerArgs { config: Some(path), ..Default::default() }.resolve().expect_err("typo");
        assert!(err.to_string().contains("data_dirr"), "{err}");
    }
}
