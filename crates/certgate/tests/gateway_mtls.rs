//! The seed's flow end to end: certificates uploaded, referenced by policies and backends, and
//! presented to real HTTPS backends that require a client certificate and report which one they saw.
#![allow(clippy::unwrap_used)]

mod support;

use certgate_testkit::{Identity, KeyKind, self_signed_echo_backend};
use serde_json::json;
use support::{Stage, must_put, policy, seen_fingerprint, upload_certificate, via_gateway};

#[tokio::test]
async fn the_seed_flow_certificate_id_thumbprint_backend_credentials_and_global_policy() {
    let Stage { node, api, http, dir: _dir } = Stage::start();
    let backend = self_signed_echo_backend().await;
    let a = upload_certificate(&api, "client-a", &Identity::self_signed_client("client-a", KeyKind::Rsa2048)).await;
    let b = upload_certificate(&api, "client-b", &Identity::self_signed_client("client-b", KeyKind::EcdsaP256)).await;
    let c = upload_certificate(&api, "client-c", &Identity::self_signed_client("client-c", KeyKind::EcdsaP384)).await;
    let d = upload_certificate(&api, "client-d", &Identity::self_signed_client("client-d", KeyKind::EcdsaP256)).await;

    // A self-signed backend: chain validation off, as the seed describes.
    must_put(
        &api,
        "/backends/orders",
        json!({"properties": {"url": backend.url("localhost"), "protocol": "http",
        "tls": {"validateCertificateChain": false, "validateCertificateName": true}}}),
    )
    .await;
    must_put(&api, "/apis/orders", json!({"properties": {"displayName": "Orders", "path": "orders"}})).await;
    must_put(
        &api,
        "/apis/orders/policies/policy",
        policy(
            r#"<set-backend-service backend-id="orders" /><authentication-certificate certificate-id="client-a" />"#,
        ),
    )
    .await;
    let (status, body) = via_gateway(&http, &node, "/orders/42?expand=lines").await;
    assert_eq!(status, 200, "{body}\n{}", node.logs());
    assert_eq!(seen_fingerprint(&body), a, "certificate-id");
    let echoed: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(echoed["path"], "/42?expand=lines");
    assert_eq!(echoed["headers"]["x-forwarded-proto"], "http");
    assert_eq!(echoed["headers"]["x-forwarded-for"], "127.0.0.1");
    assert!(echoed["headers"]["x-forwarded-host"].as_str().unwrap().starts_with("127.0.0.1:"));
    assert_eq!(echoed["headers"]["host"], format!("localhost:{}", backend.addr.port()));

    // By thumbprint (upper-case in the policy, as APIM shows it).
    must_put(
        &api,
        "/apis/orders/policies/policy",
        policy(&format!(
            r#"<set-backend-service backend-id="orders" /><authentication-certificate thumbprint="{}" />"#,
            b.to_uppercase()
        )),
    )
    .await;
    assert_eq!(seen_fingerprint(&via_gateway(&http, &node, "/orders/1").await.1), b, "thumbprint");

    // No authentication-certificate: the backend's credentials present theirs.
    must_put(
        &api,
        "/backends/orders",
        json!({"properties": {"url": backend.url("localhost"),
        "credentials": {"certificateIds": ["client-c"]}, "tls": {"validateCertificateChain": false}}}),
    )
    .await;
    must_put(&api, "/apis/orders/policies/policy", policy(r#"<set-backend-service backend-id="orders" />"#)).await;
    assert_eq!(seen_fingerprint(&via_gateway(&http, &node, "/orders/1").await.1), c, "backend credentials");

    // The global policy applies to every API that keeps <base/>.
    must_put(&api, "/policies/policy", policy(r#"<authentication-certificate certificate-id="client-d" />"#)).await;
    assert_eq!(seen_fingerprint(&via_gateway(&http, &node, "/orders/1").await.1), d, "global policy");

    // An inline PKCS#12 body with its password, in the API policy.
    let inline = Identity::self_signed_client("inline", KeyKind::EcdsaP256);
    let file = certgate_testkit::pfx(&inline, &[], "inline-pass", certgate_testkit::PfxFlavor::Legacy);
    must_put(&api, "/apis/orders/policies/policy", policy(&format!(
        r#"<set-backend-service backend-id="orders" /><authentication-certificate body="{}" password="inline-pass" />"#,
        support::b64(&file)))).await;
    assert_eq!(
        seen_fingerprint(&via_gateway(&http, &node, "/orders/1").await.1),
        certgate_testkit::sha1_hex(&inline.cert_der),
        "inline body"
    );
    let wrong = api
        .put(
            "/apis/orders/policies/policy",
            &policy(&format!(r#"<authentication-certificate body="{}" password="nope" />"#, support::b64(&file))),
        )
        .await;
    assert_eq!(wrong.status, 400);
    assert!(wrong.error_message().contains("password"), "{}", wrong.text);
}

/// An inline body wrapped at 76 columns (as `base64` writes it) is accepted by the admin API and
/// served by the gateway alike: one decoding rule (`certgate_pki::import_pkcs12_base64`).
#[tokio::test]
async fn a_line_wrapped_inline_body_that_the_admin_api_accepts_serves_requests() {
    let Stage { node, api, http, dir: _dir } = Stage::start();
    let backend = self_signed_echo_backend().await;
    let inline = Identity::self_signed_client("wrapped", KeyKind::EcdsaP256);
    let file = certgate_testkit::pfx(&inline, &[], "p", certgate_testkit::PfxFlavor::Modern);
    let encoded = support::b64(&file);
    let wrapped: Vec<&str> = encoded.as_bytes().chunks(76).map(|line| std::str::from_utf8(line).unwrap()).collect();
    assert!(wrapped.len() > 1, "long enough to wrap");
    must_put(
        &api,
        "/backends/wrapped",
        json!({"properties": {"url": backend.url("localhost"), "tls": {"validateCertificateChain": false}}}),
    )
    .await;
    must_put(&api, "/apis/wrapped", json!({"properties": {"displayName": "wrapped", "path": "wrapped"}})).await;
    let saved = must_put(
        &api,
        "/apis/wrapped/policies/policy",
        policy(&format!(
            r#"<set-backend-service backend-id="wrapped" /><authentication-certificate body="{}" password="p" />"#,
            wrapped.join("\n")
        )),
    )
    .await;
    assert_eq!(saved.status, 201);
    let (status, body) = via_gateway(&http, &node, "/wrapped/x").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(seen_fingerprint(&body), certgate_testkit::sha1_hex(&inline.cert_der));
}

#[tokio::test]
async fn operation_policy_overrides_the_api_policy() {
    let Stage { node, api, http, dir: _dir } = Stage::start();
    let backend = self_signed_echo_backend().await;
    let a = upload_certificate(&api, "api-cert", &Identity::self_signed_client("api-cert", KeyKind::EcdsaP256)).await;
    let o = upload_certificate(&api, "op-cert", &Identity::self_signed_client("op-cert", KeyKind::EcdsaP256)).await;
    must_put(
        &api,
        "/backends/be",
        json!({"properties": {"url": backend.url("localhost"), "tls": {"validateCertificateChain": false}}}),
    )
    .await;
    must_put(&api, "/apis/shop", json!({"properties": {"displayName": "Shop", "path": "shop"}})).await;
    must_put(
        &api,
        "/apis/shop/operations/get-order",
        json!({"properties": {"method": "GET", "urlTemplate": "/orders/{id}"}}),
    )
    .await;
    must_put(
        &api,
        "/apis/shop/policies/policy",
        policy(r#"<set-backend-service backend-id="be" /><authentication-certificate certificate-id="api-cert" />"#),
    )
    .await;
    must_put(&api, "/apis/shop/operations/get-order/policies/policy", policy(
        r#"<authentication-certificate certificate-id="op-cert" /><rewrite-uri template="/v2/orders/{id}" copy-unmatched-params="false" />"#)).await;

    let (status, body) = via_gateway(&http, &node, "/shop/orders/7?x=1").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(seen_fingerprint(&body), o, "the operation's certificate wins");
    let echoed: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(echoed["path"], "/v2/orders/7", "rewrite-uri with the template parameter, query dropped");
    let (_, body) = via_gateway(&http, &node, "/shop/customers/7").await;
    assert_eq!(seen_fingerprint(&body), a, "no operation matches: the API policy alone");
    let (status, body) = via_gateway(&http, &node, "/nowhere").await;
    assert_eq!((status, body.as_str()), (404, r#"{"statusCode":404,"message":"Resource not found"}"#));
}

#[tokio::test]
async fn backend_credentials_headers_and_response_policies_apply() {
    let Stage { node, api, http, dir: _dir } = Stage::start();
    let backend = self_signed_echo_backend().await;
    let by_thumbprint =
        upload_certificate(&api, "by-thumbprint", &Identity::self_signed_client("t", KeyKind::EcdsaP256)).await;
    must_put(&api, "/backends/be", json!({"properties": {"url": format!("{}/base/", backend.url("localhost")),
        "tls": {"validateCertificateChain": false},
        "credentials": {"certificate": [by_thumbprint.to_uppercase()], "header": {"x-api-key": ["k1"]}, "query": {"code": ["a b"]},
                        "authorization": {"scheme": "Basic", "parameter": "dXNlcjpwYXNz"}}}})).await;
    must_put(&api, "/apis/h", json!({"properties": {"displayName": "H", "path": "h/v1"}})).await;
    must_put(&api, "/apis/h/policies/policy", json!({"properties": {"value": r#"<policies>
        <inbound>
            <set-backend-service backend-id="be" />
            <set-header name="x-env" exists-action="override"><value>test</value></set-header>
            <set-header name="x-drop" exists-action="delete" />
        </inbound>
        <outbound><set-header name="x-served-by" exists-action="override"><value>certgate</value></set-header></outbound>
    </policies>"#}})).await;
    let response = http
        .get(format!("{}/h/v1/items?q=1", node.gateway))
        .header("x-drop", "secret")
        .header("connection", "keep-alive, x-hop")
        .header("x-hop", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-served-by"], "certgate", "outbound set-header");
    let echoed: serde_json::Value = serde_json::from_str(&response.text().await.unwrap()).unwrap();
    let headers = &echoed["headers"];
    assert_eq!(echoed["path"], "/base/items?q=1&code=a%20b", "base path kept, credentials query appended");
    assert_eq!(headers["x-api-key"], "k1");
    assert_eq!(headers["authorization"], "Basic dXNlcjpwYXNz");
    assert_eq!(headers["x-env"], "test");
    assert!(
        headers.get("x-drop").is_none() && headers.get("x-hop").is_none(),
        "deleted and hop-by-hop headers: {headers}"
    );
    assert_eq!(echoed["fingerprint"], by_thumbprint.as_str(), "the backend's certificate, by thumbprint");

    must_put(&api, "/apis/h/operations/teapot", json!({"properties": {"method": "*", "urlTemplate": "/teapot"}})).await;
    must_put(&api, "/apis/h/operations/teapot/policies/policy", json!({"properties": {"value":
        r#"<policies><inbound><return-response><set-status code="418" reason="I'm a teapot"/><set-header name="x-short" exists-action="override"><value>circuit</value></set-header><set-body>short and stout</set-body></return-response></inbound></policies>"#}})).await;
    let response = http.post(format!("{}/h/v1/teapot", node.gateway)).send().await.unwrap();
    assert_eq!(
        (response.status().as_u16(), response.headers()["x-short"].to_str().unwrap().to_owned()),
        (418, "circuit".to_owned())
    );
    assert_eq!(response.text().await.unwrap(), "short and stout");
}
