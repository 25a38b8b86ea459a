use std::collections::BTreeMap;

use zeroize::Zeroizing;

use crate::{Api, Backend, CaCertificate, Certificate, EntityId, Operation, PolicyScope};

/// Everything the data plane is compiled from, read from the store in one pass. The control
/// loop keeps one for the node's life and applies each change to it, so it holds the opened
/// private keys of every certificate (each zeroized when dropped, see [`StoredCertificate`]).
///
/// Each collection is keyed by record key (the case-folded record id, see
/// [`EntityId::key`]): applying a change and resolving a reference are one lookup each,
/// whatever the size of the configuration.
#[derive(Default)]
pub struct ConfigState {
    /// The store revision this state reflects (at least).
    pub revision: i64,
    pub certificates: ByKey<StoredCertificate>,
    pub ca_certificates: ByKey<(EntityId, CaCertificate)>,
    pub backends: ByKey<(EntityId, Backend)>,
    pub apis: ByKey<(EntityId, Api)>,
    /// Keyed by the operation's record key `api:operation`, so an API's operations are one
    /// range; the value holds the operation's own id (its API is in [`Operation::api_id`]).
    pub operations: ByKey<(EntityId, Operation)>,
    /// Policy documents as stored (XML text), keyed by the scope's record key.
    pub policies: ByKey<(PolicyScope, String)>,
}

/// A collection of [`ConfigState`], by record key.
pub type ByKey<T> = BTreeMap<String, T>;

impl ConfigState {
    /// Adds or replaces a certificate (and so for each collection below).
    pub fn put_certificate(&mut self, certificate: StoredCertificate) {
        self.certificates.insert(certificate.id.key(), certificate);
    }

    pub fn put_ca_certificate(&mut self, id: EntityId, ca: CaCertificate) {
        self.ca_certificates.insert(id.key(), (id, ca));
    }

    pub fn put_backend(&mut self, id: EntityId, backend: Backend) {
        self.backends.insert(id.key(), (id, backend));
    }

    pub fn put_api(&mut self, id: EntityId, api: Api) {
        self.apis.insert(id.key(), (id, api));
    }

    /// `id` is the operation's own id, without its API's.
    pub fn put_operation(&mut self, id: EntityId, operation: Operation) {
        self.operations.insert(EntityId::scoped(&operation.api_id, &id).key(), (id, operation));
    }

    pub fn put_policy(&mut self, scope: PolicyScope, text: String) {
        self.policies.insert(scope.record_id().key(), (scope, text));
    }

    /// The operations of the API with record key `api`.
    pub fn operations_of<'s>(&'s self, api: &str) -> impl Iterator<Item = &'s (EntityId, Operation)> + 's {
        let start = format!("{api}:");
        self.operations.range(start.clone()..).take_while(move |(key, _)| key.starts_with(&start)).map(|(_, op)| op)
    }
}

/// A certificate with its private key (PKCS#8 DER).
pub struct StoredCertificate {
    pub id: EntityId,
    pub certificate: Certificate,
    pub private_key: Zeroizing<Vec<u8>>,
}
