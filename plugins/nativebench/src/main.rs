//! `nativebench`: runs the plugins' pure crates natively over a corpus and prints
//! the CPU time per file as JSON, for comparison with the same code run as wasm (`wasmq bench-assets`).
//!
//! Usage: `nativebench images DIR [--repeat N]`. Every file of DIR goes through
//! `imaging::optimize` with the default options (those of an `image-optimize`
//! job with no params); the figure is the least thread CPU time over N runs.
//! Output: `[{"file", "format", "inputBytes", "outputBytes", "cpuNs"} or {"file", "error", "cpuNs"}]`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

fn thread_cpu_time() -> Duration {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into the valid pointer it is given.
    let status = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
    assert_eq!(status, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed");
    Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
}

/// The files of `dir`, sorted by name.
fn files(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    Ok(files)
}

/// One file through `imaging::optimize`, the best of `repeat` runs.
fn image(path: &Path, repeat: u32) -> Result<Value, String> {
    let data = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let options = imaging::Options::default();
    let mut best = Duration::MAX;
    let mut result = None;
    for _ in 0..repeat {
        let started = thread_cpu_time();
        let outcome = imaging::optimize(&data, &options);
        best = best.min(thread_cpu_time() - started);
        result = Some(outcome);
    }
    let file = path.file_name().map(|n| n.to_string_lossy().into_owned());
    Ok(match result.expect("at least one run") {
        Ok(out) => json!({
            "file": file,
            "format": out.input_format.extension(),
            "inputBytes": data.len(),
            "outputBytes": out.data.len(),
            "cpuNs": best.as_nanos() as u64,
        }),
        Err(e) => json!({ "file": file, "error": e.to_string(), "cpuNs": best.as_nanos() as u64 }),
    })
}

fn run(args: &[String]) -> Result<Value, String> {
    let usage = "usage: nativebench images DIR [--repeat N]";
    let (Some(kind), Some(dir)) = (args.first(), args.get(1)) else {
        return Err(usage.into());
    };
    let repeat = match (args.get(2).map(String::as_str), args.get(3)) {
        (None, _) => 3,
        (Some("--repeat"), Some(n)) => n.parse().map_err(|_| format!("--repeat {n:?}"))?,
        _ => return Err(usage.into()),
    };
    match kind.as_str() {
        "images" => {
            let rows = files(Path::new(dir))?
                .iter()
                .map(|f| image(f, repeat.max(1)))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Value::Array(rows))
        }
        _ => Err(usage.into()),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(json) => println!("{json:#}"),
        Err(e) => {
            eprintln!("nativebench: {e}");
            std::process::exit(2);
        }
    }
}
