//! The `move` job type end to end: real files moved as a folder, references
//! rewritten in real HTML, CSS, JSON, XML and Markdown, conflict policies, bad input.

use std::path::Path;

use serde_json::{Value, json};
use wasmq_e2e::{Options, Server, task};

/// Real files: gitweb's static folder (images, a stylesheet, scripts).
const STATIC: &str = "/usr/share/gitweb/static";
const SOURCE: &str = "/content/dam/site/static";
const DEST: &str = "/content/dam/brand/static";

fn real(file: &str) -> Vec<u8> {
    std::fs::read(file).unwrap_or_else(|e| panic!("{file}: {e}"))
}

/// The first real file under `dir` whose name ends in `suffix`.
fn first_real(dir: &str, suffix: &str) -> String {
    let mut found: Vec<_> = walkdir(Path::new(dir))
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect();
    found.sort();
    found
        .first()
        .unwrap_or_else(|| panic!("no real *{suffix} under {dir}"))
        .to_string_lossy()
        .into_owned()
}

fn walkdir(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let kind = entry.file_type().unwrap();
        if kind.is_dir() {
            out.extend(walkdir(&entry.path()));
        } else if kind.is_file() {
            out.push(entry.path());
        }
    }
    out
}

/// Real text documents of every referring kind, each with references to the
/// moved images added into its real content: (asset path, text).
fn referrers() -> Vec<(String, String)> {
    let logo = format!("{SOURCE}/git-logo.png");
    let favicon = format!("{SOURCE}/git-favicon.png");
    let html = String::from_utf8_lossy(&real(&first_real("/usr/share/doc", ".html"))).replacen(
        "<body",
        &format!("<img src=\"{logo}\" alt=\"logo\"><a href=\"{favicon}\">icon</a> <body"),
        1,
    );
    let css = format!(
        "{}\n.logo {{ background: url({logo}); }}\n.icon {{ background: url('{favicon}'); }}\n",
        String::from_utf8_lossy(&real(&first_real("/usr/share", ".css")))
    );
    let json = serde_json::to_string_pretty(&json!({
        "title": "brand kit", "logo": logo, "icons": [favicon, format!("{logo}2")]
    }))
    .unwrap();
    let xml = format!(
        "<?xml version=\"1.0\"?>\n<page><image href=\"{logo}\"/><note>{logo}/not-this</note></page>\n"
    );
    let markdown = format!(
        "{}\n\n![logo]({logo})\n",
        String::from_utf8_lossy(&real(&first_real("/usr/share/doc", ".md")))
    );
    vec![
        ("/content/dam/pages/index.html".into(), html),
        ("/content/dam/pages/site.css".into(), css),
        ("/content/dam/pages/kit.json".into(), json),
        ("/content/dam/pages/page.xml".into(), xml),
        ("/content/dam/pages/README.md".into(), markdown),
    ]
}

/// Asset paths of the default tenant, read from the SQLite file itself.
fn asset_rows(db: &Path) -> Vec<String> {
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg("import sqlite3,sys; [print(r[0]) for r in sqlite3.connect(sys.argv[1]).execute(\"SELECT path FROM assets WHERE tenant = 'default'\")]")
        .arg(db)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

fn start() -> Server {
    Server::start(Options {
        plugins: vec!["wasmq_move"],
        ..Default::default()
    })
}

async fn run(server: &Server, path: &str, params: Value) -> (Value, Vec<Value>) {
    let id = server
        .submit(&json!({"type": "move", "path": path, "params": params}))
        .await;
    let job = server.wait_done(&id).await;
    (job, server.tasks(&id).await)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_folder_moves_whole_and_references_follow_in_every_text_format() {
    let server = start();
    server.import(Path::new(STATIC), SOURCE);
    let originals: Vec<String> = server.assets(SOURCE).await;
    assert!(originals.len() >= 4, "{originals:?}");
    for (path, text) in referrers() {
        let (status, answer) = server
            .upload(&path, None, text.into_bytes(), "application/octet-stream")
            .await;
        assert_eq!(status, 201, "{answer}");
    }
    // A rendition moves with its asset.
    let (status, _) = server
        .upload(
            &format!("{SOURCE}/git-logo.png"),
            Some("thumb.png"),
            real(&format!("{STATIC}/git-favicon.png")),
            "image/png",
        )
        .await;
    assert_eq!(status, 201);

    let (job, tasks) = run(&server, SOURCE, json!({"destination": DEST})).await;
    assert_eq!(job["state"], "Complete", "{job}");
    assert_eq!(tasks.len(), originals.len());
    for t in &tasks {
        assert_eq!(
            (t["state"].as_str(), t["code"].as_i64()),
            (Some("succeeded"), Some(201)),
            "{t}"
        );
    }

    // Every asset is at its new path with the same bytes, none at the old one.
    assert!(server.assets(SOURCE).await.is_empty());
    let moved = server.assets(DEST).await;
    assert_eq!(moved.len(), originals.len());
    for old in &originals {
        let new = old.replacen(SOURCE, DEST, 1);
        let (status, bytes) = server.download(&new, None).await;
        assert_eq!(status, 200, "{new}");
        let file = format!("{STATIC}{}", &old[SOURCE.len()..]);
        assert_eq!(bytes, real(&file), "{new} differs from {file}");
        assert_eq!(server.download(old, None).await.0, 404);
    }
    let (status, thumb) = server
        .download(&format!("{DEST}/git-logo.png"), Some("thumb.png"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(thumb, real(&format!("{STATIC}/git-favicon.png")));

    // Each referrer names the new paths, and nothing else changed in it.
    for (path, text) in referrers() {
        let (status, bytes) = server.download(&path, None).await;
        assert_eq!(status, 200);
        let now = String::from_utf8(bytes).unwrap();
        let (logo_from, logo_to) = (
            format!("{SOURCE}/git-logo.png"),
            format!("{DEST}/git-logo.png"),
        );
        let mut expected = text.replace(
            &format!("{SOURCE}/git-favicon.png"),
            &format!("{DEST}/git-favicon.png"),
        );
        for end in ['"', ')', '\''] {
            expected = expected.replace(&format!("{logo_from}{end}"), &format!("{logo_to}{end}"));
        }
        assert_eq!(now, expected, "{path}");
        assert!(now.contains(DEST), "{path}: {now}");
    }
    // Mentions that are not whole references stay as they were.
    let json: Value =
        serde_json::from_slice(&server.download("/content/dam/pages/kit.json", None).await.1)
            .unwrap();
    assert_eq!(json["icons"][1], format!("{SOURCE}/git-logo.png2"));
    let xml = server.download("/content/dam/pages/page.xml", None).await.1;
    assert!(
        String::from_utf8(xml)
            .unwrap()
            .contains(&format!("{SOURCE}/git-logo.png/not-this"))
    );

    // The references followed: moving the images back rewrites the texts back.
    let (job, _) = run(&server, DEST, json!({"destination": SOURCE})).await;
    assert_eq!(job["state"], "Complete", "{job}");
    for (path, text) in referrers() {
        let now = String::from_utf8(server.download(&path, None).await.1).unwrap();
        assert_eq!(now, text, "{path} after moving back");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn conflict_policies_fail_skip_rename_overwrite() {
    let server = start();
    let logo = real(&format!("{STATIC}/git-logo.png"));
    let favicon = real(&format!("{STATIC}/git-favicon.png"));
    let other = real(&first_real("/usr/share/doc", ".html"));
    for policy in ["fail", "skip", "rename", "overwrite"] {
        let from = format!("/content/{policy}/in");
        let to = format!("/content/{policy}/out");
        server
            .upload(&format!("{from}/logo.png"), None, logo.clone(), "image/png")
            .await;
        server
            .upload(
                &format!("{from}/icon.png"),
                None,
                favicon.clone(),
                "image/png",
            )
            .await;
        // Something is already at one destination.
        server
            .upload(&format!("{to}/logo.png"), None, other.clone(), "image/png")
            .await;

        let (job, tasks) = run(
            &server,
            &from,
            json!({"destination": to, "conflict": policy}),
        )
        .await;
        assert_eq!(job["state"], "Complete", "{policy}: {job}");
        let icon = task(&tasks, "/icon.png");
        assert_eq!(icon["code"], 201, "{policy}: {icon}");
        assert_eq!(
            server.download(&format!("{to}/icon.png"), None).await.1,
            favicon
        );
        let clash = task(&tasks, "/logo.png");
        let at_dest = server.download(&format!("{to}/logo.png"), None).await.1;
        let at_source = server.download(&format!("{from}/logo.png"), None).await;
        match policy {
            "fail" => {
                assert_eq!(
                    (clash["state"].as_str(), clash["code"].as_i64()),
                    (Some("failed"), Some(409)),
                    "{clash}"
                );
                assert!(
                    clash["message"]
                        .as_str()
                        .unwrap()
                        .contains("already exists"),
                    "{clash}"
                );
                assert_eq!(at_dest, other, "the existing asset is untouched");
                assert_eq!(at_source, (200, logo.clone()), "the source stays whole");
            }
            "skip" => {
                assert_eq!(clash["code"], 204, "{clash}");
                assert_eq!(at_dest, other);
                assert_eq!(at_source, (200, logo.clone()));
            }
            "rename" => {
                assert_eq!(clash["code"], 201, "{clash}");
                assert!(
                    clash["message"]
                        .as_str()
                        .unwrap()
                        .contains(&format!("{to}/logo-1.png")),
                    "{clash}"
                );
                assert_eq!(at_dest, other);
                assert_eq!(
                    server.download(&format!("{to}/logo-1.png"), None).await.1,
                    logo
                );
                assert_eq!(at_source.0, 404);
            }
            "overwrite" => {
                assert_eq!(clash["code"], 201, "{clash}");
                assert_eq!(at_dest, logo);
                assert_eq!(at_source.0, 404);
            }
            _ => unreachable!(),
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_single_asset_moves_and_bad_params_are_refused() {
    let server = start();
    let logo = real(&format!("{STATIC}/git-logo.png"));
    server
        .upload("/content/a/logo.png", None, logo.clone(), "image/png")
        .await;
    let (job, tasks) = run(
        &server,
        "/content/a/logo.png",
        json!({"destination": "/content/b/renamed.png"}),
    )
    .await;
    assert_eq!(job["state"], "Complete", "{job}");
    assert_eq!(tasks.len(), 1);
    assert_eq!(
        server.download("/content/b/renamed.png", None).await,
        (200, logo)
    );

    for (params, field) in [
        (json!({}), "params"),
        (
            json!({"destination": "relative/path"}),
            "params.destination",
        ),
        (
            json!({"destination": "/content/../etc"}),
            "params.destination",
        ),
        (
            json!({"destination": "/content/x", "conflict": "merge"}),
            "params.conflict",
        ),
        (json!({"destination": "/content/x", "extra": 1}), "params"),
    ] {
        let (status, answer) = server
            .post(
                "/api/v1/jobs",
                &json!({"type": "move", "path": "/content/b", "params": params}),
            )
            .await;
        assert_eq!(status, 400, "{params}: {answer}");
        assert_eq!(answer["error"]["field"], field, "{params}: {answer}");
    }

    // A folder cannot move into itself: the job fails at once, nothing moves.
    let (job, tasks) = run(
        &server,
        "/content/b",
        json!({"destination": "/content/b/inner"}),
    )
    .await;
    assert_eq!(job["state"], "Failed", "{job}");
    assert!(tasks.is_empty());
    assert_eq!(
        server.assets("/content/b").await,
        vec!["/content/b/renamed.png"]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_killed_mid_move_leaves_every_asset_whole_and_the_rerun_finishes() {
    let mut server = start();
    let src = "/usr/share/X11";
    server.import(Path::new(src), "/content/docs");
    let originals = server.assets("/content/docs").await;
    assert!(originals.len() >= 300, "{}", originals.len());
    // A referrer outside the folder, so every kill point also crosses a rewrite.
    let first = originals[0].clone();
    let page = format!("<a href=\"{first}\">first</a>");
    server
        .upload(
            "/content/pages/index.html",
            None,
            page.into_bytes(),
            "text/html",
        )
        .await;

    let id = server
        .submit(&json!({"type": "move", "path": "/content/docs", "params": {"destination": "/content/moved"}}))
        .await;
    // Kill once some but not all assets have moved.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let (_, job) = server.get(&format!("/api/v1/jobs/{id}")).await;
        let done = job["counts"]["succeeded"].as_u64().unwrap_or(0);
        if done >= 50 {
            assert!(
                done < originals.len() as u64,
                "the move ended before the kill"
            );
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{job}");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    // While the server is down, each asset is whole at exactly one path.
    let mut rows = Vec::new();
    server.kill_and(|data| rows = asset_rows(&data.join("wasmq.db")));
    for path in &originals {
        let moved = path.replacen("/content/docs", "/content/moved", 1);
        let at = (rows.contains(path), rows.contains(&moved));
        assert!(at.0 ^ at.1, "{path} is at both or neither: {at:?}");
        let at_path = if at.0 { path } else { &moved };
        let binary = server.asset_file(at_path);
        let file = format!("{src}{}", &path["/content/docs".len()..]);
        let bytes = std::fs::read(&binary)
            .unwrap_or_else(|e| panic!("{at_path}: {} {e}", binary.display()));
        assert_eq!(bytes, real(&file), "{at_path}");
    }

    let job = server.wait_done(&id).await;
    assert_eq!(job["state"], "Complete", "{job}");
    let tasks = server.tasks(&id).await;
    assert_eq!(tasks.len(), originals.len());
    for t in &tasks {
        assert_eq!(t["state"], "succeeded", "{t}");
    }
    assert!(server.assets("/content/docs").await.is_empty());
    for path in &originals {
        let moved = path.replacen("/content/docs", "/content/moved", 1);
        let (status, bytes) = server.download(&moved, None).await;
        assert_eq!(status, 200, "{moved}");
        let file = format!("{src}{}", &path["/content/docs".len()..]);
        assert_eq!(bytes, real(&file), "{moved}");
    }
    let index = server.download("/content/pages/index.html", None).await.1;
    let moved_first = first.replacen("/content/docs", "/content/moved", 1);
    assert_eq!(
        String::from_utf8(index).unwrap(),
        format!("<a href=\"{moved_first}\">first</a>")
    );
}
