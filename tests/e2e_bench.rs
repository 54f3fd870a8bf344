//! The quick modes of `wasmq bench-delete` and `wasmq bench-server` run end to end
//! (real server processes, real wrk, the real delete and chaos plugins), so the benchmark command cannot rot.

use std::process::Command;

use wasmq_e2e::{binary, plugin};

/// Runs `wasmq ARGS` and returns its standard output; fails on a non-zero exit.
fn run(args: &[&str]) -> String {
    let plugins = plugin("wasmq_chaos");
    let plugins = plugins.parent().expect("plugins dir");
    let output = Command::new(binary())
        .args(args)
        .arg("--plugins")
        .arg(plugins)
        .output()
        .expect("running wasmq");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "wasmq {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// The number right after `label` on the line that contains it.
fn figure(out: &str, label: &str) -> f64 {
    let line = out
        .lines()
        .find(|l| l.contains(label))
        .unwrap_or_else(|| panic!("no {label:?} in:\n{out}"));
    let rest = &line[line.find(label).unwrap() + label.len()..];
    rest.split_whitespace()
        .next()
        .and_then(|w| w.trim_end_matches(['x', ',']).parse().ok())
        .unwrap_or_else(|| panic!("no number after {label:?} in {line:?}"))
}

#[test]
fn bench_delete_quick_deletes_every_asset_three_ways() {
    let out = run(&["bench-delete", "--assets", "300"]);
    assert!(figure(&out, "wasm delete job (scheduler, 1 worker):") > 0.0);
    assert!(figure(&out, "native repository calls, in process:") > 0.0);
    assert!(figure(&out, "unlink of 300 files:") > 0.0);
    assert!(
        figure(&out, "ratio wasm job / native calls:") > 0.0,
        "{out}"
    );
    // The two sides alternate in four rounds of 75 assets each.
    let rounds = out
        .lines()
        .find_map(|l| l.split_once("per round: "))
        .map(|(_, ratios)| ratios.split_whitespace().count());
    assert_eq!(rounds, Some(4), "{out}");
}

#[test]
fn bench_server_quick_drives_wrk_and_reads_rss_with_a_queue() {
    let out = run(&[
        "bench-server",
        "--seconds",
        "1",
        "--connections",
        "2",
        "--queued",
        "3000",
    ]);
    assert!(figure(&out, "answered at once (202)") > 0.0, "{out}");
    assert!(
        figure(&out, "answered when the job ended (200)") > 0.0,
        "{out}"
    );
    assert!(out.contains(" 0 not 2xx, 0 errors"), "{out}");
    assert!(figure(&out, "with the queue") > 1.0, "{out}");
    let line = out.lines().find(|l| l.starts_with("planned and paused"));
    let queued: f64 = line
        .and_then(|l| {
            l.split("; ")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no queued tasks in:\n{out}"));
    assert!((2990.0..=3000.0).contains(&queued), "{out}");
}
