#!/usr/bin/env bash
# Load benchmark for MCP tool calls: `tools/call` (the mock's `echo`) sent
# straight to a mock MCP server, through a bare pass-through proxy, and
# through tollgate's /mcp/<name> (authenticated, allowlisted, admitted,
# logged), in the same run, so the results are ratios that survive a noisy
# machine. The gateway and the proxy are pinned to core 0 with one tokio
# worker; the mock and oha share core 1.
#
# Usage:   bash bench/mcp.sh
# Quick:   BUILD=0 PROFILE=debug DURATION=3s bash bench/mcp.sh
set -euo pipefail

BUILD=${BUILD:-1}
PROFILE=${PROFILE:-release}
DURATION=${DURATION:-10s}
MAX_CONC=${MAX_CONC:-32}
RATE=${RATE:-1000}
RATE_CONC=${RATE_CONC:-16}
GW_CORE=${GW_CORE:-0}
LOAD_CORE=${LOAD_CORE:-1}
GW_PORT=${GW_PORT:-4150}
ADMIN_PORT=${ADMIN_PORT:-4151}
MOCK_PORT=${MOCK_PORT:-9150}
PROXY_PORT=${PROXY_PORT:-4350}
MASTER_KEY=bench-master-key

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN_DIR="$ROOT/target/$PROFILE"
RESULTS="$ROOT/bench/results/mcp-$(date -u +%Y%m%dT%H%M%SZ)"
REPRO="BUILD=$BUILD PROFILE=$PROFILE DURATION=$DURATION MAX_CONC=$MAX_CONC RATE=$RATE RATE_CONC=$RATE_CONC bash bench/mcp.sh"

log() { printf '%s\n' "$*" >&2; }
die() { log "mcp.sh: error: $*"; exit 1; }
command -v jq >/dev/null || die "jq is required"
command -v taskset >/dev/null || die "taskset is required"

if [[ "$BUILD" != 0 ]]; then
    flag=()
    [[ "$PROFILE" == release ]] && flag=(--release)
    (cd "$ROOT" && cargo build "${flag[@]}" -p tollgate -p testkit --bins)
fi
OHA=${OHA:-$(command -v oha || echo "$HOME/.cargo/bin/oha")}
[[ -x "$OHA" ]] || { log "==> cargo install oha --locked"; cargo install oha --locked; OHA="$HOME/.cargo/bin/oha"; }

TMP=$(mktemp -d "${TMPDIR:-/tmp}/tollgate-mcp-bench.XXXXXX")
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

cat >"$TMP/tollgate.yaml" <<EOF
server: { listen: "127.0.0.1:$GW_PORT", admin_listen: "127.0.0.1:$ADMIN_PORT" }
store: { url: "sqlite://$TMP/bench.db" }
auth: { master_key: "$MASTER_KEY" }
mcp_servers:
  - { name: m, url: "http://127.0.0.1:$MOCK_PORT/mcp" }
EOF

taskset -c "$LOAD_CORE" "$BIN_DIR/mock-mcp" --http "127.0.0.1:$MOCK_PORT" >"$TMP/mock.log" 2>&1 &
PIDS+=($!)
NO_COLOR=1 TOKIO_WORKER_THREADS=1 taskset -c "$GW_CORE" "$BIN_DIR/tollgate" --log-level warn serve --config "$TMP/tollgate.yaml" >"$TMP/gateway.log" 2>&1 &
PIDS+=($!)
TOKIO_WORKER_THREADS=1 taskset -c "$GW_CORE" "$BIN_DIR/bare-proxy" "127.0.0.1:$PROXY_PORT" "127.0.0.1:$MOCK_PORT" >"$TMP/proxy.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do
    curl -s -o /dev/null "http://127.0.0.1:$GW_PORT/health" && curl -s -o /dev/null "http://127.0.0.1:$MOCK_PORT/mcp" -X DELETE && break
    sleep 0.1
done

INIT='{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"bench","version":"1"}}}'
CALL='{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hello"}}}'
ACCEPT='accept: application/json, text/event-stream'
session() { # url [auth header] -> session id
    curl -s -D - -o /dev/null "$1" -H 'content-type: application/json' -H "$ACCEPT" ${2:+-H "$2"} -d "$INIT" \
        | tr -d '\r' | awk -F': ' 'tolower($1) == "mcp-session-id" { print $2 }'
}
DIRECT_SID=$(session "http://127.0.0.1:$MOCK_PORT/mcp")
GW_SID=$(session "http://127.0.0.1:$GW_PORT/mcp/m" "authorization: Bearer $MASTER_KEY")
[[ -n "$DIRECT_SID" && -n "$GW_SID" ]] || die "no MCP session (mock: '$DIRECT_SID', gateway: '$GW_SID')"

ROWS="$TMP/rows.tsv"
: >"$ROWS"
FAILED=()
run() { # name target(direct|proxy|gw) conc [rate]
    local name=$1 target=$2 conc=$3 rate=${4:-} url args
    args=(--no-tui --output-format json -w -z "$DURATION" -c "$conc" -m POST -T application/json -H "$ACCEPT" -d "$CALL")
    case $target in
        direct) url="http://127.0.0.1:$MOCK_PORT/mcp"; args+=(-H "mcp-session-id: $DIRECT_SID") ;;
        proxy) url="http://127.0.0.1:$PROXY_PORT/mcp"; args+=(-H "mcp-session-id: $DIRECT_SID") ;;
        gw) url="http://127.0.0.1:$GW_PORT/mcp/m"; args+=(-H "mcp-session-id: $GW_SID" -H "authorization: Bearer $MASTER_KEY") ;;
    esac
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

run direct-max direct "$MAX_CONC"
run proxy-max proxy "$MAX_CONC"
run gw-max gw "$MAX_CONC"
run direct-rate direct "$RATE_CONC" "$RATE"
run proxy-rate proxy "$RATE_CONC" "$RATE"
run gw-rate gw "$RATE_CONC" "$RATE"

field() { awk -F'\t' -v n="$1" -v c="$2" '$1 == n { print $c }' "$ROWS"; }
us() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.0f", (a - b) * 1e6 }'; }
{
    echo "MCP tool calls — $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $PROFILE build"
    echo "  $REPRO"
    printf '%-12s %10s %9s %9s %8s %7s\n' phase 'calls/s' 'p50 ms' 'p99 ms' non-2xx errors
    awk -F'\t' '{ printf "%-12s %10.0f %9.3f %9.3f %8d %7d\n", $1, $2, $3 * 1000, $4 * 1000, $5, $6 }' "$ROWS"
    echo "  gateway throughput on one core: $(field gw-max 2 | xargs printf '%.0f') calls/s," \
        "$(awk -v g="$(field gw-max 2)" -v p="$(field proxy-max 2)" 'BEGIN { printf "%.0f%%", 100 * g / p }') of the bare proxy"
    echo "  added over the bare proxy at $RATE calls/s: p50 $(us "$(field gw-rate 3)" "$(field proxy-rate 3)") us," \
        "p99 $(us "$(field gw-rate 4)" "$(field proxy-rate 4)") us"
    echo "  added over a direct call at $RATE calls/s: p50 $(us "$(field gw-rate 3)" "$(field direct-rate 3)") us," \
        "p99 $(us "$(field gw-rate 4)" "$(field direct-rate 4)") us"
} | tee "$RESULTS/summary.txt"
(( ${#FAILED[@]} == 0 )) || die "non-2xx or errors in ${FAILED[*]}"
