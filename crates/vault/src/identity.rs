use std::time::{Duration, Instant};

use tokio::sync::Mutex;
use zeroize::Zeroizing;

/// How an identity authenticates to the vault.
pub enum AuthMethod {
    /// A vault token, used as is.
    Token(Zeroizing<String>),
    /// AppRole: logs in with role_id + secret_id and re-logs in before the token expires.
    AppRole { mount: String, role_id: String, secret_id: Zeroizing<String> },
}

impl AuthMethod {
    pub fn name(&self) -> &'static str {
        match self {
            AuthMethod::Token(_) => "token",
            AuthMethod::AppRole { .. } => "approle",
        }
    }
}

/// The gateway's system identity or a named (user) identity, with its cached login.
pub struct Identity {
    pub id: String,
    pub method: AuthMethod,
    /// An AppRole identity's current token and when to log in again, per vault server: a token
    /// one server issued is never sent to another.
    pub(crate) session: Mutex<std::collections::HashMap<String, (Zeroizing<String>, Instant)>>,
    /// When a token identity renews its token next, per vault server.
    pub(crate) renew_at: Mutex<std::collections::HashMap<String, Instant>>,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity").field("id", &self.id).field("method", &self.method.name()).finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error("identity '{0}' is not configured")]
    Unknown(String),
}

impl Identity {
    pub const SYSTEM: &'static str = "system";

    pub fn new(id: impl Into<String>, method: AuthMethod) -> Self {
        Self {
            id: id.into(),
            method,
            session: Mutex::new(Default::default()),
            renew_at: Mutex::new(Default::default()),
        }
    }
}

/// Log in again when this much of a token's lifetime is left (or at two thirds of it).
pub(crate) fn relogin_at(ttl: Duration) -> Instant {
    Instant::now() + ttl.mul_f64(2.0 / 3.0)
}

/// How long to wait before trying again to renew a token that could not be renewed.
pub(crate) const RENEWAL_RETRY: Duration = Duration::from_secs(3600);
