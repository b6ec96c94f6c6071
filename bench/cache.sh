#!/usr/bin/env bash
# Load benchmark of the response cache: the same chat request through a
# gateway with the cache off (every request a miss: gateway + upstream), a
# gateway with the exact cache on (every request after the first a hit), and
# a gateway in semantic mode asked a rewording of the primed question (every
# request a hit by similarity, with the built-in embedding), beside a bare
# pass-through proxy, in the same run. Gateways and proxy are pinned
# to core 0 with one tokio worker; mock-upstream and oha share core 1.
#
# Usage:   bash bench/cache.sh
# Quick:   BUILD=0 PROFILE=debug DURATION=3s bash bench/cache.sh
set -euo pipefail

BUILD=${BUILD:-1}
PROFILE=${PROFILE:-release}
DURATION=${DURATION:-10s}
MAX_CONC=${MAX_CONC:-64}
RATE=${RATE:-1000}
RATE_CONC=${RATE_CONC:-32}
GW_CORE=${GW_CORE:-0}
LOAD_CORE=${LOAD_CORE:-1}
MOCK_PORT=${MOCK_PORT:-9160}
OFF_PORT=${OFF_PORT:-4160}
ON_PORT=${ON_PORT:-4162}
SEM_PORT=${SEM_PORT:-4164}
PROXY_PORT=${PROXY_PORT:-4360}
MASTER_KEY=bench-master-key

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN_DIR="$ROOT/target/$PROFILE"
RESULTS="$ROOT/bench/results/cache-$(date -u +%Y%m%dT%H%M%SZ)"
REPRO="BUILD=$BUILD PROFILE=$PROFILE DURATION=$DURATION MAX_CONC=$MAX_CONC RATE=$RATE RATE_CONC=$RATE_CONC bash bench/cache.sh"

log() { printf '%s\n' "$*" >&2; }
die() { log "cache.sh: error: $*"; exit 1; }
command -v jq >/dev/null || die "jq is required"
command -v taskset >/dev/null || die "taskset is required"
if [[ "$BUILD" != 0 ]]; then
    flag=()
    [[ "$PROFILE" == release ]] && flag=(--release)
    (cd "$ROOT" && cargo build "${flag[@]}" -p tollgate -p testkit --bins)
fi
OHA=${OHA:-$(command -v oha || echo "$HOME/.cargo/bin/oha")}
[[ -x "$OHA" ]] || { log "==> cargo install oha --locked"; cargo install oha --locked; OHA="$HOME/.cargo/bin/oha"; }

TMP=$(mktemp -d "${TMPDIR:-/tmp}/tollgate-cache-bench.XXXXXX")
PIDS=()
cleanup() {
    local rc=$?
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    [[ -d "$RESULTS" ]] && cp "$TMP"/*.log "$RESULTS"/ 2>/dev/null
    rm -rf "$TMP"
    exit "$rc"
}
trap cleanup EXIT
mkdir -p "$RESULTS"

config() { # port cache-mode
    cat <<EOF
server: { listen: "127.0.0.1:$1", admin_listen: "127.0.0.1:$(($1 + 1))" }
store: { url: "sqlite://$TMP/bench-$1.db" }
auth: { master_key: "$MASTER_KEY" }
providers:
  - { name: up, type: openai_compatible, base_url: "http://127.0.0.1:$MOCK_PORT/v1", api_key: sk-x, models: [{ name: gpt-4o-mini }] }
cache: { mode: $2 }
EOF
}
config "$OFF_PORT" off >"$TMP/off.yaml"
config "$ON_PORT" exact >"$TMP/on.yaml"
config "$SEM_PORT" semantic >"$TMP/sem.yaml"

taskset -c "$LOAD_CORE" "$BIN_DIR/mock-upstream" "127.0.0.1:$MOCK_PORT" >"$TMP/mock.log" 2>&1 &
PIDS+=($!)
for mode in off on sem; do
    NO_COLOR=1 TOKIO_WORKER_THREADS=1 taskset -c "$GW_CORE" "$BIN_DIR/tollgate" --log-level warn serve --config "$TMP/$mode.yaml" >"$TMP/gateway-$mode.log" 2>&1 &
    PIDS+=($!)
done
TOKIO_WORKER_THREADS=1 taskset -c "$GW_CORE" "$BIN_DIR/bare-proxy" "127.0.0.1:$PROXY_PORT" "127.0.0.1:$MOCK_PORT" >"$TMP/proxy.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do
    curl -sf -o /dev/null "http://127.0.0.1:$OFF_PORT/health" && curl -sf -o /dev/null "http://127.0.0.1:$ON_PORT/health" \
        && curl -sf -o /dev/null "http://127.0.0.1:$SEM_PORT/health" && break
    sleep 0.1
done

BODY='{"model":"up/gpt-4o-mini","temperature":0,"messages":[{"role":"user","content":"What is the capital of France?"}]}'
PROXY_BODY='{"model":"gpt-4o-mini","temperature":0,"messages":[{"role":"user","content":"What is the capital of France?"}]}'
REWORDED='{"model":"up/gpt-4o-mini","temperature":0,"messages":[{"role":"user","content":"what'"'"'s the capital of france"}]}'
status_of() { # port body
    curl -s -D - -o /dev/null "http://127.0.0.1:$1/v1/chat/completions" -H "authorization: Bearer $MASTER_KEY" \
        -H 'content-type: application/json' -d "$2" | tr -d '\r' | awk -F': ' 'tolower($1) == "x-tollgate-cache-status" { print $2 }'
}
# Prime the caches, and check they answer hits (the semantic one to the rewording).
curl -s -o /dev/null "http://127.0.0.1:$SEM_PORT/v1/chat/completions" -H "authorization: Bearer $MASTER_KEY" \
    -H 'content-type: application/json' -d "$BODY"
for pair in "$ON_PORT:$BODY" "$SEM_PORT:$REWORDED"; do
    status=""
    for _ in $(seq 50); do
        status=$(status_of "${pair%%:*}" "${pair#*:}")
        [[ "$status" == hit ]] && break
        sleep 0.05
    done
    [[ "$status" == hit ]] || die "the cache on ${pair%%:*} never answered a hit (last status '$status')"
done

ROWS="$TMP/rows.tsv"
: >"$ROWS"
FAILED=()
run() { # name url body conc [rate]
    local name=$1 url=$2 body=$3 conc=$4 rate=${5:-} args
    args=(--no-tui --output-format json -w -z "$DURATION" -c "$conc" -m POST -T application/json -d "$body"
        -H "authorization: Bearer $MASTER_KEY")
    [[ -n "$rate" ]] && args+=(-q "$rate" --latency-correction)
    log "==> $name"
    echo "$name: taskset -c $LOAD_CORE oha ${args[*]} $url" >>"$RESULTS/commands.txt"
    taskset -c "$LOAD_CORE" "$OHA" "${args[@]}" "$url" >"$RESULTS/$name.json"
    jq -r --arg n "$name" '[ $n, .summary.requestsPerSec, .latencyPercentiles.p50, .latencyPercentiles.p99,
        ([.statusCodeDistribution // {} | to_entries[] | select(.key | test("^2") | not) | .value] | add // 0),
        ([.errorDistribution // {} | to_entries[] | .value] | add // 0) ] | @tsv' "$RESULTS/$name.json" >>"$ROWS"
    local bad
    bad=$(tail -n1 "$ROWS" | awk -F'\t' '{ print $5 + $6 }')
    (( bad == 0 )) || FAILED+=("$name")
}
CHAT=/v1/chat/completions
run proxy-max "http://127.0.0.1:$PROXY_PORT$CHAT" "$PROXY_BODY" "$MAX_CONC"
run miss-max "http://127.0.0.1:$OFF_PORT$CHAT" "$BODY" "$MAX_CONC"
run hit-max "http://127.0.0.1:$ON_PORT$CHAT" "$BODY" "$MAX_CONC"
run semantic-max "http://127.0.0.1:$SEM_PORT$CHAT" "$REWORDED" "$MAX_CONC"
run proxy-rate "http://127.0.0.1:$PROXY_PORT$CHAT" "$PROXY_BODY" "$RATE_CONC" "$RATE"
run miss-rate "http://127.0.0.1:$OFF_PORT$CHAT" "$BODY" "$RATE_CONC" "$RATE"
run hit-rate "http://127.0.0.1:$ON_PORT$CHAT" "$BODY" "$RATE_CONC" "$RATE"
run semantic-rate "http://127.0.0.1:$SEM_PORT$CHAT" "$REWORDED" "$RATE_CONC" "$RATE"

field() { awk -F'\t' -v n="$1" -v c="$2" '$1 == n { print $c }' "$ROWS"; }
{
    echo "Response cache — $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $PROFILE build"
    echo "  $REPRO"
    printf '%-13s %10s %9s %9s %8s %7s\n' phase 'req/s' 'p50 ms' 'p99 ms' non-2xx errors
    awk -F'\t' '{ printf "%-13s %10.0f %9.3f %9.3f %8d %7d\n", $1, $2, $3 * 1000, $4 * 1000, $5, $6 }' "$ROWS"
    echo "  hits: $(awk -v h="$(field hit-max 2)" -v m="$(field miss-max 2)" 'BEGIN { printf "%.2fx", h / m }') the throughput of misses on one core," \
        "p50 $(awk -v h="$(field hit-rate 3)" -v m="$(field miss-rate 3)" 'BEGIN { printf "%.0f", (m - h) * 1e6 }') us lower at $RATE req/s"
} | tee "$RESULTS/summary.txt"
(( ${#FAILED[@]} == 0 )) || die "non-2xx or errors in ${FAILED[*]}"
