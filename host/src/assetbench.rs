//! `wasmq bench-assets`: the image-optimize and pdf-rip components run in process over
//! the image and PDF corpora against the same crates run natively, CPU time per task, and PNG sizes against oxipng.
//!
//! Each corpus file (each PDF page for pdf-rip) is one `run-task` call of the
//! component (epoch metering, default params: a rendition in the file's own
//! format; a 72 DPI PNG and the text of the page), and its figure is the
//! call's thread CPU time, the least over `repeat` rounds that alternate the
//! native side (best of 3 runs) and the wasm side (best of 2 after a warm-up
//! run). The wasm calls of one corpus share an instance, as the scheduler runs
//! one job's tasks (a session kept between its batches); each is also run on
//! a fresh instance, and that ratio is printed besides. The
//! native figures come from `nativebench images DIR` and `nativebench pdfs DIR`
//! (plugins/nativebench: the `imaging` and `pdfrip-core` crates compiled for
//! the host, the same code and options). The ratio wasm/native is printed per
//! file, per input format, per PDF and overall (what both sides read; goal: at
//! most 1.5). The PDF corpus is the `pdfs` folder next to the image corpus
//! (scripts/corpus-pdfs.sh); PDFs that do not parse are skipped.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::capabilities::{CallCtx, JobContext, Phase};
use crate::paths::Scope;
use crate::runtime::bindings::wasmq::plugin::types::{Capabilities, JobInfo, Task};
use crate::runtime::{Limits, Loaded, Metering, Runtime, RuntimeConfig, Session};
use crate::server;

/// Where everything is.
#[derive(Debug, Clone)]
pub struct AssetBenchOptions {
    /// Where `wasmq_image_optimize.wasm` and `wasmq_pdf_rip.wasm` are.
    pub plugins: PathBuf,
    /// The image corpus (scripts/corpus-images.sh); the PDF corpus is `pdfs` next to it.
    pub corpus: PathBuf,
    /// The native `nativebench` binary.
    pub native: PathBuf,
    /// A `nativebench` that honors `RUST_STD_DETECT_UNSTABLE`
    /// (scripts/nativebench-narrow.sh), run again with AVX hidden: the native
    /// side with wasm's 128-bit vectors, printed beside the main ratio.
    pub narrow: Option<PathBuf>,
    /// The oxipng command line, if installed (scripts/tools-oxipng.sh).
    pub oxipng: PathBuf,
    /// Runs per file; the least CPU time counts.
    pub repeat: u32,
}

/// One task's wasm figures: the least CPU time on the job's warm instance (as
/// the scheduler runs a job's tasks) and on a fresh instance, and the outcome.
#[derive(Debug, Clone, PartialEq)]
struct Figure {
    warm: Duration,
    fresh: Duration,
    outcome: String,
}

/// One file's figures.
#[derive(Debug, Clone, PartialEq)]
struct Row {
    file: String,
    format: String,
    wasm: Duration,
    /// The wasm CPU time on a fresh instance.
    fresh: Duration,
    native: Duration,
    /// The native CPU time with AVX hidden, if measured.
    narrow: Option<Duration>,
    output_bytes: u64,
}

/// The wasm/native ratio of CPU time, per input format and overall ("all").
fn ratios(rows: &[Row]) -> BTreeMap<String, (Duration, Duration, f64)> {
    let mut sums: BTreeMap<String, (Duration, Duration)> = BTreeMap::new();
    for row in rows {
        for key in [row.format.clone(), "all".to_string()] {
            let entry = sums.entry(key).or_default();
            entry.0 += row.wasm;
            entry.1 += row.native;
        }
    }
    sums.into_iter()
        .map(|(k, (wasm, native))| {
            let ratio = wasm.as_secs_f64() / native.as_secs_f64().max(1e-9);
            (k, (wasm, native, ratio))
        })
        .collect()
}

/// Over the rows measured with AVX hidden too: the sums of wasm and narrow
/// native CPU time and their ratio.
fn narrow_ratio(
    rows: impl Iterator<Item = (Duration, Option<Duration>)>,
) -> Option<(Duration, Duration, f64)> {
    let (mut wasm, mut narrow, mut any) = (Duration::ZERO, Duration::ZERO, false);
    for (w, n) in rows {
        if let Some(n) = n {
            (wasm, narrow, any) = (wasm + w, narrow + n, true);
        }
    }
    any.then(|| {
        (
            wasm,
            narrow,
            wasm.as_secs_f64() / narrow.as_secs_f64().max(1e-9),
        )
    })
}

/// Prints the ratio against the native side with AVX hidden, if it was measured;
/// `what` says what "all" counts (pages), or is empty.
fn print_narrow(rows: impl Iterator<Item = (Duration, Option<Duration>)>, what: &str) {
    if let Some((wasm, narrow, ratio)) = narrow_ratio(rows) {
        println!(
            "native with AVX hidden (128-bit SIMD, as wasm has): all {what}  wasm {:>9.1} ms  native {:>9.1} ms  ratio {ratio:.2}",
            ms(wasm),
            ms(narrow)
        );
    }
}

/// The x86 extensions whose use `--native-narrow` hides from the native crates:
/// every one wider than wasm's 128-bit SIMD, and FMA (which wasm lacks too).
const WIDE: &str = "avx avx2 fma f16c avx512f avx512cd avx512er avx512pf avx512bw avx512dq \
avx512vl avx512ifma avx512vbmi avx512vpopcntdq avx512vbmi2 gfni vaes vpclmulqdq avx512vnni \
avx512bitalg avx512bf16 avx512vp2intersect avx512fp16 avxvnni avxifma avxneconvert avxvnniint8 avxvnniint16";

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

impl AssetBenchOptions {
    /// The PDF corpus: `pdfs` next to the image corpus (target/corpus/pdfs).
    fn pdfs(&self) -> PathBuf {
        self.corpus.with_file_name("pdfs")
    }
}

/// Runs the benchmark and prints its figures.
pub async fn run(options: AssetBenchOptions) -> Result<()> {
    if !options.native.is_file() {
        bail!(
            "{} not found: build it with `cd plugins && cargo build --release -p nativebench --features native`",
            options.native.display()
        );
    }
    if !options.corpus.is_dir() {
        bail!(
            "{} not found: run scripts/corpus-images.sh",
            options.corpus.display()
        );
    }
    if let Some(narrow) = &options.narrow {
        check_narrow(narrow)?;
    }
    let dir = std::env::temp_dir().join(format!("wasmq-bench-assets-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let outcome = bench(&options, &dir).await;
    let _ = std::fs::remove_dir_all(&dir);
    outcome
}

/// The runtime and the data both components work on.
struct Setup {
    runtime: Runtime,
    store: crate::store::Store,
    assets: crate::assets::AssetRepo,
}

impl Setup {
    async fn new(dir: &Path) -> Result<Setup> {
        let runtime = Runtime::new(&RuntimeConfig {
            cache_dir: dir.join("cache"),
            instance_slots: 4,
            max_memory: 512 << 20,
        })?;
        let (store, assets) = server::open_data(&dir.join("data"), None).await?;
        Ok(Setup {
            runtime,
            store,
            assets,
        })
    }

    /// Loads `wasmq_{name}.wasm` (name with `_` for `-`) from the plugins directory.
    fn load(&self, options: &AssetBenchOptions, name: &str) -> Result<Loaded> {
        let file = options
            .plugins
            .join(format!("wasmq_{}.wasm", name.replace('-', "_")));
        let bytes = std::fs::read(&file).with_context(|| {
            format!(
                "reading {}: build the plugins first (wasmq plugin build plugins --out DIR)",
                file.display()
            )
        })?;
        Ok(self.runtime.load(&bytes)?)
    }

    /// Imports `corpus` under `root` and returns a job of type `name` over it, with no params.
    async fn job(&self, name: &str, corpus: &Path, root: &str) -> Result<JobContext> {
        self.assets
            .import_dir("default", corpus, root)
            .await
            .with_context(|| format!("importing {}", corpus.display()))?;
        Ok(JobContext {
            info: JobInfo {
                id: format!("bench-{name}"),
                job_type: name.into(),
                tenant: "default".into(),
                path: root.into(),
                excluded_paths: vec![],
                params: "{}".into(),
                created_by: "bench".into(),
            },
            scope: Scope {
                root: root.into(),
                excluded: vec![],
                targets: vec![],
            },
            declared: Capabilities::READ | Capabilities::WRITE | Capabilities::METADATA,
            plugin: name.into(),
            store: self.store.clone(),
            assets: self.assets.clone(),
            host_timeout: Duration::from_secs(30),
        })
    }

    /// A session of `plugin` for `context`'s tasks, with the benchmark's limits.
    fn session(&self, plugin: &Loaded, context: &JobContext) -> Session {
        let limits = Limits {
            metering: Metering::Epoch,
            wall: Duration::from_secs(600),
            memory: 512 << 20,
            ..Limits::default()
        };
        self.runtime.session(
            plugin,
            CallCtx::for_job(context.clone(), Phase::Task),
            limits,
        )
    }

    /// The least CPU time of `repeat` calls of `task` on the job's `session`
    /// and on fresh instances (after one unmeasured call of each, which warms
    /// the caches), and the last call's outcome.
    async fn best_of(
        &self,
        plugin: &Loaded,
        context: &JobContext,
        session: &mut Session,
        task: &Task,
        repeat: u32,
    ) -> Result<Figure> {
        let mut best = Figure {
            warm: Duration::MAX,
            fresh: Duration::MAX,
            outcome: String::new(),
        };
        for run in 0..=repeat {
            let (warm, message) = run_task(session, context, task).await?;
            let (fresh, _) = run_task(&mut self.session(plugin, context), context, task).await?;
            if run > 0 {
                best.warm = best.warm.min(warm);
                best.fresh = best.fresh.min(fresh);
            }
            best.outcome = message;
        }
        Ok(best)
    }
}

async fn bench(options: &AssetBenchOptions, dir: &Path) -> Result<()> {
    let setup = Setup::new(dir).await?;
    // Rounds alternate the two sides, so a slow spell of the machine hits both.
    let mut native: BTreeMap<String, Value> = BTreeMap::new();
    let mut narrow: BTreeMap<String, Value> = BTreeMap::new();
    let mut wasm: BTreeMap<String, Figure> = BTreeMap::new();
    for _ in 0..options.repeat.max(1) {
        for row in native_figures(&options.native, None, "images", &options.corpus)? {
            if let Some(file) = row["file"].as_str() {
                keep_least_native(&mut native, file.to_string(), row.clone());
            }
        }
        if let Some(bin) = &options.narrow {
            for row in native_figures(bin, Some(WIDE), "images", &options.corpus)? {
                if let Some(file) = row["file"].as_str() {
                    keep_least_native(&mut narrow, file.to_string(), row.clone());
                }
            }
        }
        for (file, figure) in wasm_figures(options, &setup).await? {
            keep_least(&mut wasm, file, figure);
        }
    }

    println!(
        "== image-optimize: CPU per file, wasm (in process, epoch metering) vs native; best of {}",
        options.repeat
    );
    println!(
        "{:<24} {:<5} {:>10} {:>10} {:>7}  outcome",
        "file", "fmt", "wasm ms", "native ms", "ratio"
    );
    let mut rows = Vec::new();
    for (file, figure) in &wasm {
        let Some(n) = native.get(file) else {
            continue;
        };
        let (cpu, outcome) = (&figure.warm, &figure.outcome);
        let native_cpu = Duration::from_nanos(n["cpuNs"].as_u64().unwrap_or(0));
        let ratio = cpu.as_secs_f64() / native_cpu.as_secs_f64().max(1e-9);
        println!(
            "{file:<24} {:<5} {:>10.2} {:>10.2} {ratio:>7.2}  {outcome}",
            n["format"].as_str().unwrap_or("-"),
            ms(*cpu),
            ms(native_cpu),
        );
        if let Some(format) = n["format"].as_str() {
            rows.push(Row {
                file: file.clone(),
                format: format.to_string(),
                wasm: *cpu,
                fresh: figure.fresh,
                native: native_cpu,
                narrow: cpu_of(narrow.get(file)),
                output_bytes: n["outputBytes"].as_u64().unwrap_or(0),
            });
        }
    }
    println!("== image-optimize wasm/native CPU ratio over the files both decoded (goal <= 1.5)");
    for (format, (wasm, native, ratio)) in ratios(&rows) {
        println!(
            "{format:<5} wasm {:>9.1} ms  native {:>9.1} ms  ratio {ratio:.2}",
            ms(wasm),
            ms(native)
        );
    }
    print_narrow(rows.iter().map(|r| (r.wasm, r.narrow)), "");
    let fresh: Vec<Row> = rows
        .iter()
        .map(|r| Row {
            wasm: r.fresh,
            ..r.clone()
        })
        .collect();
    for (format, (wasm, native, ratio)) in ratios(&fresh) {
        println!(
            "fresh instance per file: {format:<5} wasm {:>9.1} ms  native {:>9.1} ms  ratio {ratio:.2}",
            ms(wasm),
            ms(native)
        );
    }
    let pdfs = options.pdfs();
    if pdfs.is_dir() {
        pdf_figures(options, &setup, &pdfs).await?;
    } else {
        println!(
            "== pdf-rip: {} not found: run scripts/corpus-pdfs.sh",
            pdfs.display()
        );
    }
    png_sizes(options, dir, &rows)
}

/// Keeps the least CPU times per key, and the latest outcome.
fn keep_least<K: Ord>(best: &mut BTreeMap<K, Figure>, key: K, figure: Figure) {
    let kept = best.entry(key).or_insert_with(|| figure.clone());
    kept.warm = kept.warm.min(figure.warm);
    kept.fresh = kept.fresh.min(figure.fresh);
    kept.outcome = figure.outcome;
}

/// Keeps the `nativebench` row with the least `cpuNs` per key (rows without figures stay as they are).
fn keep_least_native<K: Ord>(best: &mut BTreeMap<K, Value>, key: K, row: Value) {
    let cpu = |r: &Value| r["cpuNs"].as_u64().unwrap_or(u64::MAX);
    match best.get(&key) {
        Some(kept) if cpu(kept) <= cpu(&row) => {}
        _ => {
            best.insert(key, row);
        }
    }
}

/// A row's `cpuNs`, if it has one.
fn cpu_of(row: Option<&Value>) -> Option<Duration> {
    row.and_then(|r| r["cpuNs"].as_u64())
        .map(Duration::from_nanos)
}

/// The output of `bin ARGS` as JSON, with the extensions `hide` hidden from it.
fn nativebench(bin: &Path, hide: Option<&str>, args: &[&std::ffi::OsStr]) -> Result<Value> {
    let mut command = Command::new(bin);
    command.args(args);
    if let Some(hide) = hide {
        command.env("RUST_STD_DETECT_UNSTABLE", hide);
    }
    let output = command
        .output()
        .with_context(|| format!("running {}", bin.display()))?;
    if !output.status.success() {
        bail!(
            "{} failed: {}",
            bin.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    serde_json::from_slice(&output.stdout).context("reading nativebench's JSON")
}

/// The rows of `nativebench KIND CORPUS`, each the best of three runs (the first warms up).
fn native_figures(bin: &Path, hide: Option<&str>, kind: &str, corpus: &Path) -> Result<Vec<Value>> {
    let args = [
        kind.as_ref(),
        corpus.as_os_str(),
        "--repeat".as_ref(),
        "3".as_ref(),
    ];
    let rows = nativebench(bin, hide, &args)?;
    serde_json::from_value(rows).context("reading nativebench's rows")
}

/// Refuses a `--native-narrow` binary that still sees AVX when told not to (a
/// plain build ignores `RUST_STD_DETECT_UNSTABLE`).
fn check_narrow(bin: &Path) -> Result<()> {
    let seen = nativebench(bin, Some(WIDE), &["simd".as_ref()])?;
    if seen["avx"] != false || seen["avx2"] != false {
        bail!(
            "{} still sees AVX with RUST_STD_DETECT_UNSTABLE set ({seen}): build it with scripts/nativebench-narrow.sh",
            bin.display()
        );
    }
    Ok(())
}

/// Every corpus file through the component: (least CPU time, outcome) by file name.
async fn wasm_figures(
    options: &AssetBenchOptions,
    setup: &Setup,
) -> Result<BTreeMap<String, Figure>> {
    let plugin = setup.load(options, "image-optimize")?;
    let root = "/content/bench";
    let context = setup.job("image-optimize", &options.corpus, root).await?;
    let mut session = setup.session(&plugin, &context);
    let mut names: Vec<String> = std::fs::read_dir(&options.corpus)?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut figures = BTreeMap::new();
    for name in names {
        let task = Task {
            path: format!("{root}/{name}"),
            input: vec![],
        };
        let figure = setup
            .best_of(&plugin, &context, &mut session, &task, 2)
            .await?;
        figures.insert(name, figure);
    }
    Ok(figures)
}

/// One PDF page's figures.
#[derive(Debug, Clone, PartialEq)]
struct PageRow {
    file: String,
    wasm: Duration,
    /// The wasm CPU time on a fresh instance.
    fresh: Duration,
    native: Duration,
    /// The native CPU time with AVX hidden, if measured.
    narrow: Option<Duration>,
}

/// The wasm/native ratio of CPU time per PDF and overall ("all"): (pages, wasm, native, ratio).
fn pdf_ratios(rows: &[PageRow]) -> BTreeMap<String, (usize, Duration, Duration, f64)> {
    let mut sums: BTreeMap<String, (usize, Duration, Duration)> = BTreeMap::new();
    for row in rows {
        for key in [row.file.clone(), "all".to_string()] {
            let entry = sums.entry(key).or_default();
            entry.0 += 1;
            entry.1 += row.wasm;
            entry.2 += row.native;
        }
    }
    sums.into_iter()
        .map(|(k, (pages, wasm, native))| {
            let ratio = wasm.as_secs_f64() / native.as_secs_f64().max(1e-9);
            (k, (pages, wasm, native, ratio))
        })
        .collect()
}

/// Every page that `nativebench pdfs` read, through the pdf-rip component (one
/// task per page, as its `plan` makes them), and the ratios per PDF and overall.
async fn pdf_figures(options: &AssetBenchOptions, setup: &Setup, corpus: &Path) -> Result<()> {
    let plugin = setup.load(options, "pdf-rip")?;
    let root = "/content/bench-pdfs";
    let context = setup.job("pdf-rip", corpus, root).await?;
    let mut session = setup.session(&plugin, &context);
    // Rounds alternate the two sides, as for the images.
    let mut order: Vec<Value> = Vec::new();
    let mut native: BTreeMap<(String, u64), Value> = BTreeMap::new();
    let mut narrow: BTreeMap<(String, u64), Value> = BTreeMap::new();
    let mut wasm: BTreeMap<(String, u64), Figure> = BTreeMap::new();
    for round in 0..options.repeat.max(1) {
        if let Some(bin) = &options.narrow {
            for n in native_figures(bin, Some(WIDE), "pdfs", corpus)? {
                if let (Some(file), Some(page)) = (n["file"].as_str(), n["page"].as_u64()) {
                    keep_least_native(&mut narrow, (file.to_string(), page), n.clone());
                }
            }
        }
        let rows = native_figures(&options.native, None, "pdfs", corpus)?;
        for n in &rows {
            let file = n["file"].as_str().unwrap_or("-").to_string();
            let Some(page) = n["page"].as_u64() else {
                continue;
            };
            keep_least_native(&mut native, (file.clone(), page), n.clone());
            let task = Task {
                path: format!("{root}/{file}"),
                input: serde_json::to_vec(&serde_json::json!({ "page": page }))?,
            };
            let figure = setup
                .best_of(&plugin, &context, &mut session, &task, 2)
                .await?;
            keep_least(&mut wasm, (file, page), figure);
        }
        if round == 0 {
            order = rows;
        }
    }
    println!(
        "== pdf-rip: CPU per page (parse, 72 DPI PNG, text), wasm vs native; best of {}",
        options.repeat
    );
    println!(
        "{:<36} {:>4} {:>10} {:>10} {:>7}  outcome",
        "file", "page", "wasm ms", "native ms", "ratio"
    );
    let mut rows = Vec::new();
    for n in &order {
        let file = n["file"].as_str().unwrap_or("-");
        let key = (file.to_string(), n["page"].as_u64().unwrap_or(0));
        let (Some(page), Some(native_ns), Some(figure)) = (
            n["page"].as_u64(),
            native.get(&key).and_then(|b| b["cpuNs"].as_u64()),
            wasm.get(&key),
        ) else {
            println!(
                "{file:<36} skipped: {}",
                n["error"].as_str().unwrap_or("no figures")
            );
            continue;
        };
        let native = Duration::from_nanos(native_ns);
        let ratio = figure.warm.as_secs_f64() / native.as_secs_f64().max(1e-9);
        println!(
            "{file:<36} {page:>4} {:>10.2} {:>10.2} {ratio:>7.2}  {}",
            ms(figure.warm),
            ms(native),
            figure.outcome
        );
        rows.push(PageRow {
            file: file.to_string(),
            wasm: figure.warm,
            fresh: figure.fresh,
            native,
            narrow: cpu_of(narrow.get(&key)),
        });
    }
    println!("== pdf-rip wasm/native CPU ratio per PDF and overall (goal <= 1.5)");
    let mut ratios: Vec<_> = pdf_ratios(&rows).into_iter().collect();
    // The overall figure last.
    ratios.sort_by_key(|(file, _)| file == "all");
    for (file, (pages, wasm, native, ratio)) in ratios {
        println!(
            "{file:<36} {pages:>3} pages  wasm {:>9.1} ms  native {:>9.1} ms  ratio {ratio:.2}",
            ms(wasm),
            ms(native)
        );
    }
    let pages = rows.iter().filter(|r| r.narrow.is_some()).count();
    print_narrow(
        rows.iter().map(|r| (r.wasm, r.narrow)),
        &format!("{pages:>3} pages"),
    );
    let fresh: Vec<PageRow> = rows
        .iter()
        .map(|r| PageRow {
            wasm: r.fresh,
            ..r.clone()
        })
        .collect();
    if let Some((pages, wasm, native, ratio)) = pdf_ratios(&fresh).remove("all") {
        println!(
            "fresh instance per page: all {pages:>3} pages  wasm {:>9.1} ms  native {:>9.1} ms  ratio {ratio:.2}",
            ms(wasm),
            ms(native)
        );
    }
    Ok(())
}

/// One `run-task` call in `session` (on its instance, or a fresh one if it
/// has none): its CPU time and "code message".
async fn run_task(
    session: &mut Session,
    context: &JobContext,
    task: &Task,
) -> Result<(Duration, String)> {
    let info = context.info.clone();
    let path = task.path.clone();
    let task = task.clone();
    let call = session
        .call(Box::new(move |store, instance| {
            Box::pin(async move {
                instance
                    .wasmq_plugin_plugin()
                    .call_run_task(&mut *store, &info, &task)
                    .await
            })
        }))
        .await;
    let message = match call.result {
        Ok(Ok(outcome)) => format!("{} {}", outcome.code, outcome.message),
        Ok(Err(error)) => format!("{} {}", error.code, error.message),
        Err(trap) => bail!("{path}: the call failed: {trap}"),
    };
    Ok((call.cpu, message))
}

/// Our PNG output against `oxipng -o 2` (its default level) on the PNG files.
fn png_sizes(options: &AssetBenchOptions, dir: &Path, rows: &[Row]) -> Result<()> {
    println!("== PNG size: imaging (default effort) vs `oxipng -o 2`");
    if !options.oxipng.is_file() {
        println!(
            "{} not found: run scripts/tools-oxipng.sh",
            options.oxipng.display()
        );
        return Ok(());
    }
    let (mut ours_total, mut theirs_total) = (0u64, 0u64);
    for row in rows.iter().filter(|r| r.format == "png") {
        let input = options.corpus.join(&row.file);
        let out = dir.join(format!("oxipng-{}", row.file));
        let status = Command::new(&options.oxipng)
            .args(["-q", "-o", "2", "--out"])
            .arg(&out)
            .arg(&input)
            .status()
            .with_context(|| format!("running {}", options.oxipng.display()))?;
        if !status.success() {
            println!("{:<24} oxipng failed ({status})", row.file);
            continue;
        }
        let original = std::fs::metadata(&input)?.len();
        let theirs = std::fs::metadata(&out)?.len();
        ours_total += row.output_bytes;
        theirs_total += theirs;
        println!(
            "{:<24} original {original:>8}  imaging {:>8}  oxipng {theirs:>8}  imaging/oxipng {:.3}",
            row.file,
            row.output_bytes,
            row.output_bytes as f64 / theirs as f64
        );
    }
    if theirs_total > 0 {
        println!(
            "total: imaging {ours_total} bytes, oxipng {theirs_total} bytes, imaging/oxipng {:.3}",
            ours_total as f64 / theirs_total as f64
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(format: &str, wasm_ms: u64, native_ms: u64) -> Row {
        Row {
            file: format!("x.{format}"),
            format: format.into(),
            wasm: Duration::from_millis(wasm_ms),
            fresh: Duration::ZERO,
            native: Duration::from_millis(native_ms),
            narrow: None,
            output_bytes: 1,
        }
    }

    #[test]
    fn ratios_are_sums_per_format_and_overall() {
        let r = ratios(&[row("png", 30, 20), row("png", 10, 20), row("jpg", 50, 10)]);
        assert_eq!(r.len(), 3);
        assert!((r["png"].2 - 1.0).abs() < 1e-9);
        assert!((r["jpg"].2 - 5.0).abs() < 1e-9);
        assert!((r["all"].2 - 1.8).abs() < 1e-9);
        assert_eq!(r["all"].0, Duration::from_millis(90));
    }

    #[test]
    fn pdf_ratios_are_sums_per_pdf_and_overall() {
        let page = |file: &str, wasm_ms: u64, native_ms: u64| PageRow {
            file: file.into(),
            wasm: Duration::from_millis(wasm_ms),
            fresh: Duration::ZERO,
            native: Duration::from_millis(native_ms),
            narrow: None,
        };
        let r = pdf_ratios(&[
            page("a.pdf", 4, 2),
            page("a.pdf", 2, 1),
            page("b.pdf", 3, 3),
        ]);
        assert_eq!(r.len(), 3);
        assert_eq!(r["a.pdf"].0, 2);
        assert!((r["a.pdf"].3 - 2.0).abs() < 1e-9);
        assert!((r["b.pdf"].3 - 1.0).abs() < 1e-9);
        assert_eq!(r["all"].0, 3);
        assert!((r["all"].3 - 1.5).abs() < 1e-9);
    }

    /// A stand-in for `nativebench` that answers `simd` with `json`.
    fn fake_nativebench(dir: &Path, json: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let bin = dir.join("nativebench");
        std::fs::write(&bin, format!("#!/bin/sh\necho '{json}'\n")).unwrap();
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        bin
    }

    #[test]
    fn a_narrow_binary_that_still_sees_avx_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let plain = fake_nativebench(dir.path(), r#"{"avx": true, "avx2": true}"#);
        let refused = check_narrow(&plain).unwrap_err().to_string();
        assert!(refused.contains("still sees AVX"), "{refused}");
        assert!(
            refused.contains("scripts/nativebench-narrow.sh"),
            "{refused}"
        );

        let narrow = tempfile::tempdir().unwrap();
        let bin = fake_nativebench(narrow.path(), r#"{"avx": false, "avx2": false}"#);
        assert!(check_narrow(&bin).is_ok());
        let missing = check_narrow(&dir.path().join("absent")).unwrap_err();
        assert!(format!("{missing:#}").contains("running"), "{missing:#}");
    }

    #[test]
    fn the_narrow_ratio_counts_only_rows_measured_with_avx_hidden() {
        let ms = Duration::from_millis;
        assert_eq!(narrow_ratio([(ms(5), None)].into_iter()), None);
        let (wasm, narrow, ratio) =
            narrow_ratio([(ms(6), Some(ms(4))), (ms(9), None), (ms(3), Some(ms(2)))].into_iter())
                .unwrap();
        assert_eq!((wasm, narrow), (ms(9), ms(6)));
        assert!((ratio - 1.5).abs() < 1e-9);
    }
}
