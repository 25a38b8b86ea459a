//! Two stores on one real PostgreSQL database behave as two nodes of a cluster: each hears of
//! the other's writes, one holds a duty at a time, an ETag race has one winner, and both list
//! each other. The embedded store is a cluster of one.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use certgate_model::{EntityId, EntityKind, unix_now};
use certgate_store::{
    Duty, MasterKey, NodeBeat, PostgresOptions, Precondition, SqlStore, Store, StoreError, Unchanged,
};

fn id(text: &str) -> EntityId {
    EntityId::parse(text).unwrap()
}

/// Two nodes on a fresh database, and its URL.
async fn two_nodes_at() -> (SqlStore, SqlStore, String) {
    let url = certgate_testkit::test_database().await;
    let (key, _) = MasterKey::generate().unwrap();
    let a = SqlStore::open_postgres(&PostgresOptions::new(url.clone()), &key).await.unwrap();
    let b = SqlStore::open_postgres(&PostgresOptions::new(url.clone()), &key).await.unwrap();
    (a, b, url)
}

async fn two_nodes() -> (SqlStore, SqlStore) {
    let (a, b, _) = two_nodes_at().await;
    (a, b)
}

#[tokio::test]
async fn a_write_on_one_node_is_announced_to_the_other_at_once() {
    let (a, b) = two_nodes().await;
    let mut heard = b.changes();
    for round in 0..20 {
        let started = Instant::now();
        let written = a.put(EntityKind::Certificate, &id(&format!("c{round}")), "{}".into(), None, None).await.unwrap();
        // Well under the 30 s resync: only the notification can have raised it.
        tokio::time::timeout(Duration::from_secs(2), heard.wait_for(|r| *r >= written.revision))
            .await
            .unwrap_or_else(|_| panic!("write {round} was not announced to the other node"))
            .unwrap();
        assert!(started.elapsed() < Duration::from_secs(1), "announced after {:?}", started.elapsed());
        let changes = b.changed_since(written.revision - 1).await.unwrap();
        assert_eq!(changes.written.len(), 1, "the other node reads the change itself");
    }
    let deleted = a.delete(EntityKind::Certificate, &id("c0"), None).await.unwrap();
    tokio::time::timeout(Duration::from_secs(2), heard.wait_for(|r| *r >= deleted)).await.unwrap().unwrap();
}

#[tokio::test]
async fn a_change_whose_notification_was_lost_is_found_by_the_periodic_resync() {
    let url = certgate_testkit::test_database().await;
    let (key, _) = MasterKey::generate().unwrap();
    let options = PostgresOptions { resync_interval: Duration::from_secs(1), ..PostgresOptions::new(url.clone()) };
    let node = SqlStore::open_postgres(&options, &key).await.unwrap();
    let mut heard = node.changes();
    // The follower is listening once it has heard an ordinary write; from then on only the
    // periodic resync can find the hidden one.
    let announced = node.put(EntityKind::Backend, &id("loud"), "{}".into(), None, None).await.unwrap();
    let other = SqlStore::open_postgres(&options, &key).await.unwrap();
    let loud = other.put(EntityKind::Backend, &id("loud2"), "{}".into(), None, None).await.unwrap();
    tokio::time::timeout(Duration::from_secs(2), heard.wait_for(|r| *r >= loud.revision)).await.unwrap().unwrap();
    assert!(loud.revision > announced.revision);
    // A write that announces nothing, made behind the store's back.
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&url).await.unwrap();
    let (revision,): (i64,) =
        sqlx::query_as("UPDATE counters SET value = value + 1 WHERE name = 'revision' RETURNING value")
            .fetch_one(&pool)
            .await
            .unwrap();
    sqlx::query(
        "INSERT INTO entities (kind, id_key, id, revision, body, secret, updated_at) \
         VALUES ('backends', 'silent', 'silent', $1, '{}', NULL, 0)",
    )
    .bind(revision)
    .execute(&pool)
    .await
    .unwrap();
    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(3), heard.wait_for(|r| *r >= revision))
        .await
        .expect("the resync found the change")
        .unwrap();
    assert!(started.elapsed() <= Duration::from_millis(2500), "{:?}", started.elapsed());
}

#[tokio::test]
async fn a_rolled_back_write_announces_nothing() {
    let (a, b) = two_nodes().await;
    let written = a.put(EntityKind::Certificate, &id("x"), "{}".into(), None, None).await.unwrap();
    let mut heard = b.changes();
    heard.wait_for(|r| *r >= written.revision).await.unwrap();
    heard.borrow_and_update();
    let stale = a.put(EntityKind::Certificate, &id("x"), "{}".into(), None, Some(written.revision - 1)).await;
    assert!(matches!(stale, Err(StoreError::PreconditionFailed { .. })));
    assert!(tokio::time::timeout(Duration::from_millis(500), heard.changed()).await.is_err(), "nothing was announced");
}

#[tokio::test]
async fn one_if_match_wins_when_two_nodes_race() {
    let (a, b) = two_nodes().await;
    let kind = EntityKind::Backend;
    for round in 0..10 {
        let name = id(&format!("race{round}"));
        let base = a.put(kind, &name, "{}".into(), None, None).await.unwrap().revision;
        let (first, second) = tokio::join!(
            a.put(kind, &name, "{\"by\":\"a\"}".into(), None, Some(base)),
            b.put(kind, &name, "{\"by\":\"b\"}".into(), None, Some(base)),
        );
        let outcomes = [&first, &second];
        let won = outcomes.iter().filter(|o| o.is_ok()).count();
        let refused = outcomes.iter().filter(|o| matches!(o, Err(StoreError::PreconditionFailed { .. }))).count();
        assert_eq!((won, refused), (1, 1), "round {round}: {first:?} / {second:?}");
    }
    // Creates of one id spelled differently on two nodes: one record, the first spelling.
    let (mixed, upper) = (id("Orders"), id("ORDERS"));
    let (first, second) =
        tokio::join!(a.put(kind, &mixed, "{}".into(), None, None), b.put(kind, &upper, "{}".into(), None, None),);
    let created = [first.unwrap(), second.unwrap()];
    assert_eq!(created.iter().filter(|w| w.created).count(), 1, "{created:?}");
    assert_eq!(created[0].id, created[1].id, "both name the record as first spelled");
    assert_eq!(a.list(kind).await.unwrap().iter().filter(|r| r.id.key() == "orders").count(), 1);
}

#[tokio::test]
async fn one_claim_of_a_unique_value_wins_when_two_nodes_race() {
    let (a, b) = two_nodes().await;
    let kind = EntityKind::Api;
    for round in 0..10 {
        let (value, on_a, on_b) = (format!("path{round}"), id(&format!("a{round}")), id(&format!("b{round}")));
        let (first, second) = tokio::join!(
            a.put_checked(kind, &on_a, "{}".into(), None, Precondition::unique("path", &value)),
            b.put_checked(kind, &on_b, "{}".into(), None, Precondition::unique("path", &value)),
        );
        let outcomes = [&first, &second];
        let won = outcomes.iter().filter(|o| o.is_ok()).count();
        let taken = outcomes.iter().filter(|o| matches!(o, Err(StoreError::Taken { .. }))).count();
        assert_eq!((won, taken), (1, 1), "round {round}: {first:?} / {second:?}");
    }
    assert_eq!(a.list(kind).await.unwrap().len(), 10);
}

#[tokio::test]
async fn a_checked_write_races_only_with_writes_of_the_kinds_it_checked() {
    let (a, b) = two_nodes().await;
    a.put(EntityKind::Api, &id("doomed"), "{}".into(), None, None).await.unwrap();
    let since = a.revision().await.unwrap();
    // Another node writes a backend after `since`.
    b.put(EntityKind::Backend, &id("new"), "{}".into(), None, None).await.unwrap();
    let checked = |kinds| Precondition::unchanged(Unchanged { since, kinds });
    let unrelated =
        a.put_checked(EntityKind::Api, &id("p"), "{}".into(), None, checked(&[EntityKind::Certificate])).await;
    assert!(unrelated.is_ok(), "{unrelated:?}");
    let raced = a.put_checked(EntityKind::Api, &id("q"), "{}".into(), None, checked(&[EntityKind::Backend])).await;
    assert!(matches!(raced, Err(StoreError::Raced)), "{raced:?}");
    assert!(a.get(EntityKind::Api, &id("q")).await.unwrap().is_none(), "a raced write changes nothing");
    let deleted = a.delete_checked(EntityKind::Api, &id("doomed"), checked(&[EntityKind::Backend])).await;
    assert!(matches!(deleted, Err(StoreError::Raced)), "{deleted:?}");
    assert!(a.get(EntityKind::Api, &id("doomed")).await.unwrap().is_some());
    // A deletion counts as a change of its kind too.
    let since = a.revision().await.unwrap();
    b.delete(EntityKind::Backend, &id("new"), None).await.unwrap();
    let after_delete = a
        .put_checked(
            EntityKind::Api,
            &id("r"),
            "{}".into(),
            None,
            Precondition::unchanged(Unchanged { since, kinds: &[EntityKind::Backend] }),
        )
        .await;
    assert!(matches!(after_delete, Err(StoreError::Raced)), "{after_delete:?}");
}

#[tokio::test]
async fn a_duty_is_held_by_one_node_and_taken_over_when_its_session_ends() {
    let (a, b) = two_nodes().await;
    let lease = a.try_lead(Duty::Refresher).await.unwrap().expect("the first node leads");
    assert!(b.try_lead(Duty::Refresher).await.unwrap().is_none(), "the second node waits");
    assert!(a.try_lead(Duty::Refresher).await.unwrap().is_none(), "one session holds it, not one node");
    drop(lease);
    // Dropping closes the lock's connection; the server frees the lock when it sees that.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut taken = None;
    while taken.is_none() && Instant::now() < deadline {
        taken = b.try_lead(Duty::Refresher).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut taken = taken.expect("the second node took the duty over");
    // A lease whose session is still healthy is not lost.
    assert!(tokio::time::timeout(Duration::from_secs(3), taken.lost()).await.is_err());
}

#[tokio::test]
async fn a_holder_that_goes_silent_frees_the_duty_without_closing_anything() {
    let (a, b) = two_nodes().await;
    // Held but never checked: as a host that died or was cut off, its socket left open.
    let _silent = a.try_lead(Duty::Refresher).await.unwrap().expect("the first node leads");
    assert!(b.try_lead(Duty::Refresher).await.unwrap().is_none());
    let started = Instant::now();
    let mut taken = None;
    while taken.is_none() {
        assert!(started.elapsed() < Duration::from_secs(20), "the silent holder kept the duty");
        tokio::time::sleep(Duration::from_millis(500)).await;
        taken = b.try_lead(Duty::Refresher).await.unwrap();
    }
    eprintln!("a silent holder's duty was free after {:?}", started.elapsed());
    assert!(started.elapsed() >= Duration::from_secs(5), "a holder that checks in time keeps it");
}

#[tokio::test]
async fn a_lease_is_lost_when_the_server_ends_its_session() {
    let (a, _b, url) = two_nodes_at().await;
    let mut lease = a.try_lead(Duty::Refresher).await.unwrap().unwrap();
    // Another session ends the lock holder's, as a restarting server or a DBA would.
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&url).await.unwrap();
    let (ended,): (i64,) = sqlx::query_as(
        "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_locks \
         WHERE locktype = 'advisory' AND granted \
         AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(ended, 1);
    tokio::time::timeout(Duration::from_secs(6), lease.lost()).await.expect("the loss is noticed");
}

#[tokio::test]
async fn nodes_list_each_other_and_the_embedded_store_lists_itself() {
    let (a, b) = two_nodes().await;
    let now = unix_now();
    let beat = |id: &str, revision| NodeBeat {
        id: id.into(),
        name: format!("host-{id}"),
        admin_address: Some("127.0.0.1:8081".into()),
        served_revision: revision,
        started_at: now - 10,
        heartbeat_at: now,
    };
    a.heartbeat(&beat("node-a", 3)).await.unwrap();
    b.heartbeat(&beat("node-b", 2)).await.unwrap();
    a.heartbeat(&beat("node-a", 5)).await.unwrap();
    // A node silent for more than a day is forgotten by the next heartbeat.
    b.heartbeat(&NodeBeat { heartbeat_at: now - 90_000, ..beat("gone", 1) }).await.unwrap();
    b.heartbeat(&beat("node-b", 5)).await.unwrap();
    assert_eq!(b.nodes().await.unwrap(), vec![beat("node-a", 5), beat("node-b", 5)]);
    let before = a.revision().await.unwrap();
    a.heartbeat(&beat("node-a", 6)).await.unwrap();
    assert_eq!(a.revision().await.unwrap(), before, "heartbeats are no changes");

    let dir = tempfile::tempdir().unwrap();
    let (key, _) = MasterKey::generate().unwrap();
    let alone = SqlStore::open_sqlite(&dir.path().join("store.db"), &key).await.unwrap();
    alone.heartbeat(&beat("only", 1)).await.unwrap();
    assert_eq!(alone.nodes().await.unwrap(), vec![beat("only", 1)]);
    let mut lease = alone.try_lead(Duty::Refresher).await.unwrap().expect("always granted");
    assert!(alone.try_lead(Duty::Refresher).await.unwrap().is_some(), "a node alone leads every time");
    assert!(tokio::time::timeout(Duration::from_millis(200), lease.lost()).await.is_err(), "never lost");
}
