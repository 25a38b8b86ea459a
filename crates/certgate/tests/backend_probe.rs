//! The handshake probe (`POST /backends/{id}/test`) against real TLS peers: a backend that
//! requires a client certificate from one CA, probed with its configured certificate from another
//! (refused, the hint naming both CAs) and with a candidate from the right one (accepted, 200);
//! an untrusted server chain, a name mismatch, a closed port; and it changes nothing.
#![allow(clippy::unwrap_used)]

mod support;

use certgate_testkit::{ClientAuth, Identity, KeyKind, https_echo_backend, self_signed_echo_backend};
use serde_json::{Value, json};
use support::{Client, Stage, must_put, upload_certificate};

async fn probe(api: &Client, path: &str) -> Value {
    let reply = api.send("POST", path, None, &[]).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.body
}

fn step<'v>(report: &'v Value, name: &str) -> &'v Value {
    report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == name)
        .unwrap_or_else(|| panic!("no {name} in {report}"))
}

fn hint(report: &Value) -> &str {
    report["hint"].as_str().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_probe_reports_each_step_with_a_hint_and_changes_nothing() {
    let stage = Stage::start();
    let api = &stage.api;
    let backend_ca = Identity::ca("Probe Backend CA");
    let partner_ca = Identity::ca("Partner Client CA");
    let other_ca = Identity::ca("Other Client CA");
    let backend = https_echo_backend(&backend_ca.server("localhost"), ClientAuth::IssuedBy(&partner_ca), false).await;
    upload_certificate(api, "wrong", &other_ca.client("wrong.contoso.test", KeyKind::EcdsaP256)).await;
    let right = upload_certificate(api, "right", &partner_ca.client("right.contoso.test", KeyKind::EcdsaP256)).await;
    must_put(
        api,
        "/caCertificates/backend-ca",
        json!({"properties": {"data": backend_ca.cert_pem, "storeName": "Root"}}),
    )
    .await;
    let url = backend.url("localhost");
    let partner = json!({"properties": {"url": url, "credentials": {"certificateIds": ["wrong"]}}});
    must_put(api, "/backends/partner", partner).await;
    // A backend whose CA is not uploaded, one whose certificate names another host, a closed port.
    let self_signed = self_signed_echo_backend().await;
    must_put(api, "/backends/untrusted", json!({"properties": {"url": self_signed.url("localhost")}})).await;
    let elsewhere = https_echo_backend(&backend_ca.server("other.test"), ClientAuth::AnyCertificate, false).await;
    must_put(api, "/backends/misnamed", json!({"properties": {"url": elsewhere.url("localhost")}})).await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    must_put(api, "/backends/closed", json!({"properties": {"url": format!("https://127.0.0.1:{closed}")}})).await;
    let state = || async { (api.get("/backends").await.text, api.get("/certificates").await.text) };
    let before = state().await;

    // The configured certificate is from a CA the backend does not accept.
    let refused = probe(api, "/backends/partner/test").await;
    assert_eq!(refused["succeeded"], false, "{refused}");
    assert_eq!(refused["reason"], "client_certificate_rejected", "{refused}");
    assert_eq!(refused["certificateId"], "wrong");
    assert_eq!(refused["clientCertificateRequested"], true);
    assert_eq!(refused["acceptableIssuers"], json!(["CN=Partner Client CA, O=certgate tests"]), "{refused}");
    assert_eq!(step(&refused, "connect")["ok"], true);
    assert_eq!(step(&refused, "serverCertificate")["ok"], true, "the backend's chain is trusted: {refused}");
    assert!(refused["serverCertificates"][0]["issuer"].as_str().unwrap().contains("Probe Backend CA"), "{refused}");
    assert!(
        hint(&refused).contains("accepts certificates issued by CN=Partner Client CA")
            && hint(&refused).contains("wrong is issued by CN=Other Client CA"),
        "{}",
        hint(&refused)
    );
    eprintln!("refused: {}", hint(&refused));

    // A candidate from the right CA is accepted and the backend answers.
    let accepted = probe(api, "/backends/partner/test?certificateId=right").await;
    assert_eq!(accepted["succeeded"], true, "{accepted}");
    assert_eq!(accepted["httpStatus"], 200);
    assert_eq!(accepted["reason"], Value::Null);
    assert_eq!(accepted["certificateSent"].as_str().unwrap().to_lowercase(), right);
    assert!(hint(&accepted).contains("accepted right"), "{}", hint(&accepted));
    assert!(accepted["steps"].as_array().unwrap().iter().all(|s| s["ok"] == true), "{accepted}");

    // Without the backend's CA uploaded, its chain is not trusted.
    let untrusted = probe(api, "/backends/untrusted/test?certificateId=right").await;
    assert_eq!(untrusted["reason"], "untrusted_chain", "{untrusted}");
    assert_eq!(step(&untrusted, "serverCertificate")["ok"], false);
    assert!(hint(&untrusted).contains("as a Root CA certificate"), "{}", hint(&untrusted));

    // A certificate for another name.
    let misnamed = probe(api, "/backends/misnamed/test").await;
    assert_eq!(misnamed["reason"], "name_mismatch", "{misnamed}");
    assert!(hint(&misnamed).contains("Validate certificate name"), "{}", hint(&misnamed));

    // Nothing listens.
    let unreachable = probe(api, "/backends/closed/test").await;
    assert_eq!(unreachable["reason"], "unreachable", "{unreachable}");
    assert_eq!(step(&unreachable, "connect")["ok"], false);

    // Bad input, and nothing written by any probe.
    let unknown = api.send("POST", "/backends/partner/test?certificateId=nope", None, &[]).await;
    assert_eq!((unknown.status, unknown.error_target()), (400, "certificateId"), "{}", unknown.text);
    assert_eq!(api.send("POST", "/backends/none/test", None, &[]).await.status, 404);
    assert!(state().await == before, "the probes changed nothing");
    let logs = stage.node.logs();
    assert!(logs.contains("backend probe"), "the probe is logged");
}
