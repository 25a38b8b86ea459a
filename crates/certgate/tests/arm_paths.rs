//! Every management resource at its Azure Resource Manager path, as APIM's clients address it:
//! ARM-form ids, APIM's types, absolute nextLinks, api-version required, segment names
//! case-insensitive, the service resource, a configured service name; short paths unchanged.
#![allow(clippy::unwrap_used)]

mod support;

use certgate_testkit::{Identity, KeyKind, PfxFlavor, pfx};
use serde_json::json;
use support::{Node, Stage, must_put, policy, upload};

const PREFIX: &str = "/subscriptions/0000-1111/resourceGroups/rg-certgate/providers/Microsoft.ApiManagement/service/gw";
const VERSION: &str = "api-version=2022-08-01";

fn arm(path: &str) -> String {
    let separator = if path.contains('?') { '&' } else { '?' };
    format!("{PREFIX}{path}{separator}{VERSION}")
}

#[tokio::test]
async fn resources_are_served_at_their_arm_paths_in_arm_form() {
    let stage = Stage::start();
    let api = &stage.api;
    let leaf = Identity::self_signed_client("arm.contoso.com", KeyKind::EcdsaP256);
    let file = pfx(&leaf, &[], "p", PfxFlavor::Modern);

    let created = api.put(&arm("/certificates/c1"), &upload(&file, "p")).await;
    assert_eq!(created.status, 201, "{}", created.text);
    assert_eq!(created.body["id"], format!("{PREFIX}/certificates/c1"));
    assert_eq!(created.body["type"], "Microsoft.ApiManagement/service/certificates");
    assert_eq!(created.body["name"], "c1");
    let short = api.get("/certificates/c1").await;
    assert_eq!(
        (short.body["id"].as_str(), short.body["type"].as_str()),
        (Some("/certificates/c1"), Some("certificates"))
    );
    let short_with_version = api.get(&format!("/certificates/c1?{VERSION}")).await;
    assert_eq!(short_with_version.status, 200, "the short paths accept api-version too");

    // ARM segment names are case-insensitive; ids spell them as ARM does.
    let shouted = PREFIX.replace("subscriptions", "SUBSCRIPTIONS").replace("resourceGroups", "resourcegroups");
    let found = api.get(&format!("{shouted}/Certificates/c1?{VERSION}")).await;
    assert_eq!(found.status, 200, "{}", found.text);
    assert_eq!(found.body["id"], format!("{PREFIX}/certificates/c1"));

    let missing = api.get(&format!("{PREFIX}/certificates/c1")).await;
    assert_eq!((missing.status, missing.error_code()), (400, "MissingApiVersionParameter"), "{}", missing.text);

    // Paging: the nextLink is absolute, in ARM form, with the api-version, and it works.
    let again = api.put(&arm("/certificates/c2"), &upload(&file, "p")).await;
    assert_eq!(again.status, 201);
    let page = api.get(&arm("/certificates?$top=1")).await;
    assert_eq!(page.body["value"][0]["id"], format!("{PREFIX}/certificates/c1"));
    let next = page.body["nextLink"].as_str().unwrap().to_owned();
    assert!(
        next.starts_with(&format!("{}{PREFIX}/certificates?", stage.node.admin)) && next.contains(VERSION),
        "{next}"
    );
    let second = api.send("GET", next.strip_prefix(&stage.node.admin).unwrap(), None, &[]).await;
    assert_eq!(second.body["value"][0]["name"], "c2", "{}", second.text);
    assert!(second.body.get("nextLink").is_none());

    // Nested resources get APIM's nested types.
    must_put(api, &arm("/apis/orders"), json!({"properties": {"displayName": "Orders", "path": "orders"}})).await;
    let operation = api
        .put(
            &arm("/apis/orders/operations/get"),
            &json!({"properties": {"displayName": "Get", "method": "GET", "urlTemplate": "/x"}}),
        )
        .await;
    assert_eq!(operation.body["type"], "Microsoft.ApiManagement/service/apis/operations", "{}", operation.text);
    assert_eq!(operation.body["id"], format!("{PREFIX}/apis/orders/operations/get"));
    let api_policy = api.put(&arm("/apis/orders/policies/policy"), &policy("")).await;
    assert_eq!(api_policy.body["type"], "Microsoft.ApiManagement/service/apis/policies", "{}", api_policy.text);
    let operations = api.get(&arm("/apis/orders/operations")).await;
    assert_eq!(operations.body["value"][0]["type"], "Microsoft.ApiManagement/service/apis/operations");

    // Errors keep APIM's envelope; a delete refused for its referrer works the same way.
    let absent = api.get(&arm("/backends/none")).await;
    assert_eq!((absent.status, absent.error_code()), (404, "NotFound"));

    // The service resource describes the node.
    let service = api.get(&arm("")).await;
    assert_eq!(service.status, 200, "{}", service.text);
    assert_eq!(service.body["name"], "gw");
    assert_eq!(service.body["type"], "Microsoft.ApiManagement/service");
    assert_eq!(service.body["properties"]["gatewayUrl"], stage.node.gateway.as_str());
    let unauthenticated = api.with_token(None).get(&arm("/certificates")).await;
    assert_eq!(unauthenticated.status, 401, "ARM paths need a token like the short ones");
}

#[tokio::test]
async fn a_configured_service_name_refuses_other_names() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start_with(dir.path(), &["--service-name", "gw", "--subscription-id", "0000-1111"], &[]);
    let api = node.client();
    assert_eq!(api.get(&arm("/certificates")).await.status, 200);
    let other = PREFIX.replace("/service/gw", "/service/other");
    let refused = api.get(&format!("{other}/certificates?{VERSION}")).await;
    assert_eq!((refused.status, refused.error_code()), (404, "ResourceNotFound"), "{}", refused.text);
    let other_subscription = PREFIX.replace("0000-1111", "2222");
    assert_eq!(api.get(&format!("{other_subscription}/certificates?{VERSION}")).await.status, 404);
}
