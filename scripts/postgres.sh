#!/usr/bin/env bash
# A real PostgreSQL server on loopback for the tests: `setup` installs Debian's package,
# `start` runs a private cluster under target/postgres and prints its URL, `stop` ends it.
set -euo pipefail
cd "$(dirname "$0")/.."

PORT="${WASMQ_PG_PORT:-55432}"
# WASMQ_PG_DIR and WASMQ_PG_PORT give a test a cluster of its own (one it may stop and start).
DIR="${WASMQ_PG_DIR:-$PWD/target/postgres}"
URL="postgres://postgres@127.0.0.1:$PORT/postgres"

bin() {
  local found
  found=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  [ -n "$found" ] && echo "$found"
}

as_postgres() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

setup() {
  if [ -n "$(bin)" ]; then
    return
  fi
  echo "postgres: installing Debian's postgresql" >&2
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq postgresql >/dev/null
  [ -n "$(bin)" ] || { echo "postgres: initdb is still missing" >&2; exit 1; }
}

running() {
  "$(bin)/pg_isready" -q -h 127.0.0.1 -p "$PORT"
}

start() {
  setup
  local b
  b=$(bin)
  if running; then
    echo "$URL"
    return
  fi
  mkdir -p "$DIR"
  [ "$(id -u)" -ne 0 ] || chown postgres: "$DIR"
  if [ ! -s "$DIR/data/PG_VERSION" ]; then
    as_postgres "$b/initdb" -D "$DIR/data" -U postgres --auth=trust --locale=C.UTF-8 \
      --encoding=UTF8 >"$DIR/initdb.log"
  fi
  # Tests, not production: no fsync, a socket directory of our own.
  as_postgres "$b/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w -t 60 \
    -o "-p $PORT -k $DIR -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300" start >&2
  running || { echo "postgres: did not start; see $DIR/server.log" >&2; exit 1; }
  echo "$URL"
}

stop() {
  local b
  b=$(bin) || exit 0
  if [ -s "$DIR/data/postmaster.pid" ]; then
    as_postgres "$b/pg_ctl" -D "$DIR/data" -m fast -w stop >&2 || true
  fi
}

case "${1:-}" in
  setup) setup ;;
  start) start ;;
  stop) stop ;;
  url) echo "$URL" ;;
  *) echo "usage: $0 setup|start|stop|url" >&2; exit 2 ;;
esac
