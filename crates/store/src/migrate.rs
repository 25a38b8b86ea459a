//! The schema, migrated by sqlx's runtime [`Migrator`]: numbered scripts per dialect, embedded in
//! the binary, recorded in `_sqlx_migrations` with their checksums (so an applied script that was
//! edited is refused at start), taken under sqlx's advisory lock on PostgreSQL so nodes starting
//! together apply each once. (The `migrate!` macro is not used: it needs sqlx's macros feature,
//! which costs a second native build of SQLite and aws-lc; the scripts are embedded here instead.)
//!
//! Databases made before the Migrator recorded their versions in `schema_migrations`; those
//! versions are marked applied without running them, and migration 3 drops that table.

use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{AnyPool, SqlSafeStr as _};

use crate::error::{DbContext, StoreError};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// The statements that start a write transaction. SQLite's `IMMEDIATE` takes the write lock
    /// at once, so a transaction never fails later on upgrading a read lock; `synchronous =
    /// FULL` (a per-connection setting, set here so that it holds on every fresh connection)
    /// makes COMMIT return only once the WAL is on disk: acknowledged means durable.
    pub(crate) fn begin_write(self) -> &'static str {
        match self {
            Dialect::Sqlite => "PRAGMA synchronous = FULL; BEGIN IMMEDIATE",
            Dialect::Postgres => "BEGIN",
        }
    }

    /// The statement that starts a read-only transaction seeing one snapshot of the store.
    pub(crate) fn begin_snapshot(self) -> &'static str {
        match self {
            Dialect::Sqlite => "BEGIN",
            Dialect::Postgres => "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
        }
    }
}

/// Reads the store's revision: the counter every write raises (created by the first script).
pub(crate) const REVISION: &str = "SELECT value FROM counters WHERE name = 'revision'";

struct Script {
    version: i64,
    description: &'static str,
    sqlite: &'static str,
    postgres: &'static str,
}

const SCRIPTS: &[Script] = &[
    Script {
        version: 1,
        description: "entities",
        sqlite: include_str!("migrations/0001_entities.sqlite.sql"),
        postgres: include_str!("migrations/0001_entities.postgres.sql"),
    },
    Script {
        version: 2,
        description: "change feed",
        sqlite: include_str!("migrations/0002_change_feed.sqlite.sql"),
        postgres: include_str!("migrations/0002_change_feed.postgres.sql"),
    },
    Script {
        version: 3,
        description: "drop the hand-written runner's table",
        sqlite: include_str!("migrations/0003_sqlx_migrator.sql"),
        postgres: include_str!("migrations/0003_sqlx_migrator.sql"),
    },
    Script {
        version: 4,
        description: "nodes",
        sqlite: include_str!("migrations/0004_nodes.sql"),
        postgres: include_str!("migrations/0004_nodes.sql"),
    },
    Script {
        version: 5,
        description: "unique values",
        sqlite: include_str!("migrations/0005_unique_values.sql"),
        postgres: include_str!("migrations/0005_unique_values.sql"),
    },
    Script {
        version: 6,
        description: "claim the stored API paths",
        sqlite: include_str!("migrations/0006_claim_api_paths.sqlite.sql"),
        postgres: include_str!("migrations/0006_claim_api_paths.postgres.sql"),
    },
];

fn migrator(dialect: Dialect) -> Migrator {
    Migrator::with_migrations(
        SCRIPTS
            .iter()
            .map(|script| {
                let sql = match dialect {
                    Dialect::Sqlite => script.sqlite,
                    Dialect::Postgres => script.postgres,
                };
                Migration::new(
                    script.version,
                    script.description.into(),
                    MigrationType::Simple,
                    sql.into_sql_str(),
                    false,
                )
            })
            .collect(),
    )
}

pub(crate) async fn run(pool: &AnyPool, dialect: Dialect) -> Result<(), StoreError> {
    let migrator = migrator(dialect);
    if let Some(applied) = legacy_version(pool, dialect).await? {
        migrator.skip(pool, Some(applied)).await?;
    }
    migrator.run(pool).await?;
    Ok(())
}

/// The last version the hand-written runner applied, if this database was made by it.
async fn legacy_version(pool: &AnyPool, dialect: Dialect) -> Result<Option<i64>, StoreError> {
    let exists = match dialect {
        Dialect::Sqlite => "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'",
        Dialect::Postgres => {
            "SELECT COUNT(*) FROM information_schema.tables \
             WHERE table_schema = current_schema() AND table_name = 'schema_migrations'"
        }
    };
    let (tables,): (i64,) = sqlx::query_as(exists).fetch_one(pool).await.context("looking for old migrations")?;
    if tables == 0 {
        return Ok(None);
    }
    let (version,): (Option<i64>,) = sqlx::query_as("SELECT MAX(version) FROM schema_migrations")
        .fetch_one(pool)
        .await
        .context("reading old migrations")?;
    Ok(version)
}
