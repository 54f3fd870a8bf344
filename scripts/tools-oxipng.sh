#!/usr/bin/env bash
# Installs the oxipng command line (the reference PNG optimizer that `wasmq
# bench-assets` compares against) into target/tools; idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

OXIPNG_VERSION=10.2.1
BIN=target/tools/bin/oxipng
if [ -x "$BIN" ] && "$BIN" --version | grep -q "$OXIPNG_VERSION"; then
  echo "oxipng: $("$BIN" --version)"
  exit 0
fi
cargo install oxipng --version "$OXIPNG_VERSION" --locked --root target/tools
echo "oxipng: $("$BIN" --version)"
