//! Runs the real `certgate` binary on port 0 with a temporary data directory, and talks to it
//! over HTTP. Logs are captured so tests can assert on them (and that secrets never appear).
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::Value;

pub struct Node {
    child: Child,
    pub admin: String,
    pub gateway: String,
    pub data_dir: PathBuf,
    logs: Arc<Mutex<String>>,
}

impl Node {
    /// Starts a node on `data_dir` with extra arguments and environment variables.
    pub fn start_with(data_dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Node {
        Self::start_under(&[], data_dir, args, env)
    }

    /// As [`Node::start_with`], run through `wrapper` (`["prlimit", "--nofile=1024:4096", "--"]`,
    /// say), which must exec the binary so the node keeps the wrapper's process id.
    pub fn start_under(wrapper: &[&str], data_dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Node {
        let mut child = server_command(wrapper, data_dir, args, env)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the certgate binary starts");
        let logs = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        let sink = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push_str(&line);
                sink.lock().unwrap().push('\n');
                let _ = tx.send(line);
            }
        });
        let (mut admin, mut gateway) = (None, None);
        let deadline = Instant::now() + Duration::from_secs(30);
        while admin.is_none() || gateway.is_none() {
            let remaining = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(remaining) {
                Ok(line) => {
                    admin = admin.or_else(|| after(&line, "admin API listening on "));
                    gateway = gateway.or_else(|| after(&line, "gateway HTTP listening on "));
                }
                Err(_) => {
                    let _ = child.kill();
                    panic!("node did not report its addresses; logs:\n{}", logs.lock().unwrap());
                }
            }
        }
        Node { child, admin: admin.unwrap(), gateway: gateway.unwrap(), data_dir: data_dir.to_owned(), logs }
    }

    pub fn start(data_dir: &Path) -> Node {
        Self::start_with(data_dir, &[], &[])
    }

    /// The contributor token generated on first start.
    pub fn admin_token(&self) -> String {
        std::fs::read_to_string(self.data_dir.join("admin-token")).unwrap().trim().to_owned()
    }

    /// A client using the generated admin token.
    pub fn client(&self) -> Client {
        self.client_as(Some(&self.admin_token()))
    }

    pub fn client_as(&self, token: Option<&str>) -> Client {
        Client { base: self.admin.clone(), token: token.map(str::to_owned), http: reqwest::Client::new() }
    }

    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().clone()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident memory of the node process, from /proc.
    pub fn rss_kib(&self) -> usize {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    /// The first log line containing `needle`, waiting briefly for the reader thread.
    pub fn wait_for_log(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(line) = self.logs().lines().find(|l| l.contains(needle)) {
                return line.to_owned();
            }
            assert!(Instant::now() < deadline, "no log line with {needle}:\n{}", self.logs());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The port of the management API's HTTPS listener, from its log line.
    pub fn admin_https_port(&self) -> u16 {
        let line = self.wait_for_log("admin API listening on https://");
        let addr = after(&line, "admin API listening on https://").unwrap();
        addr.rsplit(':').next().unwrap().parse().unwrap()
    }

    /// SIGKILL: no shutdown code runs.
    pub fn kill_hard(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM, then waits for a clean exit.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "node did not stop after SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for the process to exit by itself (start-up failures) and returns its logs.
    pub fn wait_exit(data_dir: &Path, args: &[&str], env: &[(&str, &str)]) -> (std::process::ExitStatus, String) {
        let output = server_command(&[], data_dir, args, env).output().unwrap();
        (output.status, String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `certgate server` on `data_dir` with both listeners on free ports and a clean environment.
fn server_command(wrapper: &[&str], data_dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Command {
    let binary = env!("CARGO_BIN_EXE_certgate");
    let mut command = match wrapper.split_first() {
        None => Command::new(binary),
        Some((program, wrapper_args)) => {
            let mut command = Command::new(program);
            command.args(wrapper_args).arg(binary);
            command
        }
    };
    command
        .arg("server")
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--admin-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"])
        .args(args)
        .env_remove("CERTGATE_ADMIN_TOKEN")
        .env_remove("CERTGATE_MASTER_KEY")
        .env("CERTGATE_LOG", "info")
        .envs(env.iter().copied());
    command
}

/// The word after `marker` in a log line, text or JSON (where a `"` ends the message).
fn after(line: &str, marker: &str) -> Option<String> {
    let (_, rest) = line.split_once(marker)?;
    Some(rest.split(|c: char| c.is_whitespace() || c == '"').next().unwrap_or_default().to_owned())
}

/// A management API client with an optional bearer token.
#[derive(Clone)]
pub struct Client {
    pub base: String,
    pub token: Option<String>,
    http: reqwest::Client,
}

/// Status, headers and parsed JSON (Null for empty bodies).
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Reply {
    pub fn etag(&self) -> String {
        self.headers.get("etag").expect("an ETag").to_str().unwrap().to_owned()
    }
    pub fn error_code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or_default()
    }
    pub fn error_target(&self) -> &str {
        self.body["error"]["details"][0]["target"].as_str().unwrap_or_default()
    }
    pub fn error_message(&self) -> &str {
        self.body["error"]["details"][0]["message"].as_str().unwrap_or_default()
    }
}

impl Client {
    pub fn with_token(&self, token: Option<&str>) -> Client {
        Client { token: token.map(str::to_owned), ..self.clone() }
    }

    pub async fn send(&self, method: &str, path: &str, body: Option<Vec<u8>>, headers: &[(&str, &str)]) -> Reply {
        self.try_send(method, path, body, headers).await.expect("the node answers")
    }

    /// As [`Client::send`], `None` when the node does not answer (killed, say).
    pub async fn try_send(
        &self,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
        headers: &[(&str, &str)],
    ) -> Option<Reply> {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = self.http.request(method, format!("{}{}", self.base, path));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.header("content-type", "application/json").body(body);
        }
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        let response = request.send().await.ok()?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.ok()?;
        let body = if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::Null) };
        Some(Reply { status, headers, body, text })
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send("GET", path, None, &[]).await
    }
    pub async fn put(&self, path: &str, body: &Value) -> Reply {
        self.send("PUT", path, Some(body.to_string().into_bytes()), &[]).await
    }
    pub async fn try_put(&self, path: &str, body: &Value) -> Option<Reply> {
        self.try_send("PUT", path, Some(body.to_string().into_bytes()), &[]).await
    }
    pub async fn delete(&self, path: &str) -> Reply {
        self.send("DELETE", path, None, &[]).await
    }
}

pub fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A fresh client certificate as a KV payload (`pfx` + `password`), and its SHA-1 (lower-case
/// hex, as the echo backends report it).
pub fn pfx_secret(name: &str) -> (Value, String) {
    use certgate_testkit::{Identity, KeyKind, PfxFlavor, pfx, sha1_hex};
    let leaf = Identity::self_signed_client(name, KeyKind::EcdsaP256);
    let file = pfx(&leaf, &[], "vault-pass", PfxFlavor::Modern);
    (serde_json::json!({"pfx": b64(&file), "password": "vault-pass"}), sha1_hex(&leaf.cert_der))
}

/// `{"properties":{"data":..., "password":...}}` for a PFX upload.
pub fn upload(pfx: &[u8], password: &str) -> Value {
    serde_json::json!({"properties": {"data": b64(pfx), "password": password}})
}

/// Uploads `leaf` as certificate `id` and returns its lower-case SHA-1 (as backends report it).
pub async fn upload_certificate(api: &Client, id: &str, leaf: &certgate_testkit::Identity) -> String {
    let file = certgate_testkit::pfx(leaf, &[], "p", certgate_testkit::PfxFlavor::Modern);
    let reply = api.put(&format!("/certificates/{id}"), &upload(&file, "p")).await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    reply.body["properties"]["thumbprint"].as_str().unwrap().to_lowercase()
}

/// What a TLS backend requiring a client certificate needs from the node: a CA it trusts
/// (uploaded as `Root` CA certificate `ca_id`) and a client certificate `client_id` in its store.
/// Returns the backend's identity, issued by that CA for `localhost` (and 127.0.0.1).
pub async fn trusted_backend_identity(api: &Client, ca_id: &str, client_id: &str) -> certgate_testkit::Identity {
    let ca = certgate_testkit::Identity::ca(&format!("{ca_id} CA"));
    let ca_certificate = serde_json::json!({"properties": {"data": ca.cert_pem, "storeName": "Root"}});
    must_put(api, &format!("/caCertificates/{ca_id}"), ca_certificate).await;
    let client = certgate_testkit::Identity::self_signed_client(client_id, certgate_testkit::KeyKind::EcdsaP256);
    upload_certificate(api, client_id, &client).await;
    ca.server("localhost")
}

/// `PUT`s and asserts success (200 or 201).
pub async fn must_put(api: &Client, path: &str, body: Value) -> Reply {
    let reply = api.put(path, &body).await;
    assert!(matches!(reply.status, 200 | 201), "PUT {path}: {} {}", reply.status, reply.text);
    reply
}

/// A policy document with `inbound` statements after `<base />`.
pub fn policy(inbound: &str) -> Value {
    serde_json::json!({"properties": {"format": "rawxml", "value": format!("<policies><inbound><base />{inbound}</inbound><backend><base /></backend><outbound><base /></outbound><on-error><base /></on-error></policies>")}})
}

/// GET through the gateway; returns status and body text.
pub async fn via_gateway(http: &reqwest::Client, node: &Node, path: &str) -> (u16, String) {
    let response = http.get(format!("{}{}", node.gateway, path)).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

/// The fingerprint the echo backend reports in its JSON answer.
pub fn seen_fingerprint(body: &str) -> String {
    let json: Value = serde_json::from_str(body).unwrap_or_else(|_| panic!("not JSON: {body}"));
    json["fingerprint"].as_str().unwrap_or_default().to_owned()
}

/// The common route: backend `{name}` at `url` with `tls` switches, API `{name}` at path `/{name}`,
/// and an API policy that sends there presenting certificate `certificate`.
pub async fn expose(api: &Client, name: &str, url: &str, tls: Value, certificate: &str) {
    must_put(api, &format!("/backends/{name}"), serde_json::json!({"properties": {"url": url, "tls": tls}})).await;
    must_put(api, &format!("/apis/{name}"), serde_json::json!({"properties": {"displayName": name, "path": name}}))
        .await;
    must_put(api, &format!("/apis/{name}/policies/policy"), policy(&format!(
        r#"<set-backend-service backend-id="{name}" /><authentication-certificate certificate-id="{certificate}" />"#
    )))
    .await;
}

/// What most gateway tests start from: a node on a temporary data directory, a client for its
/// management API, and an HTTP client for its gateway.
pub struct Stage {
    pub node: Node,
    pub api: Client,
    pub http: reqwest::Client,
    /// Kept so the data directory outlives the node.
    pub dir: tempfile::TempDir,
}

impl Stage {
    pub fn start() -> Stage {
        Self::start_with(&[])
    }

    /// A stage whose node gets these extra server arguments.
    pub fn start_with(args: &[&str]) -> Stage {
        let dir = tempfile::tempdir().unwrap();
        let node = Node::start_with(dir.path(), args, &[]);
        let api = node.client();
        Stage { node, api, http: reqwest::Client::new(), dir }
    }
}
