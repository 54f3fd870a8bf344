#!/usr/bin/env bash
# Installs what the browser test (tests/e2e_ui.rs) needs, idempotently: Debian's
# chromium, node and npm, and tests/ui's pinned playwright-core (npm ci from package-lock.json).
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium chromium-driver)
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup-browser: installing ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# node_modules is stale when package-lock.json changed since the last npm ci
# (npm ci writes node_modules/.package-lock.json, a copy of the lock's packages).
lock=tests/ui/package-lock.json
stamp=tests/ui/node_modules/.wasmq-lock-stamp
if [ ! -f "$stamp" ] || ! cmp -s "$lock" "$stamp"; then
  echo "setup-browser: npm ci in tests/ui"
  (cd tests/ui && npm ci --no-audit --no-fund --ignore-scripts)
  cp "$lock" "$stamp"
else
  echo "setup-browser: chromium and tests/ui/node_modules are ready"
fi
