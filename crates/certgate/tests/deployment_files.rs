//! The deployment files the docs point to do what they say: the systemd unit verifies (with
//! `systemd-analyze` where the machine has it) and runs `certgate server` the documented way,
//! and `scripts/cluster-local` starts three nodes that list each other.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn the_systemd_unit_runs_a_node_with_the_shared_settings_and_verifies() {
    let unit = std::fs::read_to_string(repository().join("deploy/certgate.service")).unwrap();
    let setting = |key: &str| -> Vec<&str> {
        unit.lines().filter_map(|line| line.strip_prefix(key).and_then(|rest| rest.strip_prefix('='))).collect()
    };
    let exec = setting("ExecStart");
    assert_eq!(exec.len(), 1);
    assert!(exec[0].contains("certgate server") && exec[0].contains("--master-key-file"), "{exec:?}");
    assert_eq!(setting("EnvironmentFile"), ["/etc/certgate/certgate.env"]);
    assert_eq!(setting("KillSignal"), ["SIGTERM"], "SIGTERM drains requests in flight");
    assert_eq!(setting("Restart"), ["on-failure"]);
    assert!(!setting("LimitNOFILE").is_empty(), "the gateway's connection cap follows the open-file limit");

    let verifier = Command::new("systemd-analyze").arg("--version").output();
    if !verifier.is_ok_and(|o| o.status.success()) {
        eprintln!("systemd-analyze is not installed: the unit's contents were checked, not verified");
        return;
    }
    // The unit names the installed binary; verify it against the one just built.
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("certgate.service");
    std::fs::write(&copy, unit.replace("/usr/local/bin/certgate", env!("CARGO_BIN_EXE_certgate"))).unwrap();
    let output = Command::new("systemd-analyze").arg("verify").arg(&copy).output().unwrap();
    let complaints = String::from_utf8_lossy(&output.stderr);
    // `verify` exits 0 on settings it ignores; every line it prints is a defect of the unit.
    assert!(output.status.success() && complaints.trim().is_empty(), "{complaints}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_cluster_script_starts_three_nodes_that_list_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let database = format!("certgate_script_{}_{nanos}", std::process::id());
    // Below the kernel's ephemeral range (32768–60999), so no outgoing connection holds them.
    let base = 20_000 + (nanos % 1_000) as u16 * 10;
    let mut script = Command::new("setsid")
        .arg(repository().join("scripts/cluster-local"))
        .env("CERTGATE_BIN", env!("CARGO_BIN_EXE_certgate"))
        .env("DATABASE_SERVER", certgate_testkit::shared_server())
        .env("DATABASE_NAME", &database)
        .env("CLUSTER_DIR", dir.path())
        .env("BASE_PORT", base.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stop = |script: &mut std::process::Child| {
        // The script's process group: the script and its three nodes.
        let _ = Command::new("kill").arg("--").arg(format!("-{}", script.id())).status();
        let _ = script.wait();
    };
    let token = dir.path().join("admin-token");
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let listed = loop {
        let answer = match std::fs::read_to_string(&token) {
            Ok(token) => {
                http.get(format!("http://127.0.0.1:{}/nodes", base + 11)).bearer_auth(token.trim()).send().await.ok()
            }
            Err(_) => None,
        };
        if let Some(answer) = answer
            && answer.status() == 200
        {
            let body: serde_json::Value = answer.json().await.unwrap();
            if body["count"] == 3 {
                break body;
            }
        }
        if Instant::now() > deadline {
            stop(&mut script);
            panic!("the script's three nodes never listed each other");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    stop(&mut script);
    let addresses: Vec<&str> =
        listed["value"].as_array().unwrap().iter().filter_map(|n| n["properties"]["adminAddress"].as_str()).collect();
    assert_eq!(addresses.len(), 3, "{listed}");
}
