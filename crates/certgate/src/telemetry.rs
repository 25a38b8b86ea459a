//! The node's `/metrics`: every layer's metric families in one registry (the data plane's, the
//! vault refresher's, the control loop's), and what is read from the current configuration at
//! each scrape: the seconds left until each certificate's notAfter. It also logs a warning as
//! a certificate reaches 30, 7 and 1 days before its notAfter, and when it expires.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use certgate_model::{ConfigState, unix_now};
use certgate_pki::ExpiryStage;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// The registry, rendered on each scrape.
pub struct NodeMetrics {
    registry: Registry,
}

impl NodeMetrics {
    /// Every layer's metrics, and the control loop's handles to update.
    pub fn new() -> (Self, ControlMetrics) {
        let mut registry = Registry::with_prefix("certgate");
        certgate_gateway::register_metrics(&mut registry);
        certgate_vault::refresh::register_metrics(&mut registry);
        let control = ControlMetrics::default();
        registry.register("snapshot_revision", "Store revision of the snapshot being served", control.revision.clone());
        registry.register(
            "snapshot_compile_duration_seconds",
            "Time to read a change and compile and publish the snapshot",
            control.compile_duration.clone(),
        );
        registry.register(
            "snapshot_last_compile_timestamp_seconds",
            "Unix time of the last snapshot published",
            control.last_compile.clone(),
        );
        registry.register(
            "vault_refresher_active",
            "1 while this node is the cluster's vault refresher (one node at a time)",
            control.refresher_active.clone(),
        );
        registry.register_collector(Box::new(CertificateExpiries(control.expiries.clone())));
        (Self { registry }, control)
    }

    /// The OpenMetrics text exposition of every metric.
    pub fn render(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

/// What the control loop reports after publishing a snapshot.
#[derive(Clone)]
pub struct ControlMetrics {
    revision: Gauge,
    compile_duration: Histogram,
    last_compile: Gauge,
    /// Set by the duty loop while this node holds the refresher's lease.
    pub refresher_active: Gauge,
    expiries: Arc<ArcSwap<Vec<Expiry>>>,
    /// Wakes the expiry warnings when the certificates changed.
    changed: Arc<tokio::sync::Notify>,
}

impl Default for ControlMetrics {
    fn default() -> Self {
        Self {
            revision: Gauge::default(),
            compile_duration: Histogram::new([0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0]),
            last_compile: Gauge::default(),
            refresher_active: Gauge::default(),
            expiries: Arc::default(),
            changed: Arc::default(),
        }
    }
}

impl ControlMetrics {
    /// A snapshot of `state` was published after `took`.
    pub fn published(&self, state: &ConfigState, took: Duration) {
        self.revision.set(state.revision);
        self.compile_duration.observe(took.as_secs_f64());
        self.last_compile.set(unix_now());
        let certificates =
            state.certificates.values().map(|c| Expiry::new(c.id.to_string(), "certificate", c.certificate.not_after));
        let cas =
            state.ca_certificates.values().map(|(id, ca)| Expiry::new(id.to_string(), "ca_certificate", ca.not_after));
        self.expiries.store(Arc::new(certificates.chain(cas).collect()));
        self.changed.notify_one();
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ExpiryLabels {
    id: String,
    /// `certificate` (client certificates) or `ca_certificate`.
    kind: &'static str,
}

#[derive(Debug)]
struct Expiry {
    labels: ExpiryLabels,
    not_after: i64,
}

impl Expiry {
    fn new(id: String, kind: &'static str, not_after: i64) -> Self {
        Self { labels: ExpiryLabels { id, kind }, not_after }
    }
}

/// `certificate_expiry_seconds`: computed at each scrape from the configuration served, so a
/// deleted certificate leaves no stale series and the value is current to the second.
#[derive(Debug)]
struct CertificateExpiries(Arc<ArcSwap<Vec<Expiry>>>);

impl Collector for CertificateExpiries {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let expiries = self.0.load();
        let mut family = encoder.encode_descriptor(
            "certificate_expiry_seconds",
            "Seconds until each certificate's notAfter (negative once expired)",
            None,
            MetricType::Gauge,
        )?;
        let now = unix_now();
        for expiry in expiries.iter() {
            ConstGauge::new(expiry.not_after - now).encode(family.encode_family(&expiry.labels)?)?;
        }
        Ok(())
    }
}

/// How often certificates are checked against the expiry steps.
const EXPIRY_CHECK: Duration = Duration::from_secs(60);

/// Logs one warning per certificate (client or CA) and expiry step it reaches: at start for
/// those already there, when a new one is published, and within [`EXPIRY_CHECK`] of each step,
/// until `shutdown`.
pub async fn warn_of_expiries(control: ControlMetrics, shutdown: impl std::future::Future<Output = ()>) {
    tokio::pin!(shutdown);
    let mut warned: HashMap<ExpiryLabels, ExpiryStage> = HashMap::new();
    loop {
        let expiries = control.expiries.load_full();
        let now = unix_now();
        warned.retain(|labels, _| expiries.iter().any(|e| e.labels == *labels));
        for expiry in expiries.iter() {
            match ExpiryStage::at(expiry.not_after, now) {
                Some(stage) if warned.get(&expiry.labels) != Some(&stage) => {
                    tracing::warn!(id = %expiry.labels.id, kind = expiry.labels.kind, "{}", stage.warning(expiry.not_after));
                    warned.insert(expiry.labels.clone(), stage);
                }
                Some(_) => {}
                None => {
                    warned.remove(&expiry.labels);
                }
            }
        }
        tokio::select! {
            () = tokio::time::sleep(EXPIRY_CHECK) => {}
            () = control.changed.notified() => {}
            () = &mut shutdown => return,
        }
    }
}
