//! One database transaction on a connection of its own, ended by us rather than by sqlx's
//! `Transaction`.
//!
//! sqlx keeps a per-connection transaction depth and lowers it only when COMMIT or ROLLBACK
//! succeed. After two failed writes in a row (a full disk, an immutable file) the depth stayed
//! raised, so every later `begin()` issued a SAVEPOINT inside a transaction that never ended:
//! writes were acknowledged, readable on that connection, and lost on restart. Here a
//! transaction ends cleanly only when its COMMIT or ROLLBACK succeeds; on every other path — an
//! error returned with `?`, a failed COMMIT or ROLLBACK, a cancelled future — the connection is
//! closed instead of returned to the pool (closing rolls back whatever the database still holds
//! open), and the next transaction gets a fresh connection.

use std::ops::{Deref, DerefMut};

use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyConnection, AnyPool, Executor as _};

pub(crate) struct Tx {
    conn: PoolConnection<Any>,
    ended: bool,
}

impl Tx {
    /// Takes a connection and starts a transaction with `begin` (`BEGIN`, `BEGIN IMMEDIATE`).
    pub(crate) async fn begin(pool: &AnyPool, begin: &'static str) -> Result<Tx, sqlx::Error> {
        let mut tx = Tx { conn: pool.acquire().await?, ended: false };
        tx.conn.execute(begin).await?;
        Ok(tx)
    }

    pub(crate) async fn commit(mut self) -> Result<(), sqlx::Error> {
        self.conn.execute("COMMIT").await?;
        self.ended = true;
        Ok(())
    }

    /// Ends a transaction that changed nothing worth keeping; a failed ROLLBACK discards the
    /// connection like any other failure, so the caller has nothing to handle.
    pub(crate) async fn rollback(mut self) {
        self.ended = self.conn.execute("ROLLBACK").await.is_ok();
    }
}

impl Drop for Tx {
    fn drop(&mut self) {
        if !self.ended {
            self.conn.close_on_drop();
        }
    }
}

impl Deref for Tx {
    type Target = AnyConnection;
    fn deref(&self) -> &AnyConnection {
        &self.conn
    }
}

impl DerefMut for Tx {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        &mut self.conn
    }
}
