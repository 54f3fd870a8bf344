//! The end-to-end harness: starts a real `wasmq serve` process on a fresh data
//! directory with real plugin components built from plugins/, and talks to it over HTTP.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use serde_json::Value;

pub mod postgres;
pub mod s3;

/// An RFC 3339 UTC timestamp `after` from now, as the API accepts them.
pub fn timestamp_in(after: Duration) -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now() + after).to_string()
}

/// Milliseconds since the Unix epoch of an RFC 3339 timestamp the API wrote.
pub fn parse_timestamp(text: &str) -> i64 {
    let at = humantime::parse_rfc3339(text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
    at.duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// The workspace root (the parent of this crate).
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace")
        .to_path_buf()
}

/// The `wasmq` binary: `$WASMQ_BIN`, else `target/debug/wasmq`.
pub fn binary() -> PathBuf {
    let path = std::env::var_os("WASMQ_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target/debug/wasmq"));
    assert!(
        path.is_file(),
        "no wasmq binary at {}: run scripts/test.sh, which builds it",
        path.display()
    );
    path
}

/// A built plugin component by crate name (`wasmq_delete`): `$WASMQ_PLUGINS_DIR`, else `target/wasm-plugins`.
pub fn plugin(name: &str) -> PathBuf {
    let dir = std::env::var_os("WASMQ_PLUGINS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target/wasm-plugins"));
    let path = dir.join(format!("{name}.wasm"));
    assert!(
        path.is_file(),
        "no plugin at {}: run scripts/test.sh, which builds plugins/",
        path.display()
    );
    path
}

/// A corpus of real files fetched by `scripts/corpus-{name}.sh` into
/// `target/corpus/{name}`; `probe` is a file that must be there.
pub fn corpus(name: &str, probe: &str) -> PathBuf {
    let dir = workspace().join("target/corpus").join(name);
    assert!(
        dir.join(probe).is_file(),
        "no {name} corpus at {}: run scripts/corpus-{name}.sh",
        dir.display()
    );
    dir
}

/// How to start a server.
#[derive(Default, Clone)]
pub struct Options {
    /// Plugin crate names to install (`wasmq_delete`, `wasmq_chaos`).
    pub plugins: Vec<&'static str>,
    pub workers: Option<usize>,
    pub task_fuel: Option<u64>,
    pub task_timeout_ms: Option<u64>,
    /// More `wasmq serve` arguments.
    pub args: Vec<&'static str>,
    /// Environment variables of `wasmq serve` and `wasmq assets import`.
    pub env: Vec<(String, String)>,
    /// `--server-name` [default: e2e-node].
    pub server_name: Option<String>,
    /// The admin token to use, for a server on a database that already has
    /// one [default: the one the server creates on first start].
    pub admin_token: Option<String>,
}

/// A running `wasmq serve` process, killed on drop.
pub struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    dir: tempfile::TempDir,
    options: Options,
    client: reqwest::Client,
    /// Everything the server processes wrote to standard error so far.
    stderr: Arc<Mutex<Vec<u8>>>,
}

/// Starts `wasmq serve` on the data and plugin directories under `dir`; returns it and its URL.
/// Its standard error is echoed and appended to `log`.
fn spawn(dir: &Path, options: &Options, log: Arc<Mutex<Vec<u8>>>) -> (Child, String) {
    let mut cmd = Command::new(binary());
    cmd.arg("serve")
        .arg("--data-dir")
        .arg(dir.join("data"))
        .arg("--plugins")
        .arg(dir.join("plugins"))
        .arg("--cache-dir")
        .arg(workspace().join("target/wasmq-test-cache"))
        .args(["--listen", "127.0.0.1:0", "--server-name"])
        .arg(options.server_name.as_deref().unwrap_or("e2e-node"));
    if let Some(n) = options.workers {
        cmd.args(["--workers", &n.to_string()]);
    }
    if let Some(f) = options.task_fuel {
        cmd.args(["--task-fuel", &f.to_string()]);
    }
    if let Some(t) = options.task_timeout_ms {
        cmd.args(["--task-timeout-ms", &t.to_string()]);
    }
    if !options.args.contains(&"--sync-threshold") {
        // Tests watch jobs go through their states: answer every submission at once.
        cmd.args(["--sync-threshold", "0"]);
    }
    cmd.args(&options.args).envs(options.env.iter().cloned());
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn wasmq serve");
    let stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        while let Ok(n) = stderr.read(&mut buf) {
            if n == 0 {
                break;
            }
            eprint!("{}", String::from_utf8_lossy(&buf[..n]));
            log.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    });
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        if let Some(Ok(first)) = lines.next() {
            let _ = tx.send(first);
        }
        for _ in lines {}
    });
    let first = rx
        .recv_timeout(Duration::from_secs(120))
        .expect("the server printed no `listening on` line");
    let url = first
        .strip_prefix("listening on ")
        .expect("first line is `listening on URL`")
        .to_string();
    (child, url)
}

impl Server {
    /// Starts a server on a fresh data directory with the given plugins.
    pub fn start(options: Options) -> Server {
        let dir = tempfile::tempdir().expect("tempdir");
        let plugins = dir.path().join("plugins");
        if let Some(token) = &options.admin_token {
            std::fs::create_dir_all(dir.path().join("data")).unwrap();
            std::fs::write(dir.path().join("data/admin-token"), token).unwrap();
        }
        std::fs::create_dir_all(&plugins).unwrap();
        for name in &options.plugins {
            std::fs::copy(plugin(name), plugins.join(format!("{name}.wasm"))).unwrap();
        }
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let (child, url) = spawn(dir.path(), &options, stderr.clone());
        Server {
            child,
            url,
            dir,
            options,
            client: reqwest::Client::new(),
            stderr,
        }
    }

    /// Kills the process with SIGKILL (no chance to clean up), for good.
    pub fn kill(&mut self) {
        self.child.kill().expect("SIGKILL the server");
        self.child.wait().expect("reap the server");
    }

    /// Kills the process with SIGKILL (no chance to clean up) and starts a new
    /// one on the same data directory; the URL changes.
    pub fn kill_and_restart(&mut self) {
        self.kill_and(|_| {});
    }

    /// Kills the process with SIGKILL, calls `inspect` with the data
    /// directory while nothing runs, then starts a new process on it.
    pub fn kill_and(&mut self, inspect: impl FnOnce(&Path)) {
        self.child.kill().expect("SIGKILL the server");
        self.child.wait().expect("reap the server");
        inspect(&self.data_dir());
        let (child, url) = spawn(self.dir.path(), &self.options, self.stderr.clone());
        self.child = child;
        self.url = url;
    }

    /// The plugin directory the server watches.
    pub fn plugins_dir(&self) -> PathBuf {
        self.dir.path().join("plugins")
    }

    /// What the server processes have written to standard error so far.
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap()).into_owned()
    }

    /// The server's data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Where the binary of an asset of the default tenant lives on disk.
    pub fn asset_file(&self, path: &str) -> PathBuf {
        self.data_dir()
            .join("assets/default")
            .join(path.trim_start_matches('/'))
    }

    /// Runs `wasmq assets import DIR --to PATH` on the server's data directory.
    pub fn import(&self, dir: &Path, to: &str) -> String {
        let out = Command::new(binary())
            .args(["assets", "import"])
            .arg(dir)
            .args(["--to", to, "--data-dir"])
            .arg(self.data_dir())
            .envs(self.options.env.iter().cloned())
            .output()
            .expect("run wasmq assets import");
        assert!(
            out.status.success(),
            "import failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The admin token the server created on first start.
    pub fn admin_token(&self) -> String {
        std::fs::read_to_string(self.data_dir().join("admin-token"))
            .expect("admin-token file")
            .trim()
            .to_string()
    }

    /// A request for `path` with no token.
    pub fn anonymous(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client.request(method, format!("{}{path}", self.url))
    }

    /// A request for `path` as the admin.
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.anonymous(method, path).bearer_auth(self.admin_token())
    }

    /// Creates a token with the admin token; returns its secret.
    pub async fn token(&self, name: &str, role: &str, tenant: &str) -> String {
        let body = serde_json::json!({"name": name, "role": role, "tenant": tenant});
        let (status, answer) = self.post("/api/v1/tokens", &body).await;
        assert_eq!(status, 201, "{answer}");
        answer["token"].as_str().unwrap().to_string()
    }

    /// Sends a request; returns the status and the JSON body (Null when empty or not JSON).
    pub async fn send(&self, request: reqwest::RequestBuilder) -> (u16, Value) {
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        let text = response.text().await.expect("body");
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// GET `path`.
    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.send(self.request(reqwest::Method::GET, path)).await
    }

    /// POST `body` as JSON to `path`.
    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.send(self.request(reqwest::Method::POST, path).json(body))
            .await
    }

    /// POST with no body (job actions).
    pub async fn action(&self, id: &str, action: &str) -> (u16, Value) {
        self.send(self.request(
            reqwest::Method::POST,
            &format!("/api/v1/jobs/{id}/{action}"),
        ))
        .await
    }

    /// Submits a job and returns its id, asserting 202.
    pub async fn submit(&self, body: &Value) -> String {
        let (status, job) = self.post("/api/v1/jobs", body).await;
        assert_eq!(status, 202, "submission refused: {job}");
        job["id"].as_str().expect("id").to_string()
    }

    /// Polls a job until its state is one of `states`; panics after `timeout`.
    pub async fn wait_for(&self, id: &str, states: &[&str], timeout: Duration) -> Value {
        let start = Instant::now();
        loop {
            let (status, job) = self.get(&format!("/api/v1/jobs/{id}")).await;
            assert_eq!(status, 200, "{job}");
            if states.contains(&job["state"].as_str().unwrap_or_default()) {
                return job;
            }
            assert!(
                start.elapsed() < timeout,
                "job {id} still {} after {timeout:?}: {job}",
                job["state"]
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Polls until the job ends (Complete, Failed or Cancelled).
    pub async fn wait_done(&self, id: &str) -> Value {
        self.wait_for(
            id,
            &["Complete", "Failed", "Cancelled"],
            Duration::from_secs(120),
        )
        .await
    }

    /// Every task row of a job, following the pages.
    pub async fn tasks(&self, id: &str) -> Vec<Value> {
        let mut all = Vec::new();
        loop {
            let (status, page) = self
                .get(&format!(
                    "/api/v1/jobs/{id}/tasks?limit=1000&offset={}",
                    all.len()
                ))
                .await;
            assert_eq!(status, 200, "{page}");
            all.extend(page["tasks"].as_array().unwrap().iter().cloned());
            if !page["hasMore"].as_bool().unwrap() {
                return all;
            }
        }
    }

    /// Every asset path under `path`, recursively, following the cursors.
    pub async fn assets(&self, path: &str) -> Vec<String> {
        let mut all = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut request = self
                .request(reqwest::Method::GET, "/api/v1/assets")
                .query(&[("path", path), ("recursive", "true"), ("limit", "1000")]);
            if let Some(c) = &cursor {
                request = request.query(&[("cursor", c.as_str())]);
            }
            let (status, page) = self.send(request).await;
            assert_eq!(status, 200, "{page}");
            all.extend(
                page["assets"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|a| a["path"].as_str().unwrap().to_string()),
            );
            match page["nextCursor"].as_str() {
                Some(next) => cursor = Some(next.to_string()),
                None => return all,
            }
        }
    }

    /// Downloads an asset's binary (`rendition` for one of its renditions):
    /// the status and the bytes.
    pub async fn download(&self, path: &str, rendition: Option<&str>) -> (u16, Vec<u8>) {
        let mut request = self.request(reqwest::Method::GET, &format!("/api/v1/assets{path}"));
        if let Some(name) = rendition {
            request = request.query(&[("rendition", name)]);
        }
        let response = request.send().await.expect("download");
        let status = response.status().as_u16();
        (status, response.bytes().await.expect("body").to_vec())
    }

    /// Uploads `data` as the asset at `path` (`rendition` for one of its
    /// renditions) with `PUT /api/v1/assets{path}`: the status and the answer.
    pub async fn upload(
        &self,
        path: &str,
        rendition: Option<&str>,
        data: Vec<u8>,
        content_type: &str,
    ) -> (u16, Value) {
        let mut request = self
            .request(reqwest::Method::PUT, &format!("/api/v1/assets{path}"))
            .header("content-type", content_type)
            .body(data);
        if let Some(name) = rendition {
            request = request.query(&[("rendition", name)]);
        }
        self.send(request).await
    }

    /// The job's per-item report (`GET /api/v1/jobs/{id}/report`), as CSV text.
    pub async fn report(&self, id: &str) -> String {
        self.request(reqwest::Method::GET, &format!("/api/v1/jobs/{id}/report"))
            .send()
            .await
            .expect("report")
            .text()
            .await
            .expect("report body")
    }

    /// True if `/healthz` answers 200.
    pub async fn is_alive(&self) -> bool {
        self.get("/healthz").await.0 == 200
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The task of `tasks` whose path ends with `suffix`.
pub fn task<'a>(tasks: &'a [Value], suffix: &str) -> &'a Value {
    tasks
        .iter()
        .find(|t| t["path"].as_str().unwrap().ends_with(suffix))
        .unwrap_or_else(|| panic!("no task ending in {suffix}"))
}
