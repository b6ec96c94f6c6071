#!/usr/bin/env bash
# The hot path with distributed mode off and on: one gateway (core 0, one
# tokio worker) in front of mock-upstream, three rate limits and two
# budgets matching every request, driven by oha (core 1, with the mock) at
# max throughput and at a fixed 1,000 req/s. "on" shares the counters
# through Redis and listens on NATS (both local; they run wherever the OS
# puts them). Prints one table row per phase.
#
# Usage:  bash bench/distributed.sh        (after cargo build --release -p tollgate -p testkit)
# Knobs:  DURATION=10s REDIS_URL=redis://127.0.0.1:6379/0 NATS_URL=nats://127.0.0.1:4222
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TOLLGATE=${TOLLGATE:-$ROOT/target/release/tollgate}
MOCK=${MOCK:-$ROOT/target/release/mock-upstream}
OHA=${OHA:-$(command -v oha || echo "$HOME/.cargo/bin/oha")}
DURATION=${DURATION:-10s}
REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379/0}
NATS_URL=${NATS_URL:-nats://127.0.0.1:4222}
GW_PORT=4300 ADMIN_PORT=4301 MOCK_PORT=9300
KEY=bench-app-key-0123456789

for b in "$TOLLGATE" "$MOCK" "$OHA"; do [[ -x "$b" ]] || { echo "missing $b" >&2; exit 1; }; done
TMP=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$TMP"' EXIT

MOCK_THREADS=1 taskset -c 1 "$MOCK" "127.0.0.1:$MOCK_PORT" >"$TMP/mock.log" 2>&1 &

config() { # $1: extra top-level YAML
    cat <<YAML
server: { listen: "127.0.0.1:$GW_PORT", admin_listen: "127.0.0.1:$ADMIN_PORT" }
store: { url: "memory://" }
logging: { enabled: false }
auth:
  master_key: "bench-master-key"
  keys: [{ name: bench-app, key: "$KEY", models: ["up/*"], metadata: { team: bench } }]
rate_limits:
  - { id: per-key-rpm, limit_by: [subject], unit: requests_per_minute, limit: 100000000 }
  - { id: per-project-tpm, limit_by: [metadata.project_id], unit: tokens_per_minute, limit: 100000000000 }
  - { id: per-team-rpd, limit_by: [team], unit: requests_per_day, limit: 100000000000 }
budgets:
  - { id: team-daily, limit_by: [team], unit: cost_per_day, limit: 1000000.0 }
  - { id: project-monthly, limit_by: [metadata.project_id], unit: tokens_per_month, limit: 100000000000 }
providers:
  - { name: up, type: openai_compatible, base_url: "http://127.0.0.1:$MOCK_PORT/v1", api_key: sk-bench, models: [{ name: gpt-4o-mini }] }
$1
YAML
}

BODY='{"model":"up/gpt-4o-mini","messages":[{"role":"user","content":"hello"}]}'
echo "| mode | phase | req/s | p50 ms | p99 ms | non-2xx |"
echo "|---|---|---|---|---|---|"
for mode in off on; do
    extra=""
    [[ $mode == on ]] && extra="distributed: { redis_url: \"$REDIS_URL\", nats_url: \"$NATS_URL\", namespace: \"bench-$$\" }"
    config "$extra" >"$TMP/tollgate.yaml"
    NO_COLOR=1 TOKIO_WORKER_THREADS=1 taskset -c 0 "$TOLLGATE" --log-level warn serve --config "$TMP/tollgate.yaml" >"$TMP/gw-$mode.log" 2>&1 &
    gw=$!
    for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$GW_PORT/ready" >/dev/null && break; sleep 0.1; done
    [[ $mode == on ]] && { curl -s "http://127.0.0.1:$GW_PORT/ready" | grep -q '"redis":"ok"' || { echo "Redis not reached" >&2; exit 1; }; }
    for phase in max rate1000; do
        args=(--no-tui --output-format json --worker-threads 1 -w -z "$DURATION" -m POST -T application/json -d "$BODY"
              -H "authorization: Bearer $KEY" -H 'x-tollgate-metadata: {"project_id":"bench"}')
        if [[ $phase == max ]]; then args+=(-c 64); else args+=(-c 32 -q 1000 --latency-correction); fi
        taskset -c 1 "$OHA" "${args[@]}" "http://127.0.0.1:$GW_PORT/v1/chat/completions" >"$TMP/$mode-$phase.json"
        jq -r --arg m "$mode" --arg p "$phase" '
            "| \($m) | \($p) | \(.summary.requestsPerSec | floor) | \(.latencyPercentiles.p50 * 1000 * 1000 | floor / 1000) | \(.latencyPercentiles.p99 * 1000 * 1000 | floor / 1000) | \([.statusCodeDistribution | to_entries[] | select(.key | test("^2") | not) | .value] | add // 0) |"' \
            "$TMP/$mode-$phase.json"
    done
    kill "$gw"; wait "$gw" 2>/dev/null || true
done
