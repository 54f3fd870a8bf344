#!/usr/bin/env bash
# The main job on the embedded default (SQLite + local asset directory): imports
# real files as assets, starts `wasmq serve`, runs a delete job with exclusions.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
cargo build -p wasmq --locked
wasmq=./target/debug/wasmq

data=${WASMQ_DEMO_DIR:-data/demo}
rm -rf "$data"
mkdir -p "$data"
"$wasmq" plugin build plugins --out "$data/plugins"

# Real files: the package documentation every Debian machine carries, plus a
# page that refers to one asset of the deleted part from a kept folder.
samples=$(mktemp -d)
trap 'rm -rf "$samples"; [ -n "${server:-}" ] && kill "$server" 2>/dev/null || true' EXIT
cp -r /usr/share/doc/. "$samples/"
mkdir -p "$samples/site"
cat > "$samples/site/index.html" <<'HTML'
<html><body><h1>Kept page</h1><p>See <a href="/content/dam/demo/bash/copyright">the bash licence</a>.</p></body></html>
HTML
"$wasmq" assets import "$samples" --to /content/dam/demo --data-dir "$data"

"$wasmq" serve --data-dir "$data" --listen 127.0.0.1:0 > "$data/server.out" 2> "$data/server.log" &
server=$!
for _ in $(seq 1 600); do
  grep -q '^listening on ' "$data/server.out" 2>/dev/null && break
  sleep 0.1
done
url=$(sed -n 's/^listening on //p' "$data/server.out")
[ -n "$url" ] || { echo "the server did not start; see $data/server.log" >&2; exit 1; }
echo "server at $url"

echo "deleting /content/dam/demo except /content/dam/demo/site and /content/dam/demo/git ..."
id=$("$wasmq" submit --server "$url" --type delete --path /content/dam/demo \
  --exclude /content/dam/demo/site --exclude /content/dam/demo/git \
  --description "demo: bulk delete with exclusions" --wait)
curl -s "$url/api/v1/jobs/$id" | python3 -c '
import json, sys
j = json.load(sys.stdin)
print(f"job {j[\"id\"]}: {j[\"state\"]}, {j[\"counts\"][\"succeeded\"]} deleted, {j[\"counts\"][\"failed\"]} kept, fuel {j[\"fuelUsed\"]}, server {j[\"serverName\"]}")'
echo "kept because a page outside the deletion refers to it:"
curl -s "$url/api/v1/jobs/$id/tasks?limit=1000" | python3 -c '
import json, sys
for t in json.load(sys.stdin)["tasks"]:
    if t["state"] == "failed":
        print(f"  {t[\"path\"]}: {t[\"code\"]} {t[\"message\"]}")'
echo "remaining assets under /content/dam/demo:"
curl -s "$url/api/v1/assets?path=/content/dam/demo&recursive=true&limit=1000" | python3 -c '
import json, sys
print("  " + str(len(json.load(sys.stdin)["assets"])) + " (the excluded folders and the kept licence)")'
