//! Management of backends, APIs and policies: save-time validation and delete protection.
#![allow(clippy::unwrap_used)]

mod support;

use certgate_testkit::{Identity, KeyKind};
use serde_json::json;
use support::{Node, Stage, must_put, policy, upload_certificate};

#[tokio::test]
async fn referenced_certificates_and_backends_cannot_be_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let api = node.client();
    let thumbprint =
        upload_certificate(&api, "shared", &Identity::self_signed_client("shared", KeyKind::EcdsaP256)).await;
    upload_certificate(&api, "unused", &Identity::self_signed_client("unused", KeyKind::EcdsaP256)).await;
    must_put(
        &api,
        "/backends/orders",
        json!({"properties": {"url": "https://orders.internal", "credentials": {"certificateIds": ["shared"]}}}),
    )
    .await;
    must_put(&api, "/apis/orders", json!({"properties": {"displayName": "Orders", "path": "orders"}})).await;
    must_put(&api, "/apis/orders/operations/get", json!({"properties": {"method": "GET", "urlTemplate": "/{id}"}}))
        .await;
    must_put(&api, "/apis/orders/policies/policy", policy(r#"<authentication-certificate certificate-id="SHARED" />"#))
        .await;
    must_put(
        &api,
        "/apis/orders/operations/get/policies/policy",
        policy(&format!(
            r#"<authentication-certificate thumbprint="{thumbprint}" /><set-backend-service backend-id="orders" />"#
        )),
    )
    .await;
    must_put(&api, "/policies/policy", policy(r#"<authentication-certificate certificate-id="shared" />"#)).await;

    let refused = api.delete("/certificates/shared").await;
    assert_eq!((refused.status, refused.error_code()), (409, "Conflict"), "{}", refused.text);
    let mut referrers: Vec<&str> =
        refused.body["error"]["details"].as_array().unwrap().iter().map(|d| d["target"].as_str().unwrap()).collect();
    referrers.sort();
    assert_eq!(
        referrers,
        [
            "/apis/orders/operations/get/policies/policy",
            "/apis/orders/policies/policy",
            "/backends/orders",
            "/policies/policy",
        ]
    );
    let refused = api.delete("/backends/orders").await;
    assert_eq!(refused.status, 409);
    assert_eq!(refused.body["error"]["details"][0]["target"], "/apis/orders/operations/get/policies/policy");
    assert_eq!(api.delete("/certificates/unused").await.status, 204, "unreferenced certificates delete");

    // Remove the references one by one; then the deletes pass.
    assert_eq!(api.delete("/policies/policy").await.status, 204);
    assert_eq!(api.delete("/apis/orders/operations/get/policies/policy").await.status, 204);
    assert_eq!(api.delete("/backends/orders").await.status, 204);
    assert_eq!(api.delete("/certificates/shared").await.status, 409, "the API policy still names it");
    assert_eq!(api.delete("/apis/orders").await.status, 204, "deleting the API removes its policies");
    assert_eq!(api.delete("/certificates/shared").await.status, 204);
    assert_eq!(api.get("/apis/orders/operations/get").await.status, 404);
}

#[tokio::test]
async fn policies_are_validated_with_line_and_column_and_references_checked() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let api = node.client();
    must_put(
        &api,
        "/apis/a",
        json!({"properties": {"displayName": "A", "path": "a", "serviceUrl": "https://a.internal"}}),
    )
    .await;
    let cases = [
        (
            "<policies>\n  <inbound>\n    <rate-limit calls=\"1\" />\n  </inbound>\n</policies>",
            "rate-limit (line 3, column 5)",
        ),
        (
            "<policies><inbound><set-header name=\"x\"><value>@(context.User)</value></set-header></inbound></policies>",
            "expressions",
        ),
        (
            "<policies><inbound><authentication-certificate certificate-id=\"ghost\" /></inbound></policies>",
            "Certificate with id 'ghost' not found.",
        ),
        (
            "<policies><inbound><set-backend-service backend-id=\"ghost\" /></inbound></policies>",
            "Backend with id 'ghost' not found.",
        ),
        (
            "<policies><inbound><authentication-certificate thumbprint=\"0000000000000000000000000000000000000000\" /></inbound></policies>",
            "not found",
        ),
    ];
    for (value, says) in cases {
        let reply =
            api.put("/apis/a/policies/policy", &json!({"properties": {"format": "rawxml", "value": value}})).await;
        assert_eq!((reply.status, reply.error_target()), (400, "properties.value"), "{value}: {}", reply.text);
        assert!(reply.error_message().contains(says), "{value}: {}", reply.error_message());
    }
    assert_eq!(api.get("/apis/a/policies/policy").await.status, 404, "nothing stored");

    let text = "<policies>\n  <inbound><base /></inbound>\n</policies>";
    must_put(&api, "/apis/a/policies/policy", json!({"properties": {"format": "rawxml", "value": text}})).await;
    let stored = api.get("/apis/a/policies/policy").await;
    assert_eq!(stored.body["properties"]["value"], text, "GET returns the text as stored");
    assert_eq!(stored.body["id"], "/apis/a/policies/policy");
    assert_eq!(stored.body["properties"]["format"], "rawxml", "without ?format, the format it was saved in");
    for format in ["xml", "rawxml"] {
        let asked = api.get(&format!("/apis/a/policies/policy?format={format}")).await;
        assert_eq!(asked.body["properties"]["format"], format, "{}", asked.text);
        assert_eq!(asked.body["properties"]["value"], text, "the same text in either format");
    }
    for (format, says) in [("xml-link", "fetched from a URL"), ("json", "use xml or rawxml")] {
        let asked = api.get(&format!("/apis/a/policies/policy?format={format}")).await;
        assert_eq!((asked.status, asked.error_target()), (400, "format"), "{}", asked.text);
        assert!(asked.error_message().contains(says), "{}", asked.text);
        let saved = api.put("/apis/a/policies/policy", &json!({"properties": {"format": format, "value": text}})).await;
        assert_eq!((saved.status, saved.error_target()), (400, "properties.format"), "{}", saved.text);
    }
    assert_eq!(api.get("/apis/missing/policies/policy").await.status, 404);

    let dangling = api
        .put("/backends/b", &json!({"properties": {"url": "https://b", "credentials": {"certificateIds": ["ghost"]}}}))
        .await;
    assert_eq!((dangling.status, dangling.error_target()), (400, "properties.credentials.certificateIds[0]"));
    assert_eq!(dangling.error_message(), "Certificate with id 'ghost' not found.");
    let duplicate = api.put("/apis/b", &json!({"properties": {"displayName": "B", "path": "/A/"}})).await;
    assert_eq!(
        (duplicate.status, duplicate.error_target()),
        (400, "properties.path"),
        "paths are unique: {}",
        duplicate.text
    );
    assert_eq!(duplicate.error_message(), "path 'A' is already used by 'a'");
}

/// APIM's descriptive operation properties are stored and returned as given; template
/// parameters must declare exactly the template's `{param}`s, also after a PATCH of the template.
#[tokio::test]
async fn operation_template_parameters_are_stored_and_must_match_the_template() {
    let stage = Stage::start();
    let api = &stage.api;
    must_put(api, "/apis/shop", json!({"properties": {"displayName": "Shop", "path": "shop"}})).await;
    let parameters =
        json!([{"name": "id", "type": "string", "required": true, "values": [], "description": "Item id"}]);
    let body = json!({"properties": {"displayName": "Get", "method": "GET", "urlTemplate": "/items/{id}",
        "description": "One item", "templateParameters": parameters,
        "request": {"queryParameters": []}, "responses": [{"statusCode": 200, "description": "OK"}]}});
    let created = must_put(api, "/apis/shop/operations/get", body).await;
    assert_eq!(created.body["properties"]["templateParameters"], parameters, "{}", created.text);
    assert_eq!(created.body["properties"]["description"], "One item");
    assert_eq!(created.body["properties"]["responses"][0]["statusCode"], 200);
    assert_eq!(
        api.get("/apis/shop/operations/get").await.body["properties"]["request"],
        json!({"queryParameters": []})
    );

    for (template, parameters, message) in [
        ("/items/{id}/{part}", json!([{"name": "id", "type": "string"}]), "'part' is not declared"),
        ("/items", json!([{"name": "id", "type": "string"}]), "'id' is not a parameter"),
        ("/items/{id}", json!([{"name": "id"}]), "needs a name and a type"),
        ("/items/{id}", json!([{"name": "id", "type": "string"}, {"name": "id", "type": "string"}]), "declared twice"),
    ] {
        let body = json!({"properties": {"method": "GET", "urlTemplate": template, "templateParameters": parameters}});
        let refused = api.put("/apis/shop/operations/bad", &body).await;
        assert_eq!(refused.status, 400, "{template}: {}", refused.text);
        assert!(refused.error_target().starts_with("properties.templateParameters"), "{}", refused.text);
        assert!(refused.error_message().contains(message), "{message}: {}", refused.text);
    }
    let patch = json!({"properties": {"urlTemplate": "/items/{itemId}"}});
    let reply = api
        .send("PATCH", "/apis/shop/operations/get", Some(patch.to_string().into_bytes()), &[("If-Match", "*")])
        .await;
    assert_eq!(reply.status, 400, "the kept parameters no longer match: {}", reply.text);
    assert_eq!(
        api.get("/apis/shop/operations/get").await.body["properties"]["urlTemplate"],
        "/items/{id}",
        "unchanged"
    );
}

/// An API's descriptive `description` is stored as given; APIM's revision and type properties
/// are answered as certgate implements them (one current revision of an http API) and anything
/// else is refused by name.
#[tokio::test]
async fn api_descriptions_are_stored_and_revisions_or_other_types_refused_by_name() {
    let stage = Stage::start();
    let api = &stage.api;
    let body = json!({"properties": {"displayName": "Shop", "path": "shop", "description": "The shop",
        "apiRevision": "1", "isCurrent": true, "type": "http"}});
    let created = must_put(api, "/apis/shop", body).await;
    let properties = &created.body["properties"];
    assert_eq!(properties["description"], "The shop", "{}", created.text);
    assert_eq!((properties["apiRevision"].as_str(), properties["isCurrent"].as_bool()), (Some("1"), Some(true)));
    assert_eq!(properties["type"], "http");
    let refused_properties = [
        ("apiRevision", json!("2"), "revisions"),
        ("isCurrent", json!(false), "revisions"),
        ("apiRevisionDescription", json!("r"), "revisions"),
        ("type", json!("soap"), "only http"),
        ("subscriptionRequired", json!(true), "subscriptions"),
        ("subscriptionKeyParameterNames", json!({"header": "k", "query": "k"}), "subscriptions"),
        ("authenticationSettings", json!({"oAuth2": {"authorizationServerId": "a"}}), "OAuth"),
        ("apiVersion", json!("v2"), "versions"),
        ("apiVersionSetId", json!("/apiVersionSets/s"), "versions"),
        ("apiVersionSet", json!({"versioningScheme": "Segment"}), "versions"),
        ("apiVersionDescription", json!("v"), "versions"),
        ("sourceApiId", json!("/apis/shop"), "cloning"),
        ("value", json!("https://example.com/openapi.json"), "importing"),
        ("format", json!("openapi-link"), "importing"),
        ("wsdlSelector", json!({"wsdlServiceName": "s"}), "importing"),
        ("apiType", json!("soap"), "importing"),
        ("translateRequiredQueryParameters", json!("template"), "importing"),
    ];
    for (field, value, words) in refused_properties {
        let body = json!({"properties": {"displayName": "X", "path": "x", field: value}});
        let refused = api.put("/apis/x", &body).await;
        assert_eq!(refused.status, 400, "{field}: {}", refused.text);
        assert_eq!(refused.error_target(), format!("properties.{field}"), "{}", refused.text);
        assert!(refused.error_message().contains(words), "{field}: {}", refused.text);
    }
    let policies =
        json!({"properties": {"method": "GET", "urlTemplate": "/a", "displayName": "A", "policies": "<policies/>"}});
    let refused = api.put("/apis/shop/operations/a", &policies).await;
    assert_eq!((refused.status, refused.error_target()), (400, "properties.policies"), "{}", refused.text);
    assert!(refused.error_message().contains("policies/policy"), "{}", refused.text);
    assert_eq!(api.get("/apis/x").await.status, 404, "nothing was stored");
}

/// An API's terms, contact and licence and a backend's resourceId are stored and returned as
/// given; PATCH keeps those it does not name; a malformed URL or address is a 400 naming it and
/// changes nothing.
#[tokio::test]
async fn descriptive_contact_licence_and_resource_ids_are_stored_checked_and_kept_across_patches() {
    let stage = Stage::start();
    let api = &stage.api;
    let contact = json!({"name": "Shop team", "url": "https://contoso.com/shop", "email": "shop@contoso.com"});
    let license = json!({"name": "MIT", "url": "https://opensource.org/licenses/MIT"});
    let body = json!({"properties": {"displayName": "Shop", "path": "shop",
        "termsOfServiceUrl": "https://contoso.com/terms", "contact": contact, "license": license}});
    must_put(api, "/apis/shop", body).await;
    let patch = json!({"properties": {"license": {"name": "Apache-2.0"}}});
    let patched = api.send("PATCH", "/apis/shop", Some(patch.to_string().into_bytes()), &[("If-Match", "*")]).await;
    assert_eq!(patched.status, 200, "{}", patched.text);
    let stored = api.get("/apis/shop").await.body["properties"].clone();
    assert_eq!(stored["contact"], contact, "kept: {stored}");
    assert_eq!(stored["termsOfServiceUrl"], "https://contoso.com/terms");
    assert_eq!(stored["license"], json!({"name": "Apache-2.0"}), "a given object replaces the old one");
    for (properties, target) in [
        (json!({"contact": {"email": "not an address"}}), "properties.contact.email"),
        (json!({"contact": {"email": "shop@localhost"}}), "properties.contact.email"),
        (json!({"contact": {"url": "contoso.com/shop"}}), "properties.contact.url"),
        (json!({"license": {"url": "ftp://contoso.com/licence"}}), "properties.license.url"),
        (json!({"termsOfServiceUrl": "terms.html"}), "properties.termsOfServiceUrl"),
        (json!({"contact": {"phone": "+1"}}), "properties"),
    ] {
        let refused = api
            .send("PATCH", "/apis/shop", Some(json!({"properties": properties}).to_string().into_bytes()), &[])
            .await;
        assert_eq!(refused.status, 400, "{properties}: {}", refused.text);
        assert!(refused.error_target().starts_with(target), "{properties}: {}", refused.text);
    }
    assert_eq!(api.get("/apis/shop").await.body["properties"], stored, "nothing changed");

    let resource_id = "/subscriptions/s/resourceGroups/g/providers/Microsoft.Web/sites/shop";
    let body = json!({"properties": {"url": "http://127.0.0.1:9", "resourceId": resource_id}});
    must_put(api, "/backends/shop", body).await;
    let patch = json!({"properties": {"title": "Shop"}});
    let patched = api.send("PATCH", "/backends/shop", Some(patch.to_string().into_bytes()), &[]).await;
    assert_eq!(patched.body["properties"]["resourceId"], resource_id, "{}", patched.text);
    let overlong = json!({"properties": {"resourceId": "x".repeat(2001)}});
    let refused = api.send("PATCH", "/backends/shop", Some(overlong.to_string().into_bytes()), &[]).await;
    assert_eq!((refused.status, refused.error_target()), (400, "properties.resourceId"), "{}", refused.text);
}

/// Backend features certgate does not have are refused by name, not ignored.
#[tokio::test]
async fn backend_proxies_service_fabric_circuit_breakers_and_pools_are_refused_by_name() {
    let stage = Stage::start();
    for (field, value, words) in [
        ("proxy", json!({"url": "http://proxy:3128"}), "proxies are not supported"),
        ("properties", json!({"serviceFabricCluster": {"managementEndpoints": []}}), "Service Fabric"),
        ("circuitBreaker", json!({"rules": []}), "circuit breakers"),
        ("pool", json!({"services": []}), "pools"),
        ("type", json!("Pool"), "only Single"),
    ] {
        let body = json!({"properties": {"url": "http://127.0.0.1:9", field: value}});
        let refused = stage.api.put("/backends/b", &body).await;
        assert_eq!(refused.status, 400, "{}", refused.text);
        assert_eq!(refused.error_target(), format!("properties.{field}"), "{}", refused.text);
        assert!(refused.error_message().contains(words), "{}", refused.text);
    }
    assert_eq!(stage.api.get("/backends/b").await.status, 404);
}
