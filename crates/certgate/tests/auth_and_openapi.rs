//! Authentication on every endpoint, the token API, and the OpenAPI document's truthfulness.
#![allow(clippy::unwrap_used)]

mod support;

use serde_json::json;
use support::Node;

/// Every management operation: (method, path, a body that would otherwise be valid or not).
fn endpoints() -> Vec<(&'static str, &'static str, Option<&'static str>)> {
    let invalid = Some("{not even json");
    vec![
        ("GET", "/certificates", None),
        ("GET", "/certificates/c1", None),
        ("HEAD", "/certificates/c1", None),
        ("PUT", "/certificates/c1", invalid),
        ("PATCH", "/certificates/c1", invalid),
        ("DELETE", "/certificates/c1", None),
        ("POST", "/certificates/c1/refreshSecret", None),
        ("GET", "/certificates/c1/referrers", None),
        ("GET", "/caCertificates", None),
        ("GET", "/caCertificates/ca1", None),
        ("HEAD", "/caCertificates/ca1", None),
        ("PUT", "/caCertificates/ca1", invalid),
        ("PATCH", "/caCertificates/ca1", invalid),
        ("DELETE", "/caCertificates/ca1", None),
        ("GET", "/backends", None),
        ("GET", "/backends/b1", None),
        ("PUT", "/backends/b1", invalid),
        ("PATCH", "/backends/b1", invalid),
        ("DELETE", "/backends/b1", None),
        ("POST", "/backends/b1/test", None),
        ("GET", "/apis", None),
        ("GET", "/apis/a1", None),
        ("PUT", "/apis/a1", invalid),
        ("PATCH", "/apis/a1", invalid),
        ("DELETE", "/apis/a1", None),
        ("GET", "/apis/a1/operations", None),
        ("GET", "/apis/a1/operations/o1", None),
        ("PUT", "/apis/a1/operations/o1", invalid),
        ("PATCH", "/apis/a1/operations/o1", invalid),
        ("DELETE", "/apis/a1/operations/o1", None),
        ("GET", "/policies", None),
        ("GET", "/policies/policy", None),
        ("PUT", "/policies/policy", invalid),
        ("DELETE", "/policies/policy", None),
        ("GET", "/apis/a1/policies", None),
        ("GET", "/apis/a1/policies/policy", None),
        ("PUT", "/apis/a1/policies/policy", invalid),
        ("DELETE", "/apis/a1/policies/policy", None),
        ("GET", "/apis/a1/operations/o1/policies", None),
        ("GET", "/apis/a1/operations/o1/policies/policy", None),
        ("PUT", "/apis/a1/operations/o1/policies/policy", invalid),
        ("DELETE", "/apis/a1/operations/o1/policies/policy", None),
        ("GET", "/identities", None),
        ("POST", "/identities/system/listSecrets", invalid),
        ("GET", "/caller", None),
        ("GET", "/nodes", None),
        ("GET", "/tokens", None),
        ("GET", "/tokens/t1", None),
        ("PUT", "/tokens/t1", invalid),
        ("DELETE", "/tokens/t1", None),
    ]
}

fn is_read(method: &str) -> bool {
    matches!(method, "GET" | "HEAD")
}

#[tokio::test]
async fn anonymous_and_reader_matrix_over_every_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let admin = node.client();
    let reader = admin.put("/tokens/reader", &json!({"properties": {"role": "reader"}})).await;
    assert_eq!(reader.status, 201);
    let reader_secret = reader.body["properties"]["secret"].as_str().unwrap().to_owned();
    assert!(reader_secret.starts_with("cg_"));

    for (method, path, body) in endpoints() {
        let body = body.map(|b| b.as_bytes().to_vec());
        for token in [None, Some("cg_not-a-real-token"), Some("")] {
            let reply = node.client_as(token).send(method, path, body.clone(), &[]).await;
            assert_eq!(reply.status, 401, "{method} {path} with {token:?}");
            if method != "HEAD" {
                assert_eq!(reply.error_code(), "Unauthorized", "{method} {path}");
            }
        }
        let as_reader = node.client_as(Some(&reader_secret)).send(method, path, body.clone(), &[]).await;
        if is_read(method) {
            assert!(matches!(as_reader.status, 200 | 404), "{method} {path} as reader: {}", as_reader.status);
        } else {
            assert_eq!(as_reader.status, 403, "{method} {path} as reader: even an invalid write is 403");
        }
        let as_admin = admin.send(method, path, body, &[]).await;
        assert!(![401, 403].contains(&as_admin.status), "{method} {path} as contributor: {}", as_admin.status);
    }
    assert_eq!(node.client_as(None).get("/health").await.status, 200, "/health is open");
}

#[tokio::test]
async fn tokens_show_their_secret_once_and_revocation_is_immediate() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let admin = node.client();
    let created = admin.put("/tokens/ci", &json!({"properties": {"role": "contributor"}})).await;
    let secret = created.body["properties"]["secret"].as_str().unwrap().to_owned();
    let ci = node.client_as(Some(&secret));
    assert_eq!(ci.put("/tokens/other", &json!({"properties": {"role": "reader"}})).await.status, 201);
    let listed = admin.get("/tokens").await;
    assert_eq!(listed.body["count"], 3, "admin, ci, other");
    assert!(!listed.text.contains("secret"), "secrets are never listed");
    let one = admin.get("/tokens/ci").await;
    assert_eq!(one.body["properties"], json!({"role": "contributor"}));

    let rotated = admin.put("/tokens/ci", &json!({"properties": {"role": "reader"}})).await;
    assert_eq!(rotated.status, 200);
    assert_eq!(ci.get("/tokens").await.status, 401, "replacing a token rotates its secret");
    let rotated_secret = rotated.body["properties"]["secret"].as_str().unwrap().to_owned();
    assert_eq!(node.client_as(Some(&rotated_secret)).get("/tokens").await.status, 200);
    assert_eq!(admin.delete("/tokens/ci").await.status, 204);
    assert_eq!(node.client_as(Some(&rotated_secret)).get("/tokens").await.status, 401);
    assert!(!node.logs().contains(&secret) && !node.logs().contains(&rotated_secret));
}

#[tokio::test]
async fn the_openapi_document_describes_exactly_the_served_operations() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let doc = node.client_as(None).get("/openapi.json").await;
    assert_eq!(doc.status, 200);
    assert!(doc.body["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc.body["paths"].as_object().unwrap();
    let mut documented: Vec<(String, String)> = paths
        .iter()
        .flat_map(|(path, item)| {
            item.as_object().unwrap().keys().map(move |method| (method.to_uppercase(), path.clone()))
        })
        .collect();
    documented.sort();
    let mut served: Vec<(String, String)> = endpoints()
        .into_iter()
        .filter(|(method, _, _)| *method != "HEAD")
        .map(|(method, path, _)| {
            let generic = path
                .split('/')
                .map(|segment| match segment {
                    "c1" | "ca1" | "t1" | "b1" | "a1" | "system" => "{id}",
                    "o1" => "{operationId}",
                    other => other,
                })
                .collect::<Vec<_>>()
                .join("/");
            (method.to_owned(), generic)
        })
        .collect();
    served.sort();
    served.dedup();
    assert_eq!(documented, served);
    let put = &doc.body["paths"]["/certificates/{id}"]["put"];
    assert!(put["requestBody"].is_object() && put["responses"]["201"].is_object());
    assert!(doc.body["components"]["securitySchemes"]["bearer"].is_object());
}
