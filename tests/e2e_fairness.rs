//! Fair scheduling over HTTP: equal jobs progress together, a tenant with one
//! job holds its own against a tenant with twenty, and priority preempts.

use std::time::Duration;

use serde_json::{Value, json};
use wasmq_e2e::{Options, Server};

/// A chaos job of `n` CPU-bound tasks (the same arithmetic each time).
fn cpu_job(path: &str, n: usize, work: u64) -> Value {
    json!({"type": "chaos", "path": path, "params": {"tasks": vec!["cpu"; n], "work": work}})
}

/// The work one batch of short tasks aims at (`wasmq::batches::SLICE`).
const SLICE_MS: f64 = 50.0;

fn done(job: &Value) -> i64 {
    job["counts"]["succeeded"].as_i64().unwrap() + job["counts"]["failed"].as_i64().unwrap()
}

fn two_workers() -> Server {
    Server::start(Options {
        plugins: vec!["wasmq_chaos"],
        workers: Some(2),
        ..Default::default()
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn two_equal_jobs_started_together_progress_within_20_percent() {
    let server = two_workers();
    let at = wasmq_e2e::timestamp_in(Duration::from_millis(1500));
    let mut body = cpu_job("/content/dam/equal", 100, 3_000_000);
    body["runAt"] = json!(at);
    let a = server.submit(&body).await;
    let b = server.submit(&body).await;
    let mut samples = 0;
    loop {
        // One listing reads both jobs at the same moment.
        let (_, list) = server.get("/api/v1/jobs?type=chaos&limit=10").await;
        let jobs = list["jobs"].as_array().unwrap();
        let find = |id: &str| jobs.iter().find(|j| j["id"] == id).unwrap().clone();
        let (ja, jb) = (find(&a), find(&b));
        if ja["state"] == "Complete" || jb["state"] == "Complete" {
            break;
        }
        let (da, db) = (done(&ja), done(&jb));
        if da.min(db) >= 15 {
            // Short tasks run in batches of about SLICE_MS of work (host/src/batches.rs),
            // recorded when the batch ends: allow two batches on top of the 20%.
            let cpu_ms = ja["cpuMs"].as_f64().unwrap() + jb["cpuMs"].as_f64().unwrap();
            let per_task_ms = cpu_ms / (da + db) as f64;
            let batch = (SLICE_MS / per_task_ms).ceil().clamp(1.0, 64.0) as i64;
            let gap = (da - db).abs();
            assert!(
                gap as f64 <= 0.2 * da.max(db) as f64 || gap <= 2 * batch,
                "{da} vs {db} tasks done ({per_task_ms:.1} ms each): {gap} apart"
            );
            samples += 1;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        samples >= 5,
        "only {samples} samples: the jobs ran too fast to compare"
    );
    for id in [&a, &b] {
        assert_eq!(server.wait_done(id).await["state"], "Complete");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn one_job_of_tenant_b_gets_its_share_against_twenty_of_tenant_a() {
    let server = two_workers();
    let token_a = server.token("a", "submitter", "tenant-a").await;
    let token_b = server.token("b", "submitter", "tenant-b").await;
    for _ in 0..20 {
        submit_as(&server, &token_a, cpu_job("/content/dam/a", 12, 3_000_000)).await;
    }
    let b = submit_as(&server, &token_b, cpu_job("/content/dam/b", 80, 3_000_000)).await;

    let cpu = || async {
        let (_, body) = server.get("/api/v1/tenants").await;
        let of = |t: &str| {
            body["tenants"]
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["tenant"] == t)
                .map_or(0.0, |r| r["cpuMs"].as_f64().unwrap())
        };
        (of("tenant-a"), of("tenant-b"))
    };
    let b_done = || async {
        let request = server
            .anonymous(reqwest::Method::GET, &format!("/api/v1/jobs/{b}"))
            .bearer_auth(&token_b);
        done(&server.send(request).await.1)
    };
    while b_done().await < 16 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (a0, b0) = cpu().await;
    while b_done().await < 56 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (a1, b1) = cpu().await;
    let (_, list) = server
        .send(
            server
                .anonymous(reqwest::Method::GET, "/api/v1/jobs?state=Active&limit=100")
                .bearer_auth(&token_a),
        )
        .await;
    assert!(
        list["total"].as_i64().unwrap() >= 2,
        "tenant A still had work at the second reading: {list}"
    );
    let share = (b1 - b0) / ((a1 - a0) + (b1 - b0));
    assert!(
        share >= 0.4,
        "tenant B got {:.1}% of the CPU (A {:.0} ms, B {:.0} ms)",
        share * 100.0,
        a1 - a0,
        b1 - b0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_higher_priority_job_preempts_and_the_preempted_job_finishes_once() {
    let server = two_workers();
    let slow = |path: &str, n: usize, priority: i64| {
        json!({"type": "chaos", "path": path, "priority": priority,
               "params": {"tasks": vec!["slow"; n], "slowMs": 400}})
    };
    let low = server.submit(&slow("/content/dam/low", 12, 0)).await;
    loop {
        let (_, job) = server.get(&format!("/api/v1/jobs/{low}")).await;
        if done(&job) >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let high = server.submit(&slow("/content/dam/high", 4, 10)).await;
    // Paused lasts only until every task of the high job is handed out (then no
    // higher-priority work waits), which a loaded machine's polling can miss:
    // the low job's log keeps the preemption.
    let logs_url = format!("/api/v1/jobs/{low}/logs?limit=200");
    let started = std::time::Instant::now();
    loop {
        let (_, logs) = server.get(&logs_url).await;
        if logs["lines"]
            .to_string()
            .contains(&format!("preempted by job {high}"))
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the low job was not preempted: {logs}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let high_job = server.wait_done(&high).await;
    assert_eq!(high_job["state"], "Complete", "{high_job}");
    let waited = millis(&high_job["startedAt"]) - millis(&high_job["createdAt"]);
    assert!(
        waited <= 400 + 300,
        "the high-priority job waited {waited} ms for a 400 ms task boundary"
    );

    let low_job = server.wait_done(&low).await;
    assert_eq!(low_job["state"], "Complete", "{low_job}");
    assert!(millis(&low_job["completedAt"]) > millis(&high_job["completedAt"]));
    assert_eq!(low_job["preemptedBy"], Value::Null);
    let tasks = server.tasks(&low).await;
    assert_eq!(tasks.len(), 12);
    assert!(
        tasks
            .iter()
            .all(|t| t["state"] == "succeeded" && t["attempts"] == 1),
        "every task exactly once: {tasks:?}"
    );
    let (_, logs) = server.get(&logs_url).await;
    let text = logs["lines"].to_string();
    assert!(
        text.contains("job is Ready: no higher-priority work is waiting"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn raising_a_running_jobs_priority_preempts_at_once() {
    let server = two_workers();
    let job = |path: &str| json!({"type": "chaos", "path": path, "params": {"tasks": vec!["slow"; 12], "slowMs": 300}});
    let first = server.submit(&job("/content/dam/first")).await;
    let second = server.submit(&job("/content/dam/second")).await;
    for id in [&first, &second] {
        server
            .wait_for(id, &["Active"], Duration::from_secs(30))
            .await;
    }
    let (status, body) = server
        .send(
            server
                .request(reqwest::Method::PATCH, &format!("/api/v1/jobs/{second}"))
                .json(&json!({"priority": 5, "weight": 2})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["priority"].as_i64(), body["weight"].as_i64()),
        (Some(5), Some(2))
    );
    let paused = server
        .wait_for(&first, &["Paused"], Duration::from_secs(5))
        .await;
    assert_eq!(paused["preemptedBy"], second.as_str());

    // A user who pauses a preempted job keeps it paused after the preemption ends.
    let (status, kept) = server.action(&first, "pause").await;
    assert_eq!(
        (status, kept["state"].as_str()),
        (200, Some("Paused")),
        "{kept}"
    );
    assert_eq!(server.wait_done(&second).await["state"], "Complete");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_, still) = server.get(&format!("/api/v1/jobs/{first}")).await;
    assert_eq!(still["state"], "Paused", "{still}");
    server.action(&first, "resume").await;
    assert_eq!(server.wait_done(&first).await["state"], "Complete");
}

#[tokio::test(flavor = "multi_thread")]
async fn weights_are_validated_and_set_per_tenant() {
    let server = two_workers();
    let (status, body) = server
        .send(
            server
                .request(reqwest::Method::PUT, "/api/v1/tenants/tenant-a")
                .json(&json!({"weight": 0})),
        )
        .await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (400, Some("weight")),
        "{body}"
    );
    let (status, body) = server
        .send(
            server
                .request(reqwest::Method::PUT, "/api/v1/tenants/tenant-a")
                .json(&json!({"weight": 3})),
        )
        .await;
    assert_eq!((status, body["weight"].as_i64()), (200, Some(3)), "{body}");
    let (_, list) = server.get("/api/v1/tenants").await;
    assert!(
        list["tenants"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["tenant"] == "tenant-a" && t["weight"] == 3)
    );

    let viewer = server.token("v", "submitter", "tenant-a").await;
    let (status, _) = server
        .send(
            server
                .anonymous(reqwest::Method::PUT, "/api/v1/tenants/tenant-a")
                .bearer_auth(viewer)
                .json(&json!({"weight": 9})),
        )
        .await;
    assert_eq!(status, 403, "only an admin sets weights");

    let (status, body) = server
        .send(
            server
                .request(reqwest::Method::POST, "/api/v1/jobs")
                .json(&json!({"type": "chaos", "path": "/content/dam/x", "weight": 5000, "params": {"tasks": ["ok"]}})),
        )
        .await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (400, Some("weight")),
        "{body}"
    );

    // A PATCH must change something, and only to a valid weight.
    let id = server
        .submit(&json!({"type": "chaos", "path": "/content/dam/x", "params": {"tasks": ["slow"], "slowMs": 2000}}))
        .await;
    for (patch, field) in [(json!({}), "priority"), (json!({"weight": 0}), "weight")] {
        let (status, body) = server
            .send(
                server
                    .request(reqwest::Method::PATCH, &format!("/api/v1/jobs/{id}"))
                    .json(&patch),
            )
            .await;
        assert_eq!(
            (status, body["error"]["field"].as_str()),
            (400, Some(field)),
            "{patch}: {body}"
        );
    }
}

async fn submit_as(server: &Server, token: &str, body: Value) -> String {
    let request = server
        .anonymous(reqwest::Method::POST, "/api/v1/jobs")
        .bearer_auth(token)
        .json(&body);
    let (status, job) = server.send(request).await;
    assert_eq!(status, 202, "{job}");
    job["id"].as_str().unwrap().to_string()
}

/// Milliseconds since the epoch of a timestamp the API wrote.
fn millis(value: &Value) -> i64 {
    wasmq_e2e::parse_timestamp(
        value
            .as_str()
            .unwrap_or_else(|| panic!("not a timestamp: {value}")),
    )
}
