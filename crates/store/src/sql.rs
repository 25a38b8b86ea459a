use std::path::{Path, PathBuf};
use std::str::FromStr;

use async_trait::async_trait;
use certgate_model::{EntityId, EntityKind};
use sqlx::any::{AnyConnectOptions, AnyPoolOptions, AnyRow};
use sqlx::{AnyConnection, AnyPool, Connection as _, Row};
use tokio::sync::watch;
use zeroize::Zeroizing;

use crate::crypto::{MasterKey, MasterKeyError, Sealer};
use crate::error::{Access, DbContext, StoreError, Unavailability};
use crate::migrate::{self, Dialect};
use crate::tx::Tx;
use crate::{Changes, Record, Store, Written};

/// The store on SQLite or PostgreSQL through sqlx's `Any` driver.
pub struct SqlStore {
    pool: AnyPool,
    dialect: Dialect,
    /// On SQLite: what keeps its files usable across discarded connections.
    sqlite: Option<SqliteFiles>,
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

    /// Connects to a PostgreSQL store shared by several nodes.
    pub async fn open_postgres(url: &str, key: &MasterKey) -> Result<Self, StoreError> {
        let pool = AnyPoolOptions::new()
            .max_connections(8)
            .connect_with(Self::options(url)?)
            .await
            .context("connecting to PostgreSQL")?;
        Self::init(pool, Dialect::Postgres, key).await
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
        Ok(Self { pool, dialect, sqlite: None, sealer, changes })
    }

    async fn begin_write(&self) -> Result<Tx, StoreError> {
        Tx::begin(&self.pool, self.dialect.begin_write()).await.context("starting a write")
    }

    /// The first start seals a known value; every later start must open it with the same key,
    /// so a wrong key is reported at once instead of as garbage secrets later.
    async fn check_master_key(pool: &AnyPool, sealer: &Sealer) -> Result<(), StoreError> {
        let stored: Option<(Vec<u8>,)> = sqlx::query_as("SELECT value FROM meta WHERE name = $1")
            .bind(KEY_CHECK)
            .fetch_optional(pool)
            .await
            .context("reading the master key check")?;
        match stored {
            Some((sealed,)) => match sealer.open(KEY_CHECK, &sealed) {
                Ok(plain) if plain.as_slice() == KEY_CHECK_PLAINTEXT => Ok(()),
                _ => Err(MasterKeyError::Mismatch.into()),
            },
            None => {
                let sealed = sealer.seal(KEY_CHECK, KEY_CHECK_PLAINTEXT)?;
                sqlx::query("INSERT INTO meta (name, value) VALUES ($1, $2)")
                    .bind(KEY_CHECK)
                    .bind(sealed)
                    .execute(pool)
                    .await
                    .context("writing the master key check")?;
                Ok(())
            }
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

    fn published(&self, revision: i64) {
        self.changes.send_replace(revision);
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
        expected: Option<i64>,
    ) -> Result<Written, StoreError> {
        let key = id.key();
        let sealed = match &secret {
            Some(plain) => Some(self.sealer.seal(&Self::address(kind, &key), plain)?),
            None => None,
        };
        let mut tx = self.begin_write().await?;
        let revision = next_revision(&mut tx).await?;
        let current = current_revision(&mut tx, kind, &key).await?;
        if let Some(expected) = expected
            && current.as_ref().map(|(r, _)| *r) != Some(expected)
        {
            tx.rollback().await;
            return Err(StoreError::PreconditionFailed { current: current.map(|(r, _)| r) });
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
        tx.commit().await.context("committing a write")?;
        self.published(revision);
        Ok(Written { revision, created: current.is_none(), id: stored_id })
    }

    async fn delete_entity(&self, kind: EntityKind, id: &EntityId, expected: Option<i64>) -> Result<i64, StoreError> {
        let key = id.key();
        let mut tx = self.begin_write().await?;
        let revision = next_revision(&mut tx).await?;
        let current = current_revision(&mut tx, kind, &key).await?.map(|(r, _)| r);
        let refusal = match (current, expected) {
            (None, _) => Some(StoreError::NotFound),
            (Some(current), Some(expected)) if current != expected => {
                Some(StoreError::PreconditionFailed { current: Some(current) })
            }
            _ => None,
        };
        if let Some(refusal) = refusal {
            tx.rollback().await;
            return Err(refusal);
        }
        delete_record(&mut tx, revision, kind, &key).await?;
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

async fn delete_record(conn: &mut AnyConnection, revision: i64, kind: EntityKind, key: &str) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM entities WHERE kind = $1 AND id_key = $2")
        .bind(kind.collection())
        .bind(key)
        .execute(&mut *conn)
        .await
        .context("deleting a record")?;
    sqlx::query("INSERT INTO deletions (revision, kind, id_key) VALUES ($1, $2, $3)")
        .bind(revision)
        .bind(kind.collection())
        .bind(key)
        .execute(conn)
        .await
        .context("recording a deletion")?;
    Ok(())
}

const REVISION: &str = "SELECT value FROM counters WHERE name = 'revision'";
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

    async fn put(
        &self,
        kind: EntityKind,
        id: &EntityId,
        body: String,
        secret: Option<Zeroizing<Vec<u8>>>,
        expected: Option<i64>,
    ) -> Result<Written, StoreError> {
        self.put_entity(kind, id, body, secret, expected).await.map_err(|e| self.write_failure(e))
    }

    async fn delete(&self, kind: EntityKind, id: &EntityId, expected: Option<i64>) -> Result<i64, StoreError> {
        self.delete_entity(kind, id, expected).await.map_err(|e| self.write_failure(e))
    }

    async fn changed_since(&self, revision: i64) -> Result<Changes, StoreError> {
        // One transaction: the revision read first bounds what the two queries may miss, and
        // anything newer they return is applied again, harmlessly, next time.
        let mut tx = Tx::begin(&self.pool, "BEGIN").await.context("reading changes")?;
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
