//! Bad requests get a 4xx with a JSON body naming the field and the reason,
//! and create nothing.

use serde_json::{Value, json};
use wasmq_e2e::{Options, Server};

async fn job_count(server: &Server) -> i64 {
    let (status, list) = server.get("/api/v1/jobs").await;
    assert_eq!(status, 200, "{list}");
    list["total"].as_i64().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_submissions_are_refused_with_the_field_named() {
    let server = Server::start(Options {
        plugins: vec!["wasmq_delete"],
        ..Default::default()
    });
    let cases: Vec<(Value, Option<&str>, &str)> = vec![
        (json!({"type": "delete"}), Some("path"), "required"),
        (json!({"path": "/content/dam"}), Some("type"), "required"),
        (
            json!({"type": "nope", "path": "/content/dam"}),
            Some("type"),
            "delete",
        ),
        (
            json!({"type": 7, "path": "/content/dam"}),
            Some("type"),
            "string",
        ),
        (
            json!({"type": "delete", "path": "content/dam"}),
            Some("path"),
            "absolute",
        ),
        (
            json!({"type": "delete", "path": "/content/dam/../etc"}),
            Some("path"),
            "..",
        ),
        (
            json!({"type": "delete", "path": "/content//dam"}),
            Some("path"),
            "empty segments",
        ),
        (
            json!({"type": "delete", "path": "/content/dam/"}),
            Some("path"),
            "empty segments",
        ),
        (
            json!({"type": "delete", "path": "/content/dam", "excludedPaths": ["/content/../x"]}),
            Some("excludedPaths[0]"),
            "..",
        ),
        (
            json!({"type": "delete", "path": "/content/dam", "excludedPaths": ["/content/other"]}),
            Some("excludedPaths[0]"),
            "below",
        ),
        (
            json!({"type": "delete", "path": "/content/dam", "excludedPaths": ["/content/dam/a", 3]}),
            Some("excludedPaths[1]"),
            "string",
        ),
        (
            json!({"type": "delete", "path": "/content/dam", "excludedPaths": "/content/dam/a"}),
            Some("excludedPaths"),
            "array",
        ),
        (
            json!({"type": "delete", "path": "/content/dam", "params": [1]}),
            Some("params"),
            "object",
        ),
        (
            json!({"type": "delete", "path": "/content/dam", "priority": 1.5}),
            Some("priority"),
            "integer",
        ),
        (
            json!({"type": "delete", "path": "/content/dam", "excludePaths": []}),
            Some("excludePaths"),
            "unknown field",
        ),
        (
            json!({"type": "delete", "path": "/content/dam", "locale": "french"}),
            Some("locale"),
            "language tag",
        ),
        (
            json!({"type": "delete", "path": "/content/dam", "submitterEmail": "ana"}),
            Some("submitterEmail"),
            "email",
        ),
        (json!([1, 2]), None, "JSON object"),
    ];
    for (body, field, words) in cases {
        let (status, answer) = server.post("/api/v1/jobs", &body).await;
        assert_eq!(status, 400, "{body} -> {answer}");
        assert_eq!(
            answer["error"]["field"].as_str(),
            field,
            "{body} -> {answer}"
        );
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(words),
            "{body}: {message:?} lacks {words:?}"
        );
    }

    let raw = |content_type: &'static str, body: &'static str| {
        server
            .request(reqwest::Method::POST, "/api/v1/jobs")
            .header("content-type", content_type)
            .body(body)
    };
    let (status, answer) = server.send(raw("application/json", r#"{"type":"#)).await;
    assert_eq!(status, 400);
    assert!(
        answer["error"]["field"].is_null()
            && answer["error"]["message"]
                .as_str()
                .unwrap()
                .contains("JSON")
    );
    let (status, answer) = server
        .send(raw(
            "text/plain",
            r#"{"type":"delete","path":"/content/dam"}"#,
        ))
        .await;
    assert_eq!(status, 415, "{answer}");
    let (status, answer) = server
        .send(
            server
                .request(reqwest::Method::POST, "/api/v1/jobs")
                .header("x-wasmq-tenant", "Bad Tenant")
                .json(&json!({})),
        )
        .await;
    assert_eq!(
        (status, answer["error"]["field"].as_str()),
        (400, Some("X-Wasmq-Tenant"))
    );

    assert_eq!(job_count(&server).await, 0, "nothing was created");

    // A good submission still works; its name is unique per tenant.
    let good = json!({"type": "delete", "path": "/content/dam/none", "name": "nightly"});
    let (status, job) = server.post("/api/v1/jobs", &good).await;
    assert_eq!(status, 202, "{job}");
    assert!(job["id"].is_string() && job["state"] == "New", "{job}");
    let (status, answer) = server.post("/api/v1/jobs", &good).await;
    assert_eq!(
        (status, answer["error"]["field"].as_str()),
        (409, Some("name")),
        "{answer}"
    );
    assert_eq!(job_count(&server).await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_queries_and_unknown_ids() {
    let server = Server::start(Options {
        plugins: vec!["wasmq_delete"],
        ..Default::default()
    });
    let checks: [(&str, u16, Option<&str>); 9] = [
        ("/api/v1/jobs/does-not-exist", 404, Some("id")),
        ("/api/v1/jobs/does-not-exist/tasks", 404, Some("id")),
        ("/api/v1/jobs/does-not-exist/logs", 404, Some("id")),
        ("/api/v1/jobs?state=Bogus", 400, Some("state")),
        ("/api/v1/jobs?limit=0", 400, Some("limit")),
        (
            "/api/v1/jobs?createdAfter=yesterday",
            400,
            Some("createdAfter"),
        ),
        ("/api/v1/assets", 400, Some("path")),
        ("/api/v1/assets?path=/a/../b", 400, Some("path")),
        ("/api/v1/nothing-here", 404, None),
    ];
    for (path, status, field) in checks {
        let (got, body) = server.get(path).await;
        assert_eq!(got, status, "{path}: {body}");
        assert_eq!(body["error"]["field"].as_str(), field, "{path}: {body}");
        assert!(body["error"]["message"].is_string(), "{path}: {body}");
    }
    let (status, body) = server.action("does-not-exist", "cancel").await;
    assert_eq!((status, body["error"]["field"].as_str()), (404, Some("id")));
}

#[tokio::test(flavor = "multi_thread")]
async fn tokens_roles_and_tenants() {
    let server = Server::start(Options {
        plugins: vec!["wasmq_delete"],
        ..Default::default()
    });
    let id = server
        .submit(&json!({"type": "delete", "path": "/content/dam/none"}))
        .await;
    let get = reqwest::Method::GET;
    let post = reqwest::Method::POST;

    // No token, or a wrong one: 401, and nothing is created.
    let (status, body) = server
        .send(server.anonymous(get.clone(), "/api/v1/jobs"))
        .await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (401, Some("Authorization")),
        "{body}"
    );
    let (status, _) = server
        .send(
            server
                .anonymous(get.clone(), "/api/v1/jobs")
                .bearer_auth("wq_nope"),
        )
        .await;
    assert_eq!(status, 401);
    let (status, _) = server
        .send(
            server
                .anonymous(post.clone(), "/api/v1/jobs")
                .json(&json!({"type": "delete", "path": "/content/dam"})),
        )
        .await;
    assert_eq!(status, 401);
    assert_eq!(job_count(&server).await, 1);
    assert_eq!(
        server
            .send(server.anonymous(get.clone(), "/healthz"))
            .await
            .0,
        200,
        "health needs no token"
    );

    // A viewer reads but may not act.
    let viewer = server.token("dashboard", "viewer", "default").await;
    let (status, _) = server
        .send(
            server
                .anonymous(get.clone(), &format!("/api/v1/jobs/{id}"))
                .bearer_auth(&viewer),
        )
        .await;
    assert_eq!(status, 200);
    let (status, body) = server
        .send(
            server
                .anonymous(post.clone(), &format!("/api/v1/jobs/{id}/cancel"))
                .bearer_auth(&viewer),
        )
        .await;
    assert_eq!(status, 403, "{body}");

    // A submitter of another tenant sees none of this tenant's jobs, and its own job records its name.
    let other = server.token("ci-bot", "submitter", "other").await;
    let (status, body) = server
        .send(
            server
                .anonymous(get.clone(), &format!("/api/v1/jobs/{id}"))
                .bearer_auth(&other),
        )
        .await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (404, Some("id")),
        "another tenant's job is not revealed: {body}"
    );
    let (_, list) = server
        .send(
            server
                .anonymous(get.clone(), "/api/v1/jobs")
                .bearer_auth(&other),
        )
        .await;
    assert_eq!(list["total"], 0);
    let (status, body) = server
        .send(
            server
                .anonymous(get.clone(), "/api/v1/jobs")
                .bearer_auth(&other)
                .header("x-wasmq-tenant", "default"),
        )
        .await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (403, Some("X-Wasmq-Tenant")),
        "{body}"
    );
    let (status, job) = server
        .send(
            server
                .anonymous(post.clone(), "/api/v1/jobs")
                .bearer_auth(&other)
                .json(&json!({"type": "delete", "path": "/content/dam/x"})),
        )
        .await;
    assert_eq!(
        (status, job["createdBy"].as_str(), job["tenant"].as_str()),
        (202, Some("ci-bot"), Some("other")),
        "{job}"
    );
    let (status, _) = server
        .send(
            server
                .anonymous(get.clone(), "/api/v1/tokens")
                .bearer_auth(&other),
        )
        .await;
    assert_eq!(status, 403, "only admins manage tokens");

    // The admin may look into another tenant.
    let (_, list) = server
        .send(
            server
                .request(get.clone(), "/api/v1/jobs")
                .header("x-wasmq-tenant", "other"),
        )
        .await;
    assert_eq!(list["total"], 1);

    // Bad token requests, then revocation.
    for (body, field) in [
        (
            json!({"name": "x", "role": "root", "tenant": "default"}),
            "role",
        ),
        (
            json!({"name": "x", "role": "viewer", "tenant": "Not Valid"}),
            "tenant",
        ),
        (json!({"role": "viewer", "tenant": "default"}), "name"),
    ] {
        let (status, answer) = server.post("/api/v1/tokens", &body).await;
        assert_eq!(
            (status, answer["error"]["field"].as_str()),
            (400, Some(field)),
            "{answer}"
        );
    }
    let (_, tokens) = server.get("/api/v1/tokens").await;
    let tokens = tokens["tokens"].as_array().unwrap().clone();
    assert_eq!(tokens.len(), 3);
    assert!(
        tokens
            .iter()
            .all(|t| t.get("token").is_none() && t.get("hash").is_none()),
        "no secrets listed"
    );
    let viewer_id = tokens.iter().find(|t| t["name"] == "dashboard").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, _) = server
        .send(server.request(
            reqwest::Method::DELETE,
            &format!("/api/v1/tokens/{viewer_id}"),
        ))
        .await;
    assert_eq!(status, 204);
    let (status, _) = server
        .send(server.anonymous(get, "/api/v1/jobs").bearer_auth(&viewer))
        .await;
    assert_eq!(status, 401, "a revoked token no longer works");
}

#[tokio::test(flavor = "multi_thread")]
async fn small_jobs_are_answered_within_the_request() {
    let server = Server::start(Options {
        plugins: vec!["wasmq_chaos"],
        args: vec!["--sync-threshold", "3", "--sync-threshold-for", "other=0"],
        ..Default::default()
    });
    let small = json!({"type": "chaos", "path": "/content/dam/c", "params": {"tasks": ["ok", "fail", "ok"]}});
    let (status, job) = server.post("/api/v1/jobs", &small).await;
    assert_eq!(
        (status, job["state"].as_str()),
        (200, Some("Complete")),
        "{job}"
    );
    let items = job["tasks"].as_array().unwrap();
    assert_eq!(items.len(), 3);
    assert_eq!(
        (items[1]["state"].as_str(), items[1]["code"].as_i64()),
        (Some("failed"), Some(422))
    );

    let big =
        json!({"type": "chaos", "path": "/content/dam/c", "params": {"tasks": vec!["ok"; 4]}});
    let (status, job) = server.post("/api/v1/jobs", &big).await;
    assert_eq!(status, 202, "{job}");
    assert!(job.get("tasks").is_none());
    assert_eq!(
        server.wait_done(job["id"].as_str().unwrap()).await["state"],
        "Complete"
    );

    let mut confirm = small.clone();
    confirm["requireConfirmation"] = json!(true);
    let (status, job) = server.post("/api/v1/jobs", &confirm).await;
    assert_eq!(
        (status, job["state"].as_str()),
        (202, Some("Suspended")),
        "a job awaiting confirmation is not waited for: {job}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn openapi_describes_every_route_and_every_described_route_exists() {
    let server = Server::start(Options {
        plugins: vec!["wasmq_delete"],
        ..Default::default()
    });
    let (status, spec) = server
        .send(server.anonymous(reqwest::Method::GET, "/openapi.json"))
        .await;
    assert_eq!(status, 200);
    assert!(
        spec["openapi"].as_str().unwrap().starts_with("3."),
        "{spec}"
    );
    let paths = spec["paths"].as_object().unwrap();
    for expected in [
        "/healthz",
        "/api/v1/jobs",
        "/api/v1/jobs/{id}",
        "/api/v1/jobs/{id}/{action}",
        "/api/v1/jobs/{id}/tasks",
        "/api/v1/jobs/{id}/logs",
        "/api/v1/jobs/{id}/logs/download",
        "/api/v1/jobs/{id}/report",
        "/api/v1/history",
        "/api/v1/plugins",
        "/api/v1/assets",
        "/api/v1/tokens",
        "/api/v1/tokens/{id}",
        "/api/v1/purge",
        "/api/v1/schedules",
        "/api/v1/schedules/{id}",
        "/bin/guides/v1/assets/process",
        "/bin/guides/v1/assets/process/status",
        "/bin/guides/v1/assets/process/history",
    ] {
        assert!(paths.contains_key(expected), "{expected} is not described");
    }
    assert!(spec["components"]["securitySchemes"]["token"].is_object());
    // Every described operation is served: no "no such endpoint" answer, no 5xx.
    for (path, operations) in paths {
        for method in operations.as_object().unwrap().keys() {
            let concrete = path
                .replace("{id}", "no-such-id")
                .replace("{action}", "cancel");
            let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let (status, body) = server
                .send(server.request(method.clone(), &concrete).json(&json!({})))
                .await;
            assert!(status < 500, "{method} {concrete}: {status} {body}");
            assert_ne!(
                body["error"]["message"], "no such endpoint",
                "{method} {concrete} is described but not served"
            );
        }
    }
}
