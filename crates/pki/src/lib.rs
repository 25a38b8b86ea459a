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

pub use backend_tls::{BackendTrust, ClientIdentity, TlsConfigError, backend_client_config, listener_server_config};
pub use ca::{CaImportError, ImportedCaCertificate, certificate_pem, import_ca_certificate};
pub use facts::{CertificateFacts, ExpiryStage, FactsError, certificate_facts, expiry_warning, format_utc, parse_utc};
pub use pkcs12::{
    ImportedCertificate, Pkcs12Error, decode_wrapped_base64, import_pem, import_pkcs12, import_pkcs12_base64,
};
