//! What the data plane counts and logs: one [`Exchange`] per request, which on its end (the
//! response body dropped, whether complete or cut short) adds the request to its route's
//! counters and histogram and writes the access log line.
//!
//! Metric handles are resolved once per route, on the route's first request (a
//! [`RouteTelemetry`] holds them), so a request only increments atomics; a route that never sees
//! a request creates no series. The families live for the process: a new snapshot's routes
//! resolve the same series again, so counts continue across configuration changes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, OnceLock};
use std::time::Duration;

use certgate_model::EntityId;
use http::{HeaderValue, Method, StatusCode};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use tokio::time::Instant;

/// Latency buckets in seconds: 1 ms … 60 s.
const LATENCY_BUCKETS: [f64; 14] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0, 60.0];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    api: String,
    operation: String,
    backend: String,
    status_class: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ApiLabels {
    api: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BackendLabels {
    backend: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HandshakeLabels {
    backend: String,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ConnectionLabels {
    event: &'static str,
}

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// The data plane's metric families, one set per process.
struct GatewayMetrics {
    requests: Family<RequestLabels, Counter>,
    request_duration: HistogramFamily<ApiLabels>,
    backend_duration: HistogramFamily<BackendLabels>,
    handshake_failures: Family<HandshakeLabels, Counter>,
    connections: Family<ConnectionLabels, Counter>,
}

static METRICS: LazyLock<GatewayMetrics> = LazyLock::new(|| GatewayMetrics {
    requests: Family::default(),
    request_duration: Family::new_with_constructor(latency_histogram),
    backend_duration: Family::new_with_constructor(latency_histogram),
    handshake_failures: Family::default(),
    connections: Family::default(),
});

/// Adds the data plane's metrics to `registry` (the node's `/metrics`).
pub fn register_metrics(registry: &mut Registry) {
    let metrics = &*METRICS;
    registry.register(
        "requests",
        "Gateway requests by API, operation, backend and status class",
        metrics.requests.clone(),
    );
    registry.register(
        "request_duration_seconds",
        "Gateway request duration, from the request head to the response's last byte, by API",
        metrics.request_duration.clone(),
    );
    registry.register(
        "backend_duration_seconds",
        "Time from a request's arrival to its backend's response head, by backend",
        metrics.backend_duration.clone(),
    );
    registry.register(
        "backend_tls_handshake_failures",
        "Failed TLS handshakes with backends, by backend and reason",
        metrics.handshake_failures.clone(),
    );
    registry.register(
        "backend_connections",
        "Backend connections opened, reused from the pool, and closed by the pool (event=closed_idle, closed_retired, closed_expired, closed_full)",
        metrics.connections.clone(),
    );
}

/// A pool event on a backend connection.
#[derive(Clone, Copy, Debug)]
pub(crate) enum ConnectionEvent {
    Opened,
    Reused,
    /// Idle past its time.
    ClosedIdle,
    /// Its pool's identity is no longer used by the configuration.
    ClosedRetired,
    /// Its client certificate reached notAfter.
    ClosedExpired,
    /// Released while its origin already had as many idle connections as are kept.
    ClosedFull,
}

impl ConnectionEvent {
    fn label(self) -> &'static str {
        match self {
            ConnectionEvent::Opened => "opened",
            ConnectionEvent::Reused => "reused",
            ConnectionEvent::ClosedIdle => "closed_idle",
            ConnectionEvent::ClosedRetired => "closed_retired",
            ConnectionEvent::ClosedExpired => "closed_expired",
            ConnectionEvent::ClosedFull => "closed_full",
        }
    }
}

const CONNECTION_EVENTS: [ConnectionEvent; 6] = [
    ConnectionEvent::Opened,
    ConnectionEvent::Reused,
    ConnectionEvent::ClosedIdle,
    ConnectionEvent::ClosedRetired,
    ConnectionEvent::ClosedExpired,
    ConnectionEvent::ClosedFull,
];

/// Counts `count` connections that had `event` (a reuse is on every pooled request: the
/// counters are resolved once).
pub(crate) fn connection_event(event: ConnectionEvent, count: usize) {
    static COUNTERS: LazyLock<[Counter; 6]> = LazyLock::new(|| {
        CONNECTION_EVENTS
            .map(|event| METRICS.connections.get_or_create(&ConnectionLabels { event: event.label() }).clone())
    });
    if count > 0 {
        COUNTERS[event as usize].inc_by(count as u64);
    }
}

/// Counts a failed backend handshake under the failure's reason code.
pub(crate) fn handshake_failed(backend: &str, reason: &'static str) {
    METRICS.handshake_failures.get_or_create(&HandshakeLabels { backend: backend.to_owned(), reason }).inc();
}

/// What a route's requests are counted and logged under, fixed when the route is compiled.
#[derive(Debug)]
pub(crate) struct RouteTelemetry {
    pub api: String,
    /// Empty when no operation matched (the API-level route).
    pub operation: String,
    /// The backend entity's id, or the origin of a URL given without one; empty when the
    /// gateway answers itself.
    pub backend: String,
    /// Thumbprint of the client certificate presented to the backend, for the access log.
    pub client_certificate: Option<String>,
    handles: OnceLock<RouteHandles>,
    /// The access log's rendering of the fields above, made on the route's first request.
    access_fields: OnceLock<Box<[u8]>>,
}

#[derive(Debug)]
struct RouteHandles {
    /// By status class: 1xx … 5xx.
    by_class: [Counter; 5],
    duration: Histogram,
    backend_duration: Histogram,
}

const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

impl RouteTelemetry {
    pub(crate) fn new(
        api: Option<&EntityId>,
        operation: Option<&EntityId>,
        backend: String,
        client_certificate: Option<String>,
    ) -> Self {
        let text = |id: Option<&EntityId>| id.map(ToString::to_string).unwrap_or_default();
        Self {
            api: text(api),
            operation: text(operation),
            backend,
            client_certificate,
            handles: OnceLock::new(),
            access_fields: OnceLock::new(),
        }
    }

    /// Requests that no API claims.
    fn unrouted() -> &'static Arc<RouteTelemetry> {
        static UNROUTED: LazyLock<Arc<RouteTelemetry>> =
            LazyLock::new(|| Arc::new(RouteTelemetry::new(None, None, String::new(), None)));
        &UNROUTED
    }

    fn access_fields(&self, log: &dyn AccessLog) -> &[u8] {
        self.access_fields.get_or_init(|| {
            log.route_fields(&RouteFields {
                api: &self.api,
                operation: &self.operation,
                backend: &self.backend,
                client_certificate: self.client_certificate.as_deref().unwrap_or(""),
            })
        })
    }

    fn handles(&self) -> &RouteHandles {
        self.handles.get_or_init(|| {
            let metrics = &*METRICS;
            let counter = |status_class| {
                let labels = RequestLabels {
                    api: self.api.clone(),
                    operation: self.operation.clone(),
                    backend: self.backend.clone(),
                    status_class,
                };
                metrics.requests.get_or_create(&labels).clone()
            };
            RouteHandles {
                by_class: STATUS_CLASSES.map(counter),
                duration: metrics.request_duration.get_or_create(&ApiLabels { api: self.api.clone() }).clone(),
                backend_duration: metrics
                    .backend_duration
                    .get_or_create(&BackendLabels { backend: self.backend.clone() })
                    .clone(),
            }
        })
    }
}

/// What every request of one route has in common, as the access log records it.
pub struct RouteFields<'a> {
    pub api: &'a str,
    /// Empty when no operation matched.
    pub operation: &'a str,
    /// Empty when the gateway answered itself.
    pub backend: &'a str,
    /// Thumbprint of the client certificate presented to the backend; empty for none.
    pub client_certificate: &'a str,
}

/// One finished request, as the access log records it.
pub struct AccessRecord<'a> {
    pub activity_id: &'a ActivityId,
    pub method: &'a Method,
    /// What [`AccessLog::route_fields`] made of the request's route.
    pub route_fields: &'a [u8],
    pub status: u16,
    /// Response body bytes sent.
    pub bytes: u64,
    pub duration: Duration,
    /// When the request ended (the clock read that measured `duration`).
    pub finished: std::time::Instant,
}

/// Where access log lines go: the binary formats and writes them (a line per request is too
/// frequent for a general-purpose log formatter on the request path). What is the same for
/// every request of a route is formatted once per route.
pub trait AccessLog: Send + Sync + 'static {
    /// The fixed part of a route's lines, in the log's own format.
    fn route_fields(&self, route: &RouteFields<'_>) -> Box<[u8]>;
    fn record(&self, record: &AccessRecord<'_>);
}

static ACCESS_LOG: OnceLock<Box<dyn AccessLog>> = OnceLock::new();

/// Writes an access log line per request to `log` from now on (once per process; without it,
/// there is none).
pub fn set_access_log(log: Box<dyn AccessLog>) {
    let _ = ACCESS_LOG.set(log);
}

/// The id a request is known by: in its response's `x-activity-id` header, every log line about
/// it, an error body's `activityId`, and (when the client sent no trace) the trace id given to
/// the backend. 16 bytes: a random per-process prefix and a counter, so ids never repeat
/// within a run and differ across runs, at the cost of an atomic increment.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ActivityId([u8; 16]);

impl ActivityId {
    pub(crate) fn next() -> Self {
        static PREFIX: LazyLock<[u8; 8]> = LazyLock::new(|| {
            use aws_lc_rs::rand::{SecureRandom, SystemRandom};
            let mut bytes = [0u8; 8];
            let _ = SystemRandom::new().fill(&mut bytes);
            bytes
        });
        static COUNTER: AtomicU64 = AtomicU64::new(1);
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&*PREFIX);
        bytes[8..].copy_from_slice(&COUNTER.fetch_add(1, Ordering::Relaxed).to_be_bytes());
        ActivityId(bytes)
    }

    pub(crate) fn bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// The 32 lower-case hex digits, without allocating.
    pub fn hex(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        // The input is 16 bytes and the output 32: encoding cannot fail.
        let _ = hex::encode_to_slice(self.0, &mut out);
        out
    }

    pub(crate) fn header_value(&self) -> HeaderValue {
        // Hex digits only: always a valid header value.
        HeaderValue::from_bytes(&self.hex()).unwrap_or(HeaderValue::from_static("-"))
    }
}

impl std::fmt::Display for ActivityId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(std::str::from_utf8(&self.hex()).unwrap_or("-"))
    }
}

impl std::fmt::Debug for ActivityId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

/// One request, from its head to the end of its response body.
pub(crate) struct Exchange {
    pub activity_id: ActivityId,
    started: Instant,
    method: Method,
    route: Arc<RouteTelemetry>,
    status: StatusCode,
    /// Response body bytes sent so far.
    bytes: u64,
    /// Time to the backend's response head, when a backend answered.
    backend_head: Option<Duration>,
}

impl Exchange {
    pub(crate) fn start(method: &Method) -> Self {
        Self {
            activity_id: ActivityId::next(),
            started: Instant::now(),
            method: method.clone(),
            route: RouteTelemetry::unrouted().clone(),
            status: StatusCode::OK,
            bytes: 0,
            backend_head: None,
        }
    }

    /// When the request's head was parsed: the start of its duration and of its backend timeout.
    pub(crate) fn started(&self) -> Instant {
        self.started
    }

    pub(crate) fn routed(&mut self, route: &Arc<RouteTelemetry>) {
        self.route = route.clone();
    }

    pub(crate) fn route(&self) -> &RouteTelemetry {
        &self.route
    }

    pub(crate) fn backend_answered(&mut self, after: Duration) {
        self.backend_head = Some(after);
    }

    pub(crate) fn responded(&mut self, status: StatusCode) {
        self.status = status;
    }

    pub(crate) fn sent(&mut self, bytes: usize) {
        self.bytes += bytes as u64;
    }
}

impl Drop for Exchange {
    fn drop(&mut self) {
        let finished = Instant::now();
        let elapsed = finished.saturating_duration_since(self.started);
        let handles = self.route.handles();
        let class = usize::from(self.status.as_u16() / 100).clamp(1, 5) - 1;
        handles.by_class[class].inc();
        handles.duration.observe(elapsed.as_secs_f64());
        if let Some(head) = self.backend_head {
            handles.backend_duration.observe(head.as_secs_f64());
        }
        if let Some(log) = ACCESS_LOG.get() {
            log.record(&AccessRecord {
                activity_id: &self.activity_id,
                method: &self.method,
                route_fields: self.route.access_fields(log.as_ref()),
                status: self.status.as_u16(),
                bytes: self.bytes,
                duration: elapsed,
                finished: finished.into_std(),
            });
        }
    }
}
