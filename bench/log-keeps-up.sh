#!/usr/bin/env bash
# Does the request log keep up with the gateway at its maximum rate? Runs
# the gateway on all cores (no pinning; the mock and the load generator
# share them), drives it as hard as it goes for DURATION, then counts the
# log: every request answered must have exactly one entry, and
# tollgate_request_log_dropped must be 0. Once per store: SQLite, then
# PostgreSQL.
#
#   bash bench/log-keeps-up.sh     # needs PostgreSQL on 127.0.0.1:5432, wrk, jq, sqlite3
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PG=${TOLLGATE_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}
DB=tollgate_log_bench
DURATION=${DURATION:-10s}
CONNS=${CONNS:-64}
[[ "${BUILD:-1}" != 0 ]] && (cd "$ROOT" && cargo build --release -p tollgate -p testkit)
TMP=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$TMP"; }
trap cleanup EXIT
"$ROOT/target/release/mock-upstream" 127.0.0.1:9160 2>/dev/null & PIDS+=($!)
cat >"$TMP/post.lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"model":"up/gpt-4o-mini","messages":[{"role":"user","content":"hello"}]}'
wrk.headers["content-type"] = "application/json"
wrk.headers["authorization"] = "Bearer bench-master-key"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %d %d %.0f\n", summary.requests,
    summary.requests - e.status - e.connect - e.read - e.write - e.timeout, summary.requests / summary.duration * 1e6))
end
LUA

one() { # $1: label, $2: store URL, $3: SQL runner for the count
  cat >"$TMP/t.yaml" <<YAML
server: { listen: "127.0.0.1:4160", admin_listen: "127.0.0.1:4161" }
store: { url: "$2" }
auth: { master_key: "bench-master-key" }
providers:
  - { name: up, type: openai_compatible, base_url: "http://127.0.0.1:9160/v1", api_key: "sk-x", models: [{ name: gpt-4o-mini }] }
YAML
  (cd "$TMP" && exec "$ROOT/target/release/tollgate" --log-level error serve --no-watch --config "$TMP/t.yaml") & local gw=$!
  for _ in $(seq 100); do curl -sf http://127.0.0.1:4160/ready >/dev/null && break; sleep 0.1; done
  local total ok rps n=0
  read -r _ total ok rps < <(wrk -t2 -c"$CONNS" -d"$DURATION" -s "$TMP/post.lua" http://127.0.0.1:4160/v1/chat/completions | grep '^RESULT')
  # The writer drains what is queued: wait (up to 30 s) for the count to reach the requests answered.
  for _ in $(seq 300); do
    n=$($3 "SELECT count(*) FROM request_log")
    (( n >= ok )) && break
    sleep 0.1
  done
  local dropped distinct
  dropped=$(curl -s http://127.0.0.1:4160/ready | jq -r '.request_log.dropped')
  distinct=$($3 "SELECT count(DISTINCT id) FROM request_log")
  printf '%-9s %6s req/s  sent %s, answered 2xx %s  logged %s (%s distinct)  dropped %s\n' \
    "$1" "$rps" "$total" "$ok" "$n" "$distinct" "$dropped"
  kill "$gw"; wait "$gw" 2>/dev/null || true
}

one sqlite "sqlite://$TMP/log.db" "sqlite3 $TMP/log.db"
psql "$PG" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB" >/dev/null
STORE="${PG%/*}/$DB"
one postgres "$STORE" "psql $STORE -Atc"
psql "$PG" -qc "DROP DATABASE $DB WITH (FORCE)" >/dev/null
