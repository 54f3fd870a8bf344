#!/usr/bin/env bash
# Installs wrk, the HTTP load generator that `wasmq bench-server` drives,
# from Debian's packages (pinned to bookworm's 4.1.0); idempotent.
set -euo pipefail

WRK_VERSION=4.1.0
if command -v wrk >/dev/null && dpkg-query -W -f='${Version}' wrk 2>/dev/null | grep -q "^$WRK_VERSION"; then
  echo "wrk: $(dpkg-query -W -f='${Version}' wrk)"
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get install -y --no-install-recommends "wrk=$WRK_VERSION*" ||
  { apt-get update && apt-get install -y --no-install-recommends "wrk=$WRK_VERSION*"; }
echo "wrk: $(dpkg-query -W -f='${Version}' wrk)"
