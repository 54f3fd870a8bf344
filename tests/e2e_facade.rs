//! The compatibility facade speaks the asset-processing API's paths and field
//! names: process, status, logs, download, cancel, resume, history.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wasmq_e2e::{Options, Server};

const BASE: &str = "/bin/guides/v1/assets/process";

async fn status_until(server: &Server, id: &str, wanted: &str) -> Value {
    let start = Instant::now();
    loop {
        let (code, status) = server
            .get(&format!("{BASE}/status?processingId={id}"))
            .await;
        assert_eq!(code, 200, "{status}");
        if status["status"] == wanted {
            return status;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "still {status}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_processing_api_runs_and_reports_jobs() {
    let server = Server::start(Options {
        plugins: vec!["wasmq_chaos"],
        workers: Some(1),
        ..Default::default()
    });
    let body = json!({"path": "/content/dam/c", "excludedPaths": ["/content/dam/c/x"], "type": "chaos", "params": {"tasks": ["ok", "ok"]}});
    let (code, answer) = server.post(BASE, &body).await;
    assert_eq!(code, 202, "{answer}");
    let id = answer["processingId"].as_str().unwrap().to_string();
    assert_eq!(
        answer.as_object().unwrap().len(),
        1,
        "only processingId: {answer}"
    );

    let status = status_until(&server, &id, "SUCCESS").await;
    for field in [
        "processingId",
        "path",
        "excludedPaths",
        "status",
        "triggeredCount",
        "startedAt",
        "completedAt",
        "hasLogs",
        "createdBy",
        "type",
        "migrationSet",
        "eta",
        "comments",
        "restartable",
        "resumable",
        "cancellable",
    ] {
        assert!(status.get(field).is_some(), "{field} missing: {status}");
    }
    assert_eq!(status["excludedPaths"], json!(["/content/dam/c/x"]));
    assert_eq!(
        (status["triggeredCount"].as_i64(), status["type"].as_str()),
        (Some(2), Some("chaos"))
    );
    assert_eq!(
        status["migrationSet"],
        json!({"totalFiles": 2, "calculationStatus": "DONE"})
    );
    assert_eq!(
        (status["hasLogs"].as_bool(), status["createdBy"].as_str()),
        (Some(true), Some("admin"))
    );

    let (_, logs) = server
        .get(&format!("{BASE}/logs?processingId={id}&tail=2"))
        .await;
    assert_eq!(logs["lines"].as_array().unwrap().len(), 2, "{logs}");
    assert_eq!(logs["hasMore"], false);
    let zip = server
        .request(
            reqwest::Method::GET,
            &format!("{BASE}/logs/download?processingId={id}"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(zip.headers()["content-type"], "application/zip");
    assert!(zip.bytes().await.unwrap().starts_with(b"PK"));

    // Cancel a running one with the id in the body; resuming a cancelled one is refused.
    let slow =
        json!({"path": "/content/dam/s", "type": "chaos", "params": {"tasks": vec!["slow"; 40]}});
    let (_, answer) = server.post(BASE, &slow).await;
    let slow_id = answer["processingId"].as_str().unwrap().to_string();
    status_until(&server, &slow_id, "RUNNING").await;
    // RUNNING also covers Preparing, which a cancel ends at once: wait for tasks to run.
    server
        .wait_for(&slow_id, &["Active"], Duration::from_secs(60))
        .await;
    let (code, status) = server
        .post(&format!("{BASE}/cancel"), &json!({"processingId": slow_id}))
        .await;
    assert_eq!(
        (code, status["status"].as_str()),
        (200, Some("RUNNING")),
        "cancelling drains first: {status}"
    );
    let status = status_until(&server, &slow_id, "CANCELLED").await;
    assert_eq!(status["restartable"], true);
    let (code, body) = server
        .post(&format!("{BASE}/resume?processingId={slow_id}"), &json!({}))
        .await;
    assert_eq!(
        (code, body["error"]["state"].as_str()),
        (409, Some("Cancelled")),
        "{body}"
    );

    let (_, history) = server.get(&format!("{BASE}/history")).await;
    let runs = history["executionHistory"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0]["processingId"], slow_id.as_str(), "newest first");

    let (code, body) = server.get(&format!("{BASE}/status")).await;
    assert_eq!(
        (code, body["error"]["field"].as_str()),
        (400, Some("processingId"))
    );
    let (code, _) = server
        .get(&format!("{BASE}/status?processingId=nope"))
        .await;
    assert_eq!(code, 404);
    let (code, body) = server
        .post(BASE, &json!({"path": "content", "type": "chaos"}))
        .await;
    assert_eq!((code, body["error"]["field"].as_str()), (400, Some("path")));
    let (code, _) = server
        .send(server.anonymous(reqwest::Method::GET, &format!("{BASE}/history")))
        .await;
    assert_eq!(code, 401);
}
