//! The asset repository and the publish target on a real S3-compatible server (moto):
//! real jobs through wasmq, their results checked in the bucket with boto3; bad URLs at startup.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wasmq_e2e::s3::S3Server;
use wasmq_e2e::{Options, Server, binary, task};

const BUCKET: &str = "wasmq-e2e";
/// Binaries under `prod/assets/`, renditions under `prod/renditions/`.
const ASSETS_URL: &str = "s3://wasmq-e2e/prod";
/// The publish target's own `assets/` and `renditions/` under `public/`.
const PUBLISH_URL: &str = "s3://wasmq-e2e/public";
/// Real files: gitweb's static folder (images, a stylesheet, a script).
const STATIC: &str = "/usr/share/gitweb/static";

fn real(file: &Path) -> Vec<u8> {
    std::fs::read(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()))
}

fn start(s3: &S3Server) -> Server {
    let mut env = s3.env();
    env.push(("WASMQ_ASSETS_URL".into(), ASSETS_URL.into()));
    env.push(("WASMQ_PUBLISH_URL".into(), PUBLISH_URL.into()));
    Server::start(Options {
        plugins: vec![
            "wasmq_delete",
            "wasmq_move",
            "wasmq_publish",
            "wasmq_metadata_export",
            "wasmq_image_optimize",
        ],
        workers: Some(2),
        env,
        ..Default::default()
    })
}

async fn run(server: &Server, body: Value) -> (Value, Vec<Value>) {
    let id = server.submit(&body).await;
    let job = server.wait_done(&id).await;
    assert_eq!(job["state"], "Complete", "{job}");
    (job, server.tasks(&id).await)
}

/// The bucket key of an asset binary, a rendition, or their published copies.
/// Keys are paths as `object_store` writes them: non-ASCII bytes percent-encoded
/// (the test's paths have none of the few ASCII characters it encodes too).
fn key(prefix: &str, path: &str, rendition: Option<&str>) -> String {
    let path: String = path
        .bytes()
        .map(|b| match b {
            0x80.. => format!("%{b:02X}"),
            _ => char::from(b).to_string(),
        })
        .collect();
    match rendition {
        None => format!("{prefix}/assets/default{path}"),
        Some(name) => format!("{prefix}/renditions/default{path}/{name}"),
    }
}

/// Checks that the asset store in the bucket holds exactly the binaries and
/// renditions the API lists, nothing missing and nothing left over.
async fn assert_bucket_matches_repository(server: &Server, s3: &S3Server) {
    let mut expected = BTreeSet::new();
    for path in server.assets("/").await {
        expected.insert(key("prod", &path, None));
        let (status, list) = server.get(&format!("/api/v1/renditions{path}")).await;
        assert_eq!(status, 200, "{list}");
        for r in list.as_array().unwrap() {
            expected.insert(key("prod", &path, r["name"].as_str()));
        }
    }
    let stored: BTreeSet<String> = s3
        .keys(BUCKET)
        .into_iter()
        .filter(|k| k.starts_with("prod/"))
        .collect();
    assert_eq!(stored, expected, "the bucket and the repository disagree");
}

/// `GET /published/default{path}` with no token: the status and the bytes.
async fn public(server: &Server, path: &str, rendition: Option<&str>) -> (u16, Vec<u8>) {
    let mut request = server.anonymous(reqwest::Method::GET, &format!("/published/default{path}"));
    if let Some(name) = rendition {
        request = request.query(&[("rendition", name)]);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.bytes().await.unwrap().to_vec())
}

fn published_keys(s3: &S3Server) -> Vec<String> {
    s3.keys(BUCKET)
        .into_iter()
        .filter(|k| k.starts_with("public/"))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn jobs_run_on_assets_in_s3_and_publish_to_s3() {
    let s3 = S3Server::start();
    s3.create_bucket(BUCKET);
    let server = start(&s3);

    // Real files go in through `wasmq assets import` and the API; their
    // binaries land in the bucket, nothing in the data directory.
    server.import(Path::new(STATIC), "/content/dam/site/static");
    let images = tempfile::tempdir().unwrap();
    let png = wasmq_e2e::corpus("images", "uncompressed_rgb.png").join("uncompressed_rgb.png");
    std::fs::copy(&png, images.path().join("uncompressed_rgb.png")).unwrap();
    server.import(images.path(), "/content/dam/site/images");
    let menu = "/content/dam/site/static/café menu.txt";
    assert_eq!(
        server
            .upload(menu, None, b"soup, bread".to_vec(), "text/plain")
            .await
            .0,
        201
    );
    let logo = "/content/dam/site/static/git-logo.png";
    let page = "/content/dam/pages/index.html";
    let html = format!(
        "<html><body><img src=\"{logo}\"><a href=\"/content/dam/site/images/uncompressed_rgb.png\">big</a></body></html>"
    );
    assert_eq!(
        server
            .upload(page, None, html.into_bytes(), "text/html")
            .await
            .0,
        201
    );
    for name in ["old-1.txt", "old-2.txt", "keep/contract.txt"] {
        let path = format!("/content/dam/trash/{name}");
        let (status, _) = server
            .upload(&path, None, name.as_bytes().to_vec(), "text/plain")
            .await;
        assert_eq!(status, 201);
    }
    let (status, _) = server
        .upload(
            "/content/dam/trash/old-1.txt",
            Some("thumb.png"),
            real(&png),
            "image/png",
        )
        .await;
    assert_eq!(status, 201);
    for dir in ["assets", "renditions", "published"] {
        assert!(!server.data_dir().join(dir).exists(), "{dir}/ was created");
    }
    let real_logo = real(&Path::new(STATIC).join("git-logo.png"));
    assert_eq!(
        s3.get(BUCKET, &key("prod", logo, None)).as_deref(),
        Some(&real_logo[..])
    );
    assert_eq!(
        s3.get(BUCKET, &key("prod", menu, None)).as_deref(),
        Some(&b"soup, bread"[..])
    );
    assert_bucket_matches_repository(&server, &s3).await;

    // image-optimize writes a rendition into the rendition prefix.
    let big = "/content/dam/site/images/uncompressed_rgb.png";
    let (_, tasks) = run(
        &server,
        json!({"type": "image-optimize", "path": "/content/dam/site/images"}),
    )
    .await;
    assert_eq!(
        task(&tasks, "uncompressed_rgb.png")["code"],
        200,
        "{tasks:?}"
    );
    let (status, optimized) = server.download(big, Some("optimized.png")).await;
    assert_eq!(status, 200);
    assert!(optimized.starts_with(b"\x89PNG") && optimized.len() < real(&png).len());
    assert_eq!(
        s3.get(BUCKET, &key("prod", big, Some("optimized.png"))),
        Some(optimized.clone())
    );

    // delete with an exclusion: the excluded asset stays, the others go with their renditions.
    run(
        &server,
        json!({"type": "delete", "path": "/content/dam/trash",
               "excludedPaths": ["/content/dam/trash/keep"]}),
    )
    .await;
    assert_eq!(
        server.assets("/content/dam/trash").await,
        ["/content/dam/trash/keep/contract.txt"]
    );
    let keys = s3.keys(BUCKET);
    let trash: Vec<&String> = keys.iter().filter(|k| k.contains("/trash/")).collect();
    assert_eq!(
        trash,
        [&key("prod", "/content/dam/trash/keep/contract.txt", None)]
    );
    assert_bucket_matches_repository(&server, &s3).await;

    // move a folder: binaries and renditions change keys, the page that refers
    // to them is rewritten in the bucket, nothing stays at the old keys.
    let before = server.assets("/content/dam/site").await;
    let (_, tasks) = run(
        &server,
        json!({"type": "move", "path": "/content/dam/site",
               "params": {"destination": "/content/dam/brand"}}),
    )
    .await;
    assert_eq!(tasks.len(), before.len());
    let moved: Vec<String> = before
        .iter()
        .map(|p| p.replacen("/content/dam/site/", "/content/dam/brand/", 1))
        .collect();
    assert_eq!(server.assets("/content/dam/brand").await, moved);
    assert!(server.assets("/content/dam/site").await.is_empty());
    assert!(
        !s3.keys(BUCKET)
            .iter()
            .any(|k| k.contains("/content/dam/site/")),
        "old keys left behind"
    );
    let new_logo = "/content/dam/brand/static/git-logo.png";
    let new_big = "/content/dam/brand/images/uncompressed_rgb.png";
    assert_eq!(
        s3.get(BUCKET, &key("prod", new_logo, None)).as_deref(),
        Some(&real_logo[..])
    );
    assert_eq!(
        s3.get(BUCKET, &key("prod", new_big, Some("optimized.png"))),
        Some(optimized.clone())
    );
    let page_now = String::from_utf8(s3.get(BUCKET, &key("prod", page, None)).unwrap()).unwrap();
    assert!(
        page_now.contains(new_logo) && page_now.contains(new_big),
        "{page_now}"
    );
    assert!(!page_now.contains("/content/dam/site/"), "{page_now}");
    assert_eq!(server.download(page, None).await.1, page_now.as_bytes());
    assert_bucket_matches_repository(&server, &s3).await;

    // publish copies binaries and renditions to the publish prefix, served at /published/.
    assert!(published_keys(&s3).is_empty());
    run(
        &server,
        json!({"type": "publish", "path": "/content/dam/brand"}),
    )
    .await;
    let mut expected: Vec<String> = moved.iter().map(|p| key("public", p, None)).collect();
    expected.push(key("public", new_big, Some("optimized.png")));
    expected.sort();
    assert_eq!(published_keys(&s3), expected);
    assert_eq!(
        public(&server, new_logo, None).await,
        (200, real_logo.clone())
    );
    assert_eq!(
        public(&server, new_big, Some("optimized.png")).await,
        (200, optimized.clone())
    );
    assert_eq!(public(&server, page, None).await.0, 404, "not published");

    // metadata-export writes its CSV as an asset, into the bucket.
    let csv_path = "/content/exports/brand.csv";
    run(
        &server,
        json!({"type": "metadata-export", "path": "/content/dam/brand",
               "params": {"target": csv_path}}),
    )
    .await;
    let csv = s3
        .get(BUCKET, &key("prod", csv_path, None))
        .expect("export in the bucket");
    assert_eq!(server.download(csv_path, None).await, (200, csv.clone()));
    let csv = String::from_utf8(csv).unwrap();
    for path in &moved {
        assert!(csv.contains(path.as_str()), "{path} not in {csv}");
    }
    assert_bucket_matches_repository(&server, &s3).await;

    // A new process on the same data directory finds everything in the bucket.
    let mut server = server;
    server.kill_and_restart();
    assert_eq!(
        server.download(new_logo, None).await,
        (200, real_logo.clone())
    );
    assert_eq!(public(&server, new_logo, None).await, (200, real_logo));
}

/// Runs `wasmq ARGS` with `env`; it must exit within 60 s.
fn wasmq(args: &[&str], env: &[(String, String)]) -> Output {
    let mut child = Command::new(binary())
        .args(args)
        .envs(env.iter().cloned())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn wasmq");
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("wasmq {args:?} still runs after 60 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn bad_urls_stop_the_server_at_startup_with_a_clear_error() {
    let s3 = S3Server::start();
    s3.create_bucket(BUCKET);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    let serve = |urls: &[&str]| {
        let mut args = vec!["serve", "--data-dir", data, "--listen", "127.0.0.1:0"];
        args.extend(urls);
        wasmq(&args, &s3.env())
    };
    for (urls, says) in [
        (
            &["--assets-url", "gs://media/x"][..],
            "--assets-url \"gs://media/x\": unknown scheme \"gs\": expected s3://BUCKET/PREFIX",
        ),
        (
            &["--publish-url", "s3:///public"],
            "--publish-url \"s3:///public\": the bucket is missing",
        ),
        (
            &[
                "--assets-url",
                "s3://wasmq-e2e/a",
                "--publish-url",
                "s3://wasmq-e2e/a/pub",
            ],
            "--assets-url and --publish-url overlap",
        ),
        (
            &["--assets-url", "s3://no-such-bucket/prod"],
            "--assets-url \"s3://no-such-bucket/prod\": ",
        ),
    ] {
        let out = serve(urls);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{urls:?} started");
        assert!(stderr.contains(says), "{urls:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{urls:?} listened");
        assert!(
            !Path::new(data).join("wasmq.db").exists(),
            "{urls:?} opened the database before the stores"
        );
    }
    // The bucket that does not exist is named as the reason.
    let out = serve(&["--assets-url", "s3://no-such-bucket/prod"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("NoSuchBucket"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The same checks guard `wasmq assets import`.
    let out = wasmq(
        &[
            "assets",
            "import",
            STATIC,
            "--to",
            "/content/x",
            "--data-dir",
            data,
            "--assets-url",
            "s3:/wasmq-e2e",
        ],
        &s3.env(),
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("--assets-url \"s3:/wasmq-e2e\": expected s3://BUCKET/PREFIX"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(s3.keys(BUCKET).is_empty());
}
