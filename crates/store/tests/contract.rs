//! The store contract, run against the embedded SQLite store and a real PostgreSQL server.
#![allow(clippy::unwrap_used)]

use certgate_model::{EntityId, EntityKind};
use certgate_store::{
    MasterKey, PostgresOptions, Precondition, SqlStore, Store, StoreError, apply_changes, load_config,
};
use zeroize::Zeroizing;

fn id(text: &str) -> EntityId {
    EntityId::parse(text).unwrap()
}

async fn exercise(store: &dyn Store) {
    let kind = EntityKind::Certificate;
    let mut changes = store.changes();
    let before = *changes.borrow_and_update();

    let first =
        store.put(kind, &id("Alpha"), "{\"v\":1}".into(), Some(Zeroizing::new(b"k1".to_vec())), None).await.unwrap();
    assert!(first.created);
    assert!(changes.has_changed().unwrap(), "a write is announced");
    assert!(*changes.borrow_and_update() > before);

    // Case-insensitive identity; the original spelling is kept.
    let second = store.put(kind, &id("ALPHA"), "{\"v\":2}".into(), None, Some(first.revision)).await.unwrap();
    assert!(!second.created);
    assert_eq!(second.id.as_str(), "Alpha");
    assert!(second.revision > first.revision);
    let record = store.get(kind, &id("alpha")).await.unwrap().unwrap();
    assert_eq!(record.body, "{\"v\":2}");
    assert!(record.secret.is_none(), "a put without a secret clears it");

    // Stale ETag.
    let stale = store.put(kind, &id("alpha"), "{}".into(), None, Some(first.revision)).await;
    assert!(matches!(stale, Err(StoreError::PreconditionFailed { current: Some(r) }) if r == second.revision));
    assert!(matches!(
        store.put(kind, &id("nobody"), "{}".into(), None, Some(1)).await,
        Err(StoreError::PreconditionFailed { current: None })
    ));
    assert!(store.get(kind, &id("nobody")).await.unwrap().is_none(), "a failed write stores nothing");

    store.put(kind, &id("beta"), "{}".into(), Some(Zeroizing::new(b"secret-2".to_vec())), None).await.unwrap();
    store.put(EntityKind::CaCertificate, &id("beta"), "{}".into(), None, None).await.unwrap();
    let listed: Vec<String> = store.list(kind).await.unwrap().iter().map(|r| r.id.to_string()).collect();
    assert_eq!(listed, ["Alpha", "beta"], "kinds are separate collections");
    assert_eq!(store.get(kind, &id("beta")).await.unwrap().unwrap().secret.unwrap().as_slice(), b"secret-2");

    assert!(matches!(store.delete(kind, &id("beta"), Some(0)).await, Err(StoreError::PreconditionFailed { .. })));
    store.delete(kind, &id("BETA"), None).await.unwrap();
    assert!(matches!(store.delete(kind, &id("beta"), None).await, Err(StoreError::NotFound)));
    assert!(store.get(EntityKind::CaCertificate, &id("beta")).await.unwrap().is_some());
}

/// `api:op` is an operation-scope policy's record id.
fn record_id(text: &str) -> EntityId {
    match text.split_once(':') {
        Some((api, op)) => EntityId::scoped(&id(api), &id(op)),
        None => id(text),
    }
}

/// Policies as (record key, text), sorted: what the control loop would compile from.
fn policies(state: &certgate_model::ConfigState) -> Vec<(String, String)> {
    let mut all: Vec<_> = state.policies.values().map(|(s, t)| (s.record_id().key(), t.clone())).collect();
    all.sort();
    all
}

/// A state kept up to date with `apply_changes` equals one read whole, after every kind of change.
async fn changes_apply_incrementally(store: &dyn Store) {
    let kind = EntityKind::Policy;
    let text = |t: &str| Some(Zeroizing::new(t.as_bytes().to_vec()));
    let mut kept = load_config(store).await.unwrap();
    let steps = [
        ("one", Some("<policies>1</policies>")),
        ("two", Some("<policies>2</policies>")),
        ("ONE", Some("<policies>1b</policies>")),
        ("two", None),
        ("Two", Some("<policies>2b</policies>")),
        ("one", None),
        ("api:op", Some("<policies>op</policies>")),
    ];
    for (i, &(name, body)) in steps.iter().enumerate() {
        match body {
            Some(body) => drop(store.put(kind, &record_id(name), "{}".into(), text(body), None).await.unwrap()),
            None => drop(store.delete(kind, &record_id(name), None).await.unwrap()),
        }
        // Every other step is applied late, so one application covers several changes.
        if i % 2 == 1 || i == steps.len() - 1 {
            apply_changes(store, &mut kept).await.unwrap();
            let whole = load_config(store).await.unwrap();
            assert_eq!(policies(&kept), policies(&whole), "after step {i}");
            assert_eq!(kept.revision, whole.revision);
        }
    }
    assert_eq!(policies(&kept).len(), 2);
}

/// A unique value is held by one record at a time, compared ASCII-case-insensitively; a write
/// moves or a delete releases it. A write naming records commits only while they exist.
async fn unique_values_and_present_references(store: &dyn Store) {
    let kind = EntityKind::Api;
    let path = |value: &str| Precondition::unique("path", value);
    let put = |name: &'static str, checks: Precondition| async move {
        store.put_checked(kind, &id(name), "{}".into(), None, checks).await
    };
    put("shop", path("Shop")).await.unwrap();
    put("shop", path("shop")).await.unwrap();
    let taken = put("other", path("SHOP")).await;
    assert!(
        matches!(&taken, Err(StoreError::Taken { field: "path", value, holder }) if value == "SHOP" && holder == "shop"),
        "{taken:?}"
    );
    assert!(store.get(kind, &id("other")).await.unwrap().is_none(), "a refused write stores nothing");
    assert_eq!(taken.unwrap_err().to_string(), "path 'SHOP' is already used by 'shop'");
    put("other", path("ÄPI")).await.unwrap();
    put("third", path("äpi")).await.expect("folding is ASCII only, as the router compares");
    // Moving frees the old value; a delete frees the new one.
    put("shop", path("moved")).await.unwrap();
    put("other", path("shop")).await.expect("the old value was released");
    assert!(matches!(put("fourth", path("MOVED")).await, Err(StoreError::Taken { .. })));
    store.delete(kind, &id("shop"), None).await.unwrap();
    put("fourth", path("moved")).await.expect("a delete releases the value");
    // Writes without a claim leave the record's claim as it is.
    put("fourth", Precondition::default()).await.unwrap();
    assert!(matches!(put("fifth", path("moved")).await, Err(StoreError::Taken { .. })));

    let backend = id("named-backend");
    store.put(EntityKind::Backend, &backend, "{}".into(), None, None).await.unwrap();
    let naming = || Precondition { present: vec![(EntityKind::Backend, backend.clone())], ..Precondition::default() };
    let policy = |name: &str| record_id(name);
    store.put_checked(EntityKind::Policy, &policy("fourth"), "{}".into(), None, naming()).await.unwrap();
    store.delete(EntityKind::Backend, &backend, None).await.unwrap();
    let raced = store.put_checked(EntityKind::Policy, &policy("fifth"), "{}".into(), None, naming()).await;
    assert!(matches!(raced, Err(StoreError::Raced)), "{raced:?}");
    assert!(store.get(EntityKind::Policy, &policy("fifth")).await.unwrap().is_none());
}

#[tokio::test]
async fn sqlite_store_keeps_the_contract_and_refuses_a_wrong_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    let (key, key_text) = MasterKey::generate().unwrap();
    {
        let store = SqlStore::open_sqlite(&path, &key).await.unwrap();
        changes_apply_incrementally(&store).await;
        exercise(&store).await;
        unique_values_and_present_references(&store).await;
    }
    let (wrong, _) = MasterKey::generate().unwrap();
    let err = SqlStore::open_sqlite(&path, &wrong).await.err().unwrap();
    assert!(err.to_string().contains("master key does not match"), "{err}");
    let reopened = SqlStore::open_sqlite(&path, &MasterKey::parse(&key_text).unwrap()).await.unwrap();
    assert!(reopened.get(EntityKind::Certificate, &id("alpha")).await.unwrap().is_some());
}

#[tokio::test]
async fn postgres_store_keeps_the_contract() {
    let url = certgate_testkit::test_database().await;
    let (key, _) = MasterKey::generate().unwrap();
    let store = SqlStore::open_postgres(&PostgresOptions::new(url.clone()), &key).await.unwrap();
    changes_apply_incrementally(&store).await;
    exercise(&store).await;
    unique_values_and_present_references(&store).await;
}
