//! Signed-in sessions: a random id in an HttpOnly, SameSite=Strict cookie names a session held in
//! this node's memory, which keeps the token (zeroized when the session ends) and the CSRF token
//! every form must carry. Sessions end on sign-out, after [`IDLE`] without a request, after
//! [`LIFETIME`] in any case, and as soon as the API stops accepting the token.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use aws_lc_rs::constant_time::verify_slices_are_equal;
use aws_lc_rs::error::Unspecified;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use axum::http::HeaderMap;
use axum::http::header::COOKIE;
use zeroize::Zeroizing;

/// The session cookie's name.
pub const COOKIE_NAME: &str = "certgate_session";
/// The cookie that carries the sign-in form's CSRF token before a session exists.
pub const SIGN_IN_COOKIE: &str = "certgate_signin";
pub const IDLE: Duration = Duration::from_secs(30 * 60);
pub const LIFETIME: Duration = Duration::from_secs(8 * 60 * 60);
/// At most this many live sessions: a new sign-in beyond it is refused (not an eviction, which
/// would let one token's sign-ins end everyone else's).
const MAX_SESSIONS: usize = 10_000;

/// Why no session was created.
#[derive(Debug, thiserror::Error)]
pub enum SessionRefused {
    #[error("{MAX_SESSIONS} sessions are open on this node; try again when some have ended")]
    Full,
    #[error("no randomness for a session id")]
    NoRandomness,
}

/// What a session may do, as the API said at sign-in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Reader,
    Contributor,
}

impl Role {
    pub fn may_write(self) -> bool {
        self == Role::Contributor
    }

    pub fn label(self) -> &'static str {
        match self {
            Role::Reader => "Reader",
            Role::Contributor => "Contributor",
        }
    }
}

/// A signed-in user, as a handler sees it.
#[derive(Clone)]
pub struct Session {
    pub id: String,
    pub token: Zeroizing<String>,
    pub role: Role,
    pub csrf: String,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").field("role", &self.role).finish_non_exhaustive()
    }
}

impl Session {
    /// Whether a submitted form carries this session's CSRF token.
    pub fn csrf_matches(&self, submitted: &str) -> bool {
        verify_slices_are_equal(self.csrf.as_bytes(), submitted.as_bytes()).is_ok()
    }
}

struct Held {
    session: Session,
    /// A message for the next page shown (post, redirect, get).
    notice: Option<String>,
    created: Instant,
    last_used: Instant,
}

#[derive(Default)]
pub struct Sessions {
    held: Mutex<HashMap<String, Held>>,
}

impl Sessions {
    pub fn create(&self, token: Zeroizing<String>, role: Role) -> Result<Session, SessionRefused> {
        let fresh = || random_id().map_err(|_| SessionRefused::NoRandomness);
        let session = Session { id: fresh()?, token, role, csrf: fresh()? };
        let now = Instant::now();
        let mut held = self.held.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        held.retain(|_, h| alive(h, now));
        if held.len() >= MAX_SESSIONS {
            return Err(SessionRefused::Full);
        }
        held.insert(session.id.clone(), Held { session: session.clone(), notice: None, created: now, last_used: now });
        Ok(session)
    }

    /// The live session the request's cookie names, its idle clock restarted.
    pub fn find(&self, headers: &HeaderMap) -> Option<Session> {
        let id = cookie(headers, COOKIE_NAME)?;
        let now = Instant::now();
        let mut held = self.held.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match held.get_mut(id) {
            Some(h) if alive(h, now) => {
                h.last_used = now;
                Some(h.session.clone())
            }
            Some(_) => {
                held.remove(id);
                None
            }
            None => None,
        }
    }

    /// Leaves `message` for the session's next page.
    pub fn set_notice(&self, id: &str, message: String) {
        if let Some(held) = self.held.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get_mut(id) {
            held.notice = Some(message);
        }
    }

    pub fn take_notice(&self, id: &str) -> Option<String> {
        self.held.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get_mut(id).and_then(|h| h.notice.take())
    }

    pub fn end(&self, id: &str) {
        self.held.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(id);
    }
}

fn alive(held: &Held, now: Instant) -> bool {
    now.duration_since(held.created) < LIFETIME && now.duration_since(held.last_used) < IDLE
}

/// 128 random bits, hex.
pub fn random_id() -> Result<String, Unspecified> {
    let mut bytes = [0u8; 16];
    SystemRandom::new().fill(&mut bytes)?;
    Ok(hex::encode(bytes))
}

/// The value of cookie `name` in the request.
pub fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// A `Set-Cookie` value scoped to the portal; `max_age` 0 deletes it.
pub fn set_cookie(name: &str, value: &str, max_age: Duration, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{name}={value}; Path=/portal; HttpOnly; SameSite=Strict; Max-Age={}{secure}", max_age.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held_at(created: Instant) -> Held {
        let session =
            Session { id: "s".into(), token: Zeroizing::new("t".into()), role: Role::Reader, csrf: "c".into() };
        Held { session, notice: None, created, last_used: created }
    }

    #[test]
    fn a_session_ends_when_idle_and_at_its_lifetime_even_while_used() {
        let start = Instant::now();
        let mut held = held_at(start);
        assert!(alive(&held, start + IDLE - Duration::from_secs(1)));
        assert!(!alive(&held, start + IDLE), "idle for 30 minutes");
        held.last_used = start + LIFETIME - Duration::from_secs(1);
        assert!(alive(&held, start + LIFETIME - Duration::from_millis(500)));
        assert!(!alive(&held, start + LIFETIME), "used a second ago, but 8 hours old");
    }

    #[test]
    fn the_cookie_is_found_among_others_and_only_by_its_exact_name() {
        let mut headers = HeaderMap::new();
        headers.append(COOKIE, "other=1; certgate_session_x=2".parse().unwrap());
        headers.append(COOKIE, "a=b; certgate_session=abc".parse().unwrap());
        assert_eq!(cookie(&headers, COOKIE_NAME), Some("abc"));
        assert_eq!(cookie(&headers, "missing"), None);
    }

    #[test]
    fn cookies_are_http_only_strict_scoped_and_secure_on_https() {
        let plain = set_cookie(COOKIE_NAME, "v", LIFETIME, false);
        assert_eq!(plain, "certgate_session=v; Path=/portal; HttpOnly; SameSite=Strict; Max-Age=28800");
        assert!(set_cookie(COOKIE_NAME, "v", LIFETIME, true).ends_with("; Secure"));
    }

    #[test]
    fn sessions_end_at_sign_out_and_csrf_must_match_exactly() {
        let sessions = Sessions::default();
        let session = sessions.create(Zeroizing::new("token".into()), Role::Contributor).unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(COOKIE, format!("{COOKIE_NAME}={}", session.id).parse().unwrap());
        let found = sessions.find(&headers).unwrap();
        assert!(found.csrf_matches(&session.csrf));
        assert!(!found.csrf_matches(""));
        assert!(!found.csrf_matches(&session.csrf[..31]));
        sessions.end(&session.id);
        assert!(sessions.find(&headers).is_none());
    }
}
