//! Observability end to end: `/metrics` scraped from a real server and parsed here must
//! agree with what the API says of the jobs; `/readyz`; hot-reload counts; JSON logs.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wasmq_e2e::{Options, Server};

/// One sample line: `name{label="value",...} value`.
#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// A parsed text exposition (Prometheus / OpenMetrics).
#[derive(Debug, Default)]
struct Exposition {
    /// Family name -> (type, help).
    families: HashMap<String, (String, String)>,
    samples: Vec<Sample>,
}

impl Exposition {
    /// Parses the exposition, checking its shape: every family has HELP and TYPE,
    /// every sample belongs to a declared family, the text ends with `# EOF`.
    fn parse(text: &str) -> Result<Exposition, String> {
        let mut out = Exposition::default();
        let mut help: HashMap<String, String> = HashMap::new();
        let mut eof = false;
        for (n, line) in text.lines().enumerate() {
            let at = |e: String| format!("line {}: {e}: {line:?}", n + 1);
            if eof {
                return Err(at("text after # EOF".into()));
            }
            if line == "# EOF" {
                eof = true;
            } else if let Some(rest) = line.strip_prefix("# HELP ") {
                let (name, text) = rest.split_once(' ').ok_or_else(|| at("no help".into()))?;
                help.insert(name.to_string(), text.to_string());
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').ok_or_else(|| at("no type".into()))?;
                let text = help
                    .get(name)
                    .ok_or_else(|| at(format!("TYPE of {name} before its HELP")))?;
                out.families
                    .insert(name.to_string(), (kind.to_string(), text.clone()));
            } else if line.starts_with('#') {
                return Err(at("unknown comment".into()));
            } else {
                let sample = parse_sample(line).map_err(at)?;
                if out.family_of(&sample.name).is_none() {
                    return Err(at(format!("{} has no # TYPE", sample.name)));
                }
                out.samples.push(sample);
            }
        }
        if !eof {
            return Err("no # EOF at the end".into());
        }
        Ok(out)
    }

    /// The declared family a sample name belongs to.
    fn family_of(&self, sample: &str) -> Option<&str> {
        [
            "", "_total", "_bucket", "_count", "_sum", "_info", "_created",
        ]
        .iter()
        .find_map(|suffix| {
            let base = sample.strip_suffix(suffix)?;
            self.families.get_key_value(base).map(|(k, _)| k.as_str())
        })
    }

    /// The sum of the samples named `name` whose labels include all of `labels`.
    fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.matching(name, labels).map(|s| s.value).sum()
    }

    /// The one sample named `name` with exactly these labels, if any.
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.samples
            .iter()
            .find(|s| {
                s.name == name
                    && s.labels.len() == labels.len()
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|s| s.value)
    }

    fn matching<'a>(
        &'a self,
        name: &'a str,
        labels: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples.iter().filter(move |s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
    }
}

/// Parses `name{a="x",b="y"} 1.5` (label values may escape `\\`, `\"` and `\n`).
fn parse_sample(line: &str) -> Result<Sample, String> {
    let name_end = line.find(['{', ' ']).ok_or("no value")?;
    let name = &line[..name_end];
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    {
        return Err(format!("bad metric name {name:?}"));
    }
    let mut labels = BTreeMap::new();
    let mut rest = &line[name_end..];
    if let Some(inner) = rest.strip_prefix('{') {
        let mut chars = inner.char_indices();
        let end = loop {
            let Some((i, c)) = chars.next() else {
                return Err("unclosed {".into());
            };
            if c == '}' {
                break i;
            }
            if c == ',' {
                continue;
            }
            let mut key = String::from(c);
            for (_, c) in chars.by_ref() {
                if c == '=' {
                    break;
                }
                key.push(c);
            }
            if chars.next().map(|(_, c)| c) != Some('"') {
                return Err(format!("label {key} has no quoted value"));
            }
            let mut value = String::new();
            loop {
                match chars.next().map(|(_, c)| c) {
                    Some('"') => break,
                    Some('\\') => match chars.next().map(|(_, c)| c) {
                        Some('n') => value.push('\n'),
                        Some(c @ ('\\' | '"')) => value.push(c),
                        other => return Err(format!("bad escape {other:?}")),
                    },
                    Some(c) => value.push(c),
                    None => return Err("unterminated label value".into()),
                }
            }
            if labels.insert(key.clone(), value).is_some() {
                return Err(format!("label {key} twice"));
            }
        };
        rest = &inner[end + 1..];
    }
    let mut fields = rest.split_whitespace();
    let raw = fields.next().ok_or("no value")?;
    let value = match raw {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        raw => raw.parse().map_err(|e| format!("value {raw:?}: {e}"))?,
    };
    Ok(Sample {
        name: name.to_string(),
        labels,
        value,
    })
}

#[test]
fn the_parser_reads_labels_escapes_and_refuses_bad_text() {
    let text =
        "# HELP a A thing\n# TYPE a counter\na_total{x=\"q\\\"uote\",y=\"b\\\\s\"} 3\n# EOF\n";
    let e = Exposition::parse(text).unwrap();
    assert_eq!(
        e.get("a_total", &[("x", "q\"uote"), ("y", "b\\s")]),
        Some(3.0)
    );
    assert_eq!(e.families["a"].0, "counter");
    assert!(Exposition::parse("# HELP a A\n# TYPE a gauge\na 1\n").is_err());
    assert!(Exposition::parse("b 1\n# EOF\n").is_err());
    assert!(Exposition::parse("# HELP a A\n# TYPE a gauge\na{x=\"1} 1\n# EOF\n").is_err());
}

/// Scrapes `/metrics` with the admin token and parses it.
async fn scrape(server: &Server) -> Exposition {
    let text = scrape_text(server).await;
    Exposition::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

/// The exposition text of `/metrics`, scraped with the admin token.
async fn scrape_text(server: &Server) -> String {
    let response = server
        .request(reqwest::Method::GET, "/metrics")
        .send()
        .await
        .expect("scrape");
    assert_eq!(response.status().as_u16(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    response.text().await.unwrap()
}

/// The official Prometheus Python client's OpenMetrics parser, fetched by
/// `scripts/tools-promparser.sh`: (family, type) pairs and (name, labels, value) samples.
type Families = Vec<(String, String)>;
type Samples = Vec<(String, BTreeMap<String, String>, f64)>;

fn python_parse(text: &str) -> (Families, Samples) {
    use std::io::Write;
    let wheel = wasmq_e2e::workspace()
        .join("target/tools/python/prometheus_client-0.23.1-py3-none-any.whl");
    assert!(
        wheel.is_file(),
        "no {}: run scripts/tools-promparser.sh",
        wheel.display()
    );
    const SCRIPT: &str = r#"
import json, sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
out = {'families': [], 'samples': []}
for f in text_string_to_metric_families(sys.stdin.read()):
    out['families'].append([f.name, f.type])
    out['samples'] += [[s.name, s.labels, repr(float(s.value))] for s in f.samples]
print(json.dumps(out))
"#;
    let mut child = std::process::Command::new("python3")
        .args(["-c", SCRIPT])
        .env("PYTHONPATH", &wheel)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the Prometheus parser refused the exposition: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let parsed: Value = serde_json::from_slice(&out.stdout).unwrap();
    let families = serde_json::from_value(parsed["families"].clone()).unwrap();
    // Values travel as Python's repr: serde_json's float parsing may be 1 ulp off.
    let samples: Vec<(String, BTreeMap<String, String>, String)> =
        serde_json::from_value(parsed["samples"].clone()).unwrap();
    let samples = samples
        .into_iter()
        .map(|(name, labels, value)| (name, labels, value.parse().unwrap()))
        .collect();
    (families, samples)
}

/// Scrapes until `check` holds; panics with the last figures after `timeout`.
async fn scrape_until(
    server: &Server,
    what: &str,
    timeout: Duration,
    check: impl Fn(&Exposition) -> bool,
) -> Exposition {
    let start = Instant::now();
    loop {
        let e = scrape(server).await;
        if check(&e) {
            return e;
        }
        assert!(
            start.elapsed() < timeout,
            "{what}: not seen within {timeout:?}: {:?}",
            e.samples
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Writes `n` small text files into a fresh directory, for the delete job.
fn files(n: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..n {
        std::fs::write(
            dir.path().join(format!("note-{i}.txt")),
            format!("note {i}\n"),
        )
        .unwrap();
    }
    dir
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_agree_with_the_jobs_the_api_reports() {
    let server = Server::start(Options {
        plugins: vec!["wasmq_chaos", "wasmq_delete"],
        workers: Some(2),
        args: vec![
            "--task-metering",
            "fuel",
            "--task-attempts",
            "3",
            "--retry-base-ms",
            "10",
        ],
        ..Default::default()
    });

    // Without a token: 401 with the usual JSON error; a viewer may not see every tenant.
    let (status, body) = server
        .send(server.anonymous(reqwest::Method::GET, "/metrics"))
        .await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["field"], "Authorization", "{body}");
    let viewer = server.token("dashboards", "viewer", "default").await;
    let (status, body) = server
        .send(
            server
                .anonymous(reqwest::Method::GET, "/metrics")
                .bearer_auth(viewer),
        )
        .await;
    assert_eq!(status, 403, "{body}");

    let (status, ready) = server
        .send(server.anonymous(reqwest::Method::GET, "/readyz"))
        .await;
    assert_eq!(status, 200, "{ready}");
    assert_eq!(ready["ready"], true, "{ready}");
    for check in ["database", "plugins", "scheduler"] {
        assert_eq!(ready["checks"][check]["ok"], true, "{ready}");
    }

    let first = scrape(&server).await;
    assert_eq!(
        first.get("wasmq_plugin_reloads_total", &[("outcome", "loaded")]),
        Some(2.0),
        "both plugins loaded at start"
    );
    assert!(first.sum("wasmq_build_info", &[]) == 1.0);
    assert_eq!(first.sum("wasmq_task_outcomes_total", &[]), 0.0);

    let src = files(25);
    server.import(src.path(), "/content/dam/notes");
    let delete = server
        .submit(&json!({"type": "delete", "path": "/content/dam/notes"}))
        .await;
    let mut modes = vec!["ok"; 9];
    modes.extend(["fail", "fail", "fail", "transient", "cpu", "cpu"]);
    let chaos = server
        .submit(&json!({"type": "chaos", "path": "/content/dam/chaos", "params": {"tasks": modes, "work": 20000}}))
        .await;
    let refused = server
        .submit(&json!({"type": "chaos", "path": "/content/dam/refused", "params": {"tasks": ["ok", "invalid"]}}))
        .await;
    let mut jobs = HashMap::new();
    for id in [&delete, &chaos, &refused] {
        jobs.insert(id.clone(), server.wait_done(id).await);
    }
    assert_eq!(
        jobs[&delete]["counts"]["succeeded"], 25,
        "{}",
        jobs[&delete]
    );
    assert_eq!(jobs[&chaos]["counts"]["failed"], 4, "{}", jobs[&chaos]);
    assert_eq!(jobs[&refused]["state"], "Failed", "{}", jobs[&refused]);

    let text = scrape_text(&server).await;
    let m = Exposition::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    // A real Prometheus parser reads the same families and samples.
    let (families, mut samples) = python_parse(&text);
    let mut ours: Vec<(String, String)> = m
        .families
        .iter()
        .map(|(name, (kind, _))| (name.clone(), kind.clone()))
        .collect();
    let mut theirs = families;
    ours.sort();
    theirs.sort();
    assert_eq!(ours, theirs);
    let mut ours: Samples = m
        .samples
        .iter()
        .map(|s| (s.name.clone(), s.labels.clone(), s.value))
        .collect();
    let order =
        |a: &(String, BTreeMap<String, String>, f64),
         b: &(String, BTreeMap<String, String>, f64)| { (&a.0, &a.1).cmp(&(&b.0, &b.1)) };
    ours.sort_by(order);
    samples.sort_by(order);
    assert_eq!(ours, samples);
    for (help_of, kind) in [
        ("wasmq_task_outcomes", "counter"),
        ("wasmq_task_duration_seconds", "histogram"),
        ("wasmq_fuel_burnt", "counter"),
        ("wasmq_cpu_seconds", "counter"),
        ("wasmq_plugin_reloads", "counter"),
        ("wasmq_jobs", "gauge"),
        ("wasmq_queue_tasks", "gauge"),
        ("wasmq_queue_jobs", "gauge"),
        ("wasmq_build", "info"),
    ] {
        let (k, help) = &m.families[help_of];
        assert_eq!(k, kind, "{help_of}");
        assert!(!help.is_empty(), "{help_of} has HELP text");
    }

    // Task outcomes and latency, per job type, against every task row of the API.
    for job_type in ["delete", "chaos"] {
        let (mut succeeded, mut failed, mut attempts) = (0.0, 0.0, 0.0);
        for (id, job) in &jobs {
            if job["type"] != job_type {
                continue;
            }
            for task in server.tasks(id).await {
                match task["state"].as_str().unwrap() {
                    "succeeded" => succeeded += 1.0,
                    "failed" => failed += 1.0,
                    other => panic!("task of a finished job is {other}"),
                }
                attempts += task["attempts"].as_f64().unwrap();
            }
        }
        let outcome = |o: &str| {
            m.get(
                "wasmq_task_outcomes_total",
                &[("job_type", job_type), ("outcome", o)],
            )
            .unwrap_or(0.0)
        };
        assert_eq!(outcome("succeeded"), succeeded, "{job_type} succeeded");
        assert_eq!(outcome("failed"), failed, "{job_type} failed");
        assert_eq!(
            outcome("retried"),
            attempts - succeeded - failed,
            "{job_type} retried"
        );
        let count = m
            .get(
                "wasmq_task_duration_seconds_count",
                &[("job_type", job_type)],
            )
            .unwrap();
        assert_eq!(count, attempts, "{job_type}: one observation per task call");
        let of_type = [("job_type", job_type)];
        let buckets: Vec<&Sample> = m
            .matching("wasmq_task_duration_seconds_bucket", &of_type)
            .collect();
        assert_eq!(buckets.len(), 18, "17 bounds and +Inf");
        assert!(
            buckets.windows(2).all(|w| w[0].value <= w[1].value),
            "cumulative buckets"
        );
        assert_eq!(buckets.last().unwrap().labels["le"], "+Inf");
        assert_eq!(buckets.last().unwrap().value, count);
        assert!(
            m.get("wasmq_task_duration_seconds_sum", &[("job_type", job_type)])
                .unwrap()
                > 0.0
        );
    }
    assert_eq!(
        m.get(
            "wasmq_task_outcomes_total",
            &[("job_type", "chaos"), ("outcome", "retried")]
        ),
        Some(2.0),
        "the transient task ran 3 times"
    );

    // Fuel and CPU per tenant and plugin: the sums of the jobs' own accounts.
    for plugin in ["delete", "chaos"] {
        let fuel: f64 = jobs
            .values()
            .filter(|j| j["plugin"]["name"] == plugin)
            .map(|j| j["fuelUsed"].as_f64().unwrap())
            .sum();
        assert!(fuel > 0.0, "{plugin} burnt fuel");
        let labels = [("tenant", "default"), ("plugin", plugin)];
        assert_eq!(m.get("wasmq_fuel_burnt_total", &labels), Some(fuel));
        let cpu_ms: f64 = jobs
            .values()
            .filter(|j| j["plugin"]["name"] == plugin)
            .map(|j| j["cpuMs"].as_f64().unwrap())
            .sum();
        let cpu = m.get("wasmq_cpu_seconds_total", &labels).unwrap();
        assert!(cpu > 0.0, "{plugin} used CPU");
        assert!(
            (cpu * 1000.0 - cpu_ms).abs() < 0.01,
            "{plugin}: {cpu} s against {cpu_ms} ms"
        );
    }

    // Jobs by state and type: GET /api/v1/jobs, counted here.
    let (status, list) = server.get("/api/v1/jobs?limit=1000").await;
    assert_eq!(status, 200, "{list}");
    let mut by_state: HashMap<(String, String), f64> = HashMap::new();
    for job in list["jobs"].as_array().unwrap() {
        *by_state
            .entry((
                job["type"].as_str().unwrap().to_string(),
                job["state"].as_str().unwrap().to_string(),
            ))
            .or_default() += 1.0;
    }
    assert_eq!(by_state.len(), 3, "{by_state:?}");
    for ((job_type, state), n) in &by_state {
        assert_eq!(
            m.get("wasmq_jobs", &[("job_type", job_type), ("state", state)]),
            Some(*n),
            "{job_type} {state}"
        );
    }
    assert_eq!(m.sum("wasmq_jobs", &[]), 3.0);
    assert_eq!(
        m.get("wasmq_jobs", &[("job_type", "chaos"), ("state", "Active")]),
        Some(0.0),
        "states without jobs are 0, not absent"
    );
    assert_eq!(m.sum("wasmq_queue_tasks", &[]), 0.0);
    assert_eq!(m.get("wasmq_queue_jobs", &[]), Some(0.0));
}

#[tokio::test(flavor = "multi_thread")]
async fn queue_depth_and_plugin_reloads_move_as_they_happen() {
    let server = Server::start(Options {
        plugins: vec!["wasmq_chaos"],
        workers: Some(1),
        ..Default::default()
    });
    let reloads = |e: &Exposition, outcome: &str| {
        e.get("wasmq_plugin_reloads_total", &[("outcome", outcome)])
            .unwrap_or(0.0)
    };
    let before = scrape(&server).await;
    assert_eq!(reloads(&before, "loaded"), 1.0);
    assert_eq!(reloads(&before, "rejected"), 0.0);

    // A big slow job on one worker: its tasks wait in the queue, then drain.
    let id = server
        .submit(&json!({"type": "chaos", "path": "/content/dam/slow", "params": {"tasks": vec!["slow"; 30], "slowMs": 100}}))
        .await;
    // Its tasks are queued while it is planned; wait until it runs with tasks waiting.
    let running_or_ready = |e: &Exposition| {
        ["Ready", "Active"]
            .iter()
            .map(|s| {
                e.get("wasmq_jobs", &[("job_type", "chaos"), ("state", s)])
                    .unwrap_or(0.0)
            })
            .sum::<f64>()
    };
    scrape_until(&server, "tasks waiting", Duration::from_secs(60), |e| {
        e.get(
            "wasmq_queue_tasks",
            &[("job_type", "chaos"), ("state", "pending")],
        )
        .unwrap_or(0.0)
            > 0.0
            && running_or_ready(e) == 1.0
    })
    .await;

    // Hot reload: a new component is loaded, a junk file is rejected, a removed one retired.
    let delete_file = server.plugins_dir().join("wasmq_delete.wasm");
    std::fs::copy(wasmq_e2e::plugin("wasmq_delete"), &delete_file).unwrap();
    scrape_until(&server, "delete loaded", Duration::from_secs(60), |e| {
        reloads(e, "loaded") == 2.0
    })
    .await;
    std::fs::write(server.plugins_dir().join("junk.wasm"), b"not a component").unwrap();
    scrape_until(&server, "junk rejected", Duration::from_secs(30), |e| {
        reloads(e, "rejected") == 1.0
    })
    .await;
    std::fs::remove_file(&delete_file).unwrap();
    let after = scrape_until(&server, "delete retired", Duration::from_secs(30), |e| {
        reloads(e, "retired") == 1.0
    })
    .await;
    assert_eq!(reloads(&after, "loaded"), 2.0);
    assert_eq!(reloads(&after, "rejected"), 1.0);

    let job = server.wait_done(&id).await;
    assert_eq!(job["state"], "Complete", "{job}");
    let done = scrape(&server).await;
    // Seconds later: each file was handled once (reading a file is no change).
    assert_eq!(reloads(&done, "loaded"), 2.0);
    assert_eq!(reloads(&done, "rejected"), 1.0);
    assert_eq!(
        done.get(
            "wasmq_queue_tasks",
            &[("job_type", "chaos"), ("state", "pending")]
        ),
        Some(0.0)
    );
    assert_eq!(done.sum("wasmq_queue_tasks", &[]), 0.0);
    assert_eq!(done.get("wasmq_queue_jobs", &[]), Some(0.0));
    assert_eq!(
        done.get(
            "wasmq_jobs",
            &[("job_type", "chaos"), ("state", "Complete")]
        ),
        Some(1.0)
    );
    assert_eq!(
        done.get(
            "wasmq_task_outcomes_total",
            &[("job_type", "chaos"), ("outcome", "succeeded")]
        ),
        Some(30.0)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn json_logs_are_one_object_a_line_with_job_fields() {
    let server = Server::start(Options {
        plugins: vec!["wasmq_chaos"],
        args: vec!["--log-format", "json"],
        ..Default::default()
    });
    let id = server
        .submit(&json!({"type": "chaos", "path": "/content/dam/refused", "params": {"tasks": ["invalid"]}}))
        .await;
    let job = server.wait_done(&id).await;
    assert_eq!(job["state"], "Failed", "{job}");
    // The failure is logged with the job's id; wait for that line to be written.
    let start = Instant::now();
    let lines: Vec<Value> = loop {
        let text = server.stderr();
        // Only whole lines: the last one may still be being written.
        let complete = &text[..text.rfind('\n').map_or(0, |i| i + 1)];
        let lines: Vec<Value> = complete
            .lines()
            .map(|l| {
                for key in ["timestamp", "level", "target", "message"] {
                    let once = format!("\"{key}\":");
                    assert_eq!(l.matches(&once).count(), 1, "{key} not once in {l}");
                }
                serde_json::from_str::<Value>(l)
                    .unwrap_or_else(|e| panic!("not a JSON line ({e}): {l:?}"))
            })
            .collect();
        if lines.iter().any(|l| l["job"] == id.as_str()) {
            break lines;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no log line names job {id}: {text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(lines.len() >= 3, "{lines:?}");
    for line in &lines {
        for key in ["timestamp", "level", "target", "message"] {
            assert!(line[key].is_string(), "{key} missing in {line}");
        }
        assert!(
            ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"].contains(&line["level"].as_str().unwrap()),
            "{line}"
        );
        assert!(
            humantime::parse_rfc3339_weak(line["timestamp"].as_str().unwrap()).is_ok(),
            "{line}"
        );
    }
    let failing = lines.iter().find(|l| l["job"] == id.as_str()).unwrap();
    assert_eq!(failing["level"], "WARN", "{failing}");
    assert_eq!(failing["target"], "wasmq::scheduler", "{failing}");
    assert!(
        lines
            .iter()
            .any(|l| l["message"] == "plugins loaded" && l["loaded"] == 1),
        "{lines:?}"
    );
}
