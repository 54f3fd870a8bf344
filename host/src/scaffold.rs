//! `wasmq plugin new NAME`: writes a standalone plugin crate that builds out of
//! tree, with a vendored copy of the guest SDK and the WIT it was built against.

use std::path::{Path, PathBuf};

use thiserror::Error;

/// The SDK's source, vendored into every new plugin.
const SDK_LIB: &str = include_str!("../../plugins/sdk/src/lib.rs");
/// The SDK's manifest: which workspace dependencies it uses.
const SDK_MANIFEST: &str = include_str!("../../plugins/sdk/Cargo.toml");
/// The plugin workspace's manifest: the versions of those dependencies.
const PLUGINS_MANIFEST: &str = include_str!("../../plugins/Cargo.toml");
/// The WIT package the SDK binds to.
const WIT: &str = include_str!("../../wit/plugin.wit");

/// The bindgen path in the SDK's source, relative to plugins/sdk.
const SDK_WIT_PATH: &str = r#"path: "../../wit","#;
/// Where the vendored SDK finds the WIT, relative to NAME/wasmq-sdk.
const VENDORED_WIT_PATH: &str = r#"path: "wit","#;

/// Why a plugin could not be scaffolded.
#[derive(Debug, Error)]
pub enum ScaffoldError {
    /// The name is not a valid plugin and crate name.
    #[error("plugin name {0:?} {1}")]
    InvalidName(String, &'static str),
    /// The target directory is already there; nothing is overwritten.
    #[error("{0} already exists: choose another name or --dir")]
    Exists(PathBuf),
    /// The embedded SDK did not have the expected shape (a build problem of wasmq).
    #[error("the embedded SDK cannot be vendored: {0}")]
    Sdk(String),
    /// Writing a file failed.
    #[error("writing {0}: {1}")]
    Io(PathBuf, #[source] std::io::Error),
}

/// Names that cargo or rustc would refuse or confuse as a crate name.
const RESERVED: &[&str] = &[
    "wasmq-sdk",
    "std",
    "core",
    "alloc",
    "test",
    "proc-macro",
    "self",
    "super",
    "crate",
    "fn",
    "mod",
    "struct",
    "enum",
    "type",
    "impl",
    "trait",
    "use",
    "let",
    "match",
    "loop",
    "while",
    "for",
    "if",
    "else",
    "return",
    "async",
    "await",
    "dyn",
    "move",
    "ref",
    "static",
    "const",
    "extern",
    "pub",
    "where",
    "unsafe",
    "true",
    "false",
    "in",
    "as",
    "break",
    "continue",
    "mut",
];

/// Checks a plugin name: 1-64 of lowercase letters, digits and '-', starting
/// with a letter, not ending with '-', no "--", not a reserved word.
pub fn validate_name(name: &str) -> Result<(), ScaffoldError> {
    let invalid = |why| Err(ScaffoldError::InvalidName(name.to_string(), why));
    if name.is_empty() || name.len() > 64 {
        return invalid("must be 1 to 64 characters long");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return invalid("may only contain lowercase letters, digits and '-'");
    }
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        return invalid("must start with a letter");
    }
    if name.ends_with('-') || name.contains("--") {
        return invalid("must not end with '-' or contain \"--\"");
    }
    if RESERVED.contains(&name) {
        return invalid("is reserved");
    }
    Ok(())
}

/// The Rust type name for a plugin name: `image-resize` -> `ImageResize`.
pub fn type_name(name: &str) -> String {
    name.split('-')
        .map(|part| {
            let mut chars = part.chars();
            match chars.next() {
                Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
                None => String::new(),
            }
        })
        .collect()
}

/// The version of the WIT package the SDK binds to (`0.1.0`).
pub fn wit_version() -> &'static str {
    WIT.lines()
        .find_map(|l| l.trim().strip_prefix("package wasmq:plugin@"))
        .map(|v| v.trim_end_matches(';'))
        .unwrap_or("unknown")
}

/// The SDK's source with its bindgen path pointing at the vendored `wit/`.
pub fn vendored_sdk_lib(source: &str) -> Result<String, ScaffoldError> {
    match source.matches(SDK_WIT_PATH).count() {
        1 => Ok(source.replace(SDK_WIT_PATH, VENDORED_WIT_PATH)),
        n => Err(ScaffoldError::Sdk(format!(
            "expected one `{SDK_WIT_PATH}` in the SDK's lib.rs, found {n}"
        ))),
    }
}

/// The `[section]` of a manifest as (key, value) lines, comments skipped.
fn section<'a>(manifest: &'a str, name: &str) -> Vec<(&'a str, &'a str)> {
    let header = format!("[{name}]");
    manifest
        .lines()
        .skip_while(|l| l.trim() != header)
        .skip(1)
        .take_while(|l| !l.trim_start().starts_with('['))
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim(), v.trim()))
        .collect()
}

/// The `[dependencies]` of the vendored SDK: each `X.workspace = true` of the
/// SDK's manifest with the concrete spec of the plugin workspace's manifest.
pub fn sdk_dependencies(
    sdk_manifest: &str,
    workspace_manifest: &str,
) -> Result<String, ScaffoldError> {
    let versions = section(workspace_manifest, "workspace.dependencies");
    let mut out = String::new();
    for (key, value) in section(sdk_manifest, "dependencies") {
        let line = match key.strip_suffix(".workspace") {
            Some(dep) if value == "true" => {
                let (_, spec) = versions.iter().find(|(k, _)| *k == dep).ok_or_else(|| {
                    ScaffoldError::Sdk(format!("no version of {dep} in plugins/Cargo.toml"))
                })?;
                format!("{dep} = {spec}\n")
            }
            Some(_) | None if value.contains("workspace") => {
                return Err(ScaffoldError::Sdk(format!(
                    "cannot vendor the dependency line `{key} = {value}`"
                )));
            }
            _ => format!("{key} = {value}\n"),
        };
        out.push_str(&line);
    }
    if out.is_empty() {
        return Err(ScaffoldError::Sdk("the SDK has no dependencies".into()));
    }
    Ok(out)
}

/// Every file of a new plugin crate, as (path relative to the crate, contents).
pub fn files(name: &str) -> Result<Vec<(PathBuf, String)>, ScaffoldError> {
    validate_name(name)?;
    let version = wit_version();
    let fill = |template: &str| {
        template
            .replace("{{name}}", name)
            .replace("{{type}}", &type_name(name))
            .replace("{{file}}", &name.replace('-', "_"))
            .replace("{{wit}}", version)
            .replace("{{wasmq}}", env!("CARGO_PKG_VERSION"))
    };
    let sdk_manifest =
        fill(SDK_CARGO_TEMPLATE) + &sdk_dependencies(SDK_MANIFEST, PLUGINS_MANIFEST)?;
    Ok(vec![
        ("Cargo.toml".into(), fill(CARGO_TEMPLATE)),
        ("src/lib.rs".into(), fill(LIB_TEMPLATE)),
        ("README.md".into(), fill(README_TEMPLATE)),
        (".gitignore".into(), "/target\n/dist\n".into()),
        ("wasmq-sdk/Cargo.toml".into(), sdk_manifest),
        ("wasmq-sdk/src/lib.rs".into(), vendored_sdk_lib(SDK_LIB)?),
        ("wasmq-sdk/wit/plugin.wit".into(), WIT.to_string()),
    ])
}

/// Writes a new plugin crate `parent/name`; refuses to touch an existing
/// directory. Returns the crate's directory.
pub fn create(parent: &Path, name: &str) -> Result<PathBuf, ScaffoldError> {
    let files = files(name)?;
    let root = parent.join(name);
    if root.exists() {
        return Err(ScaffoldError::Exists(root));
    }
    std::fs::create_dir_all(parent).map_err(|e| ScaffoldError::Io(parent.to_path_buf(), e))?;
    // create_dir (not _all) fails if another process made it meanwhile.
    std::fs::create_dir(&root).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => ScaffoldError::Exists(root.clone()),
        _ => ScaffoldError::Io(root.clone(), e),
    })?;
    for (relative, contents) in files {
        let file = root.join(relative);
        if let Some(dir) = file.parent() {
            std::fs::create_dir_all(dir).map_err(|e| ScaffoldError::Io(dir.to_path_buf(), e))?;
        }
        std::fs::write(&file, contents).map_err(|e| ScaffoldError::Io(file.clone(), e))?;
    }
    tracing::info!(dir = %root.display(), "plugin scaffolded");
    Ok(root)
}

const CARGO_TEMPLATE: &str = r#"# The `{{name}}` job type for wasmq: a WebAssembly component (wasm32-wasip2).
# Build: `wasmq plugin build . --out dist` (see README.md).
[package]
name = "{{name}}"
version = "0.1.0"
edition = "2024"
publish = false

[lib]
crate-type = ["cdylib"]

[dependencies]
wasmq-sdk = { path = "wasmq-sdk" }

# A workspace of its own, so that the crate builds wherever it lives.
[workspace]
resolver = "3"

[profile.release]
panic = "abort"
opt-level = "s"
lto = true
codegen-units = 1
strip = true
"#;

const SDK_CARGO_TEMPLATE: &str = r#"# The wasmq guest SDK, vendored by `wasmq plugin new` (wasmq {{wasmq}}),
# bound to the WIT package wasmq:plugin@{{wit}} in wit/. To upgrade, replace
# this directory with the one a newer `wasmq plugin new` writes.
[package]
name = "wasmq-sdk"
version = "{{wit}}"
edition = "2024"
publish = false

[dependencies]
"#;

const LIB_TEMPLATE: &str = r#"//! The `{{name}}` job type: one task per asset under the job's path; each
//! task logs the asset's size and returns it as its outcome. Make it yours.

use wasmq_sdk::{Capabilities, Descriptor, Error, Job, JobType, Task, TaskOutcome, assets};

struct {{type}};

impl JobType for {{type}} {
    /// Who the plugin is, which job types it runs and what it may do:
    /// calls to capabilities not declared here fail with a 403.
    fn describe() -> Descriptor {
        Descriptor::new(
            "{{name}}",
            env!("CARGO_PKG_VERSION"),
            &["{{name}}"],
            Capabilities::READ,
        )
    }

    /// Turns the job into tasks: here, one per asset under the job's path
    /// (excluded paths are left out by the host).
    fn plan(job: &Job) -> Result<(), Error> {
        let planned = job.plan_each_asset(|asset| Some(Task::for_path(&asset.path)))?;
        job.log(&format!("planned {planned} tasks under {}", job.info.path));
        Ok(())
    }

    /// Runs one task. It must be idempotent: after a crash it may run again.
    fn run_task(job: &Job, task: Task) -> Result<TaskOutcome, Error> {
        let Some(stat) = assets::stat(&task.path)? else {
            return Err(Error::permanent(404, "the asset is gone"));
        };
        job.log(&format!("{}: {} bytes", task.path, stat.size));
        Ok(TaskOutcome::ok(format!("{} bytes", stat.size)).with_etag(stat.etag))
    }
}

wasmq_sdk::export!({{type}});
"#;

const README_TEMPLATE: &str = r#"# {{name}}

A job type for wasmq: a WebAssembly component that
implements the WIT world `wasmq:plugin/job-type@{{wit}}`. Generated by
`wasmq plugin new {{name}}`; it builds on its own, anywhere.

    src/lib.rs          the job type: describe, plan, run_task (and finish)
    wasmq-sdk/          the guest SDK, vendored, with the WIT it binds to

## Build

    wasmq plugin build . --out dist          # -> dist/{{file}}.wasm

`wasmq plugin build` finds a wasm32-wasip2 toolchain (rustup's target, or
the Debian packages wasmq's setup installs). With rustup's target you can also
run `cargo build --release --target wasm32-wasip2` and take
`target/wasm32-wasip2/release/{{file}}.wasm`.

## Try it

    wasmq plugin test dist/{{file}}.wasm --fixtures some/dir

runs one `{{name}}` job on the files of `some/dir` in a throwaway asset store
and prints every task (path, state, code, message, attempts, CPU), the job's
log and its fuel; it exits non-zero if the job or a task failed.

## Install and run

Move `dist/{{file}}.wasm` into the server's plugin directory
(`DATA_DIR/plugins`, watched: it serves new jobs within a moment), or upload it:

    curl -X PUT -H "Authorization: Bearer $WASMQ_TOKEN" -H 'Content-Type: application/wasm' \
         --data-binary @dist/{{file}}.wasm http://127.0.0.1:8080/api/v1/plugins/{{name}}

then run a job:

    wasmq submit --type {{name}} --path /content/dam/some/folder --wait

See the plugin guide of wasmq (docs/plugin-guide.md) for the SDK, capabilities,
errors, idempotency and limits.
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for good in ["checksum", "image-resize", "a", "pdf2text", "x-1"] {
            assert!(validate_name(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "Checksum",
            "1st",
            "-a",
            "a-",
            "a--b",
            "a_b",
            "a b",
            "a/b",
            "..",
            "test",
            "wasmq-sdk",
            "self",
        ] {
            assert!(validate_name(bad).is_err(), "{bad:?}");
        }
        assert!(validate_name(&"a".repeat(65)).is_err());
    }

    #[test]
    fn type_names() {
        assert_eq!(type_name("checksum"), "Checksum");
        assert_eq!(type_name("image-resize"), "ImageResize");
        assert_eq!(type_name("pdf2-text"), "Pdf2Text");
    }

    #[test]
    fn the_sdk_binds_to_the_vendored_wit() {
        let lib = vendored_sdk_lib(SDK_LIB).unwrap();
        assert!(lib.contains(VENDORED_WIT_PATH));
        assert!(!lib.contains("../../wit"));
        assert!(vendored_sdk_lib("no bindgen here").is_err());
        assert_eq!(wit_version(), "0.1.1");
    }

    #[test]
    fn the_checksum_example_stays_on_a_published_older_patch() {
        // examples/checksum was made with `plugin new` at wasmq:plugin@0.1.0 and
        // stays there on purpose: e2e_examples loads it into today's host, which
        // proves the compatibility promise of docs/wit-compat.md. A published
        // WIT never changes, and today's WIT must be a later patch of its line.
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let vendored =
            std::fs::read_to_string(repo.join("examples/checksum/wasmq-sdk/wit/plugin.wit"))
                .unwrap();
        let published = std::fs::read_to_string(repo.join("docs/wit/plugin-0.1.0.wit")).unwrap();
        assert_eq!(
            vendored, published,
            "examples/checksum must vendor the published 0.1.0 WIT"
        );
        assert!(published.contains("package wasmq:plugin@0.1.0;"));
        let current = wit_version();
        assert!(
            current.starts_with("0.1.") && current != "0.1.0",
            "{current}"
        );
    }

    #[test]
    fn sdk_dependencies_are_concrete() {
        let deps = sdk_dependencies(SDK_MANIFEST, PLUGINS_MANIFEST).unwrap();
        assert!(!deps.contains("workspace"), "{deps}");
        assert!(deps.contains("wit-bindgen = {"), "{deps}");
        assert!(deps.contains("serde_json = \"1\""), "{deps}");

        let sdk = "[package]\nname = \"x\"\n\n[dependencies]\n# a comment\na.workspace = true\nb = \"2\"\n";
        let ws = "[workspace.dependencies]\na = { version = \"1.2\" }\n\n[profile.release]\nlto = true\n";
        assert_eq!(
            sdk_dependencies(sdk, ws).unwrap(),
            "a = { version = \"1.2\" }\nb = \"2\"\n"
        );
        assert!(sdk_dependencies("[dependencies]\nc.workspace = true\n", ws).is_err());
    }

    #[test]
    fn files_are_filled_in() {
        let files = files("image-resize").unwrap();
        let get = |p: &str| {
            &files
                .iter()
                .find(|(path, _)| path == Path::new(p))
                .unwrap_or_else(|| panic!("no {p}"))
                .1
        };
        let cargo = get("Cargo.toml");
        assert!(cargo.contains("name = \"image-resize\""));
        assert!(cargo.contains("crate-type = [\"cdylib\"]"));
        assert!(cargo.contains("[workspace]"));
        assert!(cargo.contains("panic = \"abort\""));
        let lib = get("src/lib.rs");
        assert!(lib.contains("struct ImageResize;"));
        assert!(lib.contains("wasmq_sdk::export!(ImageResize);"));
        assert!(lib.contains("&[\"image-resize\"]"));
        assert!(get("README.md").contains("dist/image_resize.wasm"));
        assert!(get("wasmq-sdk/Cargo.toml").contains("wit-bindgen"));
        assert!(get("wasmq-sdk/wit/plugin.wit").contains("package wasmq:plugin@"));
        for (path, contents) in &files {
            assert!(
                !contents.contains("{{"),
                "{} has a placeholder left",
                path.display()
            );
            assert!(
                !contents.contains("../../"),
                "{} refers to the wasmq repository",
                path.display()
            );
        }
    }

    #[test]
    fn create_refuses_an_existing_directory() {
        let parent = tempfile::tempdir().unwrap();
        let root = create(parent.path(), "hello").unwrap();
        assert!(root.join("wasmq-sdk/src/lib.rs").is_file());
        std::fs::write(root.join("src/lib.rs"), "mine").unwrap();
        assert!(matches!(
            create(parent.path(), "hello"),
            Err(ScaffoldError::Exists(_))
        ));
        assert_eq!(
            std::fs::read_to_string(root.join("src/lib.rs")).unwrap(),
            "mine"
        );
        assert!(matches!(
            create(parent.path(), "Bad"),
            Err(ScaffoldError::InvalidName(..))
        ));
    }
}
