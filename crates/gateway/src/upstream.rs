//! Backend connection pools, one per TLS identity.
//!
//! hyper-util's pooled client keys its pool by scheme and authority only, so certgate keeps one
//! client per [`UpstreamKey`]: a connection authenticated with one certificate lives in that
//! certificate's pool and can never carry a request configured for another.

use std::sync::Arc;
use std::time::Duration;

use certgate_model::Thumbprint;
use certgate_pki::TlsSwitches;
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

/// Everything that decides how a backend connection is authenticated and validated. Together
/// with the scheme and authority that hyper-util adds (and from which the SNI name is derived),
/// it is the full pool key.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct UpstreamKey {
    /// The client certificate presented, by thumbprint; `None` = no client certificate.
    pub identity: Option<Thumbprint>,
    /// Set once the certificate has expired: the connections made before its notAfter are then
    /// left behind with the old pool, and new handshakes show the backend's verdict.
    pub expired: bool,
    pub switches: TlsSwitches,
    /// Hash of the trusted CA set, so uploading a CA certificate yields fresh connections.
    pub trust: u64,
}

/// A pooled HTTP client whose TLS connections all use one identity.
pub(crate) struct Upstream {
    pub key: UpstreamKey,
    pub client: Client<HttpsConnector<HttpConnector>, Incoming>,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream").field("key", &self.key).finish_non_exhaustive()
    }
}

/// How long an idle backend connection stays pooled.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

impl Upstream {
    pub(crate) fn new(key: UpstreamKey, tls: Arc<rustls::ClientConfig>) -> Arc<Self> {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(Duration::from_secs(10)));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config((*tls).clone())
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .build(connector);
        Arc::new(Self { key, client })
    }
}
