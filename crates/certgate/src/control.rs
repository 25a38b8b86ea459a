//! The control loop: whenever the store changes, read the configuration, compile a snapshot and
//! swap it in. The data plane only ever sees complete snapshots.

use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use certgate_gateway::{Compiler, SnapshotHandle};
use certgate_store::{Store, StoreError, load_config};
use tokio::sync::watch;

/// Compiles the first snapshot; the node serves nothing until it exists.
pub async fn first_snapshot(
    store: &dyn Store,
    compiler: &Compiler,
) -> Result<(SnapshotHandle, watch::Sender<i64>), StoreError> {
    let state = load_config(store).await?;
    let snapshot = compiler.compile(&state, None);
    let (published, _) = watch::channel(snapshot.revision);
    Ok((Arc::new(ArcSwap::from_pointee(snapshot)), published))
}

/// Recompiles on every change until `shutdown` resolves. On a failed read the last good
/// snapshot keeps serving; the next change (or the retry) tries again.
pub async fn run(
    store: Arc<dyn Store>,
    compiler: Arc<Compiler>,
    snapshots: SnapshotHandle,
    published: watch::Sender<i64>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let mut changes = store.changes();
    tokio::pin!(shutdown);
    loop {
        let expiry = until_expiry(snapshots.load().next_expiry);
        tokio::select! {
            changed = changes.changed() => if changed.is_err() { return },
            () = tokio::time::sleep(expiry) => tracing::info!("a client certificate in use expired; recompiling"),
            () = &mut shutdown => return,
        }
        let started = Instant::now();
        match load_config(store.as_ref()).await {
            Ok(state) => {
                // Compiling builds TLS configurations: CPU work that must not stall the runtime,
                // and a bug in it must not end the loop (the old snapshot keeps serving).
                let previous = snapshots.load_full();
                let compiler = compiler.clone();
                let compiled = tokio::task::spawn_blocking(move || compiler.compile(&state, Some(&previous))).await;
                match compiled {
                    Ok(next) => {
                        let revision = next.revision;
                        let pools = next.upstream_count();
                        snapshots.store(Arc::new(next));
                        published.send_replace(revision);
                        let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
                        tracing::debug!(revision, pools, elapsed_ms, "snapshot published");
                    }
                    Err(error) => {
                        tracing::error!(%error, "compiling the snapshot failed; the previous one keeps serving")
                    }
                }
            }
            Err(error) => {
                tracing::error!(%error, "cannot read the configuration; the previous snapshot keeps serving");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                changes.mark_changed();
            }
        }
    }
}

/// How long until the first certificate in use expires (a day when none does).
fn until_expiry(next_expiry: Option<i64>) -> std::time::Duration {
    const IDLE: std::time::Duration = std::time::Duration::from_secs(86_400);
    next_expiry.map_or(IDLE, |at| {
        let seconds = u64::try_from(at.saturating_sub(certgate_model::unix_now())).unwrap_or(0);
        std::time::Duration::from_secs(seconds + 1).min(IDLE)
    })
}
