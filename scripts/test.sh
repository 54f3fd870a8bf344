#!/usr/bin/env bash
# The project's test command (README, .ci/run): installs what is missing, builds
# the host and the plugins, then runs formatting, lints, unit and end-to-end tests.
set -euo pipefail
cd "$(dirname "$0")/.."
# Each step is announced with the seconds spent so far, to see where CI time goes.
step() { echo "== $1 (at ${SECONDS}s)"; }

step "setup"
bash scripts/setup.sh
bash scripts/postgres.sh setup
# The store conformance suite and the scale-out test use a real PostgreSQL server.
trap 'bash scripts/postgres.sh stop' EXIT
bash scripts/postgres.sh start >/dev/null
bash scripts/setup-smtp.sh
bash scripts/setup-browser.sh

step "build host, linted by clippy as it compiles"
# clippy-driver as the rustc of the workspace's own crates: they are linted while they
# are built, so the dependencies compile once (`cargo clippy` would check them all again).
RUSTC_WORKSPACE_WRAPPER="$(rustc --print sysroot)/bin/clippy-driver"
CLIPPY_ARGS="-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__"
export RUSTC_WORKSPACE_WRAPPER CLIPPY_ARGS
cargo build --workspace --all-targets --locked --timings
# (`cargo test --workspace` below keeps them, so nothing is built twice.)
step "build plugins"
./target/debug/wasmq plugin build plugins --out target/wasm-plugins

step "format and lints"
cargo fmt --all --check
(cd plugins && cargo fmt --all --check)
# Plugin crates are linted natively too (wit-bindgen stubs the imports off wasm).
(cd plugins && env -u RUSTC_WORKSPACE_WRAPPER -u CLIPPY_ARGS cargo clippy --workspace --all-targets --features nativebench/native --locked -- -D warnings)

step "corpus (real files from PyPI and Debian packages)"
bash scripts/corpus-images.sh
bash scripts/corpus-pdfs.sh
bash scripts/corpus-metadata.sh
bash scripts/tools-promparser.sh
bash scripts/tools-schemathesis.sh
bash scripts/tools-moto.sh
bash scripts/tools-wrk.sh

step "tests"
WASMQ_BIN="$PWD/target/debug/wasmq" WASMQ_PLUGINS_DIR="$PWD/target/wasm-plugins" \
  cargo test --workspace --locked
# The plugins' pure logic, natively.
(cd plugins && env -u RUSTC_WORKSPACE_WRAPPER -u CLIPPY_ARGS cargo test --locked -p damcsv -p imaging -p pdfrip-core \
  -p wasmq-image-optimize -p wasmq-metadata-export -p wasmq-metadata-import -p wasmq-move)

step "fuzz (fixed seed and runs, at most 30 s per target)"
bash scripts/fuzz.sh 30
step "done"
