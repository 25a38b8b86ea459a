//! Idle backend connections of one upstream (one TLS identity), per origin. LIFO, so the
//! connections kept busy stay warm and the rest age out. One short lock per checkout and per
//! release; nothing is held across IO.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper::client::conn::http2;

/// How long an idle backend connection stays pooled, unless the backend announced less.
pub(crate) const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Idle connections kept per origin; more than that are closed when released.
const MAX_IDLE_PER_ORIGIN: usize = 1024;

/// `scheme://authority` of a backend: connections are shared only within one origin.
pub(crate) type PoolKey = Arc<str>;

/// Generic over the HTTP/1.1 connection type, so the pool knows nothing of the exchange.
pub(crate) struct Pool<C> {
    origins: Mutex<HashMap<PoolKey, OriginPool<C>>>,
}

impl<C> Default for Pool<C> {
    fn default() -> Self {
        Self { origins: Mutex::default() }
    }
}

struct OriginPool<C> {
    /// The multiplexed connection, once the backend has chosen HTTP/2.
    h2: Option<http2::SendRequest<Incoming>>,
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
    Http2(http2::SendRequest<Incoming>),
    Http1(C),
    Empty,
}

impl<C> Pool<C> {
    /// The origin's HTTP/2 connection if it is open, else its most recently used idle HTTP/1.1
    /// connection that is not too old.
    pub(crate) fn checkout(&self, key: &PoolKey) -> Pooled<C> {
        let mut origins = self.origins.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(origin) = origins.get_mut(key) else { return Pooled::Empty };
        match &origin.h2 {
            Some(sender) if !sender.is_closed() => return Pooled::Http2(sender.clone()),
            Some(_) => origin.h2 = None,
            None => {}
        }
        let now = Instant::now();
        while let Some(entry) = origin.idle.pop() {
            if now.duration_since(entry.since) < entry.limit {
                return Pooled::Http1(entry.conn);
            }
        }
        Pooled::Empty
    }

    fn put_h1(&self, key: PoolKey, conn: C, limit: Duration) {
        let now = Instant::now();
        let mut origins = self.origins.lock().unwrap_or_else(PoisonError::into_inner);
        let idle = &mut origins.entry(key).or_default().idle;
        // The oldest entries sit at the front: drop those past their time while here (one with
        // a shorter limit behind a live one waits for its checkout, which checks it too).
        let expired = idle.iter().take_while(|e| now.duration_since(e.since) >= e.limit).count();
        idle.drain(..expired);
        if idle.len() < MAX_IDLE_PER_ORIGIN && !limit.is_zero() {
            idle.push(Idle { conn, since: now, limit });
        }
    }

    pub(crate) fn put_h2(&self, key: PoolKey, sender: http2::SendRequest<Incoming>) {
        self.origins.lock().unwrap_or_else(PoisonError::into_inner).entry(key).or_default().h2 = Some(sender);
    }
}
