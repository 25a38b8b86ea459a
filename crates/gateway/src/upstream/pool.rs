//! Idle backend connections of one upstream (one TLS identity), per origin. LIFO, so the
//! connections kept busy stay warm and the rest age out. One short lock per checkout and per
//! release; nothing is held across IO.
//!
//! A pool ends in two ways, and then neither hands out nor takes back a connection: it is
//! *retired* when a new snapshot no longer uses its identity (its idle connections close at
//! once, those still carrying an exchange close when it ends), and it *expires* at its client
//! certificate's notAfter, even if a request still holding an older snapshot asks for it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::downstream::RequestBody;

use crate::telemetry::{ConnectionEvent, connection_event};
use hyper::client::conn::http2;

/// How long an idle backend connection stays pooled, unless the backend announced less.
pub(crate) const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Idle connections kept per origin; more than that are closed when released.
const MAX_IDLE_PER_ORIGIN: usize = 1024;

/// `scheme://authority` of a backend: connections are shared only within one origin.
pub(crate) type PoolKey = Arc<str>;

/// Generic over the HTTP/1.1 connection type, so the pool knows nothing of the exchange.
pub(crate) struct Pool<C> {
    origins: Mutex<Origins<C>>,
    /// The client certificate's notAfter as a monotonic instant: from then on no connection
    /// made with it is handed out or kept. `None` without a client certificate.
    usable_until: Option<Instant>,
}

struct Origins<C> {
    by_key: HashMap<PoolKey, OriginPool<C>>,
    /// Set by [`Pool::retire`]; never cleared.
    retired: bool,
}

impl<C> Pool<C> {
    pub(crate) fn new(usable_until: Option<Instant>) -> Self {
        Self { origins: Mutex::new(Origins { by_key: HashMap::new(), retired: false }), usable_until }
    }

    /// The snapshot that uses this pool's identity was replaced by one that does not: close the
    /// idle connections now and every checked-out one when its exchange ends.
    pub(crate) fn retire(&self) {
        let closing = {
            let mut origins = self.origins.lock().unwrap_or_else(PoisonError::into_inner);
            origins.retired = true;
            std::mem::take(&mut origins.by_key)
        };
        connection_event(ConnectionEvent::ClosedRetired, closing.values().map(|origin| origin.idle.len()).sum());
        // Dropped outside the lock: closing sockets is IO.
        drop(closing);
    }

    /// Whether connections may still be handed out or taken back at `now`.
    fn open_at(&self, origins: &Origins<C>, now: Instant) -> bool {
        self.closed_because(origins, now).is_none()
    }

    /// Why connections may no longer be handed out or taken back at `now`, if so.
    fn closed_because(&self, origins: &Origins<C>, now: Instant) -> Option<ConnectionEvent> {
        if origins.retired {
            return Some(ConnectionEvent::ClosedRetired);
        }
        self.usable_until.is_some_and(|until| now >= until).then_some(ConnectionEvent::ClosedExpired)
    }
}

struct OriginPool<C> {
    /// The multiplexed connection, once the backend has chosen HTTP/2.
    h2: Option<http2::SendRequest<RequestBody>>,
    /// Idle HTTP/1.1 connections, oldest first.
    idle: Vec<Idle<C>>,
}

impl<C> Default for OriginPool<C> {
    fn default() -> Self {
        Self { h2: None, idle: Vec::new() }
    }
}

struct Idle<C> {
    conn: C,
    since: Instant,
    /// How long it may stay idle: [`IDLE_TIMEOUT`] or less, as the backend announced.
    limit: Duration,
}

/// Where a checked-out HTTP/1.1 connection goes back when its exchange ended cleanly.
pub(crate) struct Home<C> {
    pool: Arc<Pool<C>>,
    key: PoolKey,
    idle_limit: Duration,
}

impl<C> Home<C> {
    pub(crate) fn new(pool: Arc<Pool<C>>, key: PoolKey) -> Self {
        Self { pool, key, idle_limit: IDLE_TIMEOUT }
    }

    /// The connection may be idle at most `limit` (the backend's `Keep-Alive: timeout`, less
    /// a margin), never longer than [`IDLE_TIMEOUT`].
    pub(crate) fn idle_at_most(mut self, limit: Duration) -> Self {
        self.idle_limit = self.idle_limit.min(limit);
        self
    }

    pub(crate) fn put(self, conn: C) {
        self.pool.put_h1(self.key, conn, self.idle_limit);
    }
}

/// What a checkout found.
pub(crate) enum Pooled<C> {
    Http2(http2::SendRequest<RequestBody>),
    Http1(C),
    Empty,
}

impl<C> Pool<C> {
    /// The origin's HTTP/2 connection if it is open, else its most recently used idle HTTP/1.1
    /// connection that is not too old.
    /// Nothing once the pool is retired or its certificate expired.
    pub(crate) fn checkout(&self, key: &PoolKey) -> Pooled<C> {
        let now = Instant::now();
        let mut origins = self.origins.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(reason) = self.closed_because(&origins, now) {
            let closing = std::mem::take(&mut origins.by_key);
            drop(origins);
            connection_event(reason, closing.values().map(|origin| origin.idle.len()).sum());
            drop(closing);
            return Pooled::Empty;
        }
        let Some(origin) = origins.by_key.get_mut(key) else { return Pooled::Empty };
        match &origin.h2 {
            Some(sender) if !sender.is_closed() => return Pooled::Http2(sender.clone()),
            Some(_) => origin.h2 = None,
            None => {}
        }
        while let Some(entry) = origin.idle.pop() {
            if now.duration_since(entry.since) < entry.limit {
                return Pooled::Http1(entry.conn);
            }
            connection_event(ConnectionEvent::ClosedIdle, 1);
        }
        Pooled::Empty
    }

    fn put_h1(&self, key: PoolKey, conn: C, limit: Duration) {
        let now = Instant::now();
        let mut origins = self.origins.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(reason) = self.closed_because(&origins, now) {
            drop(origins);
            connection_event(reason, 1);
            // Closes it: the identity it was made with is no longer in use.
            drop(conn);
            return;
        }
        let idle = &mut origins.by_key.entry(key).or_default().idle;
        // The oldest entries sit at the front: drop those past their time while here (one with
        // a shorter limit behind a live one waits for its checkout, which checks it too).
        let expired = idle.iter().take_while(|e| now.duration_since(e.since) >= e.limit).count();
        idle.drain(..expired);
        connection_event(ConnectionEvent::ClosedIdle, expired);
        if limit.is_zero() {
            return;
        }
        if idle.len() < MAX_IDLE_PER_ORIGIN {
            idle.push(Idle { conn, since: now, limit });
        } else {
            connection_event(ConnectionEvent::ClosedFull, 1);
        }
    }

    /// A retired or expired pool does not keep it: the connection then closes once the
    /// request that made it drops its sender.
    pub(crate) fn put_h2(&self, key: PoolKey, sender: http2::SendRequest<RequestBody>) {
        let mut origins = self.origins.lock().unwrap_or_else(PoisonError::into_inner);
        if self.open_at(&origins, Instant::now()) {
            origins.by_key.entry(key).or_default().h2 = Some(sender);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Stands in for a connection: counts how many were closed (dropped).
    struct Conn(Arc<AtomicUsize>);

    impl Drop for Conn {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn key() -> PoolKey {
        Arc::from("https://backend:443")
    }

    #[test]
    fn a_retired_pool_closes_its_idle_connections_at_once_and_keeps_none_returned_later() {
        let closed = Arc::new(AtomicUsize::new(0));
        let pool = Arc::new(Pool::new(None));
        for _ in 0..3 {
            Home::new(pool.clone(), key()).put(Conn(closed.clone()));
        }
        let Pooled::Http1(in_use) = pool.checkout(&key()) else { panic!("an idle connection") };
        assert_eq!(closed.load(Ordering::SeqCst), 0);

        pool.retire();
        assert_eq!(closed.load(Ordering::SeqCst), 2, "both idle connections closed by retire itself");
        Home::new(pool.clone(), key()).put(in_use);
        assert_eq!(closed.load(Ordering::SeqCst), 3, "the one in use closes when its exchange ends");
        assert!(matches!(pool.checkout(&key()), Pooled::Empty));
    }

    #[test]
    fn past_its_certificate_expiry_a_pool_hands_out_and_keeps_nothing() {
        let closed = Arc::new(AtomicUsize::new(0));
        let until = Instant::now() + Duration::from_millis(50);
        let pool = Arc::new(Pool::new(Some(until)));
        Home::new(pool.clone(), key()).put(Conn(closed.clone()));
        assert!(matches!(pool.checkout(&key()), Pooled::Http1(_)), "usable before notAfter");
        assert_eq!(closed.load(Ordering::SeqCst), 1, "the checked-out stand-in was dropped by the match");

        Home::new(pool.clone(), key()).put(Conn(closed.clone()));
        std::thread::sleep(until.saturating_duration_since(Instant::now()));
        assert!(matches!(pool.checkout(&key()), Pooled::Empty), "not handed out at or after notAfter");
        assert_eq!(closed.load(Ordering::SeqCst), 2, "and closed");
        Home::new(pool.clone(), key()).put(Conn(closed.clone()));
        assert_eq!(closed.load(Ordering::SeqCst), 3, "not kept either");
    }
}
