//! `/health` and `/ready`, both open (a load balancer has no token).
//!
//! `/health` is liveness: the process answers; it touches nothing, so it stays cheap and
//! answers even while the store is failing. `/ready` is readiness: it commits a small probe
//! write ([`Store::probe`]) and answers `503 {"status":"Degraded","store":"not writable: …"}`
//! while the store cannot be written, so the node is taken out of rotation. Probes run at most
//! once per [`PROBE_INTERVAL`]; callers in between share the last result, so an open endpoint
//! cannot be used to make the node write at any rate.

use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use certgate_store::{Store, StoreError};
use serde_json::json;
use tokio::sync::Mutex;

use crate::AdminState;

const PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// The last readiness probe, shared by the callers that come within [`PROBE_INTERVAL`].
#[derive(Default)]
pub(crate) struct Readiness {
    last: Mutex<Option<Probe>>,
}

struct Probe {
    at: Instant,
    /// Why the store is not ready; `None` when it is.
    degraded: Option<String>,
}

impl Readiness {
    /// Why the store is not ready, or `None` when it is.
    async fn check(&self, store: &dyn Store) -> Option<String> {
        let mut last = self.last.lock().await;
        if let Some(probe) = last.as_ref()
            && probe.at.elapsed() < PROBE_INTERVAL
        {
            return probe.degraded.clone();
        }
        let degraded = store.probe().await.err().map(|error| degraded(&error));
        *last = Some(Probe { at: Instant::now(), degraded: degraded.clone() });
        degraded
    }
}

/// The store's condition in a few words, without the driver's detail (this endpoint is open).
fn degraded(error: &StoreError) -> String {
    tracing::warn!(error = %certgate_model::error_chain(error), "readiness probe failed");
    match error {
        StoreError::Unavailable { access, cause, .. } => format!("not {access}: {cause}"),
        _ => "not writable: unexpected database error (see the node's log)".to_owned(),
    }
}

pub(crate) async fn health() -> Json<serde_json::Value> {
    Json(json!({"status": "Healthy"}))
}

pub(crate) async fn ready(State(state): State<AdminState>) -> Response {
    match state.readiness.check(state.store.as_ref()).await {
        None => Json(json!({"status": "Healthy", "store": "writable"})).into_response(),
        Some(store) => {
            (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"status": "Degraded", "store": store}))).into_response()
        }
    }
}
