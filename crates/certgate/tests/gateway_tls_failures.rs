//! Backend TLS failures: the caller gets APIM's 500 with an activity id, and the one log line
//! with that id names the cause precisely. Each switch turns its check off and nothing else.
#![allow(clippy::unwrap_used)]

mod support;

use certgate_testkit::{ClientAuth, Identity, KeyKind, https_echo_backend, self_signed_echo_backend};
use serde_json::{Value, json};
use support::{Client, Node, Stage, must_put, upload_certificate, via_gateway};

/// Sets up API `api` → backend `api` at `url` presenting `client-cert`.
async fn route_to(api: &Client, url: &str, tls: Value) {
    support::expose(api, "api", url, tls, "client-cert").await;
}

/// Changes the backend's TLS switches.
async fn switch_tls(api: &Client, tls: Value) {
    let reply = api
        .send("PATCH", "/backends/api", Some(json!({"properties": {"tls": tls}}).to_string().into_bytes()), &[])
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
}

/// Asserts APIM's anonymous 500 and returns the log line carrying its activity id.
fn failure_log(node: &Node, status: u16, body: &str, expected_status: u16) -> String {
    assert_eq!(
        status,
        expected_status,
        "{body}\n{}",
        node.logs().lines().filter(|l| l.contains("request failed")).collect::<Vec<_>>().join("\n")
    );
    let json: Value = serde_json::from_str(body).unwrap();
    let activity = json["activityId"].as_str().unwrap().to_owned();
    assert_eq!(json["statusCode"], expected_status);
    assert_eq!(json.as_object().unwrap().len(), 3, "no internals in the body: {body}");
    node.wait_for_log(&activity)
}

#[tokio::test]
async fn untrusted_chain_then_chain_validation_off() {
    let Stage { node, api, http, dir: _dir } = Stage::start();
    let backend = self_signed_echo_backend().await;
    upload_certificate(&api, "client-cert", &Identity::self_signed_client("client", KeyKind::EcdsaP256)).await;
    route_to(&api, &backend.url("localhost"), json!({})).await;
    let (status, body) = via_gateway(&http, &node, "/api/x").await;
    let line = failure_log(&node, status, &body, 500);
    assert!(line.contains("BackendConnectionFailure") && line.contains("certificate chain not trusted"), "{line}");
    assert!(line.contains("api=\"api\"") && line.contains("backend=\"api\""), "{line}");

    switch_tls(&api, json!({"validateCertificateChain":false})).await;
    assert_eq!(via_gateway(&http, &node, "/api/x").await.0, 200);
}

#[tokio::test]
async fn name_mismatch_then_name_validation_off() {
    let Stage { node, api, http, dir: _dir } = Stage::start();
    let ca = Identity::ca("Private Backend CA");
    let backend = https_echo_backend(&ca.server_named("api.contoso.test"), ClientAuth::AnyCertificate, false).await;
    must_put(&api, "/caCertificates/private-root", json!({"properties": {"data": ca.cert_pem, "storeName": "Root"}}))
        .await;
    upload_certificate(&api, "client-cert", &Identity::self_signed_client("client", KeyKind::EcdsaP256)).await;
    route_to(&api, &backend.url("localhost"), json!({})).await;
    let (status, body) = via_gateway(&http, &node, "/api/x").await;
    let line = failure_log(&node, status, &body, 500);
    assert!(
        line.contains("name mismatch") && line.contains("api.contoso.test") && line.contains("localhost"),
        "{line}"
    );

    // Chain validation off does not turn name validation off.
    switch_tls(&api, json!({"validateCertificateChain":false})).await;
    let (status, body) = via_gateway(&http, &node, "/api/x").await;
    assert!(failure_log(&node, status, &body, 500).contains("name mismatch"));
    switch_tls(&api, json!({"validateCertificateChain":true,"validateCertificateName":false})).await;
    assert_eq!(via_gateway(&http, &node, "/api/x").await.0, 200, "chain still validated against the uploaded root");
}

#[tokio::test]
async fn uploading_the_private_ca_makes_the_backend_trusted() {
    let Stage { node, api, http, dir: _dir } = Stage::start();
    let root = Identity::ca("Private Root");
    let intermediate = root.intermediate("Private Intermediate");
    let backend = https_echo_backend(&intermediate.server("localhost"), ClientAuth::AnyCertificate, false).await;
    upload_certificate(&api, "client-cert", &Identity::self_signed_client("client", KeyKind::EcdsaP256)).await;
    route_to(&api, &backend.url("localhost"), json!({})).await;
    let (status, body) = via_gateway(&http, &node, "/api/x").await;
    assert!(failure_log(&node, status, &body, 500).contains("not trusted"));
    must_put(&api, "/caCertificates/root", json!({"properties": {"data": root.cert_pem, "storeName": "Root"}})).await;
    let (status, body) = via_gateway(&http, &node, "/api/x").await;
    assert!(
        failure_log(&node, status, &body, 500).contains("not trusted"),
        "the backend does not send its intermediate"
    );
    must_put(
        &api,
        "/caCertificates/inter",
        json!({"properties": {"data": intermediate.cert_pem, "storeName": "CertificateAuthority"}}),
    )
    .await;
    assert_eq!(via_gateway(&http, &node, "/api/x").await.0, 200);
}

#[tokio::test]
async fn a_backend_that_rejects_our_certificate_is_named_with_its_alert() {
    let Stage { node, api, http, dir: _dir } = Stage::start();
    let trusted_by_backend = Identity::ca("Backend's Client CA");
    let backend = https_echo_backend(
        &Identity::self_signed_server("localhost"),
        ClientAuth::IssuedBy(&trusted_by_backend),
        false,
    )
    .await;
    upload_certificate(&api, "client-cert", &Identity::self_signed_client("stranger", KeyKind::EcdsaP256)).await;
    route_to(&api, &backend.url("localhost"), json!({"validateCertificateChain": false})).await;
    let (status, body) = via_gateway(&http, &node, "/api/x").await;
    let line = failure_log(&node, status, &body, 500);
    assert!(line.contains("backend rejected the client certificate: alert"), "{line}");

    // With a certificate the backend trusts, the same route works.
    let good = trusted_by_backend.client("friend", KeyKind::EcdsaP256);
    let file = certgate_testkit::pfx(&good, &[], "p", certgate_testkit::PfxFlavor::Modern);
    must_put(&api, "/certificates/client-cert", support::upload(&file, "p")).await;
    assert_eq!(via_gateway(&http, &node, "/api/x").await.0, 200);
}

#[tokio::test]
async fn unreachable_is_502_and_slow_is_504() {
    let Stage { node, api, http, dir: _dir } = Stage::start();
    upload_certificate(&api, "client-cert", &Identity::self_signed_client("client", KeyKind::EcdsaP256)).await;
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    route_to(&api, &format!("https://localhost:{closed_port}"), json!({})).await;
    let (status, body) = via_gateway(&http, &node, "/api/x").await;
    assert!(failure_log(&node, status, &body, 502).contains("BackendConnectionFailure"));

    let backend = self_signed_echo_backend().await;
    must_put(
        &api,
        "/backends/api",
        json!({"properties": {"url": backend.url("localhost"), "tls": {"validateCertificateChain": false}}}),
    )
    .await;
    must_put(&api, "/apis/api/policies/policy", json!({"properties": {"value":
        r#"<policies><inbound><set-backend-service backend-id="api" /><authentication-certificate certificate-id="client-cert" /></inbound><backend><forward-request timeout="1" /></backend></policies>"#}})).await;
    let (status, body) = via_gateway(&http, &node, "/api/sleep/3000").await;
    assert!(failure_log(&node, status, &body, 504).contains("BackendTimeout"));
}
