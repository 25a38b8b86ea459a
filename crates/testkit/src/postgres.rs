//! PostgreSQL for tests: a fresh database on the machine's server, or a server of the test's
//! own (`initdb` in a temporary folder, TLS on with a test CA) that the test may stop and start
//! again, as a restart or an outage does to a cluster.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use sqlx::Connection as _;

use crate::Identity;

/// The machine's server (`CERTGATE_TEST_POSTGRES` overrides it; `scripts/test` starts it).
pub fn shared_server() -> String {
    std::env::var("CERTGATE_TEST_POSTGRES").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

/// The URL of a database created for this call on the machine's server.
pub async fn test_database() -> String {
    let server = shared_server();
    let mut admin = sqlx::PgConnection::connect(&format!("{server}/postgres"))
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL must run at {server} (scripts/test starts it): {e}"));
    let name = format!(
        "certgate_test_{}_{}",
        std::process::id(),
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
    );
    // `name` is built above from digits only.
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut admin).await.unwrap();
    format!("{server}/{name}")
}

/// A PostgreSQL server of the test's own on a free loopback port, answering TLS with a
/// certificate for `localhost` from [`PostgresServer::ca_file`]. Stopped when dropped.
pub struct PostgresServer {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    /// As root, the server's commands run as the `postgres` user (initdb refuses root).
    run_as_postgres: bool,
}

impl PostgresServer {
    pub fn start() -> PostgresServer {
        let bin = server_binaries();
        let dir = tempfile::tempdir().unwrap();
        let run_as_postgres = is_root();
        let port = crate::openbao::free_port();
        let server = PostgresServer { dir, bin, port, run_as_postgres };
        let ca = Identity::ca("certgate test PostgreSQL CA");
        let leaf = ca.server("localhost");
        std::fs::write(server.ca_file(), &ca.cert_pem).unwrap();
        std::fs::write(server.dir.path().join("server.crt"), &leaf.cert_pem).unwrap();
        write_private(&server.dir.path().join("server.key"), &leaf.key_pem);
        server.give_to_postgres(server.dir.path());
        server.run("initdb", &["-D", &server.data(), "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8"]);
        let dir = server.dir.path().display().to_string();
        let settings = format!(
            "port = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{dir}'\n\
             ssl = on\nssl_cert_file = '{dir}/server.crt'\nssl_key_file = '{dir}/server.key'\n\
             fsync = off\nmax_connections = 100\n"
        );
        let conf = Path::new(&server.data()).join("postgresql.conf");
        let mut text = std::fs::read_to_string(&conf).unwrap();
        text.push_str(&settings);
        std::fs::write(&conf, text).unwrap();
        server.resume();
        server
    }

    /// The PEM file of the CA that signed the server's certificate.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// The `postgres` database over TLS, verifying the server against [`Self::ca_file`].
    pub fn url(&self) -> String {
        format!(
            "postgres://postgres@localhost:{}/postgres?sslmode=verify-full&sslrootcert={}",
            self.port,
            self.ca_file().display()
        )
    }

    /// The `postgres` database over TLS, verifying the server against the system's trust store,
    /// with `password` in the URL (the server trusts every local connection and ignores it).
    pub fn url_trusting_the_system(&self, password: &str) -> String {
        format!("postgres://postgres:{password}@localhost:{}/postgres?sslmode=verify-full", self.port)
    }

    /// Stops the server as a restart does (`pg_ctl stop -m fast`: sessions are ended).
    pub fn stop(&self) {
        self.run("pg_ctl", &["-D", &self.data(), "-m", "fast", "-w", "stop"]);
    }

    /// Starts the (stopped) server again and waits until it accepts connections.
    pub fn resume(&self) {
        let log = self.dir.path().join("server.log").display().to_string();
        self.run("pg_ctl", &["-D", &self.data(), "-l", &log, "-w", "start"]);
        let deadline = Instant::now() + Duration::from_secs(30);
        while !Command::new(self.bin.join("pg_isready"))
            .args(["-q", "-h", "127.0.0.1", "-p", &self.port.to_string()])
            .status()
            .is_ok_and(|s| s.success())
        {
            assert!(Instant::now() < deadline, "the test's PostgreSQL did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn run(&self, program: &str, args: &[&str]) {
        let program = self.bin.join(program);
        let mut command = if self.run_as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(&program);
            command
        } else {
            Command::new(&program)
        };
        let output = command.args(args).output().unwrap();
        assert!(
            output.status.success(),
            "{} {args:?} failed: {}{}",
            program.display(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    fn give_to_postgres(&self, dir: &Path) {
        if self.run_as_postgres {
            let status = Command::new("chown").args(["-R", "postgres:postgres"]).arg(dir).status().unwrap();
            assert!(status.success(), "chown {}", dir.display());
        }
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        let _ = std::panic::catch_unwind(|| {
            self.run("pg_ctl", &["-D", &self.data(), "-m", "immediate", "stop"]);
        });
    }
}

/// The newest installed server's programs (Debian keeps them out of PATH).
fn server_binaries() -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("the PostgreSQL server must be installed (scripts/test installs it)")
        .filter_map(|entry| entry.ok().map(|e| e.path().join("bin")))
        .filter(|bin| bin.join("initdb").exists())
        .collect();
    versions.sort();
    versions.pop().expect("no PostgreSQL server with initdb under /usr/lib/postgresql")
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

fn write_private(path: &Path, contents: &str) {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path).unwrap();
    file.write_all(contents.as_bytes()).unwrap();
}
