//! The control loop: whenever the store changes, read the configuration, compile a snapshot and
//! swap it in. The data plane only ever sees complete snapshots.

use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use certgate_gateway::{Compiler, SnapshotHandle};
use certgate_model::ConfigState;
use certgate_store::{Store, StoreError, apply_changes, load_config};
use tokio::sync::watch;

/// Compiles the first snapshot; the node serves nothing until it exists. Returns the
/// configuration state too: the control loop keeps it and applies each change to it.
pub async fn first_snapshot(
    store: &dyn Store,
    compiler: &Compiler,
) -> Result<(SnapshotHandle, watch::Sender<i64>, ConfigState), StoreError> {
    let state = load_config(store).await?;
    let snapshot = compiler.compile(&state, None);
    let (published, _) = watch::channel(snapshot.revision);
    Ok((Arc::new(ArcSwap::from_pointee(snapshot)), published, state))
}

/// Recompiles on every change until `shutdown` resolves. Changes are read incrementally into
/// the kept state; after a failure the state is read whole again. On a failed read the last
/// good snapshot keeps serving; the next change (or the retry) tries again.
pub async fn run(
    store: Arc<dyn Store>,
    compiler: Arc<Compiler>,
    snapshots: SnapshotHandle,
    published: watch::Sender<i64>,
    state: ConfigState,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let mut changes = store.changes();
    let mut kept = Some(state);
    tokio::pin!(shutdown);
    loop {
        let expiry = until_expiry(snapshots.load().next_expiry);
        // Expiry changes what every route using the certificate does: compile everything.
        let expired = tokio::select! {
            changed = changes.changed() => if changed.is_err() { return } else { false },
            () = tokio::time::sleep(expiry) => {
                tracing::info!("a client certificate in use expired; recompiling");
                true
            }
            () = &mut shutdown => return,
        };
        let started = Instant::now();
        let refreshed = match kept.take() {
            Some(mut state) => {
                apply_changes(store.as_ref(), &mut state).await.map(|changed| (state, (!expired).then_some(changed)))
            }
            None => load_config(store.as_ref()).await.map(|state| (state, None)),
        };
        let (state, changed) = match refreshed {
            Ok(state) => state,
            Err(error) => {
                tracing::error!(%error, "cannot read the configuration; the previous snapshot keeps serving");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                changes.mark_changed();
                continue;
            }
        };
        let read_us = started.elapsed().as_micros();
        // Compiling builds TLS configurations: CPU work that must not stall the runtime, and a
        // bug in it must not end the loop (the old snapshot keeps serving).
        let previous = snapshots.load_full();
        let compiler = compiler.clone();
        let compiled = tokio::task::spawn_blocking(move || {
            let next = match &changed {
                Some(changed) => compiler.compile_changes(&state, &previous, changed),
                None => compiler.compile(&state, Some(&previous)),
            };
            (state, next)
        })
        .await;
        match compiled {
            Ok((state, next)) => {
                kept = Some(state);
                let revision = next.revision;
                let pools = next.upstream_count();
                let replaced = snapshots.swap(Arc::new(next));
                published.send_replace(revision);
                // Freeing a large snapshot takes milliseconds: not on the runtime's threads.
                tokio::task::spawn_blocking(move || drop(replaced));
                let elapsed_us = started.elapsed().as_micros();
                tracing::debug!(revision, pools, read_us, elapsed_us, "snapshot published");
            }
            Err(error) => tracing::error!(%error, "compiling the snapshot failed; the previous one keeps serving"),
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
