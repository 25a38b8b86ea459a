//! Persistence of the configuration state.
//!
//! A [`Store`] keeps every management entity as a record keyed by (kind, case-folded id), with a
//! monotonically increasing revision that doubles as its ETag. Secrets (private keys) are sealed
//! with AES-256-GCM before they reach the database and opened only when read back.
//! [`SqlStore`] implements it over sqlx's `Any` driver, so SQLite (the embedded default) and
//! PostgreSQL share one code path; only the migrations differ by dialect. On PostgreSQL several
//! nodes share one store ([`cluster`]): each hears of the others' writes, and one does each
//! [`Duty`].

mod cluster;
mod config;
mod crypto;
mod error;
mod migrate;
mod record;
mod sql;
mod tx;

pub use cluster::{Duty, Lease, NodeBeat, PostgresOptions};
pub use config::{apply_changes, load_config};
pub use crypto::{MasterKey, MasterKeyError};
pub use error::{Access, StoreError, Unavailability};
pub use record::{Record, Written};
pub use sql::SqlStore;

use async_trait::async_trait;
use certgate_model::{EntityId, EntityKind};
use zeroize::Zeroizing;

/// The persistence contract the control plane relies on. Every acknowledged write is durable.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// The record of `kind` whose id matches `id` case-insensitively.
    async fn get(&self, kind: EntityKind, id: &EntityId) -> Result<Option<Record>, StoreError>;

    /// Every record of `kind`, ordered by case-folded id.
    async fn list(&self, kind: EntityKind) -> Result<Vec<Record>, StoreError>;

    /// Creates or replaces a record. With `expected` set, the write happens only if the current
    /// revision equals it ([`StoreError::PreconditionFailed`] otherwise, also when absent).
    /// A replaced record keeps the id spelling it was created with.
    async fn put(
        &self,
        kind: EntityKind,
        id: &EntityId,
        body: String,
        secret: Option<Zeroizing<Vec<u8>>>,
        expected: Option<i64>,
    ) -> Result<Written, StoreError> {
        self.put_checked(kind, id, body, secret, Precondition { revision: expected, ..Precondition::default() }).await
    }

    /// [`Store::put`] subject to a whole [`Precondition`].
    async fn put_checked(
        &self,
        kind: EntityKind,
        id: &EntityId,
        body: String,
        secret: Option<Zeroizing<Vec<u8>>>,
        precondition: Precondition,
    ) -> Result<Written, StoreError>;

    /// Deletes a record, subject to `expected` as in [`Store::put`]; returns the new revision.
    async fn delete(&self, kind: EntityKind, id: &EntityId, expected: Option<i64>) -> Result<i64, StoreError> {
        self.delete_checked(kind, id, Precondition { revision: expected, ..Precondition::default() }).await
    }

    /// [`Store::delete`] subject to a whole [`Precondition`].
    async fn delete_checked(
        &self,
        kind: EntityKind,
        id: &EntityId,
        precondition: Precondition,
    ) -> Result<i64, StoreError>;

    /// The revision of the latest committed change, read from the database (the change watch
    /// of [`Store::changes`] may not have heard of another node's write yet).
    async fn revision(&self) -> Result<i64, StoreError>;

    /// Every record written after `revision` and every record deleted after it (a record
    /// deleted and written again appears in both).
    async fn changed_since(&self, revision: i64) -> Result<Changes, StoreError>;

    /// The revision of the latest committed change; every write raises it.
    fn changes(&self) -> tokio::sync::watch::Receiver<i64>;

    /// Asks to be the one node of the cluster doing `duty`: `None` while another node holds
    /// it. Always granted on the embedded store, where the node is alone.
    async fn try_lead(&self, duty: Duty) -> Result<Option<Lease>, StoreError>;

    /// Records that this node is alive and what it serves (no revision is raised); nodes
    /// silent for a day are forgotten.
    async fn heartbeat(&self, node: &NodeBeat) -> Result<(), StoreError>;

    /// The nodes that sent a heartbeat in the last day.
    async fn nodes(&self) -> Result<Vec<NodeBeat>, StoreError>;

    /// Commits a small write that changes no entity: `Ok` when the store can be read and
    /// written right now. For readiness checks; callers limit how often it runs.
    async fn probe(&self) -> Result<(), StoreError>;
}

/// What must still hold when a write commits, or it changes nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Precondition {
    /// The record's revision (`If-Match`): [`StoreError::PreconditionFailed`] when it differs
    /// or the record is absent.
    pub revision: Option<i64>,
    /// The records the caller checked the write against (a path no other API uses, no policy
    /// naming a certificate) are as they were: [`StoreError::Raced`] otherwise, so the caller
    /// checks again.
    pub unchanged: Option<Unchanged>,
    /// Records the write refers to (a policy's backend and certificate): [`StoreError::Raced`]
    /// when one of them no longer exists, so the caller checks again.
    pub present: Vec<(EntityKind, EntityId)>,
    /// A value the record claims alone among the records of its kind (an API's path):
    /// [`StoreError::Taken`] while another record holds it. Claimed in the write's transaction
    /// (a delete releases it), so two concurrent writes cannot both take it. `None` leaves the
    /// record's claims as they are.
    pub unique: Option<Unique>,
}

impl Precondition {
    /// Only [`Precondition::unchanged`].
    pub fn unchanged(unchanged: Unchanged) -> Self {
        Self { unchanged: Some(unchanged), ..Self::default() }
    }

    /// Only [`Precondition::unique`].
    pub fn unique(field: &'static str, value: &str) -> Self {
        Self { unique: Some(Unique { field, value: value.to_owned() }), ..Self::default() }
    }
}

/// A value of `field` that one record of a kind holds at a time, compared ASCII-case-insensitively.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unique {
    pub field: &'static str,
    pub value: String,
}

/// No record of `kinds` was written or deleted after store revision `since` (read before the
/// caller's checks). Checked while the write holds the revision counter, so no write of those
/// kinds can slip in between the check and the commit; writes of other kinds do not interfere.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unchanged {
    pub since: i64,
    pub kinds: &'static [EntityKind],
}

/// See [`Store::changed_since`].
#[derive(Debug, Default)]
pub struct Changes {
    /// The store revision when the changes were read: they are complete up to it.
    pub revision: i64,
    /// Current records, in revision order.
    pub written: Vec<Record>,
    /// (kind, case-folded id) of deleted records.
    pub deleted: Vec<(EntityKind, String)>,
}
