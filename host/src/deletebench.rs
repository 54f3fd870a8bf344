//! `wasmq bench-delete`: a bulk delete of N assets as a real job of the wasm `delete` plugin
//! through the scheduler, against the same repository calls made natively and the file system's unlink rate.
//!
//! All three run in one process on one fresh data directory, one operation
//! at a time each (the scheduler with one worker, the default of `wasmq serve`
//! on a 2-core machine). The wasm and native sides alternate in rounds, each
//! over its share of the assets (a folder of 100 folders per round and side),
//! the side that goes first swapping every round, so that both see the same
//! database sizes and a slow spell of the machine hits both. The wasm job's
//! time is its `completedAt - createdAt` (plan, every task with its
//! bookkeeping, the report); the native side lists the folder and, per asset,
//! makes the calls the plugin makes (`stat`, `referrers`, `delete`); the unlink
//! side removes as many plain files in 100 folders.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use bytes::Bytes;
use serde_json::json;

use crate::api::AppState;
use crate::assets::AssetRepo;
use crate::bench;
use crate::paths::Scope;
use crate::server::{self, ServerConfig};

/// What to benchmark with.
pub struct DeleteBenchOptions {
    /// Where `wasmq_delete.wasm` is (built from plugins/).
    pub plugins: PathBuf,
    /// How many assets each side deletes.
    pub assets: usize,
    /// How many rounds the two sides alternate in.
    pub rounds: usize,
}

/// The three rates, in items per second.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rates {
    pub wasm: f64,
    pub native: f64,
    pub unlink: f64,
}

impl Rates {
    /// How many times longer the wasm job takes than the native calls.
    pub fn wasm_over_native(&self) -> f64 {
        self.native / self.wasm
    }

    /// How many times longer the wasm job takes than unlinking the files.
    pub fn wasm_over_unlink(&self) -> f64 {
        self.unlink / self.wasm
    }
}

/// The goal for the wasm/native ratio.
pub const GOAL_WASM_OVER_NATIVE: f64 = 1.3;

/// The asset path of item `i` under `root`: 100 folders, as the unlink side lays out files.
fn item_path(root: &str, i: usize, n: usize) -> String {
    let per_folder = n.div_ceil(100).max(1);
    format!("{root}/d{:03}/f{i:07}.txt", i / per_folder)
}

/// `n` split into `rounds` near-equal parts, none empty (fewer parts if `n` is smaller).
fn round_sizes(n: usize, rounds: usize) -> Vec<usize> {
    let rounds = rounds.clamp(1, n.max(1));
    (0..rounds)
        .map(|r| n / rounds + usize::from(r < n % rounds))
        .collect()
}

fn rate(n: usize, took: Duration) -> f64 {
    n as f64 / took.as_secs_f64().max(1e-9)
}

/// Runs the benchmark and prints its figures.
pub async fn run(options: DeleteBenchOptions) -> Result<Rates> {
    ensure!(options.assets > 0, "--assets must be at least 1");
    ensure!(options.rounds > 0, "--rounds must be at least 1");
    let dir = std::env::temp_dir().join(format!("wasmq-bench-delete-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let outcome = bench_in(&options, &dir).await;
    let _ = std::fs::remove_dir_all(&dir);
    outcome
}

async fn bench_in(options: &DeleteBenchOptions, dir: &Path) -> Result<Rates> {
    let n = options.assets;
    let data = dir.join("data");
    let plugins = data.join("plugins");
    std::fs::create_dir_all(&plugins)?;
    let file = options.plugins.join("wasmq_delete.wasm");
    std::fs::copy(&file, plugins.join("wasmq_delete.wasm")).with_context(|| {
        format!(
            "copying {}: build the plugins first (wasmq plugin build plugins --out DIR)",
            file.display()
        )
    })?;
    let mut config = ServerConfig::in_process(data, plugins, dir.join("cache"))?;
    config.server_name = "bench".into();
    config.workers = 1;
    config.limits.default.wall = Duration::from_secs(3600);
    let app = server::start(&config).await?;

    let rounds = round_sizes(n, options.rounds);
    println!(
        "== bulk delete of {n} assets (one operation at a time on each side, {} alternating rounds)",
        rounds.len()
    );
    let started = Instant::now();
    for (r, &size) in rounds.iter().enumerate() {
        populate(&app.assets, &format!("/content/bulk-wasm/r{r}"), size).await?;
        populate(&app.assets, &format!("/content/bulk-native/r{r}"), size).await?;
    }
    println!(
        "created 2 x {n} assets in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let mut wasm_side = JobFigures::default();
    let (mut native_took, mut native_cpu) = (Duration::ZERO, Cpu::default());
    let mut ratios = Vec::new();
    for (r, &size) in rounds.iter().enumerate() {
        let (wasm_root, native_root) = (
            format!("/content/bulk-wasm/r{r}"),
            format!("/content/bulk-native/r{r}"),
        );
        let (job, took, cpu) = if r % 2 == 0 {
            let job = delete_job(&app, &wasm_root, size).await?;
            let (took, cpu) = native_side(&app.assets, &native_root).await?;
            (job, took, cpu)
        } else {
            let (took, cpu) = native_side(&app.assets, &native_root).await?;
            (delete_job(&app, &wasm_root, size).await?, took, cpu)
        };
        ratios.push(job.ms as f64 / 1e3 / took.as_secs_f64().max(1e-9));
        wasm_side.add(&job);
        native_took += took;
        native_cpu.add(cpu);
    }

    let wasm = n as f64 * 1000.0 / wasm_side.ms.max(1) as f64;
    println!(
        "wasm delete job (scheduler, 1 worker):  {wasm:>9.0} assets/s  ({:.1} s; CPU {} in the process, {:.1} s in plugin calls)",
        wasm_side.ms as f64 / 1e3,
        wasm_side.cpu,
        wasm_side.plugin_ns as f64 / 1e9
    );
    println!(
        "  of which: plan {:.1} s, tasks {:.1} s, report and end {:.1} s",
        wasm_side.plan_ms as f64 / 1e3,
        wasm_side.tasks_ms as f64 / 1e3,
        wasm_side.end_ms as f64 / 1e3
    );
    let native = rate(n, native_took);
    println!(
        "native repository calls, in process:    {native:>9.0} assets/s  ({:.1} s; CPU {native_cpu})",
        native_took.as_secs_f64()
    );
    let each: Vec<String> = ratios.iter().map(|r| format!("{r:.2}x")).collect();
    println!("  wasm / native per round: {}", each.join(" "));

    let took = unlink_files(&dir.join("unlink"), n)?;
    let unlink = rate(n, took);
    println!(
        "file system unlink of {n} files:     {unlink:>9.0} files/s  ({:.1} s)",
        took.as_secs_f64()
    );
    let rates = Rates {
        wasm,
        native,
        unlink,
    };
    println!(
        "ratio wasm job / native calls:          {:>9.2}x (goal <= {GOAL_WASM_OVER_NATIVE})",
        rates.wasm_over_native()
    );
    println!(
        "ratio wasm job / unlink:                {:>9.2}x",
        rates.wasm_over_unlink()
    );
    Ok(rates)
}

/// One delete job's figures, or their sums over several jobs.
#[derive(Debug, Default)]
struct JobFigures {
    /// `completedAt - createdAt`.
    ms: i64,
    /// The process's CPU time while it ran.
    cpu: Cpu,
    /// The CPU time of its plugin calls.
    plugin_ns: i64,
    plan_ms: i64,
    tasks_ms: i64,
    end_ms: i64,
}

impl JobFigures {
    fn add(&mut self, other: &JobFigures) {
        self.ms += other.ms;
        self.cpu.add(other.cpu);
        self.plugin_ns += other.plugin_ns;
        self.plan_ms += other.plan_ms;
        self.tasks_ms += other.tasks_ms;
        self.end_ms += other.end_ms;
    }
}

/// Runs a delete job of the `size` assets under `root` through the scheduler
/// and checks that it deleted them all.
async fn delete_job(app: &AppState, root: &str, size: usize) -> Result<JobFigures> {
    let cpu_before = Cpu::now();
    let job = bench::submit(app, "default", json!({ "type": "delete", "path": root })).await?;
    let job = bench::wait_final(app, &job.id).await?;
    let cpu = Cpu::since(cpu_before);
    ensure!(
        job.succeeded == size as i64,
        "the delete job deleted {} of {size} assets ({}; error {:?})",
        job.succeeded,
        job.state().as_str(),
        job.error
    );
    ensure!(
        remaining(&app.assets, root).await? == 0,
        "assets remain after the delete job"
    );
    let last_task = app
        .store
        .all_tasks(&job.id)
        .await?
        .iter()
        .filter_map(|t| t.finished_at)
        .max()
        .unwrap_or(job.created_at);
    let started = job.started_at.unwrap_or(job.created_at);
    let completed = job.completed_at.unwrap_or(last_task);
    Ok(JobFigures {
        ms: (completed - job.created_at).max(1),
        cpu,
        plugin_ns: job.cpu_ns,
        plan_ms: started - job.created_at,
        tasks_ms: last_task - started,
        end_ms: completed - last_task,
    })
}

/// The native side over `root`: its time and the process's CPU time.
async fn native_side(assets: &AssetRepo, root: &str) -> Result<(Duration, Cpu)> {
    let cpu_before = Cpu::now();
    let took = delete_natively(assets, root).await?;
    let cpu = Cpu::since(cpu_before);
    ensure!(
        remaining(assets, root).await? == 0,
        "assets remain after the native delete"
    );
    Ok((took, cpu))
}

/// CPU time of this whole process so far, in user space and in the kernel.
#[derive(Debug, Clone, Copy, Default)]
struct Cpu {
    user: Duration,
    system: Duration,
}

impl Cpu {
    /// Reads it from /proc/self/stat.
    fn now() -> Cpu {
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
        // Fields after the command name (which may hold spaces): utime and stime are
        // the 12th and 13th, in clock ticks (100 per second on Linux).
        let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
        let mut ticks = after
            .split_whitespace()
            .skip(11)
            .map(|f| Duration::from_millis(f.parse::<u64>().unwrap_or(0) * 10));
        Cpu {
            user: ticks.next().unwrap_or_default(),
            system: ticks.next().unwrap_or_default(),
        }
    }

    fn add(&mut self, other: Cpu) {
        self.user += other.user;
        self.system += other.system;
    }

    /// The CPU time spent since `before`.
    fn since(before: Cpu) -> Cpu {
        let now = Cpu::now();
        Cpu {
            user: now.user.saturating_sub(before.user),
            system: now.system.saturating_sub(before.system),
        }
    }
}

impl std::fmt::Display for Cpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (user, system) = (self.user.as_secs_f64(), self.system.as_secs_f64());
        write!(
            f,
            "{:.1} s: user {user:.1} s, kernel {system:.1} s",
            user + system
        )
    }
}

/// Creates `n` small assets under `root`, four writers at a time.
async fn populate(assets: &AssetRepo, root: &str, n: usize) -> Result<()> {
    let mut writers = tokio::task::JoinSet::new();
    for w in 0..4 {
        let (assets, root) = (assets.clone(), root.to_string());
        writers.spawn(async move {
            for i in (w..n).step_by(4) {
                let path = item_path(&root, i, n);
                assets
                    .put_binary("default", &path, Bytes::from(path.clone()), "text/plain")
                    .await?;
            }
            anyhow::Ok(())
        });
    }
    while let Some(done) = writers.join_next().await {
        done??;
    }
    Ok(())
}

/// The assets left under `root`.
async fn remaining(assets: &AssetRepo, root: &str) -> Result<usize> {
    Ok(assets
        .list("default", root, true, None, 10, None)
        .await?
        .assets
        .len())
}

/// What the delete plugin does, without wasm: list the folder, then per
/// asset `stat`, `referrers` (kept if referenced from outside), `delete`.
async fn delete_natively(assets: &AssetRepo, root: &str) -> Result<Duration> {
    let scope = Scope {
        root: root.into(),
        excluded: vec![],
        targets: vec![],
    };
    let started = Instant::now();
    let mut paths = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = assets
            .list("default", root, true, cursor.as_deref(), 1000, Some(&scope))
            .await?;
        paths.extend(page.assets.into_iter().map(|a| a.path));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    for path in paths {
        if assets.stat("default", &path).await?.is_none() {
            continue;
        }
        let referrers = assets.referrers("default", &path).await?;
        if referrers.iter().any(|r| !scope.contains(r)) {
            bail!("{path} is referenced from outside the job");
        }
        assets.delete("default", &path).await?;
    }
    Ok(started.elapsed())
}

/// Writes `n` small files in 100 folders under `dir`, then times unlinking them.
fn unlink_files(dir: &Path, n: usize) -> Result<Duration> {
    let files: Vec<PathBuf> = (0..n)
        .map(|i| dir.join(item_path("files", i, n).trim_start_matches('/')))
        .collect();
    for file in &files {
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(file, file.to_string_lossy().as_bytes())?;
    }
    let started = Instant::now();
    for file in &files {
        std::fs::remove_file(file).with_context(|| format!("unlinking {}", file.display()))?;
    }
    Ok(started.elapsed())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_spread_over_a_hundred_folders() {
        let n = 100_000;
        assert_eq!(item_path("/c", 0, n), "/c/d000/f0000000.txt");
        assert_eq!(item_path("/c", 99_999, n), "/c/d099/f0099999.txt");
        let folders: std::collections::BTreeSet<String> = (0..n)
            .map(|i| item_path("/c", i, n)[..7].to_string())
            .collect();
        assert_eq!(folders.len(), 100);
        assert_eq!(item_path("/c", 3, 5), "/c/d003/f0000003.txt");
    }

    #[tokio::test]
    async fn zero_assets_or_rounds_are_refused_with_the_option_named() {
        for (assets, rounds, option) in [(0, 4, "--assets"), (10, 0, "--rounds")] {
            let options = DeleteBenchOptions {
                plugins: PathBuf::from("nowhere"),
                assets,
                rounds,
            };
            let error = run(options).await.unwrap_err().to_string();
            assert!(error.contains(option), "{error}");
        }
    }

    #[test]
    fn rounds_share_the_assets_evenly() {
        assert_eq!(round_sizes(100_000, 4), vec![25_000; 4]);
        assert_eq!(round_sizes(10, 4), vec![3, 3, 2, 2]);
        assert_eq!(round_sizes(2, 4), vec![1, 1]);
        assert_eq!(round_sizes(5, 0), vec![5]);
        assert_eq!(round_sizes(10, 4).iter().sum::<usize>(), 10);
    }

    #[test]
    fn cpu_time_is_read_from_the_kernel() {
        let before = Cpu::now();
        let started = Instant::now();
        let mut x = 0u64;
        // Clock ticks are 10 ms: burn a few of them in user space.
        while Cpu::since(before).user < Duration::from_millis(30) {
            for i in 0..100_000u64 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "no user time counted"
            );
        }
        let spent = Cpu::since(before);
        assert!(spent.user >= Duration::from_millis(30), "{spent}");
        assert!(spent.to_string().contains(": user "), "{spent}");
    }

    #[test]
    fn ratios_compare_times_not_rates() {
        let r = Rates {
            wasm: 500.0,
            native: 1000.0,
            unlink: 50_000.0,
        };
        assert!((r.wasm_over_native() - 2.0).abs() < 1e-9);
        assert!((r.wasm_over_unlink() - 100.0).abs() < 1e-9);
    }
}
