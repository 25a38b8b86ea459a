//! The checks certgate skips when a backend's TLS switches say so. Everything that weakens
//! backend validation is here, so a reviewer can find it by name.

use rustls::client::danger::ServerCertVerified;
use rustls::{CertificateError, Error as TlsError};
use rustls_pki_types::{CertificateDer, ServerName};

/// `validateCertificateName = false`: the chain was validated, only the name did not match.
pub(crate) fn accept_name_mismatch() -> ServerCertVerified {
    ServerCertVerified::assertion()
}

/// `validateCertificateChain = false`: the backend's certificate is not checked against any
/// trust anchor (self-signed backends). With `validate_name`, its names must still match.
pub(crate) fn skip_chain_validation(
    end_entity: &CertificateDer<'_>,
    server_name: &ServerName<'_>,
    validate_name: bool,
) -> Result<ServerCertVerified, TlsError> {
    if validate_name {
        let certificate = webpki::EndEntityCert::try_from(end_entity)
            .map_err(|_| TlsError::InvalidCertificate(CertificateError::BadEncoding))?;
        certificate.verify_is_valid_for_subject_name(server_name).map_err(|_| {
            TlsError::InvalidCertificate(CertificateError::NotValidForNameContext {
                expected: server_name.to_owned(),
                presented: presented_names(end_entity),
            })
        })?;
    }
    Ok(ServerCertVerified::assertion())
}

/// The DNS names and IP addresses a certificate claims, for the error that names the mismatch.
fn presented_names(end_entity: &CertificateDer<'_>) -> Vec<String> {
    use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};
    let Ok((_, certificate)) = X509Certificate::from_der(end_entity) else { return Vec::new() };
    let Ok(Some(san)) = certificate.subject_alternative_name() else { return Vec::new() };
    san.value
        .general_names
        .iter()
        .filter_map(|name| match name {
            GeneralName::DNSName(dns) => Some(format!("DnsName({dns:?})")),
            GeneralName::IPAddress(bytes) => match bytes.len() {
                4 => <[u8; 4]>::try_from(*bytes).ok().map(|b| format!("IpAddress({})", std::net::Ipv4Addr::from(b))),
                16 => <[u8; 16]>::try_from(*bytes).ok().map(|b| format!("IpAddress({})", std::net::Ipv6Addr::from(b))),
                _ => None,
            },
            _ => None,
        })
        .collect()
}
