use crate::crypto::MasterKeyError;

/// Failures of the persistence layer, with the context needed to act on them.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    #[error("the entity has changed (current revision {current:?})")]
    PreconditionFailed { current: Option<i64> },
    #[error("database error while {context}: {source}")]
    Database {
        context: &'static str,
        #[source]
        source: sqlx::Error,
    },
    #[error(transparent)]
    MasterKey(#[from] MasterKeyError),
    #[error("stored record {kind}/{id} is unreadable: {reason}")]
    Corrupt { kind: &'static str, id: String, reason: String },
}

pub(crate) trait DbContext<T> {
    fn context(self, context: &'static str) -> Result<T, StoreError>;
}

impl<T> DbContext<T> for Result<T, sqlx::Error> {
    fn context(self, context: &'static str) -> Result<T, StoreError> {
        self.map_err(|source| StoreError::Database { context, source })
    }
}
