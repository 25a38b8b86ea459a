//! The management API over HTTPS, with a certificate entity of its own: refused until the
//! certificate exists, then served with it (TLS 1.2 and up only), replaced certificates from the
//! next connection on, ARM links naming https; or with PEM files read at start; and the plain
//! listener can be turned off.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use certgate_testkit::{Identity, PfxFlavor, pfx};
use support::{Node, upload};

/// The HTTPS address the node logged for its management API.
fn https_url(node: &Node) -> String {
    format!("https://localhost:{}", node.admin_https_port())
}

fn client_trusting(ca: &Identity) -> reqwest::Client {
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca.cert_pem.as_bytes()).unwrap())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// Only TLS 1.2 and 1.3 are offered (SECLEVEL=0 so that openssl itself is willing to try 1.1).
fn only_tls_1_2_and_up_is_offered(port: u16) {
    for (version, accepted) in [("-tls1_1", false), ("-tls1_2", true), ("-tls1_3", true)] {
        let output = std::process::Command::new("openssl")
            .args(["s_client", "-connect", &format!("127.0.0.1:{port}"), "-servername", "localhost", version])
            .args(["-cipher", "DEFAULT@SECLEVEL=0"])
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        let handshake = stdout.contains("BEGIN CERTIFICATE");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(handshake, accepted, "{version}: {stdout}{stderr}");
        assert!(!stderr.contains("no protocols available"), "openssl must really offer {version}: {stderr}");
    }
}

#[tokio::test]
async fn the_management_api_is_served_over_https_with_its_own_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["--admin-https-listen", "127.0.0.1:0", "--admin-https-certificate-id", "admin-tls"];
    let node = Node::start_with(dir.path(), &args, &[]);
    let url = https_url(&node);
    let token = node.admin_token();
    let ca = Identity::ca("Admin CA");
    let https = client_trusting(&ca);

    let before = https.get(format!("{url}/certificates")).bearer_auth(&token).send().await;
    assert!(before.is_err(), "no certificate yet: connections are refused");

    let api = node.client();
    let server = ca.server("localhost");
    let created = api.put("/certificates/admin-tls", &upload(&pfx(&server, &[], "p", PfxFlavor::Modern), "p")).await;
    assert_eq!(created.status, 201, "{}", created.text);
    let listed = https.get(format!("{url}/certificates")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(listed.status(), 200);
    let anonymous = https.get(format!("{url}/certificates")).send().await.unwrap();
    assert_eq!(anonymous.status(), 401, "the token is required over HTTPS too");

    // ARM links name the scheme the client used (two certificates: a page of one has a next).
    let spare =
        api.put("/certificates/spare", &upload(&pfx(&ca.server("spare"), &[], "p", PfxFlavor::Modern), "p")).await;
    assert_eq!(spare.status, 201, "{}", spare.text);
    let prefix = "/subscriptions/s/resourceGroups/g/providers/Microsoft.ApiManagement/service/gw";
    let page: serde_json::Value = https
        .get(format!("{url}{prefix}/certificates?$top=1&api-version=2022-08-01"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let next = page["nextLink"].as_str().unwrap_or_default();
    assert!(next.starts_with(&format!("{url}{prefix}/certificates?")), "{page}");

    only_tls_1_2_and_up_is_offered(node.admin_https_port());

    // A replaced certificate is served from the next connection on.
    let other_ca = Identity::ca("Other Admin CA");
    let replacement = other_ca.server("localhost");
    let replaced =
        api.put("/certificates/admin-tls", &upload(&pfx(&replacement, &[], "p", PfxFlavor::Modern), "p")).await;
    assert_eq!(replaced.status, 200, "{}", replaced.text);
    let fresh = client_trusting(&other_ca).get(format!("{url}/certificates")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(fresh.status(), 200);
}

#[test]
fn the_plain_management_listener_can_be_turned_off() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["--admin-https-listen", "127.0.0.1:0", "--admin-https-certificate-id", "admin-tls", "--no-admin-http"];
    let node = Node::start_with(dir.path(), &args, &[]);
    assert!(node.admin.starts_with("https://"), "the only management listener is HTTPS: {}", node.admin);
    assert!(!node.logs().contains("admin API listening on http://"), "{}", node.logs());
    let other = tempfile::tempdir().unwrap();
    let (status, logs) = Node::wait_exit(other.path(), &["--no-admin-http"], &[]);
    assert!(!status.success());
    assert!(logs.contains("--no-admin-http needs --admin-https-listen"), "{logs}");
}

#[tokio::test]
async fn the_management_api_can_serve_pem_files_instead_of_a_certificate_entity() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Identity::ca("Files Admin CA");
    let server = ca.server("localhost");
    let (cert, key) = (dir.path().join("admin.pem"), dir.path().join("admin.key"));
    std::fs::write(&cert, &server.cert_pem).unwrap();
    std::fs::write(&key, &server.key_pem).unwrap();
    let (cert, key) = (cert.display().to_string(), key.display().to_string());
    let args = [
        "--admin-https-listen",
        "127.0.0.1:0",
        "--admin-https-cert-file",
        &cert,
        "--admin-https-key-file",
        &key,
        "--no-admin-http",
    ];
    let node = Node::start_with(&dir.path().join("data"), &args, &[]);
    let listed = client_trusting(&ca)
        .get(format!("{}/certificates", https_url(&node)))
        .bearer_auth(node.admin_token())
        .send()
        .await
        .unwrap();
    assert_eq!(listed.status(), 200, "served from the files, with no entity in the store");
    only_tls_1_2_and_up_is_offered(node.admin_https_port());

    // A key that is not the certificate's: the node refuses to start, naming both files.
    std::fs::write(&key, Identity::ca("Other CA").server("localhost").key_pem).unwrap();
    let other = tempfile::tempdir().unwrap();
    let (status, logs) = Node::wait_exit(other.path(), &args, &[]);
    assert!(!status.success());
    assert!(logs.contains(&cert) && logs.contains(&key) && logs.contains("unusable"), "{logs}");
}
