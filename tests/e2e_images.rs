//! The image-optimize job type end to end: a real server and the component built from
//! plugins/, over the real image corpus (scripts/corpus-images.sh): renditions, replace, damaged files, bad params.

use std::path::PathBuf;

use serde_json::{Value, json};
use wasmq_e2e::{Options, Server, task};

/// The corpus of real images (PNG, JPEG, GIF, WebP and damaged files).
fn corpus() -> PathBuf {
    wasmq_e2e::corpus("images", "flower2.jpg")
}

fn original(name: &str) -> Vec<u8> {
    std::fs::read(corpus().join(name)).unwrap()
}

/// The sizes in a report message `before -> after bytes (change%)...`.
fn sizes(message: &str) -> (usize, usize) {
    let (before, rest) = message
        .split_once(" -> ")
        .unwrap_or_else(|| panic!("no sizes in {message:?}"));
    let before = before.rsplit(' ').next().unwrap();
    let after = rest.split(' ').next().unwrap();
    (before.parse().unwrap(), after.parse().unwrap())
}

fn server() -> Server {
    Server::start(Options {
        plugins: vec!["wasmq_image_optimize"],
        workers: Some(2),
        ..Options::default()
    })
}

async fn run(server: &Server, path: &str, params: Value) -> (Value, Vec<Value>) {
    let id = server
        .submit(&json!({"type": "image-optimize", "path": path, "params": params}))
        .await;
    let job = server.wait_done(&id).await;
    let tasks = server.tasks(&id).await;
    (job, tasks)
}

fn code(task: &Value) -> i64 {
    task["code"].as_i64().unwrap_or_default()
}

fn message(task: &Value) -> &str {
    task["message"].as_str().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn renditions_sizes_and_damaged_files() {
    let server = server();
    let root = "/content/dam/images";
    server.import(&corpus(), root);
    let (job, tasks) = run(&server, root, json!({})).await;
    assert_eq!(job["state"], "Complete", "{job}");
    let files = std::fs::read_dir(corpus()).unwrap().count();
    assert_eq!(tasks.len(), files);

    // Damaged files fail their item with the decoder's reason; the job goes on.
    for name in ["broken.png", "truncated_image.png"] {
        let t = task(&tasks, name);
        assert_eq!(t["state"], "failed", "{t}");
        assert_eq!(code(t), 422, "{t}");
        assert!(message(t).starts_with("cannot decode PNG: "), "{t}");
    }
    let animated = task(&tasks, "chi.gif");
    assert_eq!(
        (code(animated), message(animated)),
        (204, "animated GIF left as it is")
    );

    // The report (CSV) records the sizes before and after.
    let id = job["id"].as_str().unwrap();
    let report = server.report(id).await;
    let row = report
        .lines()
        .find(|l| l.contains("/flower2.jpg"))
        .unwrap_or_else(|| panic!("no flower2.jpg row in {report}"));
    assert!(row.contains("200") && row.contains("86491 -> "), "{row}");

    // Smaller results become renditions of the recorded size, in the right format.
    let mut renditions = Vec::new();
    for (name, rendition, magic) in [
        ("flower2.jpg", "optimized.jpg", &b"\xff\xd8\xff"[..]),
        ("uncompressed_rgb.png", "optimized.png", b"\x89PNG"),
        ("hopper.gif", "optimized.png", b"\x89PNG"),
        ("test.colors.gif", "optimized.png", b"\x89PNG"),
    ] {
        let t = task(&tasks, name);
        assert_eq!(code(t), 200, "{t}");
        let (before, after) = sizes(message(t));
        assert_eq!(before, original(name).len(), "{t}");
        assert!(after < before, "{t}");
        assert!(
            message(t).ends_with(&format!(", rendition {rendition}")),
            "{t}"
        );
        let path = format!("{root}/{name}");
        let (status, list) = server.get(&format!("/api/v1/renditions{path}")).await;
        assert_eq!(status, 200, "{list}");
        assert_eq!(list[0]["name"], rendition, "{list}");
        assert_eq!(list[0]["size"], after as u64, "{list}");
        let (status, bytes) = server.download(&path, Some(rendition)).await;
        assert_eq!(status, 200);
        assert_eq!(bytes.len(), after);
        assert!(bytes.starts_with(magic), "{name}");
        renditions.push((name, rendition, bytes));
    }
    // Already optimal: nothing written.
    let png = task(&tasks, "hopper.png");
    assert_eq!(code(png), 204, "{png}");
    assert!(
        message(png).starts_with("already optimal: 30605 -> "),
        "{png}"
    );
    let (status, list) = server
        .get(&format!("/api/v1/renditions{root}/hopper.png"))
        .await;
    assert_eq!((status, list), (200, json!([])));

    // The renditions decode: uploaded as assets, a second job reads every one of them.
    for (name, rendition, bytes) in renditions {
        let content_type = if rendition.ends_with(".jpg") {
            "image/jpeg"
        } else {
            "image/png"
        };
        let (status, answer) = server
            .upload(
                &format!("/content/dam/check/{name}.{rendition}"),
                None,
                bytes,
                content_type,
            )
            .await;
        assert!(status == 200 || status == 201, "{status} {answer}");
    }
    let (job, tasks) = run(&server, "/content/dam/check", json!({})).await;
    assert_eq!(job["state"], "Complete", "{job}");
    assert_eq!(tasks.len(), 4);
    for t in &tasks {
        assert_eq!(t["state"], "succeeded", "{t}");
        assert!([200, 204].contains(&code(t)), "{t}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn replace_only_when_smaller_and_only_once() {
    let server = server();
    let root = "/content/dam/replace";
    server.import(&corpus(), root);
    let params = json!({"replace": true, "quality": 80});
    let (job, tasks) = run(&server, root, params.clone()).await;
    assert_eq!(job["state"], "Complete", "{job}");

    for name in ["flower2.jpg", "uncompressed_rgb.png"] {
        let t = task(&tasks, name);
        assert_eq!(code(t), 200, "{t}");
        assert!(message(t).ends_with(", replaced"), "{t}");
        let (before, after) = sizes(message(t));
        assert!(after < before);
        let (status, bytes) = server.download(&format!("{root}/{name}"), None).await;
        assert_eq!(status, 200);
        assert_eq!(bytes.len(), after, "{name}");
        assert!(!t["etag"].as_str().unwrap_or_default().is_empty(), "{t}");
    }
    // Not smaller, or another format: the original stays as it was.
    for (name, start) in [
        ("hopper.png", "already optimal: "),
        ("hopper.gif", "GIF images are not replaced in place"),
    ] {
        let t = task(&tasks, name);
        assert_eq!(code(t), 204, "{t}");
        assert!(message(t).starts_with(start), "{t}");
        let (_, bytes) = server.download(&format!("{root}/{name}"), None).await;
        assert_eq!(bytes, original(name), "{name}");
    }

    // Again: what was replaced is not encoded once more.
    let (job, tasks) = run(&server, root, params).await;
    assert_eq!(job["state"], "Complete", "{job}");
    for name in ["flower2.jpg", "uncompressed_rgb.png"] {
        let t = task(&tasks, name);
        assert_eq!(
            (code(t), message(t)),
            (204, "already optimized by an earlier run"),
            "{t}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_params_are_refused() {
    let server = server();
    let root = "/content/dam/params";
    server.import(&corpus(), root);
    for (params, field) in [
        (json!({"quality": 0}), "params.quality"),
        (json!({"format": "gif"}), "params.format"),
        (json!({"maxWidth": "wide"}), "params.maxWidth"),
        (json!({"rendition": ".hidden"}), "params.rendition"),
        (json!({"colour": true}), "params"),
    ] {
        let (status, answer) = server
            .post(
                "/api/v1/jobs",
                &json!({"type": "image-optimize", "path": root, "params": params}),
            )
            .await;
        assert_eq!(status, 400, "{params}: {answer}");
        let named = answer["error"]["field"].as_str().unwrap_or_default();
        assert!(named.starts_with(field), "{params}: {answer}");
    }
    // Schema-valid but contradictory: the job fails at once with the plugin's message.
    let (job, tasks) = run(&server, root, json!({"replace": true, "format": "webp"})).await;
    assert_eq!(job["state"], "Failed", "{job}");
    assert!(tasks.is_empty());
    assert!(
        job["error"]
            .as_str()
            .unwrap_or_default()
            .contains("format must be auto"),
        "{job}"
    );
}
