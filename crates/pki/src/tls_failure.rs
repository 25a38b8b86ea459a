//! Why a backend handshake failed, in one vocabulary: the `reason` code is the same in the
//! gateway's 500 log line, its `backend_tls_handshake_failures` metric and the handshake probe's
//! report.

/// A failed handshake's `reason` code and its precise cause.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFailure {
    pub reason: &'static str,
    pub cause: String,
}

impl TlsFailure {
    pub fn of(error: &rustls::Error) -> Self {
        use rustls::{CertificateError, Error};
        let (reason, cause) = match error {
            Error::InvalidCertificate(CertificateError::NotValidForNameContext { expected, presented }) => (
                "name_mismatch",
                format!("name mismatch: backend presented {}, expected {expected:?}", presented.join(", ")),
            ),
            Error::InvalidCertificate(CertificateError::NotValidForName) => {
                ("name_mismatch", "name mismatch: backend certificate is not valid for the host".into())
            }
            Error::InvalidCertificate(CertificateError::UnknownIssuer) => (
                "untrusted_chain",
                "certificate chain not trusted: the backend's certificate is not issued by a trusted CA".into(),
            ),
            Error::InvalidCertificate(CertificateError::Expired | CertificateError::ExpiredContext { .. }) => {
                ("expired_certificate", "certificate chain not trusted: the backend's certificate has expired".into())
            }
            Error::InvalidCertificate(other) => {
                ("untrusted_chain", format!("certificate chain not trusted: {other:?}"))
            }
            Error::AlertReceived(alert) => (
                "client_certificate_rejected",
                format!("backend rejected the client certificate: alert {}", alert_name(alert)),
            ),
            other => ("handshake_failed", format!("TLS handshake failed: {other}")),
        };
        TlsFailure { reason, cause }
    }
}

/// The rustls error `error` is or wraps. io::Error hides its payload from `source()`, and IO
/// layers may nest them: look inside explicitly, level by level.
pub fn find_tls_error<'e>(error: &'e (dyn std::error::Error + 'static)) -> Option<&'e rustls::Error> {
    let mut current = error;
    loop {
        if let Some(tls) = current.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        current = current.downcast_ref::<std::io::Error>()?.get_ref()?;
    }
}

/// `BadCertificate` → `bad_certificate`, as RFC 8446 spells alerts.
pub fn alert_name(alert: &rustls::AlertDescription) -> String {
    let mut name = String::new();
    for (i, c) in format!("{alert:?}").chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            name.push('_');
        }
        name.push(c.to_ascii_lowercase());
    }
    name
}
