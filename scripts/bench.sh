#!/usr/bin/env bash
# The benchmark command: installs and builds what it needs, runs every wasmq benchmark
# on this machine and rewrites the figures of BENCHMARKS.md (between its bench markers).
#
#   scripts/bench.sh           # the full run (about 15 minutes on 2 cores, 5 more on the first)
#   scripts/bench.sh --quick   # small counts: checks that everything runs, figures not stable
#
# BENCH_ASSETS (default 100000), BENCH_QUEUED (default 1000000) and BENCH_REPEAT
# (default 3) override the bulk-delete and queue sizes and bench-assets' runs per file. Raw outputs land in target/bench/.
#
# Profile: the dev profile of the workspace (Cargo.toml: every dependency,
# wasmtime, cranelift, sqlx, SQLite, tokio and axum included, at opt-level 2),
# with the wasmq crate itself also at opt-level 2 here (it is at 0 for
# everyday builds and tests), as a server would run it. The plugins are always
# release wasm, and nativebench is release. A release build of the host adds a
# full rebuild of every dependency, tens of minutes on 2 shared cores, for the
# same optimization level of the code that is ours.
set -euo pipefail
cd "$(dirname "$0")/.."

QUICK=()
if [ "${1:-}" = "--quick" ]; then QUICK=(--quick); fi
if [ ${#QUICK[@]} -gt 0 ]; then
  ASSETS=${BENCH_ASSETS:-2000} QUEUED=${BENCH_QUEUED:-20000} SECONDS_WRK=2 REPEAT=1
else
  ASSETS=${BENCH_ASSETS:-100000} QUEUED=${BENCH_QUEUED:-1000000} SECONDS_WRK=10 REPEAT=${BENCH_REPEAT:-3}
fi

bash scripts/setup.sh
bash scripts/tools-wrk.sh
bash scripts/tools-oxipng.sh
bash scripts/corpus-images.sh
bash scripts/corpus-pdfs.sh

echo "== build"
# Cargo keeps this build's artifacts beside the everyday opt-level 0 ones, so
# switching back and forth rebuilds nothing twice.
cargo build -p wasmq --locked --config 'profile.dev.package.wasmq.opt-level=2'
./target/debug/wasmq plugin build plugins --out target/wasm-plugins
(cd plugins && cargo build --release -p nativebench --features native --locked)
# The same nativebench with a standard library that can be told to hide AVX.
NARROW=$(bash scripts/nativebench-narrow.sh)

OUT=target/bench
mkdir -p "$OUT"
WASMQ=./target/debug/wasmq
LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
CPU=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
STARTED=$(date -u '+%Y-%m-%d %H:%M UTC')

echo "== wasmq bench"
"$WASMQ" bench "${QUICK[@]}" | tee "$OUT/bench.txt"
echo "== wasmq bench-delete"
"$WASMQ" bench-delete --assets "$ASSETS" 2>"$OUT/delete.log" | tee "$OUT/delete.txt"
echo "== wasmq bench-server"
"$WASMQ" bench-server --seconds "$SECONDS_WRK" --queued "$QUEUED" 2>"$OUT/server.log" | tee "$OUT/server.txt"
echo "== wasmq bench-assets"
"$WASMQ" bench-assets --repeat "$REPEAT" --native-narrow "$NARROW" 2>"$OUT/assets.log" | tee "$OUT/assets.txt"
echo "== scale-out (scripts/bench_scaleout.py)"
SCALE_TASKS=3000
[ ${#QUICK[@]} -gt 0 ] && SCALE_TASKS=300
python3 scripts/bench_scaleout.py "$SCALE_TASKS" | tee "$OUT/scaleout.txt"
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

# The first number after the Perl pattern $2 on the first matching line of file $1.
pick() { grep -oP -m1 "$2\K[0-9.]+" "$OUT/$1" || echo "?"; }
# "pass" or "miss" for `$1 $2 $3` (value, operator, goal), as awk compares them.
verdict() {
  if [ "$1" = "?" ]; then echo "not measured"; return; fi
  awk -v v="$1" -v g="$3" "BEGIN { print ((v $2 g) ? \"pass\" : \"miss\") }"
}

fresh=$(pick bench.txt 'a fresh instance per task: +')
reused=$(pick bench.txt 'one instance for all: +')
inst=$(pick bench.txt 'instantiation per task: +')
sched=$(pick bench.txt 'trivial tasks through the scheduler: +')
cpu_epoch=$(pick bench.txt "^cpu .*?epoch [^(]*\\(")
cpu_fuel=$(pick bench.txt "^cpu .*fuel [^(]*\\(")
sort_epoch=$(pick bench.txt "^sort .*?epoch [^(]*\\(")
sort_fuel=$(pick bench.txt "^sort .*fuel [^(]*\\(")
del_wasm=$(pick delete.txt 'wasm delete job .*: +')
del_plugin_cpu=$(pick delete.txt 'in the process, ')
del_wasm_cpu=$(pick delete.txt 'wasm delete job .*CPU ')
del_native_cpu=$(pick delete.txt 'native repository calls.*CPU ')
del_native=$(pick delete.txt 'native repository calls, in process: +')
del_unlink=$(pick delete.txt 'file system unlink of [0-9]+ files: +')
del_ratio=$(pick delete.txt 'ratio wasm job / native calls: +')
del_unlink_ratio=$(pick delete.txt 'ratio wasm job / unlink: +')
del_rounds=$(grep -oP -m1 'per round: \K.*' "$OUT/delete.txt" || echo "?")
async_rate=$(pick server.txt 'answered at once \(202\) +')
async_p50=$(pick server.txt 'answered at once.* p50 +')
async_p99=$(pick server.txt 'answered at once.* p99 +')
async_jobs=$(pick server.txt 'answered at once.*jobs created ')
sync_rate=$(pick server.txt 'answered when the job ended \(200\) +')
sync_p50=$(pick server.txt 'answered when the job ended.* p50 +')
sync_p99=$(pick server.txt 'answered when the job ended.* p99 +')
rss_idle=$(pick server.txt 'RSS idle ')
rss_queue=$(pick server.txt 'with the queue ')
rss_peak=$(pick server.txt 'peak ')
queued=$(pick server.txt 'paused in [0-9.]+ s; ')
img=$(pick assets.txt '^all +wasm .*ratio ')
pdf=$(pick assets.txt '^all +[0-9]+ pages .*ratio ')
img_fresh=$(pick assets.txt '^fresh instance per file: all +wasm .*ratio ')
pdf_fresh=$(pick assets.txt '^fresh instance per page: all +[0-9]+ pages .*ratio ')
img_narrow=$(pick assets.txt '^native with AVX hidden .*: all +wasm .*ratio ')
pdf_narrow=$(pick assets.txt '^native with AVX hidden .*: all +[0-9]+ pages .*ratio ')
scale_sqlite=$(pick scaleout.txt '1 host, SQLite +')
scale_pg1=$(pick scaleout.txt '1 host , PostgreSQL +')
scale_pg2=$(pick scaleout.txt '2 hosts, PostgreSQL +')
scale_pg3=$(pick scaleout.txt '3 hosts, PostgreSQL +')

TABLE=$(mktemp)
cat >"$TABLE" <<EOF
<!-- bench:start -->
Run of \`scripts/bench.sh${QUICK[*]:+ ${QUICK[*]}}\` (sizes: $ASSETS assets, $QUEUED tasks, bench-assets best of $REPEAT)
on $STARTED: $(nproc) cores ($CPU),
load average before the run $LOAD, after it $LOAD_AFTER; dev profile, the wasmq crate at opt-level 2 (see
scripts/bench.sh); raw outputs in target/bench/.

| | figure | measured | goal | result |
|---|---|---|---|---|
| a | bulk delete of $ASSETS assets: wasm \`delete\` job through the scheduler (1 worker) | $del_wasm assets/s (plugin calls: $del_plugin_cpu s CPU of the job) | | |
| a | the same repository calls natively in process | $del_native assets/s | | |
| a | process CPU time, wasm job / native calls | $del_wasm_cpu s / $del_native_cpu s = $(awk -v w="$del_wasm_cpu" -v n="$del_native_cpu" 'BEGIN { if (n > 0) printf "%.2fx", w / n; else print "?" }') | | |
| a | the file system's unlink of as many files | $del_unlink files/s | | |
| a | **wasm job / native calls** (time) | **${del_ratio}x** | at most 1.3x | $(verdict "$del_ratio" '<=' 1.3) |
| a | the same, per round (the sides alternate in rounds over a share of the assets each) | $del_rounds | | |
| a | wasm job / unlink (time) | ${del_unlink_ratio}x | | |
| b | POST /api/v1/jobs with wrk, answered at once (202; jobs run behind) | $async_rate req/s, p50 $async_p50 ms, p99 $async_p99 ms ($async_jobs jobs created) | | |
| b | the same, default sync threshold (answer when the one-task job ended) | $sync_rate req/s, p50 $sync_p50 ms, p99 $sync_p99 ms | | |
| c | trivial tasks through the wasm path, a fresh instance per task | $fresh tasks/s | | |
| c | the same on one reused instance | $reused tasks/s | | |
| c | instantiation per task | $inst µs | | |
| c | trivial tasks through the scheduler (SQLite, in process) | $sched tasks/s | | |
| d | metering overhead, CPU-bound loop: epoch / fuel vs none | ${cpu_epoch}x / ${cpu_fuel}x | | |
| d | metering overhead, sorting: epoch / fuel vs none | ${sort_epoch}x / ${sort_fuel}x | | |
| e | server RSS with $queued tasks queued (job paused) | $rss_queue MB (idle $rss_idle MB, peak while planning $rss_peak MB) | under 200 MB | $(verdict "$rss_queue" '<' 200) |
| f | image-optimize wasm / native CPU (a job's tasks on its warm instance, as the scheduler runs them) | ${img}x | at most 1.5x | $(verdict "$img" '<=' 1.5) |
| f | pdf-rip wasm / native CPU (the same) | ${pdf}x | at most 1.5x | $(verdict "$pdf" '<=' 1.5) |
| f | the same on a fresh instance per task: image-optimize / pdf-rip | ${img_fresh}x / ${pdf_fresh}x | | |
| f | wasm / the same native code with AVX hidden (SSE only: 128-bit SIMD, as wasm has): image-optimize / pdf-rip | ${img_narrow}x / ${pdf_narrow}x | | |
| g | $SCALE_TASKS trivial tasks, 2 workers per host: 1 host on SQLite | $scale_sqlite tasks/s | | |
| g | the same on PostgreSQL, 1 / 2 / 3 hosts (all on this machine's cores) | $scale_pg1 / $scale_pg2 / $scale_pg3 tasks/s | | |
<!-- bench:end -->
EOF

# Replace the lines between the markers (inclusive) with the new table.
if ! grep -q '<!-- bench:start -->' BENCHMARKS.md 2>/dev/null; then
  printf '# Benchmarks\n\n<!-- bench:start -->\n<!-- bench:end -->\n' >>BENCHMARKS.md
fi
awk -v table="$TABLE" '
  /<!-- bench:start -->/ { while ((getline line < table) > 0) print line; skip = 1; next }
  /<!-- bench:end -->/ { skip = 0; next }
  !skip { print }
' BENCHMARKS.md >BENCHMARKS.md.new
mv BENCHMARKS.md.new BENCHMARKS.md
rm -f "$TABLE"
echo "== BENCHMARKS.md updated"
sed -n '/<!-- bench:start -->/,/<!-- bench:end -->/p' BENCHMARKS.md
