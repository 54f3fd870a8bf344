//! End to end, the plugin authoring kit: a scaffolded plugin builds out of tree,
//! and the third-party checksum plugin of examples/ is built, installed into a server and run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::json;
use sha2::{Digest, Sha256};
use wasmq_e2e::{Options, Server, binary, workspace};

/// The folder the fixtures are imported into.
const ROOT: &str = "/content/dam/licenses";

/// Runs `wasmq ARGS`; panics with its output unless it succeeds.
fn wasmq(args: &[&std::ffi::OsStr]) -> Output {
    let out = Command::new(binary())
        .args(args)
        .output()
        .expect("run wasmq");
    assert!(
        out.status.success(),
        "wasmq {args:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Builds the plugin crate at `dir` into `out`; returns the component `name`.
/// The build shares the first-party plugins' target directory, as `--target-dir`
/// allows: the standard library (built from source on Debian's toolchain) is reused.
fn build(dir: &Path, out: &Path, name: &str) -> PathBuf {
    let shared = workspace().join("plugins/target");
    wasmq(&[
        "plugin".as_ref(),
        "build".as_ref(),
        dir.as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
        "--target-dir".as_ref(),
        shared.as_os_str(),
    ]);
    let component = out.join(format!("{name}.wasm"));
    assert!(component.is_file(), "no {}", component.display());
    let copied: Vec<_> = std::fs::read_dir(out)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(
        copied.len(),
        1,
        "only this crate's component is copied: {copied:?}"
    );
    component
}

/// A few real files (and one in a sub-folder), by name, with their SHA-256.
fn fixtures(dir: &Path) -> BTreeMap<String, String> {
    let source = Path::new("/usr/share/common-licenses");
    let mut names: Vec<String> = std::fs::read_dir(source)
        .expect("/usr/share/common-licenses")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names.truncate(4);
    assert!(names.len() >= 2, "too few files in {}", source.display());
    let mut sums = BTreeMap::new();
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    for (i, name) in names.iter().enumerate() {
        let data = std::fs::read(source.join(name)).unwrap();
        let relative = if i == 0 {
            format!("sub/{name}")
        } else {
            name.clone()
        };
        std::fs::write(dir.join(&relative), &data).unwrap();
        sums.insert(relative, hex(&Sha256::digest(&data)));
    }
    sums
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn scaffold_builds_out_of_tree_and_the_checksum_example_runs() {
    let scratch = tempfile::tempdir().unwrap();
    let scratch = scratch.path();

    // A new plugin, outside this repository, builds and runs as it is.
    wasmq(&[
        "plugin".as_ref(),
        "new".as_ref(),
        "hello-kit".as_ref(),
        "--dir".as_ref(),
        scratch.as_os_str(),
    ]);
    let crate_dir = scratch.join("hello-kit");
    let manifest = std::fs::read_to_string(crate_dir.join("Cargo.toml")).unwrap();
    assert!(
        !manifest.contains("../"),
        "the scaffold refers outside itself:\n{manifest}"
    );
    let hello = build(&crate_dir, &scratch.join("out-hello"), "hello_kit");

    let fixtures_dir = scratch.join("fixtures");
    let sums = fixtures(&fixtures_dir);
    let out = wasmq(&[
        "plugin".as_ref(),
        "test".as_ref(),
        hello.as_os_str(),
        "--fixtures".as_ref(),
        fixtures_dir.as_os_str(),
    ]);
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(printed.contains(": Complete"), "{printed}");
    assert_all_succeeded(&printed, sums.len());
    assert!(printed.contains(" bytes"), "{printed}");

    // The third-party example builds out of tree from examples/.
    let checksum = build(
        &workspace().join("examples/checksum"),
        &scratch.join("out-checksum"),
        "checksum",
    );

    // Uploaded to a running server, it serves at once: no restart.
    let server = Server::start(Options::default());
    let (status, installed) = server
        .send(
            server
                .request(reqwest::Method::PUT, "/api/v1/plugins/checksum")
                .header("content-type", "application/wasm")
                .body(std::fs::read(&checksum).unwrap()),
        )
        .await;
    assert_eq!(
        (status, installed["status"].as_str()),
        (201, Some("active")),
        "{installed}"
    );
    assert_eq!(
        installed["jobTypes"],
        serde_json::json!(["checksum"]),
        "{installed}"
    );
    assert!(server.plugins_dir().join("checksum.wasm").is_file());

    server.import(&fixtures_dir, ROOT);
    let id = server
        .submit(&json!({ "type": "checksum", "path": ROOT }))
        .await;
    let job = server.wait_done(&id).await;
    assert_eq!(job["state"], "Complete", "{job}");
    let tasks = server.tasks(&id).await;
    assert_eq!(tasks.len(), sums.len(), "{tasks:?}");
    for (relative, sum) in &sums {
        let task = wasmq_e2e::task(&tasks, &format!("{ROOT}/{relative}"));
        assert_eq!(task["state"], "succeeded", "{task}");
        assert_eq!(task["message"].as_str(), Some(sum.as_str()), "{task}");
    }
    let db = sqlx::SqlitePool::connect(&format!(
        "sqlite://{}?mode=ro",
        server.data_dir().join("wasmq.db").display()
    ))
    .await
    .unwrap();
    let stored: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT path, kind, value FROM metadata WHERE tenant = 'default' AND name = 'wasmq:sha256' ORDER BY path",
    )
    .fetch_all(&db)
    .await
    .unwrap();
    let expected: Vec<(String, String, String)> = sums
        .iter()
        .map(|(relative, sum)| {
            (
                format!("{ROOT}/{relative}"),
                "text".to_string(),
                sum.clone(),
            )
        })
        .collect();
    assert_eq!(stored, expected);

    // `wasmq plugin test` runs the same component on the fixtures and prints the tasks.
    let out = wasmq(&[
        "plugin".as_ref(),
        "test".as_ref(),
        checksum.as_os_str(),
        "--fixtures".as_ref(),
        fixtures_dir.as_os_str(),
        "--to".as_ref(),
        "/content/fixtures".as_ref(),
    ]);
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(printed.contains("job checksum of checksum "), "{printed}");
    for (relative, sum) in &sums {
        let line = printed
            .lines()
            .find(|l| l.contains(&format!("/content/fixtures/{relative} ")))
            .unwrap_or_else(|| panic!("no task for {relative}:\n{printed}"));
        assert!(
            line.contains("succeeded") && line.ends_with(sum.as_str()),
            "{line}"
        );
    }
    assert_all_succeeded(&printed, sums.len());
}

/// `wasmq plugin test` printed totals saying all `n` tasks succeeded.
fn assert_all_succeeded(printed: &str, n: usize) {
    assert!(
        printed.contains(&format!("{n} tasks, {n} succeeded, 0 failed")),
        "{printed}"
    );
}
