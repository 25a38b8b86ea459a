//! The seed's walkthrough in a real headless Chromium against the real binary: sign in with a
//! token, add a PFX and a vault reference (browsing the vault with Select), give an API's backend
//! a client certificate as its gateway credentials, see the element in the policy editor, watch
//! the gateway present it to a backend that requires one, be refused a delete while the API
//! refers to the certificate, and have a broken policy shown at its line and column. A reader
//! sees the same pages without write controls, and a forged write fails. Every page the test
//! waits for is saved as a screenshot under `target/test-output/portal/`, with named ones for
//! the README's pictures.
#![allow(clippy::unwrap_used)]

mod support;

use certgate_testkit::{
    Browser, Identity, KeyKind, OpenBao, PfxFlavor, pfx, self_signed_echo_backend, sha1_hex, test_output_dir,
};
use serde_json::json;
use support::{Node, must_put, pfx_secret, policy, seen_fingerprint, via_gateway};

/// The system identity may read the gateway's secrets but not list them.
const READ: &str = r#"path "secret/data/gw/*" { capabilities = ["read"] }"#;
/// The named identity `browser` may list them too.
const READ_AND_LIST: &str = r#"
path "secret/data/gw/*" { capabilities = ["read"] }
path "secret/metadata/gw/*" { capabilities = ["list"] }
"#;

const PASSWORD: &str = "portal-pfx-passw0rd";

/// Uploads a fresh self-signed client certificate as `id` through the API.
async fn upload_pfx(api: &support::Client, id: &str) -> String {
    let leaf = Identity::self_signed_client(id, KeyKind::EcdsaP256);
    support::upload_certificate(api, &id.replace('%', "%25"), &leaf).await
}

/// Signs in through the form.
async fn sign_in(browser: &Browser, node: &Node, token: &str) {
    browser.goto(&format!("{}/portal", node.admin)).await;
    browser.wait_for_text("Sign in with a management API token").await;
    browser.fill("Token", token).await;
    browser.click_button("Sign in").await;
    browser.wait_for_text("Sign out").await;
}

/// The value of the form control labelled `label`.
async fn value_of(browser: &Browser, label: &str) -> String {
    browser.field(label).await.prop("value").await.unwrap().unwrap_or_default()
}

/// POSTs `fields` (form-encoded) to `path` from inside the page, as a forged form would, and
/// returns the status the portal answered.
async fn post_from_page(browser: &Browser, path: &str, fields: serde_json::Value) -> u64 {
    let script = "return fetch(arguments[0], {method: 'POST', redirect: 'manual', \
                  body: new URLSearchParams(arguments[1])}).then(r => r.status)";
    browser.run(script, vec![json!(path), fields]).await.as_u64().unwrap()
}

/// The session's CSRF token, as every form on the page carries it.
async fn page_csrf(browser: &Browser) -> String {
    browser.run("return document.querySelector('input[name=csrf]').value", vec![]).await.as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_walkthrough_in_a_real_browser() {
    let output = test_output_dir("portal");
    let bao = OpenBao::start().await;
    let system_token = bao.token_with_policy("portal-read", READ).await;
    let list_token = bao.token_with_policy("portal-list", READ_AND_LIST).await;
    let (payments_secret, payments_fingerprint) = pfx_secret("payments-from-vault");
    bao.write_secret("gw/payments", payments_secret).await;

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("certgate.toml");
    std::fs::write(&config, format!("[identities.browser]\ntoken = \"{list_token}\"\n")).unwrap();
    let node = Node::start_with(
        &dir.path().join("data"),
        &["--config", config.to_str().unwrap()],
        &[("CERTGATE_VAULT_TOKEN", &system_token)],
    );
    let api = node.client();
    let http = reqwest::Client::new();
    let reader = api.put("/tokens/viewer", &json!({"properties": {"role": "reader"}})).await;
    let reader_token = reader.body["properties"]["secret"].as_str().unwrap().to_owned();

    // A backend that requires a client certificate, an API in front of it with an operation,
    // and no gateway credentials yet: the backend refuses the handshake.
    let backend = self_signed_echo_backend().await;
    let tls = json!({"validateCertificateChain": false, "validateCertificateName": false});
    must_put(&api, "/backends/orders", json!({"properties": {"url": backend.url("localhost"), "tls": tls}})).await;
    must_put(&api, "/apis/orders", json!({"properties": {"displayName": "Orders", "path": "orders"}})).await;
    must_put(
        &api,
        "/apis/orders/operations/list-orders",
        json!({"properties": {"displayName": "List orders", "method": "GET", "urlTemplate": "/list"}}),
    )
    .await;
    let formatted = "<policies>\n    <inbound>\n        <base />\n        <set-backend-service backend-id=\"orders\" />\n    </inbound>\n    <backend>\n        <base />\n    </backend>\n    <outbound>\n        <base />\n    </outbound>\n    <on-error>\n        <base />\n    </on-error>\n</policies>";
    must_put(&api, "/apis/orders/policies/policy", json!({"properties": {"format": "rawxml", "value": formatted}}))
        .await;
    assert_ne!(via_gateway(&http, &node, "/orders/list").await.0, 200, "no client certificate yet");

    let leaf = Identity::self_signed_client("orders.portal.test", KeyKind::EcdsaP256);
    let leaf_fingerprint = sha1_hex(&leaf.cert_der);
    let pfx_file = dir.path().join("orders-client.pfx");
    std::fs::write(&pfx_file, pfx(&leaf, &[], PASSWORD, PfxFlavor::Modern)).unwrap();

    let browser = Browser::start(&output).await;

    // Sign in: a wrong token is refused on the form; the right one opens Certificates.
    browser.goto(&format!("{}/portal/certificates", node.admin)).await;
    browser.wait_for_text("Sign in with a management API token").await;
    browser.snap("sign-in").await;
    browser.fill("Token", "cg_not-a-token").await;
    browser.click_button("Sign in").await;
    browser.wait_for_text("This token is not valid.").await;
    sign_in(&browser, &node, &node.admin_token()).await;
    let session = browser.cookie("certgate_session").await.expect("a session cookie");
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/portal", "Expires="] {
        assert!(session.contains(attribute), "{attribute} in {session}");
    }
    assert!(!session.contains("Secure"), "served over plain HTTP here: {session}");
    browser.wait_for_text("0 certificate(s)").await;

    // + Add → Custom: a wrong password is named at its field and nothing is stored.
    browser.click_link("+ Add").await;
    browser.wait_for_text("Certificate file").await;
    browser.fill("Id", "orders-client").await;
    browser.choose("Custom").await;
    browser.upload("Certificate file", &pfx_file).await;
    browser.fill("Password", "not-the-password").await;
    browser.snap("add-custom").await;
    browser.click_button("Add").await;
    browser.wait_for_text("the password is wrong").await;
    browser.snap("add-wrong-password").await;
    let at_field = browser.text_of("#password-error").await;
    assert!(at_field.contains("the password is wrong"), "named at the Password field: {at_field}");
    assert_eq!(value_of(&browser, "Id").await, "orders-client", "the form keeps what was typed");
    assert_eq!(value_of(&browser, "Password").await, "", "a password is never re-filled");
    assert_eq!(api.get("/certificates/orders-client").await.status, 404, "nothing stored");

    browser.upload("Certificate file", &pfx_file).await;
    browser.fill("Password", PASSWORD).await;
    browser.click_button("Add").await;
    let listed = browser.wait_for_text("Certificate orders-client added").await;
    assert!(listed.to_lowercase().contains(&leaf_fingerprint), "the thumbprint is shown:\n{listed}");
    assert!(listed.contains("CN=orders.portal.test"), "{listed}");
    assert!(!browser.client().source().await.unwrap().contains(PASSWORD));

    // + Add → Key vault: Select through the system identity, which may not list, says so;
    // through `browser` it lists the folder, and picking fills the identifier.
    browser.click_link("+ Add").await;
    browser.wait_for_text("Certificate file").await;
    browser.fill("Id", "payments-client").await;
    browser.choose("Key vault").await;
    browser.wait_for_text("Secret identifier").await;
    browser.fill("Secret identifier", &bao.identifier("gw/")).await;
    browser.select_option("Client identity", "system").await;
    browser.click_button("Select").await;
    let lacking = browser.wait_for_text("may not list").await;
    assert!(lacking.contains("list capability"), "{lacking}");
    browser.snap("select-without-list").await;
    browser.select_option("Client identity", "browser").await;
    // An identifier that pins a version warns that it will not rotate; Select lists its folder.
    browser.fill("Secret identifier", &format!("{}?version=1", bao.identifier("gw/payments"))).await;
    browser.click_button("Select").await;
    browser.wait_for_text("will not rotate").await;
    browser.wait_for_text(&bao.identifier("gw/")).await;
    browser.snap("select-lists-the-folder").await;
    browser.click_button("payments").await;
    let picked = browser.wait_for_text("Secret identifier").await;
    assert_eq!(value_of(&browser, "Secret identifier").await, bao.identifier("gw/payments"));
    assert!(!picked.contains("will not rotate"), "the picked identifier follows the latest version");
    browser.snap("add-key-vault").await;
    browser.click_button("Add").await;
    let listed = browser.wait_for_text("Certificate payments-client added").await;
    assert!(listed.to_lowercase().contains(&payments_fingerprint), "{listed}");
    assert!(listed.contains("Key vault") && listed.contains("Success"), "source and last status:\n{listed}");
    browser.click_in_row("payments-client", "Refresh").await;
    browser.wait_for_text("Certificate payments-client refreshed: Success").await;
    browser.snap("certificates").await;

    // Readable at a phone's width: the page does not scroll sideways (wide tables scroll inside).
    browser.resize(390, 844).await;
    browser.goto(&format!("{}/portal/certificates", node.admin)).await;
    browser.wait_for_text("payments-client").await;
    assert!(!browser.overflows_horizontally().await, "the Certificates page is wider than a phone");
    browser.snap("phone-certificates").await;
    browser.resize(1280, 900).await;

    // APIs → Design → Backend → Gateway credentials → Client cert → Save.
    browser.click_link("APIs").await;
    browser.click_link("orders").await;
    let design = browser.wait_for_text("Gateway credentials").await;
    assert!(design.contains("List orders") && design.contains("/list"), "operations are shown:\n{design}");
    browser.choose("Client cert").await;
    browser.select_option("Client certificate", "orders-client").await;
    browser.snap("gateway-credentials").await;
    browser.click_button("Save").await;
    browser.wait_for_text("Gateway credentials saved: client certificate orders-client.").await;
    let (status, body) = via_gateway(&http, &node, "/orders/list").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(seen_fingerprint(&body), leaf_fingerprint, "the backend saw the chosen certificate");

    // The policy editor shows the element, and the rest of the document is kept.
    browser.click_link("Policy editor (API scope)").await;
    browser.wait_for_text("Policy document").await;
    let document = value_of(&browser, "Policy document").await;
    assert!(document.contains(r#"<authentication-certificate certificate-id="orders-client""#), "{document}");
    assert!(document.contains(r#"<set-backend-service backend-id="orders""#), "{document}");
    browser.snap("policy-editor").await;

    // Delete is refused while the API's policy refers to the certificate, naming it as a link.
    browser.click_link("Certificates").await;
    browser.click_in_row("orders-client", "Delete").await;
    let warning = browser.wait_for_text("cannot be deleted while it is in use by").await;
    assert!(warning.contains("API orders (policy)"), "{warning}");
    assert!(browser.buttons("Delete").await.is_empty(), "no Delete button while referenced");
    browser.snap("delete-refused").await;
    browser.click_link("API orders (policy)").await;
    browser.wait_for_text("Gateway credentials").await;
    browser.choose("None").await;
    browser.click_button("Save").await;
    browser.wait_for_text("Gateway credentials saved: none.").await;
    let document =
        api.get("/apis/orders/policies/policy").await.body["properties"]["value"].as_str().unwrap().to_owned();
    assert!(!document.contains("authentication-certificate"), "{document}");
    assert!(document.contains("set-backend-service"), "{document}");
    assert_ne!(via_gateway(&http, &node, "/orders/list").await.0, 200, "no credentials again");

    // A form without this session's CSRF token changes nothing.
    let path = "/portal/certificates/orders-client/delete";
    assert_eq!(post_from_page(&browser, path, json!({"csrf": "forged"})).await, 403);
    assert!(post_from_page(&browser, path, json!({})).await >= 400);
    assert_eq!(api.get("/certificates/orders-client").await.status, 200, "still there");

    browser.click_link("Certificates").await;
    browser.click_in_row("orders-client", "Delete").await;
    browser.wait_for_text("Nothing references it").await;
    browser.click_button("Delete").await;
    browser.wait_for_text("Certificate orders-client deleted.").await;
    assert_eq!(api.get("/certificates/orders-client").await.status, 404);

    // Save does not overwrite a change made since the editor was opened.
    browser.goto(&format!("{}/portal/apis/orders/policy", node.admin)).await;
    browser.wait_for_text("Policy document").await;
    let meanwhile = r#"<set-backend-service backend-id="orders" /><set-header name="x-changed" exists-action="override"><value>1</value></set-header>"#;
    must_put(&api, "/apis/orders/policies/policy", policy(meanwhile)).await;
    browser
        .fill("Policy document", &value_of(&browser, "Policy document").await.replace("<base />", "<base /> "))
        .await;
    browser.click_button("Save").await;
    browser.wait_for_text("The policy was changed since you opened it").await;
    let stored = api.get("/apis/orders/policies/policy").await.body["properties"]["value"].as_str().unwrap().to_owned();
    assert!(stored.contains("x-changed"), "the other change is kept: {stored}");

    // An unknown element is refused with its line and column, the line marked.
    browser.goto(&format!("{}/portal/apis/orders/policy", node.admin)).await;
    let broken = "<policies>\n  <inbound>\n    <base />\n    <frobnicate />\n  </inbound>\n</policies>";
    browser.fill("Policy document", broken).await;
    browser.click_button("Save").await;
    let refused = browser.wait_for_text("Line 4, column").await;
    assert!(refused.contains("frobnicate"), "{refused}");
    assert_eq!(browser.text_of("ol.listing li.marked").await.trim(), "<frobnicate />");
    browser.snap("policy-error").await;
    assert!(
        api.get("/apis/orders/policies/policy").await.body["properties"]["value"]
            .as_str()
            .unwrap()
            .contains("set-backend-service"),
        "the stored policy is unchanged"
    );

    // A backend's edit changes what the form shows and keeps the rest (a PATCH under If-Match).
    must_put(
        &api,
        "/backends/orders",
        json!({"properties": {"url": backend.url("localhost"), "title": "Orders backend", "tls": tls,
            "credentials": {"header": {"x-team": ["orders"]}}}}),
    )
    .await;
    browser.click_link("Backends").await;
    browser.click_link("orders").await;
    browser.wait_for_text("Validate certificate chain").await;
    browser.set_checked("Validate certificate name", true).await;
    browser.click_button("Save").await;
    browser.wait_for_text("Backend orders saved.").await;
    let saved = api.get("/backends/orders").await.body["properties"].clone();
    assert_eq!(saved["tls"]["validateCertificateName"], true, "{saved}");
    assert_eq!(saved["title"], "Orders backend", "{saved}");
    assert_eq!(saved["credentials"]["header"]["x-team"][0], "orders", "{saved}");

    // An id holding `%` acts on itself, not on the id its escape would decode to.
    let (_, _) = (upload_pfx(&api, "pct%41").await, upload_pfx(&api, "pctA").await);
    browser.click_link("Certificates").await;
    browser.click_in_row("pct%41", "Delete").await;
    browser.wait_for_text("Delete certificate pct%41").await;
    browser.click_button("Delete").await;
    browser.wait_for_text("Certificate pct%41 deleted.").await;
    assert_eq!(api.get("/certificates/pct%2541").await.status, 404);
    assert_eq!(api.get("/certificates/pctA").await.status, 200, "the other id is untouched");

    // Sign out ends the session: its cookie no longer opens a page.
    browser.click_button("Sign out").await;
    browser.wait_for_text("Sign in with a management API token").await;
    browser.goto(&format!("{}/portal/certificates", node.admin)).await;
    browser.wait_for_text("Sign in with a management API token").await;

    // A reader sees everything and no write control; a forged write gets 403.
    sign_in(&browser, &node, &reader_token).await;
    let page = browser.wait_for_text("payments-client").await;
    assert!(page.to_lowercase().contains("reader"), "the role is shown:\n{page}");
    assert!(browser.links("+ Add").await.is_empty() && browser.buttons("Refresh").await.is_empty());
    assert!(browser.links("Delete").await.is_empty());
    browser.snap("reader-certificates").await;
    browser.goto(&format!("{}/portal/apis/orders", node.admin)).await;
    browser.wait_for_text("Gateway credentials").await;
    assert!(browser.buttons("Save").await.is_empty(), "no Save for a reader");
    browser.snap("reader-design").await;
    let csrf = page_csrf(&browser).await;
    let forged = json!({"csrf": csrf, "credentials": "client-cert", "certificate": "payments-client"});
    assert_eq!(post_from_page(&browser, "/portal/apis/orders/credentials", forged).await, 403);
    let status = post_from_page(
        &browser,
        "/portal/certificates/payments-client/delete",
        json!({"csrf": page_csrf(&browser).await}),
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(api.get("/certificates/payments-client").await.status, 200);

    // No secret reached a log line.
    let logs = node.logs();
    for secret in [PASSWORD, &node.admin_token(), &reader_token, &list_token, &system_token] {
        assert!(!logs.contains(secret), "a secret in the logs");
    }
}
