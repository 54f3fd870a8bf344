//! Prometheus metrics: the counters the host keeps (task outcomes and latency, fuel and CPU
//! per tenant and plugin, plugin reloads), gauges read from the database at scrape time, and `GET /metrics`.

use std::sync::LazyLock;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::{encode_eof, encode_registry};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;
use sqlx::Row;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::{ApiError, ApiResult, AppState, caller};
use crate::auth::Action;
use crate::jobs::ALL_STATES;
use crate::store::Store;

/// Every metric name starts with this (then `_`).
pub const PREFIX: &str = "wasmq";

/// The content type of the OpenMetrics text exposition, which Prometheus scrapes.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Upper bounds of the task latency buckets, in seconds: 1 ms to 5 minutes.
pub const LATENCY_BUCKETS: [f64; 17] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    120.0, 300.0,
];

/// How one task call ended, as counted in `wasmq_task_outcomes_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskOutcome {
    /// The plugin returned an outcome.
    Succeeded,
    /// The task failed for good (permanent error, trap, limit, or retries used up).
    Failed,
    /// The task failed transiently and is queued again.
    Retried,
}

impl TaskOutcome {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskOutcome::Succeeded => "succeeded",
            TaskOutcome::Failed => "failed",
            TaskOutcome::Retried => "retried",
        }
    }
}

/// What became of a plugin file, as counted in `wasmq_plugin_reloads_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReloadOutcome {
    /// A new version now serves its job types.
    Loaded,
    /// Refused (not a usable component); the previous version keeps serving.
    Rejected,
    /// The file went away; its job types take no new jobs.
    Retired,
}

impl ReloadOutcome {
    fn as_str(self) -> &'static str {
        match self {
            ReloadOutcome::Loaded => "loaded",
            ReloadOutcome::Rejected => "rejected",
            ReloadOutcome::Retired => "retired",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    job_type: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TypeLabels {
    job_type: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AccountLabels {
    tenant: String,
    plugin: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReloadLabels {
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    job_type: String,
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabels {
    version: String,
}

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

/// The metrics the host counts as things happen; the process keeps one set ([`global`]).
pub struct Metrics {
    registry: Registry,
    task_outcomes: Family<OutcomeLabels, Counter>,
    task_seconds: Family<TypeLabels, Histogram, fn() -> Histogram>,
    fuel: Family<AccountLabels, Counter>,
    cpu_seconds: Family<AccountLabels, Counter<f64, AtomicU64>>,
    reloads: Family<ReloadLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh set, every counter at zero.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix(PREFIX);
        registry.register(
            "build",
            "The wasmq version this process runs",
            Info::new(VersionLabels {
                version: env!("CARGO_PKG_VERSION").to_string(),
            }),
        );
        let task_outcomes = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "task_outcomes",
            "Task calls that ended, by job type and outcome (succeeded, failed, retried)",
            task_outcomes.clone(),
        );
        let task_seconds = Family::<TypeLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        registry.register(
            "task_duration_seconds",
            "Wall time of task calls (every attempt), by job type",
            task_seconds.clone(),
        );
        let fuel = Family::<AccountLabels, Counter>::default();
        registry.register(
            "fuel_burnt",
            "Fuel burnt by plugin calls (plan, tasks, finish) under fuel metering, by tenant and plugin",
            fuel.clone(),
        );
        let cpu_seconds = Family::<AccountLabels, Counter<f64, AtomicU64>>::default();
        registry.register(
            "cpu_seconds",
            "CPU time spent in plugin calls (plan, tasks, finish), by tenant and plugin",
            cpu_seconds.clone(),
        );
        let reloads = Family::<ReloadLabels, Counter>::default();
        registry.register(
            "plugin_reloads",
            "Plugin files handled, by outcome (loaded, rejected, retired)",
            reloads.clone(),
        );
        Metrics {
            registry,
            task_outcomes,
            task_seconds,
            fuel,
            cpu_seconds,
            reloads,
        }
    }

    /// Counts one task call: its outcome, its wall time, and its cost.
    #[allow(clippy::too_many_arguments)]
    pub fn task_ended(
        &self,
        job_type: &str,
        tenant: &str,
        plugin: &str,
        outcome: TaskOutcome,
        elapsed: Duration,
        fuel: u64,
        cpu: Duration,
    ) {
        self.task_outcomes
            .get_or_create(&OutcomeLabels {
                job_type: job_type.to_string(),
                outcome: outcome.as_str().to_string(),
            })
            .inc();
        self.task_seconds
            .get_or_create(&TypeLabels {
                job_type: job_type.to_string(),
            })
            .observe(elapsed.as_secs_f64());
        self.charge(tenant, plugin, fuel, cpu);
    }

    /// Adds the cost of one plugin call to its tenant's and plugin's account.
    pub fn charge(&self, tenant: &str, plugin: &str, fuel: u64, cpu: Duration) {
        let labels = AccountLabels {
            tenant: tenant.to_string(),
            plugin: plugin.to_string(),
        };
        self.fuel.get_or_create(&labels).inc_by(fuel);
        self.cpu_seconds
            .get_or_create(&labels)
            .inc_by(cpu.as_secs_f64());
    }

    /// Counts what became of a plugin file.
    pub fn plugin_reload(&self, outcome: ReloadOutcome) {
        self.reloads
            .get_or_create(&ReloadLabels {
                outcome: outcome.as_str().to_string(),
            })
            .inc();
    }

    /// The OpenMetrics text of these counters and of the gauges in `snapshot`.
    pub fn encode(&self, snapshot: &Snapshot) -> String {
        let mut out = String::new();
        encode_registry(&mut out, &self.registry).expect("writing to a String");
        encode_registry(&mut out, &snapshot.registry()).expect("writing to a String");
        encode_eof(&mut out).expect("writing to a String");
        out
    }
}

/// The process's metrics, which the scheduler and the plugin registry count into.
pub fn global() -> &'static Metrics {
    static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);
    &METRICS
}

/// Figures read from the database at scrape time, so they are right after a restart
/// and across nodes sharing the database.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Snapshot {
    /// Jobs as (job type, state, count); every state of every type is present.
    pub jobs: Vec<(String, String, i64)>,
    /// Tasks of unfinished jobs as (job type, task state, count), for `pending` and `running`.
    pub tasks: Vec<(String, String, i64)>,
    /// Jobs waiting for a worker before their tasks can run (due New, Preparing, Ready).
    pub jobs_waiting: i64,
}

impl Snapshot {
    /// Reads the figures; `job_types` (the loaded ones) get zero rows even without jobs.
    pub async fn read(store: &Store, job_types: &[String]) -> Result<Snapshot, sqlx::Error> {
        let rows =
            sqlx::query("SELECT job_type, state, count(*) FROM jobs GROUP BY job_type, state")
                .fetch_all(store.pool())
                .await?;
        let counted: Vec<(String, String, i64)> = rows
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect();
        let tasks = sqlx::query(
            "SELECT j.job_type, t.state, count(*) FROM jobs j JOIN tasks t ON t.job_id = j.id \
             AND t.state IN ('pending', 'running') \
             WHERE j.state NOT IN ('Complete', 'Failed', 'Cancelled') GROUP BY j.job_type, t.state",
        )
        .fetch_all(store.pool())
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect::<Vec<(String, String, i64)>>();
        let jobs_waiting = store
            .waiting_jobs()
            .await
            .map_err(|e| sqlx::Error::Protocol(e.to_string()))?
            .len() as i64;
        Ok(Snapshot {
            jobs: fill_states(job_types, &counted),
            tasks: fill_task_states(job_types, &tasks),
            jobs_waiting,
        })
    }

    fn registry(&self) -> Registry {
        let mut registry = Registry::with_prefix(PREFIX);
        let jobs = Family::<StateLabels, Gauge>::default();
        for (job_type, state, n) in &self.jobs {
            jobs.get_or_create(&StateLabels {
                job_type: job_type.clone(),
                state: state.clone(),
            })
            .set(*n);
        }
        registry.register("jobs", "Jobs in the database, by job type and state", jobs);
        let tasks = Family::<StateLabels, Gauge>::default();
        for (job_type, state, n) in &self.tasks {
            tasks
                .get_or_create(&StateLabels {
                    job_type: job_type.clone(),
                    state: state.clone(),
                })
                .set(*n);
        }
        registry.register(
            "queue_tasks",
            "Tasks of unfinished jobs that wait to run (pending, retries included) or run (running), by job type",
            tasks,
        );
        let waiting = Gauge::<i64, std::sync::atomic::AtomicI64>::default();
        waiting.set(self.jobs_waiting);
        registry.register(
            "queue_jobs",
            "Jobs waiting for a worker before their tasks can run (due New, Preparing, Ready)",
            waiting,
        );
        registry
    }
}

/// Every (type, state) pair of `job_types` and of the types in `counted`, with its count or 0.
fn fill_states(
    job_types: &[String],
    counted: &[(String, String, i64)],
) -> Vec<(String, String, i64)> {
    let states: Vec<&str> = ALL_STATES.iter().map(|s| s.as_str()).collect();
    fill(job_types, counted, &states)
}

/// Every (type, pending|running) pair, with its count or 0.
fn fill_task_states(
    job_types: &[String],
    counted: &[(String, String, i64)],
) -> Vec<(String, String, i64)> {
    fill(job_types, counted, &["pending", "running"])
}

fn fill(
    job_types: &[String],
    counted: &[(String, String, i64)],
    states: &[&str],
) -> Vec<(String, String, i64)> {
    let mut types: Vec<&str> = job_types
        .iter()
        .map(String::as_str)
        .chain(counted.iter().map(|(t, _, _)| t.as_str()))
        .collect();
    types.sort_unstable();
    types.dedup();
    let mut out = Vec::with_capacity(types.len() * states.len());
    for job_type in types {
        for state in states {
            let n = counted
                .iter()
                .filter(|(t, s, _)| t == job_type && s == state)
                .map(|(_, _, n)| *n)
                .sum();
            out.push((job_type.to_string(), state.to_string(), n));
        }
    }
    out
}

/// The metrics route, to merge into the API's router.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(metrics))
}

/// `GET /metrics` (admin token: the figures name every tenant): the Prometheus exposition.
#[utoipa::path(get, path = "/metrics", tag = "health", responses((status = 200, description = "OpenMetrics text (Prometheus)", body = String, content_type = "application/openmetrics-text"), (status = 401, description = "No valid token"), (status = 403, description = "Not an admin token")))]
async fn metrics(State(app): State<AppState>, headers: HeaderMap) -> ApiResult<Response> {
    caller(&app, &headers, Action::Administer).await?;
    let snapshot = Snapshot::read(&app.store, &app.registry.job_types())
        .await
        .map_err(|e| ApiError::internal(format!("reading metrics from the database: {e}")))?;
    let text = global().encode(&snapshot);
    Ok((StatusCode::OK, [(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_are_filled_with_zeros_for_every_type() {
        let counted = vec![
            ("delete".to_string(), "Complete".to_string(), 3),
            ("old".to_string(), "Failed".to_string(), 1),
        ];
        let filled = fill_states(&["chaos".to_string(), "delete".to_string()], &counted);
        assert_eq!(filled.len(), 3 * ALL_STATES.len());
        let get = |t: &str, s: &str| {
            filled
                .iter()
                .find(|(ft, fs, _)| ft == t && fs == s)
                .map(|(_, _, n)| *n)
        };
        assert_eq!(get("delete", "Complete"), Some(3));
        assert_eq!(get("old", "Failed"), Some(1));
        assert_eq!(get("chaos", "Active"), Some(0));
        assert_eq!(get("delete", "Active"), Some(0));
    }

    #[test]
    fn exposition_names_families_with_help_and_counts() {
        let metrics = Metrics::new();
        metrics.task_ended(
            "chaos",
            "acme",
            "chaos",
            TaskOutcome::Succeeded,
            Duration::from_millis(3),
            10,
            Duration::from_millis(2),
        );
        metrics.task_ended(
            "chaos",
            "acme",
            "chaos",
            TaskOutcome::Retried,
            Duration::from_secs(2),
            5,
            Duration::from_millis(1),
        );
        metrics.plugin_reload(ReloadOutcome::Rejected);
        let snapshot = Snapshot {
            jobs: fill_states(&["chaos".to_string()], &[]),
            tasks: fill_task_states(
                &["chaos".to_string()],
                &[("chaos".into(), "pending".into(), 7)],
            ),
            jobs_waiting: 2,
        };
        let text = metrics.encode(&snapshot);
        for line in [
            "# HELP wasmq_task_outcomes Task calls that ended",
            "# TYPE wasmq_task_outcomes counter",
            "wasmq_task_outcomes_total{job_type=\"chaos\",outcome=\"succeeded\"} 1",
            "wasmq_task_outcomes_total{job_type=\"chaos\",outcome=\"retried\"} 1",
            "wasmq_task_duration_seconds_count{job_type=\"chaos\"} 2",
            "wasmq_task_duration_seconds_bucket{le=\"0.005\",job_type=\"chaos\"} 1",
            "wasmq_task_duration_seconds_bucket{le=\"+Inf\",job_type=\"chaos\"} 2",
            "wasmq_fuel_burnt_total{tenant=\"acme\",plugin=\"chaos\"} 15",
            "wasmq_cpu_seconds_total{tenant=\"acme\",plugin=\"chaos\"} 0.00",
            "wasmq_plugin_reloads_total{outcome=\"rejected\"} 1",
            "wasmq_jobs{job_type=\"chaos\",state=\"Active\"} 0",
            "wasmq_queue_tasks{job_type=\"chaos\",state=\"pending\"} 7",
            "wasmq_queue_tasks{job_type=\"chaos\",state=\"running\"} 0",
            "wasmq_queue_jobs 2",
            "wasmq_build_info{version=",
        ] {
            assert!(
                text.lines().any(|l| l.starts_with(line)),
                "no line starting {line:?} in\n{text}"
            );
        }
        assert!(text.ends_with("# EOF\n"), "{text}");
        assert_eq!(text.matches("# EOF").count(), 1);
    }
}
