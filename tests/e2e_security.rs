//! Attacks on a running server: path traversal in every path field, a hostile
//! plugin, oversized bodies, and tokens of another tenant; each gets a clear error and changes nothing.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::Path;

use serde_json::{Value, json};
use wasmq_e2e::{Options, Server, task};

/// Sends one HTTP/1.1 request exactly as written (no URL normalization, so
/// `..` and percent-encoded forms reach the server): the status and JSON body.
fn raw(
    server: &Server,
    method: &str,
    target: &str,
    token: Option<&str>,
    head: &str,
    body: &[u8],
) -> (u16, Value) {
    let addr = server.url.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let request = format!(
        "{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{auth}{head}\r\n"
    );
    stream.write_all(request.as_bytes()).unwrap();
    // The server may answer and close before the whole body is sent.
    let _ = stream.write_all(body);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer).into_owned();
    let (headers, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = headers
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {text:?}"));
    let body = if headers
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// Every file under the asset, rendition and publish stores, with its size,
/// but job reports (`/system/...`): what an attack must not change.
fn stored_files(server: &Server) -> BTreeMap<String, u64> {
    fn walk(dir: &Path, base: &Path, out: &mut BTreeMap<String, u64>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, base, out);
            } else {
                let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
                let name = path.strip_prefix(base).unwrap().display().to_string();
                if !name.contains("/system/") {
                    out.insert(name, size);
                }
            }
        }
    }
    let mut out = BTreeMap::new();
    for store in ["assets", "renditions", "published"] {
        walk(&server.data_dir().join(store), &server.data_dir(), &mut out);
    }
    out
}

async fn job_total(server: &Server) -> i64 {
    server.get("/api/v1/jobs").await.1["total"]
        .as_i64()
        .unwrap()
}

fn assert_refused(what: &str, (status, body): &(u16, Value), want: u16, field: &str) {
    assert_eq!(*status, want, "{what}: {body}");
    assert_eq!(
        body["error"]["field"].as_str(),
        Some(field),
        "{what}: {body}"
    );
    assert!(body["error"]["message"].is_string(), "{what}: {body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn traversal_in_every_path_field_is_refused_naming_it() {
    let server = Server::start(Options {
        plugins: vec!["wasmq_delete", "wasmq_move", "wasmq_metadata_export"],
        ..Default::default()
    });
    let files = tempfile::tempdir().unwrap();
    std::fs::write(files.path().join("x.txt"), "keep me").unwrap();
    server.import(files.path(), "/content/dam/a");
    let files_before = stored_files(&server);
    let admin = server.admin_token();

    // JSON fields: submissions (native and processing API), params targets, schedules.
    let bad_paths = [
        "/content/dam/..",
        "/content/dam/../../etc/passwd",
        "../etc/passwd",
        "/content/./dam",
        "/content\\..\\etc",
        "/content/dam/\u{0}x",
        "/content//dam",
    ];
    for bad in bad_paths {
        let cases: Vec<(&str, Value, &str)> = vec![
            (
                "/api/v1/jobs",
                json!({"type": "delete", "path": bad}),
                "path",
            ),
            (
                "/api/v1/jobs",
                json!({"type": "delete", "path": "/content/dam", "excludedPaths": ["/content/dam/a", bad]}),
                "excludedPaths[1]",
            ),
            (
                "/api/v1/jobs",
                json!({"type": "move", "path": "/content/dam/a", "params": {"destination": bad}}),
                "params.destination",
            ),
            (
                "/api/v1/jobs",
                json!({"type": "metadata-export", "path": "/content/dam", "params": {"target": bad}}),
                "params.target",
            ),
            (
                "/bin/guides/v1/assets/process",
                json!({"type": "delete", "path": bad}),
                "path",
            ),
            (
                "/api/v1/schedules",
                json!({"name": "n", "cron": "0 3 * * *", "job": {"type": "delete", "path": bad}}),
                "job.path",
            ),
        ];
        for (route, body, field) in cases {
            let answer = server.post(route, &body).await;
            assert_refused(&format!("POST {route} {body}"), &answer, 400, field);
        }
    }

    // URL paths, sent raw: `..`, percent-encoded dots, slashes and
    // backslashes, NUL, empty segments, on every asset route.
    // Uploads (PUT) carry a body that must not land anywhere.
    let cases: [(&str, &str, u16, &str); 22] = [
        (
            "GET",
            "/api/v1/assets/content/dam/../../etc/passwd",
            400,
            "path",
        ),
        (
            "GET",
            "/api/v1/assets/content/%2e%2e/%2E%2E/etc/passwd",
            400,
            "path",
        ),
        (
            "GET",
            "/api/v1/assets/content/dam%2F..%2F..%2Fetc",
            400,
            "path",
        ),
        (
            "GET",
            "/api/v1/assets/content/dam/..%5C..%5Cetc",
            400,
            "path",
        ),
        ("GET", "/api/v1/assets/content/dam/a%00b", 400, "path"),
        ("GET", "/api/v1/assets//etc/passwd", 400, "path"),
        (
            "GET",
            "/api/v1/assets/content/dam/a/x.txt?rendition=../../x",
            400,
            "rendition",
        ),
        (
            "GET",
            "/api/v1/assets/content/dam/a/x.txt?rendition=..%2F..%2Fx",
            400,
            "rendition",
        ),
        (
            "GET",
            "/api/v1/assets/content/dam/a/x.txt?rendition=%00",
            400,
            "rendition",
        ),
        (
            "GET",
            "/api/v1/assets?path=/content/%2e%2e/etc",
            400,
            "path",
        ),
        (
            "GET",
            "/api/v1/assets?path=%2Fcontent%5C..%5Cetc",
            400,
            "path",
        ),
        ("GET", "/api/v1/renditions/content/%2e%2e/etc", 400, "path"),
        (
            "GET",
            "/api/v1/published/content/dam/..%2F..%2Fetc",
            400,
            "path",
        ),
        (
            "GET",
            "/published/default/content/%2e%2e/%2e%2e/etc/passwd",
            400,
            "path",
        ),
        (
            "GET",
            "/published/%2e%2e/default/content/dam/a/x.txt",
            400,
            "tenant",
        ),
        (
            "GET",
            "/published/..%2Fdefault/content/dam/a/x.txt",
            400,
            "tenant",
        ),
        ("GET", "/api/v1/jobs/..%2F..%2Fetc%2Fpasswd", 404, "id"),
        ("GET", "/api/v1/jobs/%2e%2e/report", 404, "id"),
        (
            "PUT",
            "/api/v1/assets/content/%2e%2e/%2e%2e/owned.txt",
            400,
            "path",
        ),
        (
            "PUT",
            "/api/v1/assets/content/dam/..%5Cowned.txt",
            400,
            "path",
        ),
        (
            "PUT",
            "/api/v1/assets/content/dam/a/x.txt?rendition=../../owned",
            400,
            "rendition",
        ),
        (
            "PUT",
            "/api/v1/assets/content/dam/a/x.txt?rendition=.hidden",
            400,
            "rendition",
        ),
    ];
    for (method, target, status, field) in cases {
        let body: &[u8] = if method == "PUT" { b"owned" } else { b"" };
        let head = format!(
            "Content-Type: text/plain\r\nContent-Length: {}\r\n",
            body.len()
        );
        let answer = raw(&server, method, target, Some(&admin), &head, body);
        assert_refused(&format!("{method} {target}"), &answer, status, field);
    }

    // Nothing changed: no job, no schedule, the same files, the asset intact.
    assert_eq!(job_total(&server).await, 0);
    assert_eq!(
        server.get("/api/v1/schedules").await.1["schedules"],
        json!([])
    );
    assert_eq!(stored_files(&server), files_before);
    assert_eq!(
        server.download("/content/dam/a/x.txt", None).await,
        (200, b"keep me".to_vec())
    );
    // An absolute path is a path in the tenant's own tree, not on the host.
    let (status, _) = server
        .upload("/etc/passwd", None, b"mine".to_vec(), "text/plain")
        .await;
    assert_eq!(status, 201);
    assert!(server.asset_file("/etc/passwd").is_file());
    assert_ne!(std::fs::read("/etc/passwd").unwrap(), b"mine");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hostile_plugin_is_refused_everything_outside_its_job() {
    let server = Server::start(Options {
        plugins: vec!["wasmq_hostile"],
        workers: Some(2),
        ..Default::default()
    });
    let files = tempfile::tempdir().unwrap();
    std::fs::write(files.path().join("s.txt"), "top secret").unwrap();
    server.import(files.path(), "/content/secret");
    let outside = tempfile::tempdir().unwrap();
    let planted = outside.path().join("planted.txt");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let files_before = stored_files(&server);

    let modes = [
        "read-outside",
        "write-outside",
        "traverse",
        "undeclared",
        "fs-read",
        "fs-write",
        "socket",
        "env",
    ];
    let id = server
        .submit(
            &json!({"type": "hostile", "path": "/content/dam/h", "params": {
                "tasks": modes,
                "target": "/content/secret/s.txt",
                "file": planted.display().to_string(),
                "address": address,
            }}),
        )
        .await;
    let job = server.wait_done(&id).await;
    assert_eq!(job["state"], "Complete", "{job}");
    let tasks = server.tasks(&id).await;
    let expect: [(&str, i64, &[&str]); 8] = [
        (
            "0-read-outside",
            403,
            &["/content/secret/s.txt is outside this job's scope"],
        ),
        (
            "1-write-outside",
            403,
            &["/content/secret/s.txt is outside this job's scope"],
        ),
        (
            "2-traverse",
            400,
            &["must not contain '.' or '..' segments"],
        ),
        (
            "3-undeclared",
            403,
            &["capability `metadata` was not declared"],
        ),
        (
            "4-fs-read",
            403,
            &["WASI file open", "Capabilities insufficient"],
        ),
        (
            "5-fs-write",
            403,
            &["WASI file create", "Capabilities insufficient"],
        ),
        ("6-socket", 403, &["WASI socket", "access-denied"]),
        ("7-env", 403, &["WASI environment: empty"]),
    ];
    for (suffix, code, words) in expect {
        let t = task(&tasks, suffix);
        let message = t["message"].as_str().unwrap();
        assert_eq!(
            (t["state"].as_str(), t["code"].as_i64()),
            (Some("failed"), Some(code)),
            "{suffix}: {t}"
        );
        assert!(
            message.starts_with("refused: ") && words.iter().all(|w| message.contains(w)),
            "{suffix}: {message:?} lacks {words:?}"
        );
    }
    eprintln!(
        "WASI refusals: {:?}",
        ["4-fs-read", "5-fs-write", "6-socket"].map(|s| task(&tasks, s)["message"].clone())
    );

    // Nothing outside changed, nothing connected, and the host goes on.
    assert!(!planted.exists(), "the plugin wrote a host file");
    assert!(listener.accept().is_err(), "the plugin opened a connection");
    assert_eq!(stored_files(&server), files_before);
    assert_eq!(
        server.download("/content/secret/s.txt", None).await,
        (200, b"top secret".to_vec())
    );
    assert!(server.is_alive().await);
    let again = server
        .submit(&json!({"type": "hostile", "path": "/content/dam/h", "params": {"tasks": ["write"], "bytes": 3}}))
        .await;
    assert_eq!(server.wait_done(&again).await["counts"]["succeeded"], 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn oversized_requests_and_uploads_get_413_and_store_nothing() {
    let server = Server::start(Options {
        plugins: vec!["wasmq_delete"],
        args: vec!["--max-request-bytes", "4096", "--max-upload-bytes", "65536"],
        ..Default::default()
    });
    let admin = server.admin_token();
    let files_before = stored_files(&server);
    let too_large = |what: &str, answer: &(u16, Value), limit: &str| {
        assert_refused(what, answer, 413, "body");
        let message = answer.1["error"]["message"].as_str().unwrap();
        assert!(message.contains(limit), "{what}: {message}");
    };

    // A submission over the limit, declared or streamed in chunks.
    let big = json!({"type": "delete", "path": "/content/dam/x", "description": "d".repeat(8000)});
    let answer = server.post("/api/v1/jobs", &big).await;
    too_large("declared", &answer, "4096 bytes");
    let text = big.to_string();
    let chunked = format!("{:x}\r\n{text}\r\n0\r\n\r\n", text.len());
    let answer = raw(
        &server,
        "POST",
        "/api/v1/jobs",
        Some(&admin),
        "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n",
        chunked.as_bytes(),
    );
    too_large("chunked", &answer, "4096 bytes");
    let answer = server
        .post(
            "/api/v1/tokens",
            &json!({"name": "n".repeat(5000), "role": "viewer", "tenant": "default"}),
        )
        .await;
    too_large("token", &answer, "4096 bytes");
    // Under the limit, the same request works.
    let small =
        json!({"type": "delete", "path": "/content/dam/x", "description": "d".repeat(3000)});
    assert_eq!(server.post("/api/v1/jobs", &small).await.0, 202);

    // Uploads have their own limit.
    let answer = server
        .upload(
            "/content/dam/big.bin",
            None,
            vec![7u8; 65537],
            "application/octet-stream",
        )
        .await;
    too_large("upload", &answer, "65536 bytes");
    let chunks: String = (0..20)
        .map(|_| format!("1000\r\n{}\r\n", "z".repeat(4096)))
        .collect();
    let answer = raw(
        &server,
        "PUT",
        "/api/v1/assets/content/dam/streamed.bin",
        Some(&admin),
        "Content-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n",
        format!("{chunks}0\r\n\r\n").as_bytes(),
    );
    too_large("chunked upload", &answer, "65536 bytes");
    assert_eq!(server.download("/content/dam/big.bin", None).await.0, 404);
    assert_eq!(
        server.download("/content/dam/streamed.bin", None).await.0,
        404
    );
    assert_eq!(stored_files(&server), files_before, "nothing stored");
    assert_eq!(job_total(&server).await, 1);
    assert_eq!(
        server.get("/api/v1/tokens").await.1["tokens"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let (status, _) = server
        .upload(
            "/content/dam/ok.bin",
            None,
            vec![7u8; 65536],
            "application/octet-stream",
        )
        .await;
    assert_eq!(status, 201, "an upload at the limit is stored");
}

/// What `token` reads at `paths`, and the binary of alpha's asset.
async fn tenant_state(server: &Server, token: &str, paths: &[String]) -> Vec<(u16, Value)> {
    let mut state = Vec::new();
    for path in paths {
        state.push(as_token(server, token, reqwest::Method::GET, path, None).await);
    }
    let response = server
        .anonymous(reqwest::Method::GET, "/api/v1/assets/content/dam/a.txt")
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    state.push((status, json!(response.text().await.unwrap())));
    state
}

/// A request as `token`: method, path, optional JSON body.
async fn as_token(
    server: &Server,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = server.anonymous(method, path).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    server.send(request).await
}

#[tokio::test(flavor = "multi_thread")]
async fn another_tenant_sees_and_controls_nothing_and_a_submitter_administers_nothing() {
    use reqwest::Method;
    let server = Server::start(Options {
        plugins: vec!["wasmq_delete"],
        ..Default::default()
    });
    let alice = server.token("alice", "submitter", "alpha").await;
    let bob = server.token("bob", "submitter", "beta").await;

    // Alpha's things: an asset, a finished job (report, inbox entry), a job
    // awaiting confirmation, a webhook, a schedule.
    let (status, _) = server
        .send(
            server
                .anonymous(Method::PUT, "/api/v1/assets/content/dam/a.txt")
                .bearer_auth(&alice)
                .header("content-type", "text/plain")
                .body("alpha's"),
        )
        .await;
    assert_eq!(status, 201);
    let job = |extra: Value| {
        let mut body = json!({"type": "delete", "path": "/content/dam/none"});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        body
    };
    let (_, finished) = as_token(
        &server,
        &alice,
        Method::POST,
        "/api/v1/jobs",
        Some(job(json!({}))),
    )
    .await;
    let finished = finished["id"].as_str().unwrap().to_string();
    let (_, waiting) = as_token(
        &server,
        &alice,
        Method::POST,
        "/api/v1/jobs",
        Some(job(json!({"requireConfirmation": true}))),
    )
    .await;
    let waiting = waiting["id"].as_str().unwrap().to_string();
    let (_, hook) = as_token(
        &server,
        &alice,
        Method::POST,
        "/api/v1/webhooks",
        Some(json!({"url": "http://127.0.0.1:9/hook"})),
    )
    .await;
    let hook = hook["id"].as_str().unwrap().to_string();
    let (_, schedule) = as_token(
        &server,
        &alice,
        Method::POST,
        "/api/v1/schedules",
        Some(json!({"name": "nightly", "cron": "0 3 * * *", "job": job(json!({}))})),
    )
    .await;
    let schedule = schedule["id"].as_str().unwrap().to_string();
    let inbox_entry = loop {
        let (_, inbox) = as_token(&server, &alice, Method::GET, "/api/v1/inbox", None).await;
        if let Some(entry) = inbox["entries"].as_array().unwrap().first() {
            break entry["id"].as_str().unwrap().to_string();
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    // The job awaiting confirmation is Suspended once its plan ran.
    loop {
        let (_, job) = as_token(
            &server,
            &alice,
            Method::GET,
            &format!("/api/v1/jobs/{waiting}"),
            None,
        )
        .await;
        if job["state"] == "Suspended" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let watched = [
        format!("/api/v1/jobs/{finished}"),
        format!("/api/v1/jobs/{waiting}"),
        "/api/v1/webhooks".to_string(),
        "/api/v1/schedules".to_string(),
        "/api/v1/inbox".to_string(),
        "/api/v1/assets?path=/content&recursive=true".to_string(),
    ];
    let before = tenant_state(&server, &alice, &watched).await;
    assert_eq!(before[1].1["state"], "Suspended");

    // Bob, in tenant beta, gets 404 for each of them, as if they did not exist.
    let not_found: Vec<(Method, String, Option<Value>, &str)> = vec![
        (Method::GET, format!("/api/v1/jobs/{finished}"), None, "id"),
        (
            Method::GET,
            format!("/api/v1/jobs/{finished}/tasks"),
            None,
            "id",
        ),
        (
            Method::GET,
            format!("/api/v1/jobs/{finished}/logs"),
            None,
            "id",
        ),
        (
            Method::GET,
            format!("/api/v1/jobs/{finished}/logs/download"),
            None,
            "id",
        ),
        (
            Method::GET,
            format!("/api/v1/jobs/{finished}/report"),
            None,
            "id",
        ),
        (
            Method::DELETE,
            format!("/api/v1/jobs/{finished}"),
            None,
            "id",
        ),
        (
            Method::POST,
            format!("/api/v1/jobs/{finished}/restart"),
            None,
            "id",
        ),
        (
            Method::POST,
            format!("/api/v1/jobs/{waiting}/confirm"),
            None,
            "id",
        ),
        (
            Method::POST,
            format!("/api/v1/jobs/{waiting}/cancel"),
            None,
            "id",
        ),
        (
            Method::PATCH,
            format!("/api/v1/jobs/{waiting}"),
            Some(json!({"priority": 9})),
            "id",
        ),
        (
            Method::GET,
            format!("/bin/guides/v1/assets/process/status?processingId={finished}"),
            None,
            "id",
        ),
        (
            Method::POST,
            format!("/bin/guides/v1/assets/process/cancel?processingId={waiting}"),
            None,
            "id",
        ),
        (
            Method::GET,
            "/api/v1/assets/content/dam/a.txt".into(),
            None,
            "path",
        ),
        (
            Method::GET,
            "/api/v1/renditions/content/dam/a.txt".into(),
            None,
            "path",
        ),
        (
            Method::DELETE,
            format!("/api/v1/webhooks/{hook}"),
            None,
            "id",
        ),
        (
            Method::GET,
            format!("/api/v1/webhooks/{hook}/deliveries"),
            None,
            "id",
        ),
        (
            Method::POST,
            format!("/api/v1/inbox/{inbox_entry}/read"),
            None,
            "id",
        ),
        (
            Method::DELETE,
            format!("/api/v1/schedules/{schedule}"),
            None,
            "id",
        ),
    ];
    for (method, path, body, field) in not_found {
        let answer = as_token(&server, &bob, method.clone(), &path, body).await;
        assert_refused(&format!("bob {method} {path}"), &answer, 404, field);
        let message = answer.1["error"]["message"].as_str().unwrap();
        assert!(
            !message.contains("alpha"),
            "{path}: {message} names the other tenant"
        );
    }
    for (path, key) in [
        ("/api/v1/jobs", "jobs"),
        ("/api/v1/history", "jobs"),
        ("/api/v1/webhooks", "webhooks"),
        ("/api/v1/schedules", "schedules"),
        ("/api/v1/inbox", "entries"),
        ("/api/v1/assets?path=/content&recursive=true", "assets"),
    ] {
        let (status, body) = as_token(&server, &bob, Method::GET, path, None).await;
        assert_eq!(status, 200, "{path}: {body}");
        assert_eq!(body[key], json!([]), "bob sees alpha's {key}: {body}");
    }
    let (status, _) = as_token(&server, &bob, Method::POST, "/api/v1/inbox/read-all", None).await;
    assert_eq!(status, 200);
    // Bob's upload to the same path lands in beta's tree only.
    let (status, _) = server
        .send(
            server
                .anonymous(Method::PUT, "/api/v1/assets/content/dam/a.txt")
                .bearer_auth(&bob)
                .header("content-type", "text/plain")
                .body("bob's"),
        )
        .await;
    assert_eq!(status, 201, "a new asset in beta");

    // A submitter administers nothing.
    let (_, tokens_before) = server.get("/api/v1/tokens").await;
    let weights = |tenants: Value| -> Vec<(Value, Value)> {
        tenants["tenants"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| (t["tenant"].clone(), t["weight"].clone()))
            .collect()
    };
    let weights_before = weights(server.get("/api/v1/tenants").await.1);
    let (_, plugins_before) = server.get("/api/v1/plugins").await;
    // A component header is enough: the role is refused before the body is
    // read (a whole component could meet a closed connection).
    let delete = b"\0asm\x0d\x00\x01\x00".to_vec();
    let admin_only: Vec<(Method, &str, Option<Value>)> = vec![
        (
            Method::POST,
            "/api/v1/tokens",
            Some(json!({"name": "root", "role": "admin", "tenant": "beta"})),
        ),
        (Method::GET, "/api/v1/tokens", None),
        (Method::GET, "/api/v1/tenants", None),
        (
            Method::PUT,
            "/api/v1/tenants/beta",
            Some(json!({"weight": 1000})),
        ),
        (Method::POST, "/api/v1/purge", None),
        (Method::DELETE, "/api/v1/plugins/delete", None),
        (Method::GET, "/metrics", None),
    ];
    for (method, path, body) in admin_only {
        let (status, answer) = as_token(&server, &bob, method.clone(), path, body).await;
        assert_eq!(status, 403, "bob {method} {path}: {answer}");
        assert!(
            answer["error"]["message"]
                .as_str()
                .unwrap()
                .contains("may not"),
            "{answer}"
        );
    }
    let (status, _) = server
        .send(
            server
                .anonymous(Method::PUT, "/api/v1/plugins/delete")
                .bearer_auth(&bob)
                .header("content-type", "application/wasm")
                .body(delete),
        )
        .await;
    assert_eq!(status, 403, "bob uploads a plugin");
    let (status, _) = as_token(&server, &bob, Method::GET, "/api/v1/jobs", None).await;
    assert_eq!(status, 200);
    let (status, _) = server
        .send(
            server
                .anonymous(Method::GET, "/api/v1/jobs")
                .bearer_auth(&bob)
                .header("x-wasmq-tenant", "alpha"),
        )
        .await;
    assert_eq!(status, 403, "bob switches tenant");

    // Nothing of alpha's, and nothing of the server's, changed.
    assert_eq!(tenant_state(&server, &alice, &watched).await, before);
    assert_eq!(server.get("/api/v1/tokens").await.1, tokens_before);
    assert_eq!(
        weights(server.get("/api/v1/tenants").await.1),
        weights_before
    );
    assert_eq!(server.get("/api/v1/plugins").await.1, plugins_before);
}

/// CRC-32 (IEEE) of PNG chunks.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn png_chunk(out: &mut Vec<u8>, kind: &[u8], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let start = out.len();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let crc = crc32(&out[start..]);
    out.extend_from_slice(&crc.to_be_bytes());
}

/// A well-formed PNG header announcing `side` x `side` RGBA pixels, with
/// almost no pixel data: a decompression bomb if the decoder believes it.
fn huge_png(side: u32) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&side.to_be_bytes());
    ihdr.extend_from_slice(&side.to_be_bytes());
    ihdr.extend_from_slice(&[8, 6, 0, 0, 0]);
    png_chunk(&mut out, b"IHDR", &ihdr);
    // A zlib stream of a few zero bytes.
    png_chunk(
        &mut out,
        b"IDAT",
        &[0x78, 0x9c, 0x63, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01],
    );
    png_chunk(&mut out, b"IEND", &[]);
    out
}

/// Bytes that are no format at all (a fixed xorshift stream).
fn garbage(n: usize) -> Vec<u8> {
    let mut x: u32 = 2_463_534_242;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_images_pdfs_and_csv_fail_their_items_with_the_reason() {
    // e2e_images, e2e_pdfs and e2e_metadata cover truncated PNGs, a truncated
    // and an encrypted PDF, and a CSV with an open quote; these are the rest.
    let server = Server::start(Options {
        plugins: vec![
            "wasmq_image_optimize",
            "wasmq_pdf_rip",
            "wasmq_metadata_import",
        ],
        workers: Some(2),
        ..Default::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let images = dir.path().join("images");
    let pdfs = dir.path().join("pdfs");
    std::fs::create_dir_all(&images).unwrap();
    std::fs::create_dir_all(&pdfs).unwrap();
    std::fs::write(images.join("bomb.png"), huge_png(100_000)).unwrap();
    std::fs::write(images.join("garbage.jpg"), garbage(4096)).unwrap();
    std::fs::write(images.join("empty.png"), b"").unwrap();
    std::fs::write(
        images.join("header-only.jpg"),
        b"\xff\xd8\xff\xe0\x00\x10JFIF\x00",
    )
    .unwrap();
    let mut fake_pdf = b"%PDF-1.7\n".to_vec();
    fake_pdf.extend(garbage(4096));
    std::fs::write(pdfs.join("garbage.pdf"), fake_pdf).unwrap();
    std::fs::write(pdfs.join("empty.pdf"), b"").unwrap();
    std::fs::write(pdfs.join("endless.pdf"), b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 1 0 R >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n").unwrap();
    server.import(dir.path(), "/content/dam/bad");
    let files_before = stored_files(&server);

    let reasons = [
        ("bomb.png", "cannot decode PNG: Memory limit exceeded"),
        ("garbage.jpg", "not a PNG, JPEG, GIF or WebP image"),
        ("empty.png", "not a PNG, JPEG, GIF or WebP image"),
        ("header-only.jpg", "cannot decode JPEG"),
        ("garbage.pdf", "unreadable PDF"),
        ("empty.pdf", "unreadable PDF"),
        ("endless.pdf", "unreadable PDF"),
    ];
    for (job_type, root, count) in [
        ("image-optimize", "/content/dam/bad/images", 4),
        ("pdf-rip", "/content/dam/bad/pdfs", 3),
    ] {
        let id = server
            .submit(&json!({"type": job_type, "path": root}))
            .await;
        let job = server.wait_done(&id).await;
        assert_eq!(job["state"], "Complete", "{job}");
        let tasks = server.tasks(&id).await;
        assert_eq!(tasks.len(), count, "{tasks:?}");
        for t in &tasks {
            let message = t["message"].as_str().unwrap_or_default();
            eprintln!("{}: {} {message}", t["path"], t["code"]);
            assert_eq!(t["state"], "failed", "{t}");
            let code = t["code"].as_i64().unwrap();
            assert!((400..600).contains(&code), "{t}");
            let path = t["path"].as_str().unwrap();
            let reason = reasons
                .iter()
                .find(|(name, _)| path.ends_with(name))
                .map(|(_, r)| *r)
                .unwrap();
            assert!(
                message.contains(reason),
                "{path}: {message:?} lacks {reason:?}"
            );
        }
    }
    // A CSV that is not UTF-8, and one of NUL bytes: the import fails with the reason.
    for (name, body, reason) in [
        (
            "latin1.csv",
            b"assetPath,dc:title\n/content/dam/bad/images/bomb.png,caf\xe9\n".to_vec(),
            "is not UTF-8 text",
        ),
        (
            "nul.csv",
            vec![0u8; 64],
            "the first column must be assetPath",
        ),
    ] {
        let path = format!("/content/imports/{name}");
        let (status, _) = server.upload(&path, None, body, "text/csv").await;
        assert_eq!(status, 201);
        let id = server
            .submit(&json!({"type": "metadata-import", "path": "/content/dam/bad", "params": {"csv": path}}))
            .await;
        let job = server.wait_done(&id).await;
        eprintln!("{name}: {} {}", job["state"], job["error"]);
        assert_eq!(job["state"], "Failed", "{job}");
        assert!(job["error"].as_str().unwrap().contains(reason), "{job}");
    }
    // Nothing was written for any of it, and the host is fine.
    let mut after = stored_files(&server);
    after.retain(|path, _| !path.contains("/content/imports/"));
    assert_eq!(after, files_before);
    assert!(server.is_alive().await);
}
