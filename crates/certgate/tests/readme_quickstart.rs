//! Runs the README's quickstart block, as written, against a real node: the documented commands
//! must work and print the thumbprint that openssl computes.
#![allow(clippy::unwrap_used)]

mod support;

use support::Node;

#[test]
fn the_readme_quickstart_works_as_written() {
    let readme = include_str!("../../../README.md");
    let block = readme.split("<!-- quickstart -->").nth(1).unwrap().split("<!-- /quickstart -->").next().unwrap();
    let script = block.trim().trim_start_matches("```sh").trim_end_matches("```");

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
