//! The vault refresher: re-reads every version-less reference on a jittered schedule with
//! per-reference backoff, a few at a time, waking exactly when the next one is due. Reads go through `certgate_vault::refresh`, which
//! validates new material before storing it; the control loop then publishes it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use certgate_model::{Certificate, CertificateSource, EntityId, EntityKind};
use certgate_store::Store;
use certgate_vault::refresh::{Outcome, refresh};
use certgate_vault::schedule::{next_delay, renewal_delay};
use certgate_vault::{SecretReference, VaultClient};
use tokio::task::JoinSet;

/// How many references are read at the same time.
const CONCURRENT_READS: usize = 4;

/// The reference list is read again after a store change, but at most this often: every write
/// (the refresher's own included) is a change, and a due time depends on the stored read time,
/// not on when the refresher noticed the reference.
const RELIST_GAP: Duration = Duration::from_secs(1);

/// How soon a failed listing is tried again.
const RELIST_RETRY: Duration = Duration::from_secs(5);

/// With no reference at all, the refresher still wakes this often (it also wakes on changes).
const IDLE: Duration = Duration::from_secs(3600);

/// One scheduled reference.
struct Due {
    id: EntityId,
    at: Instant,
    failures: u32,
    /// For PKI references: the notAfter the due time was computed from; a certificate replaced
    /// by someone else (`refreshSecret`, another node) is rescheduled from its own lifetime.
    expires: Option<i64>,
}

/// A reference the refresher watches.
struct Watched {
    id: EntityId,
    /// Unix seconds of the last read (successful or not).
    last_read: i64,
    /// For PKI references: when the certificate in use expires (renewed at ~2/3 of its life).
    expires: Option<i64>,
}

/// Reads each reference when it is due: it sleeps until the earliest due time (not on a fixed
/// tick, so a short-lived PKI certificate is renewed at two thirds of its life however long the
/// KV interval is), and lists the references again when the store changes.
pub async fn run(
    store: Arc<dyn Store>,
    vault: Arc<VaultClient>,
    interval: Duration,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let mut schedule: HashMap<String, Due> = HashMap::new();
    let mut changes = store.changes();
    let mut watching_changes = true;
    let mut list_at = Some(Instant::now());
    let mut listed_at: Option<Instant> = None;
    tokio::pin!(shutdown);
    loop {
        let wake = schedule.values().map(|due| due.at).chain(list_at).min().unwrap_or_else(|| Instant::now() + IDLE);
        tokio::select! {
            () = tokio::time::sleep_until(wake.into()) => {}
            changed = changes.changed(), if watching_changes => {
                if changed.is_err() {
                    watching_changes = false;
                } else if list_at.is_none() {
                    let earliest = listed_at.map_or_else(Instant::now, |at| at + RELIST_GAP);
                    list_at = Some(earliest.max(Instant::now()));
                }
                continue;
            }
            () = &mut shutdown => return,
        }
        if list_at.is_some_and(|at| at <= Instant::now()) {
            listed_at = Some(Instant::now());
            list_at = None;
            match references(store.as_ref()).await {
                Ok(references) => reconcile(&mut schedule, references, interval),
                Err(error) => {
                    tracing::warn!(%error, "the refresher cannot list certificates");
                    list_at = Some(Instant::now() + RELIST_RETRY);
                }
            }
        }
        let now = Instant::now();
        let due: Vec<EntityId> = schedule.values().filter(|due| due.at <= now).map(|due| due.id.clone()).collect();
        let permits = Arc::new(tokio::sync::Semaphore::new(CONCURRENT_READS));
        let mut reads = JoinSet::new();
        for id in due {
            let (store, vault, permits) = (store.clone(), vault.clone(), permits.clone());
            reads.spawn(async move {
                let _permit = permits.acquire_owned().await;
                let result = refresh(store.as_ref(), vault.as_ref(), &id).await;
                (id, result)
            });
        }
        while let Some(Ok((id, result))) = reads.join_next().await {
            let Some(entry) = schedule.get_mut(&id.key()) else { continue };
            let mut expires = None;
            match result {
                Ok((certificate, outcome)) => {
                    expires = is_pki(&certificate).then_some(certificate.not_after);
                    match outcome {
                        Outcome::Rotated { from, to } => {
                            tracing::info!(certificate = %id, %from, %to, "vault certificate rotated");
                            entry.failures = 0;
                        }
                        Outcome::Unchanged => entry.failures = 0,
                        Outcome::Failed(failure) => {
                            entry.failures += 1;
                            tracing::warn!(certificate = %id, code = ?failure.code, reason = %failure.message,
                                failures = entry.failures, "vault refresh failed; the last good certificate keeps serving");
                        }
                    }
                }
                Err(error) => {
                    entry.failures += 1;
                    tracing::warn!(certificate = %id, %error, "vault refresh failed");
                }
            }
            let delay = match expires {
                Some(not_after) => renewal_delay(
                    certgate_model::unix_now(),
                    not_after,
                    certgate_model::unix_now(),
                    entry.failures,
                    jitter(),
                ),
                None => next_delay(interval, entry.failures, jitter()),
            };
            entry.expires = expires;
            entry.at = Instant::now() + delay;
        }
    }
}

/// Brings the schedule in line with the listed references: new ones are scheduled, deleted
/// ones dropped, and a PKI reference whose certificate changed behind the refresher's back is
/// rescheduled from the new certificate's lifetime.
fn reconcile(schedule: &mut HashMap<String, Due>, references: Vec<Watched>, interval: Duration) {
    let listed: std::collections::HashSet<String> = references.iter().map(|r| r.id.key()).collect();
    schedule.retain(|key, _| listed.contains(key));
    for watched in references {
        let at = Instant::now() + first_delay(&watched, interval);
        let entry = schedule.entry(watched.id.key()).or_insert_with(|| Due {
            id: watched.id.clone(),
            at,
            failures: 0,
            expires: watched.expires,
        });
        if watched.expires.is_some() && entry.expires != watched.expires {
            *entry = Due { id: watched.id, at, failures: 0, expires: watched.expires };
        }
    }
}

/// Every reference that can change: version-less KV secrets and PKI issue endpoints.
async fn references(store: &dyn Store) -> Result<Vec<Watched>, certgate_store::StoreError> {
    let mut references = Vec::new();
    for record in store.list(EntityKind::Certificate).await? {
        let certificate: Certificate = record.decode()?;
        if let CertificateSource::KeyVault { secret_identifier, last_status, .. } = &certificate.source {
            let pinned = SecretReference::parse(secret_identifier).map(|r| r.is_pinned()).unwrap_or(false);
            if !pinned {
                let expires = is_pki(&certificate).then_some(certificate.not_after);
                references.push(Watched { id: record.id, last_read: last_status.time, expires });
            }
        }
    }
    Ok(references)
}

fn is_pki(certificate: &Certificate) -> bool {
    matches!(&certificate.source, CertificateSource::KeyVault { secret_identifier, .. }
        if SecretReference::parse(secret_identifier).is_ok_and(|r| r.is_pki()))
}

/// When a reference first seen by this node is due: PKI at ~2/3 of its certificate's life,
/// KV an interval after its last read (now, if that was longer ago).
fn first_delay(watched: &Watched, interval: Duration) -> Duration {
    let now = certgate_model::unix_now();
    match watched.expires {
        Some(not_after) => renewal_delay(watched.last_read, not_after, now, 0, jitter()),
        None => interval
            .saturating_sub(Duration::from_secs(u64::try_from(now.saturating_sub(watched.last_read)).unwrap_or(0))),
    }
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
