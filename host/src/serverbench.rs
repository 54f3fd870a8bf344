//! `wasmq bench-server`: figures of the real `wasmq serve` process: job submission over HTTP
//! driven by `wrk` (rate, p50/p99 latency) and the server's RSS with a large queue of tasks.
//!
//! Each measurement starts its own server process (this executable, `serve`)
//! on a fresh data directory with the chaos plugin, and stops it afterwards.
//! Submission: `wrk` POSTs `{"type": "chaos", "params": {"tasks": ["ok"]}}`
//! (one trivial task) to `/api/v1/jobs` for a fixed time, once answered
//! at once (202, `--sync-threshold 0`; the jobs run behind) and once with
//! the default threshold (the answer waits until the job ended). Queue: one
//! chaos job plans `queued` tasks (`repeat`), is paused after its first
//! task, and the server's RSS is read from `/proc/PID/status`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use serde_json::{Value, json};

/// What to benchmark with.
pub struct ServerBenchOptions {
    /// Where `wasmq_chaos.wasm` is (built from plugins/).
    pub plugins: PathBuf,
    /// The `wrk` command; the submission figures are skipped if it is missing.
    pub wrk: PathBuf,
    /// How long each `wrk` run lasts.
    pub duration: Duration,
    /// `wrk` connections.
    pub connections: u32,
    /// How many tasks the queued job plans.
    pub queued: u64,
}

/// The figures one `wrk` run printed (see [`LUA_DONE`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WrkFigures {
    pub requests: u64,
    pub duration: Duration,
    pub p50: Duration,
    pub p99: Duration,
    /// Answers that were not 2xx or 3xx.
    pub non_2xx: u64,
    /// Connect, read, write errors and timeouts.
    pub errors: u64,
}

impl WrkFigures {
    /// Requests per second.
    pub fn rate(&self) -> f64 {
        self.requests as f64 / self.duration.as_secs_f64().max(1e-9)
    }
}

/// The `done` hook of the wrk script: one line of figures on standard output.
const LUA_DONE: &str = r#"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("wrk-figures requests=%d duration_us=%d p50_us=%d p99_us=%d non2xx=%d errors=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.status, e.connect + e.read + e.write + e.timeout))
end
"#;

/// The wrk script that POSTs `body` with `token`.
fn wrk_script(body: &Value, token: &str) -> String {
    // Lua long brackets need no escaping of the JSON inside.
    format!(
        "wrk.method = \"POST\"\nwrk.body = [==[{body}]==]\n\
         wrk.headers[\"Content-Type\"] = \"application/json\"\n\
         wrk.headers[\"Authorization\"] = \"Bearer {token}\"\n{LUA_DONE}"
    )
}

/// Reads the `wrk-figures` line out of wrk's output.
pub fn parse_wrk(output: &str) -> Option<WrkFigures> {
    let line = output.lines().find(|l| l.starts_with("wrk-figures "))?;
    let field = |name: &str| -> Option<u64> {
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))?
            .parse()
            .ok()
    };
    Some(WrkFigures {
        requests: field("requests")?,
        duration: Duration::from_micros(field("duration_us")?),
        p50: Duration::from_micros(field("p50_us")?),
        p99: Duration::from_micros(field("p99_us")?),
        non_2xx: field("non2xx")?,
        errors: field("errors")?,
    })
}

/// A value in kB of a `/proc/PID/status` text, e.g. `VmRSS`.
pub fn status_kb(status: &str, key: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// A `wasmq serve` process on a data directory of its own; killed on drop.
struct Server {
    child: Child,
    url: String,
    token: String,
    http: reqwest::Client,
}

impl Server {
    fn start(plugins: &Path, data: &Path, flags: &[&str]) -> Result<Server> {
        let own_plugins = data.join("plugins");
        std::fs::create_dir_all(&own_plugins)?;
        let chaos = plugins.join("wasmq_chaos.wasm");
        std::fs::copy(&chaos, own_plugins.join("wasmq_chaos.wasm")).with_context(|| {
            format!(
                "copying {}: build the plugins first (wasmq plugin build plugins --out DIR)",
                chaos.display()
            )
        })?;
        let log = std::fs::File::create(data.with_extension("log"))?;
        let mut child = Command::new(std::env::current_exe()?)
            .arg("serve")
            .arg("--data-dir")
            .arg(data)
            .args(["--listen", "127.0.0.1:0", "--server-name", "bench"])
            .args(flags)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .context("starting wasmq serve")?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().context("no stdout")?).read_line(&mut line)?;
        let Some(addr) = line.trim().strip_prefix("listening on ") else {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "wasmq serve did not start; its log is {}",
                data.with_extension("log").display()
            );
        };
        let token = std::fs::read_to_string(data.join("admin-token"))?
            .trim()
            .to_string();
        Ok(Server {
            child,
            url: addr.to_string(),
            token,
            http: reqwest::Client::new(),
        })
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value> {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let answer = request.send().await?;
        let status = answer.status();
        let text = answer.text().await?;
        ensure!(status.is_success(), "{path}: HTTP {status}: {text}");
        Ok(serde_json::from_str(&text)?)
    }

    /// The server's resident and peak resident memory, in kB.
    fn memory_kb(&self) -> Result<(u64, u64)> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        Ok((
            status_kb(&status, "VmRSS").context("no VmRSS")?,
            status_kb(&status, "VmHWM").context("no VmHWM")?,
        ))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the benchmarks and prints their figures.
pub async fn run(options: ServerBenchOptions) -> Result<()> {
    let dir = std::env::temp_dir().join(format!("wasmq-bench-server-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let outcome = async {
        submission(&options, &dir).await?;
        queue(&options, &dir).await
    }
    .await;
    let _ = std::fs::remove_dir_all(&dir);
    outcome
}

async fn submission(options: &ServerBenchOptions, dir: &Path) -> Result<()> {
    let secs = options.duration.as_secs().max(1);
    println!(
        "== job submission over HTTP: wrk, 2 threads, {} connections, {secs} s; each job one trivial chaos task",
        options.connections
    );
    if Command::new(&options.wrk)
        .arg("--version")
        .output()
        .is_err()
    {
        println!(
            "{} not found: install the Debian package wrk",
            options.wrk.display()
        );
        return Ok(());
    }
    let body = json!({ "type": "chaos", "path": "/content/wrk", "params": { "tasks": ["ok"] } });
    for (name, flags) in [
        ("answered at once (202)", &["--sync-threshold", "0"][..]),
        ("answered when the job ended (200)", &[][..]),
    ] {
        let data = dir.join(format!("wrk-{}", flags.len()));
        let server = Server::start(&options.plugins, &data, flags)?;
        let script = data.join("submit.lua");
        std::fs::write(&script, wrk_script(&body, &server.token))?;
        let output = Command::new(&options.wrk)
            .args(["-t2", &format!("-c{}", options.connections)])
            .arg(format!("-d{secs}s"))
            .args(["--timeout", "30s", "-s"])
            .arg(&script)
            .arg(format!("{}/api/v1/jobs", server.url))
            .output()
            .context("running wrk")?;
        let text = String::from_utf8_lossy(&output.stdout);
        let figures = parse_wrk(&text).with_context(|| format!("no figures from wrk: {text}"))?;
        let listed = server
            .call(reqwest::Method::GET, "/api/v1/jobs?limit=1", None)
            .await?;
        let finished = server
            .call(
                reqwest::Method::GET,
                "/api/v1/jobs?limit=1&state=Complete",
                None,
            )
            .await?;
        println!(
            "submit, {name:<34} {:>8.0} requests/s  p50 {:>7.2} ms  p99 {:>7.2} ms  \
             ({} requests, {} not 2xx, {} errors; jobs created {}, complete when wrk stopped {})",
            figures.rate(),
            figures.p50.as_secs_f64() * 1e3,
            figures.p99.as_secs_f64() * 1e3,
            figures.requests,
            figures.non_2xx,
            figures.errors,
            listed["total"],
            finished["total"],
        );
    }
    Ok(())
}

async fn queue(options: &ServerBenchOptions, dir: &Path) -> Result<()> {
    let n = options.queued;
    println!("== host memory with {n} queued tasks (RSS of the wasmq serve process, /proc)");
    let server = Server::start(
        &options.plugins,
        &dir.join("queue"),
        &["--workers", "1", "--task-timeout-ms", "3600000"],
    )?;
    let (idle, _) = server.memory_kb()?;
    let started = Instant::now();
    let job = server
        .call(
            reqwest::Method::POST,
            "/api/v1/jobs",
            Some(json!({ "type": "chaos", "path": "/content/queue",
                         "params": { "tasks": ["slow"], "slowMs": 1000, "repeat": n } })),
        )
        .await?;
    let id = job["id"].as_str().context("no job id")?.to_string();
    let path = format!("/api/v1/jobs/{id}");
    let mut paused = false;
    let job = loop {
        let job = server.call(reqwest::Method::GET, &path, None).await?;
        let state = job["state"].as_str().unwrap_or_default();
        match state {
            "Paused" => break job,
            "Ready" | "Active" if !paused => {
                server
                    .call(reqwest::Method::POST, &format!("{path}/pause"), None)
                    .await?;
                paused = true;
            }
            "Complete" | "Failed" | "Cancelled" => bail!("the queued job ended {state}: {job}"),
            _ => {}
        }
        ensure!(
            started.elapsed() < Duration::from_secs(1800),
            "the queued job did not pause: {job}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let planned = started.elapsed();
    let total = job["progress"]["total"].as_u64().unwrap_or(0);
    let done = job["progress"]["done"].as_u64().unwrap_or(0);
    ensure!(total == n, "the job planned {total} tasks, not {n}");
    let (rss, peak) = server.memory_kb()?;
    println!(
        "planned and paused in {:.1} s; {} tasks queued, {done} done",
        planned.as_secs_f64(),
        total - done
    );
    println!(
        "server RSS idle {:.1} MB, with the queue {:.1} MB (goal < 200 MB), peak {:.1} MB",
        idle as f64 / 1024.0,
        rss as f64 / 1024.0,
        peak as f64 / 1024.0
    );
    server
        .call(reqwest::Method::POST, &format!("{path}/cancel"), None)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_figures_line_of_wrk() {
        let out = "Running 1s test\n  2 threads\nwrk-figures requests=1500 duration_us=2000000 \
                   p50_us=1200 p99_us=9000 non2xx=3 errors=1\nRequests/sec: 750\n";
        let f = parse_wrk(out).unwrap();
        assert_eq!(f.requests, 1500);
        assert_eq!(f.p50, Duration::from_micros(1200));
        assert_eq!(f.p99, Duration::from_millis(9));
        assert_eq!((f.non_2xx, f.errors), (3, 1));
        assert!((f.rate() - 750.0).abs() < 1e-9);
        assert_eq!(parse_wrk("Requests/sec: 750"), None);
        assert_eq!(parse_wrk("wrk-figures requests=1"), None);
    }

    #[test]
    fn reads_kilobytes_from_proc_status() {
        let status = "Name:\twasmq\nVmHWM:\t  150000 kB\nVmRSS:\t  123456 kB\n";
        assert_eq!(status_kb(status, "VmRSS"), Some(123_456));
        assert_eq!(status_kb(status, "VmHWM"), Some(150_000));
        assert_eq!(status_kb(status, "VmSwap"), None);
    }

    #[test]
    fn the_script_posts_json_with_the_token() {
        let s = wrk_script(&json!({ "type": "chaos" }), "secret");
        assert!(s.contains("wrk.body = [==[{\"type\":\"chaos\"}]==]"));
        assert!(s.contains("Bearer secret"));
        assert!(s.contains("wrk.method = \"POST\""));
    }
}
