//! The client subcommands against a running node: every collection, table / JSON / YAML
//! output, exit codes (0 done, 1 refused, 2 usage, 3 unreachable), secrets from standard input
//! and the environment only, contexts, and policy edits that keep the rest of the document.
#![allow(clippy::unwrap_used)]

mod support;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use certgate_testkit::{Identity, KeyKind, OpenBao, PfxFlavor, pfx, tls_terminator};
use serde_json::Value;
use support::{Stage, pfx_secret};

/// What one run of the binary did.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.stdout))
    }
}

/// Runs `certgate ARGS` in `dir` with a clean environment (plus `env`) and `stdin`.
fn certgate(dir: &Path, args: &[&str], env: &[(&str, &str)], stdin: &str) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_certgate"));
    command.args(args).current_dir(dir).env_clear().env("PATH", std::env::var("PATH").unwrap_or_default());
    command.env("CERTGATE_CONFIG_DIR", dir.join("config"));
    for (key, value) in env {
        command.env(key, value);
    }
    let mut child = command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// A node and a way to run commands against it with its generated token.
struct Cli {
    stage: Stage,
    work: tempfile::TempDir,
}

impl Cli {
    fn start() -> Cli {
        Cli { stage: Stage::start(), work: tempfile::tempdir().unwrap() }
    }

    /// A node started with extra server arguments and environment.
    fn start_node(args: &[&str], env: &[(&str, &str)]) -> Cli {
        let dir = tempfile::tempdir().unwrap();
        let node = support::Node::start_with(dir.path(), args, env);
        let api = node.client();
        Cli { stage: Stage { node, api, http: reqwest::Client::new(), dir }, work: tempfile::tempdir().unwrap() }
    }

    fn token_file(&self) -> String {
        self.stage.dir.path().join("admin-token").display().to_string()
    }

    /// Runs with `--admin-url` and `--token-file` of the node.
    fn run(&self, args: &[&str]) -> Run {
        self.run_with(args, &[], "")
    }

    fn run_with(&self, args: &[&str], env: &[(&str, &str)], stdin: &str) -> Run {
        let token = self.token_file();
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--admin-url", &self.stage.node.admin, "--token-file", &token]);
        certgate(self.work.path(), &all, env, stdin)
    }

    /// Runs and asserts exit code 0.
    fn ok(&self, args: &[&str]) -> Run {
        let run = self.run(args);
        assert_eq!(run.code, 0, "{args:?}: {}{}", run.stdout, run.stderr);
        run
    }

    fn write(&self, name: &str, bytes: &[u8]) -> String {
        let path = self.work.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path.display().to_string()
    }
}

#[test]
fn certificates_upload_with_passwords_from_stdin_or_the_environment_and_list_in_every_format() {
    let cli = Cli::start();
    let leaf = Identity::self_signed_client("cli.contoso.com", KeyKind::EcdsaP256);
    let file = cli.write("client.pfx", &pfx(&leaf, &[], "s3cret", PfxFlavor::Modern));

    let from_stdin =
        cli.run_with(&["certificate", "new", "--id", "c1", "--pfx", &file, "--password-stdin"], &[], "s3cret\n");
    assert_eq!(from_stdin.code, 0, "{}", from_stdin.stderr);
    assert!(from_stdin.stdout.starts_with("ID "), "a table: {}", from_stdin.stdout);
    assert!(
        from_stdin.stdout.contains("CN=cli.contoso.com") && from_stdin.stdout.contains("Custom"),
        "{}",
        from_stdin.stdout
    );

    let from_env = cli.run_with(
        &["certificate", "new", "--id", "c2", "--pfx", &file, "--password-env", "PFX_PASSWORD", "-o", "json"],
        &[("PFX_PASSWORD", "s3cret")],
        "",
    );
    assert_eq!(from_env.code, 0, "{}", from_env.stderr);
    let created = from_env.json();
    assert_eq!(created["name"], "c2");
    assert!(!from_env.stdout.contains("s3cret"), "no password in the output");

    let wrong = cli.run_with(&["certificate", "new", "--id", "c3", "--pfx", &file, "--password-stdin"], &[], "nope\n");
    assert_eq!(wrong.code, 1, "the server refused: {}", wrong.stderr);
    assert!(
        wrong.stderr.contains("ValidationError") && wrong.stderr.contains("properties.password"),
        "{}",
        wrong.stderr
    );
    assert!(!wrong.stderr.contains("nope"), "the password is not echoed");

    let unset = cli.run(&["certificate", "new", "--id", "c3", "--pfx", &file, "--password-env", "MISSING"]);
    assert_eq!(unset.code, 2, "{}", unset.stderr);
    assert!(unset.stderr.contains("MISSING"), "{}", unset.stderr);

    // A certificate expiring in 10 days is flagged in the table.
    let soon = Identity::expiring_client("soon.contoso.com", 10 * 86_400);
    let soon_file = cli.write("soon.pfx", &pfx(&soon, &[], "p", PfxFlavor::Modern));
    cli.run_with(&["certificate", "new", "--id", "soon", "--pfx", &soon_file, "--password-stdin"], &[], "p\n");
    let table = cli.ok(&["certificate", "list"]).stdout;
    let line = |id: &str| table.lines().find(|l| l.starts_with(&format!("{id} "))).unwrap_or_else(|| panic!("{table}"));
    assert!(["(9 d) !", "(10 d) !"].iter().any(|days| line("soon").contains(days)), "{table}");
    assert!(!line("c1").contains('!'), "{table}");
    assert_eq!(table.lines().count(), 4, "header and three certificates: {table}");

    let json = cli.ok(&["certificate", "list", "-o", "json"]).json();
    assert_eq!(json["count"], 3);
    let thumbprint = created["properties"]["thumbprint"].as_str().unwrap().to_owned();
    let filtered = cli.ok(&["certificate", "list", "--filter", "name eq 'c2'", "-o", "json"]).json();
    assert_eq!(filtered["count"], 1);
    assert_eq!(filtered["value"][0]["properties"]["thumbprint"], thumbprint.as_str());

    let yaml = cli.ok(&["certificate", "show", "c1", "-o", "yaml"]).stdout;
    assert!(yaml.contains("name: c1") && yaml.contains("subject: CN=cli.contoso.com"), "{yaml}");

    cli.ok(&["certificate", "delete", "c2"]);
    assert_eq!(cli.run(&["certificate", "show", "c2"]).code, 1);
}

#[test]
fn backends_apis_and_policies_follow_the_cmdlet_flow_and_deletes_are_protected() {
    let cli = Cli::start();
    let leaf = Identity::self_signed_client("flow.contoso.com", KeyKind::EcdsaP256);
    let file = cli.write("flow.pfx", &pfx(&leaf, &[], "p", PfxFlavor::Modern));
    for id in ["c1", "c2"] {
        cli.run_with(&["certificate", "new", "--id", id, "--pfx", &file, "--password-stdin"], &[], "p\n");
    }
    let ca = Identity::ca("Flow Root CA");
    let ca_file = cli.write("ca.pem", ca.cert_pem.as_bytes());
    let added = cli.ok(&["ca-certificate", "new", "--id", "root1", "--file", &ca_file, "--store", "Root"]);
    assert!(added.stdout.contains("CN=Flow Root CA") && added.stdout.contains("Root"), "{}", added.stdout);

    let backend = cli.ok(&[
        "backend",
        "new",
        "--id",
        "b1",
        "--url",
        "https://127.0.0.1:9/",
        "--protocol",
        "http",
        "--skip-certificate-chain-validation",
        "--client-certificate-id",
        "c1",
        "-o",
        "json",
    ]);
    let tls = &backend.json()["properties"]["tls"];
    assert_eq!(
        (tls["validateCertificateChain"].as_bool(), tls["validateCertificateName"].as_bool()),
        (Some(false), Some(true))
    );
    // `set` changes only what it is given.
    let set = cli.ok(&["backend", "set", "--id", "b1", "--skip-certificate-name-validation", "-o", "json"]).json();
    assert_eq!(set["properties"]["tls"]["validateCertificateChain"], false);
    assert_eq!(set["properties"]["tls"]["validateCertificateName"], false);
    assert_eq!(set["properties"]["credentials"]["certificateIds"], serde_json::json!(["c1"]));
    assert_eq!(set["properties"]["url"], "https://127.0.0.1:9");
    let undone = cli.ok(&["backend", "set", "--id", "b1", "--skip-certificate-chain-validation=false", "-o", "json"]);
    assert_eq!(undone.json()["properties"]["tls"]["validateCertificateChain"], true);

    cli.ok(&[
        "api",
        "new",
        "--id",
        "orders",
        "--path",
        "orders",
        "--backend-id",
        "b1",
        "--client-certificate-id",
        "c2",
    ]);
    let policy = cli.ok(&["policy", "get", "--scope", "api:orders"]).stdout;
    assert!(policy.contains(r#"<set-backend-service backend-id="b1" />"#), "{policy}");
    assert!(policy.contains(r#"<authentication-certificate certificate-id="c2" />"#), "{policy}");

    // A hand-written document keeps its comments and layout through an edit.
    let written = "<policies>\n  <!-- kept as written -->\n  <inbound>\n    <base />\n    <set-header name=\"X-Team\" exists-action=\"override\"><value>a</value></set-header>\n  </inbound>\n  <backend><base /></backend>\n  <outbound><base /></outbound>\n  <on-error><base /></on-error>\n</policies>\n";
    let policy_file = cli.write("policy.xml", written.as_bytes());
    cli.ok(&["policy", "set", "--scope", "api:orders", "--file", &policy_file]);
    cli.ok(&["api", "set", "--id", "orders", "--client-certificate-id", "c1"]);
    let edited = cli.ok(&["policy", "get", "--scope", "api:orders"]).stdout;
    assert!(edited.contains("<!-- kept as written -->") && edited.contains("<value>a</value>"), "{edited}");
    assert!(edited.contains(r#"<authentication-certificate certificate-id="c1" />"#), "{edited}");

    let refused = cli.run(&["certificate", "delete", "c1"]);
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    for referrer in ["Conflict (409)", "/backends/b1", "/apis/orders/policies/policy"] {
        assert!(refused.stderr.contains(referrer), "{referrer}: {}", refused.stderr);
    }
    cli.ok(&["api", "set", "--id", "orders", "--no-client-certificate"]);
    assert_eq!(cli.ok(&["policy", "get", "--scope", "api:orders"]).stdout, written, "removing restores the document");
    let still = cli.run(&["certificate", "delete", "c1"]);
    assert!(still.stderr.contains("/backends/b1") && !still.stderr.contains("policies"), "{}", still.stderr);
    cli.ok(&["certificate", "delete", "c2"]);

    // Policy validation errors name line and column.
    let broken = cli.write("broken.xml", b"<policies>\n  <inbound>\n    <nonsense />\n  </inbound>\n</policies>");
    let invalid = cli.run(&["policy", "set", "--scope", "global", "--file", &broken]);
    assert_eq!(invalid.code, 1, "{}", invalid.stderr);
    assert!(invalid.stderr.contains("line 3"), "{}", invalid.stderr);
    let from_stdin = cli.run_with(
        &["policy", "set", "--scope", "global", "-"],
        &[],
        "<policies><inbound><base /></inbound></policies>",
    );
    assert_eq!(from_stdin.code, 0, "{}", from_stdin.stderr);

    // Operations.
    cli.ok(&[
        "operation",
        "new",
        "--api",
        "orders",
        "--id",
        "get-item",
        "--method",
        "GET",
        "--url-template",
        "/items/{id}",
    ]);
    cli.ok(&["operation", "set", "--api", "orders", "--id", "get-item", "--display-name", "Get an item"]);
    let operations = cli.ok(&["operation", "list", "--api", "orders"]).stdout;
    assert!(
        operations.contains("get-item") && operations.contains("/items/{id}") && operations.contains("Get an item"),
        "{operations}"
    );
    let operation_policy = cli.run_with(
        &["policy", "set", "--scope", "operation:orders/get-item", "-"],
        &[],
        "<policies><inbound><base /><set-header name=\"X-Op\" exists-action=\"override\"><value>1</value></set-header></inbound></policies>",
    );
    assert_eq!(operation_policy.code, 0, "{}", operation_policy.stderr);
    let api_list = cli.ok(&["api", "list"]).stdout;
    assert!(api_list.contains("/orders"), "{api_list}");
    cli.ok(&["operation", "delete", "--api", "orders", "--id", "get-item"]);
    assert_eq!(cli.ok(&["operation", "list", "--api", "orders", "-o", "json"]).json()["count"], 0);
    cli.ok(&["ca-certificate", "delete", "root1"]);
}

#[test]
fn tokens_exit_codes_and_completions() {
    let cli = Cli::start();
    let created = cli.ok(&["token", "new", "--id", "ci-reader", "--role", "reader", "-o", "json"]).json();
    let secret = created["properties"]["secret"].as_str().unwrap().to_owned();
    let listed = cli.ok(&["token", "list"]).stdout;
    assert!(listed.contains("ci-reader") && !listed.contains(&secret), "the secret is shown once: {listed}");
    // The node lists itself: the embedded store is a cluster of one.
    let nodes = cli.ok(&["node", "list", "-o", "json"]).json();
    assert_eq!(nodes["count"], 1, "{nodes}");
    assert_eq!(nodes["value"][0]["properties"]["silent"], false);
    let table = cli.ok(&["node", "list"]).stdout;
    assert!(table.contains("SERVED") && table.contains(&cli.stage.node.admin.replace("http://", "")), "{table}");

    let work = cli.work.path();
    let reader = certgate(
        work,
        &["backend", "list", "--admin-url", &cli.stage.node.admin],
        &[("CERTGATE_ADMIN_TOKEN", &secret)],
        "",
    );
    assert_eq!(reader.code, 0, "a reader reads: {}", reader.stderr);
    let denied = certgate(
        work,
        &["backend", "new", "--id", "b", "--url", "http://127.0.0.1:9/", "--admin-url", &cli.stage.node.admin],
        &[("CERTGATE_ADMIN_TOKEN", &secret)],
        "",
    );
    assert_eq!(denied.code, 1, "{}", denied.stderr);
    assert!(denied.stderr.contains("403"), "{}", denied.stderr);

    let unreachable = certgate(
        work,
        &["api", "list", "--admin-url", "http://127.0.0.1:1", "--token-file", &cli.token_file()],
        &[],
        "",
    );
    assert_eq!(unreachable.code, 3, "{}", unreachable.stderr);
    assert!(unreachable.stderr.contains("cannot reach the node at http://127.0.0.1:1"), "{}", unreachable.stderr);
    let no_token = certgate(work, &["api", "list", "--admin-url", &cli.stage.node.admin], &[], "");
    assert_eq!(no_token.code, 2, "{}", no_token.stderr);
    assert!(no_token.stderr.contains("no management token"), "{}", no_token.stderr);
    let usage = cli.run(&["certificate", "new", "--id", "x"]);
    assert_eq!(usage.code, 2, "a source is required: {}", usage.stderr);
    let bad_scope = cli.run(&["policy", "get", "--scope", "apis:x"]);
    assert_eq!(bad_scope.code, 2, "{}", bad_scope.stderr);

    for shell in ["bash", "zsh", "fish"] {
        let script = certgate(work, &["completions", shell], &[], "");
        assert_eq!(script.code, 0, "{}", script.stderr);
        assert!(script.stdout.contains("certificate") && script.stdout.contains("skip-certificate-chain-validation"));
    }
}

#[test]
fn contexts_round_trip_are_private_and_can_be_overridden() {
    let cli = Cli::start();
    let work = cli.work.path();
    let token = std::fs::read_to_string(cli.token_file()).unwrap();
    let added =
        certgate(work, &["context", "add", "prod", "--admin-url", &cli.stage.node.admin, "--token-stdin"], &[], &token);
    assert_eq!(added.code, 0, "{}", added.stderr);
    let file = work.join("config/contexts.toml");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);

    // The current context supplies URL and token.
    let listed = certgate(work, &["api", "list", "-o", "json"], &[], "");
    assert_eq!(listed.code, 0, "{}", listed.stderr);
    assert_eq!(listed.json()["count"], 0);

    let dead_token = cli.write("dead-token", b"whatever\n");
    let added = certgate(
        work,
        &["context", "add", "dead", "--admin-url", "http://127.0.0.1:1", "--token-file", &dead_token],
        &[],
        "",
    );
    assert_eq!(added.code, 0, "{}", added.stderr);
    let contexts = certgate(work, &["context", "list"], &[], "").stdout;
    assert!(contexts.lines().any(|l| l.starts_with('*') && l.contains("prod")), "{contexts}");
    assert_eq!(certgate(work, &["context", "use", "dead"], &[], "").code, 0);
    assert_eq!(certgate(work, &["api", "list"], &[], "").code, 3, "the current context is unreachable");
    assert_eq!(certgate(work, &["api", "list", "--context", "prod"], &[], "").code, 0, "--context overrides");
    assert_eq!(certgate(work, &["context", "use", "nothing"], &[], "").code, 2);
    assert_eq!(certgate(work, &["context", "delete", "dead"], &[], "").code, 0);
    let contexts = certgate(work, &["context", "list"], &[], "").stdout;
    assert!(!contexts.contains("dead") && contexts.contains("prod"), "{contexts}");
    assert!(!std::fs::read_to_string(&file).unwrap().contains("whatever"), "a deleted context's token is gone");

    // Without a URL, token or context, the local data directory's admin-token is used.
    let local = certgate(
        work,
        &[
            "api",
            "list",
            "--admin-url",
            &cli.stage.node.admin,
            "--data-dir",
            &cli.stage.dir.path().display().to_string(),
        ],
        &[],
        "",
    );
    assert_eq!(local.code, 0, "{}", local.stderr);
}

/// Configures a node through the CLI with one of everything a file can hold.
fn configure(cli: &Cli, pfx_file: &str) {
    cli.run_with(&["certificate", "new", "--id", "c1", "--pfx", pfx_file, "--password-stdin"], &[], "p\n");
    let ca = Identity::ca("Export Root CA");
    let ca_file = cli.write("ca.pem", ca.cert_pem.as_bytes());
    cli.ok(&["ca-certificate", "new", "--id", "root1", "--file", &ca_file, "--store", "Root"]);
    cli.ok(&["backend", "new", "--id", "b1", "--url", "https://127.0.0.1:9", "--client-certificate-id", "c1"]);
    cli.ok(&[
        "backend",
        "new",
        "--id",
        "b2",
        "--url",
        "http://127.0.0.1:9",
        "--title",
        "Second",
        "--resource-id",
        "/subscriptions/s/resourceGroups/g/providers/Microsoft.Web/sites/second",
    ]);
    cli.ok(&[
        "api",
        "new",
        "--id",
        "orders",
        "--path",
        "orders",
        "--backend-id",
        "b1",
        "--client-certificate-id",
        "c1",
    ]);
    cli.ok(&["operation", "new", "--api", "orders", "--id", "get", "--method", "GET", "--url-template", "/items/{id}"]);
    let op_policy = "<policies>\n  <!-- per operation -->\n  <inbound><base /></inbound>\n</policies>\n";
    let op_file = cli.write("op.xml", op_policy.as_bytes());
    cli.ok(&["policy", "set", "--scope", "operation:orders/get", "--file", &op_file]);
    cli.ok(&[
        "policy",
        "set",
        "--scope",
        "global",
        "--file",
        &cli.write("global.xml", b"<policies><inbound /></policies>"),
    ]);
}

#[test]
fn export_and_apply_round_trip_plan_first_and_refuse_a_broken_file_before_any_change() {
    let source = Cli::start();
    let leaf = Identity::self_signed_client("export.contoso.com", KeyKind::EcdsaP256);
    let pfx_bytes = pfx(&leaf, &[], "p", PfxFlavor::Modern);
    configure(&source, &source.write("c1.pfx", &pfx_bytes));
    let exported = source.ok(&["export"]).stdout;
    for expected in [
        "thumbprint:",
        "file: c1.pfx",
        "passwordEnv: PFX_PASSWORD_C1",
        "BEGIN CERTIFICATE",
        "per operation",
        "set-backend-service",
        "resourceId: /subscriptions/s/resourceGroups/g/providers/Microsoft.Web/sites/second",
    ] {
        assert!(exported.contains(expected), "{expected}: {exported}");
    }
    assert!(!exported.contains("privateKey") && !exported.contains("password:"), "no secret is exported");

    let target = Cli::start();
    let yaml = target.write("certgate.yaml", exported.as_bytes());
    target.write("c1.pfx", &pfx_bytes);
    let env = [("PFX_PASSWORD_C1", "p")];
    let dry = target.run_with(&["apply", "-f", &yaml, "--dry-run"], &env, "");
    assert_eq!(dry.code, 0, "{}", dry.stderr);
    assert!(dry.stdout.contains("create    certificate     c1"), "{}", dry.stdout);
    assert_eq!(target.ok(&["export"]).stdout, "{}\n", "--dry-run changed nothing");

    let applied = target.run_with(&["apply", "-f", &yaml], &env, "");
    assert_eq!(applied.code, 0, "{}{}", applied.stdout, applied.stderr);
    assert_eq!(target.ok(&["export"]).stdout, exported, "export → apply → export is identical");
    // A second run plans nothing, and needs no PFX file: the node holds the thumbprint.
    std::fs::remove_file(target.work.path().join("c1.pfx")).unwrap();
    let again = target.run(&["apply", "-f", &yaml]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(again.stdout.contains("plan: 0 to change"), "{}", again.stdout);

    // A change is an update naming its fields; --prune deletes what the file does not name.
    let edited = exported.replace("title: Second", "title: Renamed");
    let mut without_b2: Vec<&str> = Vec::new();
    let mut skipping = false;
    for line in edited.lines() {
        if line.starts_with("- id: b2") {
            skipping = true;
            continue;
        }
        if skipping && (line.starts_with("- ") || !line.starts_with(' ')) {
            skipping = false;
        }
        if !skipping {
            without_b2.push(line);
        }
    }
    let renamed = target.write("renamed.yaml", edited.as_bytes());
    let update = target.run(&["apply", "-f", &renamed, "--dry-run"]);
    assert!(update.stdout.contains("update    backend         b2 (title)"), "{}", update.stdout);
    let pruned = target.write("pruned.yaml", (without_b2.join("\n") + "\n").as_bytes());
    let kept = target.run(&["apply", "-f", &pruned]);
    assert!(!kept.stdout.contains("delete"), "without --prune nothing is deleted: {}", kept.stdout);
    let prune = target.run(&["apply", "-f", &pruned, "--prune"]);
    assert_eq!(prune.code, 0, "{}", prune.stderr);
    assert!(prune.stdout.contains("delete    backend         b2"), "{}", prune.stdout);
    assert_eq!(target.run(&["backend", "show", "b2"]).code, 1, "b2 is gone");

    // Broken files change nothing.
    let before = target.ok(&["export"]).stdout;
    let unknown =
        target.write("unknown.yaml", b"backends:\n  - id: b9\n    url: http://127.0.0.1:9\n    colour: blue\n");
    let refused = target.run(&["apply", "-f", &unknown]);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(refused.stderr.contains("colour") && refused.stderr.contains("line 4"), "{}", refused.stderr);
    let bad_policy = exported.replace("<!-- per operation -->", "<nonsense />");
    let refused = target.run(&["apply", "-f", &target.write("bad-policy.yaml", bad_policy.as_bytes())]);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("apis[0].operations[0].policy") && refused.stderr.contains("line 2"),
        "{}",
        refused.stderr
    );
    let missing_pfx = exported.replace("c1.pfx", "absent.pfx").replace(
        &source.ok(&["certificate", "show", "c1", "-o", "json"]).json()["properties"]["thumbprint"]
            .as_str()
            .unwrap()
            .to_owned(),
        "0000000000000000000000000000000000000000",
    );
    let refused = target.run(&["apply", "-f", &target.write("missing.yaml", missing_pfx.as_bytes())]);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(refused.stderr.contains("certificates[0].pfx.file"), "{}", refused.stderr);
    assert_eq!(target.ok(&["export"]).stdout, before, "nothing changed");
}

/// A vault reference made, listed, refreshed on demand and exported as a reference, against a
/// real OpenBao. (Multi-thread: the vault's relay runs on the runtime while the CLI blocks.)
#[tokio::test(flavor = "multi_thread")]
async fn a_vault_reference_is_created_refreshed_on_demand_and_exported_as_a_reference() {
    let bao = OpenBao::start().await;
    let token = bao.token_with_policy("cli-read", r#"path "secret/data/cli/*" { capabilities = ["read"] }"#).await;
    bao.write_secret("cli/orders", pfx_secret("vault-v1").0).await;
    let cli = Cli::start_node(&[], &[("CERTGATE_VAULT_TOKEN", &token)]);
    let identifier = bao.identifier("cli/orders");

    let created =
        cli.ok(&["certificate", "new", "--id", "kv", "--key-vault-secret-id", &identifier, "-o", "json"]).json();
    assert_eq!(
        created["properties"]["subject"].as_str().map(|s| s.starts_with("CN=vault-v1")),
        Some(true),
        "{created}"
    );
    let table = cli.ok(&["certificate", "list"]).stdout;
    assert!(table.contains("KeyVault") && table.contains("Success"), "{table}");

    bao.write_secret("cli/orders", pfx_secret("vault-v2").0).await;
    let refreshed = cli.ok(&["certificate", "refresh", "kv", "-o", "json"]).json();
    assert_eq!(
        refreshed["properties"]["subject"].as_str().map(|s| s.starts_with("CN=vault-v2")),
        Some(true),
        "{refreshed}"
    );
    assert_ne!(refreshed["properties"]["thumbprint"], created["properties"]["thumbprint"]);

    let exported = cli.ok(&["export"]).stdout;
    assert!(
        exported.contains(&format!("secretIdentifier: {identifier}")) && !exported.contains("thumbprint"),
        "{exported}"
    );
    let again = cli.run(&["apply", "-f", &cli.write("certgate.yaml", exported.as_bytes())]);
    assert!(again.stdout.contains("plan: 0 to change"), "{}{}", again.stdout, again.stderr);

    let uploaded = cli.run(&["certificate", "refresh", "missing"]);
    assert_eq!(uploaded.code, 1, "{}", uploaded.stderr);
}

/// An HTTPS management URL (here a TLS terminator in front of the node, signed by a private CA)
/// is verified: refused without the CA, accepted with `--ca-file` or a context's CA file.
#[tokio::test(flavor = "multi_thread")]
async fn an_https_management_url_is_verified_against_the_given_ca() {
    let cli = Cli::start();
    let ca = Identity::ca("Private Admin CA");
    let admin = cli.stage.node.admin.trim_start_matches("http://").parse().unwrap();
    let https = tls_terminator(&ca.server("localhost"), admin).await;
    let url = format!("https://localhost:{}", https.port());
    let ca_file = cli.write("admin-ca.pem", ca.cert_pem.as_bytes());
    let token = cli.token_file();
    let work = cli.work.path();

    let untrusted = certgate(work, &["api", "list", "--admin-url", &url, "--token-file", &token], &[], "");
    assert_eq!(untrusted.code, 3, "{}", untrusted.stderr);
    assert!(untrusted.stderr.contains("cannot reach the node at https://localhost"), "{}", untrusted.stderr);
    let trusted =
        certgate(work, &["api", "list", "--admin-url", &url, "--token-file", &token, "--ca-file", &ca_file], &[], "");
    assert_eq!(trusted.code, 0, "{}", trusted.stderr);

    let args = ["context", "add", "tls", "--admin-url", &url, "--token-file", &token, "--ca-file", &ca_file];
    assert_eq!(certgate(work, &args, &[], "").code, 0);
    let through_context = certgate(work, &["certificate", "list", "-o", "json"], &[], "");
    assert_eq!(through_context.code, 0, "{}", through_context.stderr);
}

/// `backend test` runs the handshake probe: a table of steps and the hint, or the API's JSON.
#[tokio::test(flavor = "multi_thread")]
async fn backend_test_prints_the_probe_steps_and_hint() {
    let cli = Cli::start();
    let partner_ca = Identity::ca("CLI Partner CA");
    let backend = certgate_testkit::https_echo_backend(
        &Identity::self_signed_server("localhost"),
        certgate_testkit::ClientAuth::IssuedBy(&partner_ca),
        false,
    )
    .await;
    let leaf = partner_ca.client("cli-probe.contoso.test", KeyKind::EcdsaP256);
    let pfx_file = cli.write("probe.pfx", &pfx(&leaf, &[], "p", PfxFlavor::Modern));
    cli.run_with(&["certificate", "new", "--id", "probe", "--pfx", &pfx_file, "--password-stdin"], &[], "p\n");
    let url = backend.url("localhost");
    cli.ok(&["backend", "new", "--id", "partner", "--url", &url, "--skip-certificate-chain-validation"]);

    let without = cli.ok(&["backend", "test", "partner"]).stdout;
    assert!(without.contains("STEP") && without.contains("clientCertificateRequest"), "{without}");
    assert!(without.contains("requires a client certificate issued by CN=CLI Partner CA"), "{without}");
    let with = cli.ok(&["backend", "test", "partner", "--certificate-id", "probe", "-o", "json"]).json();
    assert_eq!(with["succeeded"], true, "{with}");
    assert_eq!(with["httpStatus"], 200);
}
