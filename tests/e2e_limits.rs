//! A misbehaving plugin fails only its task: infinite loops (fuel and wall
//! time), panics, memory bombs, stack overflows and undeclared capabilities;
//! limits are set per job type.

use serde_json::json;
use wasmq_e2e::{Options, Server, task};

fn assert_failed(tasks: &[serde_json::Value], suffix: &str, code: i64, words: &[&str]) {
    let t = task(tasks, suffix);
    assert_eq!(
        (t["state"].as_str(), t["code"].as_i64()),
        (Some("failed"), Some(code)),
        "{t}"
    );
    let message = t["message"].as_str().unwrap().to_lowercase();
    assert!(
        words.iter().any(|w| message.contains(w)),
        "{suffix}: {message:?} names none of {words:?}"
    );
}

/// The number in a `count` task's message: how many it was on its instance.
fn count(t: &serde_json::Value) -> u64 {
    let message = t["message"].as_str().unwrap();
    message.split(' ').nth(1).unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn short_tasks_share_an_instance_until_one_fails() {
    let server = Server::start(Options {
        plugins: vec!["wasmq_chaos"],
        workers: Some(1),
        ..Default::default()
    });
    // One worker runs the tasks in plan order: 150 short ones, a panic, 150 more.
    let mut modes = vec!["count"; 150];
    modes.push("panic");
    modes.extend(vec!["count"; 150]);
    let id = server
        .submit(&json!({"type": "chaos", "path": "/content/dam/chaos", "params": {"tasks": modes}}))
        .await;
    let job = server.wait_done(&id).await;
    assert_eq!(job["counts"]["succeeded"], 300, "{job}");
    assert_eq!(job["counts"]["failed"], 1, "{job}");
    let tasks = server.tasks(&id).await;
    let counts: Vec<u64> = tasks
        .iter()
        .filter(|t| t["path"].as_str().unwrap().ends_with("-count"))
        .map(count)
        .collect();
    // The job's first task gets a fresh instance, and the next batches of the
    // job take it over: one instance runs more tasks than a batch holds (64)...
    assert_eq!(counts[0], 1, "{counts:?}");
    assert!(
        counts[..150].iter().any(|&n| n > 64),
        "no instance outlived its batch: {counts:?}"
    );
    // ...until the panic retires it: the task after it starts from 1 again.
    assert_eq!(counts[150], 1, "the task after the panic: {counts:?}");
    for pair in counts.windows(2) {
        assert!(
            pair[1] == pair[0] + 1 || pair[1] == 1,
            "counts go up by one within an instance: {counts:?}"
        );
    }
    assert_failed(&tasks, "150-panic", 500, &["panicked"]);

    // Another job never gets that job's instance, even with one worker running
    // both in turns: each starts from 1 and counts only its own tasks.
    let ids: Vec<String> = submit_count_jobs(&server, 2, 100).await;
    for id in &ids {
        server.wait_done(id).await;
        let counts: Vec<u64> = server.tasks(id).await.iter().map(count).collect();
        assert_eq!(counts[0], 1, "{counts:?}");
        for pair in counts.windows(2) {
            assert!(
                pair[1] == pair[0] + 1 || pair[1] == 1,
                "counts go up by one within an instance: {counts:?}"
            );
        }
        assert!(
            counts.iter().all(|&n| n <= 100),
            "an instance ran another job's tasks: {counts:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_warm_instance_waits_two_seconds_for_its_job() {
    // A count task, then a transient failure retried once after the backoff.
    // The retry says how many count tasks its instance ran: 1 when the job's
    // instance was still waiting for it, 0 when it had been dropped.
    for (backoff_ms, counted) in [("500", 1), ("3000", 0)] {
        let server = Server::start(Options {
            plugins: vec!["wasmq_chaos"],
            workers: Some(1),
            args: vec!["--retry-base-ms", backoff_ms, "--task-attempts", "2"],
            ..Default::default()
        });
        let id = server
            .submit(&json!({"type": "chaos", "path": "/content/dam/chaos", "params": {"tasks": ["count", "transient"]}}))
            .await;
        server.wait_done(&id).await;
        let tasks = server.tasks(&id).await;
        let retried = task(&tasks, "1-transient");
        assert_eq!(retried["attempts"], 2, "{retried}");
        assert_eq!(
            retried["message"].as_str(),
            Some(
                format!("chaos: busy, try later ({counted} count tasks on this instance)").as_str()
            ),
            "after a backoff of {backoff_ms} ms: {retried}"
        );
    }
}

/// Submits `jobs` chaos jobs of `tasks` count tasks each, one right after the other.
async fn submit_count_jobs(server: &Server, jobs: usize, tasks: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for _ in 0..jobs {
        let body = json!({"type": "chaos", "path": "/content/dam/chaos", "params": {"tasks": vec!["count"; tasks]}});
        ids.push(server.submit(&body).await);
    }
    ids
}

#[tokio::test(flavor = "multi_thread")]
async fn each_misbehaviour_fails_only_its_task() {
    let server = Server::start(Options {
        plugins: vec!["wasmq_chaos"],
        workers: Some(2),
        // Fuel metering for this type only, with a budget a loop runs out of.
        args: vec![
            "--limits-for",
            "chaos:metering=fuel,fuel=5000000000,wall-ms=10000",
        ],
        ..Default::default()
    });
    let modes = ["ok", "loop", "panic", "ok", "memory", "stack", "fail", "ok"];
    let id = server
        .submit(&json!({"type": "chaos", "path": "/content/dam/chaos", "params": {"tasks": modes}}))
        .await;
    let job = server.wait_done(&id).await;
    assert_eq!(
        job["state"], "Complete",
        "task failures do not fail a small job: {job}"
    );
    let tasks = server.tasks(&id).await;
    for suffix in ["0-ok", "3-ok", "7-ok"] {
        assert_eq!(task(&tasks, suffix)["state"], "succeeded");
    }
    assert_failed(&tasks, "1-loop", 500, &["fuel limit of 5000000000"]);
    assert_failed(&tasks, "2-panic", 500, &["panicked"]);
    assert!(
        task(&tasks, "2-panic")["message"]
            .as_str()
            .unwrap()
            .contains("chaos: asked to panic")
    );
    assert_failed(&tasks, "4-memory", 500, &["memory limit"]);
    assert_failed(&tasks, "5-stack", 500, &["stack overflow"]);
    assert_failed(&tasks, "6-fail", 422, &["asked to fail"]);
    assert_eq!(job["counts"]["failed"], 5);

    // The host is unharmed and keeps running jobs.
    assert!(server.is_alive().await);
    let again = server.submit(&json!({"type": "chaos", "path": "/content/dam/chaos", "params": {"tasks": ["ok", "ok"]}})).await;
    assert_eq!(server.wait_done(&again).await["state"], "Complete");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_loop_with_fuel_to_spare_hits_the_wall_time_limit() {
    let server = Server::start(Options {
        plugins: vec!["wasmq_chaos"],
        task_fuel: Some(u64::MAX / 4),
        task_timeout_ms: Some(1000),
        args: vec!["--task-metering", "fuel"],
        ..Default::default()
    });
    let id = server.submit(&json!({"type": "chaos", "path": "/content/dam/chaos", "params": {"tasks": ["loop", "ok"]}})).await;
    server.wait_done(&id).await;
    let tasks = server.tasks(&id).await;
    assert_failed(&tasks, "0-loop", 500, &["wall-time limit of 1s"]);
    assert_eq!(task(&tasks, "1-ok")["state"], "succeeded");
}

#[tokio::test(flavor = "multi_thread")]
async fn limits_of_one_job_type_leave_the_others_alone() {
    let server = Server::start(Options {
        plugins: vec!["wasmq_chaos", "wasmq_delete"],
        workers: Some(2),
        args: vec!["--limits-for", "chaos:wall-ms=300,memory-mb=32"],
        ..Default::default()
    });
    let id = server
        .submit(&json!({"type": "chaos", "path": "/content/dam/chaos",
        "params": {"tasks": ["loop", "memory", "slow", "ok"], "slowMs": 50}}))
        .await;
    let job = server.wait_done(&id).await;
    let tasks = server.tasks(&id).await;
    assert_failed(&tasks, "0-loop", 500, &["wall-time limit of 300ms"]);
    assert_failed(&tasks, "1-memory", 500, &["memory limit of 33554432 bytes"]);
    assert_eq!(task(&tasks, "2-slow")["state"], "succeeded");
    assert_eq!(task(&tasks, "3-ok")["state"], "succeeded");
    assert_eq!(job["fuelUsed"], 0, "epoch metering burns no fuel: {job}");
    assert!(
        job["cpuMs"].as_f64().unwrap() >= 100.0,
        "the loop's CPU time counts: {job}"
    );

    // The default limits still hold for delete: a job of it is unaffected.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.txt"), "a").unwrap();
    server.import(dir.path(), "/content/dam/gone");
    let id = server
        .submit(&json!({"type": "delete", "path": "/content/dam/gone"}))
        .await;
    assert_eq!(server.wait_done(&id).await["state"], "Complete");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_undeclared_capability_is_refused_and_logged() {
    let server = Server::start(Options {
        plugins: vec!["wasmq_chaos"],
        ..Default::default()
    });
    let id = server.submit(&json!({"type": "chaos", "path": "/content/dam/chaos", "params": {"tasks": ["undeclared"]}})).await;
    server.wait_done(&id).await;
    let tasks = server.tasks(&id).await;
    assert_failed(
        &tasks,
        "0-undeclared",
        403,
        &["capability `delete` was not declared"],
    );
    let (_, logs) = server
        .get(&format!("/api/v1/jobs/{id}/logs?limit=100"))
        .await;
    let lines = logs["lines"].as_array().unwrap();
    assert!(
        lines.iter().any(|l| l
            .as_str()
            .unwrap()
            .contains("WARN capability `delete` was not declared")),
        "{logs}"
    );
    let zip = server
        .request(
            reqwest::Method::GET,
            &format!("/api/v1/jobs/{id}/logs/download"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(zip.status().as_u16(), 200);
    assert_eq!(zip.headers()["content-type"], "application/zip");
    let bytes = zip.bytes().await.unwrap();
    assert!(bytes.starts_with(b"PK\x03\x04"), "a ZIP archive");
}

#[tokio::test(flavor = "multi_thread")]
async fn transient_errors_are_retried_with_backoff_then_fail() {
    let server = Server::start(Options {
        plugins: vec!["wasmq_chaos"],
        ..Default::default()
    });
    let id = server
        .submit(&json!({"type": "chaos", "path": "/content/dam/chaos", "params": {"tasks": ["transient", "ok"]}}))
        .await;
    let job = server.wait_done(&id).await;
    assert_eq!(job["state"], "Complete", "{job}");
    let tasks = server.tasks(&id).await;
    let t = task(&tasks, "0-transient");
    assert_eq!(
        (
            t["state"].as_str(),
            t["code"].as_i64(),
            t["attempts"].as_i64()
        ),
        (Some("failed"), Some(503), Some(3)),
        "{t}"
    );
    // Backoff: 500 ms, then 1 s, between the three attempts.
    let (_, logs) = server
        .get(&format!("/api/v1/jobs/{id}/logs?limit=100"))
        .await;
    let retries: Vec<&str> = logs["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .filter(|l| l.contains("will be retried"))
        .collect();
    assert_eq!(retries.len(), 2, "{logs}");
    assert!(
        retries[0].contains("500ms") && retries[1].contains("1s"),
        "{retries:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_big_job_fails_once_most_of_its_tasks_fail() {
    let server = Server::start(Options {
        plugins: vec!["wasmq_chaos"],
        workers: Some(1),
        args: vec!["--failure-min-tasks", "10", "--failure-percent", "50"],
        ..Default::default()
    });
    let mut modes = vec!["ok"; 5];
    modes.extend(vec!["fail"; 7]);
    modes.extend(vec!["ok"; 3]);
    let id = server
        .submit(&json!({"type": "chaos", "path": "/content/dam/chaos", "params": {"tasks": modes}}))
        .await;
    let job = server.wait_done(&id).await;
    assert_eq!(job["state"], "Failed", "{job}");
    // With one worker, tasks run in plan order: the 6th failure makes 6 of 11 (more than 50%).
    assert_eq!(
        (
            job["counts"]["succeeded"].as_i64(),
            job["counts"]["failed"].as_i64()
        ),
        (Some(5), Some(6)),
        "{job}"
    );
    assert_eq!(
        job["counts"]["pending"].as_i64(),
        Some(4),
        "the rest never ran: {job}"
    );
    assert!(
        job["error"].as_str().unwrap().contains("more than 50%"),
        "{job}"
    );

    // At or under the task count, failures never fail the job.
    let small = server.submit(&json!({"type": "chaos", "path": "/content/dam/c", "params": {"tasks": vec!["fail"; 10]}})).await;
    assert_eq!(server.wait_done(&small).await["state"], "Complete");
}
