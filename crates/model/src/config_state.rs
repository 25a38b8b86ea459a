use zeroize::Zeroizing;

use crate::{Api, Backend, CaCertificate, Certificate, EntityId, Operation, PolicyScope};

/// Everything the data plane is compiled from, read from the store in one pass. The control
/// loop keeps one for the node's life and applies each change to it, so it holds the opened
/// private keys of every certificate (each zeroized when dropped, see [`StoredCertificate`]).
#[derive(Default)]
pub struct ConfigState {
    /// The store revision this state reflects (at least).
    pub revision: i64,
    pub certificates: Vec<StoredCertificate>,
    pub ca_certificates: Vec<(EntityId, CaCertificate)>,
    pub backends: Vec<(EntityId, Backend)>,
    pub apis: Vec<(EntityId, Api)>,
    /// Keyed by the operation's own id; the API is in [`Operation::api_id`].
    pub operations: Vec<(EntityId, Operation)>,
    /// Policy documents as stored (XML text), by scope.
    pub policies: Vec<(PolicyScope, String)>,
}

/// A certificate with its private key (PKCS#8 DER).
pub struct StoredCertificate {
    pub id: EntityId,
    pub certificate: Certificate,
    pub private_key: Zeroizing<Vec<u8>>,
}
