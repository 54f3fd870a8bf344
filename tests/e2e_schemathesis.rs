//! The live API against its own OpenAPI document: schemathesis (scripts/tools-schemathesis.sh)
//! sends generated requests to a real `wasmq serve` with the admin token; no answer may be a 5xx.

use std::process::Command;

use wasmq_e2e::{Options, Server, workspace};

#[test]
fn generated_requests_get_no_server_error() {
    let cli = workspace().join("target/tools/schemathesis/bin/schemathesis");
    assert!(
        cli.is_file(),
        "no {}: run scripts/tools-schemathesis.sh",
        cli.display()
    );
    let server = Server::start(Options {
        plugins: vec!["wasmq_delete", "wasmq_chaos"],
        ..Options::default()
    });
    let reports = tempfile::tempdir().unwrap();
    let out = Command::new(&cli)
        .current_dir(reports.path())
        .arg("run")
        .arg(format!("{}/openapi.json", server.url))
        .args([
            "--header",
            &format!("Authorization: Bearer {}", server.admin_token()),
        ])
        .args([
            "--checks",
            "not_a_server_error",
            "--phases",
            "examples,fuzzing",
        ])
        .args([
            "--max-examples",
            "10",
            "--seed",
            "1",
            "--workers",
            "2",
            "--no-color",
        ])
        // Its body is a wasm component (application/wasm), which schemathesis cannot generate.
        .args([
            "--exclude-path",
            "/api/v1/plugins/{name}",
            "--exclude-method",
            "PUT",
        ])
        .output()
        .expect("run schemathesis");
    let text = String::from_utf8_lossy(&out.stdout);
    println!("{text}");
    assert!(
        out.status.success(),
        "schemathesis failed:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains(" passed"), "no test cases ran:\n{text}");
}
