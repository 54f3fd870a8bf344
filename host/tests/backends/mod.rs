//! The databases a conformance test runs on: a fresh SQLite file, and a fresh
//! schema on the real PostgreSQL server that scripts/postgres.sh starts.

use std::sync::OnceLock;

use sqlx::Connection;

/// Which engine a test runs on.
#[derive(Debug, Clone, Copy)]
pub enum Engine {
    Sqlite,
    Postgres,
}

/// A database of its own for one test; a SQLite file is removed with it.
pub struct TestDb {
    _dir: tempfile::TempDir,
    pub url: String,
}

/// The test server's URL, from WASMQ_TEST_POSTGRES or by starting it.
fn server_url() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        if let Ok(url) = std::env::var("WASMQ_TEST_POSTGRES") {
            return url;
        }
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/postgres.sh");
        let out = std::process::Command::new("bash")
            .args([script, "start"])
            .output()
            .expect("running scripts/postgres.sh");
        assert!(
            out.status.success(),
            "scripts/postgres.sh start failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    })
}

/// A new, empty database on `engine`.
pub async fn database(engine: Engine) -> TestDb {
    let dir = tempfile::tempdir().unwrap();
    let url = match engine {
        Engine::Sqlite => wasmq::db::sqlite_url(&dir.path().join("wasmq.db")),
        Engine::Postgres => {
            let server = server_url();
            let schema = format!("t{}", uuid::Uuid::now_v7().simple());
            let mut conn = sqlx::postgres::PgConnection::connect(server).await.unwrap();
            sqlx::query(&format!("CREATE SCHEMA {schema}"))
                .execute(&mut conn)
                .await
                .unwrap();
            format!("{server}?options=-c%20search_path%3D{schema}")
        }
    };
    TestDb { _dir: dir, url }
}

/// Runs each named `async fn(Engine)` as one test per engine.
#[macro_export]
macro_rules! on_both_engines {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test] async fn $name() { super::$name($crate::backends::Engine::Sqlite).await })*
        }
        mod postgres {
            $(#[tokio::test] async fn $name() { super::$name($crate::backends::Engine::Postgres).await })*
        }
    };
}
