use certgate_model::{ConfigState, EntityKind, Operation, PolicyScope, StoredCertificate};
use zeroize::Zeroizing;

use crate::{Record, Store, StoreError};

/// Reads everything the data plane is compiled from. Collections are read one after the other,
/// not in one transaction: a change landing in between raises the revision again, and the
/// control loop compiles once more, so the published snapshot always catches up.
pub async fn load_config(store: &dyn Store) -> Result<ConfigState, StoreError> {
    let revision = *store.changes().borrow();
    let mut state = ConfigState { revision, ..ConfigState::default() };
    for record in store.list(EntityKind::Certificate).await? {
        let private_key = secret(&record)?;
        state.certificates.push(StoredCertificate { certificate: record.decode()?, id: record.id, private_key });
    }
    state.ca_certificates = decode_all(store, EntityKind::CaCertificate).await?;
    state.backends = decode_all(store, EntityKind::Backend).await?;
    state.apis = decode_all(store, EntityKind::Api).await?;
    state.operations = decode_all::<Operation>(store, EntityKind::Operation)
        .await?
        .into_iter()
        .map(|(id, op)| (certgate_model::EntityId::parse(id.child()).unwrap_or(id), op))
        .collect();
    for record in store.list(EntityKind::Policy).await? {
        let scope = PolicyScope::from_record_id(&record.id).ok_or_else(|| corrupt(&record, "unknown policy scope"))?;
        let text =
            String::from_utf8(secret(&record)?.to_vec()).map_err(|_| corrupt(&record, "policy text is not UTF-8"))?;
        state.policies.push((scope, text));
    }
    Ok(state)
}

async fn decode_all<T: serde::de::DeserializeOwned>(
    store: &dyn Store,
    kind: EntityKind,
) -> Result<Vec<(certgate_model::EntityId, T)>, StoreError> {
    store.list(kind).await?.into_iter().map(|r| Ok((r.id.clone(), r.decode()?))).collect()
}

fn secret(record: &Record) -> Result<Zeroizing<Vec<u8>>, StoreError> {
    record.secret.clone().ok_or_else(|| corrupt(record, "the sealed secret is missing"))
}

fn corrupt(record: &Record, reason: &str) -> StoreError {
    StoreError::Corrupt { kind: record.kind.collection(), id: record.id.to_string(), reason: reason.to_owned() }
}
