//! Certificates referenced in a real OpenBao dev server: creation, rotation under load, failures
//! that keep the last good certificate serving, pinned versions, identities.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::{Duration, Instant};

use certgate_testkit::{ClientAuth, Identity, OpenBao, https_echo_backend, self_signed_echo_backend};
use serde_json::{Value, json};
use support::{Client, Node, expose, pfx_secret, seen_fingerprint, via_gateway};

const READ_GW: &str = r#"path "secret/data/gw/*" { capabilities = ["read"] }"#;

fn reference(identifier: &str, identity: Option<&str>) -> Value {
    json!({"properties": {"keyVault": {"secretIdentifier": identifier, "identityClientId": identity}}})
}

async fn last_status(api: &Client, id: &str) -> Value {
    api.get(&format!("/certificates/{id}")).await.body["properties"]["keyVault"]["lastStatus"].clone()
}

/// Polls until the certificate's lastStatus has `code`.
async fn wait_status(api: &Client, id: &str, code: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status = last_status(api, id).await;
        if status["code"] == code {
            return status;
        }
        assert!(Instant::now() < deadline, "{id} never reached {code}: {status}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Polls the gateway until the backend sees `fingerprint`; returns how long it took.
async fn wait_fingerprint(http: &reqwest::Client, node: &Node, path: &str, fingerprint: &str) -> Duration {
    let started = Instant::now();
    loop {
        let (status, body) = via_gateway(http, node, path).await;
        assert_eq!(status, 200, "{body}");
        if seen_fingerprint(&body) == fingerprint {
            return started.elapsed();
        }
        assert!(started.elapsed() < Duration::from_secs(20), "the new certificate never arrived");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn references_rotate_pin_and_survive_invalid_secrets() {
    let bao = OpenBao::start().await;
    let token = bao.token_with_policy("gw-read", READ_GW).await;
    let (v1, fp1) = pfx_secret("rotating-v1");
    bao.write_secret("gw/orders", v1).await;
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start_with(dir.path(), &["--vault-refresh-interval", "1s"], &[("CERTGATE_VAULT_TOKEN", &token)]);
    let api = node.client();
    let http = reqwest::Client::new();

    let created = api.put("/certificates/orders", &reference(&bao.identifier("gw/orders"), None)).await;
    assert_eq!(created.status, 201, "{}", created.text);
    assert_eq!(created.body["properties"]["thumbprint"].as_str().unwrap().to_lowercase(), fp1);
    assert_eq!(created.body["properties"]["source"], "KeyVault");
    assert_eq!(created.body["properties"]["keyVault"]["lastStatus"]["code"], "Success");
    assert!(!created.text.contains("vault-pass") && !created.text.contains(&token));
    let pinned =
        api.put("/certificates/pinned", &reference(&format!("{}?version=1", bao.identifier("gw/orders")), None)).await;
    assert_eq!(pinned.status, 201);
    assert!(pinned.body["warnings"][0].as_str().unwrap().contains("will not rotate"));

    let backend = self_signed_echo_backend().await;
    expose(&api, "orders", &backend.url("localhost"), json!({"validateCertificateChain": false}), "orders").await;
    assert_eq!(seen_fingerprint(&via_gateway(&http, &node, "/orders/x").await.1), fp1);

    let (v2, fp2) = pfx_secret("rotating-v2");
    bao.write_secret("gw/orders", v2).await;
    let pickup = wait_fingerprint(&http, &node, "/orders/x", &fp2).await;
    eprintln!("rotation picked up in {pickup:?}");
    assert!(pickup <= Duration::from_secs(2), "within interval + 1 s: {pickup:?}");
    assert_eq!(
        api.get("/certificates/pinned").await.body["properties"]["thumbprint"].as_str().unwrap().to_lowercase(),
        fp1
    );

    bao.write_secret("gw/orders", json!({"pfx": "bm90IGEgcGZ4"})).await;
    let status = wait_status(&api, "orders", "InvalidSecret").await;
    assert!(status["message"].as_str().unwrap().contains("pfx"), "{status}");
    assert_eq!(
        seen_fingerprint(&via_gateway(&http, &node, "/orders/x").await.1),
        fp2,
        "the last good certificate serves"
    );
    let failed = api.get("/certificates?isKeyVaultRefreshFailed=true").await;
    assert_eq!(failed.body["count"], 1);
    assert_eq!(failed.body["value"][0]["name"], "orders");

    let by_thumbprint = api
        .put(
            "/apis/orders/policies/policy",
            &support::policy(&format!(r#"<authentication-certificate thumbprint="{}" />"#, fp2.to_uppercase())),
        )
        .await;
    assert_eq!(by_thumbprint.status, 400);
    assert!(by_thumbprint.error_message().contains("certificate-id 'orders'"), "{}", by_thumbprint.text);
    assert!(!node.logs().contains(&token), "the vault token never reaches the logs");
}

#[tokio::test]
async fn unreadable_references_are_refused_with_the_vault_reason() {
    let bao = OpenBao::start().await;
    let token = bao.token_with_policy("gw-read", READ_GW).await;
    let (v1, _) = pfx_secret("elsewhere");
    bao.write_secret("other/secret", v1).await;
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start_with(dir.path(), &[], &[("CERTGATE_VAULT_TOKEN", &token)]);
    let api = node.client();
    for (identifier, says) in [
        (bao.identifier("other/secret"), "Forbidden"),
        (bao.identifier("gw/missing"), "SecretNotFound"),
        ("http://127.0.0.1:1/v1/secret/data/gw/x".to_owned(), "VaultUnreachable"),
        (format!("{}/v1/secret/gw/x", bao.address), "not a KV v2 secret URL"),
    ] {
        let reply = api.put("/certificates/c", &reference(&identifier, None)).await;
        assert_eq!((reply.status, reply.error_target()), (400, "properties.keyVault.secretIdentifier"), "{identifier}");
        assert!(reply.error_message().contains(says), "{identifier}: {}", reply.error_message());
    }
    let reply = api.put("/certificates/c", &reference(&bao.identifier("gw/x"), Some("nobody"))).await;
    assert_eq!((reply.status, reply.error_target()), (400, "properties.keyVault.identityClientId"));
    assert_eq!(api.get("/certificates/c").await.status, 404, "nothing stored");
}

#[tokio::test]
async fn forbidden_and_unreachable_keep_the_last_good_certificate() {
    let bao = OpenBao::start().await;
    let team_token = bao.token_with_policy("team-a", READ_GW).await;
    let (v1, fp1) = pfx_secret("team-v1");
    bao.write_secret("gw/team", v1).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("certgate.toml");
    std::fs::write(&config, format!("[identities.team-a]\ntoken = \"{team_token}\"\n")).unwrap();
    let data = dir.path().join("data");
    let node = Node::start_with(&data, &["--config", config.to_str().unwrap(), "--vault-refresh-interval", "1s"], &[]);
    let api = node.client();
    let http = reqwest::Client::new();
    let identities = api.get("/identities").await;
    assert_eq!(identities.body["value"][0]["name"], "team-a");
    assert_eq!(identities.body["value"][0]["properties"]["method"], "token");
    assert!(!identities.text.contains(&team_token));

    assert_eq!(api.put("/certificates/team", &reference(&bao.identifier("gw/team"), Some("team-a"))).await.status, 201);
    let backend = self_signed_echo_backend().await;
    expose(&api, "team", &backend.url("localhost"), json!({"validateCertificateChain": false}), "team").await;

    // The policy loses `read`: the next refresh reports Forbidden with the vault's reason.
    bao.put_policy("team-a", r#"path "secret/data/gw/*" { capabilities = ["list"] }"#).await;
    let status = wait_status(&api, "team", "Forbidden").await;
    assert!(status["message"].as_str().unwrap().contains("permission denied"), "{status}");
    assert_eq!(seen_fingerprint(&via_gateway(&http, &node, "/team/x").await.1), fp1, "traffic continues");
    bao.put_policy("team-a", READ_GW).await;
    let refreshed = api.send("POST", "/certificates/team/refreshSecret", None, &[]).await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.text);
    assert_eq!(refreshed.body["properties"]["keyVault"]["lastStatus"]["code"], "Success");

    // The vault goes away and comes back.
    bao.disconnect().await;
    let status = wait_status(&api, "team", "VaultUnreachable").await;
    assert!(status["message"].as_str().unwrap().contains("cannot reach"), "{status}");
    assert_eq!(seen_fingerprint(&via_gateway(&http, &node, "/team/x").await.1), fp1, "traffic continues");
    bao.reconnect().await;
    let (v2, fp2) = pfx_secret("team-v2");
    bao.write_secret("gw/team", v2).await;
    wait_status(&api, "team", "Success").await;
    wait_fingerprint(&http, &node, "/team/x", &fp2).await;
    assert_eq!(api.send("POST", "/certificates/nope/refreshSecret", None, &[]).await.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approle_identity_keeps_working_across_token_lifetimes() {
    let bao = OpenBao::start().await;
    bao.api("POST", "sys/auth/approle", Some(json!({"type": "approle"}))).await;
    bao.put_policy("approle-read", READ_GW).await;
    bao.api(
        "POST",
        "auth/approle/role/gateway",
        Some(json!({"token_policies": ["approle-read"], "token_ttl": "2s", "token_max_ttl": "2s"})),
    )
    .await;
    let role_id =
        bao.api("GET", "auth/approle/role/gateway/role-id", None).await["data"]["role_id"].as_str().unwrap().to_owned();
    let secret_id = bao.api("POST", "auth/approle/role/gateway/secret-id", None).await["data"]["secret_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (v1, _) = pfx_secret("approle-v1");
    bao.write_secret("gw/approle", v1).await;
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("secret-id");
    std::fs::write(&secret_file, &secret_id).unwrap();
    let config = dir.path().join("certgate.toml");
    std::fs::write(
        &config,
        format!("[identities.robot]\nrole_id = \"{role_id}\"\nsecret_id_file = {:?}\n", secret_file.to_str().unwrap()),
    )
    .unwrap();
    let node = Node::start_with(
        &dir.path().join("data"),
        &["--config", config.to_str().unwrap(), "--vault-refresh-interval", "1s"],
        &[],
    );
    let api = node.client();
    assert_eq!(
        api.put("/certificates/robot", &reference(&bao.identifier("gw/approle"), Some("robot"))).await.status,
        201
    );
    let started = Instant::now();
    let mut rotations = 0;
    while started.elapsed() < Duration::from_secs(8) {
        let (next, fingerprint) = pfx_secret(&format!("approle-v{}", rotations + 2));
        bao.write_secret("gw/approle", next).await;
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let current = api.get("/certificates/robot").await;
            if current.body["properties"]["thumbprint"].as_str().unwrap().to_lowercase() == fingerprint {
                break;
            }
            assert!(Instant::now() < deadline, "rotation {rotations} not picked up: {}", current.text);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        rotations += 1;
    }
    assert!(rotations >= 3, "{rotations} rotations over 8 s of 2 s tokens");
    assert_eq!(last_status(&api, "robot").await["code"], "Success");
}

/// Rotation under continuous load: 1 s refresh interval, requests flowing without pause while
/// the secret is rewritten; no request fails and each new certificate arrives within
/// interval + 1 s of its write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_under_continuous_load_drops_nothing() {
    let bao = OpenBao::start().await;
    let token = bao.token_with_policy("gw-read", READ_GW).await;
    let (v1, mut expected) = pfx_secret("load-v1");
    bao.write_secret("gw/load", v1).await;
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start_with(dir.path(), &["--vault-refresh-interval", "1s"], &[("CERTGATE_VAULT_TOKEN", &token)]);
    let api = node.client();
    assert_eq!(api.put("/certificates/load", &reference(&bao.identifier("gw/load"), None)).await.status, 201);
    let backend = self_signed_echo_backend().await;
    expose(&api, "load", &backend.url("localhost"), json!({"validateCertificateChain": false}), "load").await;

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let seen: std::sync::Arc<std::sync::Mutex<Vec<(Instant, String)>>> = Default::default();
    let failures = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..16 {
        let (stop, seen, failures) = (stop.clone(), seen.clone(), failures.clone());
        let url = format!("{}/load/x", node.gateway);
        workers.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut count = 0usize;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                match http.get(&url).send().await {
                    Ok(r) if r.status() == 200 => {
                        let body = r.text().await.unwrap_or_default();
                        seen.lock().unwrap().push((Instant::now(), seen_fingerprint(&body)));
                    }
                    _ => {
                        failures.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
                count += 1;
            }
            count
        }));
    }
    let mut pickups = Vec::new();
    for round in 2..=4 {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let (next, fingerprint) = pfx_secret(&format!("load-v{round}"));
        let written = Instant::now();
        bao.write_secret("gw/load", next).await;
        expected = fingerprint;
        let deadline = written + Duration::from_secs(10);
        let arrived = loop {
            let arrived =
                seen.lock().unwrap().iter().find(|(at, fp)| *at >= written && *fp == expected).map(|(at, _)| *at);
            if let Some(at) = arrived {
                break at;
            }
            assert!(Instant::now() < deadline, "rotation {round} never reached the backend");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        pickups.push(arrived - written);
    }
    // Keep the load on until at least 20 000 requests have gone through.
    while seen.lock().unwrap().len() < 20_000 {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut total = 0;
    for worker in workers {
        total += worker.await.unwrap();
    }
    eprintln!("{total} requests during 3 rotations; pickup times: {pickups:?}");
    assert_eq!(failures.load(std::sync::atomic::Ordering::Relaxed), 0, "failed requests");
    assert!(total >= 20_000);
    for pickup in &pickups {
        assert!(*pickup <= Duration::from_secs(2), "pickup within interval + 1 s: {pickups:?}");
    }
    assert_eq!(seen.lock().unwrap().last().unwrap().1, expected);
}

/// Vault PKI: a 30 s certificate is renewed at about two thirds of its life, so a backend that
/// only trusts the PKI's root (and checks validity) sees a valid, changing certificate for three
/// lifetimes with no failed request; during an issuer outage the current one keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_lived_pki_certificates_are_renewed_before_they_expire() {
    let bao = OpenBao::start().await;
    let (root_pem, token) = bao.client_certificate_pki().await;
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start_with(dir.path(), &["--vault-refresh-interval", "1s"], &[("CERTGATE_VAULT_TOKEN", &token)]);
    let api = node.client();
    let identifier = format!("{}/v1/pki/issue/gateway?common_name=gw.contoso.test&ttl=30s", bao.address);
    let created = api.put("/certificates/short", &reference(&identifier, None)).await;
    assert_eq!(created.status, 201, "{}", created.text);
    assert_eq!(created.body["properties"]["subject"], "CN=gw.contoso.test");

    use rustls_pki_types::pem::PemObject;
    let root_der = rustls_pki_types::CertificateDer::from_pem_slice(root_pem.as_bytes()).unwrap().to_vec();
    let backend =
        https_echo_backend(&Identity::self_signed_server("localhost"), ClientAuth::IssuedByDer(&root_der), false).await;
    expose(&api, "pki", &backend.url("localhost"), json!({"validateCertificateChain": false}), "short").await;

    let http = reqwest::Client::new();
    let started = Instant::now();
    let mut fingerprints: Vec<String> = Vec::new();
    let mut requests = 0;
    while started.elapsed() < Duration::from_secs(95) {
        let (status, body) = via_gateway(&http, &node, "/pki/x").await;
        assert_eq!(status, 200, "after {:?}: {body}", started.elapsed());
        requests += 1;
        let fingerprint = seen_fingerprint(&body);
        if fingerprints.last() != Some(&fingerprint) {
            fingerprints.push(fingerprint);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("{requests} requests over 95 s, {} certificates used", fingerprints.len());
    assert!(fingerprints.len() >= 4, "renewed at least three times: {}", fingerprints.len());

    bao.disconnect().await;
    let status = wait_status(&api, "short", "VaultUnreachable").await;
    assert!(status["message"].as_str().unwrap().contains("cannot reach"));
    assert_eq!(via_gateway(&http, &node, "/pki/x").await.0, 200, "the current certificate serves until it expires");
    bao.reconnect().await;
    wait_status(&api, "short", "Success").await;
}

/// A token that would expire after 3 s keeps working because the node renews it while using it.
#[tokio::test]
async fn a_short_lived_token_is_renewed_while_in_use() {
    let bao = OpenBao::start().await;
    let token = bao.short_lived_token("gw-read", READ_GW, "3s").await;
    let (v1, _) = pfx_secret("renewed-v1");
    bao.write_secret("gw/renewed", v1).await;
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start_with(dir.path(), &["--vault-refresh-interval", "1s"], &[("CERTGATE_VAULT_TOKEN", &token)]);
    let api = node.client();
    assert_eq!(api.put("/certificates/renewed", &reference(&bao.identifier("gw/renewed"), None)).await.status, 201);
    tokio::time::sleep(Duration::from_secs(8)).await;
    let (v2, fp2) = pfx_secret("renewed-v2");
    bao.write_secret("gw/renewed", v2).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let current = api.get("/certificates/renewed").await;
    assert_eq!(current.body["properties"]["keyVault"]["lastStatus"]["code"], "Success", "{}", current.text);
    assert_eq!(
        current.body["properties"]["thumbprint"].as_str().unwrap().to_lowercase(),
        fp2,
        "still reading after 11 s"
    );
}
