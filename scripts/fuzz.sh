#!/usr/bin/env bash
# Runs each fuzz target in fuzz/ (damcsv, request) for a bounded time, SECONDS each (default 60),
# from the seeds in fuzz/seeds plus the metadata corpus; installs cargo-fuzz under target/tools; fails on a crash.
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_EACH=${1:-60}
VERSION=0.13.1
TOOLS="$PWD/target/tools"
if [ "$("$TOOLS/bin/cargo-fuzz" --version 2>/dev/null)" != "cargo-fuzz $VERSION" ]; then
  cargo install cargo-fuzz --version "$VERSION" --locked --root "$TOOLS"
fi
# Stable Rust: RUSTC_BOOTSTRAP lets cargo-fuzz pass its -Z flags; no sanitizer (the crates are safe Rust).
export RUSTC_BOOTSTRAP=1 CARGO_TARGET_DIR="$PWD/target/fuzz"
for target in damcsv request; do
  corpus="target/fuzz-corpus/$target"
  mkdir -p "$corpus"
  cp fuzz/seeds/"$target"/* "$corpus"/
  if [ "$target" = damcsv ] && [ -f target/corpus/metadata/exiftool.csv ]; then
    cp target/corpus/metadata/exiftool.csv "$corpus"/
  fi
  echo "== fuzz $target for ${SECONDS_EACH}s"
  (cd fuzz && "$TOOLS/bin/cargo-fuzz" run -s none "$target" "../$corpus" -- \
    -max_total_time="$SECONDS_EACH" -max_len=4096 -print_final_stats=1)
done
