//! A node among others on one store: its heartbeat, and the duties one node does at a time.
//! (The store's `cluster` module has the database side: notifications, locks, the node list.)

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use certgate_store::{Duty, NodeBeat, Store};
use tokio::sync::watch;

/// The node's id, kept in the data folder so a restarted node keeps its row in `/nodes`.
pub fn node_id(data_dir: &Path) -> std::io::Result<String> {
    let path = data_dir.join("node-id");
    match std::fs::read_to_string(&path) {
        Ok(text) if !text.trim().is_empty() => Ok(text.trim().to_owned()),
        Ok(_) => new_node_id(&path),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => new_node_id(&path),
        Err(error) => Err(error),
    }
}

fn new_node_id(path: &Path) -> std::io::Result<String> {
    let mut bytes = [0u8; 8];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| std::io::Error::other("the system random generator failed"))?;
    let id = hex::encode(bytes);
    std::fs::write(path, format!("{id}\n"))?;
    Ok(id)
}

/// The host name, for people reading `/nodes`.
pub fn host_name() -> String {
    rustix::system::uname().nodename().to_string_lossy().into_owned()
}

/// What a node says of itself in its heartbeat, apart from the times and the revision.
pub struct NodeIdentity {
    pub id: String,
    pub name: String,
    pub admin_address: Option<String>,
}

/// Writes the node's heartbeat every [`certgate_admin::HEARTBEAT_INTERVAL`] until shutdown. A
/// failed write is logged once per outage; the node keeps serving.
pub async fn heartbeat(
    store: Arc<dyn Store>,
    node: NodeIdentity,
    published: watch::Receiver<i64>,
    mut shutdown: watch::Receiver<bool>,
) {
    let started_at = certgate_model::unix_now();
    let mut tick = tokio::time::interval(certgate_admin::HEARTBEAT_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
        let beat = NodeBeat {
            id: node.id.clone(),
            name: node.name.clone(),
            admin_address: node.admin_address.clone(),
            served_revision: *published.borrow(),
            started_at,
            heartbeat_at: certgate_model::unix_now(),
        };
        match store.heartbeat(&beat).await {
            Ok(()) if failing => {
                failing = false;
                tracing::info!("the node's heartbeat is stored again");
            }
            Ok(()) => {}
            Err(error) if !failing => {
                failing = true;
                tracing::warn!(error = %certgate_model::error_chain(&error), "cannot store the node's heartbeat");
            }
            Err(_) => {}
        }
    }
}

/// Runs `work` while this node holds `duty`, asking for it every `retry` while another node
/// does; `held` is 1 meanwhile. `work` gets the shutdown signal; it is dropped when the duty
/// is lost.
pub async fn while_leading<W, F>(
    store: Arc<dyn Store>,
    duty: Duty,
    retry: Duration,
    held: prometheus_client::metrics::gauge::Gauge,
    mut shutdown: watch::Receiver<bool>,
    mut work: W,
) where
    W: FnMut(watch::Receiver<bool>) -> F,
    F: std::future::Future<Output = ()>,
{
    // Each condition is logged when it starts, not at every retry.
    let (mut waiting_logged, mut failing_logged) = (false, false);
    loop {
        if *shutdown.borrow() {
            return;
        }
        let asked = tokio::select! {
            asked = store.try_lead(duty) => asked,
            _ = shutdown.wait_for(|stop| *stop) => return,
        };
        match asked {
            Ok(Some(mut lease)) => {
                tracing::info!(%duty, "this node does the cluster's duty");
                (waiting_logged, failing_logged) = (false, false);
                held.set(1);
                // A lost lease ends the work where it is: its writes are conditional on the
                // revisions they read, so one cut short changes nothing half-way.
                tokio::select! {
                    () = work(shutdown.clone()) => {}
                    () = lease.lost() => {
                        tracing::warn!(%duty, "lost the cluster's lock for this duty; another node takes it over");
                    }
                }
                held.set(0);
            }
            Ok(None) => {
                failing_logged = false;
                if !std::mem::replace(&mut waiting_logged, true) {
                    tracing::info!(%duty, "another node does this duty; standing by");
                }
            }
            Err(error) => {
                if !std::mem::replace(&mut failing_logged, true) {
                    let error = certgate_model::error_chain(&error);
                    tracing::warn!(%duty, %error, "cannot ask for the duty's lock; asking again until it answers");
                }
            }
        }
        tokio::select! {
            () = tokio::time::sleep(retry) => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
    }
}

/// How often a standby node asks for the refresher's duty: a takeover must come within two
/// refresh intervals and within 30 s, whichever is less.
pub fn takeover_retry(refresh_interval: Duration) -> Duration {
    (refresh_interval.min(Duration::from_secs(30)) / 2).max(Duration::from_secs(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_keeps_its_id_across_restarts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = node_id(dir.path()).expect("id");
        assert_eq!(first.len(), 16);
        assert_eq!(node_id(dir.path()).expect("id"), first);
        let other = tempfile::tempdir().expect("tempdir");
        assert_ne!(node_id(other.path()).expect("id"), first);
    }

    #[test]
    fn a_standby_asks_often_enough_to_take_over_in_time() {
        assert_eq!(takeover_retry(Duration::from_secs(4 * 3600)), Duration::from_secs(15));
        assert_eq!(takeover_retry(Duration::from_secs(10)), Duration::from_secs(5));
        assert_eq!(takeover_retry(Duration::from_secs(1)), Duration::from_secs(1));
    }
}
