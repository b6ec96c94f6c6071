#!/usr/bin/env bash
# Does a stopped request-log sink slow requests down? Runs the gateway on a
# PostgreSQL store, measures latency at a fixed rate with the sink up, then
# with the request_log table taken away (inserts fail, entries spool), then
# puts it back and checks that every request was logged exactly once.
#
#   bash bench/sink-outage.sh            # needs PostgreSQL on 127.0.0.1:5432 and oha
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PG=${TOLLGATE_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}
DB=tollgate_sink_bench
RATE=${RATE:-1000}
DURATION=${DURATION:-10s}
OHA=${OHA:-$(command -v oha || echo "$HOME/.cargo/bin/oha")}
[[ "${BUILD:-1}" != 0 ]] && (cd "$ROOT" && cargo build --release -p tollgate -p testkit)
TMP=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$TMP"; }
trap cleanup EXIT
psql "$PG" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB" >/dev/null
STORE="${PG%/*}/$DB"
cat >"$TMP/t.yaml" <<YAML
server: { listen: "127.0.0.1:4150", admin_listen: "127.0.0.1:4151" }
store: { url: "$STORE" }
auth: { master_key: "bench-master-key" }
providers:
  - { name: up, type: openai_compatible, base_url: "http://127.0.0.1:9150/v1", api_key: "sk-x", models: [{ name: gpt-4o-mini }] }
YAML
taskset -c 1 "$ROOT/target/release/mock-upstream" 127.0.0.1:9150 2>/dev/null & PIDS+=($!)
TOKIO_WORKER_THREADS=1 taskset -c 0 "$ROOT/target/release/tollgate" --log-level error serve --config "$TMP/t.yaml" & PIDS+=($!)
for _ in $(seq 50); do curl -sf http://127.0.0.1:4150/ready >/dev/null && break; sleep 0.1; done
BODY='{"model":"up/gpt-4o-mini","messages":[{"role":"user","content":"hello"}]}'
run() {
  taskset -c 1 "$OHA" --no-tui --output-format json -w -z "$DURATION" -c 32 -q "$RATE" --latency-correction -m POST \
    -H 'authorization: Bearer bench-master-key' -T application/json -d "$BODY" http://127.0.0.1:4150/v1/chat/completions \
    | jq -r '"\(.summary.requestsPerSec|floor) req/s  p50 \(.latencyPercentiles.p50*1e6|floor) us  p99 \(.latencyPercentiles.p99*1e6|floor) us  ok \(.statusCodeDistribution."200" // 0)"'
}
echo "sink up:    $(run)"
psql "$STORE" -qc "ALTER TABLE request_log RENAME TO request_log_offline"
echo "sink down:  $(run)"
psql "$STORE" -qc "ALTER TABLE request_log_offline RENAME TO request_log"
sleep 3
echo "logged:     $(psql "$STORE" -Atc "SELECT count(*) || ' entries, ' || count(DISTINCT id) || ' distinct' FROM request_log")"
psql "$PG" -qc "DROP DATABASE $DB WITH (FORCE)" >/dev/null
