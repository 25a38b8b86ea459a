use std::fmt;

/// The id of an entity within its collection, as the user spelled it.
///
/// Ids are unique case-insensitively (APIM's rule), so lookups go through [`EntityId::key`].
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EntityId(String);

/// Why a string is not a valid entity id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("the id must not be empty")]
    Empty,
    #[error("the id must be at most {max} characters long (it has {len})", max = EntityId::MAX_LEN)]
    TooLong { len: usize },
    #[error("the id must not contain '{0}' (forbidden: * # & + : < > ? /)")]
    ForbiddenCharacter(char),
    #[error("the id must not contain control characters")]
    ControlCharacter,
}

impl EntityId {
    pub const MAX_LEN: usize = 80;
    const FORBIDDEN: &'static [char] = &['*', '#', '&', '+', ':', '<', '>', '?', '/'];

    pub fn parse(raw: &str) -> Result<Self, IdError> {
        let len = raw.chars().count();
        if len == 0 {
            return Err(IdError::Empty);
        }
        if len > Self::MAX_LEN {
            return Err(IdError::TooLong { len });
        }
        if let Some(c) = raw.chars().find(|c| Self::FORBIDDEN.contains(c)) {
            return Err(IdError::ForbiddenCharacter(c));
        }
        if raw.chars().any(char::is_control) {
            return Err(IdError::ControlCharacter);
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The record id of a child entity (an operation of an API): `parent:child`. `:` is
    /// forbidden in user ids, so the compound cannot collide with any of them.
    pub fn scoped(parent: &EntityId, child: &EntityId) -> EntityId {
        EntityId(format!("{}:{}", parent.0, child.0))
    }

    /// The record id of the one global (service-scope) entity of a collection.
    pub fn service_scope() -> EntityId {
        EntityId(":".to_owned())
    }

    /// The child part of a [`EntityId::scoped`] id.
    pub fn child(&self) -> &str {
        self.0.rsplit_once(':').map_or(&self.0, |(_, child)| child)
    }

    /// The case-folded form that identifies the entity in its collection.
    pub fn key(&self) -> String {
        self.0.to_lowercase()
    }
}

impl TryFrom<String> for EntityId {
    type Error = IdError;
    /// Accepts user ids and the compound record ids built by [`EntityId::scoped`].
    fn try_from(value: String) -> Result<Self, Self::Error> {
        if value == ":" {
            return Ok(Self::service_scope());
        }
        match value.split_once(':') {
            Some((parent, child)) => Ok(Self::scoped(&Self::parse(parent)?, &Self::parse(child)?)),
            None => Self::parse(&value),
        }
    }
}

impl From<EntityId> for String {
    fn from(id: EntityId) -> Self {
        id.0
    }
}

impl fmt::Display for EntityId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_ids_and_folds_case() {
        let id = EntityId::parse("Client-Cert_1.v2").expect("valid id");
        assert_eq!(id.key(), "client-cert_1.v2");
        assert_eq!(id.as_str(), "Client-Cert_1.v2");
    }

    #[test]
    fn rejects_what_apim_rejects() {
        assert_eq!(EntityId::parse(""), Err(IdError::Empty));
        assert_eq!(EntityId::parse(&"a".repeat(81)), Err(IdError::TooLong { len: 81 }));
        assert!(EntityId::parse(&"é".repeat(80)).is_ok(), "length counts characters, not bytes");
        for c in ['*', '#', '&', '+', ':', '<', '>', '?', '/'] {
            assert_eq!(EntityId::parse(&format!("a{c}b")), Err(IdError::ForbiddenCharacter(c)));
        }
        assert_eq!(EntityId::parse("a\u{7}b"), Err(IdError::ControlCharacter));
    }
}
