//! The control loop: whenever the store changes, read the configuration, compile a snapshot and
//! swap it in. The data plane only ever sees complete snapshots.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use certgate_gateway::{Compiler, SnapshotHandle};
use certgate_model::ConfigState;
use certgate_store::{Store, StoreError, apply_changes, load_config};
use tokio::sync::watch;

use crate::telemetry::ControlMetrics;

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
    metrics: ControlMetrics,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let mut changes = store.changes();
    let mut kept = Some(state);
    tokio::pin!(shutdown);
    loop {
        let expiry = expiry_deadline(snapshots.load().next_expiry, Instant::now(), SystemTime::now());
        // Expiry changes what every route using the certificate does: compile everything.
        let expired = tokio::select! {
            changed = changes.changed() => if changed.is_err() { return } else { false },
            () = tokio::time::sleep_until(expiry.into()) => {
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
                let revision = next.revision;
                let pools = next.upstream_count();
                let next = Arc::new(next);
                let replaced = snapshots.swap(next.clone());
                // The identities nobody routes to any more: their idle connections close now.
                let retired = replaced.retire_pools_unused_by(&next);
                published.send_replace(revision);
                // Freeing a large snapshot takes milliseconds: not on the runtime's threads.
                tokio::task::spawn_blocking(move || drop(replaced));
                let elapsed = started.elapsed();
                metrics.published(&state, elapsed);
                kept = Some(state);
                let elapsed_us = elapsed.as_micros();
                tracing::debug!(revision, pools, retired, read_us, elapsed_us, "snapshot published");
            }
            Err(error) => tracing::error!(%error, "compiling the snapshot failed; the previous one keeps serving"),
        }
    }
}

/// The instant (on the monotonic clock `now` reads) at which the wall clock, `wall` at `now`,
/// reaches the first instant of second `next_expiry`: a certificate counts as expired from
/// then on (`not_after <= now` in the compiler). A day from now when nothing expires.
fn expiry_deadline(next_expiry: Option<i64>, now: Instant, wall: SystemTime) -> Instant {
    const IDLE: Duration = Duration::from_secs(86_400);
    let at = next_expiry.map(|at| UNIX_EPOCH.checked_add(Duration::from_secs(u64::try_from(at).unwrap_or(0))));
    match at {
        Some(Some(at)) => now + at.duration_since(wall).unwrap_or(Duration::ZERO).min(IDLE),
        // Nothing expires, or not within what the clock can represent.
        None | Some(None) => now + IDLE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_recompile_is_due_at_the_first_instant_of_the_expiry_second() {
        let now = Instant::now();
        let wall = UNIX_EPOCH + Duration::from_millis(100_250);
        assert_eq!(expiry_deadline(Some(101), now, wall), now + Duration::from_millis(750));
        assert_eq!(expiry_deadline(Some(100), now, wall), now, "already due");
        assert_eq!(expiry_deadline(Some(-5), now, wall), now);
        assert_eq!(expiry_deadline(None, now, wall), now + Duration::from_secs(86_400));
        assert_eq!(expiry_deadline(Some(i64::MAX), now, wall), now + Duration::from_secs(86_400));
    }
}
