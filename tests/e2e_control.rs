//! Acting on jobs over HTTP: pause and resume from where a job stood, cancel,
//! restart, confirm, priority, delete, and the transitions the state machine forbids.

use std::time::Duration;

use serde_json::json;
use wasmq_e2e::{Options, Server};

fn slow_job(n: usize) -> serde_json::Value {
    json!({"type": "chaos", "path": "/content/dam/slow", "params": {"tasks": vec!["slow"; n]}})
}

/// Short tasks run in batches, claimed together and recorded together; each
/// task still reports when it started and ended, in the order it ran.
#[tokio::test(flavor = "multi_thread")]
async fn each_task_of_a_batch_keeps_its_own_start_and_end() {
    let server = Server::start(Options {
        plugins: vec!["wasmq_chaos"],
        workers: Some(1),
        ..Default::default()
    });
    let slow_ms = 8;
    let id = server
        .submit(&json!({"type": "chaos", "path": "/content/dam/times",
            "params": {"tasks": vec!["slow"; 16], "slowMs": slow_ms}}))
        .await;
    let job = server.wait_done(&id).await;
    assert_eq!(job["state"], "Complete", "{job}");
    let tasks = server.tasks(&id).await;
    let times: Vec<(i64, i64)> = tasks
        .iter()
        .map(|t| {
            let at = |key: &str| t[key].as_i64().unwrap_or_else(|| panic!("{key}: {t}"));
            (at("startedAt"), at("finishedAt"))
        })
        .collect();
    // Times are in whole milliseconds, so a task busy for 8 ms may show 7.
    for (task, (started, finished)) in tasks.iter().zip(&times) {
        assert!(finished - started >= slow_ms - 1, "{task}");
    }
    for (i, pair) in times.windows(2).enumerate() {
        assert!(
            pair[1].0 >= pair[0].1,
            "one worker: task {} started before task {} ended: {times:?}",
            i + 1,
            i
        );
    }
}

/// A job's instance stays warm from one batch to the next, even with slow
/// tasks that go one or two per batch; pausing the job lets it go, so after
/// the resume the job starts on a fresh instance.
#[tokio::test(flavor = "multi_thread")]
async fn a_paused_job_gives_up_its_warm_instance() {
    let server = Server::start(Options {
        plugins: vec!["wasmq_chaos"],
        workers: Some(1),
        ..Default::default()
    });
    // `count` says how many count tasks its instance has run.
    let modes: Vec<&str> = (0..30).flat_map(|_| ["slow", "count"]).collect();
    let id = server
        .submit(&json!({"type": "chaos", "path": "/content/dam/slow", "params": {"tasks": modes, "slowMs": 60}}))
        .await;
    let started = std::time::Instant::now();
    loop {
        let (_, job) = server.get(&format!("/api/v1/jobs/{id}")).await;
        if job["counts"]["succeeded"].as_i64().unwrap_or(0) >= 10 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "{job}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, job) = server.action(&id, "pause").await;
    assert_eq!(status, 200, "{job}");
    let paused = server
        .wait_for(&id, &["Paused"], Duration::from_secs(30))
        .await;
    let done_at_pause = paused["counts"]["succeeded"].as_u64().unwrap() as usize;
    assert!(
        done_at_pause < 60,
        "the job ended before the pause: {paused}"
    );
    let (status, job) = server.action(&id, "resume").await;
    assert_eq!(status, 200, "{job}");
    let job = server.wait_done(&id).await;
    assert_eq!(job["state"], "Complete", "{job}");

    let counts: Vec<u64> = server
        .tasks(&id)
        .await
        .iter()
        .filter(|t| t["path"].as_str().unwrap().ends_with("-count"))
        .map(|t| {
            let message = t["message"].as_str().unwrap();
            message.split(' ').nth(1).unwrap().parse().unwrap()
        })
        .collect();
    // One worker runs the tasks in plan order (slow, count, slow, count, ...):
    // one instance up to the pause, a fresh one from the resume on.
    let before = done_at_pause / 2;
    let expected: Vec<u64> = (1..=before as u64)
        .chain(1..=(30 - before) as u64)
        .collect();
    assert_eq!(counts, expected, "paused after {done_at_pause} tasks");
}

#[tokio::test(flavor = "multi_thread")]
async fn pause_then_resume_runs_every_task_exactly_once() {
    let server = Server::start(Options {
        plugins: vec!["wasmq_chaos"],
        workers: Some(1),
        ..Default::default()
    });
    let id = server.submit(&slow_job(12)).await;
    server
        .wait_for(&id, &["Active"], Duration::from_secs(60))
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, job) = server.action(&id, "pause").await;
    assert_eq!(
        (status, job["state"].as_str()),
        (200, Some("Pausing")),
        "{job}"
    );
    let paused = server
        .wait_for(&id, &["Paused"], Duration::from_secs(30))
        .await;
    let done_at_pause = paused["counts"]["succeeded"].as_i64().unwrap();
    assert!(done_at_pause > 0 && done_at_pause < 12, "{paused}");
    assert_eq!(paused["resumable"], true);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (_, still) = server.get(&format!("/api/v1/jobs/{id}")).await;
    assert_eq!(
        still["counts"]["succeeded"], done_at_pause,
        "nothing runs while paused"
    );

    let (status, job) = server.action(&id, "resume").await;
    assert_eq!(
        (status, job["state"].as_str()),
        (200, Some("Ready")),
        "{job}"
    );
    let job = server.wait_done(&id).await;
    assert_eq!(job["state"], "Complete", "{job}");
    let tasks = server.tasks(&id).await;
    assert_eq!(tasks.len(), 12);
    assert!(
        tasks
            .iter()
            .all(|t| t["state"] == "succeeded" && t["attempts"] == 1),
        "{tasks:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn cancel_restart_delete_and_forbidden_transitions() {
    let server = Server::start(Options {
        plugins: vec!["wasmq_chaos"],
        workers: Some(1),
        ..Default::default()
    });
    let id = server.submit(&slow_job(30)).await;
    server
        .wait_for(&id, &["Active"], Duration::from_secs(60))
        .await;

    let (status, body) = server
        .send(server.request(reqwest::Method::DELETE, &format!("/api/v1/jobs/{id}")))
        .await;
    assert_eq!(
        (status, body["error"]["state"].as_str()),
        (409, Some("Active")),
        "an active job stays: {body}"
    );
    let (status, body) = server.action(&id, "restart").await;
    assert_eq!(
        (status, body["error"]["state"].as_str()),
        (409, Some("Active")),
        "{body}"
    );
    let (status, body) = server.action(&id, "launch").await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (404, Some("action")),
        "{body}"
    );

    let (status, body) = server
        .send(
            server
                .request(reqwest::Method::PATCH, &format!("/api/v1/jobs/{id}"))
                .json(&json!({"priority": 7})),
        )
        .await;
    assert_eq!(
        (status, body["priority"].as_i64()),
        (200, Some(7)),
        "{body}"
    );
    let (status, body) = server
        .send(
            server
                .request(reqwest::Method::PATCH, &format!("/api/v1/jobs/{id}"))
                .json(&json!({"state": "Complete"})),
        )
        .await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (400, Some("state")),
        "{body}"
    );

    let (status, body) = server.action(&id, "cancel").await;
    assert_eq!(
        (status, body["state"].as_str()),
        (200, Some("Cancelling")),
        "{body}"
    );
    let job = server.wait_done(&id).await;
    assert_eq!(job["state"], "Cancelled", "{job}");
    assert!(
        job["counts"]["pending"].as_i64().unwrap() > 0,
        "cancelled before the end: {job}"
    );
    let (status, body) = server.action(&id, "resume").await;
    assert_eq!(
        (status, body["error"]["state"].as_str()),
        (409, Some("Cancelled")),
        "{body}"
    );
    let (status, body) = server
        .send(
            server
                .request(reqwest::Method::PATCH, &format!("/api/v1/jobs/{id}"))
                .json(&json!({"priority": 1})),
        )
        .await;
    assert_eq!(status, 409, "{body}");

    // Restart runs it again from scratch.
    let (status, body) = server.action(&id, "restart").await;
    assert_eq!(
        (status, body["state"].as_str()),
        (200, Some("New")),
        "{body}"
    );
    server
        .wait_for(&id, &["Active"], Duration::from_secs(60))
        .await;
    server.action(&id, "cancel").await;
    server.wait_done(&id).await;

    let (status, history) = server.get("/api/v1/history?limit=5").await;
    assert_eq!(status, 200);
    assert_eq!(history["jobs"][0]["id"], id.as_str());

    let response = server
        .request(reqwest::Method::DELETE, &format!("/api/v1/jobs/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 204);
    assert_eq!(server.get(&format!("/api/v1/jobs/{id}")).await.0, 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_job_that_requires_confirmation_waits_for_it() {
    let server = Server::start(Options {
        plugins: vec!["wasmq_chaos"],
        ..Default::default()
    });
    let mut body =
        json!({"type": "chaos", "path": "/content/dam/c", "params": {"tasks": ["ok", "ok"]}});
    body["requireConfirmation"] = json!(true);
    let id = server.submit(&body).await;
    let job = server
        .wait_for(&id, &["Suspended"], Duration::from_secs(60))
        .await;
    assert_eq!(
        (
            job["counts"]["total"].as_i64(),
            job["confirmable"].as_bool()
        ),
        (Some(2), Some(true)),
        "planned, then waits"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        server.get(&format!("/api/v1/jobs/{id}")).await.1["state"],
        "Suspended"
    );
    let (status, job) = server.action(&id, "confirm").await;
    assert_eq!(
        (status, job["state"].as_str()),
        (200, Some("Ready")),
        "{job}"
    );
    assert_eq!(server.wait_done(&id).await["state"], "Complete");
    let (status, body) = server.action(&id, "confirm").await;
    assert_eq!(
        (status, body["error"]["state"].as_str()),
        (409, Some("Complete")),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn retention_purges_old_finished_jobs_and_never_active_ones() {
    let server = Server::start(Options {
        plugins: vec!["wasmq_chaos"],
        args: vec!["--retention-max-jobs", "1", "--retention-days", "30"],
        ..Default::default()
    });
    let mut ids = Vec::new();
    for _ in 0..3 {
        let id = server
            .submit(
                &json!({"type": "chaos", "path": "/content/dam/c", "params": {"tasks": ["ok"]}}),
            )
            .await;
        assert_eq!(server.wait_done(&id).await["state"], "Complete");
        ids.push(id);
    }
    let active = server.submit(&slow_job(30)).await;
    server
        .wait_for(&active, &["Active"], Duration::from_secs(60))
        .await;

    let viewer = server.token("v", "viewer", "default").await;
    let (status, _) = server
        .send(
            server
                .anonymous(reqwest::Method::POST, "/api/v1/purge")
                .bearer_auth(&viewer),
        )
        .await;
    assert_eq!(status, 403);
    let (status, answer) = server
        .send(server.request(reqwest::Method::POST, "/api/v1/purge"))
        .await;
    assert_eq!(
        (status, answer["removed"].as_i64()),
        (200, Some(2)),
        "{answer}"
    );
    assert_eq!(server.get(&format!("/api/v1/jobs/{}", ids[0])).await.0, 404);
    assert_eq!(server.get(&format!("/api/v1/jobs/{}", ids[1])).await.0, 404);
    assert_eq!(
        server.get(&format!("/api/v1/jobs/{}", ids[2])).await.0,
        200,
        "the newest finished job stays"
    );
    assert_eq!(
        server.get(&format!("/api/v1/jobs/{active}")).await.1["state"],
        "Active",
        "active jobs are never purged"
    );
    let (_, answer) = server
        .send(server.request(reqwest::Method::POST, "/api/v1/purge"))
        .await;
    assert_eq!(answer["removed"], 0);
}

#[test]
fn a_bad_purge_schedule_stops_the_server_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(wasmq_e2e::binary())
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--purge-schedule",
            "every night",
        ])
        .arg("--data-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("is not a cron expression"), "{stderr}");
}
