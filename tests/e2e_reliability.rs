//! Faults under a running job: SIGKILL at random points (seeded, replayable), a
//! full or read-only asset file system, the SQLite database locked by another process,
//! and the PostgreSQL server restarted.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wasmq_e2e::{Options, Server, postgres};

/// A small seeded generator (splitmix64), so a failing trial can be replayed
/// with `WASMQ_SEED=<the printed seed>`.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn seed() -> u64 {
    match std::env::var("WASMQ_SEED") {
        Ok(s) => s.parse().expect("WASMQ_SEED is a number"),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64,
    }
}

/// `PRAGMA integrity_check` of the server's database through the sqlite3 CLI.
fn integrity(db: &Path) -> String {
    let out = Command::new("sqlite3")
        .arg(db)
        .arg("PRAGMA integrity_check;")
        .output()
        .expect("run sqlite3 (scripts/setup.sh installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The report's rows by path, asserting each item appears once.
fn report_rows(csv: &str) -> BTreeMap<String, String> {
    let mut rows = BTreeMap::new();
    for line in csv.lines().skip(1).filter(|l| !l.is_empty()) {
        let path = line.split(',').next().unwrap().to_string();
        assert!(
            rows.insert(path.clone(), line.to_string()).is_none(),
            "{path} is reported twice:\n{csv}"
        );
    }
    rows
}

const TRIALS: usize = 10;
const ITEMS: usize = 120;

#[tokio::test(flavor = "multi_thread")]
async fn ten_sigkills_at_random_points_lose_nothing_and_rerun_nothing_finished() {
    let seed = seed();
    eprintln!("SIGKILL trials: WASMQ_SEED={seed} replays this run");
    let mut rng = Rng(seed);
    let mut server = Server::start(Options {
        plugins: vec!["wasmq_delete"],
        workers: Some(1),
        ..Default::default()
    });
    let files = tempfile::tempdir().unwrap();
    for trial in 0..TRIALS {
        let dir = files.path().join(format!("t{trial}"));
        std::fs::create_dir_all(&dir).unwrap();
        for i in 0..ITEMS {
            std::fs::write(dir.join(format!("{i:03}.txt")), format!("{trial}/{i}")).unwrap();
        }
    }
    server.import(files.path(), "/content/dam/crash");

    let mut ids = Vec::new();
    let mut mid_job = 0;
    for trial in 0..TRIALS {
        let root = format!("/content/dam/crash/t{trial}");
        let id = server
            .submit(&json!({"type": "delete", "path": root}))
            .await;
        ids.push(id.clone());
        // Anywhere from planning to the last tasks: once `at` tasks are done.
        let at = rng.below(ITEMS as u64 * 9 / 10) as i64;
        let started = Instant::now();
        loop {
            let (_, job) = server.get(&format!("/api/v1/jobs/{id}")).await;
            if job["progress"]["done"].as_i64().unwrap() >= at
                || job["state"] == "Complete"
                || started.elapsed() > Duration::from_secs(30)
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let before: HashMap<String, Value> = server
            .tasks(&id)
            .await
            .into_iter()
            .map(|t| (t["path"].as_str().unwrap().to_string(), t))
            .collect();
        let done = before
            .values()
            .filter(|t| t["state"] == "succeeded")
            .count();
        eprintln!("trial {trial}: SIGKILL after {at} tasks, {done} of {ITEMS} done");
        if done > 0 && done < ITEMS {
            mid_job += 1;
        }
        server.kill_and_restart();

        let job = server.wait_done(&id).await;
        let replay = format!("trial {trial}, WASMQ_SEED={seed}");
        assert_eq!(job["state"], "Complete", "{replay}: {job}");
        assert_eq!(
            (
                job["counts"]["total"].as_i64(),
                job["counts"]["succeeded"].as_i64()
            ),
            (Some(ITEMS as i64), Some(ITEMS as i64)),
            "{replay}: {job}"
        );
        let after = server.tasks(&id).await;
        let mut paths: Vec<&str> = after.iter().map(|t| t["path"].as_str().unwrap()).collect();
        paths.sort();
        paths.dedup();
        assert_eq!(paths.len(), ITEMS, "{replay}: no task lost or doubled");
        for task in &after {
            let path = task["path"].as_str().unwrap();
            let Some(was) = before.get(path) else {
                continue;
            };
            if was["state"] == "succeeded" {
                // Finished before the kill: never run again, so its outcome stands.
                for key in ["attempts", "finishedAt", "message", "etag", "code"] {
                    assert_eq!(
                        task[key], was[key],
                        "{replay}: finished task {path} ran again ({key}): {task}"
                    );
                }
                assert_eq!(task["message"], "deleted", "{replay}: {task}");
            }
        }
        let rows = report_rows(&server.report(&id).await);
        assert_eq!(rows.len(), ITEMS, "{replay}: every item reported once");
        assert!(
            server.assets(&root).await.is_empty(),
            "{replay}: every asset deleted"
        );
        let (_, logs) = server
            .get(&format!("/api/v1/jobs/{id}/logs?limit=10000"))
            .await;
        let complete = logs["lines"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|l| l.as_str().unwrap().contains("job complete"))
            .count();
        assert_eq!(complete, 1, "{replay}: {logs}");
    }
    eprintln!("{mid_job} of {TRIALS} kills landed with the job part done");
    assert!(
        mid_job >= 7,
        "too few kills landed mid-job ({mid_job}); WASMQ_SEED={seed}"
    );

    // No job lost: all ten are there, Complete.
    let (_, list) = server.get("/api/v1/jobs?limit=100").await;
    assert_eq!(list["total"], TRIALS as i64, "{list}");
    assert!(
        list["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .all(|j| j["state"] == "Complete"
                && ids.contains(&j["id"].as_str().unwrap().to_string())),
        "{list}"
    );
    let db = server.data_dir().join("wasmq.db");
    assert_eq!(integrity(&db), "ok");
}

/// A small tmpfs mounted over a folder of the asset store; unmounted on drop.
struct Mount(PathBuf);

impl Mount {
    fn tmpfs(at: &Path, size: &str) -> Mount {
        std::fs::create_dir_all(at).unwrap();
        mount(&["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"], at);
        Mount(at.to_path_buf())
    }

    fn remount(&self, options: &str) {
        mount(&["-o", &format!("remount,{options}")], &self.0);
    }
}

fn mount(args: &[&str], at: &Path) {
    let out = Command::new("mount")
        .args(args)
        .arg(at)
        .output()
        .expect("run mount");
    assert!(
        out.status.success(),
        "mount {args:?} {}: {} (this test needs root, as in CI, to mount a small tmpfs)",
        at.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// A hostile job that writes `n` assets of `bytes` bytes under `root`.
fn writes(root: &str, n: usize, bytes: u64) -> Value {
    json!({"type": "hostile", "path": root, "params": {"tasks": vec!["write"; n], "bytes": bytes}})
}

/// The tasks of a finished job, split into succeeded paths and failed messages.
async fn outcomes(server: &Server, id: &str) -> (Vec<String>, Vec<String>) {
    let tasks = server.tasks(id).await;
    let ok = tasks
        .iter()
        .filter(|t| t["state"] == "succeeded")
        .map(|t| t["path"].as_str().unwrap().to_string())
        .collect();
    let failed = tasks
        .iter()
        .filter(|t| t["state"] == "failed")
        .map(|t| format!("{} {}", t["code"], t["message"].as_str().unwrap()))
        .collect();
    (ok, failed)
}

/// Every listed asset under `root` downloads whole, with `bytes` bytes.
async fn assets_whole(server: &Server, root: &str, bytes: usize) -> Vec<String> {
    let listed = server.assets(root).await;
    for path in &listed {
        let (status, data) = server.download(path, None).await;
        assert_eq!((status, data.len()), (200, bytes), "{path}");
    }
    listed
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_then_read_only_asset_file_system_fails_tasks_cleanly() {
    let server = Server::start(Options {
        plugins: vec!["wasmq_hostile"],
        workers: Some(1),
        args: vec!["--retry-base-ms", "20"],
        ..Default::default()
    });
    let fs = Mount::tmpfs(&server.asset_file("/content/full"), "1m");

    // Full: 8 writes of 300 kB on 1 MiB; the first fit, the rest fail.
    let id = server.submit(&writes("/content/full", 8, 300_000)).await;
    let job = server.wait_done(&id).await;
    assert_eq!(job["state"], "Complete", "{job}");
    let (ok, failed) = outcomes(&server, &id).await;
    assert!(!ok.is_empty() && !failed.is_empty(), "{ok:?} {failed:?}");
    for message in &failed {
        assert!(
            message.starts_with("503 ") && message.contains("No space left on device"),
            "a clear error: {message}"
        );
    }
    assert!(server.is_alive().await);
    assert_eq!(integrity(&server.data_dir().join("wasmq.db")), "ok");
    // The repository holds exactly the writes that succeeded, whole.
    let mut listed = assets_whole(&server, "/content/full", 300_000).await;
    listed.sort();
    let mut ok = ok;
    ok.sort();
    assert_eq!(listed, ok, "no half-written asset is listed");

    // Read-only: every write fails, nothing is listed that was not there.
    fs.remount("ro");
    let id = server.submit(&writes("/content/full/ro", 3, 10)).await;
    server.wait_done(&id).await;
    let (ok, failed) = outcomes(&server, &id).await;
    assert!(ok.is_empty(), "{ok:?}");
    assert_eq!(failed.len(), 3);
    for message in &failed {
        assert!(
            message.starts_with("503 ") && message.contains("Read-only file system"),
            "a clear error: {message}"
        );
    }
    assert!(server.assets("/content/full/ro").await.is_empty());

    // Space is back: the same job now writes everything.
    fs.remount("rw,size=16m");
    let id = server
        .submit(&writes("/content/full/again", 8, 300_000))
        .await;
    server.wait_done(&id).await;
    let (ok, failed) = outcomes(&server, &id).await;
    assert_eq!((ok.len(), failed.len()), (8, 0), "{failed:?}");
    assert_eq!(
        assets_whole(&server, "/content/full/again", 300_000)
            .await
            .len(),
        8
    );
    assert_eq!(integrity(&server.data_dir().join("wasmq.db")), "ok");
    // `fs` drops (unmounts) before `server` removes its directory.
}

/// The sqlite3 CLI holding `BEGIN EXCLUSIVE` on a database until `release`.
struct Locker {
    child: std::process::Child,
}

impl Locker {
    /// Starts sqlite3 and returns once it holds the lock.
    fn lock(db: &Path) -> Locker {
        let mut child = Command::new("sqlite3")
            .arg(db)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("run sqlite3 (scripts/setup.sh installs it)");
        let stdin = child.stdin.as_mut().unwrap();
        writeln!(stdin, ".timeout 10000\nBEGIN EXCLUSIVE;\nSELECT 'locked';").unwrap();
        stdin.flush().unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "locked");
        Locker { child }
    }

    fn release(mut self) {
        let mut stdin = self.child.stdin.take().unwrap();
        writeln!(stdin, "COMMIT;").unwrap();
        drop(stdin);
        assert!(self.child.wait().unwrap().success());
    }
}

impl Drop for Locker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn done(server: &Server, id: &str) -> i64 {
    let (_, job) = server.get(&format!("/api/v1/jobs/{id}")).await;
    job["progress"]["done"].as_i64().unwrap()
}

/// Waits until `n` tasks of the job are done (30 s at most).
async fn until_done(server: &Server, id: &str, n: i64) {
    let started = Instant::now();
    while done(server, id).await < n {
        assert!(started.elapsed() < Duration::from_secs(30), "no progress");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until one of the job's tasks is running (30 s at most).
async fn until_one_runs(server: &Server, id: &str) {
    let started = Instant::now();
    while !server
        .tasks(id)
        .await
        .iter()
        .any(|t| t["state"] == "running")
    {
        assert!(started.elapsed() < Duration::from_secs(30), "no task runs");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_database_locked_by_another_process_mid_job_only_pauses_it() {
    let server = Server::start(Options {
        plugins: vec!["wasmq_chaos"],
        workers: Some(1),
        ..Default::default()
    });
    let id = server
        .submit(&json!({"type": "chaos", "path": "/content/dam/lock",
            "params": {"tasks": vec!["slow"; 40], "slowMs": 40}}))
        .await;
    until_done(&server, &id, 5).await;
    let db = server.data_dir().join("wasmq.db");
    let locker = Locker::lock(&db);
    let at_lock = done(&server, &id).await;
    // Readers go on under WAL: the API answers while writers wait.
    let held = Instant::now();
    while held.elapsed() < Duration::from_secs(3) {
        assert!(server.is_alive().await);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let while_locked = done(&server, &id).await;
    assert!(
        while_locked <= at_lock + 1,
        "tasks were recorded while the database was locked: {at_lock} -> {while_locked}"
    );
    locker.release();

    let job = server.wait_done(&id).await;
    assert_eq!(job["state"], "Complete", "{job}");
    assert_eq!(job["counts"]["succeeded"], 40, "{job}");
    let tasks = server.tasks(&id).await;
    assert!(
        tasks.iter().all(|t| t["attempts"] == 1),
        "nothing failed or ran twice: {tasks:?}"
    );
    assert!(
        !server.stderr().contains("panicked"),
        "the host did not panic"
    );
    assert_eq!(integrity(&db), "ok");
}

/// PostgreSQL stopped (fast shutdown) while a task runs, then started again 8 s later
/// (longer than the pool's 5 s wait for a connection, so the finished task's outcome
/// meets the outage): the host stays up and answers 503 meanwhile; the job goes on
/// where it was, each task run once.
#[tokio::test(flavor = "multi_thread")]
async fn a_postgres_restart_mid_job_only_pauses_it() {
    let cluster = postgres::OwnCluster::start();
    let server = Server::start(Options {
        plugins: vec!["wasmq_chaos"],
        workers: Some(2),
        env: vec![("WASMQ_DATABASE_URL".into(), cluster.url())],
        ..Default::default()
    });
    let id = server
        .submit(&json!({"type": "chaos", "path": "/content/dam/pg",
            "params": {"tasks": vec!["slow"; 24], "slowMs": 600}}))
        .await;
    until_done(&server, &id, 3).await;
    until_one_runs(&server, &id).await;
    cluster.stop();
    let stopped = Instant::now();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(server.is_alive().await, "the host stays up");
    // Requests that need the database wait for it a little (5 s), then get 503.
    let (status, body) = server.get(&format!("/api/v1/jobs/{id}")).await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("database is unavailable")),
        "{body}"
    );
    assert!(server.is_alive().await, "the host stays up");
    tokio::time::sleep(Duration::from_secs(8).saturating_sub(stopped.elapsed())).await;
    cluster.start_again();

    let job = server.wait_done(&id).await;
    assert_eq!(job["state"], "Complete", "{job}");
    assert_eq!(job["counts"]["succeeded"], 24, "{job}");
    let tasks = server.tasks(&id).await;
    assert_eq!(tasks.len(), 24);
    assert!(
        tasks
            .iter()
            .all(|t| t["state"] == "succeeded" && t["attempts"] == 1),
        "nothing failed or ran twice: {tasks:?}"
    );
    assert!(
        server
            .stderr()
            .contains("the database is unavailable; trying again"),
        "the outage was seen and waited out"
    );
    assert!(
        !server.stderr().contains("panicked"),
        "the host did not panic"
    );
    // A job submitted after the restart runs on the new connections.
    let after = server
        .submit(&json!({"type": "chaos", "path": "/content/dam/pg2",
            "params": {"tasks": vec!["ok"; 5]}}))
        .await;
    assert_eq!(server.wait_done(&after).await["state"], "Complete");
}
