//! The vault refresher: re-reads every version-less reference on a jittered schedule with
//! per-reference backoff, a few at a time. Reads go through `certgate_vault::refresh`, which
//! validates new material before storing it; the control loop then publishes it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use certgate_model::{Certificate, CertificateSource, EntityId, EntityKind};
use certgate_store::Store;
use certgate_vault::refresh::{Outcome, refresh};
use certgate_vault::schedule::next_delay;
use certgate_vault::{SecretReference, VaultClient};
use tokio::task::JoinSet;

/// How many references are read at the same time.
const CONCURRENT_READS: usize = 4;

struct Due {
    at: Instant,
    failures: u32,
}

pub async fn run(
    store: Arc<dyn Store>,
    vault: Arc<VaultClient>,
    interval: Duration,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let tick = (interval / 4).clamp(Duration::from_millis(100), Duration::from_secs(5));
    let mut schedule: HashMap<String, Due> = HashMap::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = tokio::time::sleep(tick) => {}
            () = &mut shutdown => return,
        }
        let references = match references(store.as_ref()).await {
            Ok(references) => references,
            Err(error) => {
                tracing::warn!(%error, "the refresher cannot list certificates");
                continue;
            }
        };
        let now = Instant::now();
        schedule.retain(|key, _| references.iter().any(|(id, _)| id.key() == *key));
        let mut due = Vec::new();
        for (id, last_read) in references {
            let entry =
                schedule.entry(id.key()).or_insert_with(|| Due { at: first_due(last_read, interval), failures: 0 });
            if entry.at <= now {
                due.push(id);
            }
        }
        let permits = Arc::new(tokio::sync::Semaphore::new(CONCURRENT_READS));
        let mut reads = JoinSet::new();
        for id in due {
            let (store, vault, permits) = (store.clone(), vault.clone(), permits.clone());
            reads.spawn(async move {
                let _permit = permits.acquire_owned().await;
                let result = refresh(store.as_ref(), &vault, &id).await;
                (id, result)
            });
        }
        while let Some(Ok((id, result))) = reads.join_next().await {
            let Some(entry) = schedule.get_mut(&id.key()) else { continue };
            match result {
                Ok((_, Outcome::Rotated { from, to })) => {
                    tracing::info!(certificate = %id, %from, %to, "vault certificate rotated");
                    entry.failures = 0;
                }
                Ok((_, Outcome::Unchanged)) => entry.failures = 0,
                Ok((_, Outcome::Failed(failure))) => {
                    entry.failures += 1;
                    tracing::warn!(certificate = %id, code = ?failure.code, reason = %failure.message,
                        failures = entry.failures, "vault refresh failed; the last good certificate keeps serving");
                }
                Err(error) => {
                    entry.failures += 1;
                    tracing::warn!(certificate = %id, %error, "vault refresh failed");
                }
            }
            entry.at = Instant::now() + next_delay(interval, entry.failures, jitter());
        }
    }
}

/// Version-less references and when each was last read (Unix seconds).
async fn references(store: &dyn Store) -> Result<Vec<(EntityId, i64)>, certgate_store::StoreError> {
    let mut references = Vec::new();
    for record in store.list(EntityKind::Certificate).await? {
        let certificate: Certificate = record.decode()?;
        if let CertificateSource::KeyVault { secret_identifier, last_status, .. } = &certificate.source {
            let pinned = SecretReference::parse(secret_identifier).map(|r| r.is_pinned()).unwrap_or(false);
            if !pinned {
                references.push((record.id, last_status.time));
            }
        }
    }
    Ok(references)
}

/// A reference read `interval` ago (or never, before this node started) is due now.
fn first_due(last_read_unix: i64, interval: Duration) -> Instant {
    let now_unix = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let age = Duration::from_secs(now_unix.saturating_sub(u64::try_from(last_read_unix).unwrap_or(0)));
    Instant::now() + interval.saturating_sub(age)
}

/// Uniform in [-1, 1].
fn jitter() -> f64 {
    use aws_lc_rs::rand::{SecureRandom, SystemRandom};
    let mut bytes = [0u8; 4];
    if SystemRandom::new().fill(&mut bytes).is_err() {
        return 0.0;
    }
    f64::from(u32::from_le_bytes(bytes)) / f64::from(u32::MAX) * 2.0 - 1.0
}
