//! Plugins as products: hot reload while jobs run, refused components, upload
//! and retirement over HTTP, versions kept across a restart, params checked
//! against the plugin's JSON Schema.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wasmq_e2e::{Options, Server};

/// The chaos component with a custom section appended: the same plugin,
/// another build (another digest), as a rebuilt component would be.
fn rebuilt(bytes: &[u8], tag: &str) -> Vec<u8> {
    let name = b"wasmq-test-build";
    let mut payload = vec![name.len() as u8];
    payload.extend_from_slice(name);
    payload.extend_from_slice(tag.as_bytes());
    let mut out = bytes.to_vec();
    out.push(0); // custom section
    let mut size = payload.len();
    loop {
        let byte = (size & 0x7f) as u8;
        size >>= 7;
        if size == 0 {
            out.push(byte);
            break;
        }
        out.push(byte | 0x80);
    }
    out.extend_from_slice(&payload);
    out
}

/// Writes a file the way a deployment should: whole, then renamed into place.
fn land(dir: &Path, name: &str, bytes: &[u8]) {
    let tmp = dir.join(format!(".{name}.partial"));
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, dir.join(name)).unwrap();
}

async fn active_digest(server: &Server, name: &str) -> Option<String> {
    let (_, body) = server.get("/api/v1/plugins").await;
    body["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name && p["status"] == "active")
        .map(|p| p["digest"].as_str().unwrap().to_string())
}

async fn wait_for_digest(server: &Server, name: &str, digest: &str) -> Duration {
    let started = Instant::now();
    while active_digest(server, name).await.as_deref() != Some(digest) {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{name} never switched to {digest}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    started.elapsed()
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn slow_job(n: usize) -> Value {
    json!({"type": "chaos", "path": "/content/dam/r", "params": {"tasks": vec!["slow"; n], "slowMs": 60}})
}

#[tokio::test(flavor = "multi_thread")]
async fn replacing_a_plugin_under_load_fails_no_job() {
    let server = Server::start(Options {
        plugins: vec!["wasmq_chaos"],
        workers: Some(2),
        ..Default::default()
    });
    let original = std::fs::read(server.plugins_dir().join("wasmq_chaos.wasm")).unwrap();
    let old = active_digest(&server, "chaos").await.unwrap();
    assert_eq!(old, sha256_hex(&original));

    let mut first = Vec::new();
    for _ in 0..20 {
        first.push(server.submit(&slow_job(3)).await);
    }
    server
        .wait_for(&first[0], &["Active"], Duration::from_secs(30))
        .await;
    let new_bytes = rebuilt(&original, "v2");
    let new = sha256_hex(&new_bytes);
    land(&server.plugins_dir(), "wasmq_chaos.wasm", &new_bytes);
    let took = wait_for_digest(&server, "chaos", &new).await;
    eprintln!("the new version served {took:?} after the file landed");

    let mut second = Vec::new();
    for _ in 0..20 {
        second.push(server.submit(&slow_job(3)).await);
    }
    for (ids, digest) in [(&first, &old), (&second, &new)] {
        for id in ids {
            let job = server.wait_done(id).await;
            assert_eq!(job["state"], "Complete", "{job}");
            assert_eq!(job["counts"]["failed"], 0, "{job}");
            assert_eq!(&job["plugin"]["digest"], digest.as_str(), "{job}");
        }
    }
    let (_, body) = server.get("/api/v1/plugins").await;
    let statuses: Vec<(&str, &str)> = body["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["digest"].as_str().unwrap(), p["status"].as_str().unwrap()))
        .collect();
    assert!(statuses.contains(&(old.as_str(), "superseded")), "{body}");
    assert!(statuses.contains(&(new.as_str(), "active")), "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn refused_components_leave_the_previous_version_serving() {
    let server = Server::start(Options {
        plugins: vec!["wasmq_chaos"],
        ..Default::default()
    });
    let old = active_digest(&server, "chaos").await.unwrap();
    let dir = server.plugins_dir();
    land(&dir, "garbage.wasm", b"this is not wasm at all");
    // A valid component of another world: an empty one exports no plugin.
    land(&dir, "empty-world.wasm", b"\0asm\x0d\x00\x01\x00");
    // The served file itself is overwritten with junk.
    land(&dir, "wasmq_chaos.wasm", &[0u8; 64]);

    let started = Instant::now();
    let rejected = loop {
        let (_, body) = server.get("/api/v1/plugins").await;
        let rejected = body["rejected"].as_array().unwrap().clone();
        if rejected.len() == 3 {
            break rejected;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "{body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let reason = |file: &str| {
        rejected
            .iter()
            .find(|r| r["file"].as_str().unwrap().ends_with(file))
            .unwrap_or_else(|| panic!("{file} not rejected: {rejected:?}"))["reason"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert!(reason("garbage.wasm").contains("not a wasmq:plugin@0.1 job-type component"));
    let wrong_world = reason("empty-world.wasm");
    assert!(wrong_world.contains("wasmq:plugin/plugin"), "{wrong_world}");
    assert!(!reason("wasmq_chaos.wasm").is_empty());

    assert_eq!(active_digest(&server, "chaos").await, Some(old));
    let id = server
        .submit(&json!({"type": "chaos", "path": "/content/dam/x", "params": {"tasks": ["ok"]}}))
        .await;
    assert_eq!(server.wait_done(&id).await["state"], "Complete");
}

async fn put(server: &Server, name: &str, bytes: Vec<u8>, token: Option<String>) -> (u16, Value) {
    let request = server
        .anonymous(reqwest::Method::PUT, &format!("/api/v1/plugins/{name}"))
        .header("content-type", "application/wasm")
        .bearer_auth(token.unwrap_or_else(|| server.admin_token()))
        .body(bytes);
    server.send(request).await
}

async fn delete(server: &Server, name: &str) -> (u16, Value) {
    server
        .send(server.request(reqwest::Method::DELETE, &format!("/api/v1/plugins/{name}")))
        .await
}

#[tokio::test(flavor = "multi_thread")]
async fn upload_replace_and_retire_over_http() {
    let mut server = Server::start(Options {
        plugins: vec!["wasmq_delete"],
        workers: Some(1),
        ..Default::default()
    });
    let chaos = std::fs::read(wasmq_e2e::plugin("wasmq_chaos")).unwrap();
    let (status, body) = put(&server, "chaos", chaos.clone(), None).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (201, Some("active")),
        "{body}"
    );
    assert_eq!(body["digest"], sha256_hex(&chaos));
    assert!(server.plugins_dir().join("chaos.wasm").is_file());
    let (status, _) = put(&server, "chaos", chaos.clone(), None).await;
    assert_eq!(status, 200, "the same component again changes nothing");

    let (status, body) = put(&server, "other-name", chaos.clone(), None).await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (400, Some("name")),
        "{body}"
    );
    let (status, body) = put(&server, "chaos", b"junk".to_vec(), None).await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (400, Some("body")),
        "{body}"
    );
    let submitter = server.token("s", "submitter", "default").await;
    let (status, _) = put(&server, "chaos", chaos.clone(), Some(submitter)).await;
    assert_eq!(status, 403);

    // Params are checked against the plugin's JSON Schema before a job exists.
    let (status, body) = server
        .post("/api/v1/jobs", &json!({"type": "chaos", "path": "/content/dam/x", "params": {"tasks": ["ok", "bogus"]}}))
        .await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (400, Some("params.tasks.1")),
        "{body}"
    );
    let (status, body) = server
        .post("/api/v1/jobs", &json!({"type": "chaos", "path": "/content/dam/x", "params": {"tasks": ["ok"], "extra": 1}}))
        .await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (400, Some("params")),
        "{body}"
    );

    // A job pinned to version 1 keeps it after version 2 lands and the host restarts.
    let v1 = sha256_hex(&chaos);
    let pinned = server.submit(&slow_job(30)).await;
    server
        .wait_for(&pinned, &["Active"], Duration::from_secs(30))
        .await;
    let v2_bytes = rebuilt(&chaos, "v2");
    let (status, _) = put(&server, "chaos", v2_bytes.clone(), None).await;
    assert_eq!(status, 201);
    let (status, body) = delete(&server, "chaos").await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (409, Some("name")),
        "{body}"
    );
    server.kill_and_restart();
    let job = server.wait_done(&pinned).await;
    assert_eq!(
        (job["state"].as_str(), job["plugin"]["digest"].as_str()),
        (Some("Complete"), Some(v1.as_str())),
        "{job}"
    );
    assert_eq!(
        active_digest(&server, "chaos").await,
        Some(sha256_hex(&v2_bytes))
    );

    let (status, _) = delete(&server, "chaos").await;
    assert_eq!(status, 204);
    assert!(!server.plugins_dir().join("chaos.wasm").exists());
    let (status, body) = server
        .post(
            "/api/v1/jobs",
            &json!({"type": "chaos", "path": "/content/dam/x", "params": {"tasks": ["ok"]}}),
        )
        .await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (400, Some("type")),
        "{body}"
    );
    let (status, _) = delete(&server, "chaos").await;
    assert_eq!(status, 404);
}
