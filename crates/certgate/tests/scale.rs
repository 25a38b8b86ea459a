//! The scale benchmark of `bench/scale` (ignored in the normal test run: it takes minutes).
//!
//! Loads N certificates, N backends and A APIs, API i with a policy that sends it to backend
//! i mod N with certificate i mod N, through the management API as a user would; then measures
//! the figures the performance issue sets: the load's write rate, node start, RSS, how soon one
//! API change is served, admin PUT latency, gateway throughput against the one-API case, and
//! RSS per idle connection. `CERTGATE_SCALE_N` overrides N (default 10 000),
//! `CERTGATE_SCALE_APIS` A (default 10 N). Needs `wrk` on the PATH.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use certgate_testkit::{ClientAuth, Identity, KeyKind, https_echo_backend, pfx_from_pairs};
use serde_json::json;
use support::{Client, Node, must_put, policy, seen_fingerprint, upload};

const CONCURRENCY: usize = 16;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run it with bench/scale"]
async fn scale() {
    let setting = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<usize>().ok());
    let n = setting("CERTGATE_SCALE_N").unwrap_or(10_000);
    let apis = setting("CERTGATE_SCALE_APIS").unwrap_or(10 * n);
    let ca = Identity::ca("Scale CA");
    let backend = https_echo_backend(&ca.server("localhost"), ClientAuth::AnyCertificate, false).await;
    let url = format!("https://localhost:{}", backend.addr.port());

    let started = Instant::now();
    let leaves: Vec<(Identity, Vec<u8>)> = tokio::task::spawn_blocking(move || {
        (0..n)
            .map(|i| {
                let leaf = ca.client(&format!("scale-client-{i}"), KeyKind::EcdsaP256);
                let pfx = pfx_from_pairs(&[(&leaf, &leaf)], "p");
                (leaf, pfx)
            })
            .collect()
    })
    .await
    .unwrap();
    println!("generated {n} client certificates in {:.1} s (test set-up, not a gateway figure)", secs(started));
    let leaves = Arc::new(leaves);

    // The one-API node the throughput is compared with.
    let small_dir = tempfile::tempdir().unwrap();
    let small = Node::start(small_dir.path());
    load(&small.client(), &leaves, Scale { identities: 1, apis: 1 }, &url).await;

    let dir = tempfile::tempdir().unwrap();
    let node = Node::start_with(dir.path(), &[], &[("CERTGATE_LOG", "info,certgate::control=debug")]);
    let api = node.client();
    let scale = Scale { identities: n, apis };
    let mut put_latencies = load(&api, &leaves, scale, &url).await;
    println!("load PUT latency: {}", summary(&mut put_latencies));
    println!("RSS after loading: {} MiB", node.rss_kib() / 1024);

    // One API change at a time: the PUT returns once the gateway serves it; the request that
    // follows must already present the new certificate.
    let http = reqwest::Client::new();
    let mut change_latencies = Vec::new();
    for round in 0..200 {
        let (target, certificate) = ((round * 7919) % apis, (round * 104_729 + 1) % n);
        let reply = api.get(&format!("/certificates/c{certificate}")).await;
        let expected = reply.body["properties"]["thumbprint"].as_str().unwrap().to_lowercase();
        let started = Instant::now();
        must_put(&api, &format!("/apis/api{target}/policies/policy"), route_policy(target % n, certificate)).await;
        let put = started.elapsed();
        let response = http.get(format!("{}/api{target}/x", node.gateway)).send().await.unwrap();
        let body = response.text().await.unwrap();
        assert_eq!(seen_fingerprint(&body), expected, "the next request after the PUT uses the new certificate");
        change_latencies.push(put);
    }
    println!("API policy change, PUT until served (200 sequential): {}", summary(&mut change_latencies));
    // Replacing a certificate (as a rotation does) recompiles the APIs that use it.
    let mut certificate_latencies = Vec::new();
    for round in 0..50 {
        let (target, material) = ((round * 7919 + 3) % n, (round * 104_729 + 11) % n);
        let started = Instant::now();
        let reply = must_put(&api, &format!("/certificates/c{target}"), upload(&leaves[material].1, "p")).await;
        certificate_latencies.push(started.elapsed());
        let expected = reply.body["properties"]["thumbprint"].as_str().unwrap().to_lowercase();
        // API `target` presents certificate `target` unless a policy change above moved it.
        must_put(&api, &format!("/apis/api{target}/policies/policy"), route_policy(target, target)).await;
        let response = http.get(format!("{}/api{target}/x", node.gateway)).send().await.unwrap();
        assert_eq!(seen_fingerprint(&response.text().await.unwrap()), expected, "the replaced certificate is used");
    }
    println!("certificate replacement, PUT until served (50 sequential): {}", summary(&mut certificate_latencies));
    let mut rebuilds: Vec<Duration> = node
        .logs()
        .lines()
        .filter(|line| line.contains("snapshot published"))
        .filter_map(|line| line.split("elapsed_us=").nth(1)?.split_whitespace().next()?.parse().ok())
        .map(Duration::from_micros)
        .collect();
    let mut last = rebuilds.split_off(rebuilds.len().saturating_sub(300));
    println!("snapshot rebuild (read changes + compile + swap) at {apis} APIs, last 300: {}", summary(&mut last));

    let mut rss_idle = node.rss_kib();
    println!("RSS before restart: {} MiB", rss_idle / 1024);
    node.terminate();
    let started = Instant::now();
    let node = Node::start(dir.path());
    let (status, _) = support::via_gateway(&http, &node, "/api1/x").await;
    println!(
        "restart with {} entities: serving after {:.0} ms (status {status})",
        scale.entities(),
        secs(started) * 1000.0
    );
    println!("RSS after restart: {} MiB", node.rss_kib() / 1024);

    let mut ratios = Vec::new();
    for _ in 0..3 {
        let one = wrk(&format!("{}/api0/x", small.gateway));
        let many = wrk(&format!("{}/api{}/x", node.gateway, apis / 2));
        println!("keepalive rps: one API {one:.0}, {apis} APIs {many:.0} (ratio {:.3})", many / one);
        ratios.push(many / one);
    }
    ratios.sort_by(f64::total_cmp);
    println!("keepalive rps ratio, {apis} APIs vs one (median of 3): {:.3}", ratios[1]);

    rss_idle = node.rss_kib().max(rss_idle.min(node.rss_kib()));
    let address = node.gateway.trim_start_matches("http://").to_owned();
    let mut idle = Vec::with_capacity(10_000);
    for _ in 0..10_000 {
        idle.push(tokio::net::TcpStream::connect(&address).await.unwrap());
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let with_idle = node.rss_kib();
    println!(
        "RSS per idle downstream connection (10 000 open): {:.1} KiB",
        (with_idle.saturating_sub(rss_idle)) as f64 / 10_000.0
    );
    drop(idle);
}

/// How many of each entity a load writes.
#[derive(Clone, Copy)]
struct Scale {
    /// Certificates `c{i}` and backends `b{i}`.
    identities: usize,
    /// APIs `api{i}`, each with its policy.
    apis: usize,
}

impl Scale {
    fn entities(self) -> usize {
        2 * self.identities + 2 * self.apis
    }
}

/// Certificates and backends first, then the APIs with their policies (a policy names its
/// backend and certificate, so they must exist), each phase by CONCURRENCY parallel clients.
/// Prints each phase's write rate; returns every PUT's latency.
async fn load(api: &Client, leaves: &Arc<Vec<(Identity, Vec<u8>)>>, scale: Scale, url: &str) -> Vec<Duration> {
    let started = Instant::now();
    let identities = {
        let (leaves, url) = (leaves.clone(), url.to_owned());
        parallel_puts(api, scale.identities, move |i| {
            let backend = json!({"properties": {"url": url, "tls": {"validateCertificateChain": false}}});
            vec![(format!("/certificates/c{i}"), upload(&leaves[i].1, "p")), (format!("/backends/b{i}"), backend)]
        })
        .await
    };
    let identities_secs = secs(started);
    let apis = parallel_puts(api, scale.apis, move |i| {
        let properties = json!({"properties": {"displayName": format!("API {i}"), "path": format!("api{i}")}});
        let policy = route_policy(i % scale.identities, i % scale.identities);
        vec![(format!("/apis/api{i}"), properties), (format!("/apis/api{i}/policies/policy"), policy)]
    })
    .await;
    let total_secs = secs(started);
    if scale.apis > 1 {
        let rate = |writes: usize, secs: f64| writes as f64 / secs;
        println!(
            "loaded {} entities in {total_secs:.1} s with {CONCURRENCY} clients: {:.0} writes/s \
             (certificates + backends {:.0}/s, APIs + policies {:.0}/s)",
            scale.entities(),
            rate(scale.entities(), total_secs),
            rate(identities.len(), identities_secs),
            rate(apis.len(), total_secs - identities_secs),
        );
    }
    identities.into_iter().chain(apis).collect()
}

/// `puts(i)` for every i < `count`, by CONCURRENCY parallel clients. Returns every PUT's latency.
async fn parallel_puts(
    api: &Client,
    count: usize,
    puts: impl Fn(usize) -> Vec<(String, serde_json::Value)> + Send + Sync + 'static,
) -> Vec<Duration> {
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let puts = Arc::new(puts);
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..CONCURRENCY {
        let (api, next, puts) = (api.clone(), next.clone(), puts.clone());
        workers.spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= count {
                    return latencies;
                }
                for (path, body) in puts(i) {
                    let started = Instant::now();
                    must_put(&api, &path, body).await;
                    latencies.push(started.elapsed());
                }
            }
        });
    }
    let mut all = Vec::new();
    while let Some(latencies) = workers.join_next().await {
        all.extend(latencies.unwrap());
    }
    all
}

/// API `api`'s policy: backend `b{backend}`, certificate `c{certificate}`.
fn route_policy(backend: usize, certificate: usize) -> serde_json::Value {
    policy(&format!(
        r#"<set-backend-service backend-id="b{backend}" /><authentication-certificate certificate-id="c{certificate}" />"#
    ))
}

/// Requests per second from `wrk -t1 -c64 -d5s`.
fn wrk(url: &str) -> f64 {
    let output = std::process::Command::new("wrk")
        .args(["-t1", "-c64", "-d5s", url])
        .output()
        .expect("wrk must be installed (apt-get install wrk)");
    let text = String::from_utf8_lossy(&output.stdout);
    let line = text.lines().find(|l| l.starts_with("Requests/sec:")).unwrap_or_else(|| panic!("wrk: {text}"));
    let non_2xx = text.lines().any(|l| l.contains("Non-2xx") || l.contains("Socket errors"));
    assert!(!non_2xx, "wrk saw errors: {text}");
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn summary(latencies: &mut [Duration]) -> String {
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize].as_secs_f64() * 1000.0;
    format!("n={} p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms", latencies.len(), at(0.5), at(0.99), at(1.0))
}

fn secs(since: Instant) -> f64 {
    since.elapsed().as_secs_f64()
}
