//! The `chaos` job type: a misbehaving plugin for tests of the host's limits.
//! Each entry of the param `tasks` becomes a task that behaves as named.
//!
//! Modes: `ok` (succeeds), `slow` (busy for `slowMs`, default 100 ms), `cpu`
//! (`work` rounds of integer arithmetic: the same CPU cost every time), `sort`
//! (sorts `work / 100` pseudo-random numbers), `loop` (spins forever), `panic`,
//! `memory` (grows linear memory without end), `stack` (recurses without end),
//! `fail` (returns a permanent error), `transient` (returns a transient error
//! that says how many `count` tasks its instance has run),
//! `invalid` (plan refuses the whole job as invalid input),
//! `undeclared` (calls a capability it did not declare), `count` (says how
//! many `count` tasks this instance has run, itself included: the host runs
//! short tasks of one job in batches on one instance).
//! The param `repeat` (default 1) plans the list that many times over (for
//! benchmarks of large queues: `{"tasks": ["slow"], "repeat": 1000000}`).

use serde::Deserialize;
use wasmq_sdk::{Capabilities, Descriptor, Error, Job, JobType, Task, TaskOutcome, assets};

struct Chaos;

/// `count` tasks run so far on this instance.
static COUNTED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    tasks: Vec<String>,
    /// How much `cpu` and `sort` tasks compute.
    #[serde(default = "default_work")]
    work: u64,
    /// How long `slow` tasks keep busy, in milliseconds.
    #[serde(default = "default_slow_ms", rename = "slowMs")]
    slow_ms: u64,
    /// How many times the list of tasks is planned.
    #[serde(default = "default_repeat")]
    repeat: u64,
}

fn default_repeat() -> u64 {
    1
}

fn default_slow_ms() -> u64 {
    100
}

fn default_work() -> u64 {
    10_000_000
}

const MODES: &[&str] = &[
    "ok",
    "slow",
    "cpu",
    "sort",
    "loop",
    "panic",
    "memory",
    "stack",
    "fail",
    "transient",
    "undeclared",
    "count",
    "invalid",
];

impl JobType for Chaos {
    fn describe() -> Descriptor {
        Descriptor::new(
            "chaos",
            env!("CARGO_PKG_VERSION"),
            &["chaos"],
            Capabilities::empty(),
        )
        .params_schema(serde_json::json!({
            "type": "object",
            "required": ["tasks"],
            "additionalProperties": false,
            "properties": {
                "tasks": { "type": "array", "items": { "enum": MODES } },
                "work": { "type": "integer", "minimum": 0 },
                "slowMs": { "type": "integer", "minimum": 0 },
                "repeat": { "type": "integer", "minimum": 1, "default": 1 }
            }
        }))
    }

    fn plan(job: &Job) -> Result<(), Error> {
        let params: Params = job.params()?;
        if let Some(bad) = params.tasks.iter().find(|m| !MODES.contains(&m.as_str())) {
            return Err(Error::invalid_input(format!(
                "params.tasks: unknown mode {bad:?}"
            )));
        }
        if params.tasks.iter().any(|m| m == "invalid") {
            return Err(Error::invalid_input(
                "params.tasks: chaos was asked to refuse this job",
            ));
        }
        let root = job.info.path.trim_end_matches('/');
        let n = params.tasks.len() as u64;
        job.add_tasks((0..params.repeat).flat_map(|r| {
            params.tasks.iter().enumerate().map(move |(i, mode)| Task {
                path: format!("{root}/{}-{mode}", r * n + i as u64),
                input: mode.as_bytes().to_vec(),
            })
        }))
    }

    fn run_task(job: &Job, task: Task) -> Result<TaskOutcome, Error> {
        match task.input.as_slice() {
            b"ok" => Ok(TaskOutcome::ok("fine")),
            b"count" => {
                let n = COUNTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                Ok(TaskOutcome::ok(format!("count {n} on this instance")))
            }
            b"cpu" => {
                let work = job.params::<Params>()?.work;
                Ok(TaskOutcome::ok(format!("computed {:x}", compute(work))))
            }
            b"sort" => {
                let work = job.params::<Params>()?.work;
                Ok(TaskOutcome::ok(format!(
                    "sorted, median {}",
                    sort(work / 100)
                )))
            }
            b"slow" => {
                let busy = std::time::Duration::from_millis(job.params::<Params>()?.slow_ms);
                let start = std::time::Instant::now();
                while start.elapsed() < busy {
                    std::hint::black_box(start);
                }
                Ok(TaskOutcome::ok("fine, slowly"))
            }
            b"loop" => spin(),
            b"panic" => panic!("chaos: asked to panic"),
            b"memory" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 16 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            b"stack" => Ok(TaskOutcome::ok(format!("depth {}", recurse(0)))),
            b"fail" => Err(Error::permanent(422, "chaos: asked to fail")),
            b"transient" => {
                let n = COUNTED.load(std::sync::atomic::Ordering::Relaxed);
                Err(Error::transient(
                    503,
                    format!("chaos: busy, try later ({n} count tasks on this instance)"),
                ))
            }
            b"undeclared" => {
                assets::delete(&task.path)?;
                Ok(TaskOutcome::ok("deleted without asking"))
            }
            other => Err(Error::permanent(
                400,
                format!("unknown mode {:?}", String::from_utf8_lossy(other)),
            )),
        }
    }
}

fn compute(rounds: u64) -> u64 {
    let mut x: u64 = 1;
    for _ in 0..rounds {
        x = std::hint::black_box(
            x.wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407),
        );
    }
    x
}

fn sort(n: u64) -> u32 {
    let mut x: u32 = 2463534242;
    let mut v: Vec<u32> = (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x
        })
        .collect();
    v.sort_unstable();
    v.get(v.len() / 2).copied().unwrap_or(0)
}

fn spin() -> ! {
    let mut x: u64 = 1;
    loop {
        x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
    }
}

/// Recurses with tiny frames, so wasm's own call stack overflows (a trap the
/// host reports) before Rust's shadow stack in linear memory does.
#[allow(unconditional_recursion)]
fn recurse(depth: u64) -> u64 {
    std::hint::black_box(recurse(depth.wrapping_add(1))).wrapping_add(1)
}

wasmq_sdk::export!(Chaos);
