//! Three hosts on one real PostgreSQL database and one real S3 store (moto): 20
//! jobs of mixed types spread over the nodes, one node SIGKILLed mid-job, its
//! leases rescued by the others within the expiry, every job complete, every
//! task finished exactly once, no asset lost or left half-moved.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wasmq_e2e::s3::S3Server;
use wasmq_e2e::{Options, Server, postgres};

const LEASE_MS: u64 = 2000;

fn node(name: &str, env: &[(String, String)], token: Option<String>) -> Server {
    Server::start(Options {
        plugins: vec!["wasmq_chaos", "wasmq_delete", "wasmq_move", "wasmq_publish"],
        workers: Some(2),
        args: vec!["--lease-ms", "2000"],
        env: env.to_vec(),
        server_name: Some(name.to_string()),
        admin_token: token,
        ..Default::default()
    })
}

/// Every task of every job, by job id.
async fn all_tasks(server: &Server, ids: &[String]) -> HashMap<String, Vec<Value>> {
    let mut all = HashMap::new();
    for id in ids {
        all.insert(id.clone(), server.tasks(id).await);
    }
    all
}

/// The (job, seq) of the tasks of `ids` that `name` is running.
async fn running_on(server: &Server, ids: &[String], name: &str) -> Vec<(String, i64)> {
    all_tasks(server, ids)
        .await
        .into_iter()
        .flat_map(|(id, tasks)| {
            tasks
                .into_iter()
                .filter(|t| t["state"] == "running" && t["node"] == name)
                .map(move |t| (id.clone(), t["seq"].as_i64().unwrap()))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn three_nodes_share_the_work_and_survive_a_sigkill() {
    let s3 = S3Server::start();
    s3.create_bucket("scale");
    let mut env = s3.env();
    env.push(("WASMQ_DATABASE_URL".into(), postgres::fresh_database()));
    env.push(("WASMQ_ASSETS_URL".into(), "s3://scale/dam".into()));
    env.push(("WASMQ_PUBLISH_URL".into(), "s3://scale/public".into()));

    let first = node("node-1", &env, None);
    let token = first.admin_token();
    let mut nodes = [
        first,
        node("node-2", &env, Some(token.clone())),
        node("node-3", &env, Some(token)),
    ];

    // Real files: 4 folders to delete, 3 to move, 3 to publish.
    let src = tempfile::tempdir().unwrap();
    let files: Vec<std::path::PathBuf> = std::fs::read_dir("/usr/share/gitweb/static")
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    assert!(files.len() >= 4, "gitweb's static files");
    for folder in (0..4)
        .map(|i| format!("del-{i}"))
        .chain((0..3).map(|i| format!("mv-{i}")))
        .chain((0..3).map(|i| format!("pub-{i}")))
    {
        let dir = src.path().join(&folder);
        std::fs::create_dir_all(&dir).unwrap();
        for f in &files {
            std::fs::copy(f, dir.join(f.file_name().unwrap())).unwrap();
        }
    }
    nodes[0].import(src.path(), "/content/dam/scale");
    let names: BTreeSet<String> = files
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();

    // 20 jobs, submitted round-robin to the three nodes.
    let mut bodies = Vec::new();
    for _ in 0..10 {
        bodies.push(json!({"type": "chaos", "path": "/content/dam/scale/chaos",
                           "params": {"tasks": vec!["slow"; 6], "slowMs": 600}}));
    }
    for i in 0..4 {
        bodies.push(json!({"type": "delete", "path": format!("/content/dam/scale/del-{i}")}));
    }
    for i in 0..3 {
        bodies.push(
            json!({"type": "move", "path": format!("/content/dam/scale/mv-{i}"),
                           "params": {"destination": format!("/content/dam/moved/mv-{i}")}}),
        );
    }
    for i in 0..3 {
        bodies.push(json!({"type": "publish", "path": format!("/content/dam/scale/pub-{i}")}));
    }
    let mut ids = Vec::new();
    for (i, body) in bodies.iter().enumerate() {
        ids.push(nodes[i % 3].submit(body).await);
    }

    // Kill node-2 while it runs slow (600 ms) tasks.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let running = running_on(&nodes[0], &ids[..10], "node-2").await;
        if !running.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "node-2 never ran a task");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    nodes[1].kill();
    let killed = Instant::now();

    // What node-2 held when it died: its tasks still running now.
    let orphans = running_on(&nodes[0], &ids, "node-2").await;
    assert!(!orphans.is_empty(), "node-2 died holding tasks");

    // Its leases are rescued within the expiry (plus a heartbeat period, and
    // slack for a loaded machine).
    loop {
        let still = running_on(&nodes[0], &ids, "node-2").await.len();
        if still == 0 {
            break;
        }
        assert!(
            killed.elapsed() < Duration::from_millis(LEASE_MS + LEASE_MS / 3 + 8000),
            "{still} tasks of node-2 still held {:?} after the kill",
            killed.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let rescued_after = killed.elapsed();
    eprintln!(
        "node-2 held {} tasks when killed; rescued after {rescued_after:?}",
        orphans.len()
    );

    // Every job completes on the surviving nodes.
    let mut servers = BTreeSet::new();
    for id in &ids {
        let job = nodes[2].wait_done(id).await;
        assert_eq!(job["state"], "Complete", "{job}");
        servers.insert(job["serverName"].as_str().unwrap_or("").to_string());
    }
    assert!(
        servers.len() >= 2,
        "jobs spread over the nodes: {servers:?}"
    );

    // Every task has exactly one final status, and the rescued ones ran again elsewhere.
    let tasks = all_tasks(&nodes[0], &ids).await;
    let mut ran_on = BTreeSet::new();
    for (id, list) in &tasks {
        let job = nodes[0].get(&format!("/api/v1/jobs/{id}")).await.1;
        let seqs: BTreeSet<i64> = list.iter().map(|t| t["seq"].as_i64().unwrap()).collect();
        assert_eq!(seqs.len(), list.len(), "one row per task");
        assert_eq!(list.len() as i64, job["counts"]["total"].as_i64().unwrap());
        assert_eq!(
            job["counts"]["succeeded"].as_i64().unwrap()
                + job["counts"]["failed"].as_i64().unwrap(),
            list.len() as i64,
            "each task counted once: {job}"
        );
        for t in list {
            assert_eq!(t["state"], "succeeded", "{t}");
            ran_on.insert(t["node"].as_str().unwrap().to_string());
        }
    }
    // Node-2 took part (it held tasks when it died; it may not have finished
    // one first); both survivors finished tasks.
    assert!(
        ran_on.contains("node-1") && ran_on.contains("node-3"),
        "both surviving nodes ran tasks: {ran_on:?}"
    );
    // What node-2 held ran again, to its end, on a live node.
    for (id, seq) in &orphans {
        let t = tasks[id].iter().find(|t| t["seq"] == *seq).unwrap();
        assert_ne!(t["node"], "node-2", "{t}");
        assert!(t["attempts"].as_i64().unwrap() >= 2, "{t}");
    }

    // No asset lost or half-moved: the API and the bucket agree.
    let keys: BTreeSet<String> = s3.keys("scale").into_iter().collect();
    for i in 0..4 {
        assert!(
            nodes[0]
                .assets(&format!("/content/dam/scale/del-{i}"))
                .await
                .is_empty()
        );
        assert!(
            !keys
                .iter()
                .any(|k| k.starts_with(&format!("dam/assets/default/content/dam/scale/del-{i}/")))
        );
    }
    for i in 0..3 {
        assert!(
            nodes[0]
                .assets(&format!("/content/dam/scale/mv-{i}"))
                .await
                .is_empty()
        );
        let moved: BTreeSet<String> = nodes[0]
            .assets(&format!("/content/dam/moved/mv-{i}"))
            .await
            .into_iter()
            .map(|p| p.rsplit('/').next().unwrap().to_string())
            .collect();
        assert_eq!(moved, names, "every moved asset arrived");
        for name in &names {
            assert!(keys.contains(&format!(
                "dam/assets/default/content/dam/moved/mv-{i}/{name}"
            )));
            assert!(!keys.contains(&format!(
                "dam/assets/default/content/dam/scale/mv-{i}/{name}"
            )));
        }
    }
    for i in 0..3 {
        for name in &names {
            assert!(keys.contains(&format!(
                "public/assets/default/content/dam/scale/pub-{i}/{name}"
            )));
        }
    }
}
