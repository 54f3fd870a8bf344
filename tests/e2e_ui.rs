//! The web UI end to end: a real server, Debian's headless Chromium driven by
//! Playwright (tests/ui/drive.mjs): login, submit, live progress, details, stop, delete.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use wasmq_e2e::{Options, Server};

const CHROMIUM: &str = "/usr/bin/chromium";
/// The driver's viewport, so the size of every screenshot.
const SCREEN: (u32, u32) = (1400, 900);

/// The workspace root, from this test's own crate directory.
fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace")
        .to_path_buf()
}

/// Panics, naming the setup script, unless node, Chromium and playwright-core are installed.
fn browser_tools() -> PathBuf {
    let ui = workspace().join("tests/ui");
    let node = std::process::Command::new("node").arg("--version").output();
    let missing = if node.map(|o| !o.status.success()).unwrap_or(true) {
        Some("node")
    } else if !Path::new(CHROMIUM).is_file() {
        Some(CHROMIUM)
    } else if !ui
        .join("node_modules/playwright-core/package.json")
        .is_file()
    {
        Some("tests/ui/node_modules/playwright-core")
    } else {
        None
    };
    if let Some(what) = missing {
        panic!("{what} is missing: run scripts/setup-browser.sh (scripts/test.sh does)");
    }
    ui
}

/// The width and height of a PNG file, checking its signature and header.
fn png_size(file: &Path) -> (u32, u32) {
    let bytes = std::fs::read(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    assert!(
        bytes.len() > 1000 && bytes.starts_with(b"\x89PNG\r\n\x1a\n") && &bytes[12..16] == b"IHDR",
        "{} is not a PNG ({} bytes)",
        file.display(),
        bytes.len()
    );
    let be = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap());
    (be(16), be(20))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_ui_submits_watches_stops_and_deletes_a_job() {
    let ui = browser_tools();
    let server = Server::start(Options {
        plugins: vec!["wasmq_chaos", "wasmq_delete"],
        workers: Some(1),
        ..Default::default()
    });

    // The UI's files need no token; the API they call does, and so do the events.
    let page = server
        .anonymous(reqwest::Method::GET, "/ui/")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(
        page.text()
            .await
            .unwrap()
            .contains("<script src=\"app.js\">")
    );
    let (status, body) = server
        .send(server.anonymous(reqwest::Method::GET, "/api/v1/events"))
        .await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["field"], "Authorization");
    // An endless answer only for a client that asks for one.
    let (status, body) = server.get("/api/v1/events").await;
    assert_eq!(status, 406, "{body}");
    assert_eq!(body["error"]["field"], "Accept");
    let (_, spec) = server.get("/openapi.json").await;
    assert!(spec["paths"]["/api/v1/events"]["get"].is_object());

    // A file the server refuses, for the plugins page's rejected list.
    std::fs::write(server.plugins_dir().join("broken.wasm"), b"not a component").unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let plugins = loop {
        let (_, plugins) = server.get("/api/v1/plugins").await;
        if plugins["rejected"]
            .as_array()
            .is_some_and(|r| !r.is_empty())
        {
            break plugins;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "broken.wasm not refused: {plugins}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let chaos = plugins["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["jobTypes"].as_array().unwrap().contains(&"chaos".into()))
        .expect("the chaos plugin is loaded")
        .clone();

    let out = workspace().join("target/test-output/ui");
    let _ = std::fs::remove_dir_all(&out);
    let mut driver = tokio::process::Command::new("node")
        .arg(ui.join("drive.mjs"))
        .current_dir(&ui)
        .env("WASMQ_URL", &server.url)
        .env("WASMQ_TOKEN", server.admin_token())
        .env("WASMQ_OUT", &out)
        .env("WASMQ_PLUGIN_NAME", chaos["name"].as_str().unwrap())
        .env("WASMQ_PLUGIN_VERSION", chaos["version"].as_str().unwrap())
        .env("WASMQ_REJECTED", "broken.wasm")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start node");
    let mut stdin = driver.stdin.take().unwrap();
    let mut lines = BufReader::new(driver.stdout.take().unwrap()).lines();

    let mut steps: Vec<Value> = Vec::new();
    let mut job_id = String::new();
    loop {
        let line = tokio::time::timeout(Duration::from_secs(180), lines.next_line())
            .await
            .expect("the browser driver went quiet for 3 minutes")
            .expect("read the driver's output");
        let Some(line) = line else { break };
        println!("driver: {line}");
        let step: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
        match step["step"].as_str() {
            Some("submitted") => job_id = step["id"].as_str().unwrap().to_string(),
            Some("cancelled") => {
                // The API agrees before the browser goes on to delete it.
                let (status, job) = server.get(&format!("/api/v1/jobs/{job_id}")).await;
                assert_eq!(status, 200, "{job}");
                assert_eq!(job["state"], "Cancelled", "{job}");
                assert_eq!(job["name"], "ui-e2e-slow");
                assert_eq!(job["params"]["slowMs"], 1000);
                assert_eq!(job["params"]["tasks"].as_array().unwrap().len(), 60);
                let done = job["progress"]["done"].as_u64().unwrap();
                assert!(done > 0 && done < 60, "stopped midway: {job}");
                stdin.write_all(b"go\n").await.unwrap();
            }
            _ => {}
        }
        steps.push(step);
    }
    let status = driver.wait().await.unwrap();
    assert!(status.success(), "the browser driver failed: {status}");

    let names: Vec<&str> = steps.iter().filter_map(|s| s["step"].as_str()).collect();
    assert_eq!(
        names,
        [
            "bad-token",
            "login",
            "field-error",
            "submitted",
            "progress",
            "paused-resumed",
            "filter",
            "details",
            "cancelled",
            "csv",
            "deleted",
            "plugins",
            "done"
        ]
    );
    let values = steps[4]["values"].as_array().unwrap();
    assert!(values.len() >= 3, "progress values seen: {values:?}");

    // Deleted for real.
    let (status, body) = server.get(&format!("/api/v1/jobs/{job_id}")).await;
    assert_eq!(status, 404, "{body}");
    let (_, list) = server.get("/api/v1/jobs").await;
    assert_eq!(list["total"], 0, "{list}");

    for step in steps.iter().filter(|s| s["screenshot"].is_string()) {
        let file = PathBuf::from(step["screenshot"].as_str().unwrap());
        assert!(file.starts_with(&out));
        assert_eq!(png_size(&file), SCREEN, "{}", file.display());
        println!("screenshot: {}", file.display());
    }
    for name in [
        "jobs-running.png",
        "job-details.png",
        "submit-error.png",
        "plugins.png",
    ] {
        assert!(out.join(name).is_file(), "no screenshot {name}");
    }
}

/// Reads a `text/event-stream` response one event at a time.
struct Events {
    response: reqwest::Response,
    buffer: String,
}

impl Events {
    async fn open(server: &Server, token: &str) -> Events {
        let response = server
            .anonymous(reqwest::Method::GET, "/api/v1/events")
            .bearer_auth(token)
            .header("Accept", "text/event-stream")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.headers()["content-type"].to_str().unwrap(),
            "text/event-stream"
        );
        Events {
            response,
            buffer: String::new(),
        }
    }

    /// The next event's name and JSON data (keep-alive comments skipped).
    async fn next(&mut self) -> (String, Value) {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut name = String::from("message");
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        name = v.trim().to_string();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                    }
                }
                if !data.is_empty() {
                    return (name, serde_json::from_str(&data).unwrap());
                }
                continue;
            }
            let chunk = tokio::time::timeout(Duration::from_secs(60), self.response.chunk())
                .await
                .expect("no event for 60 s")
                .unwrap()
                .expect("the stream ended");
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }

    /// Reads events until `stop` says so; returns every event read.
    async fn until(&mut self, stop: impl Fn(&str, &Value) -> bool) -> Vec<(String, Value)> {
        let mut seen = Vec::new();
        loop {
            let (name, data) = self.next().await;
            let done = stop(&name, &data);
            seen.push((name, data));
            if done {
                return seen;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn events_stream_a_tenants_job_changes_and_deletions() {
    let server = Server::start(Options {
        plugins: vec!["wasmq_chaos"],
        workers: Some(1),
        ..Default::default()
    });
    let other = server.token("other-viewer", "submitter", "other").await;
    let mut mine = Events::open(&server, &server.admin_token()).await;
    let mut theirs = Events::open(&server, &other).await;
    assert_eq!(mine.next().await.0, "ready");
    assert_eq!(theirs.next().await.0, "ready");

    let job = serde_json::json!({"type": "chaos", "path": "/content/dam/sse",
        "params": {"tasks": ["slow", "slow", "slow"], "slowMs": 1500}});
    let id = server.submit(&job).await;
    let seen = mine
        .until(|name, job| name == "job" && job["id"] == id.as_str() && job["state"] == "Complete")
        .await;
    let done: Vec<u64> = seen
        .iter()
        .filter(|(name, job)| name == "job" && job["id"] == id.as_str())
        .map(|(_, job)| job["progress"]["done"].as_u64().unwrap())
        .collect();
    assert!(
        done.windows(2).all(|w| w[0] <= w[1]) && done.contains(&1) && done.contains(&2),
        "an event for each finished task (each lasts 3 ticks): {done:?}"
    );
    // The same JSON as GET /api/v1/jobs/{id}.
    let last = &seen.last().unwrap().1;
    let (_, got) = server.get(&format!("/api/v1/jobs/{id}")).await;
    let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(last), keys(&got));
    assert_eq!(last["counts"], got["counts"]);

    let (status, _) = server
        .send(server.request(reqwest::Method::DELETE, &format!("/api/v1/jobs/{id}")))
        .await;
    assert_eq!(status, 204);
    let (name, data) = mine.next().await;
    assert_eq!(
        (name.as_str(), &data["id"]),
        ("deleted", &Value::from(id.clone()))
    );

    // Another tenant's stream carries its own jobs only.
    let (status, own) = server
        .send(
            server
                .anonymous(reqwest::Method::POST, "/api/v1/jobs")
                .bearer_auth(&other)
                .json(
                    &serde_json::json!({"type": "chaos", "path": "/content/dam/x",
                    "params": {"tasks": ["ok"]}}),
                ),
        )
        .await;
    assert_eq!(status, 202, "{own}");
    let own_id = own["id"].as_str().unwrap().to_string();
    let seen = theirs
        .until(|name, job| {
            name == "job" && job["id"] == own_id.as_str() && job["state"] == "Complete"
        })
        .await;
    assert!(
        seen.iter().all(|(_, job)| job["id"] == own_id.as_str()),
        "another tenant's events: {seen:?}"
    );
}
