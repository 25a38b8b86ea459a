//! Idle backend connections of one upstream (one TLS identity), per origin. LIFO, so the
//! connections kept busy stay warm and the rest age out. A route finds its origin's connections
//! when its snapshot is compiled; a request then takes one short lock per checkout and per
//! release, and nothing is held across IO.
//!
//! A pool ends in two ways, and then neither hands out nor takes back a connection: it is
//! *retired* when a new snapshot no longer uses its identity (its idle connections close at
//! once, those still carrying an exchange close when it ends), and it *expires* at its client
//! certificate's notAfter, even if a request still holding an older snapshot asks for it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::request_body::RequestBody;

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
    /// Each origin's connections, looked up when a snapshot is compiled: a route holds its
    /// origin's [`OriginPool`], so a request takes or returns a connection without a lookup.
    origins: Mutex<HashMap<PoolKey, Arc<OriginPool<C>>>>,
    /// Set by [`Pool::retire`]; never cleared.
    retired: AtomicBool,
    /// The client certificate's notAfter as a monotonic instant: from then on no connection
    /// made with it is handed out or kept. `None` without a client certificate.
    usable_until: Option<Instant>,
}

/// The connections of one pool to one origin: one short lock per checkout and per release.
pub(crate) struct OriginPool<C>(Mutex<Connections<C>>);

struct Connections<C> {
    /// The multiplexed connection, once the backend has chosen HTTP/2.
    h2: Option<http2::SendRequest<RequestBody>>,
    /// Idle HTTP/1.1 connections, oldest first.
    idle: Vec<Idle<C>>,
}

impl<C> OriginPool<C> {
    fn lock(&self) -> std::sync::MutexGuard<'_, Connections<C>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes every connection out, to be closed (outside the lock: closing sockets is IO).
    fn take_all(&self) -> Connections<C> {
        std::mem::replace(&mut *self.lock(), Connections { h2: None, idle: Vec::new() })
    }
}

struct Idle<C> {
    conn: C,
    since: Instant,
    /// How long it may stay idle: [`IDLE_TIMEOUT`] or less, as the backend announced.
    limit: Duration,
}

impl<C> Pool<C> {
    pub(crate) fn new(usable_until: Option<Instant>) -> Self {
        Self { origins: Mutex::new(HashMap::new()), retired: AtomicBool::new(false), usable_until }
    }

    /// The connections to `key`, created on first use (at compile time).
    pub(crate) fn origin(&self, key: &PoolKey) -> Arc<OriginPool<C>> {
        let mut origins = self.origins.lock().unwrap_or_else(PoisonError::into_inner);
        let origin = origins
            .entry(key.clone())
            .or_insert_with(|| Arc::new(OriginPool(Mutex::new(Connections { h2: None, idle: Vec::new() }))));
        origin.clone()
    }

    /// The snapshot that uses this pool's identity was replaced by one that does not: close the
    /// idle connections now and every checked-out one when its exchange ends.
    pub(crate) fn retire(&self) {
        // Set before the origins are emptied: a release that takes an origin's lock after its
        // emptying sees the flag (see `put_h1`).
        self.retired.store(true, Ordering::SeqCst);
        let origins: Vec<_> = self.origins.lock().unwrap_or_else(PoisonError::into_inner).values().cloned().collect();
        let closing: Vec<_> = origins.iter().map(|origin| origin.take_all()).collect();
        connection_event(ConnectionEvent::ClosedRetired, closing.iter().map(|taken| taken.idle.len()).sum());
    }

    /// Why connections may no longer be handed out or taken back at `now`, if so; read under
    /// the origin's lock.
    fn closed_because(&self, now: Instant) -> Option<ConnectionEvent> {
        if self.retired.load(Ordering::SeqCst) {
            return Some(ConnectionEvent::ClosedRetired);
        }
        self.usable_until.is_some_and(|until| now >= until).then_some(ConnectionEvent::ClosedExpired)
    }
}

/// Where a checked-out HTTP/1.1 connection goes back when its exchange ended cleanly.
pub(crate) struct Home<C> {
    pool: Arc<Pool<C>>,
    origin: Arc<OriginPool<C>>,
    idle_limit: Duration,
}

impl<C> Home<C> {
    pub(crate) fn new(pool: Arc<Pool<C>>, origin: Arc<OriginPool<C>>) -> Self {
        Self { pool, origin, idle_limit: IDLE_TIMEOUT }
    }

    /// The connection may be idle at most `limit` (the backend's `Keep-Alive: timeout`, less
    /// a margin), never longer than [`IDLE_TIMEOUT`].
    pub(crate) fn idle_at_most(mut self, limit: Duration) -> Self {
        self.idle_limit = self.idle_limit.min(limit);
        self
    }

    pub(crate) fn put(self, conn: C) {
        self.pool.put_h1(&self.origin, conn, self.idle_limit);
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
    pub(crate) fn checkout(&self, origin: &OriginPool<C>) -> Pooled<C> {
        let now = Instant::now();
        let mut connections = origin.lock();
        if let Some(reason) = self.closed_because(now) {
            drop(connections);
            let closing = origin.take_all();
            connection_event(reason, closing.idle.len());
            return Pooled::Empty;
        }
        match &connections.h2 {
            Some(sender) if !sender.is_closed() => return Pooled::Http2(sender.clone()),
            Some(_) => connections.h2 = None,
            None => {}
        }
        while let Some(entry) = connections.idle.pop() {
            if now.duration_since(entry.since) < entry.limit {
                return Pooled::Http1(entry.conn);
            }
            connection_event(ConnectionEvent::ClosedIdle, 1);
        }
        Pooled::Empty
    }

    fn put_h1(&self, origin: &OriginPool<C>, conn: C, limit: Duration) {
        let now = Instant::now();
        let mut connections = origin.lock();
        if let Some(reason) = self.closed_because(now) {
            drop(connections);
            connection_event(reason, 1);
            // Closes it: the identity it was made with is no longer in use.
            drop(conn);
            return;
        }
        let idle = &mut connections.idle;
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
    pub(crate) fn put_h2(&self, origin: &OriginPool<C>, sender: http2::SendRequest<RequestBody>) {
        let mut connections = origin.lock();
        if self.closed_because(Instant::now()).is_none() {
            connections.h2 = Some(sender);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

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
            Home::new(pool.clone(), pool.origin(&key())).put(Conn(closed.clone()));
        }
        let Pooled::Http1(in_use) = pool.checkout(&pool.origin(&key())) else { panic!("an idle connection") };
        assert_eq!(closed.load(Ordering::SeqCst), 0);

        pool.retire();
        assert_eq!(closed.load(Ordering::SeqCst), 2, "both idle connections closed by retire itself");
        Home::new(pool.clone(), pool.origin(&key())).put(in_use);
        assert_eq!(closed.load(Ordering::SeqCst), 3, "the one in use closes when its exchange ends");
        assert!(matches!(pool.checkout(&pool.origin(&key())), Pooled::Empty));
    }

    #[test]
    fn past_its_certificate_expiry_a_pool_hands_out_and_keeps_nothing() {
        let closed = Arc::new(AtomicUsize::new(0));
        let until = Instant::now() + Duration::from_millis(50);
        let pool = Arc::new(Pool::new(Some(until)));
        Home::new(pool.clone(), pool.origin(&key())).put(Conn(closed.clone()));
        assert!(matches!(pool.checkout(&pool.origin(&key())), Pooled::Http1(_)), "usable before notAfter");
        assert_eq!(closed.load(Ordering::SeqCst), 1, "the checked-out stand-in was dropped by the match");

        Home::new(pool.clone(), pool.origin(&key())).put(Conn(closed.clone()));
        std::thread::sleep(until.saturating_duration_since(Instant::now()));
        assert!(matches!(pool.checkout(&pool.origin(&key())), Pooled::Empty), "not handed out at or after notAfter");
        assert_eq!(closed.load(Ordering::SeqCst), 2, "and closed");
        Home::new(pool.clone(), pool.origin(&key())).put(Conn(closed.clone()));
        assert_eq!(closed.load(Ordering::SeqCst), 3, "not kept either");
    }
}
