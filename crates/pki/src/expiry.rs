//! A client certificate is never presented at or after its notAfter, whatever snapshot a
//! request still holds: the handshake stops offering it, and sessions it authenticated are not
//! resumed (a resumed TLS session carries the original client authentication without sending
//! the certificate again).
//!
//! notAfter has one-second resolution; the certificate counts as expired from the first instant
//! of that second (`not_after <= now`), as the snapshot compiler decides it.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::client::{
    ClientSessionMemoryCache, ClientSessionStore, ResolvesClientCert, Tls12ClientSessionValue, Tls13ClientSessionValue,
};
use rustls::sign::CertifiedKey;
use rustls::{NamedGroup, SignatureScheme};
use rustls_pki_types::ServerName;

/// How many sessions a client configuration remembers (rustls' default).
const SESSIONS: usize = 256;

/// The instant `not_after` (Unix seconds) begins; `None` when beyond what the clock represents.
fn expiry_instant(not_after: i64) -> Option<SystemTime> {
    UNIX_EPOCH.checked_add(Duration::from_secs(u64::try_from(not_after).unwrap_or(0)))
}

/// Whether a certificate valid until `expires` may still be used.
fn unexpired(expires: Option<SystemTime>) -> bool {
    expires.is_none_or(|expires| SystemTime::now() < expires)
}

/// Presents the certificate until it expires, then nothing (the backend then refuses the
/// handshake, which is logged as such, instead of accepting an expired certificate).
pub(crate) struct UntilExpiry {
    certified: Arc<CertifiedKey>,
    expires: Option<SystemTime>,
}

impl UntilExpiry {
    pub(crate) fn new(certified: CertifiedKey, not_after: i64) -> Self {
        Self { certified: Arc::new(certified), expires: expiry_instant(not_after) }
    }
}

impl fmt::Debug for UntilExpiry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UntilExpiry").field("expires", &self.expires).finish_non_exhaustive()
    }
}

impl ResolvesClientCert for UntilExpiry {
    fn resolve(&self, _hints: &[&[u8]], _schemes: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        unexpired(self.expires).then(|| self.certified.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// rustls' in-memory session cache, except that no session is handed out for resumption once
/// the certificate that authenticated it has expired.
pub(crate) struct SessionsUntilExpiry {
    inner: ClientSessionMemoryCache,
    expires: Option<SystemTime>,
}

impl SessionsUntilExpiry {
    pub(crate) fn new(not_after: i64) -> Self {
        Self { inner: ClientSessionMemoryCache::new(SESSIONS), expires: expiry_instant(not_after) }
    }

    fn usable(&self) -> bool {
        unexpired(self.expires)
    }
}

impl fmt::Debug for SessionsUntilExpiry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionsUntilExpiry").field("expires", &self.expires).finish_non_exhaustive()
    }
}

impl ClientSessionStore for SessionsUntilExpiry {
    fn set_kx_hint(&self, server_name: ServerName<'static>, group: NamedGroup) {
        self.inner.set_kx_hint(server_name, group);
    }

    fn kx_hint(&self, server_name: &ServerName<'_>) -> Option<NamedGroup> {
        self.inner.kx_hint(server_name)
    }

    fn set_tls12_session(&self, server_name: ServerName<'static>, value: Tls12ClientSessionValue) {
        self.inner.set_tls12_session(server_name, value);
    }

    fn tls12_session(&self, server_name: &ServerName<'_>) -> Option<Tls12ClientSessionValue> {
        self.inner.tls12_session(server_name).filter(|_| self.usable())
    }

    fn remove_tls12_session(&self, server_name: &ServerName<'static>) {
        self.inner.remove_tls12_session(server_name);
    }

    fn insert_tls13_ticket(&self, server_name: ServerName<'static>, value: Tls13ClientSessionValue) {
        self.inner.insert_tls13_ticket(server_name, value);
    }

    fn take_tls13_ticket(&self, server_name: &ServerName<'static>) -> Option<Tls13ClientSessionValue> {
        self.inner.take_tls13_ticket(server_name).filter(|_| self.usable())
    }
}
