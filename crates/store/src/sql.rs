use std::path::{Path, PathBuf};
use std::str::FromStr;

use async_trait::async_trait;
use certgate_model::{EntityId, EntityKind};
use sqlx::any::{AnyConnectOptions, AnyPoolOptions, AnyRow};
use sqlx::{AnyConnection, AnyPool, Connection as _, Row};
use tokio::sync::watch;
use zeroize::Zeroizing;

use crate::cluster::{self, Duty, Lease, NodeBeat, PostgresOptions};
use crate::crypto::{MasterKey, MasterKeyError, Sealer};
use crate::error::{Access, DbContext, StoreError, Unavailability};
use crate::migrate::{self, Dialect, REVISION};
use crate::tx::Tx;
use crate::{Changes, Precondition, Record, Store, Unchanged, Unique, Written};

/// The store on SQLite or PostgreSQL through sqlx's `Any` driver.
pub struct SqlStore {
    pool: AnyPool,
    dialect: Dialect,
    /// On SQLite: what keeps its files usable across discarded connections.
    sqlite: Option<SqliteFiles>,
    /// On PostgreSQL: how to reach the cluster's database outside the pool.
    postgres: Option<SharedDatabase>,
    sealer: Sealer,
    /// Publishes the revision of each committed write so the control loop can recompile.
    changes: watch::Sender<i64>,
}

/// SQLite deletes the WAL and its shared-memory index when the last connection closes, and a
/// fresh connection must create and grow them again — which fails on a full disk, reads
/// included. The anchor is a connection outside the pool that stays open (idle, holding no
/// lock), so discarding the pool's connection after a failed write never takes the files away.
struct SqliteFiles {
    /// The directory of the database file, whose file system explains failed writes.
    dir: PathBuf,
    /// Never used after opening; `Mutex` only because `AnyConnection` is not `Sync`.
    _anchor: std::sync::Mutex<AnyConnection>,
}

/// The parts of a PostgreSQL store that other nodes share.
struct SharedDatabase {
    /// For each duty's lock, which needs a session of its own.
    options: sqlx::postgres::PgConnectOptions,
    /// The task following other nodes' writes ([`cluster::follow`]); it ends with the store.
    follower: tokio::task::JoinHandle<()>,
}

impl Drop for SharedDatabase {
    fn drop(&mut self) {
        self.follower.abort();
    }
}

const KEY_CHECK: &str = "key_check";
const KEY_CHECK_PLAINTEXT: &[u8] = b"certgate master key check v1";

impl SqlStore {
    /// Opens (creating if needed) the embedded SQLite store at `path`.
    pub async fn open_sqlite(path: &Path, key: &MasterKey) -> Result<Self, StoreError> {
        let url = format!("sqlite://{}?mode=rwc", path.display());
        // SQLite has one writer at a time anyway; a single connection makes read-modify-write
        // transactions trivially serial and avoids SQLITE_BUSY on lock upgrades.
        //
        // No `after_connect` statements: the first statement of a connection maps SQLite's
        // shared-memory index, which fails on a full disk, and sqlx retries a failing
        // `after_connect` until the acquire timeout. Per-connection settings travel with each
        // write instead (`Dialect::begin_write`); sqlx sets the busy timeout (5 s) itself.
        let pool = AnyPoolOptions::new()
            .max_connections(1)
            .connect_with(Self::options(&url)?)
            .await
            .context("opening the SQLite store")?;
        // WAL is a property of the database file: set once, kept by every later connection.
        sqlx::query("PRAGMA journal_mode = WAL").execute(&pool).await.context("switching to WAL")?;
        let mut store = Self::init(pool, Dialect::Sqlite, key).await?;
        let mut anchor =
            AnyConnection::connect_with(&Self::options(&url)?).await.context("opening the SQLite store")?;
        // The first read maps the shared-memory index; from then on the anchor holds it.
        sqlx::query(REVISION).execute(&mut anchor).await.context("reading the revision")?;
        store.sqlite = Some(SqliteFiles {
            dir: path.parent().map(Path::to_owned).unwrap_or_default(),
            _anchor: std::sync::Mutex::new(anchor),
        });
        Ok(store)
    }

    /// Connects to a PostgreSQL store shared by several nodes, and follows their writes.
    pub async fn open_postgres(options: &PostgresOptions, key: &MasterKey) -> Result<Self, StoreError> {
        // While the server is away, a write waits this long for a connection before it is
        // answered 503, rather than sqlx's default 30 s.
        let pool = AnyPoolOptions::new()
            .max_connections(options.pool_size)
            .acquire_timeout(std::time::Duration::from_secs(5))
            .connect_with(Self::options(&options.url)?)
            .await
            .context("connecting to PostgreSQL")?;
        let mut store = Self::init(pool, Dialect::Postgres, key).await?;
        let connect_options = options.connect_options()?;
        let follower = tokio::spawn(cluster::follow(
            connect_options.clone(),
            store.pool.clone(),
            store.changes.clone(),
            options.resync_interval,
        ));
        store.postgres = Some(SharedDatabase { options: connect_options, follower });
        Ok(store)
    }

    fn options(url: &str) -> Result<AnyConnectOptions, StoreError> {
        sqlx::any::install_default_drivers();
        AnyConnectOptions::from_str(url).context("parsing the database URL")
    }

    async fn init(pool: AnyPool, dialect: Dialect, key: &MasterKey) -> Result<Self, StoreError> {
        migrate::run(&pool, dialect).await?;
        let sealer = key.sealer();
        Self::check_master_key(&pool, &sealer).await?;
        let (revision,): (i64,) = sqlx::query_as(REVISION).fetch_one(&pool).await.context("reading the revision")?;
        let (changes, _) = watch::channel(revision);
        Ok(Self { pool, dialect, sqlite: None, postgres: None, sealer, changes })
    }

    async fn begin_write(&self) -> Result<Tx, StoreError> {
        Tx::begin(&self.pool, self.dialect.begin_write()).await.context("starting a write")
    }

    /// The first start seals a known value; every later start must open it with the same key,
    /// so a wrong key is reported at once instead of as garbage secrets later. Nodes starting
    /// together on a new shared store race to seal it: one insert wins, and every node then
    /// checks its key against the winner's.
    async fn check_master_key(pool: &AnyPool, sealer: &Sealer) -> Result<(), StoreError> {
        let sealed = sealer.seal(KEY_CHECK, KEY_CHECK_PLAINTEXT)?;
        sqlx::query("INSERT INTO meta (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
            .bind(KEY_CHECK)
            .bind(sealed)
            .execute(pool)
            .await
            .context("writing the master key check")?;
        let (stored,): (Vec<u8>,) = sqlx::query_as("SELECT value FROM meta WHERE name = $1")
            .bind(KEY_CHECK)
            .fetch_one(pool)
            .await
            .context("reading the master key check")?;
        match sealer.open(KEY_CHECK, &stored) {
            Ok(plain) if plain.as_slice() == KEY_CHECK_PLAINTEXT => Ok(()),
            _ => Err(MasterKeyError::Mismatch.into()),
        }
    }

    fn address(kind: EntityKind, id_key: &str) -> String {
        format!("{}/{}", kind.collection(), id_key)
    }

    fn record(&self, kind: EntityKind, row: &AnyRow) -> Result<Record, StoreError> {
        let id: String = row.try_get("id").context("reading a record")?;
        let id_key: String = row.try_get("id_key").context("reading a record")?;
        let sealed: Option<Vec<u8>> = row.try_get("secret").context("reading a record")?;
        let secret = match sealed {
            Some(sealed) => Some(self.sealer.open(&Self::address(kind, &id_key), &sealed)?),
            None => None,
        };
        Ok(Record {
            kind,
            id: EntityId::try_from(id.clone()).map_err(|e| StoreError::Corrupt {
                kind: kind.collection(),
                id: id.clone(),
                reason: e.to_string(),
            })?,
            revision: row.try_get("revision").context("reading a record")?,
            body: row.try_get("body").context("reading a record")?,
            secret,
            updated_at: row.try_get("updated_at").context("reading a record")?,
        })
    }

    /// A failed write in an operator's words.
    fn write_failure(&self, error: StoreError) -> StoreError {
        let error = error.while_writing();
        match &self.sqlite {
            Some(files) => error.explained_by(&files.dir),
            None => error,
        }
    }

    /// Tells the other nodes, from inside the transaction, that `revision` is coming.
    async fn announce(&self, tx: &mut Tx, revision: i64) -> Result<(), StoreError> {
        match self.dialect {
            Dialect::Postgres => cluster::announce(tx, revision).await,
            Dialect::Sqlite => Ok(()),
        }
    }

    /// Raises the change watch to a revision this node committed (a follower may have raised
    /// it further already).
    fn published(&self, revision: i64) {
        cluster::raise(&self.changes, revision);
    }
}

/// The writes, each one transaction on a connection of its own ([`Tx`]).
impl SqlStore {
    async fn put_entity(
        &self,
        kind: EntityKind,
        id: &EntityId,
        body: String,
        secret: Option<Zeroizing<Vec<u8>>>,
        precondition: Precondition,
    ) -> Result<Written, StoreError> {
        let key = id.key();
        let sealed = match &secret {
            Some(plain) => Some(self.sealer.seal(&Self::address(kind, &key), plain)?),
            None => None,
        };
        let mut tx = self.begin_write().await?;
        let revision = next_revision(&mut tx).await?;
        let current = current_revision(&mut tx, kind, &key).await?;
        let raced = changed_after(&mut tx, precondition.unchanged).await?
            || any_missing(&mut tx, &precondition.present).await?;
        let current_revision = current.as_ref().map(|(r, _)| *r);
        let refusal = match &precondition {
            _ if raced => Some(StoreError::Raced),
            Precondition { revision: Some(expected), .. } if current_revision != Some(*expected) => {
                Some(StoreError::PreconditionFailed { current: current_revision })
            }
            Precondition { unique: Some(unique), .. } => claim(&mut tx, kind, &key, unique).await?,
            _ => None,
        };
        if let Some(refusal) = refusal {
            tx.rollback().await;
            return Err(refusal);
        }
        let now = certgate_model::unix_now();
        let stored_id = match &current {
            Some((_, original)) => {
                sqlx::query(
                    "UPDATE entities SET revision = $3, body = $4, secret = $5, updated_at = $6 \
                     WHERE kind = $1 AND id_key = $2",
                )
                .bind(kind.collection())
                .bind(&key)
                .bind(revision)
                .bind(body)
                .bind(sealed)
                .bind(now)
                .execute(&mut *tx)
                .await
                .context("replacing a record")?;
                EntityId::try_from(original.clone()).unwrap_or_else(|_| id.clone())
            }
            None => {
                sqlx::query(
                    "INSERT INTO entities (kind, id_key, id, revision, body, secret, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(kind.collection())
                .bind(&key)
                .bind(id.as_str())
                .bind(revision)
                .bind(body)
                .bind(sealed)
                .bind(now)
                .execute(&mut *tx)
                .await
                .context("inserting a record")?;
                id.clone()
            }
        };
        self.announce(&mut tx, revision).await?;
        tx.commit().await.context("committing a write")?;
        self.published(revision);
        Ok(Written { revision, created: current.is_none(), id: stored_id })
    }

    async fn delete_entity(
        &self,
        kind: EntityKind,
        id: &EntityId,
        precondition: Precondition,
    ) -> Result<i64, StoreError> {
        let key = id.key();
        let mut tx = self.begin_write().await?;
        let revision = next_revision(&mut tx).await?;
        let current = current_revision(&mut tx, kind, &key).await?.map(|(r, _)| r);
        let raced = changed_after(&mut tx, precondition.unchanged).await?;
        let refusal = match (current, precondition) {
            _ if raced => Some(StoreError::Raced),
            (None, _) => Some(StoreError::NotFound),
            (Some(current), Precondition { revision: Some(expected), .. }) if current != expected => {
                Some(StoreError::PreconditionFailed { current: Some(current) })
            }
            _ => None,
        };
        if let Some(refusal) = refusal {
            tx.rollback().await;
            return Err(refusal);
        }
        delete_record(&mut tx, revision, kind, &key).await?;
        self.announce(&mut tx, revision).await?;
        tx.commit().await.context("committing a delete")?;
        self.published(revision);
        Ok(revision)
    }
}

/// Takes the next revision. On PostgreSQL the row lock also serialises concurrent writers
/// until the transaction ends, which makes check-then-write sequences atomic.
async fn next_revision(conn: &mut AnyConnection) -> Result<i64, StoreError> {
    let (revision,): (i64,) =
        sqlx::query_as("UPDATE counters SET value = value + 1 WHERE name = 'revision' RETURNING value")
            .fetch_one(conn)
            .await
            .context("raising the revision")?;
    Ok(revision)
}

/// Whether a record of the given kinds was written or deleted after the given revision. Runs
/// after [`next_revision`], so the counter's lock keeps the answer true until the commit.
async fn changed_after(conn: &mut AnyConnection, unchanged: Option<Unchanged>) -> Result<bool, StoreError> {
    let Some(Unchanged { since, kinds }) = unchanged else { return Ok(false) };
    for kind in kinds {
        let (changes,): (i64,) = sqlx::query_as(
            "SELECT (SELECT COUNT(*) FROM entities WHERE kind = $1 AND revision > $2) \
                  + (SELECT COUNT(*) FROM deletions WHERE kind = $1 AND revision > $2)",
        )
        .bind(kind.collection())
        .bind(since)
        .fetch_one(&mut *conn)
        .await
        .context("checking for concurrent changes")?;
        if changes > 0 {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Whether one of `present` no longer exists. Runs after [`next_revision`], like
/// [`changed_after`].
async fn any_missing(conn: &mut AnyConnection, present: &[(EntityKind, EntityId)]) -> Result<bool, StoreError> {
    for (kind, id) in present {
        if current_revision(conn, *kind, &id.key()).await?.is_none() {
            return Ok(true);
        }
    }
    Ok(false)
}

async fn current_revision(
    conn: &mut AnyConnection,
    kind: EntityKind,
    key: &str,
) -> Result<Option<(i64, String)>, StoreError> {
    sqlx::query_as("SELECT revision, id FROM entities WHERE kind = $1 AND id_key = $2")
        .bind(kind.collection())
        .bind(key)
        .fetch_optional(conn)
        .await
        .context("reading the current revision")
}

/// Claims `unique` for record `key`, releasing the value it held before; `Taken` (and nothing
/// claimed) while another record holds it. Runs after [`next_revision`], whose lock (on
/// PostgreSQL; SQLite's write lock on SQLite) keeps another writer from claiming in between.
async fn claim(
    conn: &mut AnyConnection,
    kind: EntityKind,
    key: &str,
    unique: &Unique,
) -> Result<Option<StoreError>, StoreError> {
    let value = unique.value.to_ascii_lowercase();
    let holder: Option<(String,)> = sqlx::query_as(
        "SELECT e.id FROM unique_values u JOIN entities e ON e.kind = u.kind AND e.id_key = u.id_key \
         WHERE u.kind = $1 AND u.field = $2 AND u.value = $3 AND u.id_key <> $4",
    )
    .bind(kind.collection())
    .bind(unique.field)
    .bind(&value)
    .bind(key)
    .fetch_optional(&mut *conn)
    .await
    .context("looking for the holder of a unique value")?;
    if let Some((holder,)) = holder {
        return Ok(Some(StoreError::Taken { field: unique.field, value: unique.value.clone(), holder }));
    }
    // The record's previous value, and the value itself should a claim outlive its record: two
    // statements, each on an index (with `OR`, SQLite scans every value of the field).
    for (release, by) in [
        ("DELETE FROM unique_values WHERE kind = $1 AND id_key = $3 AND field = $2", key),
        ("DELETE FROM unique_values WHERE kind = $1 AND field = $2 AND value = $3", value.as_str()),
    ] {
        sqlx::query(release)
            .bind(kind.collection())
            .bind(unique.field)
            .bind(by)
            .execute(&mut *conn)
            .await
            .context("releasing a unique value")?;
    }
    sqlx::query("INSERT INTO unique_values (kind, field, value, id_key) VALUES ($1, $2, $3, $4)")
        .bind(kind.collection())
        .bind(unique.field)
        .bind(&value)
        .bind(key)
        .execute(&mut *conn)
        .await
        .context("claiming a unique value")?;
    Ok(None)
}

async fn delete_record(conn: &mut AnyConnection, revision: i64, kind: EntityKind, key: &str) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM entities WHERE kind = $1 AND id_key = $2")
        .bind(kind.collection())
        .bind(key)
        .execute(&mut *conn)
        .await
        .context("deleting a record")?;
    sqlx::query("DELETE FROM unique_values WHERE kind = $1 AND id_key = $2")
        .bind(kind.collection())
        .bind(key)
        .execute(&mut *conn)
        .await
        .context("releasing a record's unique values")?;
    sqlx::query("INSERT INTO deletions (revision, kind, id_key) VALUES ($1, $2, $3)")
        .bind(revision)
        .bind(kind.collection())
        .bind(key)
        .execute(conn)
        .await
        .context("recording a deletion")?;
    Ok(())
}

const SELECT_ONE: &str =
    "SELECT id, id_key, revision, body, secret, updated_at FROM entities WHERE kind = $1 AND id_key = $2";
const SELECT_CHANGED: &str =
    "SELECT kind, id, id_key, revision, body, secret, updated_at FROM entities WHERE revision > $1 ORDER BY revision";
const SELECT_KIND: &str =
    "SELECT id, id_key, revision, body, secret, updated_at FROM entities WHERE kind = $1 ORDER BY id_key";

#[async_trait]
impl Store for SqlStore {
    async fn get(&self, kind: EntityKind, id: &EntityId) -> Result<Option<Record>, StoreError> {
        let row = sqlx::query(SELECT_ONE)
            .bind(kind.collection())
            .bind(id.key())
            .fetch_optional(&self.pool)
            .await
            .context("reading a record")?;
        row.map(|row| self.record(kind, &row)).transpose()
    }

    async fn list(&self, kind: EntityKind) -> Result<Vec<Record>, StoreError> {
        let rows =
            sqlx::query(SELECT_KIND).bind(kind.collection()).fetch_all(&self.pool).await.context("listing records")?;
        rows.iter().map(|row| self.record(kind, row)).collect()
    }

    async fn put_checked(
        &self,
        kind: EntityKind,
        id: &EntityId,
        body: String,
        secret: Option<Zeroizing<Vec<u8>>>,
        precondition: Precondition,
    ) -> Result<Written, StoreError> {
        self.put_entity(kind, id, body, secret, precondition).await.map_err(|e| self.write_failure(e))
    }

    async fn delete_checked(
        &self,
        kind: EntityKind,
        id: &EntityId,
        precondition: Precondition,
    ) -> Result<i64, StoreError> {
        self.delete_entity(kind, id, precondition).await.map_err(|e| self.write_failure(e))
    }

    async fn revision(&self) -> Result<i64, StoreError> {
        let (revision,): (i64,) =
            sqlx::query_as(REVISION).fetch_one(&self.pool).await.context("reading the revision")?;
        Ok(revision)
    }

    async fn changed_since(&self, revision: i64) -> Result<Changes, StoreError> {
        // One snapshot for the three queries (SQLite's transactions are snapshots; PostgreSQL's
        // READ COMMITTED is not): the revision bounds them, and a record deleted and written
        // again is seen either in both lists or in neither.
        let mut tx = Tx::begin(&self.pool, self.dialect.begin_snapshot()).await.context("reading changes")?;
        let (current,): (i64,) = sqlx::query_as(REVISION).fetch_one(&mut *tx).await.context("reading the revision")?;
        let rows = sqlx::query(SELECT_CHANGED).bind(revision).fetch_all(&mut *tx).await.context("reading changes")?;
        let deleted: Vec<(String, String)> =
            sqlx::query_as("SELECT kind, id_key FROM deletions WHERE revision > $1 ORDER BY revision")
                .bind(revision)
                .fetch_all(&mut *tx)
                .await
                .context("reading deletions")?;
        tx.commit().await.context("reading changes")?;
        let kind_of = |name: &str| {
            EntityKind::from_collection(name).ok_or_else(|| StoreError::Corrupt {
                kind: "entities",
                id: name.to_owned(),
                reason: "unknown kind".into(),
            })
        };
        let written = rows
            .iter()
            .map(|row| {
                let kind: String = row.try_get("kind").context("reading a record")?;
                self.record(kind_of(&kind)?, row)
            })
            .collect::<Result<_, _>>()?;
        let deleted =
            deleted.into_iter().map(|(kind, key)| Ok((kind_of(&kind)?, key))).collect::<Result<_, StoreError>>()?;
        Ok(Changes { revision: current, written, deleted })
    }

    fn changes(&self) -> watch::Receiver<i64> {
        self.changes.subscribe()
    }

    async fn try_lead(&self, duty: Duty) -> Result<Option<Lease>, StoreError> {
        match &self.postgres {
            Some(shared) => Lease::try_postgres(&shared.options, duty).await,
            None => Ok(Some(Lease::alone())),
        }
    }

    async fn heartbeat(&self, node: &NodeBeat) -> Result<(), StoreError> {
        sqlx::query(cluster::UPSERT_NODE)
            .bind(&node.id)
            .bind(&node.name)
            .bind(node.admin_address.as_deref())
            .bind(node.served_revision)
            .bind(node.started_at)
            .bind(node.heartbeat_at)
            .execute(&self.pool)
            .await
            .context("writing the node's heartbeat")
            .map_err(StoreError::while_writing)?;
        sqlx::query(cluster::FORGET_NODES)
            .bind(node.heartbeat_at - cluster::FORGET_AFTER_S)
            .execute(&self.pool)
            .await
            .context("forgetting silent nodes")
            .map_err(StoreError::while_writing)?;
        Ok(())
    }

    async fn nodes(&self) -> Result<Vec<NodeBeat>, StoreError> {
        let rows: Vec<(String, String, Option<String>, i64, i64, i64)> =
            sqlx::query_as(cluster::SELECT_NODES).fetch_all(&self.pool).await.context("listing nodes")?;
        Ok(rows
            .into_iter()
            .map(|(id, name, admin_address, served_revision, started_at, heartbeat_at)| NodeBeat {
                id,
                name,
                admin_address,
                served_revision,
                started_at,
                heartbeat_at,
            })
            .collect())
    }

    async fn probe(&self) -> Result<(), StoreError> {
        // A small write can succeed on a full disk by reusing WAL space that failed writes
        // left behind, while every real write fails: the file system is asked first.
        if let Some(cause) = self.sqlite.as_ref().and_then(|files| Unavailability::of_file_system(&files.dir)) {
            return Err(StoreError::Unavailable {
                access: Access::Write,
                cause,
                context: "checking the file system",
                source: None,
            });
        }
        async {
            let mut tx = self.begin_write().await?;
            sqlx::query(
                "INSERT INTO meta (name, value) VALUES ('ready_probe', $1) \
                 ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            )
            .bind(certgate_model::unix_now().to_be_bytes().to_vec())
            .execute(&mut *tx)
            .await
            .context("writing the readiness probe")?;
            tx.commit().await.context("committing the readiness probe")
        }
        .await
        .map_err(|e| self.write_failure(e))
    }
}
