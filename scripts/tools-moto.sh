#!/usr/bin/env bash
# Installs moto's S3 server and boto3 (scripts/moto-requirements.txt, all pinned wheels)
# into target/tools/moto for the S3 tests, with a launcher target/tools/moto/python; idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

DIR=target/tools/moto
REQS=scripts/moto-requirements.txt
PY=$(command -v python3)
STAMP="$DIR/installed-$(cat "$REQS" <("$PY" -c 'import sys; print(sys.version)') | sha256sum | cut -c1-16)"
if [ ! -f "$STAMP" ]; then
  echo "tools-moto: installing $(grep -m1 '^moto' "$REQS") into $DIR"
  rm -rf "$DIR"
  mkdir -p "$DIR"
  "$PY" -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --no-deps --only-binary :all: \
    --target "$DIR/lib" -r "$REQS"
  cat > "$DIR/python" <<LAUNCHER
#!/bin/sh
# The Python that scripts/tools-moto.sh installed moto for, with moto on its path.
PYTHONPATH="$PWD/$DIR/lib" exec "$PY" "\$@"
LAUNCHER
  chmod +x "$DIR/python"
  "$DIR/python" -c 'import moto.server, boto3' || { echo "tools-moto: moto does not import" >&2; exit 1; }
  touch "$STAMP"
fi
echo "tools-moto: $DIR/python -m moto.server -H 127.0.0.1 -p PORT"
