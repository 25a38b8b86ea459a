//! Idle backend connections of one upstream (one TLS identity), per origin. LIFO, so the
//! connections kept busy stay warm and the rest age out.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper::client::conn::http2;

use super::h1::H1Conn;

/// How long an idle backend connection stays pooled.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Idle connections kept per origin; more than that are closed when released.
const MAX_IDLE_PER_ORIGIN: usize = 1024;

/// `scheme://authority` of a backend: connections are shared only within one origin.
pub(crate) type PoolKey = Arc<str>;

#[derive(Default)]
pub(crate) struct Pool {
    h1: Mutex<HashMap<PoolKey, Vec<Idle>>>,
    /// One multiplexed connection per origin whose backend chose HTTP/2.
    h2: Mutex<HashMap<PoolKey, http2::SendRequest<Incoming>>>,
}

struct Idle {
    conn: H1Conn,
    since: Instant,
}

impl Pool {
    /// The most recently used idle connection that is not too old.
    pub(crate) fn take_h1(&self, key: &PoolKey) -> Option<H1Conn> {
        let mut idle = self.h1.lock().unwrap_or_else(PoisonError::into_inner);
        let list = idle.get_mut(key)?;
        let now = Instant::now();
        while let Some(entry) = list.pop() {
            if now.duration_since(entry.since) < IDLE_TIMEOUT {
                return Some(entry.conn);
            }
        }
        None
    }

    pub(crate) fn put_h1(&self, key: PoolKey, conn: H1Conn) {
        let now = Instant::now();
        let mut idle = self.h1.lock().unwrap_or_else(PoisonError::into_inner);
        let list = idle.entry(key).or_default();
        // The oldest entries sit at the front: drop those past their time while here.
        let expired = list.iter().take_while(|e| now.duration_since(e.since) >= IDLE_TIMEOUT).count();
        list.drain(..expired);
        if list.len() < MAX_IDLE_PER_ORIGIN {
            list.push(Idle { conn, since: now });
        }
    }

    pub(crate) fn h2(&self, key: &PoolKey) -> Option<http2::SendRequest<Incoming>> {
        let mut senders = self.h2.lock().unwrap_or_else(PoisonError::into_inner);
        match senders.get(key) {
            Some(sender) if !sender.is_closed() => Some(sender.clone()),
            Some(_) => {
                senders.remove(key);
                None
            }
            None => None,
        }
    }

    pub(crate) fn put_h2(&self, key: PoolKey, sender: http2::SendRequest<Incoming>) {
        self.h2.lock().unwrap_or_else(PoisonError::into_inner).insert(key, sender);
    }
}
