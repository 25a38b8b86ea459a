//! Seeing inside a running node: `/metrics` counts what real traffic to a real mTLS backend did
//! (requests by route and status class, latencies, pooled connections, a failed handshake by
//! reason, seconds left on each certificate); every response carries its activity id, which the
//! access log line and any failure line repeat; the backend receives a W3C trace context; logs
//! can be JSON, and the access log can be turned off.
#![allow(clippy::unwrap_used)]

mod support;

use certgate_testkit::{ClientAuth, Identity, KeyKind, https_echo_backend, self_signed_echo_backend};
use serde_json::{Value, json};
use support::{Stage, expose, must_put, policy, upload_certificate};

/// The value of the sample `name{labels}` in an OpenMetrics text, if present.
fn sample(metrics: &str, name: &str, labels: &str) -> Option<f64> {
    let prefix = format!("{name}{{{labels}}} ");
    metrics.lines().find_map(|line| line.strip_prefix(&prefix)).and_then(|v| v.split(' ').next()?.parse().ok())
}

/// Whether a sample's labels contain every `key="value"` of `wanted` (in any order).
fn samples_with(metrics: &str, name: &str, wanted: &[&str]) -> Vec<f64> {
    metrics
        .lines()
        .filter_map(|line| {
            let rest = line.strip_prefix(name)?.strip_prefix('{')?;
            let (labels, value) = rest.split_once("} ")?;
            wanted.iter().all(|w| labels.split(',').any(|l| l == *w)).then(|| value.parse().ok())?
        })
        .collect()
}

#[tokio::test]
async fn metrics_activity_ids_and_trace_context_follow_real_traffic() {
    let stage = Stage::start();
    let (node, api, http) = (&stage.node, &stage.api, &stage.http);
    let backend = self_signed_echo_backend().await;
    let client = Identity::self_signed_client("metrics.contoso.com", KeyKind::EcdsaP256);
    let thumbprint = upload_certificate(api, "c1", &client).await;
    expose(api, "orders", &backend.url("localhost"), json!({"validateCertificateChain": false}), "c1").await;
    must_put(
        api,
        "/apis/orders/operations/get",
        json!({"properties": {"displayName": "Get", "method": "GET",
        "urlTemplate": "/items/{id}"}}),
    )
    .await;

    // Three requests on one keep-alive connection; the second brings its own trace.
    let client_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let mut activity_ids = Vec::new();
    for i in 0..3 {
        let mut request = http.get(format!("{}/orders/items/{i}", node.gateway));
        if i == 1 {
            request = request.header("traceparent", format!("00-{client_trace}-00f067aa0ba902b7-01"));
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200);
        let activity = response.headers()["x-activity-id"].to_str().unwrap().to_owned();
        assert!(activity.len() == 32 && activity.bytes().all(|b| b.is_ascii_hexdigit()), "{activity}");
        let seen: Value = response.json().await.unwrap();
        let traceparent = seen["headers"]["traceparent"].as_str().unwrap().to_owned();
        let expected_trace = if i == 1 { client_trace } else { activity.as_str() };
        assert_eq!(&traceparent[3..35], expected_trace, "request {i}: {traceparent}");
        assert_ne!(&traceparent[36..52], "00f067aa0ba902b7", "the gateway is the backend's parent");
        activity_ids.push(activity);
    }
    activity_ids.dedup();
    assert_eq!(activity_ids.len(), 3, "one activity id per request");
    let access = node.wait_for_log(&activity_ids[2]);
    for field in ["api=\"orders\"", "operation=\"get\"", "backend=\"orders\"", "status=200", "method=GET"] {
        assert!(access.contains(field), "{field}: {access}");
    }
    assert!(access.contains(&thumbprint.to_uppercase()) || access.contains(&thumbprint), "{access}");

    // A backend whose chain is not trusted: 500, and the failure is counted under its reason.
    let untrusted =
        https_echo_backend(&Identity::ca("Untrusted CA").server("localhost"), ClientAuth::AnyCertificate, false).await;
    expose(api, "strict", &untrusted.url("localhost"), json!({"validateCertificateChain": true}), "c1").await;
    let failed = http.get(format!("{}/strict/x", node.gateway)).send().await.unwrap();
    assert_eq!(failed.status(), 500);
    let activity = failed.headers()["x-activity-id"].to_str().unwrap().to_owned();
    let body: Value = failed.json().await.unwrap();
    assert_eq!(body["activityId"], activity, "the body and the header name one activity");
    let failure = node.wait_for_log("request failed");
    assert!(failure.contains(&activity) && failure.contains("reason=\"untrusted_chain\""), "{failure}");
    // Nothing claims this path: counted without an API.
    assert_eq!(http.get(format!("{}/nowhere", node.gateway)).send().await.unwrap().status(), 404);

    let scrape = api.get("/metrics").await;
    assert_eq!(scrape.status, 200);
    let metrics = &scrape.text;
    let requests = "certgate_requests_total";
    assert_eq!(
        sample(metrics, requests, r#"api="orders",operation="get",backend="orders",status_class="2xx""#),
        Some(3.0),
        "{metrics}"
    );
    assert_eq!(
        sample(metrics, requests, r#"api="strict",operation="",backend="strict",status_class="5xx""#),
        Some(1.0)
    );
    assert_eq!(sample(metrics, requests, r#"api="",operation="",backend="",status_class="4xx""#), Some(1.0));
    assert_eq!(sample(metrics, "certgate_request_duration_seconds_count", r#"api="orders""#), Some(3.0));
    assert_eq!(sample(metrics, "certgate_backend_duration_seconds_count", r#"backend="orders""#), Some(3.0));
    assert_eq!(
        sample(
            metrics,
            "certgate_backend_tls_handshake_failures_total",
            r#"backend="strict",reason="untrusted_chain""#
        ),
        Some(1.0)
    );
    let opened = sample(metrics, "certgate_backend_connections_total", r#"event="opened""#).unwrap_or(0.0);
    let reused = sample(metrics, "certgate_backend_connections_total", r#"event="reused""#).unwrap_or(0.0);
    assert!(opened >= 1.0 && reused >= 2.0, "opened {opened}, reused {reused}:\n{metrics}");
    let expiry = samples_with(metrics, "certgate_certificate_expiry_seconds", &[r#"id="c1""#, r#"kind="certificate""#]);
    let expected = (client.not_after_unix() - certgate_model::unix_now()) as f64;
    assert!(matches!(expiry.as_slice(), [left] if (left - expected).abs() < 5.0), "{expiry:?} vs {expected}");
    assert!(sample(metrics, "certgate_snapshot_revision", "").is_none(), "an unlabelled gauge has no braces");
    assert!(metrics.lines().any(|l| l.starts_with("certgate_snapshot_revision ")), "{metrics}");
    assert!(metrics.trim_end().ends_with("# EOF"), "OpenMetrics text");

    // A deleted certificate leaves no series behind.
    must_put(api, "/apis/orders/policies/policy", policy(r#"<set-backend-service backend-id="orders" />"#)).await;
    must_put(api, "/apis/strict/policies/policy", policy(r#"<set-backend-service backend-id="strict" />"#)).await;
    assert_eq!(api.delete("/certificates/c1").await.status, 204);
    let after = api.get("/metrics").await.text;
    assert!(samples_with(&after, "certgate_certificate_expiry_seconds", &[r#"id="c1""#]).is_empty(), "{after}");

    // A token is needed by default.
    assert_eq!(node.client_as(None).get("/metrics").await.status, 401);
}

#[tokio::test]
async fn logs_can_be_json_metrics_public_and_the_access_log_off() {
    let stage = Stage::start_with(&["--log-format", "json", "--public-metrics"]);
    let (node, api, http) = (&stage.node, &stage.api, &stage.http);
    must_put(api, "/apis/hello", json!({"properties": {"displayName": "Hello", "path": "hello"}})).await;
    must_put(
        api,
        "/apis/hello/policies/policy",
        policy(r#"<return-response><set-status code="204" /></return-response>"#),
    )
    .await;
    let response = http.get(format!("{}/hello", node.gateway)).send().await.unwrap();
    assert_eq!(response.status(), 204);
    let activity = response.headers()["x-activity-id"].to_str().unwrap().to_owned();
    let line = node.wait_for_log(&activity);
    let access: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
    assert_eq!((access["target"].as_str(), access["status"].as_u64()), (Some("certgate::access"), Some(204)), "{line}");
    assert_eq!(access["api"], "hello");
    for other in node.logs().lines().filter(|l| !l.trim().is_empty()) {
        assert!(serde_json::from_str::<Value>(other).is_ok(), "every line is JSON: {other}");
    }
    let open = node.client_as(None).get("/metrics").await;
    assert_eq!(open.status, 200, "--public-metrics");
    assert!(open.text.contains("certgate_requests_total"), "{}", open.text);

    let quiet = Stage::start_with(&["--no-access-log"]);
    let response = quiet.http.get(format!("{}/hello", quiet.node.gateway)).send().await.unwrap();
    assert_eq!(response.status(), 404);
    let activity = response.headers()["x-activity-id"].to_str().unwrap().to_owned();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(!quiet.node.logs().contains(&activity), "{}", quiet.node.logs());
}

/// A certificate 30 days or less from its notAfter says so: in the entity's `warnings` (upload,
/// get, list) and once in the log, at the step it reached.
#[tokio::test]
async fn certificates_near_their_expiry_warn_in_the_entity_and_the_log() {
    let stage = Stage::start();
    let api = &stage.api;
    let soon = Identity::expiring_client("soon.contoso.com", 3 * 86_400);
    let later = Identity::expiring_client("later.contoso.com", 40 * 86_400);
    let within_week = "the certificate expires within 7 days, on ";
    let uploaded = api
        .put(
            "/certificates/soon",
            &support::upload(&certgate_testkit::pfx(&soon, &[], "p", certgate_testkit::PfxFlavor::Modern), "p"),
        )
        .await;
    assert_eq!(uploaded.status, 201, "{}", uploaded.text);
    assert!(uploaded.body["warnings"][0].as_str().unwrap().starts_with(within_week), "{}", uploaded.text);
    upload_certificate(api, "later", &later).await;
    assert!(api.get("/certificates/soon").await.body["warnings"][0].as_str().unwrap().starts_with(within_week));
    let listed = api.get("/certificates").await.body;
    let warnings = |name: &str| {
        let entry = listed["value"].as_array().unwrap().iter().find(|c| c["name"] == name).unwrap();
        entry.get("warnings").cloned().unwrap_or(Value::Null)
    };
    assert!(warnings("soon")[0].as_str().unwrap().starts_with(within_week), "{listed}");
    assert_eq!(warnings("later"), Value::Null, "40 days left: no warning");
    let line = stage.node.wait_for_log(within_week);
    assert!(line.contains("soon") && line.contains("WARN"), "{line}");
    assert!(!stage.node.logs().contains("later.contoso") && !stage.node.logs().contains("id=later"));
}
