#!/usr/bin/env bash
# Runs Schemathesis (from PyPI, in a local virtualenv) against /openapi.json of a
# started `verdict serve`: every check, every phase (stateful included), an admin
# token, limits raised, a fixed seed and example count, bounded by `timeout`.
#
# PUT /v1/admin/maintenance is fuzzed like every operation; a hook
# (.ci/schemathesis_hooks.py) switches maintenance off after each call, since
# while it is on every non-admin request is (rightly, by the contract's order:
# 503 before 401) a 503, which Schemathesis's authentication checks would read
# as failures of the cases that follow.
set -euo pipefail
cd "$(dirname "$0")/.."

SCHEMATHESIS_VERSION=4.32.5
SEED=${SCHEMATHESIS_SEED:-20261124}
EXAMPLES=${SCHEMATHESIS_EXAMPLES:-50}
VENV=.ci/.venv

if [ ! -x "$VENV/bin/schemathesis" ] || ! "$VENV/bin/schemathesis" --version | grep -q "$SCHEMATHESIS_VERSION"; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi

cargo build --quiet --bin verdict
work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
token=schemathesis-admin-token
"${CARGO_TARGET_DIR:-target}/debug/verdict" serve --listen "127.0.0.1:$port" --data "$work/verdict.db" \
  --admin-token "$token" --rate-limit off --job-rate-limit off --auth-failure-limit off --max-in-flight 4096 \
  >"$work/server.log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; rm -rf "$work"' EXIT

for _ in $(seq 1 100); do
  curl -sf "$base/health" >/dev/null && break
  sleep 0.1
done
curl -sf -X POST "$base/v1/collections" -H "Authorization: Bearer $token" \
  -H 'Content-Type: application/json' -d '{"name": "books", "unique": ["isbn"]}' >/dev/null
for i in 1 2 3; do
  curl -sf -X POST "$base/v1/collections/books/records" -H "Authorization: Bearer $token" \
    -H 'Content-Type: application/json' -d "{\"id\": \"b$i\", \"title\": \"Book $i\", \"author\": \"Ann\"}" >/dev/null
done

status=0
VERDICT_BASE="$base" VERDICT_TOKEN="$token" \
SCHEMATHESIS_HOOKS=schemathesis_hooks PYTHONPATH=.ci timeout 1200 \
  "$VENV/bin/schemathesis" --config-file .ci/schemathesis.toml run "$base/openapi.json" \
    --checks all --phases examples,coverage,fuzzing,stateful \
    --seed "$SEED" -n "$EXAMPLES" \
    -H "Authorization: Bearer $token" \
    --max-failures 100 || status=$?
if [ "$status" -ne 0 ]; then
  echo "== server log (last 50 lines)"
  tail -50 "$work/server.log"
fi
exit "$status"
