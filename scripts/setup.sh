#!/usr/bin/env bash
# Installs what building and testing wasmq needs on a fresh Debian machine, idempotently:
# the wasm32-wasip2 toolchain (TOOLCHAIN.md's Debian recipe, unless rustup already has the target).
set -euo pipefail

have_rustup_wasip2() {
  command -v rustup >/dev/null 2>&1 && rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2
}

have_debian_recipe() {
  [ -x /usr/bin/rustc ] && [ -x /usr/lib/rustlib/x86_64-unknown-linux-gnu/bin/wasm-component-ld ] &&
    [ -d /usr/lib/wasm32-wasi ] && [ -x /usr/lib/llvm-19/bin/wasm-ld ] &&
    [ -d /usr/lib/rustlib/src/rust/library ]
}

apt_install() {
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq "$@"
}

if have_rustup_wasip2; then
  echo "setup: using rustup's wasm32-wasip2 target"
elif have_debian_recipe; then
  echo "setup: Debian wasm toolchain already installed"
else
  echo "setup: installing the Debian wasm toolchain (rustc-web, wasi-libc, lld-19)"
  apt_install rustc-web cargo-web rust-web-src rust-web-llvm wasi-libc lld-19
  have_debian_recipe || { echo "setup: the wasm toolchain is still incomplete" >&2; exit 1; }
fi

# The CLI test (tests/e2e_cli.rs) runs `wasmq submit --wait` on a pseudo-terminal
# through script(1), from bsdutils (Essential on Debian, so normally there).
command -v script >/dev/null 2>&1 || apt_install bsdutils

# The reliability test (tests/e2e_reliability.rs) checks and locks the database
# with the sqlite3 CLI, and mounts a small tmpfs (mount, from util-linux).
command -v sqlite3 >/dev/null 2>&1 || apt_install sqlite3
command -v mount >/dev/null 2>&1 || apt_install mount
