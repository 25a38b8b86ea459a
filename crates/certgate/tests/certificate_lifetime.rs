//! The edges of a client certificate's life, against the real binary, real TLS backends that
//! require a client certificate, and a real OpenBao: expiry to the instant, rotation closing the
//! old identity's backend connections, and PKI renewal at two thirds of the lifetime.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use certgate_testkit::{
    ClientAuth, Identity, KeyKind, OpenBao, PfxFlavor, https_echo_backend, pfx, self_signed_echo_backend,
};
use serde_json::json;
use support::{Node, Stage, expose, must_put, seen_fingerprint, upload, upload_certificate, via_gateway};

/// One request through the gateway: when the client sent it (wall clock, taken just before
/// sending, so the gateway handled it later), the status, and the certificate the backend saw.
struct Sent {
    at: SystemTime,
    status: u16,
    fingerprint: String,
}

/// A 10 s certificate: the requests sent until just before its notAfter reach the backend with
/// it; not one request sent at or after the first instant of its notAfter second does (the
/// route answers 500 and the log says the certificate expired).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_request_goes_out_with_a_client_certificate_at_or_after_its_not_after() {
    let stage = Stage::start();
    let backend = self_signed_echo_backend().await;
    let leaf = Identity::expiring_client("ten-seconds", 10);
    let not_after = UNIX_EPOCH + Duration::from_secs(u64::try_from(leaf.not_after_unix()).unwrap());
    let fingerprint = upload_certificate(&stage.api, "ten", &leaf).await;
    expose(&stage.api, "expiring", &backend.url("localhost"), json!({"validateCertificateChain": false}), "ten").await;
    assert_eq!(via_gateway(&stage.http, &stage.node, "/expiring/x").await.0, 200);

    tokio::time::sleep(not_after.duration_since(SystemTime::now()).unwrap() - Duration::from_millis(1500)).await;
    let stop = not_after + Duration::from_millis(1500);
    let mut clients = Vec::new();
    for _ in 0..4 {
        let (http, gateway) = (stage.http.clone(), stage.node.gateway.clone());
        clients.push(tokio::spawn(async move {
            let mut sent = Vec::new();
            while SystemTime::now() < stop {
                let at = SystemTime::now();
                let response = http.get(format!("{gateway}/expiring/x")).send().await.unwrap();
                let status = response.status().as_u16();
                let body = response.text().await.unwrap();
                let fingerprint = if status == 200 { seen_fingerprint(&body) } else { String::new() };
                sent.push(Sent { at, status, fingerprint });
            }
            sent
        }));
    }
    let mut sent = Vec::new();
    for client in clients {
        sent.extend(client.await.unwrap());
    }

    let with_it = |s: &Sent| s.fingerprint == fingerprint;
    let late: Vec<_> = sent.iter().filter(|s| s.at >= not_after).collect();
    let carried_late = late.iter().filter(|s| with_it(s)).count();
    assert_eq!(carried_late, 0, "requests sent at or after notAfter that presented the certificate");
    assert!(late.len() >= 20, "enough requests after notAfter to mean something: {}", late.len());
    assert!(late.iter().all(|s| s.status == 500), "an expired certificate's route answers 500");
    // "Just before": everything sent until 100 ms before notAfter went out with the certificate
    // (a request sent in the last instants may be handled after it).
    let early: Vec<_> = sent.iter().filter(|s| s.at < not_after - Duration::from_millis(100)).collect();
    let just_before = early.iter().filter(|s| s.at >= not_after - Duration::from_millis(400)).count();
    assert!(just_before >= 4, "requests in the 300 ms before the cut-off: {just_before}");
    assert!(early.iter().all(|s| s.status == 200 && with_it(s)), "every early request presented it");
    assert!(stage.node.logs().contains("expired at"), "the log names the expiry");
    eprintln!("{} requests around notAfter, {} after it, none of those with the certificate", sent.len(), late.len());
}

/// Replacing a certificate's material retires the pool of the old identity: its idle backend
/// connections close at once, and a connection still streaming a response closes when that
/// response ends instead of going back to a pool.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_closes_the_old_identitys_backend_connections() {
    let stage = Stage::start();
    let backend = self_signed_echo_backend().await;
    let old = upload_certificate(&stage.api, "rot", &Identity::self_signed_client("old", KeyKind::EcdsaP256)).await;
    expose(&stage.api, "rotating", &backend.url("localhost"), json!({"validateCertificateChain": false}), "rot").await;
    // Four connections at once: one carries a response streaming for ~2 s across the rotation,
    // the other three are idle in the gateway's pool by then.
    let slow = {
        let (http, gateway) = (reqwest::Client::new(), stage.node.gateway.clone());
        tokio::spawn(async move { http.get(format!("{gateway}/rotating/slow")).send().await.unwrap().text().await })
    };
    let (a, b, c) = tokio::join!(
        via_gateway(&stage.http, &stage.node, "/rotating/sleep/200"),
        via_gateway(&stage.http, &stage.node, "/rotating/sleep/200"),
        via_gateway(&stage.http, &stage.node, "/rotating/sleep/200"),
    );
    assert!([a, b, c].iter().all(|(status, body)| *status == 200 && seen_fingerprint(body) == old));
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(backend.connection_count(), 4);
    assert!(backend.closed_connections().is_empty());

    let new_leaf = Identity::self_signed_client("new", KeyKind::EcdsaP256);
    let file = pfx(&new_leaf, &[], "p", PfxFlavor::Modern);
    must_put(&stage.api, "/certificates/rot", upload(&file, "p")).await;
    let rotated = Instant::now();
    let idle_closed = closed_with(&backend, &old, 3).await;
    assert_eq!(idle_closed.len(), 3, "the three idle connections closed");
    for at in &idle_closed {
        let after = at.saturating_duration_since(rotated);
        assert!(after <= Duration::from_millis(100), "an idle old connection closed {after:?} after the rotation");
    }
    let (status, body) = via_gateway(&stage.http, &stage.node, "/rotating/x").await;
    assert_eq!(status, 200);
    assert_ne!(seen_fingerprint(&body), old, "the next request presents the new certificate");

    let streamed = slow.await.unwrap().unwrap();
    let ended = Instant::now();
    assert_eq!(seen_fingerprint(streamed.trim()), old, "the in-flight response completed on the old identity");
    let all_closed = closed_with(&backend, &old, 4).await;
    assert_eq!(all_closed.len(), 4, "the streaming connection closed after its response");
    let after = all_closed[3].saturating_duration_since(ended);
    assert!(after <= Duration::from_millis(100), "it closed {after:?} after its response ended");
    eprintln!(
        "idle connections closed {:?} after the PUT returned",
        idle_closed.iter().map(|at| at.saturating_duration_since(rotated)).collect::<Vec<_>>()
    );
}

/// When the backend saw its connections that presented `fingerprint` close, once there are
/// `count` of them (or 5 s have passed).
async fn closed_with(backend: &certgate_testkit::HttpsBackend, fingerprint: &str, count: usize) -> Vec<Instant> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let closed: Vec<Instant> =
            backend.closed_connections().into_iter().filter(|c| c.fingerprint == fingerprint).map(|c| c.at).collect();
        if closed.len() >= count || Instant::now() > deadline {
            return closed;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Vault PKI with the default 4 h KV interval: a 30 s certificate is renewed at two thirds of its
/// life (20 s, ±5 % of the lifetime = ±1.5 s of jitter), whatever the refresher's other timers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thirty_second_pki_certificate_is_renewed_at_twenty_seconds() {
    let bao = OpenBao::start().await;
    let (root_pem, token) = bao.client_certificate_pki().await;
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start_with(dir.path(), &[], &[("CERTGATE_VAULT_TOKEN", &token)]);
    let api = node.client();
    use rustls_pki_types::pem::PemObject;
    let root_der = rustls_pki_types::CertificateDer::from_pem_slice(root_pem.as_bytes()).unwrap().to_vec();
    let backend =
        https_echo_backend(&Identity::self_signed_server("localhost"), ClientAuth::IssuedByDer(&root_der), false).await;

    let identifier = format!("{}/v1/pki/issue/gateway?common_name=gw.contoso.test&ttl=30s", bao.address);
    let reference = json!({"properties": {"keyVault": {"secretIdentifier": identifier}}});
    let created = api.put("/certificates/short", &reference).await;
    assert_eq!(created.status, 201, "{}", created.text);
    let issued = Instant::now();
    expose(&api, "pki", &backend.url("localhost"), json!({"validateCertificateChain": false}), "short").await;

    // When the gateway first presents each new certificate (requests every 20 ms).
    let http = reqwest::Client::new();
    let mut first_seen: Vec<(String, Instant)> = Vec::new();
    while first_seen.len() < 3 && issued.elapsed() < Duration::from_secs(46) {
        let (status, body) = via_gateway(&http, &node, "/pki/x").await;
        assert_eq!(status, 200, "after {:?}: {body}", issued.elapsed());
        let fingerprint = seen_fingerprint(&body);
        if first_seen.last().is_none_or(|(last, _)| *last != fingerprint) {
            first_seen.push((fingerprint, Instant::now()));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(first_seen.len(), 3, "two renewals within 46 s: {:?}", first_seen.len());
    let first = first_seen[1].1 - issued;
    let second = first_seen[2].1 - first_seen[1].1;
    eprintln!("renewed {first:?} after the creation, then {second:?} after that");
    // The first due time counts from the stored read time, which has one-second resolution.
    assert!((17_500..=22_500).contains(&first.as_millis()), "first renewal after {first:?}");
    // The refresher's own renewals: 20 s ± 1.5 s, plus up to 250 ms of seeing it through the gateway.
    assert!((18_250..=21_750).contains(&second.as_millis()), "second renewal {second:?} after the first");
}
