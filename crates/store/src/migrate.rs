//! A deliberately small migration runner: numbered SQL scripts per dialect, applied in order,
//! each in its own transaction, recorded in `schema_migrations`. (sqlx's `migrate!` needs the
//! macros feature, which costs a second native build of SQLite and aws-lc.)

use sqlx::{AnyPool, Executor};

use crate::error::{DbContext, StoreError};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dialect {
    Sqlite,
    Postgres,
}

struct Migration {
    version: i64,
    sqlite: &'static str,
    postgres: &'static str,
}

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        sqlite: include_str!("migrations/0001_entities.sqlite.sql"),
        postgres: include_str!("migrations/0001_entities.postgres.sql"),
    },
    Migration {
        version: 2,
        sqlite: include_str!("migrations/0002_change_feed.sqlite.sql"),
        postgres: include_str!("migrations/0002_change_feed.postgres.sql"),
    },
];

pub(crate) async fn run(pool: &AnyPool, dialect: Dialect) -> Result<(), StoreError> {
    pool.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY)")
        .await
        .context("creating the migrations table")?;
    for migration in MIGRATIONS {
        let mut tx = pool.begin().await.context("starting a migration")?;
        if dialect == Dialect::Postgres {
            // Nodes starting together must not run the same migration twice.
            tx.execute("LOCK TABLE schema_migrations IN EXCLUSIVE MODE").await.context("locking migrations")?;
        }
        let applied: Option<(i64,)> = sqlx::query_as("SELECT version FROM schema_migrations WHERE version = $1")
            .bind(migration.version)
            .fetch_optional(&mut *tx)
            .await
            .context("reading applied migrations")?;
        if applied.is_none() {
            let script = match dialect {
                Dialect::Sqlite => migration.sqlite,
                Dialect::Postgres => migration.postgres,
            };
            tx.execute(script).await.context("applying a migration")?;
            sqlx::query("INSERT INTO schema_migrations (version) VALUES ($1)")
                .bind(migration.version)
                .execute(&mut *tx)
                .await
                .context("recording a migration")?;
        }
        tx.commit().await.context("committing a migration")?;
    }
    Ok(())
}
