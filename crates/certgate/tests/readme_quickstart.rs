//! Runs the README's quickstart block, as written, against a real node: the documented commands
//! must work and print the thumbprint that openssl computes.
#![allow(clippy::unwrap_used)]

mod support;

use support::Node;

/// The shell block between `<!-- name -->` and `<!-- /name -->`.
fn block(name: &str) -> String {
    let readme = include_str!("../../../README.md");
    let block =
        readme.split(&format!("<!-- {name} -->")).nth(1).unwrap().split(&format!("<!-- /{name} -->")).next().unwrap();
    block.trim().trim_start_matches("```sh").trim_end_matches("```").to_owned()
}

#[test]
fn the_readme_quickstart_works_as_written() {
    let script = block("quickstart");

    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(&dir.path().join("certgate-data"));
    // The README talks to the default admin address; this node listens on a free port.
    let script = script.replace("http://127.0.0.1:8081", &node.admin);
    let output = std::process::Command::new("bash")
        .args(["-euo", "pipefail", "-c", &script])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "quickstart failed: {stdout}\n{}", String::from_utf8_lossy(&output.stderr));

    let openssl_line = stdout
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("sha1 fingerprint="))
        .unwrap_or_else(|| panic!("{stdout}"));
    let thumbprint = openssl_line.split_once('=').unwrap().1.replace(':', "");
    let created: serde_json::Value = serde_json::from_str(stdout.lines().next().unwrap()).unwrap();
    assert_eq!(created["properties"]["thumbprint"], thumbprint.as_str());
    assert_eq!(created["properties"]["subject"], "CN=client.contoso.com, O=Contoso");
    assert!(stdout.contains("\"count\":1"), "the list shows the certificate: {stdout}");
}

/// `openssl s_server` on a free port with a self-signed `localhost` certificate, requiring a
/// client certificate and echoing the one it saw (`-www`), run in `dir`.
struct OpensslBackend {
    child: std::process::Child,
    port: u16,
}

impl OpensslBackend {
    fn start(dir: &std::path::Path) -> OpensslBackend {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let made = run(
            dir,
            "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost \
            -addext subjectAltName=DNS:localhost -keyout server.key -out server.pem 2>/dev/null",
            &[],
        );
        assert!(made.status.success());
        let port_text = port.to_string();
        let args =
            ["s_server", "-accept", &port_text, "-cert", "server.pem", "-key", "server.key", "-Verify", "1", "-www"];
        let child = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(std::time::Instant::now() < deadline, "openssl s_server did not start");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        OpensslBackend { child, port }
    }
}

impl Drop for OpensslBackend {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn run(dir: &std::path::Path, script: &str, env: &[(&str, &str)]) -> std::process::Output {
    std::process::Command::new("bash")
        .args(["-euo", "pipefail", "-c", script])
        .current_dir(dir)
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

/// `block`s joined, talking to `node` and to `backend` instead of the documented addresses.
fn script_for(blocks: &[&str], node: &Node, backend: &OpensslBackend) -> String {
    blocks
        .iter()
        .map(|name| block(name))
        .collect::<Vec<_>>()
        .join("\n")
        .replace("http://127.0.0.1:8081", &node.admin)
        .replace("http://127.0.0.1:8080", &node.gateway)
        .replace("localhost:8443", &format!("localhost:{}", backend.port))
}

/// The seed's flow from the README, after the quickstart, against `openssl s_server` requiring a
/// client certificate: the backend's status page shows the certificate the gateway presented.
#[test]
fn the_readme_seed_flow_presents_the_certificate_to_a_real_backend() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(&dir.path().join("certgate-data"));
    let backend = OpensslBackend::start(dir.path());
    let output = run(dir.path(), &script_for(&["quickstart", "seed-flow"], &node, &backend), &[]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "seed flow failed: {stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("Client certificate"), "the backend saw a client certificate: {stdout}");
    assert!(stdout.contains("CN=client.contoso.com"), "and it was c1: {stdout}");
}

/// The README's command-line flow, as written, with the binary on `PATH`: the backend sees the
/// certificate, the delete is refused while the policy names it and succeeds after.
#[test]
fn the_readme_cli_flow_works_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(&dir.path().join("certgate-data"));
    let backend = OpensslBackend::start(dir.path());
    let binary_dir = std::path::Path::new(env!("CARGO_BIN_EXE_certgate")).parent().unwrap().display().to_string();
    let path = format!("{binary_dir}:{}", std::env::var("PATH").unwrap_or_default());
    let config = dir.path().join("config").display().to_string();
    let env = [("PATH", path.as_str()), ("CERTGATE_CONFIG_DIR", config.as_str())];
    let output = run(dir.path(), &script_for(&["cli-flow"], &node, &backend), &env);
    let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "cli flow failed: {stdout}\n{stderr}");
    assert!(stdout.contains("CN=cli.contoso.com"), "the backend saw cli-cert: {stdout}");
    assert!(stdout.contains("refused while the API's policy uses it"), "{stdout}");
    assert!(stderr.contains("/apis/payments/policies/policy"), "the refusal names the referrer: {stderr}");
    assert!(stdout.trim_end().ends_with("deleted /certificates/cli-cert"), "{stdout}");
}
