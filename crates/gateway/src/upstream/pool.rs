//! Idle backend connections of one upstream (one TLS identity), per origin. LIFO, so the
//! connections kept busy stay warm and the rest age out. A route finds its origin's connections
//! when its snapshot is compiled; a request then takes one short lock per checkout and per
//! release, and nothing is held across IO.
//!
//! A pool ends in two ways, and then neither hands out nor takes back a connection: it is
//! *retired* when a new snapshot no longer uses its identity (its idle connections close at
//! once, those still carrying an exchange close when it ends), and it *expires* at its client
//! certificate's notAfter, even if a request still holding an older snapshot asks for it.
//!
//! A request that finds no idle connection *waits* for one rather than insisting on its own
//! (hyper-util's pool does the same): it queues, and a released connection goes to the oldest
//! request waiting. Connects are started only for waiting requests that no connect in flight is
//! already counted for, so a burst opens no more connections than it has requests waiting. The
//! request that starts a connect keeps what it opens if nothing was handed to it first;
//! otherwise the connect's result goes to the oldest request waiting, or idle. So a request
//! whose connect is slow (a backend that answers handshakes one at a time while it streams to
//! the connections it already has) is served by the first connection to come free, and every
//! waiting request is sure of an answer: a connection, or the error of a failed connect.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use hyper::client::conn::http2;
use tokio::sync::oneshot;

use super::UpstreamError;
use crate::request_body::RequestBody;
use crate::telemetry::{ConnectionEvent, connection_event};

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
    /// Requests that found no idle connection, oldest first (some may have given up since).
    waiting: VecDeque<oneshot::Sender<Handoff<C>>>,
    /// Connects in flight for waiting requests. Never fewer than the requests still waiting:
    /// each connect's result goes to one of them (or stays with the one that drove it), so none
    /// waits for nothing.
    connecting: usize,
}

impl<C> Connections<C> {
    fn new() -> Self {
        Connections { h2: None, idle: Vec::new(), waiting: VecDeque::new(), connecting: 0 }
    }

    /// Hands `handoff` to the oldest request still waiting, or returns it if there is none; an
    /// HTTP/2 connection goes to every request waiting.
    fn hand_to_waiting(&mut self, mut handoff: Handoff<C>) -> Option<Handoff<C>> {
        if let Handoff::Http2(sender) = &handoff {
            for waiting in self.waiting.drain(..) {
                let _ = waiting.send(Handoff::Http2(sender.clone()));
            }
            return None;
        }
        while let Some(waiting) = self.waiting.pop_front() {
            match waiting.send(handoff) {
                Ok(()) => return None,
                Err(back) => handoff = back,
            }
        }
        Some(handoff)
    }
}

impl<C> OriginPool<C> {
    fn lock(&self) -> std::sync::MutexGuard<'_, Connections<C>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes every connection out, to be closed (outside the lock: closing sockets is IO).
    /// Waiting requests stay: their connects are in flight.
    fn take_all(&self) -> Vec<Idle<C>> {
        let mut connections = self.lock();
        connections.h2 = None;
        std::mem::take(&mut connections.idle)
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
        let origin = origins.entry(key.clone()).or_insert_with(|| Arc::new(OriginPool(Mutex::new(Connections::new()))));
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
        connection_event(ConnectionEvent::ClosedRetired, closing.iter().map(Vec::len).sum());
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
    /// No idle connection: the request is queued for the next one.
    Wait(Waiting<C>),
    /// The pool is closed (retired or expired): the request makes a connection of its own.
    Empty,
}

/// A request's place in its origin's queue.
pub(crate) struct Waiting<C> {
    pub handoff: oneshot::Receiver<Handoff<C>>,
    /// Set when no connect in flight is counted for this request: the caller starts one.
    pub connect: Option<Connecting<C>>,
}

/// What a waiting request is handed.
pub(crate) enum Handoff<C> {
    /// A connection another exchange released.
    Released(C),
    /// A connection a connect opened.
    Opened(C),
    /// The multiplexed connection a connect opened, handed to every request waiting.
    Http2(http2::SendRequest<RequestBody>),
    /// The error of a failed connect, for the request that has waited longest.
    Failed(UpstreamError),
}

/// A connect started for the waiting requests of an origin: counted in flight until its result
/// is handed over ([`Connecting::deliver`]); if it is dropped unfinished, a waiting request is
/// told so, so none waits for it.
pub(crate) struct Connecting<C> {
    pool: Arc<Pool<C>>,
    origin: Arc<OriginPool<C>>,
    delivered: bool,
}

impl<C> Connecting<C> {
    /// Hands the connect's result to the oldest waiting request; a connection nobody waits
    /// for any more goes idle (or closes, if the pool did); an HTTP/2 connection goes to all.
    pub(crate) fn deliver(mut self, handoff: Handoff<C>) {
        self.hand_over(handoff);
    }

    /// The connect ended and the request that drove it keeps what it made.
    pub(crate) fn kept(mut self) {
        self.delivered = true;
        self.origin.lock().connecting -= 1;
    }

    fn hand_over(&mut self, handoff: Handoff<C>) {
        self.delivered = true;
        let mut connections = self.origin.lock();
        connections.connecting -= 1;
        let left = connections.hand_to_waiting(handoff);
        drop(connections);
        self.pool.settle(&self.origin, left);
    }
}

impl<C> Drop for Connecting<C> {
    fn drop(&mut self) {
        if !self.delivered {
            let abandoned = std::io::Error::other("the backend connect was abandoned");
            self.hand_over(Handoff::Failed(UpstreamError::Io(abandoned)));
        }
    }
}

impl<C> Pool<C> {
    /// The origin's HTTP/2 connection if it is open, else its most recently used idle HTTP/1.1
    /// connection that is not too old, else a place in the queue for the next one.
    /// Nothing once the pool is retired or its certificate expired.
    pub(crate) fn checkout(self: &Arc<Self>, origin: &Arc<OriginPool<C>>) -> Pooled<C> {
        let now = Instant::now();
        let mut connections = origin.lock();
        if let Some(reason) = self.closed_because(now) {
            drop(connections);
            let closing = origin.take_all();
            connection_event(reason, closing.len());
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
        connections.waiting.retain(|waiting| !waiting.is_closed());
        let (handoff, receiver) = oneshot::channel();
        connections.waiting.push_back(handoff);
        let connect = (connections.connecting < connections.waiting.len()).then(|| {
            connections.connecting += 1;
            Connecting { pool: self.clone(), origin: origin.clone(), delivered: false }
        });
        Pooled::Wait(Waiting { handoff: receiver, connect })
    }

    /// What a request was handed and does not use (its own connect served it meanwhile), or
    /// the multiplexed connection its own connect opened: for the requests waiting, or idle.
    pub(crate) fn pass_on(&self, origin: &OriginPool<C>, handoff: Handoff<C>) {
        let left = origin.lock().hand_to_waiting(handoff);
        self.settle(origin, left);
    }

    /// Settles what no waiting request took: a connection goes idle (or closes, if the pool
    /// did); an error is only logged.
    fn settle(&self, origin: &OriginPool<C>, left: Option<Handoff<C>>) {
        match left {
            Some(Handoff::Opened(conn) | Handoff::Released(conn)) => self.put_h1(origin, conn, IDLE_TIMEOUT),
            Some(Handoff::Failed(error)) => {
                tracing::debug!(%error, "a backend connect failed with no request waiting for it")
            }
            Some(Handoff::Http2(_)) | None => {}
        }
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
        if limit.is_zero() {
            return;
        }
        let Some(Handoff::Released(conn)) = connections.hand_to_waiting(Handoff::Released(conn)) else {
            return;
        };
        let idle = &mut connections.idle;
        // The oldest entries sit at the front: drop those past their time while here (one with
        // a shorter limit behind a live one waits for its checkout, which checks it too).
        let expired = idle.iter().take_while(|e| now.duration_since(e.since) >= e.limit).count();
        idle.drain(..expired);
        connection_event(ConnectionEvent::ClosedIdle, expired);
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

    fn waiting(pooled: Pooled<Conn>) -> Waiting<Conn> {
        match pooled {
            Pooled::Wait(waiting) => waiting,
            _ => panic!("expected to wait"),
        }
    }

    fn handed(waiting: &mut Waiting<Conn>) -> &'static str {
        match waiting.handoff.try_recv() {
            Ok(Handoff::Released(_)) => "released",
            Ok(Handoff::Opened(_)) => "opened",
            Ok(Handoff::Http2(_)) => "http2",
            Ok(Handoff::Failed(_)) => "failed",
            Err(_) => "nothing",
        }
    }

    #[test]
    fn waiting_requests_are_served_oldest_first_and_no_more_connects_start_than_requests_wait() {
        let closed = Arc::new(AtomicUsize::new(0));
        let pool = Arc::new(Pool::new(None));
        let origin = pool.origin(&key());
        let mut first = waiting(pool.checkout(&origin));
        let mut second = waiting(pool.checkout(&origin));
        let mut third = waiting(pool.checkout(&origin));
        let [opening, failing, abandoned] =
            [&mut first, &mut second, &mut third].map(|w| w.connect.take().expect("a connect"));

        Home::new(pool.clone(), origin.clone()).put(Conn(closed.clone()));
        assert_eq!((handed(&mut first), handed(&mut second)), ("released", "nothing"));
        let mut fourth = waiting(pool.checkout(&origin));
        assert!(fourth.connect.is_none(), "three connects in flight for three requests waiting");

        opening.deliver(Handoff::Opened(Conn(closed.clone())));
        failing.deliver(Handoff::Failed(UpstreamError::ClosedBeforeResponse));
        drop(abandoned);
        assert_eq!([&mut second, &mut third, &mut fourth].map(handed), ["opened", "failed", "failed"]);
    }

    #[test]
    fn a_connect_nobody_waits_for_any_more_goes_idle_and_a_request_gone_is_skipped() {
        let closed = Arc::new(AtomicUsize::new(0));
        let pool = Arc::new(Pool::new(None));
        let origin = pool.origin(&key());
        let mut gone = waiting(pool.checkout(&origin));
        let connect = gone.connect.take().unwrap();
        drop(gone);
        connect.deliver(Handoff::Opened(Conn(closed.clone())));
        assert!(matches!(pool.checkout(&origin), Pooled::Http1(_)), "the opened connection went idle");
        assert_eq!(closed.load(Ordering::SeqCst), 1, "and was closed by the match");
    }
}
