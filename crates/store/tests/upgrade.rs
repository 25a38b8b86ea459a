//! A database made by the hand-written migration runner (certgate before sqlx's `Migrator`,
//! `tests/fixtures/make-store-before-sqlx-migrator.sh`) opens with today's code: every record
//! reads back, secrets open with its master key, and writes continue from its revision.
#![allow(clippy::unwrap_used)]

use certgate_model::{EntityId, EntityKind};
use certgate_store::{MasterKey, Precondition, SqlStore, Store, StoreError, load_config};
use sqlx::Connection as _;

const FIXTURE: &[u8] = include_bytes!("fixtures/store-before-sqlx-migrator.db");
/// The key the fixture script starts the node with.
const FIXTURE_KEY: &str = "abababababababababababababababababababababababababababababababab";

#[tokio::test]
async fn a_database_made_before_the_sqlx_migrator_opens_and_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("certgate.db");
    std::fs::write(&path, FIXTURE).unwrap();
    let key = MasterKey::parse(FIXTURE_KEY).unwrap();
    {
        let store = SqlStore::open_sqlite(&path, &key).await.unwrap();
        let state = load_config(&store).await.unwrap();
        assert_eq!(state.revision, 9);
        let certificate = store.get(EntityKind::Certificate, &EntityId::parse("legacy").unwrap()).await.unwrap();
        let certificate = certificate.unwrap();
        assert_eq!(certificate.revision, 1);
        assert!(certificate.body.contains("CN=legacy.contoso.com"), "{}", certificate.body);
        assert!(!certificate.secret.unwrap().is_empty(), "the sealed key opens with the fixture's master key");
        assert_eq!(store.list(EntityKind::Token).await.unwrap().len(), 1);
        assert_eq!(state.backends.len(), 1, "the deleted backend stays deleted");
        assert_eq!(state.apis.len(), 1);
        assert_eq!(state.operations().len(), 1);
        assert_eq!(state.policies.len(), 1);

        let written = store.put(EntityKind::Backend, &EntityId::parse("new").unwrap(), "{}".into(), None, None).await;
        assert_eq!(written.unwrap().revision, 10, "revisions continue");
        // The API paths stored before unique values existed are claimed by the migration.
        let claim = Precondition::unique("path", "ORDERS");
        let taken =
            store.put_checked(EntityKind::Api, &EntityId::parse("copy").unwrap(), "{}".into(), None, claim).await;
        assert!(matches!(&taken, Err(StoreError::Taken { holder, .. }) if holder == "orders"), "{taken:?}");
    }

    // The old runner's table is gone, sqlx's records every version; a second start applies nothing.
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display())).await.unwrap();
    let versions: Vec<(i64, bool)> = sqlx::query_as("SELECT version, success FROM _sqlx_migrations ORDER BY version")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    assert_eq!(versions, [(1, true), (2, true), (3, true), (4, true), (5, true), (6, true)]);
    let (old,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM sqlite_master WHERE name = 'schema_migrations'")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(old, 0);
    conn.close().await.unwrap();
    let again = SqlStore::open_sqlite(&path, &key).await.unwrap();
    assert!(again.get(EntityKind::Backend, &EntityId::parse("new").unwrap()).await.unwrap().is_some());
}
