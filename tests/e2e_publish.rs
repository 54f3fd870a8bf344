//! The `publish` and `unpublish` job types end to end: real files and their
//! renditions copied to the publish target, served read-only, republished cheaply.

use std::path::Path;
use std::time::SystemTime;

use serde_json::{Value, json};
use wasmq_e2e::{Options, Server, task};

const STATIC: &str = "/usr/share/gitweb/static";
const SITE: &str = "/content/dam/site";

fn real(file: &str) -> Vec<u8> {
    std::fs::read(file).unwrap_or_else(|e| panic!("{file}: {e}"))
}

async fn run(server: &Server, job_type: &str, path: &str) -> (Value, Vec<Value>) {
    let id = server
        .submit(&json!({"type": job_type, "path": path}))
        .await;
    let job = server.wait_done(&id).await;
    assert_eq!(job["state"], "Complete", "{job}");
    (job, server.tasks(&id).await)
}

/// `GET /published/default{path}` with no token: status, content type, bytes.
async fn public(server: &Server, path: &str, rendition: Option<&str>) -> (u16, String, Vec<u8>) {
    let mut request = server.anonymous(reqwest::Method::GET, &format!("/published/default{path}"));
    if let Some(name) = rendition {
        request = request.query(&[("rendition", name)]);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (
        status,
        content_type,
        response.bytes().await.unwrap().to_vec(),
    )
}

/// Modification times of every file in the server's publish target.
fn target_mtimes(server: &Server) -> Vec<(String, SystemTime)> {
    fn walk(dir: &Path, out: &mut Vec<(String, SystemTime)>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            if entry.file_type().unwrap().is_dir() {
                walk(&entry.path(), out);
            } else {
                let modified = entry.metadata().unwrap().modified().unwrap();
                out.push((entry.path().display().to_string(), modified));
            }
        }
    }
    let mut out = Vec::new();
    walk(&server.data_dir().join("published"), &mut out);
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn publish_serves_copies_republish_copies_nothing_unpublish_removes() {
    let server = Server::start(Options {
        plugins: vec!["wasmq_publish"],
        ..Default::default()
    });
    server.import(Path::new(STATIC), SITE);
    let assets = server.assets(SITE).await;
    assert!(assets.len() >= 4, "{assets:?}");
    let logo = format!("{SITE}/git-logo.png");
    let favicon = real(&format!("{STATIC}/git-favicon.png"));
    let (status, _) = server
        .upload(&logo, Some("thumb.png"), favicon.clone(), "image/png")
        .await;
    assert_eq!(status, 201);

    // Nothing is published yet.
    assert_eq!(public(&server, &logo, None).await.0, 404);

    let (_, tasks) = run(&server, "publish", SITE).await;
    assert_eq!(tasks.len(), assets.len());
    for t in &tasks {
        assert_eq!(
            (t["state"].as_str(), t["code"].as_i64()),
            (Some("succeeded"), Some(200)),
            "{t}"
        );
    }
    assert!(
        task(&tasks, "/git-logo.png")["message"]
            .as_str()
            .unwrap()
            .contains("1 rendition")
    );
    for path in &assets {
        let (status, content_type, bytes) = public(&server, path, None).await;
        assert_eq!(status, 200, "{path}");
        assert_eq!(
            bytes,
            real(&format!("{STATIC}{}", &path[SITE.len()..])),
            "{path}"
        );
        if path.ends_with(".png") {
            assert_eq!(content_type, "image/png");
        } else if path.ends_with(".css") {
            assert_eq!(content_type, "text/css");
        }
    }
    let (status, content_type, bytes) = public(&server, &logo, Some("thumb.png")).await;
    assert_eq!(
        (status, content_type.as_str(), bytes),
        (200, "image/png", favicon.clone())
    );

    // The published state: when, which etag, by which job.
    let (status, state) = server.get(&format!("/api/v1/published{logo}")).await;
    assert_eq!(status, 200, "{state}");
    assert_eq!(state["etag"], task(&tasks, "/git-logo.png")["etag"]);
    assert_eq!(state["renditions"][0]["name"], "thumb.png");
    assert!(state["publishedAt"].is_string(), "{state}");
    assert_eq!(state["url"], format!("/published/default{logo}"));
    // The state is not public, the copies are.
    assert_eq!(
        server
            .anonymous(reqwest::Method::GET, &format!("/api/v1/published{logo}"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );

    // Republishing the unchanged folder copies nothing.
    let before = target_mtimes(&server);
    let (_, again) = run(&server, "publish", SITE).await;
    for t in &again {
        assert_eq!(t["code"], 204, "{t}");
    }
    assert_eq!(
        target_mtimes(&server),
        before,
        "republishing rewrote the target"
    );
    let (_, state_again) = server.get(&format!("/api/v1/published{logo}")).await;
    assert_eq!(state_again["publishedAt"], state["publishedAt"]);

    // A changed asset is copied again, alone.
    let css = format!("{SITE}/gitweb.css");
    let new_css = b"body { color: #123456 }\n".to_vec();
    assert_eq!(
        server
            .upload(&css, None, new_css.clone(), "text/css")
            .await
            .0,
        200
    );
    let (_, third) = run(&server, "publish", SITE).await;
    for t in &third {
        let expected = if t["path"] == css.as_str() { 200 } else { 204 };
        assert_eq!(t["code"], expected, "{t}");
    }
    assert_eq!(public(&server, &css, None).await.2, new_css);

    // Unpublishing one asset removes it and its rendition from the target.
    let (_, gone) = run(&server, "unpublish", &logo).await;
    assert_eq!(gone.len(), 1);
    assert_eq!(gone[0]["code"], 200, "{}", gone[0]);
    assert_eq!(public(&server, &logo, None).await.0, 404);
    assert_eq!(public(&server, &logo, Some("thumb.png")).await.0, 404);
    assert_eq!(server.get(&format!("/api/v1/published{logo}")).await.0, 404);
    assert_eq!(
        public(&server, &css, None).await.0,
        200,
        "the rest stays published"
    );
    let (_, twice) = run(&server, "unpublish", &logo).await;
    assert_eq!(twice[0]["code"], 204, "{}", twice[0]);

    // Bad input over HTTP: path traversal, a bad rendition name, unknown params.
    assert_eq!(
        public(&server, "/content/..%2Fetc%2Fpasswd", None).await.0,
        400
    );
    let (status, answer) = server
        .send(
            server
                .request(reqwest::Method::GET, &format!("/api/v1/assets{css}"))
                .query(&[("rendition", "../x")]),
        )
        .await;
    assert_eq!(
        (status, answer["error"]["field"].as_str()),
        (400, Some("rendition")),
        "{answer}"
    );
    // Uploads: a media type that is not one, a rendition of no asset, a bad path.
    let (status, answer) = server.upload(&css, None, b"x".to_vec(), "nonsense").await;
    assert_eq!(
        (status, answer["error"]["field"].as_str()),
        (400, Some("Content-Type")),
        "{answer}"
    );
    let (status, answer) = server
        .upload(
            "/content/none.png",
            Some("thumb.png"),
            b"x".to_vec(),
            "image/png",
        )
        .await;
    assert_eq!(
        (status, answer["error"]["field"].as_str()),
        (404, Some("path")),
        "{answer}"
    );
    let (status, answer) = server
        .upload("/content//x.png", None, b"x".to_vec(), "image/png")
        .await;
    assert_eq!(
        (status, answer["error"]["field"].as_str()),
        (400, Some("path")),
        "{answer}"
    );
    assert_eq!(server.download("/content/none.png", None).await.0, 404);
    assert_eq!(
        public(&server, &css, None).await.2,
        new_css,
        "nothing changed"
    );
    let (status, answer) = server
        .post(
            "/api/v1/jobs",
            &json!({"type": "publish", "path": SITE, "params": {"target": "x"}}),
        )
        .await;
    assert_eq!(
        (status, answer["error"]["field"].as_str()),
        (400, Some("params")),
        "{answer}"
    );
}
