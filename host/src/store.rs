//! The job database on SQLite (WAL, migrations): jobs, their tasks, logs and
//! checkpoints, with state changes checked against the job state machine.

use std::path::Path;
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use sqlx::{Any, AnyPool, Row};
use thiserror::Error;

use crate::auth::{self, Role};
use crate::db::{Db, IntFlag, Sql};
use crate::jobs::{self, Event, FailureThreshold, Forbidden, JobState};

/// A database failure, or a transition the state machine forbids.
#[derive(Debug, Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error(transparent)]
    Open(#[from] crate::db::DbError),
    #[error(transparent)]
    Forbidden(#[from] Forbidden),
    #[error("no job {0}")]
    NoJob(String),
    #[error("this tenant already has a job named {0:?}")]
    NameTaken(String),
    #[error("task {1} of job {0} is no longer held by this claim (its lease expired)")]
    LeaseLost(String, i64),
}

impl StoreError {
    /// Whether the database was unreachable or busy: the same call may succeed later.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Db(e) if crate::db::unavailable(e))
    }
}

/// Runs a store call until the database answers it: while the database is unreachable
/// or busy, waits (250 ms, doubling up to 5 s) and calls again; any answer is returned.
pub async fn until_answered<T, F, Fut>(what: &str, mut call: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let mut wait = std::time::Duration::from_millis(250);
    loop {
        match call().await {
            Err(e) if e.is_unavailable() => {
                tracing::warn!(error = %e, "{what}: the database is unavailable; trying again in {wait:?}");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(std::time::Duration::from_secs(5));
            }
            other => return other,
        }
    }
}

/// Result of store calls.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A job as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Job {
    pub id: String,
    pub tenant: String,
    pub job_type: String,
    pub plugin_name: String,
    pub plugin_version: String,
    pub plugin_digest: String,
    #[sqlx(try_from = "String")]
    pub state: StateColumn,
    pub path: String,
    pub excluded_paths: String,
    pub params: String,
    pub priority: i64,
    #[sqlx(try_from = "IntFlag")]
    pub require_confirmation: bool,
    pub name: Option<String>,
    pub description: Option<String>,
    pub created_by: String,
    pub server_name: Option<String>,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub completed_at: Option<i64>,
    pub updated_at: i64,
    pub total: i64,
    pub succeeded: i64,
    pub failed: i64,
    pub progress_message: Option<String>,
    pub progress_at: Option<i64>,
    pub fuel_used: i64,
    pub error: Option<String>,
    pub comments: Option<String>,
    pub locale: Option<String>,
    pub submitter_email: Option<String>,
    pub total_size: i64,
    pub run_at: Option<i64>,
    pub schedule_id: Option<String>,
    /// The job's share among its tenant's jobs.
    pub weight: i64,
    /// CPU time its plugin calls used, in nanoseconds.
    pub cpu_ns: i64,
    /// The higher-priority job that preempted it, while it is paused for that.
    pub preempted_by: Option<String>,
}

/// A [`JobState`] read from a text column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateColumn(pub JobState);

impl TryFrom<String> for StateColumn {
    type Error = jobs::UnknownState;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        JobState::from_str(&s).map(StateColumn)
    }
}

impl Job {
    /// The job's state.
    pub fn state(&self) -> JobState {
        self.state.0
    }

    /// The excluded paths, decoded.
    pub fn excluded(&self) -> Vec<String> {
        serde_json::from_str(&self.excluded_paths).unwrap_or_default()
    }
}

/// What a submission stores.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub tenant: String,
    pub job_type: String,
    pub plugin_name: String,
    pub plugin_version: String,
    pub plugin_digest: String,
    pub path: String,
    pub excluded_paths: Vec<String>,
    pub params: serde_json::Value,
    pub priority: i64,
    /// The job's share among its tenant's jobs (at least 1).
    pub weight: i64,
    pub require_confirmation: bool,
    pub name: Option<String>,
    pub description: Option<String>,
    pub created_by: String,
    pub comments: Option<String>,
    pub locale: Option<String>,
    pub submitter_email: Option<String>,
    /// Not before this time (ms); None: at once.
    pub run_at: Option<i64>,
    /// The recurring schedule that created the job.
    pub schedule_id: Option<String>,
}

/// Filters for listing jobs.
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    pub tenant: Option<String>,
    pub state: Option<JobState>,
    pub job_type: Option<String>,
    /// Jobs whose id starts with this.
    pub id: Option<String>,
    /// Text found in the name or description (case-insensitive).
    pub text: Option<String>,
    pub created_by: Option<String>,
    /// Created at or after (ms).
    pub created_after: Option<i64>,
    /// Created before (ms).
    pub created_before: Option<i64>,
    /// Only jobs that have ended, most recently ended first.
    pub finished_only: bool,
    pub offset: u64,
    pub limit: u64,
}

/// A task handed to a worker.
#[derive(Debug, Clone)]
pub struct ClaimedTask {
    pub job_id: String,
    pub seq: i64,
    pub path: String,
    pub input: Vec<u8>,
    pub attempts: i64,
}

/// What [`Store::finish_tasks`] did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Finished {
    /// Tasks not recorded because this claim no longer held them (by `seq`).
    pub lost: Vec<i64>,
    /// Why the job now fails, if these outcomes took it past its failure threshold.
    pub failed_job: Option<String>,
}

/// A node's hold on the work it claims: its server name, and how long a
/// claim lasts unless the node's heartbeat renews it.
#[derive(Debug, Clone)]
pub struct Lease {
    pub owner: String,
    pub ttl_ms: i64,
}

impl Lease {
    /// A lease for `owner` that lasts `ttl` past each renewal.
    pub fn new(owner: impl Into<String>, ttl: std::time::Duration) -> Self {
        Lease {
            owner: owner.into(),
            ttl_ms: ttl.as_millis().clamp(1, i64::MAX as u128) as i64,
        }
    }

    /// When a claim made or renewed now expires.
    pub fn until(&self) -> i64 {
        now_ms().saturating_add(self.ttl_ms)
    }
}

/// A task's row, for the per-item listing.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct TaskRow {
    pub seq: i64,
    pub path: String,
    pub state: String,
    pub code: Option<i64>,
    pub message: Option<String>,
    pub etag: Option<String>,
    pub attempts: i64,
    #[sqlx(rename = "fuel_used")]
    pub fuel_used: i64,
    #[sqlx(rename = "cpu_ns")]
    pub cpu_ns: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    /// The node (server name) that runs the task, or ran it to its end.
    pub node: Option<String>,
}

/// How a task attempt ended.
#[derive(Debug, Clone)]
pub struct TaskResult {
    pub succeeded: bool,
    pub code: i64,
    pub message: String,
    pub etag: Option<String>,
    pub fuel_used: u64,
    /// CPU time of the attempt, in nanoseconds.
    pub cpu_ns: u64,
    /// When the attempt started and ended (ms since the epoch): tasks of one
    /// batch are claimed and recorded together, but each keeps its own times.
    pub started_at: i64,
    pub finished_at: i64,
}

/// A job whose tasks a worker could start now, for the fair-share picker.
#[derive(Debug, Clone)]
pub struct Claimable {
    pub id: String,
    pub tenant: String,
    pub priority: i64,
    pub weight: i64,
    pub tenant_weight: i64,
    /// Pending tasks due now (counted up to the limit asked for).
    pub ready: i64,
}

/// A tenant's weight and what it has used.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct TenantRow {
    pub tenant: String,
    pub weight: i64,
    pub cpu_ns: i64,
    pub fuel_used: i64,
}

/// How many of a job's tasks are in each state.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct TaskCounts {
    pub total: i64,
    pub succeeded: i64,
    pub failed: i64,
    pub pending: i64,
    pub running: i64,
}

/// An API token as stored (without its secret).
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct TokenRow {
    pub id: String,
    pub name: String,
    pub role: String,
    pub tenant: String,
    pub created_at: i64,
}

/// A recurring schedule: a cron expression and the job submission it makes.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleRow {
    pub id: String,
    pub tenant: String,
    pub name: String,
    pub cron: String,
    /// The submission body, JSON.
    pub template: String,
    pub created_by: String,
    pub created_at: i64,
    pub next_run: i64,
    pub last_run: Option<i64>,
    pub last_job_id: Option<String>,
}

/// The job database.
#[derive(Clone)]
pub struct Store {
    db: Db,
    pool: AnyPool,
}

const JOB_COLUMNS: &str = "id, tenant, job_type, plugin_name, plugin_version, plugin_digest, state, path, \
    excluded_paths, params, priority, require_confirmation, name, description, created_by, server_name, \
    created_at, started_at, completed_at, updated_at, total, succeeded, failed, progress_message, \
    progress_at, fuel_used, error, comments, locale, submitter_email, total_size, run_at, schedule_id, weight, cpu_ns, preempted_by";

impl Store {
    /// Opens (creating if needed) the SQLite database at `file` and migrates it.
    pub async fn open(file: &Path) -> Result<Self> {
        Self::connect(&crate::db::sqlite_url(file)).await
    }

    /// Connects to the database at `url` (`sqlite:...` or `postgres://...`)
    /// and migrates it.
    pub async fn connect(url: &str) -> Result<Self> {
        let db = Db::open(url).await?;
        Ok(Store {
            pool: db.pool().clone(),
            db,
        })
    }

    /// A transaction for work that reads, then writes (see [`Db::begin_write`]).
    async fn write(&self) -> Result<sqlx::Transaction<'static, Any>> {
        Ok(self.db.begin_write().await?)
    }

    /// The connection pool, shared with the asset repository.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// The database, with its engine.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Stores a new job in state New.
    pub async fn insert_job(&self, job: &NewJob) -> Result<Job> {
        let id = uuid::Uuid::now_v7().to_string();
        let now = now_ms();
        sqlx::query(
            "INSERT INTO jobs (id, tenant, job_type, plugin_name, plugin_version, plugin_digest, state, path, \
             excluded_paths, params, priority, require_confirmation, name, description, created_by, created_at, \
             updated_at, comments, locale, submitter_email, run_at, schedule_id, weight) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23)",
        )
        .bind(&id)
        .bind(&job.tenant)
        .bind(&job.job_type)
        .bind(&job.plugin_name)
        .bind(&job.plugin_version)
        .bind(&job.plugin_digest)
        .bind(JobState::New.as_str())
        .bind(&job.path)
        .bind(serde_json::to_string(&job.excluded_paths).expect("paths serialize"))
        .bind(job.params.to_string())
        .bind(job.priority)
        .bind(job.require_confirmation as i64)
        .bind(&job.name)
        .bind(&job.description)
        .bind(&job.created_by)
        .bind(now)
        .bind(now)
        .bind(&job.comments)
        .bind(&job.locale)
        .bind(&job.submitter_email)
        .bind(job.run_at)
        .bind(&job.schedule_id)
        .bind(job.weight.max(1))
        .execute(&self.pool)
        .await
        .map_err(|e| match e {
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                StoreError::NameTaken(job.name.clone().unwrap_or_default())
            }
            other => StoreError::Db(other),
        })?;
        self.get_job(&id).await?.ok_or(StoreError::NoJob(id))
    }

    /// The job with this id, if any.
    pub async fn get_job(&self, id: &str) -> Result<Option<Job>> {
        let sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1");
        Ok(sqlx::query_as::<_, Job>(&sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// Jobs matching `filter`, newest first, and how many match in all.
    pub async fn list_jobs(&self, filter: &JobFilter) -> Result<(Vec<Job>, u64)> {
        fn conditions(q: &mut Sql, f: &JobFilter) {
            q.push(" WHERE 1 = 1");
            if let Some(tenant) = &f.tenant {
                q.push(" AND tenant = ").text(tenant);
            }
            if let Some(state) = f.state {
                q.push(" AND state = ").text(state.as_str());
            }
            if let Some(job_type) = &f.job_type {
                q.push(" AND job_type = ").text(job_type);
            }
            if let Some(id) = &f.id {
                q.push(" AND substr(id, 1, length(")
                    .text(id)
                    .push(")) = ")
                    .text(id);
            }
            if let Some(text) = &f.text {
                let pattern = format!(
                    "%{}%",
                    text.to_lowercase()
                        .replace('\\', "\\\\")
                        .replace('%', "\\%")
                        .replace('_', "\\_")
                );
                q.push(" AND (lower(coalesce(description, '')) LIKE ")
                    .text(pattern.clone())
                    .push(" ESCAPE '\\'");
                q.push(" OR lower(coalesce(name, '')) LIKE ")
                    .text(pattern)
                    .push(" ESCAPE '\\')");
            }
            if let Some(user) = &f.created_by {
                q.push(" AND created_by = ").text(user);
            }
            if let Some(after) = f.created_after {
                q.push(" AND created_at >= ").int(after);
            }
            if let Some(before) = f.created_before {
                q.push(" AND created_at < ").int(before);
            }
            if f.finished_only {
                q.push(" AND state IN ('Complete', 'Failed', 'Cancelled')");
            }
        }
        let mut count = Sql::new("SELECT count(*) FROM jobs");
        conditions(&mut count, filter);
        let total: i64 = count.query_scalar().fetch_one(&self.pool).await?;
        let mut q = Sql::new(format!("SELECT {JOB_COLUMNS} FROM jobs"));
        conditions(&mut q, filter);
        q.push(if filter.finished_only {
            " ORDER BY completed_at DESC, id DESC LIMIT "
        } else {
            " ORDER BY created_at DESC, id DESC LIMIT "
        })
        .int(filter.limit.min(i64::MAX as u64) as i64)
        .push(" OFFSET ")
        .int(filter.offset.min(i64::MAX as u64) as i64);
        let jobs = q.query_as::<Job>().fetch_all(&self.pool).await?;
        Ok((jobs, total as u64))
    }

    /// Ids of jobs in `state`, highest priority and oldest first.
    pub async fn jobs_in_state(&self, state: JobState, limit: i64) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT id FROM jobs WHERE state = $1 ORDER BY priority DESC, created_at LIMIT $2",
        )
        .bind(state.as_str())
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    /// The plugin versions (digests) of jobs that have not ended.
    pub async fn unfinished_plugin_digests(&self) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT DISTINCT plugin_digest FROM jobs \
             WHERE state NOT IN ('Complete', 'Failed', 'Cancelled')",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// How many jobs that have not ended use a version of plugin `name`.
    pub async fn unfinished_jobs_of_plugin(&self, name: &str) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "SELECT count(*) FROM jobs WHERE plugin_name = $1 \
             AND state NOT IN ('Complete', 'Failed', 'Cancelled')",
        )
        .bind(name)
        .fetch_one(&self.pool)
        .await?)
    }

    /// Jobs in `state` with their priority.
    pub async fn jobs_with_priority(&self, state: JobState) -> Result<Vec<(String, i64)>> {
        Ok(
            sqlx::query_as("SELECT id, priority FROM jobs WHERE state = $1 ORDER BY priority")
                .bind(state.as_str())
                .fetch_all(&self.pool)
                .await?,
        )
    }

    /// Ids of New jobs whose start time has come, highest priority and oldest first.
    pub async fn due_new_jobs(&self, limit: i64) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT id FROM jobs WHERE state = 'New' AND (run_at IS NULL OR run_at <= $1) \
             ORDER BY priority DESC, created_at LIMIT $2",
        )
        .bind(now_ms())
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Creates a recurring schedule.
    pub async fn create_schedule(&self, s: &ScheduleRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO schedules (id, tenant, name, cron, template, created_by, created_at, next_run) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&s.id)
        .bind(&s.tenant)
        .bind(&s.name)
        .bind(&s.cron)
        .bind(&s.template)
        .bind(&s.created_by)
        .bind(s.created_at)
        .bind(s.next_run)
        .execute(&self.pool)
        .await
        .map_err(|e| match e {
            sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::NameTaken(s.name.clone()),
            other => StoreError::Db(other),
        })?;
        Ok(())
    }

    /// A tenant's schedules by name; every tenant's with None.
    pub async fn list_schedules(&self, tenant: Option<&str>) -> Result<Vec<ScheduleRow>> {
        Ok(sqlx::query_as(
            "SELECT id, tenant, name, cron, template, created_by, created_at, next_run, last_run, last_job_id \
             FROM schedules WHERE $1 IS NULL OR tenant = $1 ORDER BY tenant, name",
        )
        .bind(tenant)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Deletes a tenant's schedule; false if there was none.
    pub async fn delete_schedule(&self, tenant: &str, id: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM schedules WHERE id = $1 AND tenant = $2")
            .bind(id)
            .bind(tenant)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Moves a schedule to its next run, if it still stands at `due` (so one tick
    /// creates one job); records the job it created. True if this call moved it.
    pub async fn advance_schedule(
        &self,
        id: &str,
        due: i64,
        next: i64,
        job_id: Option<&str>,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE schedules SET next_run = $1, last_run = $2, last_job_id = coalesce($3, last_job_id) \
             WHERE id = $4 AND next_run = $5",
        )
        .bind(next)
        .bind(now_ms())
        .bind(job_id)
        .bind(id)
        .bind(due)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Applies `event` to the job if the state machine allows it from its
    /// current state; returns the new state. Sets startedAt, completedAt and
    /// serverName along the way.
    pub async fn apply(&self, id: &str, event: Event, server: &str) -> Result<JobState> {
        loop {
            let from: String = sqlx::query_scalar("SELECT state FROM jobs WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?
                .ok_or_else(|| StoreError::NoJob(id.to_string()))?;
            let from = JobState::from_str(&from).map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
            let to = jobs::transition(from, event)?;
            let now = now_ms();
            let done = sqlx::query(
                "UPDATE jobs SET state = $1, updated_at = $2, \
                 started_at = CASE WHEN $1 = 'Active' AND started_at IS NULL THEN $2 \
                                   WHEN $1 = 'New' THEN NULL ELSE started_at END, \
                 error = CASE WHEN $1 = 'New' THEN NULL ELSE error END, \
                 completed_at = CASE WHEN $1 IN ('Complete', 'Failed', 'Cancelled') THEN $2 \
                                     WHEN $1 = 'New' THEN NULL ELSE completed_at END, \
                 server_name = CASE WHEN $1 IN ('Preparing', 'Active') THEN $3 ELSE server_name END \
                 WHERE id = $4 AND state = $5",
            )
            .bind(to.as_str())
            .bind(now)
            .bind(server)
            .bind(id)
            .bind(from.as_str())
            .execute(&self.pool)
            .await?;
            if done.rows_affected() == 1 {
                if to.is_final() {
                    crate::notifications::job_ended();
                }
                return Ok(to);
            }
            // The state changed under us: read it again and re-check.
        }
    }

    /// Changes a job's priority unless it has ended; returns the job's state.
    pub async fn set_priority(&self, id: &str, priority: i64) -> Result<JobState> {
        let done = sqlx::query(
            "UPDATE jobs SET priority = $1, updated_at = $2 WHERE id = $3 \
             AND state NOT IN ('Complete', 'Failed', 'Cancelled')",
        )
        .bind(priority)
        .bind(now_ms())
        .bind(id)
        .execute(&self.pool)
        .await?;
        let job = self
            .get_job(id)
            .await?
            .ok_or_else(|| StoreError::NoJob(id.to_string()))?;
        if done.rows_affected() == 0 {
            return Err(Forbidden {
                from: job.state(),
                event: "change priority",
            }
            .into());
        }
        Ok(job.state())
    }

    /// Deletes a job that has ended, with its tasks and logs.
    pub async fn delete_job(&self, id: &str) -> Result<()> {
        let mut tx = self.write().await?; // reads, then writes
        let state: String = sqlx::query_scalar("SELECT state FROM jobs WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| StoreError::NoJob(id.to_string()))?;
        let state = JobState::from_str(&state).map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
        if !state.is_final() {
            return Err(Forbidden {
                from: state,
                event: "be deleted before it ends",
            }
            .into());
        }
        for sql in [
            "DELETE FROM tasks WHERE job_id = $1",
            "DELETE FROM job_logs WHERE job_id = $1",
            "DELETE FROM jobs WHERE id = $1",
        ] {
            sqlx::query(sql).bind(id).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Sums the sizes of the assets a job's tasks are about.
    pub async fn compute_total_size(&self, id: &str) -> Result<i64> {
        sqlx::query(
            "UPDATE jobs SET total_size = (SELECT coalesce(sum(a.size), 0) FROM tasks t \
             JOIN assets a ON a.tenant = jobs.tenant AND a.path = t.path WHERE t.job_id = jobs.id) WHERE id = $1",
        )
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(
            sqlx::query_scalar("SELECT total_size FROM jobs WHERE id = $1")
                .bind(id)
                .fetch_one(&self.pool)
                .await?,
        )
    }

    /// Records why a job failed.
    pub async fn set_error(&self, id: &str, message: &str) -> Result<()> {
        sqlx::query("UPDATE jobs SET error = $1, updated_at = $2 WHERE id = $3")
            .bind(message)
            .bind(now_ms())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Sets the job's progress message.
    pub async fn set_progress(&self, id: &str, message: &str) -> Result<()> {
        let now = now_ms();
        sqlx::query(
            "UPDATE jobs SET progress_message = $1, progress_at = $2, updated_at = $3 WHERE id = $4",
        )
        .bind(message)
        .bind(now)
        .bind(now)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Saves the plugin's checkpoint for a job.
    pub async fn set_checkpoint(&self, id: &str, state: &[u8]) -> Result<()> {
        sqlx::query("UPDATE jobs SET checkpoint = $1 WHERE id = $2")
            .bind(state)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The plugin's last checkpoint for a job.
    pub async fn checkpoint(&self, id: &str) -> Result<Option<Vec<u8>>> {
        Ok(
            sqlx::query_scalar("SELECT checkpoint FROM jobs WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?
                .flatten(),
        )
    }

    /// Adds the cost of calls outside tasks (plan, finish) to the job's and
    /// its tenant's accounts.
    pub async fn add_cost(&self, id: &str, fuel: u64, cpu_ns: u64) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        charge(&mut tx, id, fuel, cpu_ns).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Appends a line to a job's log.
    pub async fn log(&self, id: &str, level: &str, message: &str) -> Result<()> {
        sqlx::query("INSERT INTO job_logs (job_id, at, level, message) VALUES ($1, $2, $3, $4)")
            .bind(id)
            .bind(now_ms())
            .bind(level)
            .bind(message)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// How many log lines a job has.
    pub async fn log_count(&self, id: &str) -> Result<i64> {
        Ok(
            sqlx::query_scalar("SELECT count(*) FROM job_logs WHERE job_id = $1")
                .bind(id)
                .fetch_one(&self.pool)
                .await?,
        )
    }

    /// A page of a job's log, oldest first, as `(at ms, level, message)`.
    pub async fn logs(
        &self,
        id: &str,
        offset: i64,
        limit: i64,
    ) -> Result<Vec<(i64, String, String)>> {
        Ok(sqlx::query_as(
            "SELECT at, level, message FROM job_logs WHERE job_id = $1 ORDER BY id LIMIT $2 OFFSET $3",
        )
        .bind(id)
        .bind(limit)
        .bind(offset)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Appends tasks to a job (numbered after the existing ones); returns the new total.
    pub async fn add_tasks(&self, id: &str, tasks: &[(String, Vec<u8>)]) -> Result<i64> {
        let mut tx = self.write().await?; // reads, then writes
        let mut total: i64 = sqlx::query_scalar("SELECT total FROM jobs WHERE id = $1")
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
        for chunk in tasks.chunks(200) {
            let mut q = Sql::new("INSERT INTO tasks (job_id, seq, path, input, state) VALUES ");
            for (i, (path, input)) in chunk.iter().enumerate() {
                total += 1;
                q.push(if i == 0 { "(" } else { ", (" })
                    .text(id)
                    .push(", ")
                    .int(total)
                    .push(", ")
                    .text(path.as_str())
                    .push(", ")
                    .bind(crate::db::Bind::Blob(input.clone()))
                    .push(", 'pending')");
            }
            q.query().execute(&mut *tx).await?;
        }
        sqlx::query("UPDATE jobs SET total = $1, updated_at = $2 WHERE id = $3")
            .bind(total)
            .bind(now_ms())
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(total)
    }

    /// Forgets a job's tasks and counters (before planning it again).
    pub async fn clear_tasks(&self, id: &str) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM tasks WHERE job_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE jobs SET total = 0, succeeded = 0, failed = 0, fuel_used = 0, cpu_ns = 0, checkpoint = NULL WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Active jobs with pending tasks that are due now, with their priority,
    /// weights and how many tasks are ready (counted up to `limit`).
    pub async fn claimable_jobs(&self, limit: i64) -> Result<Vec<Claimable>> {
        let rows = sqlx::query(&format!(
            "SELECT j.id, j.tenant, j.priority, j.weight, COALESCE(t.weight, 1), \
             (SELECT count(*) FROM (SELECT 1 FROM tasks k{} WHERE k.job_id = j.id \
               AND k.state = 'pending' AND k.not_before <= $1 LIMIT $2) AS due) AS ready \
             FROM jobs j LEFT JOIN tenants t ON t.tenant = j.tenant \
             WHERE j.state = 'Active' ORDER BY j.priority DESC, j.created_at",
            self.db.indexed_by("tasks_by_state")
        ))
        .bind(now_ms())
        .bind(limit.max(1))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|row| Claimable {
                id: row.get(0),
                tenant: row.get(1),
                priority: row.get(2),
                weight: row.get(3),
                tenant_weight: row.get(4),
                ready: row.get(5),
            })
            .filter(|c| c.ready > 0)
            .collect())
    }

    /// Claims up to `limit` due pending tasks of one job, if it is still Active,
    /// under `lease`.
    ///
    /// One statement, so on SQLite it takes the write lock at once (a
    /// read-then-write transaction could not upgrade after another writer
    /// committed); on PostgreSQL rows that another node is claiming are
    /// skipped (`FOR UPDATE SKIP LOCKED`), so nodes never wait on each other.
    pub async fn claim_job_tasks(
        &self,
        job_id: &str,
        limit: i64,
        lease: &Lease,
    ) -> Result<Vec<ClaimedTask>> {
        // The picked rows are materialized first: PostgreSQL could otherwise
        // run a LIMIT subquery once per candidate row and update more.
        let rows = sqlx::query(&format!(
            "WITH picked AS MATERIALIZED (SELECT seq FROM tasks{} WHERE job_id = $2 \
               AND state = 'pending' AND not_before <= $1 \
               AND EXISTS (SELECT 1 FROM jobs WHERE id = $2 AND state = 'Active') \
               ORDER BY seq LIMIT $3{}) \
             UPDATE tasks SET state = 'running', started_at = $1, attempts = attempts + 1, \
             owner = $4, lease_until = $5 \
             WHERE job_id = $2 AND seq IN (SELECT seq FROM picked) \
             RETURNING seq, path, input, attempts - 1",
            self.db.indexed_by("tasks_by_state"),
            self.db.skip_locked()
        ))
        .bind(now_ms())
        .bind(job_id)
        .bind(limit)
        .bind(&lease.owner)
        .bind(lease.until())
        .fetch_all(&self.pool)
        .await?;
        let mut claimed: Vec<ClaimedTask> = rows
            .into_iter()
            .map(|row| ClaimedTask {
                job_id: job_id.to_string(),
                seq: row.get(0),
                path: row.get(1),
                input: row.get(2),
                attempts: row.get(3),
            })
            .collect();
        claimed.sort_by_key(|t| t.seq);
        Ok(claimed)
    }

    /// Jobs waiting for a worker before they can run tasks: New ones that are
    /// due, and those being planned or Ready; as (id, priority).
    pub async fn waiting_jobs(&self) -> Result<Vec<(String, i64)>> {
        Ok(sqlx::query_as(
            "SELECT id, priority FROM jobs WHERE state IN ('Preparing', 'Ready') \
             OR (state = 'New' AND (run_at IS NULL OR run_at <= $1))",
        )
        .bind(now_ms())
        .fetch_all(&self.pool)
        .await?)
    }

    /// Pauses an Active job for a higher-priority one; false if it is no longer Active.
    pub async fn preempt(&self, id: &str, by: &str) -> Result<bool> {
        let to = jobs::transition(JobState::Active, Event::Pause)?;
        let done = sqlx::query(
            "UPDATE jobs SET state = $1, preempted_by = $2, updated_at = $3 WHERE id = $4 AND state = 'Active'",
        )
        .bind(to.as_str())
        .bind(by)
        .bind(now_ms())
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Paused jobs that preemption paused, as (id, priority).
    pub async fn preempted_jobs(&self) -> Result<Vec<(String, i64)>> {
        Ok(sqlx::query_as(
            "SELECT id, priority FROM jobs WHERE state = 'Paused' AND preempted_by IS NOT NULL \
             ORDER BY priority DESC, created_at",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// Makes a job that preemption paused Ready again; false if a user took it over.
    pub async fn resume_preempted(&self, id: &str) -> Result<bool> {
        let to = jobs::transition(JobState::Paused, Event::Resume)?;
        let done = sqlx::query(
            "UPDATE jobs SET state = $1, preempted_by = NULL, updated_at = $2 \
             WHERE id = $3 AND state = 'Paused' AND preempted_by IS NOT NULL",
        )
        .bind(to.as_str())
        .bind(now_ms())
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// A user's pause or resume takes a preempted job over: preemption no
    /// longer resumes it. True if it was preempted.
    pub async fn clear_preemption(&self, id: &str) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE jobs SET preempted_by = NULL WHERE id = $1 AND preempted_by IS NOT NULL",
        )
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Changes a job's weight unless it has ended.
    pub async fn set_weight(&self, id: &str, weight: i64) -> Result<()> {
        let done = sqlx::query(
            "UPDATE jobs SET weight = $1, updated_at = $2 WHERE id = $3 \
             AND state NOT IN ('Complete', 'Failed', 'Cancelled')",
        )
        .bind(weight.max(1))
        .bind(now_ms())
        .bind(id)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            let job = self
                .get_job(id)
                .await?
                .ok_or_else(|| StoreError::NoJob(id.to_string()))?;
            return Err(Forbidden {
                from: job.state(),
                event: "change weight",
            }
            .into());
        }
        Ok(())
    }

    /// Tenants with their weights and usage; one tenant, or all.
    pub async fn tenants(&self, tenant: Option<&str>) -> Result<Vec<TenantRow>> {
        Ok(sqlx::query_as(
            "SELECT tenant, weight, cpu_ns, fuel_used FROM tenants \
             WHERE $1 IS NULL OR tenant = $1 ORDER BY tenant",
        )
        .bind(tenant)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Sets a tenant's weight (creating its account).
    pub async fn set_tenant_weight(&self, tenant: &str, weight: i64) -> Result<TenantRow> {
        sqlx::query(
            "INSERT INTO tenants (tenant, weight) VALUES ($1, $2) \
             ON CONFLICT (tenant) DO UPDATE SET weight = $2",
        )
        .bind(tenant)
        .bind(weight.max(1))
        .execute(&self.pool)
        .await?;
        Ok(self
            .tenants(Some(tenant))
            .await?
            .pop()
            .expect("the row was just written"))
    }

    /// Records a task's final outcome and counts it in its job: [`Store::finish_tasks`]
    /// for one task, with `Err(StoreError::LeaseLost)` if it no longer held it.
    pub async fn finish_task(
        &self,
        task: &ClaimedTask,
        result: &TaskResult,
        failure: FailureThreshold,
    ) -> Result<Option<String>> {
        let finished = self
            .finish_tasks(&[(task.clone(), result.clone())], failure)
            .await?;
        if !finished.lost.is_empty() {
            return Err(StoreError::LeaseLost(task.job_id.clone(), task.seq));
        }
        Ok(finished.failed_job)
    }

    /// Records the final outcomes of tasks of one job and counts them in it,
    /// in one transaction.
    ///
    /// Only a claim that still holds its task counts: a task whose lease
    /// expired and that another node took over is left alone and listed in
    /// [`Finished::lost`]. If failed tasks take an Active job past `failure`,
    /// the job moves to Failing in the same transaction (so no further task of
    /// it is claimed) and the reason is returned. Each failed task's line, and
    /// that reason, go to the job's log in the same transaction too, so
    /// recording a batch again after an outage logs nothing twice.
    pub async fn finish_tasks(
        &self,
        outcomes: &[(ClaimedTask, TaskResult)],
        failure: FailureThreshold,
    ) -> Result<Finished> {
        let mut finished = Finished::default();
        let Some((first, _)) = outcomes.first() else {
            return Ok(finished);
        };
        let job_id = first.job_id.as_str();
        let mut tx = self.pool.begin().await?;
        let now = now_ms();
        // The failure threshold is checked after each failed outcome, in order,
        // against the job's counts as they grow.
        let mut job: Option<(String, i64, i64, i64)> = None;
        if outcomes.iter().any(|(_, r)| !r.succeeded) {
            job = Some(
                sqlx::query_as("SELECT state, total, succeeded, failed FROM jobs WHERE id = $1")
                    .bind(job_id)
                    .fetch_one(&mut *tx)
                    .await?,
            );
        }
        let (mut succeeded, mut failed, mut fuel, mut cpu) = (0i64, 0i64, 0u64, 0u64);
        let mut logs = Vec::new();
        // One statement for the whole batch: each row carries its task's outcome.
        const COLUMNS: usize = 10;
        let rows: Vec<String> = (0..outcomes.len())
            .map(|i| {
                let first = 2 + i * COLUMNS;
                let params: Vec<String> =
                    (first..first + COLUMNS).map(|n| format!("${n}")).collect();
                format!("({})", params.join(", "))
            })
            .collect();
        let sql = format!(
            "UPDATE tasks SET state = v.column2, code = v.column3, message = v.column4, etag = v.column5, \
             fuel_used = fuel_used + v.column6, cpu_ns = cpu_ns + v.column7, started_at = v.column9, \
             finished_at = v.column10, lease_until = NULL \
             FROM (VALUES {}) AS v \
             WHERE tasks.job_id = $1 AND tasks.seq = v.column1 AND tasks.state = 'running' AND tasks.attempts = v.column8 \
             RETURNING tasks.seq",
            rows.join(", ")
        );
        let mut update = sqlx::query(&sql).bind(job_id);
        for (task, result) in outcomes {
            debug_assert_eq!(task.job_id, job_id, "one job per call");
            update = update
                .bind(task.seq)
                .bind(if result.succeeded {
                    "succeeded"
                } else {
                    "failed"
                })
                .bind(result.code)
                .bind(&result.message)
                .bind(&result.etag)
                .bind(result.fuel_used as i64)
                .bind(result.cpu_ns as i64)
                .bind(task.attempts + 1)
                .bind(result.started_at)
                .bind(result.finished_at);
        }
        let done: std::collections::HashSet<i64> = update
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|row| row.get::<i64, _>(0))
            .collect();
        for (task, result) in outcomes {
            if !done.contains(&task.seq) {
                finished.lost.push(task.seq);
                continue;
            }
            match result.succeeded {
                true => succeeded += 1,
                false => failed += 1,
            }
            fuel += result.fuel_used;
            cpu += result.cpu_ns;
            if !result.succeeded {
                logs.push((
                    "warn",
                    format!(
                        "task {} ({}) failed with {}: {}",
                        task.seq, task.path, result.code, result.message
                    ),
                ));
            }
            if let Some((state, total, ok_before, failed_before)) = &job {
                let (ran, all_failed) = (
                    ok_before + failed_before + succeeded + failed,
                    failed_before + failed,
                );
                if !result.succeeded
                    && finished.failed_job.is_none()
                    && state == JobState::Active.as_str()
                    && failure.exceeded(*total as u64, ran as u64, all_failed as u64)
                {
                    finished.failed_job = Some(format!(
                        "{all_failed} of the {ran} tasks run so far failed (more than {}%)",
                        failure.percent
                    ));
                }
            }
        }
        if succeeded + failed == 0 {
            return Ok(finished); // the transaction rolls back: nothing changed
        }
        sqlx::query(
            "UPDATE jobs SET succeeded = succeeded + $1, failed = failed + $2, updated_at = $3, \
             fuel_used = fuel_used + $4, cpu_ns = cpu_ns + $5 WHERE id = $6",
        )
        .bind(succeeded)
        .bind(failed)
        .bind(now)
        .bind(fuel as i64)
        .bind(cpu as i64)
        .bind(job_id)
        .execute(&mut *tx)
        .await?;
        charge_tenant(&mut tx, job_id, fuel, cpu).await?;
        if let Some(reason) = &finished.failed_job {
            let to = jobs::transition(JobState::Active, Event::Fail)?;
            sqlx::query(
                "UPDATE jobs SET state = $1, error = $2 WHERE id = $3 AND state = 'Active'",
            )
            .bind(to.as_str())
            .bind(reason)
            .bind(job_id)
            .execute(&mut *tx)
            .await?;
            logs.push(("error", reason.clone()));
        }
        insert_logs(&mut tx, job_id, &logs).await?;
        tx.commit().await?;
        Ok(finished)
    }

    /// Gives back claimed tasks that were not run: pending again, their
    /// attempt not counted. Tasks this claim no longer holds are left alone.
    pub async fn release_tasks(&self, tasks: &[ClaimedTask]) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        for task in tasks {
            sqlx::query(
                "UPDATE tasks SET state = 'pending', attempts = attempts - 1, owner = NULL, \
                 lease_until = NULL WHERE job_id = $1 AND seq = $2 AND state = 'running' AND attempts = $3",
            )
            .bind(&task.job_id)
            .bind(task.seq)
            .bind(task.attempts + 1)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Puts a task back in the queue after a transient failure, not before `not_before`,
    /// and writes `note` to the job's log in the same transaction (so a retried call
    /// never logs it twice). Like [`Store::finish_tasks`], only the claim that still
    /// holds the task counts.
    pub async fn retry_task(
        &self,
        task: &ClaimedTask,
        not_before: i64,
        result: &TaskResult,
        note: &str,
    ) -> Result<()> {
        let (job_id, seq) = (task.job_id.as_str(), task.seq);
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE tasks SET state = 'pending', not_before = $1, code = $2, message = $3, \
             fuel_used = fuel_used + $4, cpu_ns = cpu_ns + $5, owner = NULL, lease_until = NULL \
             WHERE job_id = $6 AND seq = $7 AND state = 'running' AND attempts = $8",
        )
        .bind(not_before)
        .bind(result.code)
        .bind(&result.message)
        .bind(result.fuel_used as i64)
        .bind(result.cpu_ns as i64)
        .bind(job_id)
        .bind(seq)
        .bind(task.attempts + 1)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::LeaseLost(job_id.to_string(), seq));
        }
        charge(&mut tx, job_id, result.fuel_used, result.cpu_ns).await?;
        insert_logs(&mut tx, job_id, &[("warn", note.to_string())]).await?;
        tx.commit().await?;
        Ok(())
    }

    /// How many of the job's tasks are in each state.
    pub async fn task_counts(&self, job: &Job) -> Result<TaskCounts> {
        let rows = sqlx::query(
            "SELECT state, count(*) FROM tasks WHERE job_id = $1 AND state IN ('pending', 'running') GROUP BY state",
        )
        .bind(&job.id)
        .fetch_all(&self.pool)
        .await?;
        let mut counts = TaskCounts {
            total: job.total,
            succeeded: job.succeeded,
            failed: job.failed,
            ..Default::default()
        };
        for row in rows {
            let n: i64 = row.get(1);
            match row.get::<String, _>(0).as_str() {
                "pending" => counts.pending = n,
                _ => counts.running = n,
            }
        }
        Ok(counts)
    }

    /// Active jobs whose tasks have all ended.
    pub async fn drained_jobs(&self, state: JobState) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT id FROM jobs j WHERE state = $1 AND (owner IS NULL OR lease_until < $2) \
             AND NOT EXISTS (SELECT 1 FROM tasks t WHERE t.job_id = j.id AND t.state IN ('pending', 'running'))",
        )
        .bind(state.as_str())
        .bind(now_ms())
        .fetch_all(&self.pool)
        .await?)
    }

    /// Jobs in `state` with no task running (pending ones may remain).
    pub async fn idle_jobs(&self, state: JobState) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT id FROM jobs j WHERE state = $1 AND (owner IS NULL OR lease_until < $2) \
             AND NOT EXISTS (SELECT 1 FROM tasks t WHERE t.job_id = j.id AND t.state = 'running')",
        )
        .bind(state.as_str())
        .bind(now_ms())
        .fetch_all(&self.pool)
        .await?)
    }

    /// A page of a job's tasks in plan order.
    pub async fn list_tasks(&self, job_id: &str, offset: i64, limit: i64) -> Result<Vec<TaskRow>> {
        Ok(sqlx::query_as::<_, TaskRow>(
            "SELECT seq, path, state, code, message, etag, attempts, fuel_used, cpu_ns, started_at, finished_at, \
             owner AS node FROM tasks WHERE job_id = $1 ORDER BY seq LIMIT $2 OFFSET $3",
        )
        .bind(job_id)
        .bind(limit)
        .bind(offset)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Every task of a job in plan order (for its report).
    pub async fn all_tasks(&self, job_id: &str) -> Result<Vec<TaskRow>> {
        let mut all = Vec::new();
        loop {
            let page = self.list_tasks(job_id, all.len() as i64, 10_000).await?;
            let done = page.len() < 10_000;
            all.extend(page);
            if done {
                return Ok(all);
            }
        }
    }

    /// Deletes finished jobs that completed before `cutoff` (ms) or that are
    /// not among the `keep` most recently finished; returns how many went.
    pub async fn purge_finished(&self, cutoff: i64, keep: u64) -> Result<u64> {
        let mut tx = self.write().await?; // reads, then writes
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM jobs WHERE state IN ('Complete', 'Failed', 'Cancelled') AND (completed_at < $1 \
             OR id NOT IN (SELECT id FROM jobs WHERE state IN ('Complete', 'Failed', 'Cancelled') \
                           ORDER BY completed_at DESC, id DESC LIMIT $2))",
        )
        .bind(cutoff)
        .bind(keep.min(i64::MAX as u64) as i64)
        .fetch_all(&mut *tx)
        .await?;
        for id in &ids {
            for sql in [
                "DELETE FROM tasks WHERE job_id = $1",
                "DELETE FROM job_logs WHERE job_id = $1",
                "DELETE FROM jobs WHERE id = $1",
            ] {
                sqlx::query(sql).bind(id).execute(&mut *tx).await?;
            }
        }
        tx.commit().await?;
        Ok(ids.len() as u64)
    }

    /// Creates a token; returns its row and its secret (shown once, stored hashed).
    pub async fn create_token(
        &self,
        name: &str,
        role: Role,
        tenant: &str,
    ) -> Result<(TokenRow, String)> {
        let secret = auth::generate();
        let row = TokenRow {
            id: uuid::Uuid::now_v7().to_string(),
            name: name.to_string(),
            role: role.as_str().to_string(),
            tenant: tenant.to_string(),
            created_at: now_ms(),
        };
        sqlx::query("INSERT INTO tokens (id, name, role, tenant, hash, created_at) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(&row.id)
            .bind(&row.name)
            .bind(&row.role)
            .bind(&row.tenant)
            .bind(auth::hash(&secret))
            .bind(row.created_at)
            .execute(&self.pool)
            .await?;
        Ok((row, secret))
    }

    /// The token with this secret, if any.
    pub async fn token_by_secret(&self, secret: &str) -> Result<Option<TokenRow>> {
        Ok(
            sqlx::query_as("SELECT id, name, role, tenant, created_at FROM tokens WHERE hash = $1")
                .bind(auth::hash(secret))
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// Every token, oldest first.
    pub async fn list_tokens(&self) -> Result<Vec<TokenRow>> {
        Ok(sqlx::query_as(
            "SELECT id, name, role, tenant, created_at FROM tokens ORDER BY created_at, id",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// Revokes a token; false if there was none.
    pub async fn delete_token(&self, id: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM tokens WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// After a restart of node `server`: the tasks it was running are queued
    /// again, the jobs it was planning are planned again, and the jobs it held
    /// are let go (other nodes' claims are left to their leases).
    pub async fn recover(&self, server: &str) -> Result<(u64, Vec<String>)> {
        let requeued = sqlx::query(
            "UPDATE tasks SET state = 'pending', owner = NULL, lease_until = NULL \
             WHERE state = 'running' AND (owner = $1 OR owner IS NULL)",
        )
        .bind(server)
        .execute(&self.pool)
        .await?
        .rows_affected();
        let replan: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM jobs WHERE state = 'Preparing' AND (owner = $1 OR owner IS NULL)",
        )
        .bind(server)
        .fetch_all(&self.pool)
        .await?;
        for id in &replan {
            self.replan(id, server).await?;
        }
        sqlx::query("UPDATE jobs SET owner = NULL, lease_until = NULL WHERE owner = $1")
            .bind(server)
            .execute(&self.pool)
            .await?;
        Ok((requeued, replan))
    }

    /// Pushes on the leases `lease`'s owner holds, on tasks and on jobs;
    /// returns how many tasks it holds.
    pub async fn renew_leases(&self, lease: &Lease) -> Result<u64> {
        let until = lease.until();
        let tasks =
            sqlx::query("UPDATE tasks SET lease_until = $2 WHERE state = 'running' AND owner = $1")
                .bind(&lease.owner)
                .bind(until)
                .execute(&self.pool)
                .await?
                .rows_affected();
        sqlx::query("UPDATE jobs SET lease_until = $2 WHERE owner = $1")
            .bind(&lease.owner)
            .bind(until)
            .execute(&self.pool)
            .await?;
        Ok(tasks)
    }

    /// Takes over what nodes that stopped renewing their leases held: their
    /// running tasks are queued again (tasks are idempotent by contract), the
    /// jobs they were planning are planned again by `server`, and the jobs
    /// they were finishing are let go. Returns (tasks requeued, jobs replanned).
    pub async fn rescue_expired(&self, server: &str) -> Result<(u64, Vec<String>)> {
        let now = now_ms();
        let requeued = sqlx::query(
            "UPDATE tasks SET state = 'pending', owner = NULL, lease_until = NULL \
             WHERE state = 'running' AND coalesce(lease_until, 0) < $1",
        )
        .bind(now)
        .execute(&self.pool)
        .await?
        .rows_affected();
        let expired: Vec<(String, String)> = sqlx::query_as(
            "SELECT id, state FROM jobs WHERE owner IS NOT NULL AND lease_until < $1",
        )
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        let mut replanned = Vec::new();
        for (id, state) in expired {
            if state == JobState::Preparing.as_str() {
                let lease = Lease::new(server, std::time::Duration::from_secs(60));
                if self.lease_job(&id, &lease).await? {
                    self.replan(&id, server).await?;
                    self.release_job(&id, server).await?;
                    replanned.push(id);
                }
            } else {
                sqlx::query(
                    "UPDATE jobs SET owner = NULL, lease_until = NULL WHERE id = $1 AND lease_until < $2",
                )
                .bind(&id)
                .bind(now)
                .execute(&self.pool)
                .await?;
            }
        }
        Ok((requeued, replanned))
    }

    /// Forgets a Preparing job's partial plan and sends it back to New.
    async fn replan(&self, id: &str, server: &str) -> Result<()> {
        self.clear_tasks(id).await?;
        match self.apply(id, Event::Replan, server).await {
            Ok(_) | Err(StoreError::Forbidden(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Takes a job for work only one node may do at a time (planning,
    /// finishing) unless another node holds it; true if `lease` now holds it.
    pub async fn lease_job(&self, id: &str, lease: &Lease) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE jobs SET owner = $2, lease_until = $3 \
             WHERE id = $1 AND (owner IS NULL OR owner = $2 OR lease_until < $4)",
        )
        .bind(id)
        .bind(&lease.owner)
        .bind(lease.until())
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Lets go of a job that `owner` held.
    pub async fn release_job(&self, id: &str, owner: &str) -> Result<()> {
        sqlx::query(
            "UPDATE jobs SET owner = NULL, lease_until = NULL WHERE id = $1 AND owner = $2",
        )
        .bind(id)
        .bind(owner)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

/// Appends `lines` (level, message) to job `job_id`'s log, in one statement.
async fn insert_logs(
    tx: &mut sqlx::Transaction<'_, Any>,
    job_id: &str,
    lines: &[(&str, String)],
) -> Result<()> {
    if lines.is_empty() {
        return Ok(());
    }
    let rows: Vec<String> = (0..lines.len())
        .map(|i| format!("($1, $2, ${}, ${})", 3 + 2 * i, 4 + 2 * i))
        .collect();
    let sql = format!(
        "INSERT INTO job_logs (job_id, at, level, message) VALUES {}",
        rows.join(", ")
    );
    let mut insert = sqlx::query(&sql).bind(job_id).bind(now_ms());
    for (level, message) in lines {
        insert = insert.bind(*level).bind(message);
    }
    insert.execute(&mut **tx).await?;
    Ok(())
}

/// Adds a call's cost to its job's and its tenant's accounts.
async fn charge(
    tx: &mut sqlx::Transaction<'_, Any>,
    job_id: &str,
    fuel: u64,
    cpu_ns: u64,
) -> Result<()> {
    sqlx::query("UPDATE jobs SET fuel_used = fuel_used + $1, cpu_ns = cpu_ns + $2 WHERE id = $3")
        .bind(fuel as i64)
        .bind(cpu_ns as i64)
        .bind(job_id)
        .execute(&mut **tx)
        .await?;
    charge_tenant(tx, job_id, fuel, cpu_ns).await
}

/// Adds a call's cost to the account of its job's tenant.
async fn charge_tenant(
    tx: &mut sqlx::Transaction<'_, Any>,
    job_id: &str,
    fuel: u64,
    cpu_ns: u64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO tenants (tenant, fuel_used, cpu_ns) SELECT tenant, $1, $2 FROM jobs WHERE id = $3 \
         ON CONFLICT (tenant) DO UPDATE SET fuel_used = tenants.fuel_used + $1, cpu_ns = tenants.cpu_ns + $2",
    )
    .bind(fuel as i64)
    .bind(cpu_ns as i64)
    .bind(job_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
