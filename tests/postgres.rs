//! The real PostgreSQL server of the tests (scripts/postgres.sh starts Debian's
//! package on loopback), and a fresh schema on it for each test.

use std::process::Command;
use std::sync::OnceLock;

use crate::workspace;

/// The server's URL: WASMQ_TEST_POSTGRES, or the one scripts/postgres.sh starts.
pub fn server_url() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        if let Ok(url) = std::env::var("WASMQ_TEST_POSTGRES") {
            return url;
        }
        let out = Command::new("bash")
            .arg(workspace().join("scripts/postgres.sh"))
            .arg("start")
            .output()
            .expect("run scripts/postgres.sh");
        assert!(
            out.status.success(),
            "scripts/postgres.sh start failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    })
}

/// A PostgreSQL cluster of a test's own, in a temporary directory on a free port
/// (scripts/postgres.sh with WASMQ_PG_DIR and WASMQ_PG_PORT), that the test may
/// stop and start again; stopped when dropped.
pub struct OwnCluster {
    dir: tempfile::TempDir,
    port: u16,
}

impl OwnCluster {
    /// Creates the cluster and starts it.
    pub fn start() -> OwnCluster {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let cluster = OwnCluster {
            dir: tempfile::tempdir().expect("a temporary directory"),
            port,
        };
        cluster.script("start");
        cluster
    }

    /// The cluster's URL.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Stops the server the way an operator restarting it does (fast shutdown:
    /// open sessions are ended, not waited for).
    pub fn stop(&self) {
        self.script("stop");
    }

    /// Starts the server again on the same data.
    pub fn start_again(&self) {
        self.script("start");
    }

    /// scripts/postgres.sh VERB on this cluster.
    fn command(&self, verb: &str) -> Command {
        let mut cmd = Command::new("bash");
        cmd.arg(workspace().join("scripts/postgres.sh"))
            .arg(verb)
            .env("WASMQ_PG_DIR", self.dir.path())
            .env("WASMQ_PG_PORT", self.port.to_string());
        cmd
    }

    fn script(&self, verb: &str) {
        let out = self
            .command(verb)
            .output()
            .expect("run scripts/postgres.sh");
        assert!(
            out.status.success(),
            "scripts/postgres.sh {verb} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for OwnCluster {
    fn drop(&mut self) {
        let _ = self.command("stop").output();
    }
}

/// Runs one SQL statement with psql; returns what it printed (unaligned, no headers).
pub fn psql(url: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .args([
            url,
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            sql,
        ])
        .output()
        .expect("run psql");
    assert!(
        out.status.success(),
        "psql {sql:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// A database URL whose tables live in a new schema of their own.
pub fn fresh_database() -> String {
    let server = server_url();
    let schema = format!(
        "e2e_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    psql(server, &format!("CREATE SCHEMA {schema}"));
    format!("{server}?options=-c%20search_path%3D{schema}")
}
