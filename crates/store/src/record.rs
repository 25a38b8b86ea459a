use certgate_model::{EntityId, EntityKind};
use serde::de::DeserializeOwned;
use zeroize::Zeroizing;

use crate::StoreError;

/// One stored entity: its public body (JSON of a model type) and its opened secret, if any.
pub struct Record {
    pub kind: EntityKind,
    pub id: EntityId,
    /// Raised on every write; the entity's ETag.
    pub revision: i64,
    pub body: String,
    pub secret: Option<Zeroizing<Vec<u8>>>,
    /// Unix seconds of the last write.
    pub updated_at: i64,
}

impl Record {
    /// Decodes the body into its model type.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, StoreError> {
        serde_json::from_str(&self.body).map_err(|e| StoreError::Corrupt {
            kind: self.kind.collection(),
            id: self.id.to_string(),
            reason: e.to_string(),
        })
    }
}

impl std::fmt::Debug for Record {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Record")
            .field("kind", &self.kind)
            .field("id", &self.id)
            .field("revision", &self.revision)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

/// The outcome of a successful [`crate::Store::put`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub revision: i64,
    /// True when the record did not exist before (201 rather than 200).
    pub created: bool,
    /// The id as stored: the original spelling when an existing record was replaced.
    pub id: EntityId,
}
