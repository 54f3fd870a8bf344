#!/usr/bin/env bash
# Runs each fuzz target of fuzz/ (damcsv, request) from fuzz/seeds (and the metadata corpus)
# with a fixed seed and run count, capped at SECONDS each (default 60); fails on a crash.
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_EACH=${1:-60}
# A fixed seed and run count replay the same inputs on every machine, so CI is repeatable;
# `WASMQ_FUZZ_SEED=0` (libFuzzer picks one) and a larger WASMQ_FUZZ_SCALE explore further.
SEED=${WASMQ_FUZZ_SEED:-1}
SCALE=${WASMQ_FUZZ_SCALE:-1}
# The flags `cargo fuzz build -s none` passes, with plain cargo: stable Rust, and no
# cargo-fuzz to install (the layout stays cargo-fuzz's, for `cargo fuzz run` by hand).
unset RUSTC_WORKSPACE_WRAPPER CLIPPY_ARGS # scripts/test.sh lints the host workspace only
export CARGO_TARGET_DIR="$PWD/target/fuzz" RUSTFLAGS="-Cpasses=sancov-module \
-Cllvm-args=-sanitizer-coverage-level=4 -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
-Cllvm-args=-sanitizer-coverage-pc-table -Cllvm-args=-sanitizer-coverage-trace-compares \
-Cllvm-args=-simplifycfg-branch-fold-threshold=0 -Cllvm-args=-sanitizer-coverage-stack-depth \
--cfg fuzzing -Cdebug-assertions -Ccodegen-units=1"
triple=x86_64-unknown-linux-gnu
cargo build --manifest-path fuzz/Cargo.toml --locked --release --target "$triple" \
  --config 'profile.release.debug="line-tables-only"' --bins
for target in damcsv:200000 request:2000000; do
  runs=$(( ${target#*:} * SCALE ))
  target=${target%:*}
  corpus="target/fuzz-corpus/$target"
  mkdir -p "$corpus" "target/fuzz-artifacts/$target"
  cp fuzz/seeds/"$target"/* "$corpus"/
  if [ "$target" = damcsv ] && [ -f target/corpus/metadata/exiftool.csv ]; then
    cp target/corpus/metadata/exiftool.csv "$corpus"/
  fi
  echo "== fuzz $target: $runs runs, seed $SEED, at most ${SECONDS_EACH}s"
  "$CARGO_TARGET_DIR/$triple/release/$target" "$corpus" -seed="$SEED" -runs="$runs" \
    -max_total_time="$SECONDS_EACH" -max_len=4096 -print_final_stats=1 \
    -artifact_prefix="target/fuzz-artifacts/$target/"
done
