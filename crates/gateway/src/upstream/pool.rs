//! Idle backend connections of one upstream (one TLS identity), per origin. LIFO, so the
//! connections kept busy stay warm and the rest age out. One short lock per checkout and per
//! release; nothing is held across IO.

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
    origins: Mutex<HashMap<PoolKey, OriginPool>>,
}

#[derive(Default)]
struct OriginPool {
    /// The multiplexed connection, once the backend has chosen HTTP/2.
    h2: Option<http2::SendRequest<Incoming>>,
    /// Idle HTTP/1.1 connections, oldest first.
    idle: Vec<Idle>,
}

struct Idle {
    conn: H1Conn,
    since: Instant,
}

/// What a checkout found.
pub(crate) enum Pooled {
    Http2(http2::SendRequest<Incoming>),
    Http1(H1Conn),
    Empty,
}

impl Pool {
    /// The origin's HTTP/2 connection if it is open, else its most recently used idle HTTP/1.1
    /// connection that is not too old.
    pub(crate) fn checkout(&self, key: &PoolKey) -> Pooled {
        let mut origins = self.origins.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(origin) = origins.get_mut(key) else { return Pooled::Empty };
        match &origin.h2 {
            Some(sender) if !sender.is_closed() => return Pooled::Http2(sender.clone()),
            Some(_) => origin.h2 = None,
            None => {}
        }
        let now = Instant::now();
        while let Some(entry) = origin.idle.pop() {
            if now.duration_since(entry.since) < IDLE_TIMEOUT {
                return Pooled::Http1(entry.conn);
            }
        }
        Pooled::Empty
    }

    pub(crate) fn put_h1(&self, key: PoolKey, conn: H1Conn) {
        let now = Instant::now();
        let mut origins = self.origins.lock().unwrap_or_else(PoisonError::into_inner);
        let idle = &mut origins.entry(key).or_default().idle;
        // The oldest entries sit at the front: drop those past their time while here.
        let expired = idle.iter().take_while(|e| now.duration_since(e.since) >= IDLE_TIMEOUT).count();
        idle.drain(..expired);
        if idle.len() < MAX_IDLE_PER_ORIGIN {
            idle.push(Idle { conn, since: now });
        }
    }

    pub(crate) fn put_h2(&self, key: PoolKey, sender: http2::SendRequest<Incoming>) {
        self.origins.lock().unwrap_or_else(PoisonError::into_inner).entry(key).or_default().h2 = Some(sender);
    }
}
