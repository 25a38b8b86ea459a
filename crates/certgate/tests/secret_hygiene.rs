//! Secrets stay secret: a node run at trace level through uploads (good and bad passwords), a
//! vault reference read and refreshed from a real OpenBao, mTLS traffic to a backend that
//! requires a client certificate, a failed handshake, lists, metrics and exports; every response
//! body and every log line is then searched for the key PEM marker, each private key's bytes
//! (base64 and hex, whole and a 24-byte run) and each password and token.
#![allow(clippy::unwrap_used)]

mod support;

use base64::Engine;
use certgate_testkit::{ClientAuth, Identity, KeyKind, OpenBao, PfxFlavor, https_echo_backend, pfx};
use serde_json::json;
use support::{Node, b64, expose, must_put, upload};

/// The forms a private key could leak in.
fn key_needles(identity: &Identity) -> Vec<String> {
    let der = identity.key_der();
    // A run of the private part: an EC PKCS#8 file also holds the public key, which is public.
    let run = der.windows(24).find(|run| !identity.cert_der.windows(24).any(|w| w == *run)).unwrap();
    let standard = base64::engine::general_purpose::STANDARD;
    let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
    vec![standard.encode(&der), hex(&der), standard.encode(run)[..30].to_owned(), hex(run)]
}

#[tokio::test(flavor = "multi_thread")]
async fn no_key_password_or_token_reaches_a_response_or_a_trace_level_log() {
    let bao = OpenBao::start().await;
    let vault_identity = Identity::self_signed_client("vault.contoso.com", KeyKind::EcdsaP256);
    let vault_password = "vault-pass-9923";
    let vault_pfx = pfx(&vault_identity, &[], vault_password, PfxFlavor::Modern);
    bao.write_secret("hygiene/c", json!({"pfx": b64(&vault_pfx), "password": vault_password})).await;
    let vault_token = bao.token_with_policy("read", r#"path "secret/data/*" { capabilities = ["read"] }"#).await;
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start_with(dir.path(), &[], &[("CERTGATE_LOG", "trace"), ("CERTGATE_VAULT_TOKEN", &vault_token)]);
    let api = node.client();
    let mut bodies = Vec::new();

    let uploaded_identity = Identity::self_signed_client("upload.contoso.com", KeyKind::Rsa2048);
    let upload_password = "s3cret-pfx-pass-7781";
    let file = pfx(&uploaded_identity, &[], upload_password, PfxFlavor::Legacy);
    let wrong = api.put("/certificates/c1", &upload(&file, "not-the-password-5531")).await;
    assert_eq!(wrong.status, 400, "{}", wrong.text);
    bodies.push(wrong.text);
    bodies.push(must_put(&api, "/certificates/c1", upload(&file, upload_password)).await.text);
    let reference = json!({"properties": {"keyVault": {"secretIdentifier": bao.identifier("hygiene/c")}}});
    bodies.push(must_put(&api, "/certificates/kv", reference).await.text);
    bodies.push(api.send("POST", "/certificates/kv/refreshSecret", None, &[]).await.text);

    let backend =
        https_echo_backend(&Identity::ca("Backend CA").server("localhost"), ClientAuth::AnyCertificate, false).await;
    expose(&api, "orders", &backend.url("localhost"), json!({"validateCertificateChain": false}), "c1").await;
    expose(&api, "vaulted", &backend.url("localhost"), json!({"validateCertificateChain": false}), "kv").await;
    expose(&api, "strict", &backend.url("localhost"), json!({"validateCertificateChain": true}), "c1").await;
    let http = reqwest::Client::new();
    for path in ["/orders/a", "/vaulted/b", "/strict/c", "/nowhere"] {
        bodies.push(http.get(format!("{}{path}", node.gateway)).send().await.unwrap().text().await.unwrap());
    }
    for path in [
        "/certificates",
        "/certificates/c1",
        "/certificates/kv",
        "/backends",
        "/metrics",
        "/tokens",
        "/identities",
        "/nodes",
    ] {
        bodies.push(api.get(path).await.text);
    }
    let created = api.put("/tokens/ci", &json!({"properties": {"role": "reader"}})).await;
    let issued = created.body["properties"]["secret"].as_str().unwrap().to_owned();
    assert_eq!(
        node.client_as(Some(&issued)).get("/tokens").await.status,
        200,
        "used once, so it is in the logs if anywhere"
    );
    // Shown once, on creation: the one response allowed to carry it.

    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let logs = node.logs();
    assert!(logs.contains("TRACE") || logs.contains("DEBUG"), "the run logged at trace level");
    let mut needles = vec![
        "PRIVATE KEY".to_owned(),
        upload_password.to_owned(),
        vault_password.to_owned(),
        "not-the-password-5531".to_owned(),
        node.admin_token(),
        issued.clone(),
        vault_token.clone(),
    ];
    needles.extend(key_needles(&uploaded_identity));
    needles.extend(key_needles(&vault_identity));
    for needle in &needles {
        assert!(!logs.contains(needle.as_str()), "the log holds a secret ({} characters)", needle.len());
        for body in &bodies {
            assert!(!body.contains(needle.as_str()), "a response holds a secret ({} characters): {body}", needle.len());
        }
    }
}
