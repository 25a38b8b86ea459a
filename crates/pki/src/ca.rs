use certgate_model::Thumbprint;
use rustls_pki_types::pem::{PemObject, SectionKind};

use crate::facts::certificate_facts;

/// A public CA certificate, normalised to DER.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedCaCertificate {
    pub subject: String,
    pub thumbprint: Thumbprint,
    pub not_after: i64,
    pub der: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CaImportError {
    #[error("CA certificates must be public: the data carries a private key")]
    CarriesPrivateKey,
    #[error("the data holds {0} certificates; upload each CA certificate as its own entity")]
    SeveralCertificates(usize),
    #[error("the data holds no certificate (expected DER or PEM 'BEGIN CERTIFICATE')")]
    NoCertificate,
    #[error("the data is not a valid X.509 certificate: {0}")]
    Invalid(String),
}

/// Accepts one certificate as DER or PEM. Anything carrying a private key is refused, so a
/// private key can never end up in the public CA store by mistake.
pub fn import_ca_certificate(data: &[u8]) -> Result<ImportedCaCertificate, CaImportError> {
    let der = if data.trim_ascii_start().starts_with(b"-----BEGIN") {
        single_pem_certificate(data)?
    } else {
        if looks_like_pkcs12(data) {
            return Err(CaImportError::CarriesPrivateKey);
        }
        data.to_vec()
    };
    let facts = certificate_facts(&der).map_err(|e| CaImportError::Invalid(e.to_string()))?;
    Ok(ImportedCaCertificate { subject: facts.subject, thumbprint: facts.thumbprint, not_after: facts.not_after, der })
}

/// The PEM text of a DER certificate, wrapped at 64 columns as openssl writes it.
pub fn certificate_pem(der: &[u8]) -> String {
    use base64::Engine;
    let encoded = base64::engine::general_purpose::STANDARD.encode(der);
    let mut pem = String::with_capacity(encoded.len() + encoded.len() / 64 + 60);
    pem.push_str("-----BEGIN CERTIFICATE-----\n");
    for line in encoded.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(line));
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    pem
}

fn single_pem_certificate(pem: &[u8]) -> Result<Vec<u8>, CaImportError> {
    let mut certificates = Vec::new();
    for section in <(SectionKind, Vec<u8>)>::pem_slice_iter(pem) {
        let (kind, der) = section.map_err(|e| CaImportError::Invalid(format!("malformed PEM: {e}")))?;
        match kind {
            SectionKind::Certificate => certificates.push(der),
            SectionKind::PrivateKey | SectionKind::RsaPrivateKey | SectionKind::EcPrivateKey => {
                return Err(CaImportError::CarriesPrivateKey);
            }
            _ => {}
        }
    }
    match certificates.len() {
        0 => Err(CaImportError::NoCertificate),
        1 => Ok(certificates.remove(0)),
        n => Err(CaImportError::SeveralCertificates(n)),
    }
}

/// A PKCS#12 file parses far enough to fail on the password (or succeed with an empty one);
/// anything else fails as malformed DER.
fn looks_like_pkcs12(data: &[u8]) -> bool {
    use p12_keystore::error::Error;
    !matches!(
        p12_keystore::Pkcs12Archive::from_pkcs12(data, ""),
        Err(Error::DerError(_) | Error::InvalidVersion | Error::UnsupportedContentType)
    )
}
