//! APIM's own client manages certgate unchanged: Microsoft's Azure SDK for Python (pinned in
//! `apim_sdk/requirements.txt`, installed by `scripts/test` into its own virtualenv, named by
//! `CERTGATE_APIM_PYTHON`) runs `apim_sdk/seed_flow.py` against a node's ARM paths over HTTPS,
//! with the SDK's HTTPS enforcement on; an mTLS backend reports the certificate it saw, and a
//! real OpenBao holds the referenced certificate the script rotates. `apim_sdk/property_table.py`
//! checks every writable property of the SDK's models against the README's table and the node.
#![allow(clippy::unwrap_used)]

mod support;

use certgate_testkit::{ClientAuth, Identity, KeyKind, OpenBao, PfxFlavor, https_echo_backend, pfx, sha1_hex};
use support::{Node, pfx_secret, upload};

/// A node whose management API the SDK reaches over HTTPS with a private CA, and the
/// environment a script needs to reach it.
struct SdkNode {
    dir: tempfile::TempDir,
    node: Node,
    env: Vec<(&'static str, String)>,
}

impl SdkNode {
    async fn start(node_env: &[(&str, &str)]) -> SdkNode {
        let dir = tempfile::tempdir().unwrap();
        let args = ["--admin-https-listen", "127.0.0.1:0", "--admin-https-certificate-id", "admin-tls"];
        let node = Node::start_with(&dir.path().join("data"), &args, node_env);
        let admin_ca = Identity::ca("certgate admin CA");
        let tls = pfx(&admin_ca.server("localhost"), &[], "p", PfxFlavor::Modern);
        let created = node.client().put("/certificates/admin-tls", &upload(&tls, "p")).await;
        assert_eq!(created.status, 201, "{}", created.text);
        let ca_file = dir.path().join("admin-ca.pem");
        std::fs::write(&ca_file, &admin_ca.cert_pem).unwrap();
        let env = vec![
            ("CERTGATE_ADMIN_URL", format!("https://localhost:{}", node.admin_https_port())),
            ("CERTGATE_TOKEN_FILE", dir.path().join("data/admin-token").display().to_string()),
            ("CERTGATE_CA_FILE", ca_file.display().to_string()),
        ];
        SdkNode { dir, node, env }
    }

    /// Runs `apim_sdk/{script}` with the SDK's python and the node's environment plus `env`;
    /// returns its output after asserting that it succeeded.
    async fn run(&self, script: &str, env: Vec<(&'static str, String)>) -> String {
        let python = std::env::var("CERTGATE_APIM_PYTHON")
            .expect("CERTGATE_APIM_PYTHON names the virtualenv's python with the APIM SDK (scripts/test sets it up)");
        let script = format!("{}/tests/apim_sdk/{script}", env!("CARGO_MANIFEST_DIR"));
        let envs: Vec<_> = self.env.iter().cloned().chain(env).collect();
        let output =
            tokio::task::spawn_blocking(move || std::process::Command::new(python).arg(script).envs(envs).output())
                .await
                .unwrap()
                .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "the SDK script failed:\n{stdout}\n{stderr}\nnode:\n{}", self.node.logs());
        stdout
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_azure_sdk_for_python_drives_the_seed_flow_over_https() {
    let bao = OpenBao::start().await;
    let vault_token =
        bao.token_with_policy("sdk-read", r#"path "secret/data/sdk/*" { capabilities = ["read"] }"#).await;
    let (first_secret, first_fingerprint) = pfx_secret("vault-v1.contoso.com");
    let (rotated_secret, rotated_fingerprint) = pfx_secret("vault-v2.contoso.com");
    bao.write_secret("sdk/orders", first_secret).await;
    let sdk = SdkNode::start(&[("CERTGATE_VAULT_TOKEN", &vault_token)]).await;

    let backend =
        https_echo_backend(&Identity::ca("Backend CA").server("localhost"), ClientAuth::AnyCertificate, false).await;
    let client = Identity::self_signed_client("sdk.contoso.com", KeyKind::EcdsaP256);
    let pfx_file = sdk.dir.path().join("client.pfx");
    std::fs::write(&pfx_file, pfx(&client, &[], "sdk-pass", PfxFlavor::Modern)).unwrap();
    let fingerprint = sha1_hex(&client.cert_der);
    let env = vec![
        ("PFX_FILE", pfx_file.display().to_string()),
        ("PFX_PASSWORD", "sdk-pass".to_owned()),
        ("EXPECTED_THUMBPRINT", fingerprint.to_uppercase()),
        ("EXPECTED_SUBJECT", certgate_pki::certificate_facts(&client.cert_der).unwrap().subject),
        ("EXPECTED_NOT_AFTER", client.not_after_unix().to_string()),
        ("EXPECTED_FINGERPRINT", fingerprint),
        ("BACKEND_URL", backend.url("localhost")),
        ("GATEWAY_URL", sdk.node.gateway.clone()),
        ("VAULT_SECRET_IDENTIFIER", bao.identifier("sdk/orders")),
        ("VAULT_WRITE_URL", format!("{}/v1/secret/data/sdk/orders", bao.address)),
        ("VAULT_ROOT_TOKEN", bao.root_token.clone()),
        ("VAULT_ROTATED_SECRET", rotated_secret.to_string()),
        ("VAULT_FIRST_THUMBPRINT", first_fingerprint.to_uppercase()),
        ("VAULT_ROTATED_THUMBPRINT", rotated_fingerprint.to_uppercase()),
    ];
    let stdout = sdk.run("seed_flow.py", env).await;
    assert!(stdout.contains("seed flow through the APIM SDK: done"), "{stdout}");
    // The script's two refreshSecret calls, counted by outcome.
    let metrics = sdk.node.client().get("/metrics").await.text;
    for sample in [
        r#"certgate_vault_refreshes_total{outcome="rotated",code=""} 1"#,
        r#"certgate_vault_refreshes_total{outcome="failed",code="InvalidSecret"} 1"#,
    ] {
        assert!(metrics.lines().any(|line| line == sample), "{sample}:\n{metrics}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_property_of_the_sdk_models_is_implemented_stored_or_refused_as_the_readme_says() {
    let sdk = SdkNode::start(&[]).await;
    let readme = concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md");
    let stdout = sdk.run("property_table.py", vec![("README", readme.to_owned())]).await;
    assert!(stdout.contains("property table: every SDK property classified, documented and enforced"), "{stdout}");
}
