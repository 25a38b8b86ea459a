//! The certificate store through the real binary's management API.
#![allow(clippy::unwrap_used)]

mod support;

use certgate_testkit::{Identity, KeyKind, PfxFlavor, openssl_sha1_fingerprint, pfx};
use serde_json::json;
use support::{Node, b64, upload};

#[tokio::test]
async fn modern_and_legacy_uploads_return_openssl_thumbprints() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let api = node.client();
    let root = Identity::ca("Upload Root");
    let intermediate = root.intermediate("Upload Intermediate");
    let cases = [
        ("modern-rsa", intermediate.client("modern.contoso.com", KeyKind::Rsa2048), PfxFlavor::Modern),
        ("legacy-p384", intermediate.client("legacy.contoso.com", KeyKind::EcdsaP384), PfxFlavor::Legacy),
        ("tripledes-p256", Identity::self_signed_client("3des.contoso.com", KeyKind::EcdsaP256), PfxFlavor::TripleDes),
    ];
    for (id, leaf, flavor) in &cases {
        let reply =
            api.put(&format!("/certificates/{id}"), &upload(&pfx(leaf, &[&intermediate], "p", *flavor), "p")).await;
        assert_eq!(reply.status, 201, "{id}: {}", reply.text);
        let props = &reply.body["properties"];
        assert_eq!(props["thumbprint"], openssl_sha1_fingerprint(&leaf.cert_pem), "{id}");
        assert!(props["subject"].as_str().unwrap().starts_with("CN="), "{id}");
        assert!(props.get("data").is_none() && props.get("password").is_none(), "secrets are never returned");
        assert_eq!(reply.body["id"], format!("/certificates/{id}"));
        assert_eq!(reply.body["type"], "certificates");
        assert_eq!(reply.body["name"], *id);
    }
    let listed = api.get("/certificates").await;
    assert_eq!(listed.body["count"], 3);
    assert!(!listed.text.contains("PRIVATE") && !listed.text.contains("\"data\""));
}

#[tokio::test]
async fn entity_conventions_etag_if_match_case_and_head() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let api = node.client();
    let leaf = Identity::self_signed_client("etag", KeyKind::EcdsaP256);
    let file = pfx(&leaf, &[], "p", PfxFlavor::Modern);

    let created = api.put("/certificates/Orders-Client", &upload(&file, "p")).await;
    assert_eq!(created.status, 201);
    let etag = created.etag();
    let got = api.get("/certificates/orders-client?api-version=2022-08-01").await;
    assert_eq!(got.status, 200, "ids are case-insensitive and api-version is ignored");
    assert_eq!(got.body["name"], "Orders-Client", "the original spelling is kept");
    assert_eq!(got.etag(), etag);

    let head = api.send("HEAD", "/certificates/ORDERS-CLIENT", None, &[]).await;
    assert_eq!((head.status, head.text.as_str()), (200, ""));
    assert_eq!(api.send("HEAD", "/certificates/nope", None, &[]).await.status, 404);

    let body = upload(&file, "p").to_string().into_bytes();
    let stale = api.send("PUT", "/certificates/orders-client", Some(body.clone()), &[("If-Match", "\"999999\"")]).await;
    assert_eq!((stale.status, stale.error_code()), (412, "PreconditionFailed"));
    let replaced = api.send("PUT", "/certificates/orders-client", Some(body.clone()), &[("If-Match", &etag)]).await;
    assert_eq!(replaced.status, 200, "replace answers 200");
    assert_ne!(replaced.etag(), etag);
    let any = api.send("PUT", "/certificates/orders-client", Some(body), &[("If-Match", "*")]).await;
    assert_eq!(any.status, 200);

    let patched = api.send("PATCH", "/certificates/orders-client", Some(br#"{"properties":{}}"#.to_vec()), &[]).await;
    assert_eq!(patched.status, 200);
    assert_eq!(patched.body["properties"]["thumbprint"], openssl_sha1_fingerprint(&leaf.cert_pem));
    let other = Identity::self_signed_client("patched", KeyKind::EcdsaP256);
    let repatched = api
        .send(
            "PATCH",
            "/certificates/orders-client",
            Some(upload(&pfx(&other, &[], "", PfxFlavor::Modern), "").to_string().into_bytes()),
            &[],
        )
        .await;
    assert_eq!(repatched.body["properties"]["thumbprint"], openssl_sha1_fingerprint(&other.cert_pem));
    assert_eq!(api.send("PATCH", "/certificates/nope", Some(br#"{"properties":{}}"#.to_vec()), &[]).await.status, 404);

    let stale_delete = api.send("DELETE", "/certificates/orders-client", None, &[("If-Match", &etag)]).await;
    assert_eq!(stale_delete.status, 412);
    assert_eq!(api.delete("/certificates/orders-client").await.status, 204);
    let gone = api.get("/certificates/orders-client").await;
    assert_eq!((gone.status, gone.error_code()), (404, "NotFound"));
    assert_eq!(api.delete("/certificates/orders-client").await.status, 404);
}

#[tokio::test]
async fn lists_page_and_filter() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let api = node.client();
    for name in ["alpha", "bravo", "charlie", "delta", "echo"] {
        let leaf = Identity::self_signed_client(&format!("{name}.contoso.com"), KeyKind::EcdsaP256);
        assert_eq!(
            api.put(&format!("/certificates/{name}"), &upload(&pfx(&leaf, &[], "p", PfxFlavor::Modern), "p"))
                .await
                .status,
            201
        );
    }
    let page = api.get("/certificates?$top=2&$skip=1").await;
    let names: Vec<&str> = page.body["value"].as_array().unwrap().iter().map(|v| v["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["bravo", "charlie"]);
    assert_eq!(page.body["count"], 5);
    let next = page.body["nextLink"].as_str().unwrap();
    assert_eq!(next, "/certificates?$top=2&$skip=3");
    let last = api.get(next).await;
    let names: Vec<&str> = last.body["value"].as_array().unwrap().iter().map(|v| v["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["delta", "echo"]);
    assert!(last.body.get("nextLink").is_none(), "the last page has no nextLink");

    let filtered = api.get("/certificates?$filter=contains(subject,'CHARLIE')%20or%20name%20eq%20'x'").await;
    assert_eq!((filtered.status, filtered.error_target()), (400, "$filter"));
    let filtered = api.get("/certificates?$filter=startswith(name,'d')%20or%20endswith(name,'o')").await;
    assert_eq!(filtered.status, 400);
    let filtered = api.get("/certificates?$filter=name%20ge%20'c'%20and%20contains(subject,'contoso')").await;
    let names: Vec<&str> =
        filtered.body["value"].as_array().unwrap().iter().map(|v| v["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["charlie", "delta", "echo"]);
    let by_expiry = api.get("/certificates?$filter=expirationDate%20gt%20'2020-01-01T00:00:00Z'").await;
    assert_eq!(by_expiry.body["count"], 5);
    for (query, target) in
        [("$top=0", "$top"), ("$top=abc", "$top"), ("$skip=-1", "$skip"), ("$filter=owner%20eq%20'x'", "$filter")]
    {
        let reply = api.get(&format!("/certificates?{query}")).await;
        assert_eq!(
            (reply.status, reply.error_code(), reply.error_target()),
            (400, "ValidationError", target),
            "{query}"
        );
    }
}

#[tokio::test]
async fn expired_certificates_are_accepted_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let leaf = Identity::expired_client("old.contoso.com");
    let reply = node.client().put("/certificates/old", &upload(&pfx(&leaf, &[], "p", PfxFlavor::Modern), "p")).await;
    assert_eq!(reply.status, 201);
    assert_eq!(reply.body["properties"]["expirationDate"], "2021-01-01T00:00:00Z");
    assert_eq!(reply.body["warnings"][0], "the certificate expired on 2021-01-01T00:00:00Z");
}

#[tokio::test]
async fn ca_certificates_are_separate_public_entities() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let api = node.client();
    let root = Identity::ca("Private Root");
    let intermediate = root.intermediate("Private Intermediate");
    let as_pem =
        api.put("/caCertificates/root", &json!({"properties": {"data": root.cert_pem, "storeName": "Root"}})).await;
    assert_eq!(as_pem.status, 201, "{}", as_pem.text);
    assert_eq!(as_pem.body["properties"]["thumbprint"], openssl_sha1_fingerprint(&root.cert_pem));
    assert_eq!(as_pem.body["properties"]["storeName"], "Root");
    let as_der = api
        .put(
            "/caCertificates/inter",
            &json!({"properties": {"data": b64(&intermediate.cert_der), "storeName": "CertificateAuthority"}}),
        )
        .await;
    assert_eq!(as_der.status, 201, "{}", as_der.text);
    let listed = api.get("/caCertificates?$filter=storeName%20eq%20'Root'").await;
    assert_eq!(listed.body["count"], 1, "adding one never replaces another");
    assert_eq!(api.get("/caCertificates").await.body["count"], 2);
    let moved =
        api.send("PATCH", "/caCertificates/inter", Some(br#"{"properties":{"storeName":"Root"}}"#.to_vec()), &[]).await;
    assert_eq!((moved.status, moved.body["properties"]["storeName"].as_str()), (200, Some("Root")));
    assert_eq!(moved.body["properties"]["thumbprint"], openssl_sha1_fingerprint(&intermediate.cert_pem));
    assert_eq!(api.delete("/caCertificates/inter").await.status, 204);
}
