//! Start-up, durability and shutdown of a node: files it creates, kill -9, master key, signals.
#![allow(clippy::unwrap_used)]

mod support;

use std::os::unix::fs::PermissionsExt;

use certgate_testkit::{Identity, KeyKind, PfxFlavor, pfx};
use serde_json::json;
use support::{Node, upload};

const PASSWORD: &str = "Sup3r-Secret-Pfx-Pass";

#[tokio::test]
async fn acknowledged_writes_survive_kill_9_and_the_files_hold_no_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let api = node.client();
    let leaf = Identity::self_signed_client("durable.contoso.com", KeyKind::Rsa2048);
    let created =
        api.put("/certificates/durable", &upload(&pfx(&leaf, &[], PASSWORD, PfxFlavor::Modern), PASSWORD)).await;
    assert_eq!(created.status, 201);
    let ca = Identity::ca("Durable Root");
    assert_eq!(
        api.put("/caCertificates/root", &json!({"properties": {"data": ca.cert_pem, "storeName": "Root"}}))
            .await
            .status,
        201
    );
    let token = api.put("/tokens/ops", &json!({"properties": {"role": "reader"}})).await;
    let reader_secret = token.body["properties"]["secret"].as_str().unwrap().to_owned();
    node.kill_hard();

    // The database and its WAL, exactly as the killed process left them.
    let key_der = leaf_key_der(&leaf);
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !name.starts_with("certgate.db") {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        assert!(!contains(&bytes, b"PRIVATE KEY"), "{name}: PEM key marker");
        assert!(!contains(&bytes, PASSWORD.as_bytes()), "{name}: the PFX password");
        assert!(!contains(&bytes, reader_secret.as_bytes()), "{name}: a token secret");
        assert!(!contains(&bytes, &key_der[key_der.len() - 64..]), "{name}: private key bytes");
    }

    let node = Node::start(dir.path());
    let api = node.client();
    let after = api.get("/certificates/durable").await;
    assert_eq!(after.status, 200);
    assert_eq!(after.body["properties"], created.body["properties"]);
    assert_eq!(api.get("/caCertificates/root").await.status, 200);
    assert_eq!(api.with_token(Some(&reader_secret)).get("/certificates").await.status, 200, "tokens survive too");
}

#[tokio::test]
async fn first_start_creates_private_files_and_a_wrong_master_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    for file in ["master.key", "admin-token"] {
        let mode = std::fs::metadata(dir.path().join(file)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{file}");
    }
    let logs = node.logs();
    assert!(logs.contains("admin-token"), "the log says where the token is");
    assert!(!logs.contains(&node.admin_token()), "but not the token itself");
    assert!(logs.contains("generated one"), "a generated master key is warned about");
    assert_eq!(node.terminate().code(), Some(0), "SIGTERM is a clean shutdown");

    let wrong = "ab".repeat(32);
    let (status, logs) = Node::wait_exit(dir.path(), &[], &[("CERTGATE_MASTER_KEY", &wrong)]);
    assert!(!status.success());
    assert!(logs.contains("master key does not match"), "{logs}");
    assert!(!logs.contains(&wrong));

    let (status, logs) = Node::wait_exit(dir.path(), &[], &[("CERTGATE_MASTER_KEY", "short")]);
    assert!(!status.success());
    assert!(logs.contains("64 hex digits or 44 base64"), "{logs}");
}

#[tokio::test]
async fn a_given_master_key_file_and_environment_token_are_used() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("key.txt");
    std::fs::write(&key_file, "cd".repeat(32)).unwrap();
    let data = dir.path().join("data");
    let env_token = "environment-token-for-tests";
    let node = Node::start_with(
        &data,
        &["--master-key-file", key_file.to_str().unwrap()],
        &[("CERTGATE_ADMIN_TOKEN", env_token)],
    );
    assert!(!data.join("master.key").exists(), "no key generated when one is given");
    assert!(!data.join("admin-token").exists(), "no token generated when one is given");
    let api = node.client_as(Some(env_token));
    let leaf = Identity::self_signed_client("env", KeyKind::EcdsaP256);
    assert_eq!(api.put("/certificates/env", &upload(&pfx(&leaf, &[], "p", PfxFlavor::Modern), "p")).await.status, 201);
    drop(node);

    let config = dir.path().join("certgate.toml");
    std::fs::write(&config, format!("master_key_file = {:?}\n", key_file.to_str().unwrap())).unwrap();
    let node = Node::start_with(&data, &["--config", config.to_str().unwrap()], &[("CERTGATE_ADMIN_TOKEN", env_token)]);
    assert_eq!(
        node.client_as(Some(env_token)).get("/certificates/env").await.status,
        200,
        "the key from the config file opens the store"
    );
}

#[tokio::test]
async fn health_is_open_and_the_gateway_answers_unknown_paths_with_404() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let health = node.client_as(None).get("/health").await;
    assert_eq!(health.status, 200);
    let response = reqwest::get(format!("{}/anything", node.gateway)).await.unwrap();
    assert_eq!(response.status(), 404);
    assert_eq!(response.text().await.unwrap(), r#"{"statusCode":404,"message":"Resource not found"}"#);
}

fn leaf_key_der(leaf: &Identity) -> Vec<u8> {
    use rustls_pki_types::pem::PemObject;
    rustls_pki_types::PrivateKeyDer::from_pem_slice(leaf.key_pem.as_bytes()).unwrap().secret_der().to_vec()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
