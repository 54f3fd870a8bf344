#!/usr/bin/env bash
# Builds nativebench with a standard library that honors RUST_STD_DETECT_UNSTABLE,
# so that `wasmq bench-assets --native-narrow` can run it with AVX turned off.
#
# The crates pdf-rip and image-optimize use (zlib-rs, pic-scale, fearless_simd,
# hayro-jpeg2000) pick AVX2 or AVX-512 code at run time on this machine, while
# wasm has 128-bit SIMD only. Run with AVX hidden, the same native code takes
# its SSE paths, which shows how much of the wasm/native ratio is vector width.
# std_detect's `std_detect_env_override` feature is not forwarded by std's
# Cargo.toml, so it is set as a cfg for every crate of the build (no other crate
# has a feature of that name). Needs Debian's rustc and its standard library's
# source (scripts/setup.sh installs them for the plugin builds). Prints the
# binary's path.
set -euo pipefail
cd "$(dirname "$0")/../plugins"
out="$PWD/../target/nativebench-narrow"
RUSTC_BOOTSTRAP=1 RUSTC=/usr/bin/rustc \
  RUSTFLAGS='--cfg feature="std_detect_env_override"' \
  /usr/bin/cargo build --release --locked -p nativebench --features native \
  -Zbuild-std=std,panic_abort --target x86_64-unknown-linux-gnu \
  --target-dir "$out" >&2
echo "$out/x86_64-unknown-linux-gnu/release/nativebench"
