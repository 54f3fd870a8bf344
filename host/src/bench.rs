//! `wasmq bench`: figures measured side by side in one run on this machine: the
//! wasm path per task, instantiation, metering overhead, and the scheduler's rate and fairness.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::api::AppState;
use crate::capabilities::{CallCtx, JobContext, Phase};
use crate::paths::Scope;
use crate::runtime::bindings::wasmq::plugin::types::{Capabilities, JobInfo, Task};
use crate::runtime::{Limits, Loaded, Metering, Runtime, RuntimeConfig};
use crate::server::{self, ServerConfig};
use crate::store::{Job, Store};

/// What to benchmark with.
pub struct BenchOptions {
    /// Where `wasmq_chaos.wasm` is (built from plugins/).
    pub plugins: PathBuf,
    /// Fewer repetitions: a quick look rather than stable figures.
    pub quick: bool,
}

/// Runs every benchmark and prints its figures.
pub async fn run(options: BenchOptions) -> Result<()> {
    let dir = std::env::temp_dir().join(format!("wasmq-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let outcome = async {
        let calibrated = wasm_path(&options, &dir).await?;
        scheduler(&options, &dir, calibrated).await
    }
    .await;
    let _ = std::fs::remove_dir_all(&dir);
    outcome
}

/// The chaos plugin and a job context to call it in.
struct Bench {
    runtime: Runtime,
    plugin: Loaded,
    store: Store,
    assets: crate::assets::AssetRepo,
}

impl Bench {
    fn context(&self, params: &Value) -> JobContext {
        JobContext {
            info: JobInfo {
                id: "bench".into(),
                job_type: "chaos".into(),
                tenant: "default".into(),
                path: "/content/bench".into(),
                excluded_paths: vec![],
                params: params.to_string(),
                created_by: "bench".into(),
            },
            scope: Scope {
                root: "/content/bench".into(),
                excluded: vec![],
                targets: vec![],
            },
            declared: Capabilities::empty(),
            plugin: "chaos".into(),
            store: self.store.clone(),
            assets: self.assets.clone(),
            host_timeout: Duration::from_secs(30),
        }
    }

    /// Runs `instances` calls, each instantiating once and running `per_instance`
    /// tasks of `mode`; returns the wall time and the CPU time of the calls.
    async fn time(
        &self,
        metering: Metering,
        mode: &str,
        work: u64,
        instances: u32,
        per_instance: u32,
    ) -> Result<(Duration, Duration)> {
        let params = json!({ "tasks": [mode], "work": work });
        let limits = Limits {
            metering,
            fuel: u64::MAX / 4,
            wall: Duration::from_secs(600),
            ..Limits::default()
        };
        let started = Instant::now();
        let mut cpu = Duration::ZERO;
        for _ in 0..instances {
            let context = self.context(&params);
            let info = context.info.clone();
            let task = Task {
                path: "/content/bench/0".into(),
                input: mode.as_bytes().to_vec(),
            };
            let call = self
                .runtime
                .call(
                    &self.plugin,
                    CallCtx::for_job(context, Phase::Task),
                    limits,
                    Box::new(move |store, instance| {
                        Box::pin(async move {
                            for _ in 0..per_instance {
                                let outcome = instance
                                    .wasmq_plugin_plugin()
                                    .call_run_task(&mut *store, &info, &task)
                                    .await?;
                                if let Err(e) = outcome {
                                    wasmtime::bail!("task failed: {}", e.message);
                                }
                            }
                            Ok(())
                        })
                    }),
                )
                .await;
            if let Err(e) = call.result {
                bail!("benchmark call failed: {e}");
            }
            cpu += call.cpu;
        }
        Ok((started.elapsed(), cpu))
    }
}

/// What the scheduler benchmarks need from the runtime ones.
struct Calibration {
    /// `cpu` rounds per millisecond of guest time.
    rounds_per_ms: f64,
}

fn per_second(n: u32, took: Duration) -> f64 {
    n as f64 / took.as_secs_f64()
}

fn micros(d: Duration, n: u32) -> f64 {
    d.as_secs_f64() * 1e6 / n as f64
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

async fn wasm_path(options: &BenchOptions, dir: &Path) -> Result<Calibration> {
    let file = options.plugins.join("wasmq_chaos.wasm");
    let bytes = std::fs::read(&file).with_context(|| {
        format!(
            "reading {}: build the plugins first (wasmq plugin build plugins --out DIR)",
            file.display()
        )
    })?;
    let runtime = Runtime::new(&RuntimeConfig {
        cache_dir: dir.join("cache"),
        instance_slots: 8,
        max_memory: 320 << 20,
    })?;
    let plugin = runtime.load(&bytes)?;
    let (store, assets) = server::open_data(&dir.join("wasm-path"), None).await?;
    let bench = Bench {
        runtime,
        plugin,
        store,
        assets,
    };

    println!("== wasm path (one call at a time, chaos plugin, epoch metering)");
    let n = if options.quick { 300 } else { 3000 };
    bench.time(Metering::Epoch, "ok", 0, 50, 1).await?; // warm up
    let (fresh, _) = bench.time(Metering::Epoch, "ok", 0, n, 1).await?;
    let (reused, _) = bench.time(Metering::Epoch, "ok", 0, 1, n).await?;
    println!(
        "trivial task, a fresh instance per task: {:>9.0} tasks/s  ({:.1} µs per task)",
        per_second(n, fresh),
        micros(fresh, n)
    );
    println!(
        "trivial task, one instance for all:      {:>9.0} tasks/s  ({:.1} µs per task)",
        per_second(n, reused),
        micros(reused, n)
    );
    println!(
        "instantiation per task:                  {:>9.1} µs",
        micros(fresh.saturating_sub(reused), n)
    );

    println!(
        "== metering overhead on CPU-bound tasks (CPU time; median over rounds that run each mode back to back)"
    );
    let reps = if options.quick { 5 } else { 15 };
    let work = if options.quick {
        20_000_000
    } else {
        40_000_000
    };
    let mut rounds_per_ms = 0.0;
    for mode in ["cpu", "sort"] {
        let modes = [Metering::Unmetered, Metering::Epoch, Metering::Fuel];
        bench.time(Metering::Fuel, mode, work / 10, 1, 1).await?; // compile the fuel flavour
        let mut times: [Vec<Duration>; 3] = Default::default();
        let mut ratios: [Vec<f64>; 2] = Default::default();
        for _ in 0..reps {
            let mut round = [Duration::ZERO; 3];
            for (i, metering) in modes.iter().enumerate() {
                round[i] = bench.time(*metering, mode, work, 1, 1).await?.1;
                times[i].push(round[i]);
            }
            for i in 0..2 {
                ratios[i].push(round[i + 1].as_secs_f64() / round[0].as_secs_f64());
            }
        }
        let [none, epoch, fuel] = times.map(median);
        let [epoch_ratio, fuel_ratio] = ratios.map(|mut r| {
            r.sort_by(f64::total_cmp);
            r[r.len() / 2]
        });
        if mode == "cpu" {
            rounds_per_ms = work as f64 / epoch.as_secs_f64() / 1000.0;
        }
        println!(
            "{mode:<5} none {:>7.1} ms | epoch {:>7.1} ms ({epoch_ratio:.3}x) | fuel {:>7.1} ms ({fuel_ratio:.3}x)",
            none.as_secs_f64() * 1e3,
            epoch.as_secs_f64() * 1e3,
            fuel.as_secs_f64() * 1e3,
        );
    }
    Ok(Calibration { rounds_per_ms })
}

/// A host without HTTP on a fresh data directory with the chaos plugin.
async fn start_host(options: &BenchOptions, dir: &Path, name: &str) -> Result<AppState> {
    let data = dir.join(name);
    let plugins = data.join("plugins");
    std::fs::create_dir_all(&plugins)?;
    std::fs::copy(
        options.plugins.join("wasmq_chaos.wasm"),
        plugins.join("wasmq_chaos.wasm"),
    )?;
    let mut config = ServerConfig::in_process(data, plugins, dir.join("cache"))?;
    config.server_name = "bench".into();
    server::start(&config).await
}

pub(crate) async fn submit(app: &AppState, tenant: &str, body: Value) -> Result<Job> {
    let job = crate::submission::parse(body.to_string().as_bytes(), tenant, "bench", &app.registry)
        .map_err(|e| anyhow::anyhow!("bench submission: {e:?}"))?;
    let job = app.store.insert_job(&job).await?;
    app.wake.notify_one();
    Ok(job)
}

pub(crate) async fn job(app: &AppState, id: &str) -> Result<Job> {
    app.store
        .get_job(id)
        .await?
        .with_context(|| format!("job {id} vanished"))
}

pub(crate) async fn wait_final(app: &AppState, id: &str) -> Result<Job> {
    loop {
        let job = job(app, id).await?;
        if job.state().is_final() {
            return Ok(job);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn cpu_tasks(n: usize) -> Vec<&'static str> {
    vec!["cpu"; n]
}

async fn scheduler(options: &BenchOptions, dir: &Path, calibration: Calibration) -> Result<()> {
    let work_for = |ms: f64| (calibration.rounds_per_ms * ms).max(1.0) as u64;
    println!("== scheduler (SQLite, 2 workers, in process)");

    let app = start_host(options, dir, "rate").await?;
    let n = if options.quick { 500 } else { 3000 };
    let rate = submit(
        &app,
        "default",
        json!({ "type": "chaos", "path": "/content/rate", "params": { "tasks": vec!["ok"; n] } }),
    )
    .await?;
    let rate = wait_final(&app, &rate.id).await?;
    let took = (rate.completed_at.unwrap_or(0) - rate.started_at.unwrap_or(0)).max(1);
    println!(
        "trivial tasks through the scheduler:     {:>9.0} tasks/s  ({n} tasks, {took} ms)",
        n as f64 * 1000.0 / took as f64
    );

    let app = start_host(options, dir, "fair").await?;
    let (gap, samples) =
        equal_jobs(&app, work_for(10.0), if options.quick { 40 } else { 100 }).await?;
    println!(
        "two equal jobs started together:         largest progress gap {:.1}% over {samples} samples",
        gap * 100.0
    );

    let share = tenants(&app, work_for(10.0), options.quick).await?;
    println!(
        "tenant B (1 job) vs tenant A (20 jobs):  B got {:.1}% of the CPU while both were busy",
        share * 100.0
    );

    let (delay, task_ms, exactly_once) = preemption(&app, work_for(100.0)).await?;
    println!(
        "preemption: the high-priority job started {delay} ms after it was submitted \
         (one task takes about {task_ms} ms); the preempted job ran every task exactly once: {exactly_once}"
    );
    Ok(())
}

/// Two identical jobs that start at the same moment; returns the largest gap
/// between their progress (relative to the one ahead) once both passed 10%.
async fn equal_jobs(app: &AppState, work: u64, tasks: usize) -> Result<(f64, u32)> {
    let at = chrono::Utc::now() + chrono::Duration::milliseconds(800);
    let body = json!({ "type": "chaos", "path": "/content/equal", "runAt": at.to_rfc3339(),
                       "params": { "tasks": cpu_tasks(tasks), "work": work } });
    let a = submit(app, "default", body.clone()).await?;
    let b = submit(app, "default", body).await?;
    let (mut gap, mut samples) = (0.0f64, 0u32);
    loop {
        let (ja, jb) = (job(app, &a.id).await?, job(app, &b.id).await?);
        let (da, db) = (ja.succeeded + ja.failed, jb.succeeded + jb.failed);
        if ja.state().is_final() || jb.state().is_final() {
            return Ok((gap, samples));
        }
        if da.min(db) * 10 >= tasks as i64 {
            gap = gap.max((da - db).abs() as f64 / da.max(db) as f64);
            samples += 1;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Tenant A submits 20 jobs, then tenant B one; returns B's share of the CPU
/// time used between two moments at which both still had work.
async fn tenants(app: &AppState, work: u64, quick: bool) -> Result<f64> {
    let per_job = if quick { 5 } else { 10 };
    let mut a_jobs = Vec::new();
    for _ in 0..20 {
        let body = json!({ "type": "chaos", "path": "/content/a",
                           "params": { "tasks": cpu_tasks(per_job), "work": work } });
        a_jobs.push(submit(app, "tenant-a", body).await?);
    }
    let b_tasks = per_job * 10;
    let body = json!({ "type": "chaos", "path": "/content/b",
                       "params": { "tasks": cpu_tasks(b_tasks), "work": work } });
    let b = submit(app, "tenant-b", body).await?;
    let cpu = |app: AppState| async move {
        let rows = app.store.tenants(None).await?;
        let of = |t: &str| rows.iter().find(|r| r.tenant == t).map_or(0, |r| r.cpu_ns);
        anyhow::Ok((of("tenant-a"), of("tenant-b")))
    };
    let mut first = None;
    loop {
        let jb = job(app, &b.id).await?;
        let done = (jb.succeeded + jb.failed) as usize;
        if first.is_none() && done * 5 >= b_tasks {
            first = Some(cpu(app.clone()).await?);
        }
        if done * 10 >= b_tasks * 7 {
            let (a1, b1) = cpu(app.clone()).await?;
            let (a0, b0) = first.unwrap_or((0, 0));
            let share = (b1 - b0) as f64 / ((a1 - a0) + (b1 - b0)).max(1) as f64;
            for j in a_jobs.iter().chain([&b]) {
                app.store
                    .apply(&j.id, crate::jobs::Event::Cancel, "bench")
                    .await
                    .ok();
            }
            for j in a_jobs.iter().chain([&b]) {
                wait_final(app, &j.id).await?;
            }
            return Ok(share);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A low-priority job holds both workers; a high-priority one arrives. Returns
/// how long the latter waited to start, the task time, and whether the
/// preempted job ran each of its tasks exactly once.
async fn preemption(app: &AppState, work: u64) -> Result<(i64, i64, bool)> {
    let low = submit(
        app,
        "default",
        json!({ "type": "chaos", "path": "/content/low", "priority": 0,
                "params": { "tasks": cpu_tasks(20), "work": work } }),
    )
    .await?;
    while job(app, &low.id).await?.succeeded < 2 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let high = submit(
        app,
        "default",
        json!({ "type": "chaos", "path": "/content/high", "priority": 10,
                "params": { "tasks": cpu_tasks(4), "work": work } }),
    )
    .await?;
    let high = wait_final(app, &high.id).await?;
    let low = wait_final(app, &low.id).await?;
    let tasks = app.store.all_tasks(&low.id).await?;
    let exactly_once = low.succeeded == 20
        && tasks.len() == 20
        && tasks
            .iter()
            .all(|t| t.attempts == 1 && t.state == "succeeded");
    let task_ms = tasks
        .iter()
        .filter_map(|t| Some(t.finished_at? - t.started_at?))
        .sum::<i64>()
        / tasks.len().max(1) as i64;
    let delay = high.started_at.unwrap_or(0) - high.created_at;
    Ok((delay, task_ms, exactly_once))
}
