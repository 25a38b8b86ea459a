use certgate_model::{ConfigState, EntityId, EntityKind, Operation, PolicyScope, StoredCertificate};
use zeroize::Zeroizing;

use crate::{Record, Store, StoreError};

/// The collections the data plane is compiled from.
const CONFIG_KINDS: [EntityKind; 6] = [
    EntityKind::Certificate,
    EntityKind::CaCertificate,
    EntityKind::Backend,
    EntityKind::Api,
    EntityKind::Operation,
    EntityKind::Policy,
];

/// Reads everything the data plane is compiled from. Collections are read one after the other,
/// not in one transaction: a change landing in between raises the revision again, and the
/// control loop compiles once more, so the published snapshot always catches up.
pub async fn load_config(store: &dyn Store) -> Result<ConfigState, StoreError> {
    let revision = *store.changes().borrow();
    let mut state = ConfigState::default();
    state.revision = revision;
    for kind in CONFIG_KINDS {
        for record in store.list(kind).await? {
            insert(&mut state, record)?;
        }
    }
    Ok(state)
}

/// Brings `state` up to date with what changed in the store since `state.revision`: work in
/// proportion to the change, not to the size of the configuration. Returns the (kind,
/// case-folded record id) of every entity that changed.
pub async fn apply_changes(
    store: &dyn Store,
    state: &mut ConfigState,
) -> Result<Vec<(EntityKind, String)>, StoreError> {
    let changes = store.changed_since(state.revision).await?;
    let mut changed = Vec::with_capacity(changes.deleted.len() + changes.written.len());
    for (kind, key) in changes.deleted {
        if CONFIG_KINDS.contains(&kind) {
            remove(state, kind, &key);
            changed.push((kind, key));
        }
    }
    for record in changes.written {
        if CONFIG_KINDS.contains(&record.kind) {
            changed.push((record.kind, record.id.key()));
            insert(state, record)?;
        }
    }
    state.revision = state.revision.max(changes.revision);
    Ok(changed)
}

fn insert(state: &mut ConfigState, record: Record) -> Result<(), StoreError> {
    match record.kind {
        EntityKind::Certificate => {
            let private_key = secret(&record)?;
            state.put_certificate(StoredCertificate { certificate: record.decode()?, id: record.id, private_key });
        }
        EntityKind::CaCertificate => state.put_ca_certificate(record.id.clone(), record.decode()?),
        EntityKind::Backend => state.put_backend(record.id.clone(), record.decode()?),
        EntityKind::Api => state.put_api(record.id.clone(), record.decode()?),
        EntityKind::Operation => {
            let operation: Operation = record.decode()?;
            let id = EntityId::parse(record.id.child()).unwrap_or(record.id);
            state.put_operation(id, operation);
        }
        EntityKind::Policy => {
            let scope =
                PolicyScope::from_record_id(&record.id).ok_or_else(|| corrupt(&record, "unknown policy scope"))?;
            let text = String::from_utf8(secret(&record)?.to_vec())
                .map_err(|_| corrupt(&record, "policy text is not UTF-8"))?;
            state.put_policy(scope, text);
        }
        EntityKind::Token => {}
    }
    Ok(())
}

/// Removes the entity with record key `key` (case-folded record id), if present.
fn remove(state: &mut ConfigState, kind: EntityKind, key: &str) {
    match kind {
        EntityKind::Certificate => drop(state.certificates.remove(key)),
        EntityKind::CaCertificate => drop(state.ca_certificates.remove(key)),
        EntityKind::Backend => drop(state.backends.remove(key)),
        EntityKind::Api => drop(state.apis.remove(key)),
        EntityKind::Operation => state.remove_operation(key),
        EntityKind::Policy => drop(state.policies.remove(key)),
        EntityKind::Token => {}
    }
}

fn secret(record: &Record) -> Result<Zeroizing<Vec<u8>>, StoreError> {
    record.secret.clone().ok_or_else(|| corrupt(record, "the sealed secret is missing"))
}

fn corrupt(record: &Record, reason: &str) -> StoreError {
    StoreError::Corrupt { kind: record.kind.collection(), id: record.id.to_string(), reason: reason.to_owned() }
}
