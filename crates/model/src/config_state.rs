use std::collections::{BTreeMap, BTreeSet};

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
    /// Keyed by the operation's record key `api:operation`; the value holds the operation's own
    /// id (its API is in [`Operation::api_id`]). Changed only through `put_operation` and
    /// `remove_operation`, which keep `operations_by_api` with it.
    operations: ByKey<(EntityId, Operation)>,
    /// API key → the record keys of its operations. Not a key range of `operations`: the
    /// case folding of an id can depend on what follows it (a final `Σ` folds to `ς` alone and
    /// to `σ` before `:x`), so `api:` is not always a prefix of its operations' keys.
    operations_by_api: BTreeMap<String, BTreeSet<String>>,
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
        let key = EntityId::scoped(&operation.api_id, &id).key();
        self.remove_operation(&key);
        self.operations_by_api.entry(operation.api_id.key()).or_default().insert(key.clone());
        self.operations.insert(key, (id, operation));
    }

    /// Removes the operation with record key `key`, if present.
    pub fn remove_operation(&mut self, key: &str) {
        let Some((_, operation)) = self.operations.remove(key) else { return };
        let api = operation.api_id.key();
        if let Some(keys) = self.operations_by_api.get_mut(&api) {
            keys.remove(key);
            if keys.is_empty() {
                self.operations_by_api.remove(&api);
            }
        }
    }

    /// Every operation, by record key.
    pub fn operations(&self) -> &ByKey<(EntityId, Operation)> {
        &self.operations
    }

    pub fn put_policy(&mut self, scope: PolicyScope, text: String) {
        self.policies.insert(scope.record_id().key(), (scope, text));
    }

    /// The operations of the API with record key `api`.
    pub fn operations_of<'s>(&'s self, api: &str) -> impl Iterator<Item = &'s (EntityId, Operation)> + 's {
        self.operations_by_api.get(api).into_iter().flatten().filter_map(|key| self.operations.get(key))
    }
}

/// A certificate with its private key (PKCS#8 DER).
pub struct StoredCertificate {
    pub id: EntityId,
    pub certificate: Certificate,
    pub private_key: Zeroizing<Vec<u8>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn operation(api: &EntityId) -> Operation {
        Operation {
            api_id: api.clone(),
            display_name: String::new(),
            method: "GET".into(),
            url_template: "/".into(),
            description: Default::default(),
        }
    }

    #[test]
    fn an_apis_operations_are_found_even_when_its_id_folds_differently_before_a_colon() {
        let id = |text: &str| EntityId::parse(text).expect("valid id");
        let (sigma, other) = (id("ΑΣ"), id("ΑΣΑ"));
        assert_ne!(format!("{}:", sigma.key()), EntityId::scoped(&sigma, &id("x")).key()[..5], "the case at stake");
        let mut state = ConfigState::default();
        for (api, op) in [(&sigma, "x"), (&sigma, "1"), (&other, "x")] {
            state.put_operation(id(op), operation(api));
        }
        state.put_operation(id("x"), operation(&sigma));
        let names = |state: &ConfigState, api: &EntityId| -> Vec<String> {
            state.operations_of(&api.key()).map(|(op, _)| op.to_string()).collect()
        };
        assert_eq!(names(&state, &sigma), ["1", "x"]);
        assert_eq!(names(&state, &other), ["x"]);
        state.remove_operation(&EntityId::scoped(&sigma, &id("x")).key());
        assert_eq!(names(&state, &sigma), ["1"]);
        assert_eq!(state.operations().len(), 2);
    }
}
