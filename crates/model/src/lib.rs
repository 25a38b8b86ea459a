//! The shared vocabulary of certgate: entity ids, kinds, and the validated domain entities.
//!
//! Nothing here performs IO. REST DTOs live in the admin crate and are converted into these types
//! by validating conversions; the store persists these types; the data plane compiles them.

mod certificate;
mod clock;
mod config_state;
mod gateway_config;
mod id;
mod kind;
mod text;
mod token;

pub use certificate::{
    CaCertificate, CaStoreName, Certificate, CertificateSource, LastStatus, LastStatusCode, Thumbprint,
};
pub use clock::unix_now;
pub use config_state::{ByKey, ConfigState, StoredCertificate};
pub use gateway_config::{
    Api, ApiContact, ApiDescription, ApiLicense, Authorization, Backend, BackendCredentials, BackendTls, Operation,
    OperationDescription, Policy, PolicyScope,
};
pub use id::{EntityId, IdError};
pub use kind::EntityKind;
pub use text::{error_chain, percent_encode};
pub use token::{Role, Token};
