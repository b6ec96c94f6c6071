#!/usr/bin/env bash
# A/B throughput of two tollgate binaries, interleaved: A, B, A, B, … on
# the same mock upstream, so drift of a noisy machine hits both alike.
# Each round starts the binary (core 0, one tokio worker), drives it at
# max throughput with oha (core 1, with the mock) for each request body,
# and stops it. Prints req/s per round and the mean per binary.
#
# Usage:   bash bench/ab.sh OLD_TOLLGATE NEW_TOLLGATE [MOCK_UPSTREAM]
# Knobs:   ROUNDS=3 DURATION=8s CONC=64
# Request log off; the master key; bodies: a chat request to an
# OpenAI-compatible provider (pass-through) and to an Anthropic provider
# (translated both ways).
set -euo pipefail

A=${1:?usage: bench/ab.sh OLD_TOLLGATE NEW_TOLLGATE [MOCK_UPSTREAM]}
B=${2:?usage: bench/ab.sh OLD_TOLLGATE NEW_TOLLGATE [MOCK_UPSTREAM]}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MOCK=${3:-$ROOT/target/release/mock-upstream}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-8s}
CONC=${CONC:-64}
OHA=${OHA:-$(command -v oha || echo "$HOME/.cargo/bin/oha")}
KEY=ab-master-key
GW_PORT=4200 ADMIN_PORT=4201 MOCK_PORT=9200

TMP=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$TMP"' EXIT
cat >"$TMP/tollgate.yaml" <<EOF
server: { listen: "127.0.0.1:$GW_PORT", admin_listen: "127.0.0.1:$ADMIN_PORT" }
store: { url: "memory://" }
logging: { enabled: false }
auth: { master_key: "$KEY" }
providers:
  - { name: up, type: openai_compatible, base_url: "http://127.0.0.1:$MOCK_PORT/v1", api_key: sk-ab, models: [{ name: gpt-4o-mini }] }
  - { name: ant, type: anthropic, base_url: "http://127.0.0.1:$MOCK_PORT", api_key: sk-ab, models: [{ name: claude-sonnet-4-5 }] }
EOF
printf '%s' '{"model":"up/gpt-4o-mini","messages":[{"role":"user","content":"hello"}]}' >"$TMP/chat.json"
printf '%s' '{"model":"ant/claude-sonnet-4-5","messages":[{"role":"user","content":"hello"}]}' >"$TMP/ant.json"

MOCK_THREADS=1 taskset -c 1 "$MOCK" "127.0.0.1:$MOCK_PORT" >"$TMP/mock.log" 2>&1 &
sleep 0.5

rps() { # body-file
    taskset -c 1 "$OHA" --no-tui --output-format json --worker-threads 1 -w -z "$DURATION" -c "$CONC" -m POST -T application/json \
        -H "authorization: Bearer $KEY" -D "$1" "http://127.0.0.1:$GW_PORT/v1/chat/completions" |
        jq -r '.summary.requestsPerSec | floor'
}

declare -A sum
for round in $(seq 1 "$ROUNDS"); do
    for side in A B; do
        bin=$A; [[ $side == B ]] && bin=$B
        NO_COLOR=1 TOKIO_WORKER_THREADS=1 taskset -c 0 "$bin" --log-level warn serve --config "$TMP/tollgate.yaml" \
            >"$TMP/gw.log" 2>&1 &
        pid=$!
        for _ in $(seq 1 50); do curl -fs "http://127.0.0.1:$GW_PORT/health" >/dev/null && break; sleep 0.1; done
        taskset -c 1 "$OHA" --no-tui -z 2s -c 8 -m POST -T application/json -H "authorization: Bearer $KEY" \
            -D "$TMP/chat.json" "http://127.0.0.1:$GW_PORT/v1/chat/completions" >/dev/null
        chat=$(rps "$TMP/chat.json")
        ant=$(rps "$TMP/ant.json")
        kill "$pid"; wait "$pid" 2>/dev/null || true
        printf 'round %d %s: chat %6d req/s   anthropic %6d req/s\n' "$round" "$side" "$chat" "$ant"
        sum[$side.chat]=$(( ${sum[$side.chat]:-0} + chat ))
        sum[$side.ant]=$(( ${sum[$side.ant]:-0} + ant ))
    done
done
for side in A B; do
    printf 'mean %s: chat %6d req/s   anthropic %6d req/s\n' "$side" \
        $(( ${sum[$side.chat]} / ROUNDS )) $(( ${sum[$side.ant]} / ROUNDS ))
done
printf 'B/A: chat %s   anthropic %s\n' \
    "$(awk "BEGIN{printf \"%.3f\", ${sum[B.chat]}/${sum[A.chat]}}")" \
    "$(awk "BEGIN{printf \"%.3f\", ${sum[B.ant]}/${sum[A.ant]}}")"
