//! Three real nodes on one real PostgreSQL behave as one gateway: a change through one node is
//! served by the others within a second, an ETag race has one winner, the refresher moves when
//! its node is killed, and a PostgreSQL restart under load fails no gateway request.
#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use certgate_testkit::{HttpsBackend, Identity, KeyKind, OpenBao, PostgresServer, self_signed_echo_backend};
use serde_json::{Value, json};
use support::{Client, Node, expose, pfx_secret, policy, seen_fingerprint, upload_certificate, via_gateway};

const TOKEN: &str = "cluster-test-admin-token";
const MASTER_KEY: &str = "8f6c1a1d2e3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5";

struct Cluster {
    nodes: Vec<Option<Node>>,
    _dirs: Vec<tempfile::TempDir>,
}

impl Cluster {
    fn start(url: &str, count: usize, args: &[&str], env: &[(&str, &str)]) -> Cluster {
        let dirs: Vec<_> = (0..count).map(|_| tempfile::tempdir().unwrap()).collect();
        let mut env = env.to_vec();
        env.extend([("CERTGATE_DATABASE_URL", url), ("CERTGATE_MASTER_KEY", MASTER_KEY)]);
        env.push(("CERTGATE_ADMIN_TOKEN", TOKEN));
        let nodes = dirs.iter().map(|dir| Some(Node::start_with(dir.path(), args, &env))).collect();
        Cluster { nodes, _dirs: dirs }
    }

    fn node(&self, index: usize) -> &Node {
        self.nodes[index].as_ref().unwrap()
    }

    fn api(&self, index: usize) -> Client {
        self.node(index).client_as(Some(TOKEN))
    }

    /// Exposes `/echo` through node A: an mTLS echo backend, sent an uploaded client
    /// certificate; returns once every node serves it.
    async fn serve_echo(&self, http: &reqwest::Client) -> HttpsBackend {
        let (a, backend) = (self.api(0), self_signed_echo_backend().await);
        upload_certificate(&a, "client", &Identity::self_signed_client("cluster-client", KeyKind::EcdsaP256)).await;
        expose(&a, "echo", &backend.url("localhost"), json!({"validateCertificateChain": false}), "client").await;
        for index in 0..self.nodes.len() {
            until_served(http, self.node(index), "/echo/x", Duration::from_secs(5), |s, _| s == 200).await;
        }
        backend
    }
}

/// Polls `node`'s gateway at `path` until `done` accepts the answer; returns how long it took.
async fn until_served(
    http: &reqwest::Client,
    node: &Node,
    path: &str,
    limit: Duration,
    done: impl Fn(u16, &str) -> bool,
) -> Duration {
    let started = Instant::now();
    loop {
        let (status, body) = via_gateway(http, node, path).await;
        if done(status, &body) {
            return started.elapsed();
        }
        assert!(started.elapsed() < limit, "{path} on {} never changed: {status} {body}", node.gateway);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn header_seen(body: &str, name: &str) -> Option<String> {
    let json: Value = serde_json::from_str(body).ok()?;
    json["headers"][name].as_str().map(str::to_owned)
}

fn percentile(sorted: &[Duration], p: usize) -> Duration {
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_serve_each_change_within_a_second_and_one_if_match_wins() {
    let url = certgate_testkit::test_database().await;
    let cluster = Cluster::start(&url, 3, &[], &[]);
    let (a, http) = (cluster.api(0), reqwest::Client::new());
    let backend = cluster.serve_echo(&http).await;

    // 100 changes through node A, each timed from A's answer until B and C serve it.
    let mut lags = Vec::new();
    for change in 0..100 {
        let inbound = format!(
            r#"<set-backend-service backend-id="echo" /><authentication-certificate certificate-id="client" /><set-header name="x-change" exists-action="override"><value>{change}</value></set-header>"#
        );
        let written = a.put("/apis/echo/policies/policy", &policy(&inbound)).await;
        assert_eq!(written.status, 200, "{}", written.text);
        let value = change.to_string();
        let (b, c) = tokio::join!(
            until_served(&http, cluster.node(1), "/echo/x", Duration::from_secs(5), |_, body| {
                header_seen(body, "x-change").as_deref() == Some(value.as_str())
            }),
            until_served(&http, cluster.node(2), "/echo/x", Duration::from_secs(5), |_, body| {
                header_seen(body, "x-change").as_deref() == Some(value.as_str())
            }),
        );
        lags.extend([b, c]);
    }
    lags.sort();
    let (p50, p99) = (percentile(&lags, 50), percentile(&lags, 99));
    eprintln!("propagation to the other nodes over {} observations: p50 {p50:?}, p99 {p99:?}", lags.len());
    assert!(p99 <= Duration::from_secs(1), "p99 {p99:?}");

    // The same If-Match through two nodes: one 200, one 412.
    let b = cluster.api(1);
    for round in 0..10 {
        let etag = a.get("/backends/echo").await.etag();
        let body = |by: &str| {
            json!({"properties": {"url": backend.url("localhost"), "description": by,
            "tls": {"validateCertificateChain": false}}})
        };
        let (by_a, by_b) = (body("a").to_string().into_bytes(), body("b").to_string().into_bytes());
        let if_match = [("if-match", etag.as_str())];
        let (first, second) = tokio::join!(
            a.send("PUT", "/backends/echo", Some(by_a), &if_match),
            b.send("PUT", "/backends/echo", Some(by_b), &if_match),
        );
        let mut statuses = [first.status, second.status];
        statuses.sort();
        assert_eq!(statuses, [200, 412], "round {round}: {} / {}", first.text, second.text);
    }
    // One path, two APIs created at once through two nodes: one is refused.
    for round in 0..10 {
        let api = |id: &str| json!({"properties": {"displayName": id, "path": format!("shared{round}")}});
        let (left, right) = (api("left"), api("right"));
        let (left_path, right_path) = (format!("/apis/left{round}"), format!("/apis/right{round}"));
        let (first, second) = tokio::join!(a.put(&left_path, &left), b.put(&right_path, &right));
        let mut statuses = [first.status, second.status];
        statuses.sort();
        assert_eq!(statuses, [201, 400], "round {round}: {} / {}", first.text, second.text);
    }

    // Every node lists all three, none behind.
    let nodes = until_nodes_listed(&cluster.api(2), 3).await;
    for node in nodes.as_array().unwrap() {
        assert_eq!(node["properties"]["silent"], false, "{node}");
    }
}

/// Waits until `/nodes` lists `count` nodes none of which is behind.
async fn until_nodes_listed(api: &Client, count: usize) -> Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let listed = api.get("/nodes").await;
        assert_eq!(listed.status, 200, "{}", listed.text);
        let value = listed.body["value"].clone();
        let caught_up = value.as_array().unwrap().iter().all(|n| n["properties"]["revisionsBehind"] == 0);
        if value.as_array().unwrap().len() == count && caught_up {
            return value;
        }
        assert!(Instant::now() < deadline, "{}", listed.text);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_starting_together_make_one_first_admin_token() {
    let url = certgate_testkit::test_database().await;
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let env = [("CERTGATE_DATABASE_URL", url.as_str()), ("CERTGATE_MASTER_KEY", MASTER_KEY)];
    let nodes: Vec<Node> = std::thread::scope(|scope| {
        let starts: Vec<_> = dirs.iter().map(|dir| scope.spawn(|| Node::start_with(dir.path(), &[], &env))).collect();
        starts.into_iter().map(|start| start.join().unwrap()).collect()
    });
    let written: Vec<&Path> =
        dirs.iter().map(tempfile::TempDir::path).filter(|dir| dir.join("admin-token").exists()).collect();
    assert_eq!(written.len(), 1, "exactly one node made the first token");
    let token = std::fs::read_to_string(written[0].join("admin-token")).unwrap();
    for node in &nodes {
        assert_eq!(node.client_as(Some(token.trim())).get("/certificates").await.status, 200);
    }

    // A node given another master key refuses to start, saying why.
    let other = tempfile::tempdir().unwrap();
    let wrong = [("CERTGATE_DATABASE_URL", url.as_str()), ("CERTGATE_MASTER_KEY", &"11".repeat(32))];
    let (status, logs) = Node::wait_exit(other.path(), &[], &wrong);
    assert!(!status.success());
    assert!(logs.contains("master key does not match"), "{logs}");
    // And one given no key at all does not make one up.
    let (status, logs) = Node::wait_exit(other.path(), &[], &[("CERTGATE_DATABASE_URL", url.as_str())]);
    assert!(!status.success());
    assert!(logs.contains("needs the cluster's master key"), "{logs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_refresher_moves_to_another_node_when_its_node_is_killed() {
    const INTERVAL: Duration = Duration::from_secs(3);
    let bao = OpenBao::start().await;
    let token = bao.token_with_policy("gw-read", r#"path "secret/data/gw/*" { capabilities = ["read"] }"#).await;
    let (v1, _) = pfx_secret("rotating-v1");
    bao.write_secret("gw/client", v1).await;
    let url = certgate_testkit::test_database().await;
    let mut cluster =
        Cluster::start(&url, 3, &["--vault-refresh-interval", "3s"], &[("CERTGATE_VAULT_TOKEN", token.as_str())]);
    let (a, http) = (cluster.api(0), reqwest::Client::new());
    let reference = json!({"properties": {"keyVault": {"secretIdentifier": bao.identifier("gw/client")}}});
    assert_eq!(a.put("/certificates/client", &reference).await.status, 201);
    let backend = self_signed_echo_backend().await;
    expose(&a, "echo", &backend.url("localhost"), json!({"validateCertificateChain": false}), "client").await;

    // One node refreshes; a rotation reaches all three nodes' traffic.
    let leaders = |cluster: &Cluster| -> Vec<usize> {
        (0..cluster.nodes.len())
            .filter(|&i| {
                cluster.nodes[i].as_ref().is_some_and(|n| n.logs().contains("this node does the cluster's duty"))
            })
            .collect()
    };
    let (v2, fp2) = pfx_secret("rotating-v2");
    bao.write_secret("gw/client", v2).await;
    for index in 0..3 {
        let fp2 = fp2.clone();
        until_served(&http, cluster.node(index), "/echo/x", 3 * INTERVAL, move |_, body| seen_fingerprint(body) == fp2)
            .await;
    }
    let leader = leaders(&cluster);
    assert_eq!(leader.len(), 1, "one refresher in the cluster: {leader:?}");
    for index in 0..3 {
        let metrics = cluster.api(index).get("/metrics").await.text;
        let active = if index == leader[0] { 1 } else { 0 };
        assert!(metrics.contains(&format!("certgate_vault_refresher_active {active}\n")), "node {index}: {metrics}");
    }

    // refreshSecret works through a node that is not the refresher, for every node's traffic.
    let standby = (0..3).find(|i| *i != leader[0]).unwrap();
    let (now, fp_now) = pfx_secret("refreshed-by-hand");
    bao.write_secret("gw/client", now).await;
    let refreshed = cluster.api(standby).send("POST", "/certificates/client/refreshSecret", None, &[]).await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.text);
    assert_eq!(refreshed.body["properties"]["thumbprint"].as_str().unwrap().to_lowercase(), fp_now);
    for index in 0..3 {
        let fp_now = fp_now.clone();
        until_served(&http, cluster.node(index), "/echo/x", Duration::from_secs(2), move |_, body| {
            seen_fingerprint(body) == fp_now
        })
        .await;
    }

    // Kill -9 the refresher's node; rotate; another node picks the rotation up.
    cluster.nodes[leader[0]].take().unwrap().kill_hard();
    let killed = Instant::now();
    let (v3, fp3) = pfx_secret("rotating-v3");
    bao.write_secret("gw/client", v3).await;
    let survivors: Vec<usize> = (0..3).filter(|&i| i != leader[0]).collect();
    for &index in &survivors {
        let fp3 = fp3.clone();
        until_served(&http, cluster.node(index), "/echo/x", 4 * INTERVAL, move |_, body| seen_fingerprint(body) == fp3)
            .await;
    }
    let taken_over = killed.elapsed();
    eprintln!("after kill -9 of the refresher's node, the rotation was served by the others in {taken_over:?}");
    assert!(taken_over <= 2 * INTERVAL + Duration::from_secs(1), "{taken_over:?}");
    let successor = leaders(&cluster);
    assert_eq!(successor.len(), 1, "exactly one survivor took the duty over");
    let metrics = cluster.api(successor[0]).get("/metrics").await.text;
    assert!(metrics.contains("certgate_vault_refresher_active 1\n"), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_restart_under_load_fails_no_gateway_request() {
    let server = PostgresServer::start();
    let cluster = Cluster::start(&server.url(), 3, &[], &[]);
    let (a, http) = (cluster.api(0), reqwest::Client::new());
    let _backend = cluster.serve_echo(&http).await; // serves until the test ends

    // Load on every node's gateway for the whole test.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load: Vec<_> = (0..3)
        .map(|index| {
            let (gateway, stop, http) = (cluster.node(index).gateway.clone(), stop.clone(), http.clone());
            tokio::spawn(async move {
                let (mut served, mut failed) = (0u32, Vec::new());
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    match http.get(format!("{gateway}/echo/x")).send().await {
                        Ok(response) if response.status() == 200 => served += 1,
                        Ok(response) => failed.push(response.status().to_string()),
                        Err(error) => failed.push(error.to_string()),
                    }
                }
                (served, failed)
            })
        })
        .collect();

    tokio::task::block_in_place(|| server.stop());
    let down = Instant::now();
    let refused = a.put("/backends/later", &json!({"properties": {"url": "https://later.example"}})).await;
    let refused_in = down.elapsed();
    assert_eq!(refused.status, 503, "{}", refused.text);
    let ready = reqwest::get(format!("{}/ready", cluster.node(1).admin)).await.unwrap();
    assert_eq!(ready.status(), 503);
    tokio::time::sleep(Duration::from_secs(2)).await;
    tokio::task::block_in_place(|| server.resume());
    let outage = down.elapsed();

    // Writes work again without a restart, and every node converges.
    let deadline = Instant::now() + Duration::from_secs(30);
    let resumed = loop {
        let attempt = a.put("/backends/later", &json!({"properties": {"url": "https://later.example"}})).await;
        if attempt.status == 201 {
            break down.elapsed();
        }
        assert!(Instant::now() < deadline, "writes never resumed: {}", attempt.text);
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let inbound = r#"<set-backend-service backend-id="echo" /><authentication-certificate certificate-id="client" /><set-header name="x-change" exists-action="override"><value>after-restart</value></set-header>"#;
    assert_eq!(a.put("/apis/echo/policies/policy", &policy(inbound)).await.status, 200);
    for index in 0..3 {
        until_served(&http, cluster.node(index), "/echo/x", Duration::from_secs(10), |_, body| {
            header_seen(body, "x-change").as_deref() == Some("after-restart")
        })
        .await;
    }
    let converged = down.elapsed();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut total = 0;
    for task in load {
        let (served, failed) = task.await.unwrap();
        assert!(failed.is_empty(), "gateway requests failed during the outage: {failed:?}");
        total += served;
    }
    eprintln!(
        "PostgreSQL down for {outage:?}: write refused (503) after {refused_in:?}, writes resumed {resumed:?} \
         and all nodes converged {converged:?} after the stop; {total} gateway requests, none failed"
    );
    assert!(refused_in < Duration::from_secs(10), "{refused_in:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_to_postgres_trusts_the_system_store_and_refuses_an_unknown_server() {
    let server = PostgresServer::start();
    let dir = tempfile::tempdir().unwrap();
    let url = server.url_trusting_the_system("db-pass-never-logged");
    let env = [("CERTGATE_DATABASE_URL", url.as_str()), ("CERTGATE_MASTER_KEY", MASTER_KEY)];
    // The test CA is in no trust store: the node refuses the server and says why.
    let (status, logs) = Node::wait_exit(dir.path(), &[], &env);
    assert!(!status.success());
    assert!(logs.contains("cannot open the store"), "{logs}");
    assert!(logs.contains("UnknownIssuer") || logs.contains("unknown issuer"), "{logs}");
    assert!(!logs.contains("db-pass-never-logged"), "{logs}");
    // The system's trust store (here pointed at the test CA, as rustls-native-certs reads
    // SSL_CERT_FILE) is trusted; the compiled-in webpki roots alone would still refuse.
    let ca = server.ca_file().display().to_string();
    let node = Node::start_with(dir.path(), &[], &[env[0], env[1], ("SSL_CERT_FILE", ca.as_str())]);
    node.wait_for_log("shared PostgreSQL store open");
    assert!(!node.logs().contains("db-pass-never-logged"), "{}", node.logs());
    // Nor shown by --help, which prints the environment's values unless told not to.
    let help = std::process::Command::new(env!("CARGO_BIN_EXE_certgate"))
        .args(["server", "--help"])
        .env("CERTGATE_DATABASE_URL", &url)
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("--database-url") && !help.contains("db-pass-never-logged"), "{help}");
}
