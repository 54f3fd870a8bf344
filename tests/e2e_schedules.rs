//! Scheduled jobs: a one-off `runAt` waits until its time; a recurring
//! schedule creates a job on each tick until it is deleted.

use std::time::Duration;

use serde_json::{Value, json};
use wasmq_e2e::{Options, Server};

#[tokio::test(flavor = "multi_thread")]
async fn run_at_waits_for_its_time() {
    let server = Server::start(Options {
        plugins: vec!["wasmq_chaos"],
        ..Default::default()
    });
    let body = json!({"type": "chaos", "path": "/content/dam/c", "params": {"tasks": ["ok"]}, "runAt": wasmq_e2e::timestamp_in(Duration::from_millis(3000))});
    let id = server.submit(&body).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let (_, job) = server.get(&format!("/api/v1/jobs/{id}")).await;
    assert_eq!(
        (job["state"].as_str(), job["scheduled"].as_bool()),
        (Some("New"), Some(true)),
        "{job}"
    );
    assert!(job["runAt"].is_string());
    let job = server.wait_done(&id).await;
    assert_eq!(job["state"], "Complete");

    let (status, answer) = server
        .post("/api/v1/jobs", &json!({"type": "chaos", "path": "/content/dam/c", "params": {"tasks": []}, "runAt": "soon"}))
        .await;
    assert_eq!(
        (status, answer["error"]["field"].as_str()),
        (400, Some("runAt")),
        "{answer}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_recurring_schedule_creates_a_job_per_tick() {
    let server = Server::start(Options {
        plugins: vec!["wasmq_chaos"],
        ..Default::default()
    });
    let template = json!({"type": "chaos", "path": "/content/dam/c", "params": {"tasks": ["ok"]}, "name": "nightly"});
    for (body, field) in [
        (
            json!({"name": "bad", "cron": "every second", "job": template}),
            "cron",
        ),
        (
            json!({"name": "bad", "cron": "* * * * *", "job": {"type": "nope", "path": "/content/dam"}}),
            "job.type",
        ),
        (
            json!({"name": "bad", "cron": "* * * * *", "job": {"type": "chaos", "path": "relative"}}),
            "job.path",
        ),
        (json!({"cron": "* * * * *", "job": template}), "name"),
    ] {
        let (status, answer) = server.post("/api/v1/schedules", &body).await;
        assert_eq!(
            (status, answer["error"]["field"].as_str()),
            (400, Some(field)),
            "{answer}"
        );
    }

    let (status, schedule) = server
        .post(
            "/api/v1/schedules",
            &json!({"name": "tick", "cron": "*/2 * * * * *", "job": template}),
        )
        .await;
    assert_eq!(status, 201, "{schedule}");
    let schedule_id = schedule["id"].as_str().unwrap().to_string();
    let (status, _) = server
        .post(
            "/api/v1/schedules",
            &json!({"name": "tick", "cron": "* * * * *", "job": template}),
        )
        .await;
    assert_eq!(status, 409, "schedule names are unique per tenant");

    let made = |list: &Value| -> Vec<Value> {
        list["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|j| j["scheduleId"] == schedule_id.as_str())
            .cloned()
            .collect()
    };
    let start = std::time::Instant::now();
    loop {
        let (_, list) = server.get("/api/v1/jobs?limit=100").await;
        if made(&list).len() >= 2 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "two ticks in 20 s: {list}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (status, _) = server
        .send(server.request(
            reqwest::Method::DELETE,
            &format!("/api/v1/schedules/{schedule_id}"),
        ))
        .await;
    assert_eq!(status, 204);
    // A tick already under way when the schedule went may still finish its job.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, list) = server.get("/api/v1/jobs?limit=100").await;
    let count = made(&list).len();
    for job in made(&list) {
        assert_eq!(
            server.wait_done(job["id"].as_str().unwrap()).await["state"],
            "Complete"
        );
    }
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (_, list) = server.get("/api/v1/jobs?limit=100").await;
    assert_eq!(
        made(&list).len(),
        count,
        "no job after the schedule is deleted"
    );
    let (_, schedules) = server.get("/api/v1/schedules").await;
    assert_eq!(schedules["schedules"].as_array().unwrap().len(), 0);
}
