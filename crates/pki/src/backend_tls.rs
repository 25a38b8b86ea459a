//! rustls client configurations for backend connections, built once per (client identity, TLS
//! switches, trust set) by the control plane and shared by every request that needs them.

use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature};
use rustls::{
    CertificateError, CipherSuite, ClientConfig, DigitallySignedStruct, Error as TlsError, RootCertStore,
    SignatureScheme,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};

use certgate_model::{BackendTls, CaCertificate, CaStoreName};
use zeroize::Zeroize;

use crate::danger;
use crate::expiry::{SessionsUntilExpiry, UntilExpiry};

/// A client certificate chain (leaf first) and its private key, ready for the handshake. The key
/// copy is zeroized when the identity is dropped; rustls and aws-lc keep their own for the
/// configurations built from it.
#[derive(Debug)]
pub struct ClientIdentity {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    /// The leaf's notAfter (Unix seconds), when the handshake must stop presenting it.
    not_after: Option<i64>,
}

impl ClientIdentity {
    pub fn from_der(chain: &[Vec<u8>], pkcs8_key: &[u8]) -> Self {
        Self {
            chain: chain.iter().map(|der| CertificateDer::from(der.clone())).collect(),
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pkcs8_key.to_vec())),
            not_after: None,
        }
    }

    /// From the first instant of `not_after` (Unix seconds) on, a configuration built from this
    /// identity neither presents it nor resumes a session it authenticated.
    pub fn valid_until(mut self, not_after: i64) -> Self {
        self.not_after = Some(not_after);
        self
    }
}

impl Drop for ClientIdentity {
    fn drop(&mut self) {
        self.key.zeroize();
    }
}

/// What backends are validated against: trust anchors (system roots and uploaded `Root` CA
/// certificates) and uploaded `CertificateAuthority` intermediates that help build chains.
#[derive(Debug, Clone, Default)]
pub struct BackendTrust {
    roots: Vec<CertificateDer<'static>>,
    intermediates: Vec<CertificateDer<'static>>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlsConfigError {
    #[error("CA certificate is not a usable trust anchor: {0}")]
    BadRoot(String),
    #[error("the client certificate or key cannot be used for TLS: {0}")]
    BadIdentity(String),
    #[error("cannot build the TLS configuration: {0}")]
    Build(String),
}

impl BackendTrust {
    /// The operating system's roots, as the `openssl` default store has them.
    pub fn system_roots() -> Vec<CertificateDer<'static>> {
        let loaded = rustls_native_certs::load_native_certs();
        for error in &loaded.errors {
            tracing::warn!(%error, "a system root certificate could not be loaded");
        }
        loaded.certs
    }

    pub fn new(roots: Vec<CertificateDer<'static>>, intermediates: Vec<CertificateDer<'static>>) -> Self {
        Self { roots, intermediates }
    }

    /// `roots` (the system's) and the uploaded CA certificates: `Root` ones are trust anchors,
    /// `CertificateAuthority` ones help build chains.
    pub fn with_uploaded<'c>(
        mut roots: Vec<CertificateDer<'static>>,
        uploaded: impl IntoIterator<Item = &'c CaCertificate>,
    ) -> Self {
        let mut intermediates = Vec::new();
        for ca in uploaded {
            let der = CertificateDer::from(ca.der.clone());
            match ca.store_name {
                CaStoreName::Root => roots.push(der),
                CaStoreName::CertificateAuthority => intermediates.push(der),
            }
        }
        Self { roots, intermediates }
    }

    fn verifier(&self, provider: &Arc<CryptoProvider>) -> Result<ChainCheck, TlsConfigError> {
        let mut store = RootCertStore::empty();
        for root in &self.roots {
            store.add(root.clone()).map_err(|e| TlsConfigError::BadRoot(e.to_string()))?;
        }
        if store.is_empty() {
            return Ok(ChainCheck::NoTrustAnchors);
        }
        WebPkiServerVerifier::builder_with_provider(Arc::new(store), provider.clone())
            .build()
            .map(ChainCheck::Verify)
            .map_err(|e| TlsConfigError::Build(e.to_string()))
    }
}

/// aws-lc-rs' provider with AES-128-GCM offered before AES-256-GCM (within TLS 1.3 and within
/// TLS 1.2), as Go's TLS stack and BoringSSL order them. Both give at least 128-bit security;
/// the 128-bit key costs 10 AES rounds a block instead of 14, and its suites hash with SHA-256
/// (the CPU's SHA extensions) instead of SHA-384, whose aws-lc assembly is used on Intel CPUs
/// only. A server that prefers AES-256 still gets it.
fn provider() -> Arc<CryptoProvider> {
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    provider.cipher_suites.sort_by_key(|suite| {
        let rank = match suite.suite() {
            CipherSuite::TLS13_AES_128_GCM_SHA256
            | CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
            | CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 => 0,
            CipherSuite::TLS13_AES_256_GCM_SHA384
            | CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
            | CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 => 1,
            _ => 2,
        };
        (suite.tls13().is_none(), rank)
    });
    Arc::new(provider)
}

/// Builds the client configuration that presents `identity` (if any) and validates backends per
/// `switches` against `trust`. Session resumption is on; ALPN is left to the HTTP connector.
pub fn backend_client_config(
    identity: Option<&ClientIdentity>,
    switches: BackendTls,
    trust: &BackendTrust,
) -> Result<Arc<ClientConfig>, TlsConfigError> {
    let provider = provider();
    let verifier = Arc::new(BackendVerifier::new(&provider, switches, trust)?);
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsConfigError::Build(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let config = match identity {
        Some(ClientIdentity { chain, key, not_after: Some(not_after) }) => {
            let certified = rustls::sign::CertifiedKey::from_der(chain.clone(), key.clone_key(), &provider)
                .map_err(|e| TlsConfigError::BadIdentity(e.to_string()))?;
            let mut config = builder.with_client_cert_resolver(Arc::new(UntilExpiry::new(certified, *not_after)));
            config.resumption = rustls::client::Resumption::store(Arc::new(SessionsUntilExpiry::new(*not_after)));
            config
        }
        Some(identity) => builder
            .with_client_auth_cert(identity.chain.clone(), identity.key.clone_key())
            .map_err(|e| TlsConfigError::BadIdentity(e.to_string()))?,
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// What a probe's handshake saw, filled in as it happens (the handshake probe's report reads it).
#[derive(Debug, Default)]
pub struct HandshakeRecord(std::sync::Mutex<Observed>);

/// One handshake's observations.
#[derive(Debug, Default, Clone)]
pub struct Observed {
    /// The server's certificates as sent, leaf first (DER).
    pub server_chain: Vec<Vec<u8>>,
    /// The chain's validation under the backend's switches: `None` until the server's
    /// certificate arrived, else the verdict (`Err` with rustls's reason).
    pub chain_verdict: Option<Result<(), String>>,
    /// The server sent a CertificateRequest.
    pub client_certificate_requested: bool,
    /// The CA names that CertificateRequest listed (DER X.501 names), empty for "any".
    pub acceptable_issuers: Vec<Vec<u8>>,
    /// A client certificate was sent in answer.
    pub certificate_sent: bool,
}

impl HandshakeRecord {
    pub fn observed(&self) -> Observed {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Observed> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// As [`backend_client_config`], for one probe connection that records what it sees: the same
/// verifier (so the chain is judged exactly as traffic's is), no session resumption (a probe
/// handshakes in full), and `identity` presented whatever CA names the server asks for.
pub fn observed_backend_client_config(
    identity: Option<&ClientIdentity>,
    switches: BackendTls,
    trust: &BackendTrust,
) -> Result<(Arc<ClientConfig>, Arc<HandshakeRecord>), TlsConfigError> {
    let provider = provider();
    let record = Arc::new(HandshakeRecord::default());
    let mut verifier = BackendVerifier::new(&provider, switches, trust)?;
    verifier.record = Some(record.clone());
    let key = identity
        .map(|identity| {
            rustls::sign::CertifiedKey::from_der(identity.chain.clone(), identity.key.clone_key(), &provider)
        })
        .transpose()
        .map_err(|e| TlsConfigError::BadIdentity(e.to_string()))?;
    let resolver = Arc::new(RecordingResolver { key: key.map(Arc::new), record: record.clone() });
    let mut config = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsConfigError::Build(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_client_cert_resolver(resolver);
    config.resumption = rustls::client::Resumption::disabled();
    Ok((Arc::new(config), record))
}

/// The client certificate to present, whatever the server asks for, writing the request into a
/// record.
#[derive(Debug)]
struct RecordingResolver {
    key: Option<Arc<rustls::sign::CertifiedKey>>,
    record: Arc<HandshakeRecord>,
}

impl rustls::client::ResolvesClientCert for RecordingResolver {
    fn resolve(
        &self,
        root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        let mut observed = self.record.lock();
        observed.client_certificate_requested = true;
        observed.acceptable_issuers = root_hint_subjects.iter().map(|name| name.to_vec()).collect();
        observed.certificate_sent = self.key.is_some();
        self.key.clone()
    }

    // True even without a certificate, so that a request for one is still recorded.
    fn has_certs(&self) -> bool {
        true
    }
}

#[derive(Debug)]
enum ChainCheck {
    /// Full WebPKI path validation to one of the trust anchors.
    Verify(Arc<WebPkiServerVerifier>),
    /// Validation is on but nothing is trusted: every backend fails as untrusted.
    NoTrustAnchors,
    /// `validateCertificateChain = false`.
    Skip,
}

/// One verifier for all four switch combinations; the relaxed paths live in [`danger`].
/// Handshake signatures are always verified, so the backend must hold the presented key.
#[derive(Debug)]
struct BackendVerifier {
    chain: ChainCheck,
    intermediates: Vec<CertificateDer<'static>>,
    validate_name: bool,
    algorithms: WebPkiSupportedAlgorithms,
    /// A probe's connection: what the server sent and the verdict are written here.
    record: Option<Arc<HandshakeRecord>>,
}

impl BackendVerifier {
    fn new(provider: &Arc<CryptoProvider>, switches: BackendTls, trust: &BackendTrust) -> Result<Self, TlsConfigError> {
        let chain = if switches.validate_certificate_chain { trust.verifier(provider)? } else { ChainCheck::Skip };
        Ok(Self {
            chain,
            intermediates: trust.intermediates.clone(),
            validate_name: switches.validate_certificate_name,
            algorithms: provider.signature_verification_algorithms,
            record: None,
        })
    }
}

impl ServerCertVerifier for BackendVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        presented_intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, TlsError> {
        let verdict = match &self.chain {
            ChainCheck::Verify(webpki) => {
                let mut intermediates = presented_intermediates.to_vec();
                intermediates.extend(self.intermediates.iter().cloned());
                match webpki.verify_server_cert(end_entity, &intermediates, server_name, ocsp_response, now) {
                    Err(TlsError::InvalidCertificate(
                        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
                    )) if !self.validate_name => Ok(danger::accept_name_mismatch()),
                    other => other,
                }
            }
            ChainCheck::NoTrustAnchors => Err(TlsError::InvalidCertificate(CertificateError::UnknownIssuer)),
            ChainCheck::Skip => danger::skip_chain_validation(end_entity, server_name, self.validate_name),
        };
        if let Some(record) = &self.record {
            let mut observed = record.lock();
            observed.server_chain =
                std::iter::once(end_entity).chain(presented_intermediates).map(|der| der.as_ref().to_vec()).collect();
            observed.chain_verdict = Some(verdict.as_ref().map(|_| ()).map_err(ToString::to_string));
        }
        verdict
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// The gateway's own TLS server configuration for its HTTPS listener (no client authentication
/// from callers; HTTP/1.1 by ALPN).
pub fn listener_server_config(identity: &ClientIdentity) -> Result<Arc<rustls::ServerConfig>, TlsConfigError> {
    let provider = provider();
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsConfigError::Build(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(identity.chain.clone(), identity.key.clone_key())
        .map_err(|e| TlsConfigError::BadIdentity(e.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aes_128_is_offered_before_aes_256_and_tls13_before_tls12_with_no_suite_lost() {
        let default = rustls::crypto::aws_lc_rs::default_provider().cipher_suites;
        let ordered: Vec<CipherSuite> = provider().cipher_suites.iter().map(|s| s.suite()).collect();
        assert_eq!(ordered.len(), default.len());
        assert!(default.iter().all(|s| ordered.contains(&s.suite())));
        let at = |suite| ordered.iter().position(|&s| s == suite).expect("offered");
        assert!(at(CipherSuite::TLS13_AES_128_GCM_SHA256) < at(CipherSuite::TLS13_AES_256_GCM_SHA384));
        assert!(
            at(CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256)
                < at(CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384)
        );
        assert!(
            at(CipherSuite::TLS13_CHACHA20_POLY1305_SHA256) < at(CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256)
        );
    }
}
