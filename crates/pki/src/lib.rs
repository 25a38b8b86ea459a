//! Certificate material: PKCS#12 and PEM import, and the facts the management model shows
//! (subject, SHA-1 thumbprint, expiry).
//!
//! Everything here is pure: bytes in, validated material or a precise error out. Private keys
//! leave this crate only inside [`zeroize::Zeroizing`] buffers.

mod backend_tls;
mod ca;
mod danger;
mod expiry;
mod facts;
mod pkcs12;
mod tls_failure;

pub use backend_tls::{
    BackendTrust, ClientIdentity, HandshakeRecord, Observed, TlsConfigError, backend_client_config,
    listener_server_config, observed_backend_client_config,
};
pub use ca::{CaImportError, ImportedCaCertificate, certificate_pem, import_ca_certificate};
pub use facts::{
    CertificateFacts, ExpiryStage, FactsError, certificate_facts, distinguished_name, expiry_warning, format_utc,
    parse_utc,
};
pub use pkcs12::{
    ImportedCertificate, Pkcs12Error, decode_wrapped_base64, import_pem, import_pkcs12, import_pkcs12_base64,
};
pub use tls_failure::{TlsFailure, alert_name, find_tls_error};
