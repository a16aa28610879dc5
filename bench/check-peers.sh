#!/usr/bin/env bash
# Runs `verdict check` against json-server and PocketBase (the peers the
# benchmarks compare with), each freshly installed into bench/.tools and
# started on 127.0.0.1 with a throwaway database, and against json-server
# behind `verdict proxy` (with json-server's own description,
# docs/check-examples/json-server.openapi.json), and writes what it finds to
# docs/check-examples/. Every process started is stopped on exit.
#
#   bash bench/check-peers.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
TOOLS=$ROOT/bench/.tools
WORK=$ROOT/bench/.work/check-peers
OUT=$ROOT/docs/check-examples
rm -rf "$WORK" && mkdir -p "$WORK" "$TOOLS" "$OUT"

PIDS=()
cleanup() {
  for p in "${PIDS[@]:-}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]:-}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT
say() { echo "== $*" >&2; }
wait_up() { for _ in $(seq 1 200); do curl -s -o /dev/null "$1" && return 0; sleep 0.05; done; echo "no answer from $1" >&2; return 1; }

# shellcheck source=bench/peers.sh
. "$ROOT/bench/peers.sh"
install_peers
say "building verdict"
cargo build --quiet --bin verdict
VERDICT=$ROOT/target/debug/verdict

# json-server: one collection with one record.
echo '{"books": [{"id": 1, "title": "Dune"}]}' >"$WORK/db.json"
(cd "$WORK" && exec "$TOOLS/node/node_modules/.bin/json-server" --port 9703 --host 127.0.0.1 --quiet db.json >/dev/null 2>&1) & PIDS+=($!)
# PocketBase: a public collection with one record.
PB="$TOOLS/venv/bin/pocketbase"
"$PB" superuser upsert check@example.com check-password-123 --dir "$WORK/pb_data" >/dev/null
"$PB" serve --http 127.0.0.1:9702 --dir "$WORK/pb_data" >/dev/null 2>&1 & PIDS+=($!)
# The same json-server behind the gateway.
"$VERDICT" proxy --upstream http://127.0.0.1:9703 --listen 127.0.0.1:9704 \
  --openapi "$OUT/json-server.openapi.json" >/dev/null 2>&1 & PIDS+=($!)
wait_up http://127.0.0.1:9703/books; wait_up http://127.0.0.1:9702/api/health; wait_up http://127.0.0.1:9704/.verdict/health
PBTOKEN=$(curl -sf -X POST http://127.0.0.1:9702/api/collections/_superusers/auth-with-password \
  -H 'Content-Type: application/json' -d '{"identity": "check@example.com", "password": "check-password-123"}' |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
curl -sf -X POST http://127.0.0.1:9702/api/collections -H "Authorization: $PBTOKEN" -H 'Content-Type: application/json' \
  -d '{"name": "books", "type": "base", "fields": [{"name": "title", "type": "text", "required": true}],
       "listRule": "", "viewRule": "", "createRule": "", "updateRule": "", "deleteRule": ""}' >/dev/null
PBID=$(curl -sf -X POST http://127.0.0.1:9702/api/collections/books/records -H 'Content-Type: application/json' \
  -d '{"title": "Dune"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')

report() { # NAME TITLE VERSION ARGS...
  local name=$1 title=$2 version=$3; shift 3
  # json-server's state is reset before each run, so both json-server runs
  # meet the same one record.
  curl -sf -X PUT http://127.0.0.1:9703/books/1 -H 'Content-Type: application/json' -d '{"id": 1, "title": "Dune"}' >/dev/null || true
  say "checking $title"
  local code=0
  "$VERDICT" check "$@" --policy rfc9110 --allow-writes --format table >"$WORK/$name.txt" || code=$?
  "$VERDICT" check "$@" --policy rfc9110 --allow-writes --format json >"$OUT/$name.json" || true
  {
    echo "# \`verdict check\` against $title"
    echo
    echo "Written by \`bash bench/check-peers.sh\` ($title $version on 127.0.0.1, a throwaway"
    echo "database with one record, policy \`rfc9110\`, \`--allow-writes\`; exit code $code)."
    echo "The JSON findings, with a curl line for each: [$name.json]($name.json)."
    echo
    echo '```'
    cat "$WORK/$name.txt"
    echo '```'
  } >"$OUT/$name.md"
}
# Each path with the methods the server documents for it, so that the 405
# and write probes know what to send.
report json-server json-server 0.17.4 http://127.0.0.1:9703 \
  --path "GET,POST /books" --path "GET,PUT,PATCH,DELETE /books/1"
report json-server-behind-proxy "json-server behind verdict proxy" "0.17.4, gateway flags \`--openapi json-server.openapi.json\`," \
  http://127.0.0.1:9704 --path "GET,POST /books" --path "GET,PUT,PATCH,DELETE /books/1"
cat >>"$OUT/json-server-behind-proxy.md" <<'NOTE'

The same json-server as in [json-server.md](json-server.md), with the same
probes, through the gateway: 501, 405 with `Allow`, `OPTIONS`, 406, 412 (the
gateway judges `If-Match` itself, json-server ignores it), 414, 415, 400/422
against the description's schemas, and `Cache-Control: no-store` on errors,
all from the gateway. What is left are two `should` findings on `PATCH`: the
checker sends `application/merge-patch+json`, which json-server does not read
(it parses `application/json` only), so the gateway's 415 is the honest answer.
NOTE
report pocketbase PocketBase 0.40.6 http://127.0.0.1:9702 \
  --path "GET,POST /api/collections/books/records" --path "GET,PATCH,DELETE /api/collections/books/records/$PBID"
say "wrote $OUT"
