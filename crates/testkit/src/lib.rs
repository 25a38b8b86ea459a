//! Test PKI generated at test time: keys and certificates from rcgen, PKCS#12 files from the
//! `openssl` CLI (an independent implementation, so imports are checked against a real writer).
#![allow(clippy::unwrap_used, clippy::missing_panics_doc)] // test support: a failure here is a broken test

mod browser;
mod faults;
mod http_backend;
mod openbao;
mod postgres;
mod raw_client;
mod scripted_backend;
mod tls_peer;

pub use browser::{Browser, browser_installed, test_output_dir};
pub use faults::{Filler, Immutable, SmallDisk};
pub use http_backend::{ClosedConnection, HttpsBackend, https_echo_backend, pattern, self_signed_echo_backend};
pub use openbao::OpenBao;
pub use postgres::{PostgresServer, shared_server, test_database};
pub use raw_client::{End, Framing, Parsed, Piece, RawClient, RawOutcome, RawResponse, parse_responses};
pub use scripted_backend::{ConnectionLog, Options, Reading, Received, ScriptedBackend, SlowHandshakes, Step};
pub use tls_peer::{ClientAuth, sha1_hex, tls_echo_peer, tls_terminator};

use std::path::{Path, PathBuf};
use std::process::Command;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

/// Key algorithms the import must accept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    Rsa2048,
    Rsa4096,
    EcdsaP256,
    EcdsaP384,
}

/// A certificate with its key, as PEM and DER.
pub struct Identity {
    pub cert_pem: String,
    pub cert_der: Vec<u8>,
    pub key_pem: String,
    key: KeyPair,
    params: CertificateParams,
}

impl Identity {
    /// A self-signed CA that can sign leaves and intermediates.
    pub fn ca(common_name: &str) -> Self {
        let mut params = params(common_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Self::from_parts(cert, key, params)
    }

    /// An intermediate CA signed by `self`.
    pub fn intermediate(&self, common_name: &str) -> Self {
        let mut params = params(common_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        self.sign(params, KeyPair::generate().unwrap())
    }

    /// A client-authentication leaf signed by `self`.
    pub fn client(&self, common_name: &str, kind: KeyKind) -> Self {
        let mut params = params(common_name);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.sign(params, generate_key(kind))
    }

    /// A server leaf for `dns_name` (and 127.0.0.1) signed by `self`.
    pub fn server(&self, dns_name: &str) -> Self {
        let mut params = params(dns_name);
        params.subject_alt_names =
            vec![SanType::DnsName(dns_name.try_into().unwrap()), SanType::IpAddress([127, 0, 0, 1].into())];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.sign(params, KeyPair::generate().unwrap())
    }

    /// A self-signed server certificate for `dns_name` and 127.0.0.1 (a "self-signed backend").
    pub fn self_signed_server(dns_name: &str) -> Self {
        let mut params = params(dns_name);
        params.subject_alt_names =
            vec![SanType::DnsName(dns_name.try_into().unwrap()), SanType::IpAddress([127, 0, 0, 1].into())];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Self::from_parts(cert, key, params)
    }

    /// A server leaf for `dns_name` only (no IP address) signed by `self`: reached as
    /// `localhost`, it is a name mismatch.
    pub fn server_named(&self, dns_name: &str) -> Self {
        let mut params = params(dns_name);
        params.subject_alt_names = vec![SanType::DnsName(dns_name.try_into().unwrap())];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.sign(params, KeyPair::generate().unwrap())
    }

    /// A self-signed client certificate of the given key type.
    pub fn self_signed_client(common_name: &str, kind: KeyKind) -> Self {
        let mut params = params(common_name);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let key = generate_key(kind);
        let cert = params.self_signed(&key).unwrap();
        Self::from_parts(cert, key, params)
    }

    /// A self-signed client certificate that expires `seconds` from now.
    pub fn expiring_client(common_name: &str, seconds: i64) -> Self {
        let mut params = params(common_name);
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::minutes(1);
        params.not_after = now + time::Duration::seconds(seconds);
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Self::from_parts(cert, key, params)
    }

    /// A self-signed client certificate whose validity ended in the past.
    pub fn expired_client(common_name: &str) -> Self {
        let mut params = params(common_name);
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Self::from_parts(cert, key, params)
    }

    /// notAfter in Unix seconds, as the certificate encodes it (whole seconds).
    pub fn not_after_unix(&self) -> i64 {
        self.params.not_after.unix_timestamp()
    }

    /// PKCS#8 DER of the private key.
    pub fn key_der(&self) -> Vec<u8> {
        self.key.serialize_der()
    }

    fn sign(&self, params: CertificateParams, key: KeyPair) -> Self {
        let issuer = Issuer::from_params(&self.params, &self.key);
        let cert = params.signed_by(&key, &issuer).unwrap();
        Self::from_parts(cert, key, params)
    }

    fn from_parts(cert: rcgen::Certificate, key: KeyPair, params: CertificateParams) -> Self {
        Self { cert_pem: cert.pem(), cert_der: cert.der().to_vec(), key_pem: key.serialize_pem(), key, params }
    }
}

fn params(common_name: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "certgate tests");
    dn.push(DnType::CommonName, common_name);
    params.distinguished_name = dn;
    params
}

fn generate_key(kind: KeyKind) -> KeyPair {
    match kind {
        KeyKind::EcdsaP256 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap(),
        KeyKind::EcdsaP384 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap(),
        // rcgen cannot generate RSA keys with aws-lc-rs at arbitrary sizes, so openssl does it.
        KeyKind::Rsa2048 => rsa_key(2048),
        KeyKind::Rsa4096 => rsa_key(4096),
    }
}

fn rsa_key(bits: u32) -> KeyPair {
    let out = Command::new("openssl")
        .args(["genpkey", "-algorithm", "RSA", "-pkeyopt", &format!("rsa_keygen_bits:{bits}")])
        .output()
        .expect("the openssl CLI is needed by the tests");
    assert!(out.status.success(), "openssl genpkey failed: {}", String::from_utf8_lossy(&out.stderr));
    KeyPair::from_pem(&String::from_utf8(out.stdout).unwrap()).unwrap()
}

/// How `openssl pkcs12 -export` should encrypt and protect the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PfxFlavor {
    /// OpenSSL 3 defaults: PBES2 / AES-256-CBC, HMAC-SHA-256 MAC.
    Modern,
    /// `-legacy`: RC2-40 for certificates, 3DES for the key, SHA-1 MAC.
    Legacy,
    /// 3DES for both, SHA-1 MAC (Windows Server 2016 and older).
    TripleDes,
    /// No encryption and no MAC at all.
    Unprotected,
}

/// Writes `leaf` (+ `chain`) as a PKCS#12 file with `openssl pkcs12 -export` and returns its bytes.
pub fn pfx(leaf: &Identity, chain: &[&Identity], password: &str, flavor: PfxFlavor) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let cert = write(dir.path(), "leaf.pem", &leaf.cert_pem);
    let key = write(dir.path(), "leaf.key", &leaf.key_pem);
    let out = dir.path().join("out.pfx");
    let mut cmd = Command::new("openssl");
    cmd.args(["pkcs12", "-export", "-in"]).arg(&cert).arg("-inkey").arg(&key).arg("-out").arg(&out);
    cmd.arg("-passout").arg(format!("pass:{password}"));
    if !chain.is_empty() {
        let pem: String = chain.iter().map(|c| c.cert_pem.as_str()).collect();
        cmd.arg("-certfile").arg(write(dir.path(), "chain.pem", &pem));
    }
    match flavor {
        PfxFlavor::Modern => {}
        PfxFlavor::Legacy => {
            cmd.arg("-legacy");
        }
        PfxFlavor::TripleDes => {
            cmd.args(["-keypbe", "PBE-SHA1-3DES", "-certpbe", "PBE-SHA1-3DES", "-macalg", "sha1"]);
        }
        PfxFlavor::Unprotected => {
            cmd.args(["-keypbe", "NONE", "-certpbe", "NONE", "-nomac"]);
        }
    }
    run(&mut cmd);
    std::fs::read(out).unwrap()
}

/// A PKCS#12 file holding only a certificate (no key), as `openssl pkcs12 -nokeys` writes it.
pub fn pfx_without_key(cert: &Identity, password: &str) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let cert_path = write(dir.path(), "cert.pem", &cert.cert_pem);
    let out = dir.path().join("out.pfx");
    let mut cmd = Command::new("openssl");
    cmd.args(["pkcs12", "-export", "-nokeys", "-in"]).arg(&cert_path).arg("-out").arg(&out);
    cmd.arg("-passout").arg(format!("pass:{password}"));
    run(&mut cmd);
    std::fs::read(out).unwrap()
}

/// A PKCS#12 file with one key bag per `(certificate, key)` pair, written by p12-keystore (openssl
/// refuses to write a key next to a certificate it does not match).
pub fn pfx_from_pairs(pairs: &[(&Identity, &Identity)], password: &str) -> Vec<u8> {
    use p12_keystore::{Certificate, KeyStore, KeyStoreEntry, PrivateKey, PrivateKeyChain};
    let mut store = KeyStore::new();
    for (i, (cert_of, key_of)) in pairs.iter().enumerate() {
        let key = PrivateKey::from_der(&key_of.key.serialize_der()).unwrap();
        let cert = Certificate::from_der(&cert_of.cert_der).unwrap();
        let chain = PrivateKeyChain::new(vec![u8::try_from(i).unwrap() + 1], key, [cert]);
        store.add_entry(&format!("entry{i}"), KeyStoreEntry::PrivateKeyChain(chain));
    }
    store.writer(password).write().unwrap()
}

/// The SHA-1 fingerprint as `openssl x509 -fingerprint -sha1` prints it, colons removed.
pub fn openssl_sha1_fingerprint(cert_pem: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "cert.pem", cert_pem);
    let out =
        Command::new("openssl").args(["x509", "-noout", "-fingerprint", "-sha1", "-in"]).arg(&path).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    text.trim().split_once('=').unwrap().1.replace(':', "")
}

fn write(dir: &Path, name: &str, contents: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path
}

fn run(cmd: &mut Command) {
    let out = cmd.output().expect("the openssl CLI is needed by the tests");
    assert!(out.status.success(), "{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
}
