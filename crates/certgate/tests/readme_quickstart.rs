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

/// The seed's flow from the README, after the quickstart, against `openssl s_server` requiring a
/// client certificate: the backend's status page shows the certificate the gateway presented.
#[test]
fn the_readme_seed_flow_presents_the_certificate_to_a_real_backend() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(&dir.path().join("certgate-data"));
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let run = |script: &str| {
        std::process::Command::new("bash")
            .args(["-euo", "pipefail", "-c", script])
            .current_dir(dir.path())
            .output()
            .unwrap()
    };
    let made = run("openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost \
        -addext subjectAltName=DNS:localhost -keyout server.key -out server.pem 2>/dev/null");
    assert!(made.status.success());
    let mut backend = std::process::Command::new("openssl")
        .args([
            "s_server",
            "-accept",
            &port.to_string(),
            "-cert",
            "server.pem",
            "-key",
            "server.key",
            "-Verify",
            "1",
            "-www",
        ])
        .current_dir(dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(std::time::Instant::now() < deadline, "openssl s_server did not start");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let script = format!("{}\n{}", block("quickstart"), block("seed-flow"))
        .replace("http://127.0.0.1:8081", &node.admin)
        .replace("http://127.0.0.1:8080", &node.gateway)
        .replace("localhost:8443", &format!("localhost:{port}"));
    let output = run(&script);
    let _ = backend.kill();
    let _ = backend.wait();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "seed flow failed: {stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("Client certificate"), "the backend saw a client certificate: {stdout}");
    assert!(stdout.contains("CN=client.contoso.com"), "and it was c1: {stdout}");
}
