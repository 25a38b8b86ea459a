//! What several nodes sharing one PostgreSQL database need beyond the records themselves:
//! hearing about each other's writes, one node per duty, and a list of who is there.
//!
//! - **Propagation.** Every write transaction sends `NOTIFY certgate_changes, '<revision>'`
//!   before it commits; PostgreSQL delivers it on commit. Each node's [follower](follow) listens
//!   on a connection of its own and raises the store's change watch, which the control loop
//!   already follows. After the listening connection was lost, and every
//!   [`PostgresOptions::resync_interval`] anyway, the follower reads the revision itself, so a
//!   lost notification delays a change by that interval at most.
//! - **Duties** ([`Lease`]): a session-level advisory lock held on a dedicated connection. The
//!   lock lives as long as that connection: a node that dies (its socket closes) or loses the
//!   database frees it, a holder gone silent (its host lost, its socket never closed) is ended
//!   by the server after ten seconds without a statement, and another node's next
//!   [`crate::Store::try_lead`] gets it.
//! - **Nodes** ([`NodeBeat`]): each node upserts a heartbeat row; the rows are not entities and
//!   raise no revision.
//!
//! On the embedded SQLite store the node is alone: every lease is granted and never lost.

use std::str::FromStr as _;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use sqlx::{AnyConnection, AnyPool, Connection as _, PgConnection};
use tokio::sync::watch;

use crate::error::{DbContext, StoreError};

/// The channel writes are announced on.
pub(crate) const CHANNEL: &str = "certgate_changes";

/// How a node reaches a shared PostgreSQL store.
#[derive(Clone)]
pub struct PostgresOptions {
    /// `postgres://user:password@host:port/database?sslmode=…&sslrootcert=…`; it may hold a
    /// password, so it is never logged (see [`PostgresOptions::describe`]).
    pub url: zeroize::Zeroizing<String>,
    /// Connections the node's pool may open (the listener and a lease take one more each).
    pub pool_size: u32,
    /// How often the node reads the store's revision even without a notification.
    pub resync_interval: Duration,
}

impl PostgresOptions {
    pub const DEFAULT_POOL_SIZE: u32 = 8;
    pub const DEFAULT_RESYNC_INTERVAL: Duration = Duration::from_secs(30);

    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: zeroize::Zeroizing::new(url.into()),
            pool_size: Self::DEFAULT_POOL_SIZE,
            resync_interval: Self::DEFAULT_RESYNC_INTERVAL,
        }
    }

    pub(crate) fn connect_options(&self) -> Result<PgConnectOptions, StoreError> {
        PgConnectOptions::from_str(&self.url).context("parsing the database URL")
    }

    /// `host:port/database`, for log lines: the URL without its user and password.
    pub fn describe(&self) -> String {
        match self.connect_options() {
            Ok(options) => format!(
                "{}:{}/{}",
                options.get_host(),
                options.get_port(),
                options.get_database().unwrap_or("(the user's database)")
            ),
            Err(_) => "(an unreadable URL)".to_owned(),
        }
    }
}

impl std::fmt::Debug for PostgresOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresOptions")
            .field("server", &self.describe())
            .field("pool_size", &self.pool_size)
            .field("resync_interval", &self.resync_interval)
            .finish()
    }
}

/// Announces a write from inside its transaction: delivered to every listener on commit,
/// dropped with a rollback.
pub(crate) async fn announce(conn: &mut AnyConnection, revision: i64) -> Result<(), StoreError> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(CHANNEL)
        .bind(revision.to_string())
        .execute(conn)
        .await
        .context("announcing a change")?;
    Ok(())
}

/// Raises the change watch to `revision` unless it is there already: revisions only grow, and
/// a node hears of its own writes twice (on commit and by notification).
pub(crate) fn raise(changes: &watch::Sender<i64>, revision: i64) {
    changes.send_if_modified(|current| {
        let newer = revision > *current;
        if newer {
            *current = revision;
        }
        newer
    });
}

/// Follows the other nodes' writes until the store is dropped (the task is aborted then).
pub(crate) async fn follow(
    options: PgConnectOptions,
    pool: AnyPool,
    changes: watch::Sender<i64>,
    resync_interval: Duration,
) {
    const RECONNECT: Duration = Duration::from_secs(1);
    let raise = |revision: i64| raise(&changes, revision);
    let resync = || async {
        match sqlx::query_as::<_, (i64,)>(crate::migrate::REVISION).fetch_one(&pool).await {
            Ok((revision,)) => raise(revision),
            Err(error) => tracing::debug!(%error, "cannot read the store's revision; trying again later"),
        }
    };
    let mut lost_since: Option<std::time::Instant> = None;
    loop {
        let listener = async {
            // A pool of one, so the listener's reconnects follow the same options; each attempt
            // is short, so a server that is back is heard from within about a second.
            let pool = PgPoolOptions::new()
                .max_connections(1)
                .acquire_timeout(RECONNECT)
                .connect_with(options.clone())
                .await?;
            let mut listener = PgListener::connect_with(&pool).await?;
            // A lost connection ends this listener; the outer loop subscribes again and then
            // reads the revision, in that order.
            listener.eager_reconnect(false);
            listener.listen(CHANNEL).await?;
            Ok::<_, sqlx::Error>(listener)
        };
        let mut listener = match listener.await {
            Ok(listener) => listener,
            Err(error) => {
                if lost_since.is_none() {
                    tracing::warn!(%error, "cannot listen for other nodes' changes; retrying every second");
                    lost_since = Some(std::time::Instant::now());
                }
                tokio::time::sleep(RECONNECT).await;
                continue;
            }
        };
        if let Some(since) = lost_since.take() {
            tracing::info!(after_s = since.elapsed().as_secs(), "listening for other nodes' changes again");
        }
        // Subscribed first, then read: whatever committed before the subscription is covered.
        resync().await;
        let mut tick = tokio::time::interval(resync_interval);
        tick.reset();
        loop {
            tokio::select! {
                notification = listener.try_recv() => match notification {
                    Ok(Some(notification)) => match notification.payload().parse::<i64>() {
                        Ok(revision) => raise(revision),
                        Err(_) => resync().await,
                    },
                    // The connection was lost: notifications sent since are gone.
                    Ok(None) => {
                        tracing::warn!("lost the connection that listens for other nodes' changes");
                        lost_since = Some(std::time::Instant::now());
                        break;
                    }
                    Err(error) => {
                        tracing::warn!(%error, "lost the connection that listens for other nodes' changes");
                        lost_since = Some(std::time::Instant::now());
                        break;
                    }
                },
                _ = tick.tick() => {
                    // A connection a firewall dropped silently never reports an error: ask it.
                    let alive = tokio::time::timeout(RECONNECT * 5, sqlx::query("SELECT 1").execute(&mut listener)).await;
                    if !matches!(alive, Ok(Ok(_))) {
                        tracing::warn!("the connection that listens for other nodes' changes stopped answering");
                        lost_since = Some(std::time::Instant::now());
                        break;
                    }
                    resync().await;
                }
            }
        }
    }
}

/// Work that exactly one node of a cluster does at a time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Duty {
    /// Re-reading vault references and renewing PKI certificates.
    Refresher,
    /// First-start work (the first admin token), one node after the other.
    Bootstrap,
}

impl Duty {
    /// The advisory lock key: any fixed number no other program on the database uses.
    fn lock_key(self) -> i64 {
        match self {
            // "certgate" in ASCII, then the duty's number.
            Duty::Refresher => 0x6365_7274_6761_0001,
            Duty::Bootstrap => 0x6365_7274_6761_0002,
        }
    }
}

impl std::fmt::Display for Duty {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Duty::Refresher => "vault refresher",
            Duty::Bootstrap => "first start",
        })
    }
}

/// How often a lease's holder checks its lock session (and how long a check may take).
const LEASE_CHECK: Duration = Duration::from_secs(2);

/// How long a lock session may go without a statement before the server ends it.
const LEASE_SILENCE: Duration = Duration::from_secs(10);

/// A duty this node holds until the lease is dropped or [`Lease::lost`] resolves.
pub struct Lease {
    held: Held,
}

enum Held {
    /// The embedded store: the node is alone.
    Alone,
    /// The advisory lock's session.
    Postgres(PgConnection),
}

impl Lease {
    pub(crate) fn alone() -> Self {
        Lease { held: Held::Alone }
    }

    /// Takes `duty`'s lock on a new connection; `None` when another node holds it.
    ///
    /// The session ends itself after [`LEASE_SILENCE`] without a statement: [`Lease::lost`]
    /// pings far more often, so only a holder whose host died or was cut off goes silent, and
    /// the lock is freed then rather than when TCP keepalive gives up (hours).
    pub(crate) async fn try_postgres(options: &PgConnectOptions, duty: Duty) -> Result<Option<Self>, StoreError> {
        let silence = format!("{}s", LEASE_SILENCE.as_secs());
        let options = options.clone().options([("idle_session_timeout", silence.as_str())]);
        let connect = PgConnection::connect_with(&options);
        let mut conn = match tokio::time::timeout(LEASE_CHECK * 2, connect).await {
            Ok(connected) => connected.context("connecting for a duty's lock")?,
            Err(_) => {
                return Err(StoreError::Unavailable {
                    access: crate::Access::Read,
                    cause: crate::Unavailability::Unreachable,
                    context: "connecting for a duty's lock",
                    source: None,
                });
            }
        };
        let (granted,): (bool,) = sqlx::query_as("SELECT pg_try_advisory_lock($1)")
            .bind(duty.lock_key())
            .fetch_one(&mut conn)
            .await
            .context("taking a duty's lock")?;
        if granted {
            Ok(Some(Lease { held: Held::Postgres(conn) }))
        } else {
            let _ = conn.close().await;
            Ok(None)
        }
    }

    /// Resolves once the lease can no longer be trusted: the lock's connection failed a check
    /// (PostgreSQL frees the lock when it sees the session end). Never, on the embedded store.
    pub async fn lost(&mut self) {
        match &mut self.held {
            Held::Alone => std::future::pending().await,
            Held::Postgres(conn) => loop {
                tokio::time::sleep(LEASE_CHECK).await;
                if !matches!(tokio::time::timeout(LEASE_CHECK, conn.ping()).await, Ok(Ok(()))) {
                    return;
                }
            },
        }
    }
}

/// A node's entry in the cluster's list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeBeat {
    /// Stable across restarts (kept in the node's data folder).
    pub id: String,
    /// The host name, for people.
    pub name: String,
    /// Where the node's management API listens, as the node sees it.
    pub admin_address: Option<String>,
    /// The store revision of the snapshot the node serves.
    pub served_revision: i64,
    /// Unix seconds.
    pub started_at: i64,
    /// Unix seconds of the last heartbeat.
    pub heartbeat_at: i64,
}

/// Nodes silent for this long leave the list.
pub(crate) const FORGET_AFTER_S: i64 = 86_400;

pub(crate) const UPSERT_NODE: &str = "INSERT INTO nodes (id, name, admin_address, served_revision, started_at, heartbeat_at) \
     VALUES ($1, $2, $3, $4, $5, $6) \
     ON CONFLICT (id) DO UPDATE SET name = excluded.name, admin_address = excluded.admin_address, \
     served_revision = excluded.served_revision, started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at";
pub(crate) const FORGET_NODES: &str = "DELETE FROM nodes WHERE heartbeat_at < $1";
pub(crate) const SELECT_NODES: &str =
    "SELECT id, name, admin_address, served_revision, started_at, heartbeat_at FROM nodes ORDER BY name, id";
