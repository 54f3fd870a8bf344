#!/usr/bin/env python3
# Tasks per second through real `wasmq serve` processes: one host on SQLite, then 1, 2 and 3
# hosts sharing one PostgreSQL database (scripts/postgres.sh), side by side in one run.
#
#   python3 scripts/bench_scaleout.py [TASKS]   (default 3000; needs target/debug/wasmq and
#                                                target/wasm-plugins/wasmq_chaos.wasm)
#
# Each configuration runs the same chaos job: TASKS trivial tasks ("ok"), 2 workers per host.
# The rate is TASKS over the job's own startedAt..completedAt.
import json, os, shutil, subprocess, sys, tempfile, time, urllib.request
from datetime import datetime

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WASMQ = os.path.join(ROOT, "target/debug/wasmq")
CHAOS = os.path.join(ROOT, "target/wasm-plugins/wasmq_chaos.wasm")
TASKS = int(sys.argv[1]) if len(sys.argv) > 1 else 3000


def psql(url, sql):
    subprocess.run(["psql", url, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-c", sql], check=True,
                   stdout=subprocess.DEVNULL)


def start(base, name, db_url, token=None):
    data = os.path.join(base, name)
    plugins = os.path.join(data, "plugins")
    os.makedirs(plugins)
    shutil.copy(CHAOS, plugins)
    if token:
        with open(os.path.join(data, "admin-token"), "w") as f:
            f.write(token)
    cmd = [WASMQ, "serve", "--data-dir", data, "--plugins", plugins,
           "--cache-dir", os.path.join(ROOT, "target/wasmq-test-cache"),
           "--listen", "127.0.0.1:0", "--server-name", name, "--workers", "2",
           "--sync-threshold", "0"]
    if db_url:
        cmd += ["--database-url", db_url]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env={**os.environ, "RUST_LOG": "warn"})
    line = proc.stdout.readline().strip()
    assert line.startswith("listening on "), line
    return proc, line[len("listening on "):], data


def call(url, token, method, path, body=None):
    req = urllib.request.Request(url + path, method=method,
                                 data=json.dumps(body).encode() if body is not None else None,
                                 headers={"Authorization": "Bearer " + token,
                                          "Content-Type": "application/json"})
    with urllib.request.urlopen(req) as r:
        return json.loads(r.read())


def ms(stamp):
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def run(hosts, postgres):
    base = tempfile.mkdtemp(prefix="wasmq-scaleout-")
    db_url = None
    if postgres:
        server = subprocess.run(["bash", os.path.join(ROOT, "scripts/postgres.sh"), "start"],
                                check=True, capture_output=True, text=True).stdout.strip()
        schema = "bench_%d_%d" % (os.getpid(), time.time_ns())
        psql(server, "CREATE SCHEMA " + schema)
        db_url = server + "?options=-c%20search_path%3D" + schema
    procs = []
    try:
        proc, url, data = start(base, "node-1", db_url)
        procs.append(proc)
        token = open(os.path.join(data, "admin-token")).read().strip()
        for i in range(2, hosts + 1):
            procs.append(start(base, "node-%d" % i, db_url, token)[0])
        job = call(url, token, "POST", "/api/v1/jobs",
                   {"type": "chaos", "path": "/content/dam/bench",
                    "params": {"tasks": ["ok"], "repeat": TASKS}})
        while job["state"] not in ("Complete", "Failed", "Cancelled"):
            time.sleep(0.2)
            job = call(url, token, "GET", "/api/v1/jobs/" + job["id"])
        assert job["state"] == "Complete", job
        tasks = call(url, token, "GET", "/api/v1/jobs/%s/tasks?limit=1000" % job["id"])
        nodes = sorted({t.get("node") for t in tasks.get("tasks", tasks) if isinstance(t, dict)})
        return TASKS / (ms(job["completedAt"]) - ms(job["startedAt"])), nodes
    finally:
        for p in procs:
            p.kill()
            p.wait()
        shutil.rmtree(base, ignore_errors=True)


def main():
    print("scale-out: %d trivial tasks, 2 workers per host, %d cores, load %.2f"
          % (TASKS, os.cpu_count(), os.getloadavg()[0]))
    base, _ = run(1, False)
    print("  1 host, SQLite      %8.1f tasks/s   1.00x" % base)
    for hosts in (1, 2, 3):
        rate, nodes = run(hosts, True)
        print("  %d host%s, PostgreSQL %8.1f tasks/s   %.2fx  (first 1000 tasks ran on %s)"
              % (hosts, "s" if hosts > 1 else " ", rate, rate / base, ", ".join(map(str, nodes))))


if __name__ == "__main__":
    main()
