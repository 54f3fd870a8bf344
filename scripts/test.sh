#!/usr/bin/env bash
# The project's test command (README, .ci/run): installs what is missing, builds
# the host and the plugins, then runs formatting, lints, unit and end-to-end tests.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh

echo "== build host"
cargo build --workspace --all-targets --locked
echo "== build plugins"
./target/debug/wasmq plugin build plugins --out target/wasm-plugins

echo "== format and lints"
cargo fmt --all --check
(cd plugins && cargo fmt --all --check)
cargo clippy --workspace --all-targets --locked -- -D warnings
# Pure plugin-side crates (no WIT) are checked and tested natively too.
(cd plugins && cargo clippy -p damcsv --all-targets --locked -- -D warnings)

echo "== tests"
WASMQ_BIN="$PWD/target/debug/wasmq" WASMQ_PLUGINS_DIR="$PWD/target/wasm-plugins" \
  cargo test --workspace --locked
(cd plugins && cargo test -p damcsv --locked)
