//! The first job type end to end: a real server, the delete component built
//! from plugins/, over 1,000 assets imported from real files, with exclusions and references.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::json;
use wasmq_e2e::{Options, Server, task};

const ROOT: &str = "/content/dam/site";

/// Copies the first `n` regular files of /usr/share/doc (sorted) under `dest/docs`.
fn copy_real_files(dest: &Path, n: usize) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let kind = entry.file_type().unwrap();
            if kind.is_dir() {
                walk(&entry.path(), out);
            } else if kind.is_file() {
                out.push(entry.path());
            }
        }
    }
    let source = Path::new("/usr/share/doc");
    let mut files = Vec::new();
    walk(source, &mut files);
    files.sort();
    files.truncate(n);
    assert!(
        files.len() >= 1000,
        "need 1,000 real files under /usr/share/doc, found {}",
        files.len()
    );
    for file in &files {
        let target = dest.join("docs").join(file.strip_prefix(source).unwrap());
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::copy(file, target).unwrap();
    }
    files
        .iter()
        .map(|f| PathBuf::from("docs").join(f.strip_prefix(source).unwrap()))
        .collect()
}

fn asset_path(rel: &Path) -> String {
    format!("{ROOT}/{}", rel.to_string_lossy())
}

#[tokio::test(flavor = "multi_thread")]
async fn delete_with_exclusions_keeps_referenced_assets() {
    let src = tempfile::tempdir().unwrap();
    let files = copy_real_files(src.path(), 1300);
    let mut all: BTreeSet<String> = files.iter().map(|f| asset_path(f)).collect();

    // Two real assets referenced by pages: one page is kept (excluded folder),
    // the other page is deleted by the same job.
    let kept_target = asset_path(&files[10]);
    let gone_target = asset_path(&files[20]);
    std::fs::create_dir_all(src.path().join("keep")).unwrap();
    std::fs::write(
        src.path().join("keep/index.html"),
        format!("<a href=\"{kept_target}\">licence</a>"),
    )
    .unwrap();
    std::fs::write(
        src.path().join("page.html"),
        format!("<img src=\"{gone_target}\">"),
    )
    .unwrap();
    all.insert(format!("{ROOT}/keep/index.html"));
    all.insert(format!("{ROOT}/page.html"));

    // Exclude the folder with the kept page and one small package's documentation.
    let package_of = |f: &PathBuf| f.iter().nth(1).unwrap().to_string_lossy().into_owned();
    let mut sizes = std::collections::BTreeMap::<String, usize>::new();
    for f in &files {
        *sizes.entry(package_of(f)).or_default() += 1;
    }
    let package = sizes
        .iter()
        .find(|(p, n)| {
            (2..=50).contains(*n) && **p != package_of(&files[10]) && **p != package_of(&files[20])
        })
        .map(|(p, _)| p.clone())
        .expect("a package with 2 to 50 documentation files");
    let excluded = [format!("{ROOT}/keep"), format!("{ROOT}/docs/{package}")];
    let is_excluded = |p: &String| excluded.iter().any(|x| p.starts_with(&format!("{x}/")));

    let server = Server::start(Options {
        plugins: vec!["wasmq_delete"],
        ..Default::default()
    });
    let out = server.import(src.path(), ROOT);
    assert!(
        out.contains(&format!("imported {} assets", all.len())),
        "{out}"
    );
    assert!(out.contains("(2 references)"), "{out}");
    assert!(all.len() >= 1000);

    let id = server
        .submit(&json!({"type": "delete", "path": ROOT, "excludedPaths": excluded, "description": "e2e bulk delete"}))
        .await;
    let job = server.wait_done(&id).await;
    assert_eq!(job["state"], "Complete", "{job}");

    let survivors: BTreeSet<String> = all
        .iter()
        .filter(|p| is_excluded(p) || **p == kept_target)
        .cloned()
        .collect();
    let planned: BTreeSet<String> = all.iter().filter(|p| !is_excluded(p)).cloned().collect();
    assert!(
        survivors.len() > 2 && planned.len() > 1000,
        "{} {}",
        survivors.len(),
        planned.len()
    );

    // Files on disk.
    for path in &all {
        assert_eq!(
            server.asset_file(path).is_file(),
            survivors.contains(path),
            "file of {path}"
        );
    }
    // Rows, through the API and in the database itself.
    let listed: BTreeSet<String> = server.assets(ROOT).await.into_iter().collect();
    assert_eq!(listed, survivors);
    let db = sqlx::SqlitePool::connect(&format!(
        "sqlite://{}?mode=ro",
        server.data_dir().join("wasmq.db").display()
    ))
    .await
    .unwrap();
    let rows: i64 =
        sqlx::query_scalar("SELECT count(*) FROM assets WHERE tenant = 'default' AND path LIKE ?")
            .bind(format!("{ROOT}/%"))
            .fetch_one(&db)
            .await
            .unwrap();
    assert_eq!(rows as usize, survivors.len());
    let refs: i64 = sqlx::query_scalar("SELECT count(*) FROM refs WHERE target = ?")
        .bind(&kept_target)
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(refs, 1, "the kept reference is still recorded");

    // One task per planned asset, each with its final status.
    let tasks = server.tasks(&id).await;
    let task_paths: BTreeSet<String> = tasks
        .iter()
        .map(|t| t["path"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(task_paths, planned);
    assert_eq!(tasks.len(), planned.len(), "one task per asset");
    for t in &tasks {
        if t["path"] == kept_target.as_str() {
            assert_eq!(
                (t["state"].as_str(), t["code"].as_i64()),
                (Some("failed"), Some(409)),
                "{t}"
            );
            assert!(
                t["message"].as_str().unwrap().contains("keep/index.html"),
                "{t}"
            );
        } else {
            assert_eq!(
                (t["state"].as_str(), t["code"].as_i64()),
                (Some("succeeded"), Some(200)),
                "{t}"
            );
            assert_eq!(t["attempts"], 1, "{t}");
        }
    }
    assert_eq!(job["counts"]["total"], planned.len());
    assert_eq!(job["counts"]["succeeded"], planned.len() - 1);
    assert_eq!(job["counts"]["failed"], 1);
    assert_eq!(job["progress"]["percent"], 100.0);
    assert_eq!(job["serverName"], "e2e-node");
    assert!(job["cpuMs"].as_f64().unwrap() > 0.0, "{job}");
    assert!(job["totalSize"].as_i64().unwrap() > 0);

    // The report has a row per item and was also stored as an asset.
    let report = server.report(&id).await;
    assert_eq!(report.lines().count(), planned.len() + 1);
    assert!(
        report
            .lines()
            .any(|l| l.starts_with(&kept_target) && l.contains(",failed,409,"))
    );
    assert!(
        server
            .asset_file(&format!("/system/wasmq/reports/{id}.csv"))
            .is_file()
    );

    // With force, the referenced asset goes too.
    let folder = kept_target.rsplit_once('/').unwrap().0.to_string();
    let forced = server
        .submit(&json!({"type": "delete", "path": folder, "params": {"force": true}}))
        .await;
    let job = server.wait_done(&forced).await;
    assert_eq!(job["state"], "Complete", "{job}");
    let t = task(&server.tasks(&forced).await, &kept_target).clone();
    assert_eq!(
        (t["state"].as_str(), t["code"].as_i64()),
        (Some("succeeded"), Some(200)),
        "{t}"
    );
    assert!(!server.asset_file(&kept_target).exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_params_fail_the_job_early() {
    let server = Server::start(Options {
        plugins: vec!["wasmq_delete", "wasmq_chaos"],
        ..Default::default()
    });
    // The plugin's JSON Schema refuses bad params before a job exists...
    let (status, body) = server
        .post(
            "/api/v1/jobs",
            &json!({"type": "delete", "path": ROOT, "params": {"force": "yes"}}),
        )
        .await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (400, Some("params.force")),
        "{body}"
    );
    // ...and what only the plugin can judge fails the job early, in plan.
    let id = server
        .submit(&json!({"type": "chaos", "path": ROOT, "params": {"tasks": ["ok", "invalid"]}}))
        .await;
    let job = server.wait_done(&id).await;
    assert_eq!(job["state"], "Failed", "{job}");
    assert!(
        job["error"].as_str().unwrap().contains("invalid input"),
        "{job}"
    );
    assert_eq!(job["counts"]["total"], 0);
}
