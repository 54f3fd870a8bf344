#!/usr/bin/env bash
# Fetches the official Prometheus Python client (pure Python, a pinned wheel) into
# target/tools/python, for e2e_metrics to check /metrics with a real parser; idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=0.23.1
SHA256=dd1913e6e76b59cfe44e7a4b83e01afc9873c1bdfd2ed8739f1e76aeca115f99
DIR=target/tools/python
WHEEL="$DIR/prometheus_client-$VERSION-py3-none-any.whl"
if [ ! -s "$WHEEL" ] || ! echo "$SHA256  $WHEEL" | sha256sum --check --status; then
  mkdir -p "$DIR"
  rm -f "$WHEEL"
  python3 -m pip download --quiet --no-deps --only-binary :all: "prometheus-client==$VERSION" -d "$DIR"
  echo "$SHA256  $WHEEL" | sha256sum --check --status || {
    echo "promparser: $WHEEL does not have the expected SHA-256" >&2
    exit 1
  }
fi
echo "promparser: $WHEEL"
