//! What can be wrong with a node's configuration (command line, environment, file, identities).

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("invalid config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("max_body_bytes must be at least 1")]
    ZeroBodyLimit,
    #[error("{0} must be at least 1")]
    ZeroConnectionCap(&'static str),
    #[error("identity '{id}': {reason}")]
    Identity { id: String, reason: String },
    #[error("'{0}' is not a duration (e.g. 1s, 30s, 15m, 4h)")]
    Duration(String),
    #[error("--https-listen needs --https-certificate-id: the certificate entity the HTTPS listener serves")]
    HttpsWithoutCertificate,
    #[error("--admin-https-listen needs --admin-https-certificate-id: the certificate entity it serves")]
    AdminHttpsWithoutCertificate,
    #[error("--no-admin-http needs --admin-https-listen: the management API must be reachable somehow")]
    NoAdminListener,
    #[error("--{0}-certificate-id and --{0}-cert-file/--{0}-key-file were both given: choose one certificate")]
    TwoListenerCertificates(&'static str),
    #[error("--{0}-cert-file and --{0}-key-file go together: the certificate chain and its private key")]
    HalfAPemPair(&'static str),
    #[error("cannot read the listener's certificate file {path}: {reason}")]
    ListenerCertificateFile { path: PathBuf, reason: String },
    #[error("the listener's certificate {certificate} with key {key} is unusable: {reason}")]
    ListenerCertificatePair { certificate: PathBuf, key: PathBuf, reason: String },
    #[error("--database-url must be a postgres:// (or postgresql://) URL; leave it out for the embedded store")]
    DatabaseUrl,
    #[error("--database-pool-size and --database-resync-interval need --database-url: they set up PostgreSQL")]
    DatabaseSettingWithoutDatabase,
    #[error("--{listener}-certificate-id '{id}' is not a valid id: {reason}")]
    BadCertificateId { listener: &'static str, id: String, reason: String },
}
