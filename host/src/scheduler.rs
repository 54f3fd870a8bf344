//! The scheduler: moves jobs through their states, plans New jobs, claims the
//! tasks of Active jobs for a bounded pool of workers, and records each outcome.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

use crate::assets::AssetRepo;
use crate::capabilities::{CallCtx, JobContext, Phase};
use crate::jobs::{Event, FailureThreshold, JobState};
use crate::paths::Scope;
use crate::plugins::{Plugin, Registry};
use crate::runtime::bindings::wasmq::plugin::types::{
    ErrorKind, JobInfo, JobSummary, Task, TaskOutcome,
};
use crate::runtime::{CallOutcome, Limits, Runtime};
use crate::store::{ClaimedTask, Job, Store, StoreError, TaskResult, now_ms};

/// How the scheduler runs.
#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    /// Plugin calls that may run at once (default: half the CPU cores).
    pub workers: usize,
    /// Limits of each plugin call.
    pub limits: Limits,
    /// How long one host call (asset, database) may take.
    pub host_timeout: Duration,
    /// Attempts per task when it fails with a transient error.
    pub max_attempts: i64,
    /// The first retry delay; it doubles with each attempt.
    pub retry_base: Duration,
    /// When a big job with many failed tasks fails as a whole.
    pub failure: FailureThreshold,
    /// This node's name, recorded on the jobs it runs.
    pub server_name: String,
    /// The asset folder each tenant's job reports are written to when a job ends.
    pub report_folder: String,
}

impl SchedulerConfig {
    /// Half the CPU cores, at least one.
    pub fn default_workers() -> usize {
        std::thread::available_parallelism()
            .map(|n| n.get() / 2)
            .unwrap_or(1)
            .max(1)
    }
}

/// The job scheduler of one host.
pub struct Scheduler {
    store: Store,
    assets: AssetRepo,
    registry: Arc<Registry>,
    runtime: Runtime,
    config: SchedulerConfig,
    wake: Arc<Notify>,
    slots: Arc<Semaphore>,
    busy: Mutex<HashSet<String>>,
    contexts: Mutex<HashMap<String, (JobContext, Arc<Plugin>)>>,
}

/// The idle wait between scheduling rounds when nothing wakes the scheduler.
const IDLE_WAIT: Duration = Duration::from_millis(250);

impl Scheduler {
    /// A scheduler over the host's store, assets, plugins and runtime.
    pub fn new(
        store: Store,
        assets: AssetRepo,
        registry: Arc<Registry>,
        runtime: Runtime,
        config: SchedulerConfig,
    ) -> Arc<Self> {
        let slots = Arc::new(Semaphore::new(config.workers.max(1)));
        Arc::new(Scheduler {
            store,
            assets,
            registry,
            runtime,
            config,
            wake: Arc::new(Notify::new()),
            slots,
            busy: Mutex::new(HashSet::new()),
            contexts: Mutex::new(HashMap::new()),
        })
    }

    /// A handle that makes the scheduler look for work at once.
    pub fn waker(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    /// Recovers from an earlier crash, then schedules until the process ends.
    pub async fn run(self: Arc<Self>) {
        match self.store.recover(&self.config.server_name).await {
            Ok((requeued, replanned)) if requeued > 0 || !replanned.is_empty() => {
                tracing::info!(
                    requeued,
                    replanned = replanned.len(),
                    "recovered after restart"
                );
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "recovery failed"),
        }
        loop {
            if let Err(e) = self.round().await {
                tracing::error!(error = %e, "scheduling round failed");
            }
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(IDLE_WAIT) => {}
            }
        }
    }

    /// One scheduling round: settle draining jobs, plan, start, dispatch, finish.
    async fn round(self: &Arc<Self>) -> Result<(), StoreError> {
        let server = self.config.server_name.as_str();
        for (draining, event) in [
            (JobState::Pausing, Event::Paused),
            (JobState::Cancelling, Event::Cancelled),
            (JobState::Failing, Event::Failed),
        ] {
            for id in self.store.idle_jobs(draining).await? {
                if self.busy.lock().expect("lock").contains(&id) {
                    continue; // its plan or finish call is still running
                }
                let to = self.store.apply(&id, event, server).await?;
                self.store.log(&id, "info", &format!("job is {to}")).await?;
                if to.is_final() {
                    self.write_report(&id).await;
                }
                self.forget(&id);
            }
        }
        for id in self.store.jobs_in_state(JobState::Ready, 1000).await? {
            self.store.apply(&id, Event::Start, server).await?;
        }
        for id in self.store.drained_jobs(JobState::Active).await? {
            if !self.busy.lock().expect("lock").insert(id.clone()) {
                continue;
            }
            let Some(permit) = self.slot() else {
                self.busy.lock().expect("lock").remove(&id);
                return Ok(());
            };
            tokio::spawn(self.clone().finish(id, permit));
        }
        let free = self.slots.available_permits() as i64;
        if free > 0 {
            for id in self.store.due_new_jobs(free).await? {
                let Some(permit) = self.slot() else {
                    return Ok(());
                };
                self.busy.lock().expect("lock").insert(id.clone());
                if let Err(e) = self.store.apply(&id, Event::Prepare, server).await {
                    self.busy.lock().expect("lock").remove(&id);
                    return Err(e);
                }
                tokio::spawn(self.clone().plan(id, permit));
            }
        }
        let free = self.slots.available_permits() as i64;
        if free > 0 {
            for task in self.store.claim_tasks(free).await? {
                let permit = self.slot().expect("claimed no more tasks than free slots");
                tokio::spawn(self.clone().run_task(task, permit));
            }
        }
        Ok(())
    }

    fn slot(&self) -> Option<OwnedSemaphorePermit> {
        self.slots.clone().try_acquire_owned().ok()
    }

    fn forget(&self, id: &str) {
        self.contexts.lock().expect("lock").remove(id);
    }

    /// The capability context and plugin of a job (cached while it runs).
    async fn context(&self, id: &str) -> Result<(JobContext, Arc<Plugin>), String> {
        if let Some(found) = self.contexts.lock().expect("lock").get(id) {
            return Ok(found.clone());
        }
        let job = self
            .store
            .get_job(id)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("no job {id}"))?;
        let plugin = self.registry.by_digest(&job.plugin_digest).ok_or_else(|| {
            format!(
                "plugin {} {} (digest {}) is no longer loaded on this host",
                job.plugin_name, job.plugin_version, job.plugin_digest
            )
        })?;
        let context = self.job_context(&job, &plugin);
        self.contexts
            .lock()
            .expect("lock")
            .insert(id.to_string(), (context.clone(), plugin.clone()));
        Ok((context, plugin))
    }

    fn job_context(&self, job: &Job, plugin: &Plugin) -> JobContext {
        let excluded = job.excluded();
        JobContext {
            info: JobInfo {
                id: job.id.clone(),
                job_type: job.job_type.clone(),
                tenant: job.tenant.clone(),
                path: job.path.clone(),
                excluded_paths: excluded.clone(),
                params: job.params.clone(),
                created_by: job.created_by.clone(),
            },
            scope: Scope {
                root: job.path.clone(),
                excluded,
            },
            declared: plugin.capabilities,
            plugin: plugin.name.clone(),
            store: self.store.clone(),
            assets: self.assets.clone(),
            host_timeout: self.config.host_timeout,
        }
    }

    /// Writes the job's report into its tenant's asset store.
    async fn write_report(&self, id: &str) {
        let written = async {
            let job = self
                .store
                .get_job(id)
                .await?
                .ok_or_else(|| StoreError::NoJob(id.into()))?;
            let csv = crate::report::csv(&self.store.all_tasks(id).await?);
            let path = format!(
                "{}/{id}.csv",
                self.config.report_folder.trim_end_matches('/')
            );
            match self
                .assets
                .put_binary(&job.tenant, &path, csv.into(), "text/csv")
                .await
            {
                Ok(_) => {
                    self.store
                        .log(id, "info", &format!("report written to {path}"))
                        .await
                }
                Err(e) => {
                    self.store
                        .log(
                            id,
                            "error",
                            &format!("could not write the report to {path}: {e}"),
                        )
                        .await
                }
            }
        }
        .await;
        if let Err(e) = written {
            tracing::warn!(job = id, error = %e, "could not write the job report");
        }
    }

    /// Fails a job: it drains, then becomes Failed.
    async fn fail_job(&self, id: &str, reason: &str) {
        tracing::warn!(job = id, reason, "job failing");
        let result = async {
            self.store.set_error(id, reason).await?;
            self.store.log(id, "error", reason).await?;
            self.store
                .apply(id, Event::Fail, &self.config.server_name)
                .await
        }
        .await;
        if let Err(e) = result {
            tracing::warn!(job = id, error = %e, "could not fail the job");
        }
    }

    async fn plan(self: Arc<Self>, id: String, _permit: OwnedSemaphorePermit) {
        let outcome = async {
            self.store
                .clear_tasks(&id)
                .await
                .map_err(|e| e.to_string())?;
            let (context, plugin) = self.context(&id).await?;
            self.store
                .log(
                    &id,
                    "info",
                    &format!("planning with {} {}", plugin.name, plugin.version),
                )
                .await
                .ok();
            let info = context.info.clone();
            let call = self
                .runtime
                .call(
                    &plugin.loaded,
                    CallCtx::for_job(context, Phase::Plan),
                    self.config.limits,
                    Box::new(move |store, instance| {
                        Box::pin(async move {
                            instance.wasmq_plugin_plugin().call_plan(store, &info).await
                        })
                    }),
                )
                .await;
            self.store
                .add_fuel(&id, call.fuel_used)
                .await
                .map_err(|e| e.to_string())?;
            match call.result {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) if e.kind == ErrorKind::InvalidInput => {
                    Err(format!("invalid input: {}", e.message))
                }
                Ok(Err(e)) => Err(format!("plan failed ({}): {}", e.code, e.message)),
                Err(trap) => Err(format!("plan failed: {trap}")),
            }
        }
        .await;
        match outcome {
            Ok(()) => {
                if let Err(e) = self.store.compute_total_size(&id).await {
                    tracing::warn!(job = %id, error = %e, "could not sum the job's size");
                }
                let job = self.store.get_job(&id).await.ok().flatten();
                let confirm = job.as_ref().is_some_and(|j| j.require_confirmation);
                let total = job.map(|j| j.total).unwrap_or(0);
                self.store
                    .log(&id, "info", &format!("planned {total} tasks"))
                    .await
                    .ok();
                if let Err(e) = self
                    .store
                    .apply(&id, Event::Planned { confirm }, &self.config.server_name)
                    .await
                {
                    tracing::info!(job = %id, error = %e, "job changed while it was planned");
                }
            }
            Err(reason) => self.fail_job(&id, &reason).await,
        }
        self.busy.lock().expect("lock").remove(&id);
        self.wake.notify_one();
    }

    async fn run_task(self: Arc<Self>, task: ClaimedTask, _permit: OwnedSemaphorePermit) {
        let (result, transient) = match self.context(&task.job_id).await {
            Ok((context, plugin)) => self.call_task(context, &plugin, &task).await,
            Err(reason) => {
                self.fail_job(&task.job_id, &reason).await;
                (
                    TaskResult {
                        succeeded: false,
                        code: 500,
                        message: reason,
                        etag: None,
                        fuel_used: 0,
                    },
                    false,
                )
            }
        };
        if let Err(e) = self.record(&task, result, transient).await {
            tracing::error!(job = %task.job_id, seq = task.seq, error = %e, "could not record a task outcome");
        }
        self.wake.notify_one();
    }

    /// Runs one task; the flag says whether a failure is worth retrying.
    async fn call_task(
        &self,
        context: JobContext,
        plugin: &Plugin,
        task: &ClaimedTask,
    ) -> (TaskResult, bool) {
        let info = context.info.clone();
        let wit_task = Task {
            path: task.path.clone(),
            input: task.input.clone(),
        };
        let call: CallOutcome<Result<TaskOutcome, _>> = self
            .runtime
            .call(
                &plugin.loaded,
                CallCtx::for_job(context, Phase::Task),
                self.config.limits,
                Box::new(move |store, instance| {
                    Box::pin(async move {
                        instance
                            .wasmq_plugin_plugin()
                            .call_run_task(store, &info, &wit_task)
                            .await
                    })
                }),
            )
            .await;
        let fuel_used = call.fuel_used;
        match call.result {
            Ok(Ok(outcome)) => (
                TaskResult {
                    succeeded: true,
                    code: outcome.code as i64,
                    message: outcome.message,
                    etag: outcome.etag,
                    fuel_used,
                },
                false,
            ),
            Ok(Err(e)) => {
                if e.kind == ErrorKind::InvalidInput {
                    self.fail_job(&task.job_id, &format!("invalid input: {}", e.message))
                        .await;
                }
                let transient = e.kind == ErrorKind::Transient;
                (
                    TaskResult {
                        succeeded: false,
                        code: e.code as i64,
                        message: e.message,
                        etag: None,
                        fuel_used,
                    },
                    transient,
                )
            }
            Err(trap) => (
                TaskResult {
                    succeeded: false,
                    code: 500,
                    message: trap,
                    etag: None,
                    fuel_used,
                },
                false,
            ),
        }
    }

    /// Stores a task's outcome: retried later if transient and attempts remain,
    /// else final; then applies the job's failure threshold.
    async fn record(
        &self,
        task: &ClaimedTask,
        result: TaskResult,
        transient: bool,
    ) -> Result<(), StoreError> {
        let attempts = task.attempts + 1;
        if transient && attempts < self.config.max_attempts {
            let delay = self.config.retry_base * 2u32.pow((attempts - 1).min(16) as u32);
            let not_before = now_ms() + delay.as_millis() as i64;
            self.store
                .log(
                    &task.job_id,
                    "warn",
                    &format!(
                        "task {} ({}) will be retried in {delay:?}: {}",
                        task.seq, task.path, result.message
                    ),
                )
                .await?;
            return self
                .store
                .retry_task(&task.job_id, task.seq, not_before, &result)
                .await;
        }
        if !result.succeeded {
            self.store
                .log(
                    &task.job_id,
                    "warn",
                    &format!(
                        "task {} ({}) failed with {}: {}",
                        task.seq, task.path, result.code, result.message
                    ),
                )
                .await?;
        }
        let failed_job = self
            .store
            .finish_task(&task.job_id, task.seq, &result, self.config.failure)
            .await?;
        if let Some(reason) = failed_job {
            tracing::warn!(job = %task.job_id, %reason, "job failing");
            self.store.log(&task.job_id, "error", &reason).await?;
        }
        Ok(())
    }

    async fn finish(self: Arc<Self>, id: String, _permit: OwnedSemaphorePermit) {
        let outcome = async {
            let (context, plugin) = self.context(&id).await?;
            let job = self
                .store
                .get_job(&id)
                .await
                .map_err(|e| e.to_string())?
                .ok_or("job vanished")?;
            let summary = JobSummary {
                total: job.total as u64,
                succeeded: job.succeeded as u64,
                failed: job.failed as u64,
            };
            let info = context.info.clone();
            let call = self
                .runtime
                .call(
                    &plugin.loaded,
                    CallCtx::for_job(context, Phase::Finish),
                    self.config.limits,
                    Box::new(move |store, instance| {
                        Box::pin(async move {
                            instance
                                .wasmq_plugin_plugin()
                                .call_finish(store, &info, summary)
                                .await
                        })
                    }),
                )
                .await;
            self.store
                .add_fuel(&id, call.fuel_used)
                .await
                .map_err(|e| e.to_string())?;
            match call.result {
                Ok(Ok(())) => Ok(job),
                Ok(Err(e)) => Err(format!("finish failed ({}): {}", e.code, e.message)),
                Err(trap) => Err(format!("finish failed: {trap}")),
            }
        }
        .await;
        match outcome {
            Ok(job) => {
                let message = format!(
                    "job complete: {} tasks, {} succeeded, {} failed",
                    job.total, job.succeeded, job.failed
                );
                match self
                    .store
                    .apply(&id, Event::Finished, &self.config.server_name)
                    .await
                {
                    Ok(_) => {
                        self.store.log(&id, "info", &message).await.ok();
                        self.write_report(&id).await;
                        tracing::info!(job = %id, "{message}");
                    }
                    Err(e) => {
                        tracing::info!(job = %id, error = %e, "job changed while it finished")
                    }
                }
            }
            Err(reason) => self.fail_job(&id, &reason).await,
        }
        self.forget(&id);
        self.busy.lock().expect("lock").remove(&id);
        self.wake.notify_one();
    }
}
