#!/usr/bin/env bash
# A client example with nothing but curl and python3: submits a delete job to a
# running wasmq server, polls its progress, then prints the items that failed.
# Usage: WASMQ_TOKEN=... examples/submit-and-watch.sh http://127.0.0.1:8080 /content/dam/some/folder [excluded path...]
set -euo pipefail
auth="Authorization: Bearer ${WASMQ_TOKEN:?set WASMQ_TOKEN to an API token (see DATA_DIR/admin-token)}"
url=${1:?server url}; path=${2:?asset path}; shift 2
excluded=$(python3 -c 'import json, sys; print(json.dumps(sys.argv[1:]))' "$@")
body=$(python3 -c 'import json, sys; print(json.dumps({"type": "delete", "path": sys.argv[1], "excludedPaths": json.loads(sys.argv[2])}))' "$path" "$excluded")
job=$(curl -sf -H "$auth" -H "Content-Type: application/json" -d "$body" "$url/api/v1/jobs")
id=$(python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])' <<<"$job")
echo "submitted $id"
while :; do
  state=$(curl -sf -H "$auth" "$url/api/v1/jobs/$id" | python3 -c '
import json, sys
j = json.load(sys.stdin); p = j["progress"]
done, total, percent = p["done"], p["total"], p["percent"]
print(j["state"], f"{done}/{total}", f"{percent}%", file=sys.stderr)
print(j["state"])')
  case $state in Complete|Failed|Cancelled) break ;; esac
  sleep 1
done
curl -sf -H "$auth" "$url/api/v1/jobs/$id/tasks?limit=1000" | python3 -c '
import json, sys
for t in json.load(sys.stdin)["tasks"]:
    if t["state"] == "failed":
        print(t["path"], t["code"], t["message"])'
