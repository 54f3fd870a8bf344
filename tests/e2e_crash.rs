//! A server killed with SIGKILL in the middle of a job and started again on
//! the same data directory: the job goes on, nothing is lost, nothing finished runs twice.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::json;
use wasmq_e2e::{Options, Server};

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_mid_job_then_restart_finishes_every_task_once() {
    let mut server = Server::start(Options {
        plugins: vec!["wasmq_chaos"],
        workers: Some(1),
        ..Default::default()
    });
    let id = server
        .submit(&json!({"type": "chaos", "path": "/content/dam/crash", "params": {"tasks": vec!["slow"; 25]}}))
        .await;
    server
        .wait_for(&id, &["Active"], Duration::from_secs(60))
        .await;
    tokio::time::sleep(Duration::from_millis(800)).await;

    let before: HashMap<String, serde_json::Value> = server
        .tasks(&id)
        .await
        .into_iter()
        .map(|t| (t["path"].as_str().unwrap().to_string(), t))
        .collect();
    let finished: Vec<&serde_json::Value> = before
        .values()
        .filter(|t| t["state"] == "succeeded")
        .collect();
    assert!(
        !finished.is_empty() && finished.len() < 25,
        "kill in the middle: {} done",
        finished.len()
    );

    server.kill_and_restart();
    let job = server.wait_done(&id).await;
    assert_eq!(job["state"], "Complete", "{job}");
    assert_eq!(
        (
            job["counts"]["succeeded"].as_i64(),
            job["counts"]["total"].as_i64()
        ),
        (Some(25), Some(25))
    );

    let after = server.tasks(&id).await;
    assert_eq!(after.len(), 25, "no task lost or added");
    for task in &after {
        assert_eq!(task["state"], "succeeded", "{task}");
        let was = &before[task["path"].as_str().unwrap()];
        if was["state"] == "succeeded" {
            assert_eq!(task["attempts"], 1, "a finished task ran again: {task}");
            assert_eq!(
                task["finishedAt"], was["finishedAt"],
                "a finished task ran again: {task}"
            );
        } else {
            assert!(task["attempts"].as_i64().unwrap() <= 2, "{task}");
        }
    }
    let (_, logs) = server
        .get(&format!("/api/v1/jobs/{id}/logs?limit=1000"))
        .await;
    let complete = logs["lines"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l.as_str().unwrap().contains("job complete"))
        .count();
    assert_eq!(complete, 1, "{logs}");
}
