//! The `wasmq` command: the server, asset import, job submission and the
//! plugin build, over the `wasmq` library.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use serde_json::Value;

use wasmq::api::SyncPolicy;
use wasmq::cli::{ClientCommand, JobsCommand};
use wasmq::jobs::FailureThreshold;
use wasmq::purge::Retention;
use wasmq::runtime::{Limits, LimitsTable, Metering};
use wasmq::scheduler::SchedulerConfig;
use wasmq::server::{self, ServerConfig};

#[derive(Parser)]
#[command(
    name = "wasmq",
    version,
    about = "A job runtime for bulk asset operations; job types are wasm components",
    after_help = wasmq::cli::after_help()
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the server on a data directory (created on first start).
    Serve(ServeArgs),
    /// Works on the asset repository of a data directory.
    Assets {
        #[command(subcommand)]
        command: AssetsCommand,
    },
    /// Submits a job to a running server; --wait follows it to its end.
    Submit(wasmq::cli::SubmitArgs),
    /// Shows one job of a running server (the same as `jobs show`).
    Job(wasmq::cli::IdArgs),
    /// Lists, shows and acts on the jobs of a running server.
    Jobs {
        #[command(subcommand)]
        command: wasmq::cli::JobsCommand,
    },
    /// Prints a job's log; -f follows it with the job's progress until it ends.
    Logs(wasmq::cli::LogsArgs),
    /// Manages API tokens of a data directory.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Builds, tests, lists and uploads plugins.
    #[command(visible_alias = "plugins")]
    Plugin {
        #[command(subcommand)]
        command: PluginCommand,
    },
    /// Measures the wasm path, metering overhead and the scheduler's rate and
    /// fairness on this machine, and prints the figures.
    Bench {
        /// Where the built plugin components are.
        #[arg(long, default_value = "target/wasm-plugins")]
        plugins: PathBuf,
        /// Fewer repetitions: a quick look rather than stable figures.
        #[arg(long)]
        quick: bool,
    },
    /// Runs image-optimize as wasm and natively over the image corpus and
    /// prints the CPU ratio per format and PNG sizes against oxipng.
    BenchAssets {
        #[arg(long, default_value = "target/wasm-plugins")]
        plugins: PathBuf,
        #[arg(long, default_value = "target/corpus/images")]
        corpus: PathBuf,
        #[arg(long, default_value = "plugins/target/release/nativebench")]
        native: PathBuf,
        /// Also runs this nativebench (scripts/nativebench-narrow.sh) with AVX
        /// hidden, and prints wasm against native code limited to 128-bit SIMD.
        #[arg(long)]
        native_narrow: Option<PathBuf>,
        #[arg(long, default_value = "target/tools/bin/oxipng")]
        oxipng: PathBuf,
        /// Runs per file; the least CPU time counts.
        #[arg(long, default_value_t = 3)]
        repeat: u32,
    },
    /// Deletes N assets with the wasm delete plugin through the scheduler, with
    /// the same repository calls natively, and as plain files; prints the rates.
    BenchDelete {
        #[arg(long, default_value = "target/wasm-plugins")]
        plugins: PathBuf,
        /// Assets each side deletes.
        #[arg(long, default_value_t = 100_000)]
        assets: usize,
        /// Rounds that alternate the two sides, each over its share of the assets.
        #[arg(long, default_value_t = 4)]
        rounds: usize,
    },
    /// Runs `wasmq serve` processes: job submission driven by wrk (rate,
    /// p50/p99) and the server's RSS with a large queue of tasks.
    BenchServer {
        #[arg(long, default_value = "target/wasm-plugins")]
        plugins: PathBuf,
        #[arg(long, default_value = "wrk")]
        wrk: PathBuf,
        /// Seconds each wrk run lasts.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// wrk connections.
        #[arg(long, default_value_t = 16)]
        connections: u32,
        /// Tasks the queued job plans.
        #[arg(long, default_value_t = 1_000_000)]
        queued: u64,
    },
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Holds wasmq.db and assets/.
    #[arg(long, env = "WASMQ_DATA_DIR", default_value = "data")]
    data_dir: PathBuf,
    /// The job database: postgres://user@host/db to share it between hosts
    /// [default: the SQLite file DATA_DIR/wasmq.db].
    #[arg(long, env = "WASMQ_DATABASE_URL")]
    database_url: Option<String>,
    /// How long a node's claim on a task or job lasts without its heartbeat
    /// (renewed every third of it); then another node takes the work over.
    #[arg(long, env = "WASMQ_LEASE_MS", default_value_t = 30_000, value_parser = clap::value_parser!(u64).range(300..=3_600_000))]
    lease_ms: u64,
    /// How log lines on standard error are written: text, or json (one object a line).
    #[arg(long, env = "WASMQ_LOG_FORMAT", value_enum, default_value_t = wasmq::logs::LogFormat::Text)]
    log_format: wasmq::logs::LogFormat,
    /// Where job-type components are loaded from [default: DATA_DIR/plugins].
    #[arg(long, env = "WASMQ_PLUGINS_DIR")]
    plugins: Option<PathBuf>,
    /// Where precompiled components are cached [default: DATA_DIR/cache].
    #[arg(long, env = "WASMQ_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
    #[arg(long, env = "WASMQ_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Plugin calls that may run at once [default: half the CPU cores].
    #[arg(long, env = "WASMQ_WORKERS")]
    workers: Option<usize>,
    /// Fuel one plugin call may burn.
    #[arg(long, default_value_t = Limits::default().fuel)]
    task_fuel: u64,
    /// Wall time one plugin call may take, in milliseconds.
    #[arg(long, default_value_t = Limits::default().wall.as_millis() as u64)]
    task_timeout_ms: u64,
    /// Linear memory one plugin instance may use, in MiB.
    #[arg(long, default_value_t = (Limits::default().memory >> 20) as u64)]
    task_memory_mb: u64,
    /// Table elements one plugin instance may grow a table to.
    #[arg(long, default_value_t = Limits::default().table_elements)]
    task_table_elements: usize,
    /// How plugin calls are metered: epoch (CPU time; fastest) or fuel
    /// (deterministic instruction budgets).
    #[arg(long, default_value = "epoch")]
    task_metering: Metering,
    /// Limits of one job type, as TYPE:key=value,... with keys fuel, wall-ms,
    /// memory-mb, table-elements, metering (repeatable).
    #[arg(long = "limits-for")]
    limits_for: Vec<String>,
    /// Attempts per task when the plugin reports a transient error.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(i64).range(1..=100))]
    task_attempts: i64,
    /// The first retry delay in milliseconds; it doubles with each attempt.
    #[arg(long, default_value_t = 500)]
    retry_base_ms: u64,
    /// A job with more tasks than this can fail as a whole...
    #[arg(long, default_value_t = FailureThreshold::default().min_tasks)]
    failure_min_tasks: u64,
    /// ...as soon as more than this percentage of the tasks run so far failed.
    #[arg(long, default_value_t = FailureThreshold::default().percent, value_parser = clap::value_parser!(u64).range(0..=100))]
    failure_percent: u64,
    /// Jobs that plan at most this many items are answered within the request (0: never).
    #[arg(long, default_value_t = 100)]
    sync_threshold: u64,
    /// The same for one job type, as TYPE=N (repeatable).
    #[arg(long = "sync-threshold-for", value_parser = parse_type_threshold)]
    sync_threshold_for: Vec<(String, u64)>,
    /// Finished jobs older than this many days are purged.
    #[arg(long, default_value_t = 30)]
    retention_days: u64,
    /// At most this many finished jobs are kept.
    #[arg(long, default_value_t = 10_000)]
    retention_max_jobs: u64,
    /// When the purge runs: a cron expression in UTC (minute hour day month weekday).
    #[arg(long, default_value = "0 3 * * *")]
    purge_schedule: String,
    /// The asset folder job reports are written to, in each job's tenant.
    #[arg(
        long,
        env = "WASMQ_REPORT_FOLDER",
        default_value = "/system/wasmq/reports"
    )]
    report_folder: String,
    /// This node's name on the jobs it runs [default: the host name].
    #[arg(long, env = "WASMQ_SERVER_NAME")]
    server_name: Option<String>,
    /// The largest request body (job submissions and other JSON), in bytes.
    #[arg(long, default_value_t = wasmq::request_limits::BodyLimits::default().request)]
    max_request_bytes: usize,
    /// The largest asset or rendition upload, in bytes.
    #[arg(long, default_value_t = wasmq::request_limits::BodyLimits::default().upload)]
    max_upload_bytes: usize,
    /// Job-ended notifications: email, links, delivery retries.
    #[command(flatten)]
    notify: Box<NotifyArgs>,
    /// Where asset binaries and the publish target live.
    #[command(flatten)]
    objects: wasmq::objects::StoreUrls,
}

/// How job-ended notifications are sent.
#[derive(clap::Args)]
struct NotifyArgs {
    /// The SMTP relay job-ended emails go through, as smtp://host:port (plain
    /// SMTP, no TLS); without it no email is sent.
    #[arg(long, env = "WASMQ_SMTP_URL")]
    smtp_url: Option<String>,
    /// The From: address of job-ended emails.
    #[arg(
        long,
        env = "WASMQ_SMTP_FROM",
        default_value = "wasmq <wasmq@localhost>"
    )]
    smtp_from: String,
    /// This server's public base URL, for links in notifications.
    #[arg(long, env = "WASMQ_PUBLIC_URL")]
    public_url: Option<String>,
    /// The first retry delay of a failed webhook or email delivery, in
    /// milliseconds; it doubles with each attempt.
    #[arg(long, default_value_t = 1000)]
    delivery_retry_base_ms: u64,
    /// The longest delay between two delivery attempts, in milliseconds.
    #[arg(long, default_value_t = 3_600_000)]
    delivery_retry_max_ms: u64,
    /// Attempts per delivery before it is recorded as failed.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(i64).range(1..=100))]
    delivery_attempts: i64,
    /// How often notifications are looked for without a wake-up (a job that
    /// ends wakes the dispatcher at once), in milliseconds.
    #[arg(long, default_value_t = 5000, value_parser = clap::value_parser!(u64).range(10..))]
    notify_poll_ms: u64,
}

#[derive(Subcommand)]
enum AssetsCommand {
    /// Imports a directory tree of real files as assets.
    Import {
        /// The directory to import.
        dir: PathBuf,
        /// The asset folder to import into, e.g. /content/dam/photos.
        #[arg(long)]
        to: String,
        #[arg(long, env = "WASMQ_DATA_DIR", default_value = "data")]
        data_dir: PathBuf,
        /// The job database [default: the SQLite file DATA_DIR/wasmq.db].
        #[arg(long, env = "WASMQ_DATABASE_URL")]
        database_url: Option<String>,
        #[arg(long, default_value = "default")]
        tenant: String,
        #[command(flatten)]
        objects: wasmq::objects::StoreUrls,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Creates a token and prints its secret (shown only this once).
    Create {
        /// Who or what the token is for; jobs record it as their creator.
        #[arg(long)]
        name: String,
        /// admin, submitter or viewer.
        #[arg(long, default_value = "submitter")]
        role: String,
        #[arg(long, default_value = "default")]
        tenant: String,
        #[arg(long, env = "WASMQ_DATA_DIR", default_value = "data")]
        data_dir: PathBuf,
        /// The job database [default: the SQLite file DATA_DIR/wasmq.db].
        #[arg(long, env = "WASMQ_DATABASE_URL")]
        database_url: Option<String>,
    },
}

#[derive(Subcommand)]
enum PluginCommand {
    /// Lists the plugin versions a running server has loaded, and the files it refused.
    List(wasmq::cli::PluginListArgs),
    /// Installs a component on a running server (admin token).
    Upload(wasmq::cli::UploadArgs),
    /// Builds every plugin crate of a cargo workspace into wasm components.
    Build {
        /// The plugin workspace or crate.
        #[arg(default_value = "plugins")]
        dir: PathBuf,
        /// Where the .wasm files go.
        #[arg(long, default_value = "target/wasm-plugins")]
        out: PathBuf,
        /// cargo's target directory (default DIR/target); one shared by several plugin
        /// workspaces builds the standard library once for all of them.
        #[arg(long)]
        target_dir: Option<PathBuf>,
    },
    /// Writes a new plugin crate NAME/ that builds on its own (out of tree).
    New {
        /// The plugin's name and job type: lowercase letters, digits and '-'.
        name: String,
        /// The directory to create NAME/ in.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
    },
    /// Runs one job of a plugin component on a directory of files in a
    /// throwaway host and prints its tasks, outcomes, log and fuel.
    Test {
        /// The component (.wasm) to test.
        component: PathBuf,
        /// A directory of files to import as the job's assets.
        #[arg(long)]
        fixtures: PathBuf,
        /// The asset folder the fixtures go to; the job's path.
        #[arg(long, default_value = "/content/fixtures")]
        to: String,
        /// The job type to submit [default: the plugin's first].
        #[arg(long = "type")]
        job_type: Option<String>,
        /// The job's params as a JSON object.
        #[arg(long, default_value = "{}")]
        params: String,
        /// Plugin calls that may run at once.
        #[arg(long, default_value_t = 2)]
        workers: usize,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    wasmq::logs::init(match &cli.command {
        Command::Serve(args) => args.log_format,
        _ => wasmq::logs::LogFormat::Text,
    });
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(run(cli.command))
}

async fn run(command: Command) -> Result<()> {
    match command {
        Command::Serve(args) => serve(args).await,
        Command::Assets {
            command:
                AssetsCommand::Import {
                    dir,
                    to,
                    data_dir,
                    database_url,
                    tenant,
                    objects,
                },
        } => {
            wasmq::paths::validate(&to).map_err(|e| anyhow::anyhow!("--to {to:?} {e}"))?;
            let (_, assets) =
                server::open_data_with(&data_dir, database_url.as_deref(), &objects).await?;
            let (count, refs) = assets.import_dir(&tenant, &dir, &to).await?;
            println!("imported {count} assets ({refs} references) into {to}");
            Ok(())
        }
        Command::Submit(args) => client(ClientCommand::Submit(args)).await,
        Command::Job(args) => client(ClientCommand::Jobs(JobsCommand::Show(args))).await,
        Command::Jobs { command } => client(ClientCommand::Jobs(command)).await,
        Command::Logs(args) => client(ClientCommand::Logs(args)).await,
        Command::Bench { plugins, quick } => {
            wasmq::bench::run(wasmq::bench::BenchOptions { plugins, quick }).await
        }
        Command::BenchAssets {
            plugins,
            corpus,
            native,
            native_narrow,
            oxipng,
            repeat,
        } => {
            let options = wasmq::assetbench::AssetBenchOptions {
                plugins,
                corpus,
                native,
                narrow: native_narrow,
                oxipng,
                repeat: repeat.max(1),
            };
            wasmq::assetbench::run(options).await
        }
        Command::BenchDelete {
            plugins,
            assets,
            rounds,
        } => {
            let options = wasmq::deletebench::DeleteBenchOptions {
                plugins,
                assets,
                rounds,
            };
            wasmq::deletebench::run(options).await.map(|_| ())
        }
        Command::BenchServer {
            plugins,
            wrk,
            seconds,
            connections,
            queued,
        } => {
            wasmq::serverbench::run(wasmq::serverbench::ServerBenchOptions {
                plugins,
                wrk,
                duration: Duration::from_secs(seconds),
                connections,
                queued,
            })
            .await
        }
        Command::Token {
            command:
                TokenCommand::Create {
                    name,
                    role,
                    tenant,
                    data_dir,
                    database_url,
                },
        } => {
            let role: wasmq::auth::Role = role.parse()?;
            if !wasmq::auth::valid_tenant(&tenant) {
                bail!("--tenant {tenant:?} must be 1-64 of a-z, 0-9, '-' and '_'");
            }
            let (store, _) = server::open_data(&data_dir, database_url.as_deref()).await?;
            let (_, secret) = store.create_token(&name, role, &tenant).await?;
            println!("{secret}");
            Ok(())
        }
        Command::Plugin { command } => match command {
            PluginCommand::List(args) => client(ClientCommand::PluginList(args)).await,
            PluginCommand::Upload(args) => client(ClientCommand::PluginUpload(args)).await,
            PluginCommand::Build {
                dir,
                out,
                target_dir,
            } => {
                let built = tokio::task::spawn_blocking(move || {
                    wasmq::toolchain::build(&dir, &out, target_dir.as_deref())
                })
                .await??;
                for file in built {
                    println!("{}", file.display());
                }
                Ok(())
            }
            PluginCommand::New { name, dir } => {
                let root = wasmq::scaffold::create(&dir, &name)?;
                println!("{}", root.display());
                Ok(())
            }
            PluginCommand::Test {
                component,
                fixtures,
                to,
                job_type,
                params,
                workers,
            } => {
                let params: Value =
                    serde_json::from_str(&params).context("--params is not JSON")?;
                let report = wasmq::plugintest::run(&wasmq::plugintest::TestOptions {
                    component,
                    fixtures,
                    to,
                    job_type,
                    params,
                    workers,
                    timeout: Duration::from_secs(600),
                })
                .await?;
                print!("{}", report.render());
                if !report.passed() {
                    bail!("the job ended {} or a task failed", report.state);
                }
                Ok(())
            }
        },
    }
}

async fn serve(args: ServeArgs) -> Result<()> {
    wasmq::paths::validate(&args.report_folder)
        .map_err(|e| anyhow::anyhow!("--report-folder {:?} {e}", args.report_folder))?;
    let mut limits = LimitsTable {
        default: Limits {
            metering: args.task_metering,
            fuel: args.task_fuel,
            wall: Duration::from_millis(args.task_timeout_ms),
            memory: (args.task_memory_mb as usize) << 20,
            table_elements: args.task_table_elements,
        },
        per_type: Default::default(),
    };
    for spec in &args.limits_for {
        limits
            .add_override(spec)
            .map_err(|e| anyhow::anyhow!("--limits-for {e}"))?;
    }
    let server_name = match args.server_name {
        Some(name) => name,
        None => std::fs::read_to_string("/etc/hostname")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "wasmq".into()),
    };
    server::serve(ServerConfig {
        plugins_dir: args
            .plugins
            .unwrap_or_else(|| args.data_dir.join("plugins")),
        cache_dir: args
            .cache_dir
            .unwrap_or_else(|| args.data_dir.join("cache")),
        data_dir: args.data_dir,
        database_url: args.database_url,
        lease: Duration::from_millis(args.lease_ms),
        listen: args.listen,
        workers: args
            .workers
            .unwrap_or_else(SchedulerConfig::default_workers),
        limits,
        server_name,
        report_folder: args.report_folder,
        task_attempts: args.task_attempts,
        retry_base: Duration::from_millis(args.retry_base_ms),
        failure: FailureThreshold {
            min_tasks: args.failure_min_tasks,
            percent: args.failure_percent,
        },
        sync: SyncPolicy {
            default: args.sync_threshold,
            per_type: args.sync_threshold_for.into_iter().collect(),
            wait: Duration::from_secs(60),
        },
        retention: Retention {
            schedule: wasmq::purge::parse_schedule(&args.purge_schedule)?,
            max_age_days: args.retention_days,
            max_finished: args.retention_max_jobs,
        },
        notify: wasmq::notifications::NotifyConfig {
            public_url: args.notify.public_url,
            smtp: match &args.notify.smtp_url {
                Some(url) => Some(
                    wasmq::mail::SmtpConfig::new(url, &args.notify.smtp_from)
                        .map_err(|e| anyhow::anyhow!("--smtp-url/--smtp-from: {e}"))?,
                ),
                None => None,
            },
            retry: wasmq::notifications::RetryPolicy {
                base: Duration::from_millis(args.notify.delivery_retry_base_ms),
                max_delay: Duration::from_millis(args.notify.delivery_retry_max_ms),
                attempts: args.notify.delivery_attempts,
            },
            poll: Duration::from_millis(args.notify.notify_poll_ms),
        },
        body_limits: wasmq::request_limits::BodyLimits {
            request: args.max_request_bytes,
            upload: args.max_upload_bytes,
        },
        objects: args.objects,
    })
    .await
}

fn parse_type_threshold(text: &str) -> Result<(String, u64), String> {
    let (job_type, n) = text.split_once('=').ok_or("expected TYPE=N")?;
    let n = n.parse().map_err(|_| format!("{n:?} is not a number"))?;
    Ok((job_type.to_string(), n))
}

/// Runs a client command and exits with its code (see `wasmq::cli::exitcode`).
async fn client(command: ClientCommand) -> Result<()> {
    let code = wasmq::cli::run(command).await;
    std::process::exit(code.into())
}
