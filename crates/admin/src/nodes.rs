//! `/nodes`: the nodes sharing this store, from their heartbeats, so an operator sees a node
//! that lags behind or went silent. On the embedded store the list is this node alone.

use axum::Json;
use axum::extract::State;
use certgate_pki::format_utc;
use certgate_store::NodeBeat;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::envelope::{Page, Resource};
use crate::error::ErrorResponse;
use crate::{AdminState, ApiError};

/// How often a node writes its heartbeat; the binary's heartbeat task uses it too.
pub const HEARTBEAT_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

/// A node whose last heartbeat is older than this many intervals is reported silent.
const SILENT_AFTER_BEATS: i64 = 3;

pub fn routes() -> OpenApiRouter<AdminState> {
    OpenApiRouter::new().routes(routes!(list_nodes))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeContract {
    /// The node's host name.
    name: String,
    /// Where its management API listens, as the node itself sees it.
    admin_address: Option<String>,
    /// The store revision of the configuration the node's gateway serves.
    served_revision: i64,
    /// How many revisions the node serves behind the newest one any node has seen.
    revisions_behind: i64,
    started: String,
    last_heartbeat: String,
    /// No heartbeat for three intervals (15 s): the node is down or cannot reach the store.
    silent: bool,
}

/// List the nodes that share this store, with the revision each serves and its last heartbeat.
#[utoipa::path(get, path = "/nodes", tag = "nodes",
    responses((status = 200, body = Page<NodeContract>), (status = 401, body = ErrorResponse),
        (status = 503, body = ErrorResponse)))]
async fn list_nodes(State(state): State<AdminState>) -> Result<Json<Page<NodeContract>>, ApiError> {
    let nodes = state.store.nodes().await?;
    let newest = nodes.iter().map(|n| n.served_revision).chain([*state.store.changes().borrow()]).max();
    let silent_before = certgate_model::unix_now() - SILENT_AFTER_BEATS * HEARTBEAT_INTERVAL.as_secs() as i64;
    let value: Vec<Resource<NodeContract>> = nodes
        .into_iter()
        .map(|node: NodeBeat| {
            let contract = NodeContract {
                revisions_behind: newest.map_or(0, |newest| (newest - node.served_revision).max(0)),
                silent: node.heartbeat_at < silent_before,
                started: format_utc(node.started_at),
                last_heartbeat: format_utc(node.heartbeat_at),
                name: node.name,
                admin_address: node.admin_address,
                served_revision: node.served_revision,
            };
            Resource::new("nodes", &node.id, contract)
        })
        .collect();
    Ok(Json(Page { count: value.len(), value, next_link: None }))
}
