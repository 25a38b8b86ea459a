//! Backend TLS configurations against real TLS peers that require a client certificate and
//! report which one they saw.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::Arc;

use certgate_model::BackendTls;
use certgate_pki::{BackendTrust, ClientIdentity, backend_client_config};
use certgate_testkit::{ClientAuth, Identity, KeyKind, sha1_hex, tls_echo_peer};
use rustls::ClientConfig;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::AsyncReadExt;

const FULL: BackendTls = BackendTls { validate_certificate_chain: true, validate_certificate_name: true };
const NO_CHAIN: BackendTls = BackendTls { validate_certificate_chain: false, validate_certificate_name: true };
const NO_NAME: BackendTls = BackendTls { validate_certificate_chain: true, validate_certificate_name: false };
const NOTHING: BackendTls = BackendTls { validate_certificate_chain: false, validate_certificate_name: false };

/// Handshakes with `addr` as `name` and returns what the peer reported, or the error text.
async fn talk(config: Arc<ClientConfig>, addr: SocketAddr, name: &str) -> Result<String, String> {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let connector = tokio_rustls::TlsConnector::from(config);
    let server_name = ServerName::try_from(name.to_owned()).unwrap();
    let mut tls = connector.connect(server_name, stream).await.map_err(|e| e.to_string())?;
    let mut reply = String::new();
    tls.read_to_string(&mut reply).await.map_err(|e| e.to_string())?;
    Ok(reply.trim().to_owned())
}

fn identity(leaf: &Identity, chain: &[&Identity]) -> ClientIdentity {
    let mut ders = vec![leaf.cert_der.clone()];
    ders.extend(chain.iter().map(|c| c.cert_der.clone()));
    ClientIdentity::from_der(&ders, &leaf.key_der())
}

fn trust(roots: &[&Identity], intermediates: &[&Identity]) -> BackendTrust {
    let der = |list: &[&Identity]| list.iter().map(|c| CertificateDer::from(c.cert_der.clone())).collect();
    BackendTrust::new(der(roots), der(intermediates))
}

#[tokio::test]
async fn presents_the_configured_certificate_to_a_private_ca_backend() {
    let backend_ca = Identity::ca("Backend CA");
    let addr = tls_echo_peer(&backend_ca.server("localhost"), ClientAuth::AnyCertificate).await;
    let client = Identity::self_signed_client("client-a", KeyKind::EcdsaP256);
    let config = backend_client_config(Some(&identity(&client, &[])), FULL, &trust(&[&backend_ca], &[])).unwrap();
    let reply = talk(config, addr, "localhost").await.unwrap();
    assert_eq!(reply, format!("fp={} alpn=", sha1_hex(&client.cert_der)));

    let untrusted = backend_client_config(Some(&identity(&client, &[])), FULL, &trust(&[], &[])).unwrap();
    let err = talk(untrusted, addr, "localhost").await.unwrap_err();
    assert!(err.contains("UnknownIssuer"), "{err}");
    let system_only = BackendTrust::new(BackendTrust::system_roots(), vec![]);
    let err = talk(backend_client_config(None, FULL, &system_only).unwrap(), addr, "localhost").await.unwrap_err();
    assert!(err.contains("UnknownIssuer"), "a private CA is not a system root: {err}");
}

#[tokio::test]
async fn self_signed_backends_pass_only_with_chain_validation_off() {
    let backend = Identity::self_signed_server("localhost");
    let addr = tls_echo_peer(&backend, ClientAuth::AnyCertificate).await;
    let client = Identity::self_signed_client("client", KeyKind::EcdsaP256);
    let strict = backend_client_config(Some(&identity(&client, &[])), FULL, &trust(&[], &[])).unwrap();
    assert!(talk(strict, addr, "localhost").await.is_err());
    let relaxed = backend_client_config(Some(&identity(&client, &[])), NO_CHAIN, &trust(&[], &[])).unwrap();
    assert!(talk(relaxed, addr, "localhost").await.unwrap().starts_with("fp="));
}

#[tokio::test]
async fn name_validation_is_independent_of_chain_validation() {
    let backend_ca = Identity::ca("Backend CA");
    let addr = tls_echo_peer(&backend_ca.server("localhost"), ClientAuth::AnyCertificate).await;
    let client = Identity::self_signed_client("client", KeyKind::EcdsaP256);
    let trusted = trust(&[&backend_ca], &[]);
    let cases = [(FULL, false), (NO_NAME, true), (NO_CHAIN, false), (NOTHING, true)];
    for (switches, passes) in cases {
        let config = backend_client_config(Some(&identity(&client, &[])), switches, &trusted).unwrap();
        let result = talk(config, addr, "api.other.example").await;
        assert_eq!(result.is_ok(), passes, "{switches:?}: {result:?}");
        if let Err(err) = result {
            assert!(err.contains("not valid for name"), "{switches:?}: {err}");
            assert!(err.contains("api.other.example") && err.contains("localhost"), "names both sides: {err}");
        }
    }
}

#[tokio::test]
async fn uploaded_intermediates_complete_chains_the_backend_does_not_send() {
    let root = Identity::ca("Backend Root");
    let intermediate = root.intermediate("Backend Intermediate");
    let addr = tls_echo_peer(&intermediate.server("localhost"), ClientAuth::AnyCertificate).await;
    let client = Identity::self_signed_client("client", KeyKind::EcdsaP256);
    let without = backend_client_config(Some(&identity(&client, &[])), FULL, &trust(&[&root], &[])).unwrap();
    assert!(talk(without, addr, "localhost").await.unwrap_err().contains("UnknownIssuer"));
    let with = backend_client_config(Some(&identity(&client, &[])), FULL, &trust(&[&root], &[&intermediate])).unwrap();
    assert!(talk(with, addr, "localhost").await.unwrap().starts_with("fp="));
}

#[tokio::test]
async fn the_whole_client_chain_is_sent_and_foreign_certificates_are_rejected() {
    let backend_ca = Identity::ca("Backend CA");
    let client_root = Identity::ca("Client Root");
    let client_intermediate = client_root.intermediate("Client Intermediate");
    let client = client_intermediate.client("chained-client", KeyKind::Rsa2048);
    let addr = tls_echo_peer(&backend_ca.server("localhost"), ClientAuth::IssuedBy(&client_root)).await;
    let trusted = trust(&[&backend_ca], &[]);

    let chained = backend_client_config(Some(&identity(&client, &[&client_intermediate])), FULL, &trusted).unwrap();
    assert_eq!(talk(chained, addr, "localhost").await.unwrap(), format!("fp={} alpn=", sha1_hex(&client.cert_der)));

    let leaf_only = backend_client_config(Some(&identity(&client, &[])), FULL, &trusted).unwrap();
    let err = talk(leaf_only, addr, "localhost").await.unwrap_err();
    assert!(err.to_lowercase().contains("unknownca") || err.contains("UnknownCA"), "{err}");

    let stranger = Identity::ca("Other CA").client("stranger", KeyKind::EcdsaP256);
    let foreign = backend_client_config(Some(&identity(&stranger, &[])), FULL, &trusted).unwrap();
    assert!(talk(foreign, addr, "localhost").await.is_err(), "the backend rejects a certificate from another CA");
}
