//! The scheduler: moves jobs through their states, plans New jobs, hands free
//! workers to tasks by priority and fair share, preempts, and records each outcome.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

use crate::assets::AssetRepo;
use crate::batches::{self, TaskTime};
use crate::capabilities::{CallCtx, JobContext, Phase};
use crate::fairshare::{Candidate, Ledger, Pick};
use crate::jobs::{Event, FailureThreshold, JobState};
use crate::parking::Parking;
use crate::paths::Scope;
use crate::plugins::{Plugin, Registry};
use crate::runtime::bindings::wasmq::plugin::types::{
    ErrorKind, JobInfo, JobSummary, Task, TaskOutcome,
};
use crate::runtime::{CallOutcome, LimitsTable, Runtime, Session};
use crate::store::{
    ClaimedTask, Job, Lease, Store, StoreError, TaskResult, now_ms, until_answered,
};

/// How the scheduler runs.
#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    /// Plugin calls that may run at once (default: half the CPU cores).
    pub workers: usize,
    /// Limits of each plugin call, per job type.
    pub limits: LimitsTable,
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
    /// How long this node's claims last without its heartbeat, which renews
    /// them every third of it.
    pub lease: Duration,
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
    /// Woken when a task ends: a round that only hands out tasks follows.
    task_done: Notify,
    slots: Arc<Semaphore>,
    busy: Mutex<HashSet<String>>,
    contexts: Mutex<HashMap<String, (JobContext, Arc<Plugin>)>>,
    ledger: Mutex<Ledger>,
    /// Each running job's recent task times, which size its batches.
    task_times: Mutex<HashMap<String, TaskTime>>,
    /// Warm sessions between one job's batches (one per worker at most).
    parked: Mutex<Parking<Session>>,
}

/// A batch's final outcomes so far, beside its job's recorded counts.
#[derive(Default)]
struct Tally {
    succeeded: i64,
    failed: i64,
    /// The job's (total, succeeded, failed) as recorded, read at the batch's first failure.
    recorded: Option<(i64, i64, i64)>,
}

/// The idle wait between scheduling rounds when nothing wakes the scheduler.
const IDLE_WAIT: Duration = Duration::from_millis(250);

/// How often, at most, a task ending makes a full round (settling, starting,
/// planning and finishing jobs, preemption) rather than one that only hands out
/// tasks: with short tasks, those job-level queries would otherwise run per task.
const HOUSEKEEPING_EVERY: Duration = Duration::from_millis(50);

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
            wake: Arc::new(Notify::new()),
            task_done: Notify::new(),
            slots,
            busy: Mutex::new(HashSet::new()),
            contexts: Mutex::new(HashMap::new()),
            ledger: Mutex::new(Ledger::new()),
            task_times: Mutex::new(HashMap::new()),
            parked: Mutex::new(Parking::new(config.workers.max(1))),
            config,
        })
    }

    /// A handle that makes the scheduler look for work at once.
    pub fn waker(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    /// This node's lease on what it claims.
    fn lease(&self) -> Lease {
        Lease::new(&self.config.server_name, self.config.lease)
    }

    /// Every third of the lease: renews this node's leases, and takes over
    /// the work of nodes whose leases expired.
    async fn heartbeat(self: Arc<Self>) {
        let lease = self.lease();
        loop {
            tokio::time::sleep(self.config.lease / 3).await;
            if let Err(e) = self.store.renew_leases(&lease).await {
                tracing::error!(error = %e, "could not renew this node's leases");
            }
            match self.store.rescue_expired(&self.config.server_name).await {
                Ok((requeued, replanned)) if requeued > 0 || !replanned.is_empty() => {
                    tracing::warn!(
                        requeued,
                        replanned = replanned.len(),
                        "took over work whose lease expired"
                    );
                    self.wake.notify_one();
                }
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "could not rescue expired leases"),
            }
        }
    }

    /// Recovers from an earlier crash, then schedules until the process ends.
    pub async fn run(self: Arc<Self>) {
        tokio::spawn(self.clone().heartbeat());
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
        let mut full = true;
        let mut last_full = std::time::Instant::now();
        loop {
            if full {
                last_full = std::time::Instant::now();
            }
            let outcome = match full {
                true => self.round().await,
                false => self.dispatch().await.map(|_| ()),
            };
            if let Err(e) = outcome {
                tracing::error!(error = %e, "scheduling round failed");
            }
            // A full round is due at once when woken from outside, and at most
            // HOUSEKEEPING_EVERY after the last one while tasks are ending.
            let until_full = HOUSEKEEPING_EVERY.saturating_sub(last_full.elapsed());
            full = tokio::select! {
                _ = self.wake.notified() => true,
                _ = self.task_done.notified() => last_full.elapsed() >= HOUSEKEEPING_EVERY,
                _ = tokio::time::sleep(until_full.max(Duration::from_millis(1)).min(IDLE_WAIT)), if !full => true,
                _ = tokio::time::sleep(IDLE_WAIT), if full => true,
            };
        }
    }

    /// One full scheduling round: settle draining jobs, plan, start, dispatch, finish.
    async fn round(self: &Arc<Self>) -> Result<(), StoreError> {
        let idle = self
            .parked
            .lock()
            .expect("lock")
            .expire(std::time::Instant::now());
        drop(idle);
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
                let to = match self.store.apply(&id, event, server).await {
                    Ok(to) => to,
                    Err(StoreError::Forbidden(_)) => continue, // another node settled it
                    Err(e) => return Err(e),
                };
                self.store.log(&id, "info", &format!("job is {to}")).await?;
                if to.is_final() {
                    self.write_report(&id).await;
                }
                self.forget(&id);
            }
        }
        for id in self.store.jobs_in_state(JobState::Ready, 1000).await? {
            match self.store.apply(&id, Event::Start, server).await {
                Ok(_) | Err(StoreError::Forbidden(_)) => {} // or another node started it
                Err(e) => return Err(e),
            }
        }
        let lease = self.lease();
        for id in self.store.drained_jobs(JobState::Active).await? {
            if !self.busy.lock().expect("lock").insert(id.clone()) {
                continue;
            }
            let permit = match self.slot() {
                Some(permit) if self.store.lease_job(&id, &lease).await? => permit,
                other => {
                    // No free worker, or another node is finishing it.
                    self.busy.lock().expect("lock").remove(&id);
                    if other.is_none() {
                        return Ok(());
                    }
                    continue;
                }
            };
            tokio::spawn(self.clone().finish(id, permit));
        }
        let free = self.slots.available_permits() as i64;
        if free > 0 {
            for id in self.store.due_new_jobs(free).await? {
                let Some(permit) = self.slot() else {
                    return Ok(());
                };
                if !self.store.lease_job(&id, &lease).await? {
                    continue; // another node is planning it
                }
                self.busy.lock().expect("lock").insert(id.clone());
                match self.store.apply(&id, Event::Prepare, server).await {
                    Ok(_) => {}
                    Err(e) => {
                        self.busy.lock().expect("lock").remove(&id);
                        self.store.release_job(&id, server).await?;
                        match e {
                            StoreError::Forbidden(_) => continue, // it changed meanwhile
                            e => return Err(e),
                        }
                    }
                }
                tokio::spawn(self.clone().plan(id, permit));
            }
        }
        let unserved = self.dispatch().await?;
        self.preempt_or_resume(unserved).await
    }

    /// Gives each free worker a batch of one job's tasks, the job chosen by the
    /// fair-share picker; returns the jobs left with ready tasks, as (id, priority).
    async fn dispatch(self: &Arc<Self>) -> Result<Vec<(String, i64)>, StoreError> {
        let free = self.slots.available_permits();
        let lease = self.lease();
        let claimable = self
            .store
            .claimable_jobs(self.config.workers as i64 + 1)
            .await?;
        let candidates: Vec<Candidate> = claimable
            .into_iter()
            .map(|c| Candidate {
                job: c.id,
                tenant: c.tenant,
                priority: c.priority,
                job_weight: c.weight.clamp(1, u32::MAX as i64) as u32,
                tenant_weight: c.tenant_weight.clamp(1, u32::MAX as i64) as u32,
                ready: c.ready as usize,
            })
            .collect();
        let picks = match free {
            0 => Vec::new(),
            n => self.ledger.lock().expect("lock").pick(&candidates, n),
        };
        let mut picked = vec![0usize; candidates.len()];
        for (i, candidate) in candidates.iter().enumerate() {
            let mine: Vec<Pick> = picks
                .iter()
                .filter(|p| p.job == candidate.job)
                .cloned()
                .collect();
            if mine.is_empty() {
                continue;
            }
            let batch = self
                .task_times
                .lock()
                .expect("lock")
                .get(&candidate.job)
                .map_or(1, TaskTime::batch);
            let claimed = self
                .store
                .claim_job_tasks(&candidate.job, (mine.len() * batch) as i64, &lease)
                .await;
            let tasks = match claimed {
                Ok(tasks) => tasks,
                Err(e) => {
                    self.unpick(candidate, &mine);
                    return Err(e);
                }
            };
            picked[i] = tasks.len();
            let split = batches::split(tasks, mine.len());
            self.unpick(candidate, &mine[split.len()..]);
            for (tasks, pick) in split.into_iter().zip(mine) {
                let permit = self.slot().expect("picked no more batches than free slots");
                tokio::spawn(
                    self.clone()
                        .run_batch(tasks, candidate.clone(), pick, permit),
                );
            }
        }
        Ok(candidates
            .into_iter()
            .zip(picked)
            .filter(|(c, n)| c.ready > *n)
            .map(|(c, _)| (c.job, c.priority))
            .collect())
    }

    fn unpick(&self, candidate: &Candidate, picks: &[Pick]) {
        let mut ledger = self.ledger.lock().expect("lock");
        for pick in picks {
            ledger.settle(candidate, pick, 0, false);
        }
    }

    /// Preemption: while higher-priority work waits and no worker is free,
    /// Active jobs of lower priority pause at their next task boundary (and
    /// show who preempted them); a job paused that way is Ready again once no
    /// higher-priority work waits.
    async fn preempt_or_resume(&self, unserved: Vec<(String, i64)>) -> Result<(), StoreError> {
        let mut waiting = unserved;
        waiting.extend(self.store.waiting_jobs().await?);
        let top = waiting.iter().max_by_key(|(_, p)| *p).cloned();
        if let Some((by, top)) = top
            && self.slots.available_permits() == 0
        {
            for (id, priority) in self.store.jobs_with_priority(JobState::Active).await? {
                if priority < top && self.store.preempt(&id, &by).await? {
                    let message = format!(
                        "job is Pausing: preempted by job {by} of priority {top} (this job's priority is {priority})"
                    );
                    tracing::info!(job = %id, by = %by, "preempted");
                    self.store.log(&id, "info", &message).await?;
                }
            }
        }
        for (id, priority) in self.store.preempted_jobs().await? {
            if waiting.iter().all(|(_, p)| *p <= priority)
                && self.store.resume_preempted(&id).await?
            {
                tracing::info!(job = %id, "resumed after preemption");
                self.store
                    .log(
                        &id,
                        "info",
                        "job is Ready: no higher-priority work is waiting",
                    )
                    .await?;
            }
        }
        Ok(())
    }

    fn slot(&self) -> Option<OwnedSemaphorePermit> {
        self.slots.clone().try_acquire_owned().ok()
    }

    fn forget(&self, id: &str) {
        let parked = self.parked.lock().expect("lock").forget(id);
        drop(parked);
        self.contexts.lock().expect("lock").remove(id);
        self.ledger.lock().expect("lock").forget(id);
        self.task_times.lock().expect("lock").remove(id);
    }

    /// Charges plan or finish calls to the job's and tenant's accounts.
    async fn charge_call(
        &self,
        job: &JobContext,
        fuel: u64,
        cpu: Duration,
    ) -> Result<(), StoreError> {
        let id = job.info.id.as_str();
        self.store.add_cost(id, fuel, cpu.as_nanos() as u64).await?;
        crate::metrics::global().charge(&job.info.tenant, &job.plugin, fuel, cpu);
        let weight = self.store.get_job(id).await?.map_or(1, |j| j.weight);
        let tenant_weight = self
            .store
            .tenants(Some(&job.info.tenant))
            .await?
            .first()
            .map_or(1, |t| t.weight);
        let account = Candidate {
            job: id.to_string(),
            tenant: job.info.tenant.clone(),
            priority: 0,
            job_weight: weight.clamp(1, u32::MAX as i64) as u32,
            tenant_weight: tenant_weight.clamp(1, u32::MAX as i64) as u32,
            ready: 0,
        };
        self.ledger
            .lock()
            .expect("lock")
            .charge_extra(&account, cpu.as_nanos() as u64);
        Ok(())
    }

    /// The capability context and plugin of a job (cached while it runs).
    async fn context(&self, id: &str) -> Result<(JobContext, Arc<Plugin>), String> {
        if let Some(found) = self.contexts.lock().expect("lock").get(id) {
            return Ok(found.clone());
        }
        let job = until_answered("reading a job", || self.store.get_job(id))
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
                targets: serde_json::from_str(&job.params)
                    .map(|params| plugin.targets(&params))
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(_, path)| path)
                    .collect(),
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
            until_answered("clearing a job's tasks", || self.store.clear_tasks(&id))
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
            let limits = self.config.limits.for_type(&info.job_type);
            let call = self
                .runtime
                .call(
                    &plugin.loaded,
                    CallCtx::for_job(context.clone(), Phase::Plan),
                    limits,
                    Box::new(move |store, instance| {
                        Box::pin(async move {
                            instance.wasmq_plugin_plugin().call_plan(store, &info).await
                        })
                    }),
                )
                .await;
            until_answered("charging a call", || {
                self.charge_call(&context, call.fuel_used, call.cpu)
            })
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
                let planned = Event::Planned { confirm };
                let server = &self.config.server_name;
                if let Err(e) = until_answered("marking a job planned", || {
                    self.store.apply(&id, planned, server)
                })
                .await
                {
                    tracing::info!(job = %id, error = %e, "job changed while it was planned");
                }
            }
            Err(reason) => self.fail_job(&id, &reason).await,
        }
        self.let_go(&id).await;
        self.busy.lock().expect("lock").remove(&id);
        self.wake.notify_one();
    }

    /// Releases this node's hold on a job it planned or finished.
    async fn let_go(&self, id: &str) {
        if let Err(e) = self.store.release_job(id, &self.config.server_name).await {
            tracing::warn!(job = %id, error = %e, "could not release the job; its lease will expire");
        }
    }

    /// Runs a batch of one job's tasks in order on one [`Session`], then
    /// records their outcomes together. The batch stops early, giving the rest
    /// back, when its job fails or it has taken twice its slice.
    async fn run_batch(
        self: Arc<Self>,
        tasks: Vec<ClaimedTask>,
        account: Candidate,
        pick: Pick,
        _permit: OwnedSemaphorePermit,
    ) {
        let started = std::time::Instant::now();
        let job_id = account.job.clone();
        let mut outcomes = Vec::with_capacity(tasks.len());
        let mut unrun = Vec::new();
        match self.context(&job_id).await {
            Ok((context, plugin)) => {
                let limits = self.config.limits.for_type(&context.info.job_type);
                let digest = &plugin.loaded.digest;
                let parked = self.parked.lock().expect("lock").take(&job_id, digest);
                let mut session = parked.unwrap_or_else(|| {
                    let call = CallCtx::for_job(context.clone(), Phase::Task);
                    self.runtime.session(&plugin.loaded, call, limits)
                });
                let mut tasks = tasks.into_iter();
                let mut tally = Tally::default();
                for task in tasks.by_ref() {
                    let (result, transient, job_failed) =
                        self.call_task(&mut session, &context, &plugin, &task).await;
                    let failed_for_good = !result.succeeded && !self.will_retry(&task, transient);
                    match (result.succeeded, failed_for_good) {
                        (true, _) => tally.succeeded += 1,
                        (false, true) => tally.failed += 1,
                        (false, false) => {}
                    }
                    outcomes.push((task, result, transient));
                    let past_threshold =
                        failed_for_good && self.past_failure_threshold(&job_id, &mut tally).await;
                    if job_failed || past_threshold || started.elapsed() >= batches::SLICE * 2 {
                        break;
                    }
                }
                unrun = tasks.collect();
                // The next batch of this job takes the instance while it is warm.
                if session.is_warm() {
                    let now = std::time::Instant::now();
                    let gone = self
                        .parked
                        .lock()
                        .expect("lock")
                        .park(&job_id, digest, session, now);
                    drop(gone);
                }
            }
            Err(reason) => {
                self.fail_job(&job_id, &reason).await;
                let now = now_ms();
                for task in tasks {
                    let result = TaskResult {
                        succeeded: false,
                        code: 500,
                        message: reason.clone(),
                        etag: None,
                        fuel_used: 0,
                        cpu_ns: 0,
                        started_at: now,
                        finished_at: now,
                    };
                    outcomes.push((task, result, false));
                }
            }
        }
        tracing::debug!(job = %job_id, tasks = outcomes.len(), unrun = unrun.len(), took = ?started.elapsed(), "batch ran");
        self.task_times
            .lock()
            .expect("lock")
            .entry(job_id.clone())
            .or_default()
            .observe(outcomes.len(), started.elapsed());
        let cpu_ns = outcomes.iter().map(|(_, r, _)| r.cpu_ns).sum();
        self.ledger
            .lock()
            .expect("lock")
            .settle(&account, &pick, cpu_ns, true);
        if !unrun.is_empty() {
            let released =
                until_answered("giving back tasks", || self.store.release_tasks(&unrun)).await;
            if let Err(e) = released {
                tracing::error!(job = %job_id, error = %e, "could not give back unrun tasks; their lease will expire");
            }
        }
        // A database that is down keeps the outcomes waiting here, not lost (the tasks'
        // leases are renewed meanwhile; should one lapse, its late answer is refused).
        let recorded = until_answered("recording task outcomes", || self.record(&outcomes)).await;
        if let Err(e) = recorded {
            tracing::error!(job = %job_id, error = %e, "could not record task outcomes");
        }
        self.task_done.notify_one();
    }

    /// Whether a job's recorded counts plus a batch's unrecorded `tally` pass
    /// its failure threshold (the recorded counts are read once per batch).
    async fn past_failure_threshold(&self, job_id: &str, tally: &mut Tally) -> bool {
        if tally.recorded.is_none() {
            let job = until_answered("reading a job", || self.store.get_job(job_id)).await;
            tally.recorded = Some(match job {
                Ok(Some(job)) => (job.total, job.succeeded, job.failed),
                _ => (0, 0, 0), // checked again when the outcomes are recorded
            });
        }
        let (total, succeeded, failed) = tally.recorded.unwrap_or_default();
        let failed = failed + tally.failed;
        let ran = succeeded + tally.succeeded + failed;
        self.config
            .failure
            .exceeded(total as u64, ran as u64, failed as u64)
    }

    /// Runs one task in `session`; says whether a failure is worth retrying
    /// and whether the task failed its whole job (invalid input).
    async fn call_task(
        &self,
        session: &mut Session,
        context: &JobContext,
        plugin: &Plugin,
        task: &ClaimedTask,
    ) -> (TaskResult, bool, bool) {
        let info = context.info.clone();
        let (job_type, tenant) = (info.job_type.clone(), info.tenant.clone());
        let wit_task = Task {
            path: task.path.clone(),
            input: task.input.clone(),
        };
        let started_at = now_ms();
        let call: CallOutcome<Result<TaskOutcome, _>> = session
            .call(Box::new(move |store, instance| {
                Box::pin(async move {
                    instance
                        .wasmq_plugin_plugin()
                        .call_run_task(store, &info, &wit_task)
                        .await
                })
            }))
            .await;
        let finished_at = now_ms();
        let fuel_used = call.fuel_used;
        let cpu_ns = call.cpu.as_nanos() as u64;
        let mut job_failed = false;
        let (result, transient) = match call.result {
            Ok(Ok(outcome)) => (
                TaskResult {
                    succeeded: true,
                    code: outcome.code as i64,
                    message: outcome.message,
                    etag: outcome.etag,
                    fuel_used,
                    cpu_ns,
                    started_at,
                    finished_at,
                },
                false,
            ),
            Ok(Err(e)) => {
                if e.kind == ErrorKind::InvalidInput {
                    self.fail_job(&task.job_id, &format!("invalid input: {}", e.message))
                        .await;
                    job_failed = true;
                }
                let transient = e.kind == ErrorKind::Transient;
                (
                    TaskResult {
                        succeeded: false,
                        code: e.code as i64,
                        message: e.message,
                        etag: None,
                        fuel_used,
                        cpu_ns,
                        started_at,
                        finished_at,
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
                    cpu_ns,
                    started_at,
                    finished_at,
                },
                false,
            ),
        };
        let outcome = match (result.succeeded, self.will_retry(task, transient)) {
            (true, _) => crate::metrics::TaskOutcome::Succeeded,
            (false, true) => crate::metrics::TaskOutcome::Retried,
            (false, false) => crate::metrics::TaskOutcome::Failed,
        };
        crate::metrics::global().task_ended(
            &job_type,
            &tenant,
            &plugin.name,
            outcome,
            call.elapsed,
            fuel_used,
            call.cpu,
        );
        (result, transient, job_failed)
    }

    /// True if a task that failed this way goes back to the queue.
    fn will_retry(&self, task: &ClaimedTask, transient: bool) -> bool {
        transient && task.attempts + 1 < self.config.max_attempts
    }

    /// Stores the outcomes of a batch of one job's tasks: each failed one
    /// retried later if transient and attempts remain, the rest final and
    /// counted in one transaction that also applies the job's failure threshold.
    async fn record(&self, outcomes: &[(ClaimedTask, TaskResult, bool)]) -> Result<(), StoreError> {
        let mut last = Vec::with_capacity(outcomes.len());
        for (task, result, transient) in outcomes {
            let attempts = task.attempts + 1;
            if self.will_retry(task, *transient) {
                let delay = self.config.retry_base * 2u32.pow((attempts - 1).min(16) as u32);
                let not_before = now_ms() + delay.as_millis() as i64;
                let note = format!(
                    "task {} ({}) will be retried in {delay:?}: {}",
                    task.seq, task.path, result.message
                );
                match self.store.retry_task(task, not_before, result, &note).await {
                    Err(StoreError::LeaseLost(..)) => {
                        tracing::warn!(job = %task.job_id, seq = task.seq, "lease lost; another node runs this task");
                    }
                    other => other?,
                }
                continue;
            }
            last.push((task.clone(), result.clone()));
        }
        let finished = self.store.finish_tasks(&last, self.config.failure).await?;
        for seq in finished.lost {
            let job = last.first().map_or("", |(t, _)| t.job_id.as_str());
            tracing::warn!(job, seq, "lease lost; another node runs this task");
        }
        if let Some(reason) = finished.failed_job {
            let job = &last[0].0.job_id;
            tracing::warn!(job = %job, %reason, "job failing");
        }
        Ok(())
    }

    async fn finish(self: Arc<Self>, id: String, _permit: OwnedSemaphorePermit) {
        let outcome = async {
            let (context, plugin) = self.context(&id).await?;
            let job = until_answered("reading a job", || self.store.get_job(&id))
                .await
                .map_err(|e| e.to_string())?
                .ok_or("job vanished")?;
            let summary = JobSummary {
                total: job.total as u64,
                succeeded: job.succeeded as u64,
                failed: job.failed as u64,
            };
            let info = context.info.clone();
            let limits = self.config.limits.for_type(&info.job_type);
            let call = self
                .runtime
                .call(
                    &plugin.loaded,
                    CallCtx::for_job(context.clone(), Phase::Finish),
                    limits,
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
            until_answered("charging a call", || {
                self.charge_call(&context, call.fuel_used, call.cpu)
            })
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
                let server = &self.config.server_name;
                match until_answered("marking a job finished", || {
                    self.store.apply(&id, Event::Finished, server)
                })
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
        self.let_go(&id).await;
        self.forget(&id);
        self.busy.lock().expect("lock").remove(&id);
        self.wake.notify_one();
    }
}
