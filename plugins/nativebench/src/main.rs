//! `nativebench`: runs the plugins' pure crates natively over a corpus and prints
//! the CPU time per file (or PDF page) as JSON, for comparison with the same code run as wasm (`wasmq bench-assets`).
//!
//! Usage: `nativebench images DIR [--repeat N]`. Every file of DIR goes through
//! `imaging::optimize` with the default options (those of an `image-optimize`
//! job with no params); the figure is the least thread CPU time over N runs.
//! Output: `[{"file", "format", "inputBytes", "outputBytes", "cpuNs"} or {"file", "error", "cpuNs"}]`.
//!
//! Usage: `nativebench pdfs DIR [--repeat N]`. Every page of every `.pdf` file
//! of DIR gets the work of one `pdf-rip` task with no params: parse the PDF,
//! render the page at 72 DPI to PNG, extract its text; the figure is the least
//! thread CPU time over N runs of that work.
//! Output: `[{"file", "page", "pngBytes", "textChars", "cpuNs"} or {"file", "error"}]`.
//!
//! Usage: `nativebench simd`: which x86 vector extensions the crates' run-time
//! checks see, as JSON (`{"avx": true, "avx2": true, "fma": true, "avx512f": false}`).
//! A build whose standard library honors `RUST_STD_DETECT_UNSTABLE`
//! (scripts/nativebench-narrow.sh) can be told to see none of them.

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

/// What one `pdf-rip` task does for page `page`, natively: (PNG bytes, text characters).
fn pdf_page(data: &[u8], page: usize) -> Result<(usize, usize), pdfrip_core::Error> {
    let doc = pdfrip_core::Document::parse(data)?;
    let image = doc.render_png(page, 72.0, pdfrip_core::DEFAULT_MAX_PIXELS)?;
    let text = doc.text(page)?;
    Ok((image.png.len(), text.chars().count()))
}

/// Every page of one PDF, each the best of `repeat` runs; one error row if it does not parse.
fn pdf(path: &Path, repeat: u32) -> Result<Vec<Value>, String> {
    let data = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let file = path.file_name().map(|n| n.to_string_lossy().into_owned());
    let count = match pdfrip_core::page_count(&data) {
        Ok(count) => count,
        Err(e) => return Ok(vec![json!({ "file": file, "error": e.to_string() })]),
    };
    let mut rows = Vec::new();
    for page in 1..=count {
        let mut best = Duration::MAX;
        let mut result = None;
        for _ in 0..repeat {
            let started = thread_cpu_time();
            let outcome = pdf_page(&data, page);
            best = best.min(thread_cpu_time() - started);
            result = Some(outcome);
        }
        rows.push(match result.expect("at least one run") {
            Ok((png_bytes, text_chars)) => json!({
                "file": file,
                "page": page,
                "pngBytes": png_bytes,
                "textChars": text_chars,
                "cpuNs": best.as_nanos() as u64,
            }),
            Err(e) => json!({ "file": file, "page": page, "error": e.to_string() }),
        });
    }
    Ok(rows)
}

/// The x86 vector extensions that run-time feature checks report.
#[cfg(target_arch = "x86_64")]
fn simd() -> Value {
    json!({
        "avx": std::arch::is_x86_feature_detected!("avx"),
        "avx2": std::arch::is_x86_feature_detected!("avx2"),
        "fma": std::arch::is_x86_feature_detected!("fma"),
        "avx512f": std::arch::is_x86_feature_detected!("avx512f"),
    })
}

#[cfg(not(target_arch = "x86_64"))]
fn simd() -> Value {
    json!({})
}

fn run(args: &[String]) -> Result<Value, String> {
    let usage = "usage: nativebench images|pdfs DIR [--repeat N] | nativebench simd";
    if args == ["simd"] {
        return Ok(simd());
    }
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
        "pdfs" => {
            let mut rows = Vec::new();
            for file in files(Path::new(dir))? {
                if file
                    .extension()
                    .is_some_and(|e| e.eq_ignore_ascii_case("pdf"))
                {
                    rows.extend(pdf(&file, repeat.max(1))?);
                }
            }
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
