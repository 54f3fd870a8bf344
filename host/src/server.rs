//! Assembles a host from its configuration: data directory, database, asset
//! store, runtime, plugins, scheduler and HTTP listener.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::api::{self, AppState, SyncPolicy};
use crate::assets::AssetRepo;
use crate::auth::Role;
use crate::jobs::FailureThreshold;
use crate::plugins::Registry;
use crate::purge::Retention;
use crate::runtime::{LimitsTable, Runtime, RuntimeConfig};
use crate::scheduler::{Scheduler, SchedulerConfig};
use crate::store::Store;

/// Everything `wasmq serve` can be told.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Holds `wasmq.db` and `assets/` (and, by default, `plugins/` and `cache/`).
    pub data_dir: PathBuf,
    /// The job database URL [default: the SQLite file in `data_dir`].
    pub database_url: Option<String>,
    /// How long a claim lasts without this node's heartbeat.
    pub lease: Duration,
    /// Where job-type components are loaded from.
    pub plugins_dir: PathBuf,
    /// Where precompiled components are cached.
    pub cache_dir: PathBuf,
    /// Address to listen on (port 0 picks a free one).
    pub listen: SocketAddr,
    /// Plugin calls that may run at once.
    pub workers: usize,
    /// Limits of each plugin call, per job type.
    pub limits: LimitsTable,
    /// This node's name.
    pub server_name: String,
    /// The asset folder job reports are written to.
    pub report_folder: String,
    /// Attempts per task when it fails with a transient error.
    pub task_attempts: i64,
    /// The first retry delay; it doubles with each attempt.
    pub retry_base: Duration,
    /// When a big job with many failed tasks fails as a whole.
    pub failure: FailureThreshold,
    /// Which submissions are answered synchronously.
    pub sync: SyncPolicy,
    /// How long finished jobs are kept.
    pub retention: Retention,
    /// How job-ended notifications are sent.
    pub notify: crate::notifications::NotifyConfig,
    /// How large request bodies and asset uploads may be.
    pub body_limits: crate::request_limits::BodyLimits,
    /// Where asset binaries and the publish target live (default: `data_dir`).
    pub objects: crate::objects::StoreUrls,
}

impl ServerConfig {
    /// A host for in-process use (benchmarks, `wasmq plugin test`): the given
    /// directories, 2 workers, default limits, every job asynchronous.
    pub fn in_process(data_dir: PathBuf, plugins_dir: PathBuf, cache_dir: PathBuf) -> Result<Self> {
        Ok(ServerConfig {
            data_dir,
            database_url: None,
            lease: Duration::from_secs(30),
            plugins_dir,
            cache_dir,
            listen: "127.0.0.1:0".parse()?,
            workers: 2,
            limits: LimitsTable::default(),
            server_name: "in-process".into(),
            report_folder: "/system/wasmq/reports".into(),
            task_attempts: 3,
            retry_base: Duration::from_millis(100),
            failure: FailureThreshold::default(),
            sync: SyncPolicy {
                default: 0,
                per_type: Default::default(),
                wait: Duration::from_secs(1),
            },
            retention: Retention {
                schedule: crate::purge::parse_schedule("0 3 * * *")?,
                max_age_days: 30,
                max_finished: 100_000,
            },
            notify: Default::default(),
            body_limits: Default::default(),
            objects: Default::default(),
        })
    }
}

/// The files of a data directory.
pub struct DataDir {
    /// The SQLite database file.
    pub db: PathBuf,
    /// The root of the local asset store.
    pub assets: PathBuf,
    /// The root of the local rendition store.
    pub renditions: PathBuf,
    /// The root of the local publish target, served at `/published/`.
    pub published: PathBuf,
}

impl DataDir {
    /// Creates the data directory if needed.
    pub fn open(root: &std::path::Path) -> Result<Self> {
        std::fs::create_dir_all(root).with_context(|| format!("creating {}", root.display()))?;
        Ok(DataDir {
            db: root.join("wasmq.db"),
            assets: root.join("assets"),
            renditions: root.join("renditions"),
            published: root.join("published"),
        })
    }
}

/// Opens the database (the SQLite file of the data directory unless
/// `database_url` names another) and the asset repository of a data directory.
pub async fn open_data(
    root: &std::path::Path,
    database_url: Option<&str>,
) -> Result<(Store, AssetRepo)> {
    open_data_with(root, database_url, &Default::default()).await
}

/// Opens the database (as [`open_data`]) and the asset repository on the
/// object stores `urls` names (the data directory's own where it names none).
pub async fn open_data_with(
    root: &std::path::Path,
    database_url: Option<&str>,
    urls: &crate::objects::StoreUrls,
) -> Result<(Store, AssetRepo)> {
    let dir = DataDir::open(root)?;
    let objects =
        crate::objects::ObjectStores::open(urls, &dir.assets, &dir.renditions, &dir.published)
            .await?;
    let store = match database_url {
        Some(url) => Store::connect(url)
            .await
            .with_context(|| format!("opening the database {}", redact(url)))?,
        None => Store::open(&dir.db)
            .await
            .with_context(|| format!("opening {}", dir.db.display()))?,
    };
    let assets = AssetRepo::new(store.pool().clone(), objects);
    Ok((store, assets))
}

/// On a database with no token at all, creates an admin token for the tenant
/// `default` and writes it to `DATA_DIR/admin-token` (readable by the owner only).
pub async fn ensure_admin_token(store: &Store, data_dir: &std::path::Path) -> Result<()> {
    if !store.list_tokens().await?.is_empty() {
        return Ok(());
    }
    let (_, secret) = store.create_token("admin", Role::Admin, "default").await?;
    let file = data_dir.join("admin-token");
    {
        use std::os::unix::fs::OpenOptionsExt;
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&file)
            .with_context(|| format!("writing {}", file.display()))?;
        writeln!(out, "{secret}")?;
    }
    tracing::info!(file = %file.display(), "created the first admin token");
    if !crate::logs::is_json() {
        eprintln!("wasmq: the admin API token is in {}", file.display());
    }
    Ok(())
}

/// Runs the host until the process is stopped. Prints `listening on http://ADDR`
/// as the first line of standard output once it accepts requests.
pub async fn serve(config: ServerConfig) -> Result<()> {
    let app = start(&config).await?;
    let app = crate::request_limits::apply(api::router(app), config.body_limits);
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("listening on {}", config.listen))?;
    let addr = listener.local_addr()?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening on http://{addr}")?;
        out.flush()?;
    }
    tracing::info!(%addr, workers = config.workers, server = %config.server_name, "wasmq serving");
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}

/// Starts everything but the HTTP listener: opens the data directory, loads
/// the plugins, and spawns the scheduler, the purge and the recurring schedules.
pub async fn start(config: &ServerConfig) -> Result<AppState> {
    let (store, assets) = open_data_with(
        &config.data_dir,
        config.database_url.as_deref(),
        &config.objects,
    )
    .await?;
    ensure_admin_token(&store, &config.data_dir).await?;
    std::fs::create_dir_all(&config.plugins_dir)
        .with_context(|| format!("creating {}", config.plugins_dir.display()))?;
    let runtime = Runtime::new(&RuntimeConfig {
        cache_dir: config.cache_dir.clone(),
        instance_slots: (config.workers as u32) * 2 + 8,
        max_memory: config.limits.max_memory().max(64 << 20) + (64 << 20),
    })?;
    let registry = Arc::new(Registry::with_archive(
        runtime.clone(),
        config.data_dir.join("plugin-store"),
    )?);
    let readiness = Arc::new(crate::health::Readiness::default());
    let loaded = registry.load_dir(&config.plugins_dir).await?;
    readiness.plugins_loaded();
    tracing::info!(loaded, dir = %config.plugins_dir.display(), types = ?registry.job_types(), "plugins loaded");
    let missing = registry
        .restore(&store.unfinished_plugin_digests().await?)
        .await;
    if !missing.is_empty() {
        tracing::warn!(
            ?missing,
            "plugin versions of unfinished jobs are gone; those jobs will fail"
        );
    }
    crate::reload::watch(registry.clone(), config.plugins_dir.clone())
        .with_context(|| format!("watching {}", config.plugins_dir.display()))?;

    let scheduler = Scheduler::new(
        store.clone(),
        assets.clone(),
        registry.clone(),
        runtime,
        SchedulerConfig {
            workers: config.workers,
            limits: config.limits.clone(),
            host_timeout: Duration::from_secs(30),
            max_attempts: config.task_attempts,
            retry_base: config.retry_base,
            failure: config.failure,
            server_name: config.server_name.clone(),
            lease: config.lease,
            report_folder: config.report_folder.clone(),
        },
    );
    let wake = scheduler.waker();
    readiness.scheduler_started(tokio::spawn(scheduler.run()));
    tokio::spawn(config.retention.clone().run(store.clone()));
    crate::notifications::start(store.clone(), config.notify.clone());
    tokio::spawn(crate::schedules::run(
        store.clone(),
        registry.clone(),
        wake.clone(),
    ));

    Ok(AppState {
        store,
        assets,
        registry,
        plugins_dir: config.plugins_dir.clone(),
        wake,
        sync: Arc::new(config.sync.clone()),
        retention: Arc::new(config.retention.clone()),
        readiness,
    })
}

/// A database URL without its password, for messages.
fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}
