/// What a management credential may do: readers may only read, contributors may also change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Reader,
    Contributor,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Reader => "reader",
            Role::Contributor => "contributor",
        }
    }

    pub fn may_write(self) -> bool {
        self == Role::Contributor
    }
}

/// A management API token. Only the SHA-256 of its secret is ever stored; the secret itself is
/// shown once, when the token is created.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Token {
    pub role: Role,
    /// Lower-case hex SHA-256 of the secret.
    pub secret_sha256: String,
}
