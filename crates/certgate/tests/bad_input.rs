//! Bad input gets a precise 4xx naming the field at fault, and the stored state is unchanged.
#![allow(clippy::unwrap_used)]

mod support;

use certgate_testkit::{Identity, KeyKind, PfxFlavor, pfx, pfx_from_pairs, pfx_without_key};
use serde_json::{Value, json};
use support::{Node, b64, upload};

struct Case {
    name: &'static str,
    path: String,
    body: Vec<u8>,
    status: u16,
    code: &'static str,
    target: &'static str,
    /// A fragment the first detail's message must contain.
    says: &'static str,
}

fn case(name: &'static str, path: &str, body: Value, status: u16, target: &'static str, says: &'static str) -> Case {
    raw_case(name, path, body.to_string().into_bytes(), status, target, says)
}

fn raw_case(
    name: &'static str,
    path: &str,
    body: Vec<u8>,
    status: u16,
    target: &'static str,
    says: &'static str,
) -> Case {
    let code = if status == 413 { "PayloadTooLarge" } else { "ValidationError" };
    Case { name, path: path.to_owned(), body, status, code, target, says }
}

#[tokio::test]
async fn every_bad_input_is_a_precise_error_and_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start_with(dir.path(), &["--max-body-bytes", "65536"], &[]);
    let api = node.client();

    // A known-good state to compare against afterwards.
    let good = Identity::self_signed_client("good", KeyKind::EcdsaP256);
    assert_eq!(
        api.put("/certificates/existing", &upload(&pfx(&good, &[], "p", PfxFlavor::Modern), "p")).await.status,
        201
    );
    let ca = Identity::ca("Existing Root");
    assert_eq!(
        api.put("/caCertificates/existing", &json!({"properties": {"data": ca.cert_pem, "storeName": "Root"}}))
            .await
            .status,
        201
    );
    let before_certs = api.get("/certificates").await.text;
    let before_cas = api.get("/caCertificates").await.text;

    let leaf = Identity::self_signed_client("bad", KeyKind::EcdsaP256);
    let modern = pfx(&leaf, &[], "right", PfxFlavor::Modern);
    let other = Identity::self_signed_client("other", KeyKind::EcdsaP256);
    let cert_only_pem = b64(leaf.cert_pem.as_bytes());
    let cases = vec![
        case(
            "not base64",
            "/certificates/x",
            json!({"properties": {"data": "%%% not base64 %%%"}}),
            400,
            "properties.data",
            "base64",
        ),
        case(
            "not PKCS#12",
            "/certificates/x",
            json!({"properties": {"data": b64(b"just some bytes")}}),
            400,
            "properties.data",
            "not a PKCS#12",
        ),
        case(
            "truncated",
            "/certificates/x",
            upload(&modern[..modern.len() - 40], "right"),
            400,
            "properties.data",
            "truncated",
        ),
        case(
            "wrong password",
            "/certificates/x",
            upload(&modern, "wrong"),
            400,
            "properties.password",
            "password is wrong",
        ),
        case(
            "no private key",
            "/certificates/x",
            upload(&pfx_without_key(&leaf, "p"), "p"),
            400,
            "properties.data",
            "no private key",
        ),
        case(
            "key not matching",
            "/certificates/x",
            upload(&pfx_from_pairs(&[(&leaf, &other)], "p"), "p"),
            400,
            "properties.data",
            "does not match",
        ),
        case(
            "two keyed leaves",
            "/certificates/x",
            upload(&pfx_from_pairs(&[(&leaf, &leaf), (&other, &other)], "p"), "p"),
            400,
            "properties.data",
            "2 private keys",
        ),
        case(
            "certificate-only PEM",
            "/certificates/x",
            json!({"properties": {"data": cert_only_pem}}),
            400,
            "properties.data",
            "PEM",
        ),
        case(
            "both data and keyVault",
            "/certificates/x",
            json!({"properties": {"data": b64(&modern), "keyVault": {"secretIdentifier": "https://vault:8200/v1/kv/data/x"}}}),
            400,
            "properties.data",
            "not both",
        ),
        case("neither data nor keyVault", "/certificates/x", json!({"properties": {}}), 400, "properties", "give data"),
        case(
            "password alone",
            "/certificates/x",
            json!({"properties": {"password": "p"}}),
            400,
            "properties.password",
            "only meaningful",
        ),
        case(
            "unknown property",
            "/certificates/x",
            json!({"properties": {"data": b64(&modern), "pasword": "right"}}),
            400,
            "properties.pasword",
            "unknown field",
        ),
        case(
            "unknown top-level field",
            "/certificates/x",
            json!({"properties": {}, "extra": 1}),
            400,
            "extra",
            "unknown field",
        ),
        case(
            "wrong JSON type",
            "/certificates/x",
            json!({"properties": {"data": 42}}),
            400,
            "properties.data",
            "invalid type",
        ),
        case(
            "id too long",
            &format!("/certificates/{}", "a".repeat(81)),
            upload(&modern, "right"),
            400,
            "id",
            "at most 80",
        ),
        case("id with forbidden character", "/certificates/a*b", upload(&modern, "right"), 400, "id", "'*'"),
        case("id with encoded colon", "/certificates/a%3Ab", upload(&modern, "right"), 400, "id", "':'"),
        case("id with control character", "/certificates/a%07b", upload(&modern, "right"), 400, "id", "control"),
        case(
            "CA carrying a private key",
            "/caCertificates/x",
            json!({"properties": {"data": format!("{}{}", ca.cert_pem, ca.key_pem), "storeName": "Root"}}),
            400,
            "properties.data",
            "private key",
        ),
        case(
            "CA as PKCS#12",
            "/caCertificates/x",
            json!({"properties": {"data": b64(&modern), "storeName": "Root"}}),
            400,
            "properties.data",
            "private key",
        ),
        case(
            "CA store name",
            "/caCertificates/x",
            json!({"properties": {"data": ca.cert_pem, "storeName": "Trusted"}}),
            400,
            "properties.storeName",
            "unknown variant",
        ),
        case(
            "CA without data",
            "/caCertificates/x",
            json!({"properties": {"storeName": "Root"}}),
            400,
            "properties.data",
            "required",
        ),
        case(
            "token role",
            "/tokens/x",
            json!({"properties": {"role": "owner"}}),
            400,
            "properties.role",
            "unknown variant",
        ),
        case(
            "body over the limit",
            "/certificates/x",
            json!({"properties": {"data": "A".repeat(70_000)}}),
            413,
            "body",
            "65536",
        ),
    ];
    let mut all = cases;
    all.push(raw_case("not JSON", "/certificates/x", b"{not json".to_vec(), 400, "body", "key must be a string"));
    all.push(raw_case(
        "trailing garbage",
        "/certificates/x",
        b"{\"properties\":{}} x".to_vec(),
        400,
        "body",
        "trailing",
    ));

    for case in &all {
        let reply = api.send("PUT", &case.path, Some(case.body.clone()), &[]).await;
        assert_eq!(reply.status, case.status, "{}: {}", case.name, reply.text);
        assert_eq!(reply.error_code(), case.code, "{}: {}", case.name, reply.text);
        assert_eq!(reply.error_target(), case.target, "{}: {}", case.name, reply.text);
        assert!(
            reply.error_message().contains(case.says),
            "{}: '{}' lacks '{}'",
            case.name,
            reply.error_message(),
            case.says
        );
        assert!(!reply.text.contains("right"), "{}: the password must not be echoed", case.name);
    }

    assert_eq!(api.get("/certificates").await.text, before_certs, "certificates unchanged");
    assert_eq!(api.get("/caCertificates").await.text, before_cas, "CA certificates unchanged");
    assert_eq!(api.get("/certificates/x").await.status, 404);
    assert_eq!(api.get("/tokens/x").await.status, 404);
    assert!(!node.logs().contains("right"), "no password in the logs");
}

#[tokio::test]
async fn a_bad_replacement_keeps_the_old_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let api = node.client();
    let leaf = Identity::self_signed_client("kept", KeyKind::EcdsaP256);
    let created = api.put("/certificates/kept", &upload(&pfx(&leaf, &[], "p", PfxFlavor::Modern), "p")).await;
    let replaced = api.put("/certificates/kept", &upload(&pfx(&leaf, &[], "p", PfxFlavor::Modern), "nope")).await;
    assert_eq!(replaced.status, 400);
    let now = api.get("/certificates/kept").await;
    assert_eq!(now.etag(), created.etag(), "the failed write did not touch the entity");
    assert_eq!(now.body["properties"], created.body["properties"]);
}
