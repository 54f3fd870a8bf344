//! The `wasmq` client commands as a script or a person runs them: the real binary
//! against a real server, its progress output, `--json`, exit codes and config file.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use wasmq_e2e::{Options, Server, binary};

/// Runs `wasmq args` with only `env` for settings: no WASMQ_* variables of
/// the caller, and a fresh home without a config file.
fn wasmq(args: &[&str], env: &[(&str, &str)]) -> Output {
    command(args, env).output().expect("run wasmq")
}

fn command(args: &[&str], env: &[(&str, &str)]) -> Command {
    let home = std::env::temp_dir().join("wasmq-e2e-cli-home");
    std::fs::create_dir_all(&home).unwrap();
    let mut cmd = Command::new(binary());
    cmd.args(args)
        .env_remove("WASMQ_SERVER")
        .env_remove("WASMQ_TOKEN")
        .env_remove("WASMQ_CONFIG")
        .env_remove("WASMQ_OUTPUT")
        .env("HOME", &home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .envs(env.iter().copied())
        .stdin(Stdio::null());
    cmd
}

/// `wasmq args` against `server` as the admin.
fn admin(server: &Server, args: &[&str]) -> Output {
    let token = server.admin_token();
    wasmq(
        args,
        &[("WASMQ_SERVER", &server.url), ("WASMQ_TOKEN", &token)],
    )
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The exit code, with the output in the message when it is not `expected`.
fn assert_exit(out: &Output, expected: i32) {
    assert_eq!(
        out.status.code(),
        Some(expected),
        "stdout: {}\nstderr: {}",
        stdout(out),
        stderr(out)
    );
}

/// An action's line, `job ID STATE`, with the state one of `states` (the
/// scheduler may move the job on before the answer is read).
fn assert_state_line(out: &Output, id: &str, states: &[&str]) {
    assert_exit(out, 0);
    let text = stdout(out);
    let state = text
        .strip_prefix(&format!("job {id} "))
        .and_then(|rest| rest.strip_suffix('\n'))
        .unwrap_or_else(|| panic!("not `job {id} STATE`: {text:?}"));
    assert!(states.contains(&state), "{state} is not one of {states:?}");
}

fn json_of(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}): {}", stdout(out)))
}

fn slow_params(n: usize, ms: u64) -> String {
    json!({"tasks": vec!["slow"; n], "slowMs": ms}).to_string()
}

fn chaos_server() -> Server {
    Server::start(Options {
        plugins: vec!["wasmq_chaos"],
        workers: Some(1),
        ..Default::default()
    })
}

/// The plain progress lines `job ID: DONE/TOTAL (P%) STATE...` for `id` in `text`.
fn progress_lines(text: &str, id: &str) -> Vec<(u64, u64, String)> {
    let prefix = format!("job {id}: ");
    text.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix(&prefix)?;
            let (counts, rest) = rest.split_once(' ')?;
            let (done, total) = counts.split_once('/')?;
            let (_, state) = rest.split_once(") ")?;
            let state = state.split([',', ':']).next()?.to_string();
            Some((done.parse().ok()?, total.parse().ok()?, state))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn submit_wait_prints_rising_plain_progress_and_exits_by_the_end_state() {
    let server = chaos_server();
    let params = slow_params(30, 100);
    let out = admin(
        &server,
        &[
            "submit",
            "--type",
            "chaos",
            "--path",
            "/content/dam/slow",
            "--params",
            &params,
            "--name",
            "watched",
            "--wait",
        ],
    );
    assert_exit(&out, 0);
    let id = stdout(&out).trim().to_string();
    assert_eq!(stdout(&out), format!("{id}\n"), "stdout holds the id only");
    let err = stderr(&out);
    let lines = progress_lines(&err, &id);
    assert!(lines.len() >= 3, "too few progress lines:\n{err}");
    assert!(
        lines.windows(2).all(|w| w[0].0 <= w[1].0),
        "counts never go down:\n{err}"
    );
    let between: Vec<u64> = lines
        .iter()
        .map(|l| l.0)
        .filter(|&d| d > 0 && d < 30)
        .collect();
    assert!(
        !between.is_empty(),
        "progress was shown while the job ran:\n{err}"
    );
    assert!(
        lines.iter().any(|l| l.2 == "Active"),
        "the Active state was shown:\n{err}"
    );
    assert_eq!(
        lines.last().unwrap(),
        &(30, 30, "Complete".to_string()),
        "{err}"
    );
    assert!(
        err.contains(&format!("job {id} Complete: 30 of 30 tasks succeeded")),
        "{err}"
    );
    let (_, job) = server.get(&format!("/api/v1/jobs/{id}")).await;
    assert_eq!(
        (job["state"].as_str(), job["name"].as_str()),
        (Some("Complete"), Some("watched"))
    );

    // A job that fails exits 1 and says why.
    let out = admin(
        &server,
        &[
            "submit",
            "--type",
            "chaos",
            "--path",
            "/content/dam/bad",
            "--params",
            r#"{"tasks": ["invalid"]}"#,
            "--wait",
        ],
    );
    assert_exit(&out, 1);
    assert!(stderr(&out).contains("Failed"), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("chaos was asked to refuse this job"),
        "{}",
        stderr(&out)
    );

    // A job cancelled while the command waits exits 7.
    let token = server.admin_token();
    let mut waiting = command(
        &[
            "submit",
            "--type",
            "chaos",
            "--path",
            "/content/dam/cancelled",
            "--params",
            &slow_params(100, 100),
            "--wait",
        ],
        &[("WASMQ_SERVER", &server.url), ("WASMQ_TOKEN", &token)],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let first = waiting.stdout.take().unwrap();
    let (id, mut rest) = tokio::task::spawn_blocking(move || {
        let mut reader = BufReader::new(first);
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        (line.trim().to_string(), reader)
    })
    .await
    .unwrap();
    server
        .wait_for(&id, &["Active"], Duration::from_secs(60))
        .await;
    let (status, _) = server.action(&id, "cancel").await;
    assert_eq!(status, 200);
    let out = tokio::task::spawn_blocking(move || waiting.wait_with_output().unwrap())
        .await
        .unwrap();
    assert_exit(&out, 7);
    let mut more = String::new();
    rest.read_to_string(&mut more).unwrap();
    assert_eq!(more, "", "stdout holds the id only");
    assert!(
        stderr(&out).contains(&format!("job {id} Cancelled")),
        "{}",
        stderr(&out)
    );
}

/// Quotes a word for `sh -c`.
fn shell_word(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

#[tokio::test(flavor = "multi_thread")]
async fn under_a_terminal_submit_wait_draws_an_animated_bar() {
    let server = chaos_server();
    let script = Path::new("/usr/bin/script");
    assert!(
        script.is_file(),
        "no /usr/bin/script (util-linux/bsdutils): run scripts/setup.sh"
    );
    let params = slow_params(20, 100);
    let line = [
        binary().display().to_string().as_str(),
        "submit",
        "--type",
        "chaos",
        "--path",
        "/content/dam/tty",
        "--params",
        &params,
        "--wait",
    ]
    .iter()
    .map(|w| shell_word(w))
    .collect::<Vec<_>>()
    .join(" ");
    let token = server.admin_token();
    // `script` runs the command on a pseudo-terminal and copies what it draws.
    let out = Command::new(script)
        .args(["-qfec", &line, "/dev/null"])
        .env_remove("WASMQ_CONFIG")
        .env("WASMQ_SERVER", &server.url)
        .env("WASMQ_TOKEN", &token)
        .env("TERM", "xterm")
        .stdin(Stdio::null())
        .output()
        .expect("run script");
    assert_exit(&out, 0);
    let drawn = stdout(&out);
    assert!(
        drawn.contains("\u{1b}[2K"),
        "the bar redraws its line:\n{drawn:?}"
    );
    let frames: Vec<&str> = drawn.split('\r').filter(|f| f.contains("/20 (")).collect();
    assert!(
        frames
            .iter()
            .any(|f| f.contains("Active") && !f.contains("20/20")),
        "a frame while the job ran:\n{drawn:?}"
    );
    assert!(
        frames.iter().any(|f| f.contains("] 20/20 (100%) Complete")),
        "the last frame:\n{drawn:?}"
    );
    assert!(
        frames.iter().any(|f| f.contains("=>")),
        "a partly filled bar:\n{drawn:?}"
    );
    let id = drawn.lines().next().unwrap().trim();
    assert!(
        !drawn.contains(&format!("job {id}: ")),
        "no plain lines on a terminal:\n{drawn:?}"
    );
    assert!(
        drawn.contains(&format!("job {id} Complete: 20 of 20 tasks succeeded")),
        "{drawn:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn json_output_is_the_apis_json_and_nothing_else() {
    let server = chaos_server();
    let params = slow_params(3, 10);
    let out = admin(
        &server,
        &[
            "submit",
            "--type",
            "chaos",
            "--path",
            "/content/dam/j",
            "--params",
            &params,
            "--description",
            "json please",
            "--priority",
            "3",
            "--locale",
            "fr-FR",
            "--json",
        ],
    );
    assert_exit(&out, 0);
    let submitted = json_of(&out);
    let id = submitted["id"].as_str().unwrap().to_string();
    assert_eq!(
        (
            submitted["type"].as_str(),
            submitted["description"].as_str(),
            submitted["priority"].as_i64(),
            submitted["locale"].as_str()
        ),
        (Some("chaos"), Some("json please"), Some(3), Some("fr-FR"))
    );
    server.wait_done(&id).await;

    let out = admin(&server, &["jobs", "show", &id, "--json"]);
    assert_exit(&out, 0);
    let (_, api) = server.get(&format!("/api/v1/jobs/{id}")).await;
    assert_eq!(json_of(&out), api);

    let out = admin(&server, &["jobs", "list", "--json"]);
    assert_exit(&out, 0);
    let (_, api) = server.get("/api/v1/jobs?limit=50&offset=0").await;
    assert_eq!(json_of(&out), api);

    let out = admin(&server, &["plugins", "list", "--json"]);
    assert_exit(&out, 0);
    let (_, api) = server.get("/api/v1/plugins").await;
    assert_eq!(json_of(&out), api);

    let out = admin(&server, &["logs", &id, "--json"]);
    assert_exit(&out, 0);
    let (_, api) = server
        .get(&format!("/api/v1/jobs/{id}/logs?limit=10000"))
        .await;
    assert_eq!(json_of(&out)["lines"], api["lines"]);
    assert_eq!(json_of(&out)["total"], api["total"]);

    let out = admin(&server, &["logs", "-f", &id, "--json"]);
    assert_exit(&out, 0);
    assert_eq!(json_of(&out)["lines"], api["lines"]);

    let out = admin(&server, &["logs", &id, "--tail", "2", "--json"]);
    assert_exit(&out, 0);
    let (_, api) = server.get(&format!("/api/v1/jobs/{id}/logs?tail=2")).await;
    assert_eq!(json_of(&out), api);

    // With --wait, stdout holds the job as it ended, and the progress went to stderr.
    let out = admin(
        &server,
        &[
            "submit",
            "--type",
            "chaos",
            "--path",
            "/content/dam/j2",
            "--params",
            &params,
            "--wait",
            "--json",
        ],
    );
    assert_exit(&out, 0);
    let ended = json_of(&out);
    assert_eq!(ended["state"], "Complete", "{ended}");
    let (_, api) = server
        .get(&format!("/api/v1/jobs/{}", ended["id"].as_str().unwrap()))
        .await;
    assert_eq!(ended, api);
    assert!(
        stderr(&out).contains("3/3 (100%) Complete"),
        "{}",
        stderr(&out)
    );

    // Errors leave stdout empty.
    let out = admin(&server, &["jobs", "show", "no-such-job", "--json"]);
    assert_exit(&out, 3);
    assert!(out.stdout.is_empty(), "{}", stdout(&out));
}

#[tokio::test(flavor = "multi_thread")]
async fn jobs_commands_act_on_real_jobs_with_exit_codes_per_outcome() {
    let server = chaos_server();
    let params = slow_params(60, 100);
    let out = admin(
        &server,
        &[
            "submit",
            "--type",
            "chaos",
            "--path",
            "/content/dam/act",
            "--params",
            &params,
            "--description",
            "the acted-on one",
        ],
    );
    assert_exit(&out, 0);
    let id = stdout(&out).trim().to_string();
    server
        .wait_for(&id, &["Active"], Duration::from_secs(60))
        .await;

    // Deleting an active job is a conflict.
    let out = admin(&server, &["jobs", "delete", &id]);
    assert_exit(&out, 4);
    assert!(stderr(&out).contains("409"), "{}", stderr(&out));

    let out = admin(&server, &["jobs", "pause", &id]);
    assert_exit(&out, 0);
    assert_state_line(&out, &id, &["Pausing", "Paused"]);
    server
        .wait_for(&id, &["Paused"], Duration::from_secs(30))
        .await;
    let out = admin(&server, &["jobs", "pause", &id]);
    assert_exit(&out, 4);
    assert!(
        stderr(&out).contains("(the job is Paused)"),
        "{}",
        stderr(&out)
    );

    let out = admin(&server, &["jobs", "show", &id]);
    assert_exit(&out, 0);
    let shown = stdout(&out);
    for needle in [
        format!("id           {id}"),
        "state        Paused".to_string(),
        "description  the acted-on one".to_string(),
        "actions      cancel, resume".to_string(),
    ] {
        assert!(shown.contains(&needle), "{needle:?} in\n{shown}");
    }
    // `job ID` is `jobs show ID`.
    let out = admin(&server, &["job", &id]);
    assert_exit(&out, 0);
    assert_eq!(stdout(&out), shown);

    let out = admin(&server, &["jobs", "resume", &id]);
    assert_exit(&out, 0);
    assert_state_line(&out, &id, &["Ready", "Active"]);
    let out = admin(&server, &["jobs", "cancel", &id]);
    assert_exit(&out, 0);
    assert_state_line(&out, &id, &["Cancelling", "Cancelled"]);
    server.wait_done(&id).await;

    let out = admin(&server, &["jobs", "list", "--state", "Cancelled"]);
    assert_exit(&out, 0);
    let table = stdout(&out);
    let row = table
        .lines()
        .find(|l| l.starts_with(&id))
        .unwrap_or_else(|| panic!("{table}"));
    assert!(
        row.contains("chaos") && row.contains("Cancelled"),
        "{table}"
    );
    assert!(table.starts_with("ID "), "{table}");
    assert!(table.ends_with("1 of 1 jobs\n"), "{table}");
    let out = admin(&server, &["jobs", "list", "--text", "nothing like it"]);
    assert_exit(&out, 0);
    assert!(stdout(&out).ends_with("0 of 0 jobs\n"), "{}", stdout(&out));
    let out = admin(
        &server,
        &["jobs", "list", "--type", "chaos", "--text", "acted-on"],
    );
    assert!(stdout(&out).contains(&id), "{}", stdout(&out));

    // Retry is the API's restart: the job runs again.
    let out = admin(&server, &["jobs", "retry", &id]);
    assert_exit(&out, 0);
    assert_state_line(&out, &id, &["New", "Preparing", "Ready", "Active"]);
    server
        .wait_for(&id, &["Active"], Duration::from_secs(60))
        .await;
    admin(&server, &["jobs", "cancel", &id]);
    server.wait_done(&id).await;

    let out = admin(&server, &["jobs", "delete", &id]);
    assert_exit(&out, 0);
    assert_eq!(stdout(&out), format!("job {id} deleted\n"));
    let (status, _) = server.get(&format!("/api/v1/jobs/{id}")).await;
    assert_eq!(status, 404);

    // Not found, bad input, auth and an unreachable server.
    for action in ["show", "cancel", "pause", "resume", "retry", "delete"] {
        let out = admin(&server, &["jobs", action, &id]);
        assert_exit(&out, 3);
        assert!(stderr(&out).contains("404"), "{}", stderr(&out));
    }
    let out = admin(&server, &["jobs", "list", "--state", "Sleeping"]);
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("state: unknown state"),
        "{}",
        stderr(&out)
    );
    let out = admin(
        &server,
        &["submit", "--type", "nosuch", "--path", "/content/dam/x"],
    );
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("type: unknown job type"),
        "{}",
        stderr(&out)
    );
    let out = admin(
        &server,
        &[
            "submit",
            "--type",
            "chaos",
            "--path",
            "/content/dam/x",
            "--params",
            "{nope",
        ],
    );
    assert_exit(&out, 2);
    let out = wasmq(
        &[
            "jobs",
            "list",
            "--server",
            &server.url,
            "--token",
            "not-a-token",
        ],
        &[],
    );
    assert_exit(&out, 5);
    assert!(stderr(&out).contains("401"), "{}", stderr(&out));
    let viewer = server.token("watcher", "viewer", "default").await;
    let out = wasmq(
        &[
            "jobs",
            "cancel",
            "x",
            "--server",
            &server.url,
            "--token",
            &viewer,
        ],
        &[],
    );
    assert_exit(&out, 5);
    assert!(stderr(&out).contains("403"), "{}", stderr(&out));
    let out = wasmq(&["jobs", "list", "--server", &server.url], &[]);
    assert_exit(&out, 5);
    assert!(
        stderr(&out).contains("no API token") && stderr(&out).contains("WASMQ_TOKEN"),
        "{}",
        stderr(&out)
    );
    let out = wasmq(
        &[
            "jobs",
            "list",
            "--server",
            "http://127.0.0.1:1",
            "--token",
            "t",
        ],
        &[],
    );
    assert_exit(&out, 6);
    assert!(stderr(&out).contains("cannot reach"), "{}", stderr(&out));
    let out = wasmq(&["jobs", "frobnicate"], &[]);
    assert_exit(&out, 2);

    // Retry of a Complete job is not allowed.
    let out = admin(
        &server,
        &[
            "submit",
            "--type",
            "chaos",
            "--path",
            "/content/dam/ok",
            "--params",
            r#"{"tasks": ["ok"]}"#,
            "--wait",
        ],
    );
    assert_exit(&out, 0);
    let done = stdout(&out).trim().to_string();
    let out = admin(&server, &["jobs", "retry", &done]);
    assert_exit(&out, 4);
}

#[tokio::test(flavor = "multi_thread")]
async fn logs_follow_prints_the_whole_log_until_the_job_ends() {
    let server = chaos_server();
    let params = json!({"tasks": ["slow", "slow", "slow", "fail", "slow", "slow", "slow", "slow",
                                   "slow", "slow", "slow", "slow", "slow", "slow", "slow"],
                        "slowMs": 150})
    .to_string();
    let out = admin(
        &server,
        &[
            "submit",
            "--type",
            "chaos",
            "--path",
            "/content/dam/log",
            "--params",
            &params,
        ],
    );
    assert_exit(&out, 0);
    let id = stdout(&out).trim().to_string();
    let out = admin(&server, &["logs", "-f", &id]);
    assert_exit(&out, 0);
    let (_, job) = server.get(&format!("/api/v1/jobs/{id}")).await;
    assert_eq!(job["state"], "Complete");
    let (_, api) = server
        .get(&format!("/api/v1/jobs/{id}/logs?limit=10000"))
        .await;
    let expected: Vec<&str> = api["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    let printed = stdout(&out);
    assert_eq!(printed.lines().collect::<Vec<_>>(), expected);
    assert!(
        printed.contains("failed with 422: chaos: asked to fail"),
        "{printed}"
    );
    assert!(
        printed.contains("job complete: 15 tasks, 14 succeeded, 1 failed"),
        "{printed}"
    );
    let progress = progress_lines(&stderr(&out), &id);
    assert!(
        progress.iter().any(|l| l.0 < 15) && progress.last().map(|l| l.0) == Some(15),
        "progress while following:\n{}",
        stderr(&out)
    );

    let out = admin(&server, &["logs", &id, "--tail", "2"]);
    assert_exit(&out, 0);
    assert_eq!(
        stdout(&out).lines().collect::<Vec<_>>(),
        expected[expected.len() - 2..]
    );
    let out = admin(&server, &["logs", "nope"]);
    assert_exit(&out, 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn plugins_list_and_upload_a_real_component() {
    let server = Server::start(Options {
        plugins: vec!["wasmq_delete"],
        workers: Some(1),
        ..Default::default()
    });
    let out = admin(&server, &["plugins", "list"]);
    assert_exit(&out, 0);
    assert!(stdout(&out).starts_with("NAME "), "{}", stdout(&out));
    assert!(!stdout(&out).contains("chaos"), "{}", stdout(&out));

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("chaos.wasm");
    std::fs::copy(wasmq_e2e::plugin("wasmq_chaos"), &file).unwrap();
    let file = file.to_str().unwrap();
    let submitter = server.token("ci", "submitter", "default").await;
    let out = wasmq(
        &[
            "plugin",
            "upload",
            file,
            "--server",
            &server.url,
            "--token",
            &submitter,
        ],
        &[],
    );
    assert_exit(&out, 5);

    let out = admin(&server, &["plugins", "upload", file]);
    assert_exit(&out, 0);
    assert!(
        stdout(&out).starts_with("installed plugin chaos 0.1.0"),
        "{}",
        stdout(&out)
    );
    let out = admin(&server, &["plugins", "upload", file]);
    assert_exit(&out, 0);
    assert!(
        stdout(&out).starts_with("unchanged plugin chaos"),
        "{}",
        stdout(&out)
    );
    let out = admin(&server, &["plugins", "upload", file, "--name", "other"]);
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("describes itself as plugin"),
        "{}",
        stderr(&out)
    );
    let out = admin(&server, &["plugins", "upload", "/nonexistent/x.wasm"]);
    assert_exit(&out, 2);

    let out = admin(&server, &["plugin", "list"]);
    assert_exit(&out, 0);
    let row = stdout(&out)
        .lines()
        .find(|l| l.starts_with("chaos "))
        .map(str::to_string)
        .unwrap_or_else(|| panic!("{}", stdout(&out)));
    assert!(row.contains("0.1.0") && row.contains("active"), "{row}");
    let (_, api) = server.get("/api/v1/plugins").await;
    let digest = api["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "chaos")
        .unwrap()["digest"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(row.contains(&digest[..12]), "{row}");

    // The uploaded type runs.
    let out = admin(
        &server,
        &[
            "submit",
            "--type",
            "chaos",
            "--path",
            "/content/dam/u",
            "--params",
            r#"{"tasks": ["ok", "ok"]}"#,
            "--wait",
        ],
    );
    assert_exit(&out, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn settings_come_from_flags_then_env_then_the_config_file() {
    let server = chaos_server();
    let token = server.admin_token();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    let config_path = config.to_str().unwrap();
    std::fs::write(
        &config,
        format!("server = \"{}\"\ntoken = \"{token}\"\n", server.url),
    )
    .unwrap();
    let from_file = [("WASMQ_CONFIG", config_path)];

    let out = wasmq(&["jobs", "list"], &from_file);
    assert_exit(&out, 0);
    assert!(stdout(&out).starts_with("ID "), "{}", stdout(&out));

    // The environment beats the file...
    let out = wasmq(&["jobs", "list"], &[from_file[0], ("WASMQ_TOKEN", "wrong")]);
    assert_exit(&out, 5);
    let out = wasmq(
        &["jobs", "list"],
        &[from_file[0], ("WASMQ_SERVER", "http://127.0.0.1:1")],
    );
    assert_exit(&out, 6);
    // ...and flags beat the environment.
    let out = wasmq(
        &["jobs", "list", "--token", &token],
        &[from_file[0], ("WASMQ_TOKEN", "wrong")],
    );
    assert_exit(&out, 0);
    let out = wasmq(
        &["jobs", "list", "--server", &server.url],
        &[from_file[0], ("WASMQ_SERVER", "http://127.0.0.1:1")],
    );
    assert_exit(&out, 0);

    // The file's output format, overridden by a flag.
    std::fs::write(
        &config,
        format!("server = \"http://127.0.0.1:1\"\ntoken = \"{token}\"\noutput = \"json\"\n"),
    )
    .unwrap();
    let out = wasmq(
        &["jobs", "list"],
        &[from_file[0], ("WASMQ_SERVER", &server.url)],
    );
    assert_exit(&out, 0);
    assert_eq!(json_of(&out)["total"], 0);
    let out = wasmq(
        &["jobs", "list", "--output", "table"],
        &[from_file[0], ("WASMQ_SERVER", &server.url)],
    );
    assert_exit(&out, 0);
    assert!(stdout(&out).starts_with("ID "), "{}", stdout(&out));

    // The default place: $XDG_CONFIG_HOME/wasmq/config.toml.
    let xdg = dir.path().join("xdg");
    std::fs::create_dir_all(xdg.join("wasmq")).unwrap();
    std::fs::write(
        xdg.join("wasmq/config.toml"),
        format!("server = \"{}\"\ntoken = \"{token}\"\n", server.url),
    )
    .unwrap();
    let out = wasmq(
        &["jobs", "list"],
        &[("XDG_CONFIG_HOME", xdg.to_str().unwrap())],
    );
    assert_exit(&out, 0);

    // A named file that is missing or not valid is bad input.
    let missing = dir.path().join("missing.toml");
    let out = wasmq(
        &["jobs", "list"],
        &[("WASMQ_CONFIG", missing.to_str().unwrap())],
    );
    assert_exit(&out, 2);
    assert!(stderr(&out).contains("missing.toml"), "{}", stderr(&out));
    std::fs::write(&config, "servr = 1\n").unwrap();
    let out = wasmq(&["jobs", "list"], &from_file);
    assert_exit(&out, 2);
    assert!(stderr(&out).contains("servr"), "{}", stderr(&out));
}
