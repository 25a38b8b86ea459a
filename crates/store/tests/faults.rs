//! The store under storage faults: a write that fails (disk full, immutable files) must leave the
//! store able to make the next write durable. Needs root for tmpfs and `chattr`; without it each
//! test prints why it was skipped.
#![allow(clippy::unwrap_used)]

use certgate_model::{EntityId, EntityKind};
use certgate_store::{MasterKey, PostgresOptions, SqlStore, Store, StoreError};
use certgate_testkit::{Immutable, SmallDisk, or_skip};

const KIND: EntityKind = EntityKind::Backend;

fn id(text: &str) -> EntityId {
    EntityId::parse(text).unwrap()
}

/// A body large enough that a write needs fresh pages on disk (not only reused WAL space).
fn big_body(n: usize) -> String {
    format!("{{\"n\":{n},\"pad\":\"{}\"}}", "x".repeat(256 * 1024))
}

/// Writes until two in a row have failed; returns the ids that were acknowledged on the way.
async fn fail_twice(store: &SqlStore, prefix: &str) -> (Vec<String>, Vec<StoreError>) {
    let (mut acknowledged, mut failures) = (Vec::new(), Vec::new());
    for n in 0..200 {
        let name = format!("{prefix}{n}");
        match store.put(KIND, &id(&name), big_body(n), None, None).await {
            Ok(_) => {
                acknowledged.push(name);
                failures.clear();
            }
            Err(error) => failures.push(error),
        }
        if failures.len() == 2 {
            return (acknowledged, failures);
        }
    }
    panic!("the full disk never refused two writes in a row");
}

/// The root cause of the data loss: after two failed commits in a row, sqlx-sqlite's transaction
/// depth stayed raised, so every later write became a SAVEPOINT inside a transaction that was
/// never committed: acknowledged, readable, and gone after reopening.
#[tokio::test]
async fn writes_after_two_failures_on_a_full_disk_are_durable() {
    let disk = or_skip!(SmallDisk::mount(3 * 1024));
    let path = disk.path().join("store.db");
    let (key, key_text) = MasterKey::generate().unwrap();
    let mut acknowledged = Vec::new();
    let refusals: Vec<String>;
    {
        let store = SqlStore::open_sqlite(&path, &key).await.unwrap();
        store.put(KIND, &id("before"), "{}".into(), None, None).await.unwrap();
        acknowledged.push(("before".to_owned(), "{}".to_owned()));

        let filler = disk.fill();
        let (during, failures) = fail_twice(&store, "full").await;
        acknowledged.extend(during.into_iter().map(|name| (name.clone(), String::new())));
        refusals = failures.iter().map(ToString::to_string).collect();
        filler.free();

        for n in 0..5 {
            let name = format!("after{n}");
            let body = format!("{{\"after\":{n}}}");
            store.put(KIND, &id(&name), body.clone(), None, None).await.unwrap();
            acknowledged.push((name, body));
        }
    }
    let reopened = SqlStore::open_sqlite(&path, &MasterKey::parse(&key_text).unwrap()).await.unwrap();
    for (name, body) in &acknowledged {
        let record = reopened.get(KIND, &id(name)).await.unwrap();
        let record = record.unwrap_or_else(|| panic!("acknowledged write {name} is lost after reopening"));
        if !body.is_empty() {
            assert_eq!(&record.body, body, "{name}");
        }
    }
    for refusal in &refusals {
        assert!(refusal.contains("the store is not writable: disk full"), "a full disk is named as such: {refusal}");
    }
}

/// The same with the database and its WAL made immutable under a running store.
#[tokio::test]
async fn writes_after_failures_on_immutable_files_are_durable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    let (key, key_text) = MasterKey::generate().unwrap();
    let mut refusals = Vec::new();
    {
        let store = SqlStore::open_sqlite(&path, &key).await.unwrap();
        store.put(KIND, &id("before"), "{}".into(), None, None).await.unwrap();
        let files = [path.clone(), dir.path().join("store.db-wal")];
        let frozen = or_skip!(Immutable::set(&files));
        for n in 0..3 {
            let error = store.put(KIND, &id(&format!("frozen{n}")), "{}".into(), None, None).await.unwrap_err();
            refusals.push(error.to_string());
        }
        frozen.release();
        for n in 0..5 {
            store.put(KIND, &id(&format!("after{n}")), format!("{{\"after\":{n}}}"), None, None).await.unwrap();
        }
    }
    let reopened = SqlStore::open_sqlite(&path, &MasterKey::parse(&key_text).unwrap()).await.unwrap();
    for n in 0..3 {
        assert!(reopened.get(KIND, &id(&format!("frozen{n}"))).await.unwrap().is_none(), "refused writes stay out");
    }
    for n in 0..5 {
        let record = reopened.get(KIND, &id(&format!("after{n}"))).await.unwrap();
        assert_eq!(record.expect("acknowledged write survives").body, format!("{{\"after\":{n}}}"));
    }
    // The first write meets the files made immutable under the open connection; the next ones
    // a fresh connection that SQLite could open only read-only.
    assert_eq!(refusals[0], "the store is not writable: I/O error");
    for refusal in &refusals[1..] {
        assert_eq!(refusal, "the store is not writable: the database is read-only");
    }
}

/// PostgreSQL: the server kills the store's connections again and again (an administrator, a
/// failover) while 200 writes run, mid-transaction included. Every refusal names the store as
/// not writable, and after reopening every acknowledged write is present. (A refused one may be
/// present too: a COMMIT the server carried out just before it cut the connection is durable
/// without having been acknowledged; only the converse is a loss.)
#[tokio::test]
async fn postgres_writes_while_connections_are_killed_keep_every_acknowledged_one() {
    use sqlx::Connection as _;
    let url = certgate_testkit::test_database().await;
    let database = url.rsplit('/').next().unwrap().to_owned();
    let server = url.rsplit_once('/').unwrap().0.to_owned();
    let (key, key_text) = MasterKey::generate().unwrap();
    let (mut acknowledged, mut refused) = (Vec::new(), Vec::new());
    {
        let store = SqlStore::open_postgres(&PostgresOptions::new(url.clone()), &key).await.unwrap();
        let killer = tokio::spawn(async move {
            let mut admin = sqlx::AnyConnection::connect(&format!("{server}/postgres")).await.unwrap();
            loop {
                sqlx::query(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                     WHERE datname = $1 AND pid <> pg_backend_pid()",
                )
                .bind(&database)
                .execute(&mut admin)
                .await
                .unwrap();
                tokio::time::sleep(std::time::Duration::from_millis(7)).await;
            }
        });
        for n in 0..200 {
            let name = format!("w{n}");
            match store.put(KIND, &id(&name), format!("{{\"n\":{n}}}"), None, None).await {
                Ok(_) => acknowledged.push(name),
                Err(error) => {
                    assert!(error.to_string().starts_with("the store is not writable: "), "{error}");
                    refused.push(name);
                }
            }
        }
        killer.abort();
    }
    assert!(!acknowledged.is_empty() && !refused.is_empty(), "both outcomes occurred: {} refused", refused.len());
    let reopened = SqlStore::open_postgres(&PostgresOptions::new(url.clone()), &MasterKey::parse(&key_text).unwrap())
        .await
        .unwrap();
    for name in &acknowledged {
        assert!(reopened.get(KIND, &id(name)).await.unwrap().is_some(), "acknowledged {name} is lost");
    }
    eprintln!("{} acknowledged, {} refused", acknowledged.len(), refused.len());
}
