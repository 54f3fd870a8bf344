//! `wasmq plugin test`: runs one job of a plugin component on a folder of
//! fixture files in a throwaway host, and reports its tasks, outcomes, log and cost.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::api::AppState;
use crate::runtime::{Limits, LimitsTable, Metering};
use crate::server::{self, ServerConfig};
use crate::store::TaskRow;

/// The tenant the fixtures and the job belong to.
const TENANT: &str = "default";

/// What to test.
#[derive(Debug, Clone)]
pub struct TestOptions {
    /// The component (`.wasm`) to test.
    pub component: PathBuf,
    /// A directory of files to import as the job's assets.
    pub fixtures: PathBuf,
    /// The asset folder they are imported into; the job's path.
    pub to: String,
    /// The job type to submit [default: the plugin's first].
    pub job_type: Option<String>,
    /// The job's params (a JSON object).
    pub params: Value,
    /// Plugin calls that may run at once.
    pub workers: usize,
    /// How long the job may take before the test gives up.
    pub timeout: Duration,
}

/// How the job went.
#[derive(Debug, Clone)]
pub struct Report {
    /// The plugin's name and version.
    pub plugin: String,
    /// The job type that ran.
    pub job_type: String,
    /// The job's path.
    pub path: String,
    /// The job's final state (`Complete`, `Failed`, `Cancelled`).
    pub state: String,
    /// Why the job failed, if it did.
    pub error: Option<String>,
    /// Fuel the job's calls burnt.
    pub fuel: i64,
    /// CPU time of the job's calls, in nanoseconds.
    pub cpu_ns: i64,
    /// Every task, in plan order.
    pub tasks: Vec<TaskRow>,
    /// The job's log as (ms since the epoch, level, message).
    pub logs: Vec<(i64, String, String)>,
}

impl Report {
    /// True if the job completed and every task succeeded.
    pub fn passed(&self) -> bool {
        self.state == "Complete" && self.tasks.iter().all(|t| t.state == "succeeded")
    }

    /// The report as text, for people.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "job {} of {} on {}: {}",
            self.job_type, self.plugin, self.path, self.state
        );
        if let Some(error) = &self.error {
            let _ = writeln!(out, "error: {error}");
        }
        let _ = writeln!(out, "tasks:");
        let width = self.tasks.iter().map(|t| t.path.len()).max().unwrap_or(0);
        for t in &self.tasks {
            let code = t.code.map_or("-".to_string(), |c| c.to_string());
            let _ = writeln!(
                out,
                "  {:<width$}  {:<9}  {code:>3}  attempts {}  cpu {:.1} ms  {}",
                t.path,
                t.state,
                t.attempts,
                ms(t.cpu_ns),
                t.message.as_deref().unwrap_or_default()
            );
        }
        let _ = writeln!(out, "log:");
        for (_, level, message) in &self.logs {
            let _ = writeln!(out, "  {:<5}  {message}", level.to_uppercase());
        }
        let succeeded = self.tasks.iter().filter(|t| t.state == "succeeded").count();
        let failed = self.tasks.iter().filter(|t| t.state == "failed").count();
        let _ = writeln!(
            out,
            "totals: {} tasks, {succeeded} succeeded, {failed} failed; fuel {}; cpu {:.1} ms",
            self.tasks.len(),
            self.fuel,
            ms(self.cpu_ns)
        );
        out
    }
}

fn ms(ns: i64) -> f64 {
    ns as f64 / 1e6
}

/// A directory removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Result<Self> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir =
            std::env::temp_dir().join(format!("wasmq-plugin-test-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Scratch(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs one job of the component on the fixtures in a throwaway host (fuel
/// metering, so that the report shows fuel) and returns how it went.
pub async fn run(options: &TestOptions) -> Result<Report> {
    crate::paths::validate(&options.to)
        .map_err(|e| anyhow::anyhow!("--to {:?} {e}", options.to))?;
    if !options.fixtures.is_dir() {
        bail!(
            "--fixtures {} is not a directory",
            options.fixtures.display()
        );
    }
    let bytes = std::fs::read(&options.component)
        .with_context(|| format!("reading {}", options.component.display()))?;
    let scratch = Scratch::new()?;
    let plugins_dir = scratch.0.join("plugins");
    std::fs::create_dir_all(&plugins_dir)?;
    let name = options
        .component
        .file_name()
        .map_or("plugin.wasm".into(), |n| n.to_string_lossy().into_owned());
    std::fs::write(plugins_dir.join(&name), bytes)?;

    let app = start_host(&scratch.0, plugins_dir, options.workers).await?;
    let Some(plugin) = app.registry.current().into_iter().next() else {
        let reasons: Vec<String> = app
            .registry
            .rejected()
            .into_iter()
            .map(|r| r.reason)
            .collect();
        bail!(
            "{} was not loaded: {}",
            options.component.display(),
            if reasons.is_empty() {
                "no reason given".to_string()
            } else {
                reasons.join("; ")
            }
        );
    };
    let job_type = match &options.job_type {
        Some(t) => t.clone(),
        None => plugin
            .job_types
            .first()
            .cloned()
            .context("the plugin declares no job type")?,
    };

    let (count, _) = app
        .assets
        .import_dir(TENANT, &options.fixtures, &options.to)
        .await
        .with_context(|| format!("importing {}", options.fixtures.display()))?;
    tracing::info!(count, to = %options.to, "fixtures imported");

    let body = json!({ "type": job_type, "path": options.to, "params": options.params });
    let new_job = crate::submission::parse(
        body.to_string().as_bytes(),
        TENANT,
        "wasmq plugin test",
        &app.registry,
    )
    .map_err(|e| anyhow::anyhow!("the job was refused: {e}"))?;
    let job = app.store.insert_job(&new_job).await?;
    app.wake.notify_one();

    let started = Instant::now();
    let job = loop {
        let job = app
            .store
            .get_job(&job.id)
            .await?
            .with_context(|| format!("job {} vanished", job.id))?;
        if job.state().is_final() {
            break job;
        }
        if started.elapsed() > options.timeout {
            bail!(
                "the job is still {} after {:?}",
                job.state(),
                options.timeout
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let tasks = app.store.all_tasks(&job.id).await?;
    let logs = app.store.logs(&job.id, 0, i64::MAX).await?;
    Ok(Report {
        plugin: format!("{} {}", plugin.name, plugin.version),
        job_type,
        path: job.path.clone(),
        state: job.state().to_string(),
        error: job.error.clone(),
        fuel: job.fuel_used,
        cpu_ns: job.cpu_ns,
        tasks,
        logs,
    })
}

/// A host without HTTP over a fresh data directory under `dir`.
async fn start_host(dir: &Path, plugins_dir: PathBuf, workers: usize) -> Result<AppState> {
    let mut config = ServerConfig::in_process(dir.join("data"), plugins_dir, dir.join("cache"))?;
    config.workers = workers.max(1);
    config.server_name = "plugin-test".into();
    config.limits = LimitsTable {
        default: Limits {
            metering: Metering::Fuel,
            ..Limits::default()
        },
        per_type: Default::default(),
    };
    server::start(&config).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(path: &str, state: &str, code: Option<i64>, message: &str) -> TaskRow {
        TaskRow {
            seq: 0,
            path: path.into(),
            state: state.into(),
            code,
            message: Some(message.into()),
            etag: None,
            attempts: 1,
            fuel_used: 10,
            cpu_ns: 1_500_000,
            started_at: None,
            finished_at: None,
            node: None,
        }
    }

    fn report(state: &str, tasks: Vec<TaskRow>) -> Report {
        Report {
            plugin: "checksum 0.1.0".into(),
            job_type: "checksum".into(),
            path: "/content/fixtures".into(),
            state: state.into(),
            error: None,
            fuel: 1234,
            cpu_ns: 3_000_000,
            tasks,
            logs: vec![(0, "info".into(), "planned 2 tasks".into())],
        }
    }

    #[test]
    fn passes_only_when_complete_and_every_task_succeeded() {
        let ok = task("/content/fixtures/a", "succeeded", Some(200), "abc");
        let bad = task("/content/fixtures/b", "failed", Some(409), "kept");
        assert!(report("Complete", vec![ok.clone()]).passed());
        assert!(report("Complete", vec![]).passed());
        assert!(!report("Complete", vec![ok.clone(), bad]).passed());
        assert!(!report("Failed", vec![ok]).passed());
    }

    #[test]
    fn renders_tasks_log_and_totals() {
        let text = report(
            "Complete",
            vec![
                task("/content/fixtures/a", "succeeded", Some(200), "abc"),
                task("/content/fixtures/bb", "failed", None, "boom"),
            ],
        )
        .render();
        assert!(
            text.starts_with("job checksum of checksum 0.1.0 on /content/fixtures: Complete\n")
        );
        assert!(
            text.contains("/content/fixtures/a   succeeded  200  attempts 1  cpu 1.5 ms  abc"),
            "{text}"
        );
        assert!(
            text.contains("/content/fixtures/bb  failed       -  attempts 1  cpu 1.5 ms  boom"),
            "{text}"
        );
        assert!(text.contains("INFO   planned 2 tasks"), "{text}");
        assert!(
            text.ends_with("totals: 2 tasks, 1 succeeded, 1 failed; fuel 1234; cpu 3.0 ms\n"),
            "{text}"
        );
    }
}
