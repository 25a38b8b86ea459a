//! A real TLS server that *requires* a client certificate and reports which one it saw: after
//! the handshake it writes `fp=<sha1 hex> alpn=<protocol>\n` and closes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig, SignatureScheme};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

use crate::Identity;

/// Which client certificates the peer accepts.
pub enum ClientAuth<'a> {
    /// Any certificate, as long as the client proves it holds the key.
    AnyCertificate,
    /// Only certificates issued by this CA.
    IssuedBy(&'a Identity),
    /// Only certificates issued by the CA with this DER (e.g. a vault PKI root).
    IssuedByDer(&'a [u8]),
}

/// Starts the peer on a free loopback port; it serves until the runtime stops.
pub async fn tls_echo_peer(server: &Identity, client_auth: ClientAuth<'_>) -> SocketAddr {
    let config = server_config(server, client_auth, &[b"http/1.1"]);
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(stream).await else { return };
                let (_, session) = tls.get_ref();
                let fingerprint =
                    session.peer_certificates().and_then(|c| c.first()).map(|c| sha1_hex(c)).unwrap_or_default();
                let alpn = session.alpn_protocol().map(|p| String::from_utf8_lossy(p).into_owned()).unwrap_or_default();
                let _ = tls.write_all(format!("fp={fingerprint} alpn={alpn}\n").as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    addr
}

/// A TLS terminator in front of a plain-HTTP service (the management API, say): presents
/// `server`, asks for no client certificate, and relays the decrypted bytes to `upstream`.
pub async fn tls_terminator(server: &Identity, upstream: SocketAddr) -> SocketAddr {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(server.cert_der.clone())],
            PrivateKeyDer::from_pem_slice(server.key_pem.as_bytes()).unwrap(),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(stream).await else { return };
                let Ok(mut plain) = tokio::net::TcpStream::connect(upstream).await else { return };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
            });
        }
    });
    addr
}

/// A server configuration that presents `server`, requires a client certificate per
/// `client_auth`, and offers `alpn`.
pub(crate) fn server_config(server: &Identity, client_auth: ClientAuth<'_>, alpn: &[&[u8]]) -> ServerConfig {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let trusted_ca = match client_auth {
        ClientAuth::AnyCertificate => None,
        ClientAuth::IssuedBy(ca) => Some(ca.cert_der.clone()),
        ClientAuth::IssuedByDer(der) => Some(der.to_vec()),
    };
    let verifier: Arc<dyn ClientCertVerifier> = match trusted_ca {
        None => Arc::new(AnyClientCertificate(provider.clone())),
        Some(der) => {
            let mut roots = RootCertStore::empty();
            roots.add(CertificateDer::from(der)).unwrap();
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone()).build().unwrap()
        }
    };
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            vec![CertificateDer::from(server.cert_der.clone())],
            PrivateKeyDer::from_pem_slice(server.key_pem.as_bytes()).unwrap(),
        )
        .unwrap();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    config
}

/// Lower-case hex SHA-1, as nginx's `$ssl_client_fingerprint` prints it.
pub fn sha1_hex(der: &[u8]) -> String {
    hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, der))
}

/// Requires a client certificate but accepts any, as long as the client proves it holds the key.
#[derive(Debug)]
struct AnyClientCertificate(Arc<rustls::crypto::CryptoProvider>);

impl ClientCertVerifier for AnyClientCertificate {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
