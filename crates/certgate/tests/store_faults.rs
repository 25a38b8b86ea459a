//! Acknowledged means durable, under storage faults, on the real binary: a full disk, immutable
//! database files, failures alternating with successes, and kill -9 under concurrent writers.
//! Faults need root (tmpfs, `chattr`); without it a test prints why it was skipped.
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use certgate_testkit::{Identity, Immutable, KeyKind, SmallDisk, or_skip, self_signed_echo_backend};
use serde_json::{Value, json};
use support::{Client, Node, Reply, expose, upload_certificate, via_gateway};

/// A backend whose description is large enough that writing it needs fresh disk pages.
fn big_backend(n: usize) -> Value {
    json!({"properties": {"url": format!("https://b{n}.contoso.test"), "description": "d".repeat(200 * 1024)}})
}

fn small_backend(n: usize) -> Value {
    json!({"properties": {"url": format!("https://b{n}.contoso.test"), "title": format!("backend {n}")}})
}

/// What an acknowledged write promised: the ETag and the body it answered with.
#[derive(Debug, PartialEq)]
struct Promise {
    etag: String,
    body: Value,
}

fn promise(reply: &Reply) -> Promise {
    Promise { etag: reply.etag(), body: reply.body.clone() }
}

/// Asserts every promise holds: the same ETag and the same body, as a fresh read.
async fn assert_kept(api: &Client, promises: &BTreeMap<String, Promise>, when: &str) {
    for (path, promised) in promises {
        let reply = api.get(path).await;
        assert_eq!(reply.status, 200, "{when}: acknowledged {path} is gone");
        assert_eq!(&promise(&reply), promised, "{when}: {path}");
    }
}

fn assert_refused_as_unavailable(reply: &Reply, cause: &[&str]) {
    assert_eq!(reply.status, 503, "{}", reply.text);
    assert_eq!(reply.error_code(), "ServiceUnavailable");
    let message = reply.body["error"]["message"].as_str().unwrap();
    assert!(
        cause.iter().any(|c| message == format!("the store is not writable: {c}")),
        "the message names the cause: {message}"
    );
    assert!(reply.headers.get("retry-after").is_some(), "Retry-After");
}

/// Waits until `/ready` answers `status`, returning its body.
async fn ready_becomes(node: &Node, status: u16) -> Value {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let reply = node.client_as(None).get("/ready").await;
        if reply.status == status {
            return reply.body;
        }
        assert!(Instant::now() < deadline, "/ready stayed {} {}", reply.status, reply.text);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Restarts the node twice — after kill -9, then after SIGTERM — checking every promise each time.
async fn assert_durable(node: Node, data: &Path, promises: &BTreeMap<String, Promise>) {
    node.kill_hard();
    let node = Node::start(data);
    assert_kept(&node.client(), promises, "after kill -9").await;
    assert_eq!(node.terminate().code(), Some(0));
    let node = Node::start(data);
    assert_kept(&node.client(), promises, "after SIGTERM").await;
}

#[tokio::test]
async fn a_full_disk_refuses_writes_with_503_and_every_acknowledged_write_survives() {
    let disk = or_skip!(SmallDisk::mount(16 * 1024));
    let data = disk.path().join("data");
    let node = Node::start(&data);
    let api = node.client();
    let http = reqwest::Client::new();
    let backend = self_signed_echo_backend().await;
    upload_certificate(&api, "client", &Identity::self_signed_client("client", KeyKind::EcdsaP256)).await;
    expose(&api, "orders", &backend.url("localhost"), json!({"validateCertificateChain": false}), "client").await;
    assert_eq!(ready_becomes(&node, 200).await["store"], "writable");

    let mut promises = BTreeMap::new();
    let filler = disk.fill();
    let mut refused_in_a_row = 0;
    for n in 0..100 {
        let path = format!("/backends/full-{n}");
        let reply = api.put(&path, &big_backend(n)).await;
        if reply.status == 503 {
            assert_refused_as_unavailable(&reply, &["disk full"]);
            refused_in_a_row += 1;
            if refused_in_a_row == 2 {
                break;
            }
        } else {
            assert_eq!(reply.status, 201, "{}", reply.text);
            promises.insert(path, promise(&reply));
            refused_in_a_row = 0;
        }
    }
    assert_eq!(refused_in_a_row, 2, "the full disk refused two writes in a row");
    // Reads and gateway traffic carry on; readiness tells the load balancer.
    assert_eq!(api.get("/backends/orders").await.status, 200);
    assert_eq!(via_gateway(&http, &node, "/orders/1").await.0, 200);
    let degraded = ready_becomes(&node, 503).await;
    assert_eq!(degraded, json!({"status": "Degraded", "store": "not writable: disk full"}));
    assert_eq!(node.client_as(None).get("/health").await.status, 200, "liveness stays up");

    filler.free();
    ready_becomes(&node, 200).await;
    for n in 0..20 {
        let path = format!("/backends/after-{n}");
        let body = if n % 2 == 0 { big_backend(n) } else { small_backend(n) };
        let reply = api.put(&path, &body).await;
        assert_eq!(reply.status, 201, "{}", reply.text);
        promises.insert(path, promise(&reply));
    }
    assert_eq!(via_gateway(&http, &node, "/orders/2").await.0, 200);
    assert_durable(node, &data, &promises).await;
}

fn database_files(data: &Path) -> [PathBuf; 2] {
    [data.join("certgate.db"), data.join("certgate.db-wal")]
}

#[tokio::test]
async fn immutable_database_files_refuse_writes_with_503_and_every_acknowledged_write_survives() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let node = Node::start(&data);
    let api = node.client();
    let mut promises = BTreeMap::new();
    let first = api.put("/backends/first", &small_backend(0)).await;
    promises.insert("/backends/first".to_owned(), promise(&first));

    let frozen = or_skip!(Immutable::set(&database_files(&data)));
    for n in 0..3 {
        let reply = api.put(&format!("/backends/frozen-{n}"), &small_backend(n)).await;
        assert_refused_as_unavailable(&reply, &["I/O error", "the database is read-only"]);
    }
    assert_eq!(api.get("/backends/first").await.status, 200, "reads carry on");
    let degraded = ready_becomes(&node, 503).await;
    assert_eq!(degraded["status"], "Degraded");
    frozen.release();
    ready_becomes(&node, 200).await;

    for n in 0..10 {
        let path = format!("/backends/after-{n}");
        let reply = api.put(&path, &small_backend(n)).await;
        assert_eq!(reply.status, 201, "{}", reply.text);
        promises.insert(path, promise(&reply));
    }
    for n in 0..3 {
        assert_eq!(api.get(&format!("/backends/frozen-{n}")).await.status, 404, "a refused write stored nothing");
    }
    assert_durable(node, &data, &promises).await;
}

/// 200 writes, each under a condition drawn from a fixed pseudo-random sequence: healthy, disk
/// full, or immutable files. After a restart exactly the acknowledged ones are present.
#[tokio::test]
async fn alternating_faults_leave_exactly_the_acknowledged_writes() {
    let disk = or_skip!(SmallDisk::mount(16 * 1024));
    let data = disk.path().join("data");
    let node = Node::start(&data);
    let api = node.client();
    let mut promises = BTreeMap::new();
    let mut refused = Vec::new();
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    for n in 0..200 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let path = format!("/backends/w-{n}");
        let started = Instant::now();
        let reply = match seed % 3 {
            0 => api.try_put(&path, &small_backend(n)).await,
            1 => {
                let _full = disk.fill();
                api.try_put(&path, &big_backend(n)).await
            }
            _ => {
                let _frozen = or_skip!(Immutable::set(&database_files(&data)));
                api.try_put(&path, &small_backend(n)).await
            }
        };
        let reply = reply.unwrap_or_else(|| panic!("{path}: the node did not answer; its log:\n{}", node.logs()));
        // A refusal is prompt: no wait for a connection that cannot be opened.
        assert!(started.elapsed() < Duration::from_secs(2), "{path} took {:?}", started.elapsed());
        match reply.status {
            200 | 201 => drop(promises.insert(path, promise(&reply))),
            503 => {
                // Reads (the token check first of all) carry on: only the write is refused.
                assert_refused_as_unavailable(&reply, &["disk full", "I/O error", "the database is read-only"]);
                refused.push(path);
            }
            other => panic!("{path}: {other} {}", reply.text),
        }
    }
    assert!(refused.len() > 50 && promises.len() > 50, "both conditions occurred: {} refused", refused.len());
    node.kill_hard();
    let node = Node::start(&data);
    let api = node.client();
    assert_kept(&api, &promises, "after kill -9").await;
    for path in &refused {
        assert_eq!(api.get(path).await.status, 404, "refused {path} is absent");
    }
}

/// Eight writers, kill -9 in the middle of their burst, three times over one data directory.
#[tokio::test]
async fn kill_9_mid_burst_keeps_every_acknowledged_write_of_eight_writers() {
    const WRITERS: usize = 8;
    const PUTS: usize = 1000;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut promises = BTreeMap::new();
    for round in 0..3 {
        let node = Node::start(&data);
        let api = node.client();
        let (acks, mut acked) = tokio::sync::mpsc::unbounded_channel::<(String, Promise)>();
        let writers: Vec<_> = (0..WRITERS)
            .map(|writer| {
                let (api, acks) = (api.clone(), acks.clone());
                tokio::spawn(async move {
                    for n in 0..PUTS {
                        let path = format!("/backends/r{round}-w{writer}-{n}");
                        // Once the node is killed, requests fail: the burst ends there.
                        let Some(reply) = api.try_put(&path, &small_backend(n)).await else { return };
                        assert_eq!(reply.status, 201, "{path}: {}", reply.text);
                        acks.send((path, promise(&reply))).unwrap();
                    }
                })
            })
            .collect();
        drop(acks);
        // Kill when about half of the burst is acknowledged.
        let mut seen = 0;
        while seen < WRITERS * PUTS / 2 {
            let (path, promised) = acked.recv().await.expect("writers finished before the kill");
            promises.insert(path, promised);
            seen += 1;
        }
        node.kill_hard();
        for writer in writers {
            writer.await.unwrap();
        }
        while let Ok((path, promised)) = acked.try_recv() {
            promises.insert(path, promised);
        }
        let node = Node::start(&data);
        let api = node.client();
        let listed = api.get("/backends?$top=1").await;
        let count = listed.body["count"].as_u64().unwrap() as usize;
        assert!(count >= promises.len(), "round {round}: {count} stored < {} acknowledged", promises.len());
        assert_kept(&api, &promises, &format!("round {round}, after kill -9")).await;
    }
}
