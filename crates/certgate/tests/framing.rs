//! The framing and lifecycle table (RFC 9112 §6, §3.2, §9.3; RFC 9110): a hostile scripted
//! backend on one side (exact bytes out, exact bytes in recorded, connections watched), a raw
//! TCP client on the other, one node for every case. Each case asserts what the client saw
//! (status, headers, body bytes, whether its connection was closed or the message aborted) and
//! what the backend saw (exact request bytes, connections, requests). Every case runs and the
//! test then lists all that failed, so one report shows the whole state of the gateway.
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use certgate_testkit::{Received, ScriptedBackend};
use serde_json::json;
use support::{Stage, must_put};

/// How long a client keeps reading after its responses, to see whether the gateway closes.
const GRACE: Duration = Duration::from_millis(150);
/// Cases run this many at a time (the machine has two cores, shared).
const PARALLEL: usize = 6;

type Check = Result<(), String>;

macro_rules! ensure {
    ($cond:expr, $($why:tt)+) => {
        if !$cond {
            return Err(format!($($why)+));
        }
    };
}

macro_rules! cases {
    ($($case:ident),* $(,)?) => {
        vec![$((stringify!($case), (|table| Box::pin($case(table))) as fn(std::sync::Arc<$crate::harness::Table>) -> $crate::harness::CaseFuture)),*]
    };
}

#[path = "framing/harness.rs"]
mod harness;
#[path = "framing/requests.rs"]
mod requests;
#[path = "framing/responses.rs"]
mod responses;

use harness::{Table, ok};
use responses::run_reply;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn framing_and_lifecycle_table() {
    let table = Table::start().await;
    let replies = responses::replies();
    let refusals = requests::refusals();
    let customs = [responses::cases(), requests::cases()].concat();
    let timed = requests::timed();
    let total = replies.len() + refusals.len() + customs.len() + timed.len();
    assert!(total >= 60, "the table has {total} cases");

    let started = Instant::now();
    let limit = Arc::new(tokio::sync::Semaphore::new(PARALLEL));
    let mut running = tokio::task::JoinSet::new();
    for case in replies {
        let (table, limit) = (table.clone(), limit.clone());
        running.spawn(async move {
            let _permit = limit.acquire_owned().await.unwrap();
            (case.name.to_owned(), run_reply(table, case).await)
        });
    }
    for refusal in refusals {
        let (table, limit) = (table.clone(), limit.clone());
        running.spawn(async move {
            let _permit = limit.acquire_owned().await.unwrap();
            (refusal.name.to_owned(), requests::run_refusal(table, refusal).await)
        });
    }
    for (name, case) in customs {
        let (table, limit) = (table.clone(), limit.clone());
        running.spawn(async move {
            let _permit = limit.acquire_owned().await.unwrap();
            (name.to_owned(), case(table).await)
        });
    }
    let mut results: Vec<(String, Check)> = running.join_all().await;
    // Cases that measure time run alone, so the machine's load does not decide them.
    for (name, case) in timed {
        results.push((name.to_owned(), case(table.clone()).await));
    }
    results.sort_by(|a, b| a.0.cmp(&b.0));
    let failed: Vec<String> =
        results.iter().filter_map(|(name, result)| result.as_ref().err().map(|why| format!("{name}: {why}"))).collect();
    println!("{total} cases in {:?}, {} failed", started.elapsed(), failed.len());
    for (name, result) in &results {
        println!("{} {name}", if result.is_ok() { "pass" } else { "FAIL" });
    }
    assert!(failed.is_empty(), "{} of {total} cases failed:\n\n{}", failed.len(), failed.join("\n\n"));
}

/// A backend closing idle connections after 2 s (gunicorn's default) under a GET/POST mix from
/// 8 concurrent clients: not one error in 2 000 requests, every answer the one meant for its
/// request, and no POST sent twice. The clients pause together after every round of 10
/// requests (a pause of 0–2.5 s clustered around 2 s, plus up to 60 ms of jitter per client), so
/// the whole pool sits idle close to the backend's limit, on both sides of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn idle_closing_backend_under_a_concurrent_get_post_mix() {
    const CLIENTS: u64 = 8;
    const PER_CLIENT: u64 = 250;
    const ROUND: u64 = 10;
    let stage = Stage::start();
    let backend = ScriptedBackend::start(Some(Duration::from_secs(2)), |r: &Received| {
        vec![ok(&format!("{} {}", r.request_line(), r.body().len()))]
    })
    .await;
    must_put(
        &stage.api,
        "/apis/mix",
        json!({"properties": {"displayName": "mix", "path": "mix", "serviceUrl": backend.url()}}),
    )
    .await;
    let gateway = stage.node.gateway.clone();
    let mut rounds = SplitMix64(0x0200_5eed);
    let pauses: Arc<Vec<Duration>> =
        Arc::new((0..PER_CLIENT / ROUND).map(|_| rounds.pause_clustered_at_two_seconds()).collect());
    let idle_rounds = pauses.iter().filter(|p| **p > Duration::from_millis(2100)).count();
    let barrier = Arc::new(tokio::sync::Barrier::new(CLIENTS as usize));
    let started = Instant::now();
    let mut clients = tokio::task::JoinSet::new();
    for client in 0..CLIENTS {
        let (gateway, pauses, barrier) = (gateway.clone(), pauses.clone(), barrier.clone());
        clients.spawn(async move {
            let http = reqwest::Client::new();
            let mut rng = SplitMix64(0x5eed_0000 + client);
            let mut errors = Vec::new();
            for n in 0..PER_CLIENT {
                let post = rng.below(2) == 0;
                let id = format!("{}{client}-{n}", if post { "p" } else { "g" });
                let body = "x".repeat(rng.below(4096) as usize + 1);
                let request = if post {
                    http.post(format!("{gateway}/mix/{id}")).body(body.clone())
                } else {
                    http.get(format!("{gateway}/mix/{id}"))
                };
                let expected =
                    if post { format!("POST /{id} HTTP/1.1 {}", body.len()) } else { format!("GET /{id} HTTP/1.1 0") };
                match request.send().await {
                    Ok(response) => {
                        let status = response.status().as_u16();
                        let text = response.text().await.unwrap_or_default();
                        if status != 200 || text != expected {
                            errors.push(format!("{id}: {status} {text:?}"));
                        }
                    }
                    Err(error) => errors.push(format!("{id}: {error}")),
                }
                if (n + 1) % ROUND == 0 {
                    barrier.wait().await;
                    let jitter = Duration::from_millis(rng.below(60));
                    tokio::time::sleep(pauses[(n / ROUND) as usize] + jitter).await;
                }
            }
            errors
        });
    }
    let errors: Vec<String> = clients.join_all().await.into_iter().flatten().collect();
    let elapsed = started.elapsed();
    let received = backend.received();
    let mut posts: HashMap<String, usize> = HashMap::new();
    for request in received.iter().filter(|r| r.request_line().starts_with("POST")) {
        *posts.entry(request.request_line()).or_default() += 1;
    }
    let repeated: Vec<_> = posts.iter().filter(|(_, n)| **n > 1).collect();
    println!(
        "{} requests in {elapsed:?} ({idle_rounds} of {} pauses past 2.1 s) over {} backend connections, {} errors",
        CLIENTS * PER_CLIENT,
        pauses.len(),
        backend.connections(),
        errors.len()
    );
    assert!(errors.is_empty(), "{} errors:\n{}\n{}", errors.len(), errors.join("\n"), failures(&stage));
    assert!(repeated.is_empty(), "POSTs sent twice: {repeated:?}");
    assert!(received.len() as u64 >= CLIENTS * PER_CLIENT, "the backend saw {} requests", received.len());
    // Every round that left the pool idle past the backend's limit costs it its connections.
    assert!(
        backend.connections() >= idle_rounds * CLIENTS as usize / 2,
        "the backend's idle closes were hardly exercised: {} connections, {idle_rounds} long pauses",
        backend.connections()
    );
}

/// The node's failure log lines, for assertion messages.
fn failures(stage: &Stage) -> String {
    stage
        .node
        .logs()
        .lines()
        .filter(|l| l.contains("WARN") || l.contains("ERROR"))
        .take(20)
        .collect::<Vec<_>>()
        .join("\n")
}

/// A seeded generator (SplitMix64): the same pauses on every run.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// In [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// 0–2.5 s: three in four near 2 s (a bell of about ±0.12 s), the rest spread evenly.
    fn pause_clustered_at_two_seconds(&mut self) -> Duration {
        let seconds = if self.below(4) < 3 {
            let bell: f64 = (0..4).map(|_| self.unit()).sum::<f64>() - 2.0;
            2.0 + 0.2 * bell
        } else {
            2.5 * self.unit()
        };
        Duration::from_secs_f64(seconds.clamp(0.0, 2.5))
    }
}
