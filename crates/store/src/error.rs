use std::fmt;

use crate::crypto::MasterKeyError;

/// Failures of the persistence layer, with the context needed to act on them.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    /// A write with [`crate::Precondition::unchanged`] found another write committed
    /// after that revision.
    #[error("another change was committed while this one was being checked")]
    Raced,
    /// A write's [`crate::Precondition::unique`] value is held by another record (`holder`, its
    /// id as stored).
    #[error("{field} '{value}' is already used by '{holder}'")]
    Taken { field: &'static str, value: String, holder: String },
    #[error("the entity has changed (current revision {current:?})")]
    PreconditionFailed { current: Option<i64> },
    /// The database could not do its part for a reason outside certgate (disk full, read-only,
    /// I/O error, unreachable): nothing was changed, and the same request may succeed later.
    #[error("the store is not {access}: {cause}")]
    Unavailable {
        access: Access,
        cause: Unavailability,
        context: &'static str,
        /// `None` when certgate saw the condition itself (a full file system) before asking.
        #[source]
        source: Option<sqlx::Error>,
    },
    #[error("database error while {context}: {source}")]
    Database {
        context: &'static str,
        #[source]
        source: sqlx::Error,
    },
    #[error("migrating the database schema: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error(transparent)]
    MasterKey(#[from] MasterKeyError),
    #[error("stored record {kind}/{id} is unreadable: {reason}")]
    Corrupt { kind: &'static str, id: String, reason: String },
}

impl StoreError {
    /// Marks an unavailability as one of a write (errors are classified as reads by default).
    pub(crate) fn while_writing(self) -> Self {
        match self {
            StoreError::Unavailable { cause, context, source, .. } => {
                StoreError::Unavailable { access: Access::Write, cause, context, source }
            }
            other => other,
        }
    }

    /// SQLite reports many failed writes as a bare I/O error or a read-only database; the file
    /// system holding `dir` can tell whether it is full or mounted read-only.
    pub(crate) fn explained_by(self, dir: &std::path::Path) -> Self {
        match self {
            StoreError::Unavailable {
                access,
                cause: cause @ (Unavailability::Io | Unavailability::ReadOnly),
                context,
                source,
            } => {
                let cause = Unavailability::of_file_system(dir).unwrap_or(cause);
                StoreError::Unavailable { access, cause, context, source }
            }
            other => other,
        }
    }
}

/// What an unavailable store could not do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Access::Read => "readable",
            Access::Write => "writable",
        })
    }
}

/// Why the database could not complete an operation, in an operator's words.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unavailability {
    DiskFull,
    ReadOnlyFileSystem,
    /// The database refuses writes: a file it cannot open for writing, a standby server.
    ReadOnly,
    Io,
    Busy,
    Unreachable,
}

impl fmt::Display for Unavailability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Unavailability::DiskFull => "disk full",
            Unavailability::ReadOnlyFileSystem => "read-only file system",
            Unavailability::ReadOnly => "the database is read-only",
            Unavailability::Io => "I/O error",
            Unavailability::Busy => "the database is locked by another writer",
            Unavailability::Unreachable => "the database server is unreachable",
        })
    }
}

impl Unavailability {
    /// Classifies a driver error; `None` for errors that are certgate's own (a bad statement, a
    /// constraint), which stay [`StoreError::Database`].
    pub(crate) fn of(error: &sqlx::Error) -> Option<Unavailability> {
        match error {
            sqlx::Error::Database(db) => {
                if let Some(sqlite) = db.try_downcast_ref::<sqlx::sqlite::SqliteError>() {
                    Self::of_sqlite(sqlx::error::DatabaseError::code(sqlite)?.parse::<i32>().ok()? & 0xff)
                } else {
                    Self::of_sqlstate(&db.code()?)
                }
            }
            sqlx::Error::Io(io) => Some(match io.kind() {
                std::io::ErrorKind::StorageFull => Unavailability::DiskFull,
                std::io::ErrorKind::ReadOnlyFilesystem => Unavailability::ReadOnlyFileSystem,
                _ => Unavailability::Unreachable,
            }),
            sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => Some(Unavailability::Unreachable),
            _ => None,
        }
    }

    /// What the file system holding `dir` says against writing: full, or mounted read-only.
    pub(crate) fn of_file_system(dir: &std::path::Path) -> Option<Unavailability> {
        let fs = rustix::fs::statvfs(dir).ok()?;
        if fs.f_flag.contains(rustix::fs::StatVfsMountFlags::RDONLY) {
            Some(Unavailability::ReadOnlyFileSystem)
        } else if fs.f_bavail == 0 {
            Some(Unavailability::DiskFull)
        } else {
            None
        }
    }

    /// SQLite's primary result codes (<https://sqlite.org/rescode.html>).
    fn of_sqlite(primary: i32) -> Option<Unavailability> {
        match primary {
            13 => Some(Unavailability::DiskFull), // SQLITE_FULL
            8 => Some(Unavailability::ReadOnly),  // SQLITE_READONLY
            10 | 14 => Some(Unavailability::Io),  // SQLITE_IOERR, SQLITE_CANTOPEN
            5 | 6 => Some(Unavailability::Busy),  // SQLITE_BUSY, SQLITE_LOCKED
            _ => None,
        }
    }

    /// PostgreSQL's SQLSTATE classes (<https://www.postgresql.org/docs/current/errcodes-appendix.html>).
    fn of_sqlstate(state: &str) -> Option<Unavailability> {
        match state {
            "53100" => Some(Unavailability::DiskFull),
            "25006" => Some(Unavailability::ReadOnly),
            "58030" => Some(Unavailability::Io),
            "40001" | "40P01" | "55P03" => Some(Unavailability::Busy),
            _ if state.starts_with("08") || state.starts_with("57P") || state.starts_with("53") => {
                Some(Unavailability::Unreachable)
            }
            _ => None,
        }
    }
}

pub(crate) trait DbContext<T> {
    fn context(self, context: &'static str) -> Result<T, StoreError>;
}

impl<T> DbContext<T> for Result<T, sqlx::Error> {
    fn context(self, context: &'static str) -> Result<T, StoreError> {
        self.map_err(|source| match Unavailability::of(&source) {
            Some(cause) => StoreError::Unavailable { access: Access::Read, cause, context, source: Some(source) },
            None => StoreError::Database { context, source },
        })
    }
}
