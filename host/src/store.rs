//! The job database on SQLite (WAL, migrations): jobs, their tasks, logs and
//! checkpoints, with state changes checked against the job state machine.

use std::path::Path;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{QueryBuilder, Row, Sqlite};
use thiserror::Error;

use crate::auth::{self, Role};
use crate::jobs::{self, Event, FailureThreshold, Forbidden, JobState};

/// A database failure, or a transition the state machine forbids.
#[derive(Debug, Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("migrating the database: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error(transparent)]
    Forbidden(#[from] Forbidden),
    #[error("no job {0}")]
    NoJob(String),
    #[error("this tenant already has a job named {0:?}")]
    NameTaken(String),
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
    pool: SqlitePool,
}

const JOB_COLUMNS: &str = "id, tenant, job_type, plugin_name, plugin_version, plugin_digest, state, path, \
    excluded_paths, params, priority, require_confirmation, name, description, created_by, server_name, \
    created_at, started_at, completed_at, updated_at, total, succeeded, failed, progress_message, \
    progress_at, fuel_used, error, comments, locale, submitter_email, total_size, run_at, schedule_id, weight, cpu_ns, preempted_by";

impl Store {
    /// Opens (creating if needed) the SQLite database at `file` and migrates it.
    pub async fn open(file: &Path) -> Result<Self> {
        let options = SqliteConnectOptions::new()
            .filename(file)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(30))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await?;
        sqlx::migrate!("migrations/sqlite").run(&pool).await?;
        Ok(Store { pool })
    }

    /// A transaction that holds the write lock from its start, for ones that
    /// read before they write: under WAL a deferred one could not upgrade
    /// after another writer committed, and would fail with "database is locked".
    async fn write(&self) -> Result<sqlx::Transaction<'static, Sqlite>> {
        Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?)
    }

    /// The connection pool, shared with the asset repository.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Stores a new job in state New.
    pub async fn insert_job(&self, job: &NewJob) -> Result<Job> {
        let id = uuid::Uuid::now_v7().to_string();
        let now = now_ms();
        sqlx::query(
            "INSERT INTO jobs (id, tenant, job_type, plugin_name, plugin_version, plugin_digest, state, path, \
             excluded_paths, params, priority, require_confirmation, name, description, created_by, created_at, \
             updated_at, comments, locale, submitter_email, run_at, schedule_id, weight) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
        .bind(job.require_confirmation)
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
        let sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?");
        Ok(sqlx::query_as::<_, Job>(&sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// Jobs matching `filter`, newest first, and how many match in all.
    pub async fn list_jobs(&self, filter: &JobFilter) -> Result<(Vec<Job>, u64)> {
        fn conditions<'a>(q: &mut QueryBuilder<'a, Sqlite>, f: &'a JobFilter) {
            q.push(" WHERE 1 = 1");
            if let Some(tenant) = &f.tenant {
                q.push(" AND tenant = ").push_bind(tenant);
            }
            if let Some(state) = f.state {
                q.push(" AND state = ").push_bind(state.as_str());
            }
            if let Some(job_type) = &f.job_type {
                q.push(" AND job_type = ").push_bind(job_type);
            }
            if let Some(id) = &f.id {
                q.push(" AND substr(id, 1, length(")
                    .push_bind(id)
                    .push(")) = ")
                    .push_bind(id);
            }
            if let Some(text) = &f.text {
                let pattern = format!(
                    "%{}%",
                    text.replace('\\', "\\\\")
                        .replace('%', "\\%")
                        .replace('_', "\\_")
                );
                q.push(" AND (coalesce(description, '') LIKE ")
                    .push_bind(pattern.clone())
                    .push(" ESCAPE '\\'");
                q.push(" OR coalesce(name, '') LIKE ")
                    .push_bind(pattern)
                    .push(" ESCAPE '\\')");
            }
            if let Some(user) = &f.created_by {
                q.push(" AND created_by = ").push_bind(user);
            }
            if let Some(after) = f.created_after {
                q.push(" AND created_at >= ").push_bind(after);
            }
            if let Some(before) = f.created_before {
                q.push(" AND created_at < ").push_bind(before);
            }
            if f.finished_only {
                q.push(" AND state IN ('Complete', 'Failed', 'Cancelled')");
            }
        }
        let mut count = QueryBuilder::new("SELECT count(*) FROM jobs");
        conditions(&mut count, filter);
        let total: i64 = count.build_query_scalar().fetch_one(&self.pool).await?;
        let mut q = QueryBuilder::new(format!("SELECT {JOB_COLUMNS} FROM jobs"));
        conditions(&mut q, filter);
        q.push(if filter.finished_only {
            " ORDER BY completed_at DESC, id DESC LIMIT "
        } else {
            " ORDER BY created_at DESC, id DESC LIMIT "
        })
        .push_bind(filter.limit as i64)
        .push(" OFFSET ")
        .push_bind(filter.offset as i64);
        let jobs = q.build_query_as::<Job>().fetch_all(&self.pool).await?;
        Ok((jobs, total as u64))
    }

    /// Ids of jobs in `state`, highest priority and oldest first.
    pub async fn jobs_in_state(&self, state: JobState, limit: i64) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT id FROM jobs WHERE state = ? ORDER BY priority DESC, created_at LIMIT ?",
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
            "SELECT count(*) FROM jobs WHERE plugin_name = ? \
             AND state NOT IN ('Complete', 'Failed', 'Cancelled')",
        )
        .bind(name)
        .fetch_one(&self.pool)
        .await?)
    }

    /// Jobs in `state` with their priority.
    pub async fn jobs_with_priority(&self, state: JobState) -> Result<Vec<(String, i64)>> {
        Ok(
            sqlx::query_as("SELECT id, priority FROM jobs WHERE state = ? ORDER BY priority")
                .bind(state.as_str())
                .fetch_all(&self.pool)
                .await?,
        )
    }

    /// Ids of New jobs whose start time has come, highest priority and oldest first.
    pub async fn due_new_jobs(&self, limit: i64) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT id FROM jobs WHERE state = 'New' AND (run_at IS NULL OR run_at <= ?) \
             ORDER BY priority DESC, created_at LIMIT ?",
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
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
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
             FROM schedules WHERE ?1 IS NULL OR tenant = ?1 ORDER BY tenant, name",
        )
        .bind(tenant)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Deletes a tenant's schedule; false if there was none.
    pub async fn delete_schedule(&self, tenant: &str, id: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM schedules WHERE id = ? AND tenant = ?")
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
            "UPDATE schedules SET next_run = ?, last_run = ?, last_job_id = coalesce(?, last_job_id) \
             WHERE id = ? AND next_run = ?",
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
            let from: String = sqlx::query_scalar("SELECT state FROM jobs WHERE id = ?")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?
                .ok_or_else(|| StoreError::NoJob(id.to_string()))?;
            let from = JobState::from_str(&from).map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
            let to = jobs::transition(from, event)?;
            let now = now_ms();
            let done = sqlx::query(
                "UPDATE jobs SET state = ?1, updated_at = ?2, \
                 started_at = CASE WHEN ?1 = 'Active' AND started_at IS NULL THEN ?2 \
                                   WHEN ?1 = 'New' THEN NULL ELSE started_at END, \
                 error = CASE WHEN ?1 = 'New' THEN NULL ELSE error END, \
                 completed_at = CASE WHEN ?1 IN ('Complete', 'Failed', 'Cancelled') THEN ?2 \
                                     WHEN ?1 = 'New' THEN NULL ELSE completed_at END, \
                 server_name = CASE WHEN ?1 IN ('Preparing', 'Active') THEN ?3 ELSE server_name END \
                 WHERE id = ?4 AND state = ?5",
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
            "UPDATE jobs SET priority = ?, updated_at = ? WHERE id = ? \
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
        let state: String = sqlx::query_scalar("SELECT state FROM jobs WHERE id = ?")
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
            "DELETE FROM tasks WHERE job_id = ?",
            "DELETE FROM job_logs WHERE job_id = ?",
            "DELETE FROM jobs WHERE id = ?",
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
             JOIN assets a ON a.tenant = jobs.tenant AND a.path = t.path WHERE t.job_id = jobs.id) WHERE id = ?",
        )
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(
            sqlx::query_scalar("SELECT total_size FROM jobs WHERE id = ?")
                .bind(id)
                .fetch_one(&self.pool)
                .await?,
        )
    }

    /// Records why a job failed.
    pub async fn set_error(&self, id: &str, message: &str) -> Result<()> {
        sqlx::query("UPDATE jobs SET error = ?, updated_at = ? WHERE id = ?")
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
            "UPDATE jobs SET progress_message = ?, progress_at = ?, updated_at = ? WHERE id = ?",
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
        sqlx::query("UPDATE jobs SET checkpoint = ? WHERE id = ?")
            .bind(state)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The plugin's last checkpoint for a job.
    pub async fn checkpoint(&self, id: &str) -> Result<Option<Vec<u8>>> {
        Ok(
            sqlx::query_scalar("SELECT checkpoint FROM jobs WHERE id = ?")
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
        sqlx::query("INSERT INTO job_logs (job_id, at, level, message) VALUES (?, ?, ?, ?)")
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
            sqlx::query_scalar("SELECT count(*) FROM job_logs WHERE job_id = ?")
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
            "SELECT at, level, message FROM job_logs WHERE job_id = ? ORDER BY id LIMIT ? OFFSET ?",
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
        let mut total: i64 = sqlx::query_scalar("SELECT total FROM jobs WHERE id = ?")
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
        for chunk in tasks.chunks(200) {
            let mut q =
                QueryBuilder::<Sqlite>::new("INSERT INTO tasks (job_id, seq, path, input, state) ");
            q.push_values(chunk, |mut row, (path, input)| {
                total += 1;
                row.push_bind(id)
                    .push_bind(total)
                    .push_bind(path)
                    .push_bind(input)
                    .push_bind("pending");
            });
            q.build().execute(&mut *tx).await?;
        }
        sqlx::query("UPDATE jobs SET total = ?, updated_at = ? WHERE id = ?")
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
        sqlx::query("DELETE FROM tasks WHERE job_id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE jobs SET total = 0, succeeded = 0, failed = 0, fuel_used = 0, cpu_ns = 0, checkpoint = NULL WHERE id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Active jobs with pending tasks that are due now, with their priority,
    /// weights and how many tasks are ready (counted up to `limit`).
    pub async fn claimable_jobs(&self, limit: i64) -> Result<Vec<Claimable>> {
        let rows = sqlx::query(
            "SELECT j.id, j.tenant, j.priority, j.weight, COALESCE(t.weight, 1), \
             (SELECT count(*) FROM (SELECT 1 FROM tasks k WHERE k.job_id = j.id \
               AND k.state = 'pending' AND k.not_before <= ?1 LIMIT ?2)) AS ready \
             FROM jobs j LEFT JOIN tenants t ON t.tenant = j.tenant \
             WHERE j.state = 'Active' ORDER BY j.priority DESC, j.created_at",
        )
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

    /// Claims up to `limit` due pending tasks of one job, if it is still Active.
    ///
    /// One statement, so it takes the write lock at once: a read-then-write
    /// transaction could not upgrade after another writer committed (WAL).
    pub async fn claim_job_tasks(&self, job_id: &str, limit: i64) -> Result<Vec<ClaimedTask>> {
        let rows = sqlx::query(
            "UPDATE tasks SET state = 'running', started_at = ?1, attempts = attempts + 1 \
             WHERE job_id = ?2 AND seq IN (SELECT seq FROM tasks WHERE job_id = ?2 \
               AND state = 'pending' AND not_before <= ?1 \
               AND EXISTS (SELECT 1 FROM jobs WHERE id = ?2 AND state = 'Active') \
               ORDER BY seq LIMIT ?3) \
             RETURNING seq, path, input, attempts - 1",
        )
        .bind(now_ms())
        .bind(job_id)
        .bind(limit)
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
             OR (state = 'New' AND (run_at IS NULL OR run_at <= ?))",
        )
        .bind(now_ms())
        .fetch_all(&self.pool)
        .await?)
    }

    /// Pauses an Active job for a higher-priority one; false if it is no longer Active.
    pub async fn preempt(&self, id: &str, by: &str) -> Result<bool> {
        let to = jobs::transition(JobState::Active, Event::Pause)?;
        let done = sqlx::query(
            "UPDATE jobs SET state = ?, preempted_by = ?, updated_at = ? WHERE id = ? AND state = 'Active'",
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
            "UPDATE jobs SET state = ?, preempted_by = NULL, updated_at = ? \
             WHERE id = ? AND state = 'Paused' AND preempted_by IS NOT NULL",
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
            "UPDATE jobs SET preempted_by = NULL WHERE id = ? AND preempted_by IS NOT NULL",
        )
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Changes a job's weight unless it has ended.
    pub async fn set_weight(&self, id: &str, weight: i64) -> Result<()> {
        let done = sqlx::query(
            "UPDATE jobs SET weight = ?, updated_at = ? WHERE id = ? \
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
             WHERE ?1 IS NULL OR tenant = ?1 ORDER BY tenant",
        )
        .bind(tenant)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Sets a tenant's weight (creating its account).
    pub async fn set_tenant_weight(&self, tenant: &str, weight: i64) -> Result<TenantRow> {
        sqlx::query(
            "INSERT INTO tenants (tenant, weight) VALUES (?1, ?2) \
             ON CONFLICT (tenant) DO UPDATE SET weight = ?2",
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

    /// Records a task's final outcome and counts it in its job.
    ///
    /// In the same transaction, a failed task that takes an Active job past
    /// `failure` moves the job to Failing (so no further task of it is
    /// claimed); the reason is returned.
    pub async fn finish_task(
        &self,
        job_id: &str,
        seq: i64,
        result: &TaskResult,
        failure: FailureThreshold,
    ) -> Result<Option<String>> {
        let mut tx = self.pool.begin().await?;
        let now = now_ms();
        sqlx::query(
            "UPDATE tasks SET state = ?, code = ?, message = ?, etag = ?, fuel_used = fuel_used + ?, \
             cpu_ns = cpu_ns + ?, finished_at = ? WHERE job_id = ? AND seq = ?",
        )
        .bind(if result.succeeded { "succeeded" } else { "failed" })
        .bind(result.code)
        .bind(&result.message)
        .bind(&result.etag)
        .bind(result.fuel_used as i64)
        .bind(result.cpu_ns as i64)
        .bind(now)
        .bind(job_id)
        .bind(seq)
        .execute(&mut *tx)
        .await?;
        let column = if result.succeeded {
            "succeeded"
        } else {
            "failed"
        };
        sqlx::query(&format!(
            "UPDATE jobs SET {column} = {column} + 1, updated_at = ? WHERE id = ?"
        ))
        .bind(now)
        .bind(job_id)
        .execute(&mut *tx)
        .await?;
        charge(&mut tx, job_id, result.fuel_used, result.cpu_ns).await?;
        let mut failed_job = None;
        if !result.succeeded {
            let (state, total, succeeded, failed): (String, i64, i64, i64) =
                sqlx::query_as("SELECT state, total, succeeded, failed FROM jobs WHERE id = ?")
                    .bind(job_id)
                    .fetch_one(&mut *tx)
                    .await?;
            let ran = (succeeded + failed) as u64;
            if state == JobState::Active.as_str()
                && failure.exceeded(total as u64, ran, failed as u64)
            {
                let to = jobs::transition(JobState::Active, Event::Fail)?;
                let reason = format!(
                    "{failed} of the {ran} tasks run so far failed (more than {}%)",
                    failure.percent
                );
                sqlx::query(
                    "UPDATE jobs SET state = ?, error = ? WHERE id = ? AND state = 'Active'",
                )
                .bind(to.as_str())
                .bind(&reason)
                .bind(job_id)
                .execute(&mut *tx)
                .await?;
                failed_job = Some(reason);
            }
        }
        tx.commit().await?;
        Ok(failed_job)
    }

    /// Puts a task back in the queue after a transient failure, not before `not_before`.
    pub async fn retry_task(
        &self,
        job_id: &str,
        seq: i64,
        not_before: i64,
        result: &TaskResult,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE tasks SET state = 'pending', not_before = ?, code = ?, message = ?, \
             fuel_used = fuel_used + ?, cpu_ns = cpu_ns + ? WHERE job_id = ? AND seq = ?",
        )
        .bind(not_before)
        .bind(result.code)
        .bind(&result.message)
        .bind(result.fuel_used as i64)
        .bind(result.cpu_ns as i64)
        .bind(job_id)
        .bind(seq)
        .execute(&mut *tx)
        .await?;
        charge(&mut tx, job_id, result.fuel_used, result.cpu_ns).await?;
        tx.commit().await?;
        Ok(())
    }

    /// How many of the job's tasks are in each state.
    pub async fn task_counts(&self, job: &Job) -> Result<TaskCounts> {
        let rows = sqlx::query(
            "SELECT state, count(*) FROM tasks WHERE job_id = ? AND state IN ('pending', 'running') GROUP BY state",
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
            "SELECT id FROM jobs j WHERE state = ? AND NOT EXISTS \
             (SELECT 1 FROM tasks t WHERE t.job_id = j.id AND t.state IN ('pending', 'running'))",
        )
        .bind(state.as_str())
        .fetch_all(&self.pool)
        .await?)
    }

    /// Jobs in `state` with no task running (pending ones may remain).
    pub async fn idle_jobs(&self, state: JobState) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT id FROM jobs j WHERE state = ? AND NOT EXISTS \
             (SELECT 1 FROM tasks t WHERE t.job_id = j.id AND t.state = 'running')",
        )
        .bind(state.as_str())
        .fetch_all(&self.pool)
        .await?)
    }

    /// A page of a job's tasks in plan order.
    pub async fn list_tasks(&self, job_id: &str, offset: i64, limit: i64) -> Result<Vec<TaskRow>> {
        Ok(sqlx::query_as::<_, TaskRow>(
            "SELECT seq, path, state, code, message, etag, attempts, fuel_used, cpu_ns, started_at, finished_at \
             FROM tasks WHERE job_id = ? ORDER BY seq LIMIT ? OFFSET ?",
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
            "SELECT id FROM jobs WHERE state IN ('Complete', 'Failed', 'Cancelled') AND (completed_at < ?1 \
             OR id NOT IN (SELECT id FROM jobs WHERE state IN ('Complete', 'Failed', 'Cancelled') \
                           ORDER BY completed_at DESC, id DESC LIMIT ?2))",
        )
        .bind(cutoff)
        .bind(keep.min(i64::MAX as u64) as i64)
        .fetch_all(&mut *tx)
        .await?;
        for id in &ids {
            for sql in [
                "DELETE FROM tasks WHERE job_id = ?",
                "DELETE FROM job_logs WHERE job_id = ?",
                "DELETE FROM jobs WHERE id = ?",
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
        sqlx::query("INSERT INTO tokens (id, name, role, tenant, hash, created_at) VALUES (?, ?, ?, ?, ?, ?)")
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
            sqlx::query_as("SELECT id, name, role, tenant, created_at FROM tokens WHERE hash = ?")
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
        let done = sqlx::query("DELETE FROM tokens WHERE id = ?")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// After a restart of this (single) host: tasks that were running are
    /// queued again, and jobs caught while planning are planned again.
    pub async fn recover(&self, server: &str) -> Result<(u64, Vec<String>)> {
        let requeued = sqlx::query("UPDATE tasks SET state = 'pending' WHERE state = 'running'")
            .execute(&self.pool)
            .await?
            .rows_affected();
        let replan = self.jobs_in_state(JobState::Preparing, i64::MAX).await?;
        for id in &replan {
            self.clear_tasks(id).await?;
            self.apply(id, Event::Replan, server).await?;
        }
        Ok((requeued, replan))
    }
}

/// Adds a call's cost to its job's and its tenant's accounts.
async fn charge(
    tx: &mut sqlx::Transaction<'_, Sqlite>,
    job_id: &str,
    fuel: u64,
    cpu_ns: u64,
) -> Result<()> {
    sqlx::query("UPDATE jobs SET fuel_used = fuel_used + ?, cpu_ns = cpu_ns + ? WHERE id = ?")
        .bind(fuel as i64)
        .bind(cpu_ns as i64)
        .bind(job_id)
        .execute(&mut **tx)
        .await?;
    sqlx::query(
        "INSERT INTO tenants (tenant, fuel_used, cpu_ns) SELECT tenant, ?1, ?2 FROM jobs WHERE id = ?3 \
         ON CONFLICT (tenant) DO UPDATE SET fuel_used = fuel_used + ?1, cpu_ns = cpu_ns + ?2",
    )
    .bind(fuel as i64)
    .bind(cpu_ns as i64)
    .bind(job_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
