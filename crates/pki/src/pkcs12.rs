use certgate_model::Thumbprint;
use p12_keystore::{Pkcs12Archive, error::Error as P12Error};
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use x509_parser::prelude::{FromDer, X509Certificate};
use zeroize::Zeroizing;

use crate::facts::{CertificateFacts, certificate_facts};

/// A client certificate ready to be stored: the leaf with its chain and its private key.
pub struct ImportedCertificate {
    pub subject: String,
    pub thumbprint: Thumbprint,
    pub not_after: i64,
    /// Leaf first, then the intermediates that lead towards its root, as sent in the handshake.
    pub chain: Vec<Vec<u8>>,
    /// PKCS#8 DER of the leaf's private key.
    pub private_key: Zeroizing<Vec<u8>>,
    /// Accepted-but-notable facts, e.g. an expired certificate.
    pub warnings: Vec<String>,
}

impl std::fmt::Debug for ImportedCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImportedCertificate")
            .field("subject", &self.subject)
            .field("thumbprint", &self.thumbprint)
            .field("not_after", &self.not_after)
            .field("chain_len", &self.chain.len())
            .field("private_key", &"<redacted>")
            .finish()
    }
}

/// Why a PKCS#12 file was rejected. Messages name the cause and never echo secret material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Pkcs12Error {
    #[error(
        "the data is PEM text, not a PKCS#12 (PFX) file; upload a .pfx that holds the certificate and its private key"
    )]
    PemNotPkcs12,
    #[error("the data is not a PKCS#12 (PFX) file (it is truncated or not PKCS#12 at all: {0})")]
    NotPkcs12(String),
    #[error("the password is wrong: the file's integrity check (MAC) failed")]
    WrongPassword,
    #[error("the password is wrong or the file is corrupt (the file has no integrity check to tell which)")]
    WrongPasswordOrCorrupt,
    #[error("the PKCS#12 file uses an unsupported algorithm: {0}")]
    Unsupported(String),
    #[error("the PKCS#12 file holds no private key; a client certificate needs one")]
    NoPrivateKey,
    #[error("the PKCS#12 file holds a private key but no certificate")]
    NoCertificate,
    #[error("the PKCS#12 file holds {0} private keys; exactly one leaf certificate with its key is expected")]
    SeveralKeys(usize),
    #[error("the private key does not match the certificate '{0}'")]
    KeyMismatch(String),
    #[error("the private key is not a supported type (RSA 2048-4096 bits, ECDSA P-256/P-384/P-521, Ed25519)")]
    UnsupportedKey,
    #[error("a certificate in the PKCS#12 file is invalid: {0}")]
    InvalidCertificate(String),
    #[error("{0}")]
    Pem(String),
    #[error("the value is not valid base64")]
    NotBase64,
}

/// Imports a PKCS#12 file given as standard base64 text, as every place that takes one inline
/// does (an upload's `data`, a policy's `authentication-certificate body`, a vault secret's
/// `pfx`). ASCII whitespace anywhere is ignored, so base64 wrapped at 64 or 76 columns (the
/// `base64` and `openssl base64` output) is accepted the same everywhere.
pub fn import_pkcs12_base64(text: &str, password: &str) -> Result<ImportedCertificate, Pkcs12Error> {
    let der = decode_wrapped_base64(text).ok_or(Pkcs12Error::NotBase64)?;
    import_pkcs12(&der, password)
}

/// Standard base64 with any ASCII whitespace removed first; `None` when it is not base64.
pub fn decode_wrapped_base64(text: &str) -> Option<Zeroizing<Vec<u8>>> {
    use base64::Engine as _;
    let compact = Zeroizing::new(text.bytes().filter(|b| !b.is_ascii_whitespace()).collect::<Vec<u8>>());
    base64::engine::general_purpose::STANDARD.decode(compact.as_slice()).ok().map(Zeroizing::new)
}

/// Imports a PKCS#12 file: decrypts it, finds the one leaf that has its private key, orders the
/// chain from the other certificates, and checks that key and certificate belong together.
pub fn import_pkcs12(der: &[u8], password: &str) -> Result<ImportedCertificate, Pkcs12Error> {
    if der.trim_ascii_start().starts_with(b"-----BEGIN") {
        return Err(Pkcs12Error::PemNotPkcs12);
    }
    let archive = Pkcs12Archive::from_pkcs12(der, password).map_err(classify)?;
    let keys = archive.keys;
    let key = match keys.len() {
        0 => return Err(Pkcs12Error::NoPrivateKey),
        1 => Zeroizing::new(keys[0].key.as_der().to_vec()),
        n => return Err(Pkcs12Error::SeveralKeys(n)),
    };
    drop(keys);
    assemble(key, archive.certs.iter().map(|bag| bag.cert.as_der().to_vec()).collect())
}

/// Imports a PEM certificate chain (leaf among them) and its PKCS#8 PEM private key, as a vault
/// secret or a Vault PKI issue response holds them.
pub fn import_pem(certificates_pem: &str, private_key_pem: &str) -> Result<ImportedCertificate, Pkcs12Error> {
    use rustls_pki_types::pem::PemObject;
    let key = match PrivateKeyDer::from_pem_slice(private_key_pem.as_bytes()) {
        Ok(PrivateKeyDer::Pkcs8(key)) => Zeroizing::new(key.secret_pkcs8_der().to_vec()),
        Ok(_) => {
            return Err(Pkcs12Error::Pem(
                "the private key must be PKCS#8 ('BEGIN PRIVATE KEY'); convert it with openssl pkcs8 -topk8 -nocrypt"
                    .into(),
            ));
        }
        Err(e) => return Err(Pkcs12Error::Pem(format!("no usable private key: {e}"))),
    };
    let certificates = rustls_pki_types::CertificateDer::pem_slice_iter(certificates_pem.as_bytes())
        .map(|c| c.map(|c| c.to_vec()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Pkcs12Error::Pem(format!("malformed certificate PEM: {e}")))?;
    assemble(key, certificates)
}

/// Finds the leaf that `key` belongs to among `certificates` and orders the chain after it.
fn assemble(key: Zeroizing<Vec<u8>>, certificates: Vec<Vec<u8>>) -> Result<ImportedCertificate, Pkcs12Error> {
    if certificates.is_empty() {
        return Err(Pkcs12Error::NoCertificate);
    }
    let key_public = public_key_of(&key)?;
    let certs: Vec<(Vec<u8>, CertificateFacts)> = certificates
        .into_iter()
        .map(|der| {
            certificate_facts(&der)
                .map(|facts| (der, facts))
                .map_err(|e| Pkcs12Error::InvalidCertificate(e.to_string()))
        })
        .collect::<Result<_, _>>()?;
    let Some(leaf_index) = certs.iter().position(|(_, f)| f.public_key == key_public) else {
        // Name the certificate the user most likely meant: the only one, or the first.
        return Err(Pkcs12Error::KeyMismatch(certs[0].1.subject.clone()));
    };

    let chain = order_chain(&certs, leaf_index)?;
    let leaf = &certs[leaf_index].1;
    let warnings = crate::expiry_warning(leaf.not_after, certgate_model::unix_now()).into_iter().collect();
    Ok(ImportedCertificate {
        subject: leaf.subject.clone(),
        thumbprint: leaf.thumbprint.clone(),
        not_after: leaf.not_after,
        chain,
        private_key: key,
        warnings,
    })
}

fn classify(error: P12Error) -> Pkcs12Error {
    match error {
        P12Error::MacError(_) => Pkcs12Error::WrongPassword,
        // Without a MAC a wrong password shows up only as undecryptable content.
        P12Error::Pkcs5Error(_) | P12Error::UnpadError | P12Error::InvalidPrivateKey | P12Error::InvalidLength => {
            Pkcs12Error::WrongPasswordOrCorrupt
        }
        P12Error::UnsupportedEncryptionScheme => Pkcs12Error::Unsupported("encryption scheme".into()),
        P12Error::UnsupportedMacAlgorithm => Pkcs12Error::Unsupported("MAC algorithm".into()),
        P12Error::X509Error(e) => Pkcs12Error::InvalidCertificate(e.to_string()),
        other => Pkcs12Error::NotPkcs12(other.to_string()),
    }
}

/// The subjectPublicKey bits of a PKCS#8 key, computed by the same provider that will sign with it.
fn public_key_of(pkcs8: &[u8]) -> Result<Vec<u8>, Pkcs12Error> {
    let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pkcs8.to_vec()));
    let signing_key =
        rustls::crypto::aws_lc_rs::sign::any_supported_type(&key_der).map_err(|_| Pkcs12Error::UnsupportedKey)?;
    let spki = signing_key.public_key().ok_or(Pkcs12Error::UnsupportedKey)?;
    let (_, parsed) =
        x509_parser::x509::SubjectPublicKeyInfo::from_der(spki.as_ref()).map_err(|_| Pkcs12Error::UnsupportedKey)?;
    Ok(parsed.subject_public_key.data.to_vec())
}

/// Leaf first, then each issuer found among the remaining certificates, stopping at a
/// self-signed certificate or when no issuer is present.
fn order_chain(certs: &[(Vec<u8>, CertificateFacts)], leaf_index: usize) -> Result<Vec<Vec<u8>>, Pkcs12Error> {
    let parsed: Vec<X509Certificate<'_>> = certs
        .iter()
        .map(|(der, _)| {
            X509Certificate::from_der(der).map(|(_, c)| c).map_err(|e| Pkcs12Error::InvalidCertificate(e.to_string()))
        })
        .collect::<Result<_, _>>()?;
    let mut order = vec![leaf_index];
    let mut current = leaf_index;
    while parsed[current].subject() != parsed[current].issuer() {
        let issuer = parsed[current].issuer();
        match (0..parsed.len()).find(|&i| !order.contains(&i) && parsed[i].subject() == issuer) {
            Some(next) => {
                order.push(next);
                current = next;
            }
            None => break,
        }
    }
    Ok(order.into_iter().map(|i| certs[i].0.clone()).collect())
}
