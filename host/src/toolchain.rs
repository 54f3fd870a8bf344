//! Building plugins: finds a wasm32-wasip2 toolchain (rustup's target, or the
//! Debian recipe that scripts/setup.sh installs) and builds a plugin workspace into components.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

const DEBIAN_RUSTC: &str = "/usr/bin/rustc";
const DEBIAN_CARGO: &str = "/usr/bin/cargo";
const DEBIAN_COMPONENT_LD: &str = "/usr/lib/rustlib/x86_64-unknown-linux-gnu/bin/wasm-component-ld";
const DEBIAN_WASI_LIBC: &str = "/usr/lib/wasm32-wasi";
const DEBIAN_WASM_LD: &str = "/usr/lib/llvm-19/bin/wasm-ld";
/// Wasm SIMD (wasmtime runs it by default): PDF rendering is about 40% faster with it.
const WASM_RUSTFLAGS: &str = "-C target-feature=+simd128";

/// Which toolchain builds the plugins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Toolchain {
    /// rustup with the wasm32-wasip2 target installed.
    Rustup,
    /// Debian's rustc-web with std built from source (see TOOLCHAIN notes).
    Debian,
}

/// Finds a usable toolchain, preferring rustup's target.
pub fn detect() -> Result<Toolchain> {
    let rustup = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output();
    if let Ok(out) = rustup
        && String::from_utf8_lossy(&out.stdout)
            .lines()
            .any(|l| l.trim() == "wasm32-wasip2")
    {
        return Ok(Toolchain::Rustup);
    }
    let debian = [
        DEBIAN_RUSTC,
        DEBIAN_CARGO,
        DEBIAN_COMPONENT_LD,
        DEBIAN_WASI_LIBC,
        DEBIAN_WASM_LD,
    ];
    if debian.iter().all(|p| Path::new(p).exists()) {
        return Ok(Toolchain::Debian);
    }
    bail!(
        "no wasm32-wasip2 toolchain found: run scripts/setup.sh (or `rustup target add wasm32-wasip2`)"
    )
}

/// Builds every plugin crate of the cargo workspace (or package) at `dir`
/// into a component and copies the `.wasm` files into `out`; returns them.
/// `target_dir` (default `dir/target`) may be shared by several plugin workspaces:
/// the standard library, built from source on Debian's toolchain, is then built once.
pub fn build(dir: &Path, out: &Path, target_dir: Option<&Path>) -> Result<Vec<PathBuf>> {
    let dir = dir
        .canonicalize()
        .with_context(|| format!("plugin directory {}", dir.display()))?;
    if !dir.join("Cargo.toml").exists() {
        bail!("{} has no Cargo.toml", dir.display());
    }
    let toolchain = detect()?;
    let target_dir = match target_dir {
        Some(t) => std::path::absolute(t)?,
        None => dir.join("target"),
    };
    let names = component_names(&dir, toolchain)?;
    let mut cargo = match toolchain {
        Toolchain::Rustup => {
            let mut c = Command::new("cargo");
            c.args(["build", "--release", "--target", "wasm32-wasip2"])
                .env("CARGO_TARGET_WASM32_WASIP2_RUSTFLAGS", WASM_RUSTFLAGS);
            c
        }
        Toolchain::Debian => {
            let mut c = Command::new(DEBIAN_CARGO);
            c.args(["build", "--release"])
                .env("RUSTC_BOOTSTRAP", "1")
                .env("CARGO_BUILD_TARGET", "wasm32-wasip2")
                .env("CARGO_BUILD_RUSTC", DEBIAN_RUSTC)
                .env("CARGO_UNSTABLE_BUILD_STD", "std,panic_abort")
                .env("CARGO_TARGET_WASM32_WASIP2_LINKER", DEBIAN_COMPONENT_LD)
                .env(
                    "CARGO_TARGET_WASM32_WASIP2_RUSTFLAGS",
                    format!(
                        "-C link-self-contained=no -L {DEBIAN_WASI_LIBC} -C link-arg=--wasm-ld-path={DEBIAN_WASM_LD} {WASM_RUSTFLAGS}"
                    ),
                );
            c
        }
    };
    // The host build's own settings must not leak into the plugin build.
    for var in [
        "RUSTC",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CLIPPY_ARGS",
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
    ] {
        cargo.env_remove(var);
    }
    cargo.env("CARGO_TARGET_DIR", &target_dir).current_dir(&dir);
    tracing::info!(?toolchain, dir = %dir.display(), "building plugins");
    let status = cargo.status().context("running cargo")?;
    if !status.success() {
        bail!("cargo build of {} failed ({status})", dir.display());
    }
    let built = target_dir.join("wasm32-wasip2").join("release");
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let mut copied = Vec::new();
    for entry in
        std::fs::read_dir(&built).with_context(|| format!("reading {}", built.display()))?
    {
        let path = entry?.path();
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default();
        if path.extension().is_some_and(|e| e == "wasm") && names.iter().any(|n| n == stem) {
            let dest = out.join(path.file_name().expect("a file"));
            std::fs::copy(&path, &dest)
                .with_context(|| format!("copying to {}", dest.display()))?;
            copied.push(dest);
        }
    }
    copied.sort();
    if copied.is_empty() {
        bail!(
            "the build of {} produced no .wasm component (is the crate a cdylib?)",
            dir.display()
        );
    }
    Ok(copied)
}

/// The file stems of the `.wasm` files the workspace at `dir` builds: its cdylib targets,
/// so that a shared target directory's other components are left where they are.
fn component_names(dir: &Path, toolchain: Toolchain) -> Result<Vec<String>> {
    let cargo = match toolchain {
        Toolchain::Rustup => "cargo",
        Toolchain::Debian => DEBIAN_CARGO,
    };
    let out = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .current_dir(dir)
        .output()
        .context("running cargo metadata")?;
    if !out.status.success() {
        bail!(
            "cargo metadata in {} failed: {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let meta: serde_json::Value =
        serde_json::from_slice(&out.stdout).context("reading cargo metadata")?;
    Ok(cdylib_names(&meta))
}

/// The cdylib target names of `cargo metadata` output, as the file stems cargo writes.
fn cdylib_names(meta: &serde_json::Value) -> Vec<String> {
    let empty = vec![];
    let packages = meta["packages"].as_array().unwrap_or(&empty);
    packages
        .iter()
        .flat_map(|p| p["targets"].as_array().unwrap_or(&empty))
        .filter(|t| {
            t["crate_types"]
                .as_array()
                .is_some_and(|k| k.iter().any(|k| k == "cdylib"))
        })
        .filter_map(|t| t["name"].as_str().map(|n| n.replace('-', "_")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_cdylib_targets_are_components() {
        let meta = serde_json::json!({"packages": [
            {"targets": [{"name": "hello-kit", "crate_types": ["cdylib"]}]},
            {"targets": [{"name": "wasmq-sdk", "crate_types": ["lib"]},
                         {"name": "tool", "crate_types": ["bin"]}]},
            {"targets": [{"name": "both", "crate_types": ["rlib", "cdylib"]}]},
        ]});
        assert_eq!(cdylib_names(&meta), ["hello_kit", "both"]);
    }
}
