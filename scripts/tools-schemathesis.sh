#!/usr/bin/env bash
# Installs schemathesis (pinned, from PyPI) in a virtualenv under target/tools/schemathesis,
# for e2e_schemathesis to test the live API against its /openapi.json; idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=4.32.5
DIR=target/tools/schemathesis
if [ "$("$DIR/bin/schemathesis" --version 2>/dev/null)" != "schemathesis, version $VERSION" ]; then
  rm -rf "$DIR"
  python3 -m venv "$DIR"
  "$DIR/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$VERSION"
fi
echo "schemathesis: $DIR/bin/schemathesis"
