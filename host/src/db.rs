//! The database connection: SQLite (embedded default) or PostgreSQL, chosen by
//! URL, migrated on open, and the few places where their SQL differs.

use std::path::Path;
use std::time::Duration;

use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{Any, AnyPool, Executor, Transaction};
use thiserror::Error;

/// Why the database could not be opened.
#[derive(Debug, Error)]
pub enum DbError {
    #[error("database URL {0:?}: expected sqlite:PATH or postgres://...")]
    Url(String),
    #[error("database: {0}")]
    Sqlx(#[from] sqlx::Error),
    #[error("migrating the database: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// Which database engine a URL selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// One file, one host (WAL; writers take the lock in turn).
    Sqlite,
    /// A server that several hosts share.
    Postgres,
}

impl Backend {
    /// The engine a database URL names.
    pub fn of_url(url: &str) -> Result<Backend, DbError> {
        if url.starts_with("sqlite:") {
            Ok(Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Backend::Postgres)
        } else {
            Err(DbError::Url(url.to_string()))
        }
    }
}

/// The URL of a SQLite file, created if missing.
pub fn sqlite_url(file: &Path) -> String {
    let file = std::path::absolute(file).unwrap_or_else(|_| file.to_path_buf());
    let mut path = String::new();
    for c in file.to_string_lossy().chars() {
        match c {
            '%' | '?' | '#' | ' ' => path.push_str(&format!("%{:02X}", c as u32)),
            c => path.push(c),
        }
    }
    format!("sqlite://{path}?mode=rwc")
}

/// Whether `e` says the database could not be reached or was busy, so that the same
/// call may succeed later (as opposed to an answer about the data or the SQL).
pub fn unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(d) => d.code().is_some_and(|code| {
            // PostgreSQL: connection exceptions (08), operator intervention such as a
            // shutdown or a server still starting (57P), too many connections (53300).
            // SQLite: BUSY and LOCKED with their extended codes.
            code.starts_with("08")
                || code.starts_with("57P")
                || code == "53300"
                || matches!(code.as_ref(), "5" | "6" | "261" | "262" | "517")
        }),
        _ => false,
    }
}

/// A pool of connections to one database, and its engine.
#[derive(Clone, Debug)]
pub struct Db {
    pool: AnyPool,
    backend: Backend,
}

impl Db {
    /// Connects to the database at `url` and brings its schema up to date.
    pub async fn open(url: &str) -> Result<Db, DbError> {
        let backend = Backend::of_url(url)?;
        install_default_drivers();
        let options = AnyPoolOptions::new()
            .max_connections(match backend {
                Backend::Sqlite => 8,
                Backend::Postgres => 16,
            })
            // SQLite waits out writers (busy_timeout) with its connections held. A
            // PostgreSQL server that is down should be told quickly: callers that must
            // go on wait for it themselves (`store::until_answered`), requests get 503.
            .acquire_timeout(match backend {
                Backend::Sqlite => Duration::from_secs(60),
                Backend::Postgres => Duration::from_secs(5),
            });
        let options = match backend {
            Backend::Sqlite => options.after_connect(|conn, _| {
                Box::pin(async move {
                    conn.execute(
                        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                         PRAGMA busy_timeout = 30000; PRAGMA foreign_keys = ON;",
                    )
                    .await?;
                    Ok(())
                })
            }),
            Backend::Postgres => options,
        };
        let pool = options.connect(url).await?;
        match backend {
            Backend::Sqlite => sqlx::migrate!("migrations/sqlite").run(&pool).await?,
            Backend::Postgres => sqlx::migrate!("migrations/postgres").run(&pool).await?,
        }
        Ok(Db { pool, backend })
    }

    /// The connection pool.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// The engine behind the pool.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// A transaction for work that reads before it writes. On SQLite it holds
    /// the write lock from its start (a deferred one could not upgrade after
    /// another writer committed); on PostgreSQL the reads lock their rows
    /// with [`Db::for_update`].
    pub async fn begin_write(&self) -> Result<Transaction<'static, Any>, sqlx::Error> {
        match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
            Backend::Postgres => self.pool.begin().await,
        }
    }

    /// The clause that locks the rows a read returns, where the engine has one.
    pub fn for_update(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite => "",
            Backend::Postgres => " FOR UPDATE",
        }
    }

    /// The clause that locks the rows a read returns and skips rows another
    /// transaction holds, so concurrent claims never wait for each other.
    pub fn skip_locked(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite => "",
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
        }
    }

    /// A hint naming the index a table is read by, on SQLite only: without
    /// statistics its planner prefers a primary key that matches an ORDER BY,
    /// and would walk every finished task of a job to find its pending ones.
    /// PostgreSQL's planner, which keeps statistics, needs no hint.
    pub fn indexed_by(&self, index: &str) -> String {
        match self.backend {
            Backend::Sqlite => format!(" INDEXED BY {index}"),
            Backend::Postgres => String::new(),
        }
    }
}

/// A value bound to a query built at run time.
#[derive(Debug, Clone)]
pub enum Bind {
    Text(String),
    Int(i64),
    Blob(Vec<u8>),
}

/// A query built piece by piece with numbered (`$1`) placeholders, which both
/// engines accept (sqlx's own builder writes `?`, which PostgreSQL refuses).
#[derive(Debug, Default)]
pub struct Sql {
    text: String,
    binds: Vec<Bind>,
}

impl Sql {
    /// Starts a query with `text`.
    pub fn new(text: impl Into<String>) -> Self {
        Sql {
            text: text.into(),
            binds: Vec::new(),
        }
    }

    /// Appends SQL text.
    pub fn push(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self
    }

    /// Appends a placeholder bound to `value`.
    pub fn bind(&mut self, value: Bind) -> &mut Self {
        self.binds.push(value);
        self.text.push_str(&format!("${}", self.binds.len()));
        self
    }

    /// Appends a placeholder bound to a text.
    pub fn text(&mut self, value: impl Into<String>) -> &mut Self {
        self.bind(Bind::Text(value.into()))
    }

    /// Appends a placeholder bound to an integer.
    pub fn int(&mut self, value: i64) -> &mut Self {
        self.bind(Bind::Int(value))
    }

    /// The SQL text so far.
    pub fn sql(&self) -> &str {
        &self.text
    }

    /// The query, ready to run.
    pub fn query(&self) -> sqlx::query::Query<'_, Any, sqlx::any::AnyArguments<'_>> {
        let mut q = sqlx::query(&self.text);
        for b in &self.binds {
            q = match b {
                Bind::Text(s) => q.bind(s.as_str()),
                Bind::Int(i) => q.bind(*i),
                Bind::Blob(v) => q.bind(v.as_slice()),
            };
        }
        q
    }

    /// The query, mapping rows to `T`.
    pub fn query_as<T>(&self) -> sqlx::query::QueryAs<'_, Any, T, sqlx::any::AnyArguments<'_>>
    where
        T: for<'r> sqlx::FromRow<'r, sqlx::any::AnyRow>,
    {
        let mut q = sqlx::query_as::<_, T>(&self.text);
        for b in &self.binds {
            q = match b {
                Bind::Text(s) => q.bind(s.as_str()),
                Bind::Int(i) => q.bind(*i),
                Bind::Blob(v) => q.bind(v.as_slice()),
            };
        }
        q
    }

    /// The query, reading one column of each row.
    pub fn query_scalar<T>(
        &self,
    ) -> sqlx::query::QueryScalar<'_, Any, T, sqlx::any::AnyArguments<'_>>
    where
        T: sqlx::Type<Any> + for<'r> sqlx::Decode<'r, Any> + Send + Unpin,
    {
        let mut q = sqlx::query_scalar::<_, T>(&self.text);
        for b in &self.binds {
            q = match b {
                Bind::Text(s) => q.bind(s.as_str()),
                Bind::Int(i) => q.bind(*i),
                Bind::Blob(v) => q.bind(v.as_slice()),
            };
        }
        q
    }
}

/// A 0/1 integer column read as a flag (both engines store flags as integers).
#[derive(Debug, Clone, Copy)]
pub struct IntFlag(pub i64);

impl From<IntFlag> for bool {
    fn from(flag: IntFlag) -> bool {
        flag.0 != 0
    }
}

impl sqlx::Type<Any> for IntFlag {
    fn type_info() -> sqlx::any::AnyTypeInfo {
        <i64 as sqlx::Type<Any>>::type_info()
    }
    fn compatible(ty: &sqlx::any::AnyTypeInfo) -> bool {
        <i64 as sqlx::Type<Any>>::compatible(ty)
    }
}

impl<'r> sqlx::Decode<'r, Any> for IntFlag {
    fn decode(value: sqlx::any::AnyValueRef<'r>) -> Result<Self, sqlx::error::BoxDynError> {
        Ok(IntFlag(<i64 as sqlx::Decode<Any>>::decode(value)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_select_the_engine() {
        assert_eq!(
            Backend::of_url("sqlite:///x/wasmq.db").unwrap(),
            Backend::Sqlite
        );
        assert_eq!(
            Backend::of_url("postgres://u@h/db").unwrap(),
            Backend::Postgres
        );
        assert_eq!(
            Backend::of_url("postgresql://u@h/db").unwrap(),
            Backend::Postgres
        );
        assert!(matches!(Backend::of_url("mysql://x"), Err(DbError::Url(_))));
    }

    #[test]
    fn sqlite_urls_escape_what_a_url_would_mangle() {
        let url = sqlite_url(Path::new("/tmp/a b/x%y?.db"));
        assert_eq!(url, "sqlite:///tmp/a%20b/x%25y%3F.db?mode=rwc");
    }

    #[test]
    fn built_queries_number_their_placeholders() {
        let mut q = Sql::new("SELECT 1 FROM t WHERE a = ");
        q.text("x").push(" AND b = ").int(2);
        assert_eq!(q.sql(), "SELECT 1 FROM t WHERE a = $1 AND b = $2");
    }
}
