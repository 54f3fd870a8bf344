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
export WASMQ_TOKEN; WASMQ_TOKEN=$(cat "$data/admin-token")

echo "deleting /content/dam/demo except /content/dam/demo/site and /content/dam/demo/git ..."
id=$("$wasmq" submit --server "$url" --type delete --path /content/dam/demo \
  --exclude /content/dam/demo/site --exclude /content/dam/demo/git \
  --description "demo: bulk delete with exclusions" --wait)
python3 - "$url" "$id" <<'PY'
import json, sys, urllib.parse, urllib.request

url, job_id = sys.argv[1], sys.argv[2]
import os
auth = {"Authorization": "Bearer " + os.environ["WASMQ_TOKEN"]}
get = lambda path: json.load(urllib.request.urlopen(urllib.request.Request(url + path, headers=auth)))
job = get(f"/api/v1/jobs/{job_id}")
counts = job["counts"]
print(f"job {job_id}: {job['state']}, {counts['succeeded']} deleted, {counts['failed']} kept, "
      f"fuel {job['fuelUsed']}, ran on {job['serverName']}")
print("kept because a page outside the deletion refers to it:")
offset = 0
while True:
    page = get(f"/api/v1/jobs/{job_id}/tasks?limit=1000&offset={offset}")
    for task in page["tasks"]:
        if task["state"] == "failed":
            print(f"  {task['path']}: {task['code']} {task['message']}")
    if not page["hasMore"]:
        break
    offset += len(page["tasks"])
left, cursor = 0, ""
while True:
    page = get("/api/v1/assets?path=/content/dam/demo&recursive=true&limit=1000" + (f"&cursor={urllib.parse.quote(cursor)}" if cursor else ""))
    left += len(page["assets"])
    cursor = page["nextCursor"]
    if not cursor:
        break
print(f"assets left under /content/dam/demo: {left} (the excluded folders and the kept licence)")
PY
