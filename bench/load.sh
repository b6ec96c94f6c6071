#!/usr/bin/env bash
# Load benchmark for the tollgate data plane.
#
# Starts mock-upstream (core 1), the gateway (core 0, one tokio worker), a
# bare hyper pass-through proxy (core 0, one worker; the baseline a proxy
# cannot beat, with the same network hops as the gateway) and drives them
# with oha (core 1), then prints a results table. Raw oha JSON is
# written to bench/results/<timestamp>/. Exits non-zero if any phase saw a
# non-2xx response or a transport error.
#
# Usage:   bash bench/load.sh
# Quick:   BUILD=0 PROFILE=debug DURATION=3s bash bench/load.sh
# See bench/README.md for every knob.
set -euo pipefail

# ---------------------------------------------------------------- settings --
BUILD=${BUILD:-1}                 # 0 = use existing binaries, do not run cargo
PROFILE=${PROFILE:-release}       # release | debug (selects target/<profile>)
DURATION=${DURATION:-10s}         # length of each measured phase
WARMUP=${WARMUP:-2s}              # unmeasured warm-up before the first phase on each target
MAX_CONC=${MAX_CONC:-64}          # connections for the max-throughput phases
RATE=${RATE:-1000}                # fixed request rate (req/s) for the latency phase
RATE_CONC=${RATE_CONC:-32}        # connections for the latency phase
STREAM_CONC=${STREAM_CONC:-16}    # connections for the streaming phase
DIRECT_MAX=${DIRECT_MAX:-1}       # 1 = also measure max throughput straight against the mock
MOCK_THREADS=${MOCK_THREADS:-1}   # worker threads of mock-upstream
OHA_THREADS=${OHA_THREADS:-1}     # worker threads of oha (it shares one core with the mock)
GW_CORE=${GW_CORE:-0}             # core the gateway is pinned to
LOAD_CORE=${LOAD_CORE:-1}         # core for mock-upstream and oha
GW_PORT=${GW_PORT:-4100}
ADMIN_PORT=${ADMIN_PORT:-4101}
MOCK_PORT=${MOCK_PORT:-9100}
PROXY_PORT=${PROXY_PORT:-4300}
LOGGING=${LOGGING:-on}            # on | off: the request log (SQLite, in the temp dir)
PHASES=${PHASES:-all}             # all | governed: only the phases the targets are judged on
STREAM_WORDS=${STREAM_WORDS:-16}  # words in each streamed answer: 16 -> 20 chunk events (+ usage, [DONE])
MASTER_KEY=bench-master-key
APP_KEY=bench-app-key-0123456789

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN_DIR="$ROOT/target/$PROFILE"
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RESULTS="$ROOT/bench/results/$STAMP"

GW_URL="http://127.0.0.1:$GW_PORT/v1/chat/completions"
DIRECT_URL="http://127.0.0.1:$MOCK_PORT/v1/chat/completions"
PROXY_URL="http://127.0.0.1:$PROXY_PORT/v1/chat/completions"

log() { printf '%s\n' "$*" >&2; }
die() { log "load.sh: error: $*"; exit 1; }

case "$PROFILE" in release|debug) ;; *) die "PROFILE must be release or debug (got '$PROFILE')" ;; esac
command -v jq >/dev/null || die "jq is required (apt-get install jq)"
command -v curl >/dev/null || die "curl is required"
command -v taskset >/dev/null || die "taskset is required (util-linux)"

NPROC=$(nproc)
if (( NPROC < 2 )); then
    log "load.sh: warning: only $NPROC core(s); everything runs on core 0 and the numbers are not comparable"
    GW_CORE=0 LOAD_CORE=0
fi

# The exact invocation, with every effective knob spelled out.
REPRO="PHASES=$PHASES STREAM_WORDS=$STREAM_WORDS LOGGING=$LOGGING BUILD=$BUILD PROFILE=$PROFILE DURATION=$DURATION WARMUP=$WARMUP MAX_CONC=$MAX_CONC RATE=$RATE RATE_CONC=$RATE_CONC STREAM_CONC=$STREAM_CONC DIRECT_MAX=$DIRECT_MAX MOCK_THREADS=$MOCK_THREADS OHA_THREADS=$OHA_THREADS bash bench/load.sh"

# ------------------------------------------------------------- processes ----
TMP=$(mktemp -d "${TMPDIR:-/tmp}/tollgate-bench.XXXXXX")
PIDS=()
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    for pid in "${PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    if [[ -d "$RESULTS" ]]; then
        cp "$TMP"/*.log "$RESULTS"/ 2>/dev/null || true
    fi
    if (( rc != 0 )); then
        for f in "$TMP"/mock.log "$TMP"/gateway.log; do
            [[ -s "$f" ]] || continue
            log "--- last lines of $(basename "$f") ---"
            tail -n 20 "$f" | sed 's/\x1b\[[0-9;]*m//g' >&2
        done
    fi
    rm -rf "$TMP"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_http() { # name pid url
    local name=$1 pid=$2 url=$3
    for _ in $(seq 300); do
        kill -0 "$pid" 2>/dev/null || die "$name exited during startup"
        if [[ $(curl -s -o /dev/null -w '%{http_code}' "$url" || true) == 200 ]]; then return 0; fi
        sleep 0.1
    done
    die "$name not ready after 30s ($url)"
}

# ------------------------------------------------------------------ build ---
if [[ "$BUILD" != 0 ]]; then
    flag=()
    [[ "$PROFILE" == release ]] && flag=(--release)
    log "==> cargo build ${flag[*]} -p tollgate -p testkit"
    (cd "$ROOT" && cargo build "${flag[@]}" -p tollgate -p testkit)
fi
TOLLGATE="$BIN_DIR/tollgate"
MOCK="$BIN_DIR/mock-upstream"
PROXY="$BIN_DIR/bare-proxy"
[[ -x "$PROXY" ]] || die "$PROXY not found (build it, or drop BUILD=0)"
[[ -x "$TOLLGATE" ]] || die "$TOLLGATE not found (build it, or drop BUILD=0)"
[[ -x "$MOCK" ]] || die "$MOCK not found (build it, or drop BUILD=0)"

OHA=${OHA:-$(command -v oha || true)}
[[ -z "$OHA" && -x "$HOME/.cargo/bin/oha" ]] && OHA="$HOME/.cargo/bin/oha"
if [[ -z "$OHA" ]]; then
    log "==> oha not found; cargo install oha --locked"
    cargo install oha --locked
    OHA="$HOME/.cargo/bin/oha"
fi
[[ -x "$OHA" ]] || die "oha not executable: $OHA"

for p in "$GW_PORT" "$ADMIN_PORT" "$MOCK_PORT" "$PROXY_PORT"; do
    port_busy "$p" && die "port $p is already in use (set GW_PORT / ADMIN_PORT / MOCK_PORT)"
done

mkdir -p "$RESULTS"

# ----------------------------------------------------------------- bodies ---
printf '%s' '{"model":"up/gpt-4o-mini","messages":[{"role":"user","content":"hello"}]}' >"$TMP/gw.json"
# Streams: the mock answers "upstream says: <prompt>" one word per event, so
# STREAM_WORDS words make STREAM_WORDS + 4 chunk events (role, the words,
# finish), then usage and [DONE]: the shape of a short real answer.
STREAM_TEXT=$(seq -f 'w%g' -s ' ' 1 "$STREAM_WORDS")
STREAM_EVENTS=$((STREAM_WORDS + 4))
printf '{"model":"up/gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"%s"}]}' "$STREAM_TEXT" >"$TMP/gw-stream.json"
printf '%s' '{"model":"prod/bench","messages":[{"role":"user","content":"hello"}]}' >"$TMP/vm.json"
printf '%s' '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hello"}]}' >"$TMP/direct.json"
# The gateway asks upstream for usage on every stream; so does this body,
# so the mock sends the proxy the same bytes it sends the gateway.
printf '{"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"%s"}]}' "$STREAM_TEXT" >"$TMP/direct-stream.json"
# Translation phases (t-*): the same chat request to an Anthropic and a
# Bedrock provider (translated both ways), an Anthropic request on
# /v1/messages to the OpenAI-compatible provider, and Anthropic's own API
# on the mock directly, for the cost of translation alone.
printf '%s' '{"model":"ant/claude-sonnet-4-5","messages":[{"role":"user","content":"hello"}]}' >"$TMP/gw-ant.json"
printf '%s' '{"model":"brk/anthropic.claude-3-5-haiku-20241022-v1:0","messages":[{"role":"user","content":"hello"}]}' >"$TMP/gw-brk.json"
printf '%s' '{"model":"up/gpt-4o-mini","max_tokens":64,"messages":[{"role":"user","content":"hello"}]}' >"$TMP/gw-msg.json"
printf '%s' '{"model":"claude-sonnet-4-5","max_tokens":4096,"messages":[{"role":"user","content":"hello"}]}' >"$TMP/direct-ant.json"

# Guardrail phases (s-*): a ~700-byte prompt with an email in it, an
# input guardrail that redacts PII (mutate) and one that blocks secrets,
# and an output guardrail that masks secrets; added per request by header.
GUARD_TEXT="Please summarise the incident review for the billing migration. Latency stayed under the objective for 99.9% of requests; two incidents were opened, one for a retry policy and one for an expired staging certificate. Post-mortems are linked in the ticket. Send questions to jane.doe@example.com before Friday. The team also wants a short list of follow-up actions, owners and due dates, and a note on whether the error budget for the month is at risk given the remaining scheduled maintenance windows."
printf '{"model":"up/gpt-4o-mini","messages":[{"role":"user","content":"%s"}]}' "$GUARD_TEXT" >"$TMP/guard.json"
printf '{"model":"up/gpt-4o-mini","messages":[{"role":"user","content":"%s"}]}' "${GUARD_TEXT/jane.doe@example.com/jane}" >"$TMP/guard-plain.json"
printf '{"model":"up/gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"%s"}]}' "$GUARD_TEXT" >"$TMP/guard-stream.json"
printf '{"model":"up/gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"%s"}]}' "${GUARD_TEXT/jane.doe@example.com/jane}" >"$TMP/guard-plain-stream.json"
GUARD_HEADER='x-tollgate-guardrails: {"llm_input":["pii","secrets"],"llm_output":["secrets-out"]}'

cat >"$TMP/tollgate.yaml" <<EOF
server: { listen: "127.0.0.1:$GW_PORT", admin_listen: "127.0.0.1:$ADMIN_PORT" }
store: { url: "sqlite://$TMP/bench.db" }
logging: { enabled: $([[ "$LOGGING" == off ]] && echo false || echo true) }
auth:
  master_key: "$MASTER_KEY"
  keys:
    - { name: bench-app, key: "$APP_KEY", models: ["up/*", "prod/*"], metadata: { team: bench } }
# Governance phase (g-*): three rate-limit rules and two budgets that match
# every request of the app key, with limits far above the load.
rate_limits:
  - { id: per-key-rpm, when: { subjects: ["key:bench-app"] }, limit_by: [subject], unit: requests_per_minute, limit: 100000000 }
  - { id: per-project-tpm, when: { subjects: ["key:bench-app"] }, limit_by: [metadata.project_id], unit: tokens_per_minute, limit: 100000000000 }
  - { id: per-team-rpd, when: { subjects: ["key:bench-app"] }, limit_by: [team], unit: requests_per_day, limit: 100000000000 }
budgets:
  - { id: team-daily, when: { subjects: ["key:bench-app"] }, limit_by: [team], unit: cost_per_day, limit: 1000000.0 }
  - { id: project-monthly, when: { subjects: ["key:bench-app"] }, limit_by: [metadata.project_id], unit: tokens_per_month, limit: 100000000000 }
metadata:
  required: [project_id]
guardrails:
  definitions:
    - { name: pii, type: pii, action: mutate }
    - { name: secrets, type: secrets }
    - { name: secrets-out, type: secrets, action: mutate }
providers:
  - name: up
    type: openai_compatible
    base_url: "http://127.0.0.1:$MOCK_PORT/v1"
    api_key: "sk-bench"
    models: [{ name: gpt-4o-mini }]
  - name: up2
    type: openai_compatible
    base_url: "http://127.0.0.1:$MOCK_PORT/v1"
    api_key: "sk-bench"
    models: [{ name: gpt-4o-mini }]
  - name: up3
    type: openai_compatible
    base_url: "http://127.0.0.1:$MOCK_PORT/v1"
    api_key: "sk-bench"
    models: [{ name: gpt-4o-mini }]
  - name: ant
    type: anthropic
    base_url: "http://127.0.0.1:$MOCK_PORT"
    api_key: "sk-ant-bench"
    models: [{ name: claude-sonnet-4-5 }]
  - name: brk
    type: bedrock
    base_url: "http://127.0.0.1:$MOCK_PORT"
    region: us-east-1
    access_key_id: AKIDMOCKTOLLGATE
    secret_access_key: mock/secret/key
    models: [{ name: "anthropic.claude-3-5-haiku-20241022-v1:0" }]
# Three targets with retries and fallbacks configured; the first answers.
virtual_models:
  - name: prod/bench
    strategy: priority
    targets:
      - { model: up/gpt-4o-mini, retry: { attempts: 2, backoff: 50ms }, fallback_on: [429, 500, 502, 503, 504, timeout, connect] }
      - { model: up2/gpt-4o-mini }
      - { model: up3/gpt-4o-mini }
EOF

# ------------------------------------------------------------------ start ---
log "==> mock-upstream on 127.0.0.1:$MOCK_PORT (core $LOAD_CORE, $MOCK_THREADS thread(s))"
MOCK_THREADS=$MOCK_THREADS taskset -c "$LOAD_CORE" "$MOCK" "127.0.0.1:$MOCK_PORT" >"$TMP/mock.log" 2>&1 &
MOCK_PID=$!
PIDS+=("$MOCK_PID")
wait_http mock-upstream "$MOCK_PID" "http://127.0.0.1:$MOCK_PORT/v1/models"

log "==> tollgate on 127.0.0.1:$GW_PORT (core $GW_CORE, 1 worker)"
NO_COLOR=1 TOKIO_WORKER_THREADS=1 taskset -c "$GW_CORE" "$TOLLGATE" --log-level warn serve --config "$TMP/tollgate.yaml" >"$TMP/gateway.log" 2>&1 &
GW_PID=$!
PIDS+=("$GW_PID")
wait_http tollgate "$GW_PID" "http://127.0.0.1:$GW_PORT/ready"

log "==> bare-proxy on 127.0.0.1:$PROXY_PORT (core $GW_CORE, 1 worker)"
TOKIO_WORKER_THREADS=1 taskset -c "$GW_CORE" "$PROXY" "127.0.0.1:$PROXY_PORT" "127.0.0.1:$MOCK_PORT" >"$TMP/proxy.log" 2>&1 &
PROXY_PID=$!
PIDS+=("$PROXY_PID")
wait_http bare-proxy "$PROXY_PID" "http://127.0.0.1:$PROXY_PORT/v1/models"

# One request of each kind before any load: a wrong key, model or path
# fails here with the response, instead of as a table of errors.
preflight() { # name url body-file stream(0|1) [auth]
    local name=$1 url=$2 body=$3 stream=$4 auth=${5:-} code
    local args=(-s -o "$TMP/preflight.out" -w '%{http_code}' -X POST -H 'content-type: application/json' --data-binary "@$body")
    [[ -n "$auth" ]] && args+=(-H "authorization: Bearer $auth" -H 'x-tollgate-metadata: {"project_id":"bench"}')
    code=$(curl "${args[@]}" "$url" || true)
    if [[ "$code" != 200 ]]; then
        log "preflight $name: HTTP $code"; head -c 600 "$TMP/preflight.out" >&2; log ""
        die "preflight $name failed"
    fi
    if [[ "$stream" == 1 ]]; then
        grep -q '^data: \[DONE\]' "$TMP/preflight.out" || { head -c 600 "$TMP/preflight.out" >&2; die "preflight $name: stream did not end with [DONE]"; }
    else
        jq -e '.choices[0].message' "$TMP/preflight.out" >/dev/null 2>&1 || { head -c 600 "$TMP/preflight.out" >&2; die "preflight $name: no choices in response"; }
    fi
}
preflight gateway "$GW_URL" "$TMP/gw.json" 0 "$MASTER_KEY"
preflight gateway-stream "$GW_URL" "$TMP/gw-stream.json" 1 "$MASTER_KEY"
preflight virtual-model "$GW_URL" "$TMP/vm.json" 0 "$MASTER_KEY"
preflight governed "$GW_URL" "$TMP/gw.json" 0 "$APP_KEY"
preflight direct "$DIRECT_URL" "$TMP/direct.json" 0
preflight direct-stream "$DIRECT_URL" "$TMP/direct-stream.json" 1
preflight proxy "$PROXY_URL" "$TMP/direct.json" 0
preflight anthropic "$GW_URL" "$TMP/gw-ant.json" 0 "$MASTER_KEY"
preflight bedrock "$GW_URL" "$TMP/gw-brk.json" 0 "$MASTER_KEY"
code=$(curl -s -o "$TMP/preflight.out" -w '%{http_code}' -X POST -H 'content-type: application/json' \
    -H "x-api-key: $MASTER_KEY" -H 'x-tollgate-metadata: {"project_id":"bench"}' --data-binary "@$TMP/gw-msg.json" \
    "http://127.0.0.1:$GW_PORT/v1/messages" || true)
[[ "$code" == 200 ]] && jq -e '.content[0].text' "$TMP/preflight.out" >/dev/null || { head -c 600 "$TMP/preflight.out" >&2; die "preflight messages: HTTP $code"; }
code=$(curl -s -o "$TMP/preflight.out" -w '%{http_code}' -X POST -H 'content-type: application/json' \
    -H 'x-api-key: k' -H 'anthropic-version: 2023-06-01' --data-binary "@$TMP/direct-ant.json" \
    "http://127.0.0.1:$MOCK_PORT/v1/messages" || true)
[[ "$code" == 200 ]] || { head -c 600 "$TMP/preflight.out" >&2; die "preflight direct-anthropic: HTTP $code"; }

# ----------------------------------------------------------------- phases ---
FAILED=()
ROWS="$TMP/rows.tsv"
: >"$ROWS"
: >"$RESULTS/commands.txt"

shell_quote() { # quote for pasting into a shell, leaving plain words alone
    if [[ "$1" =~ ^[A-Za-z0-9_./:=,+-]+$ ]]; then printf '%s' "$1"; else printf "'%s'" "${1//\'/\'\\\'\'}"; fi
}

# run_oha NAME TARGET(gw|direct) BODY-FILE DURATION CONC [RATE]
# Writes $RESULTS/NAME.json and appends a row to $ROWS.
run_oha() {
    local name=$1 target=$2 body=$3 dur=$4 conc=$5 rate=${6:-}
    local url=$DIRECT_URL
    [[ "$target" == proxy ]] && url=$PROXY_URL
    local args=(--no-tui --output-format json --worker-threads "$OHA_THREADS" -w -z "$dur" -c "$conc"
                -m POST -T application/json -d "$(cat "$body")")
    if [[ "$target" == gw ]]; then
        url=$GW_URL
        args+=(-H "authorization: Bearer $MASTER_KEY" -H 'x-tollgate-metadata: {"project_id":"bench"}')
    fi
    if [[ "$target" == gov ]]; then
        url=$GW_URL
        args+=(-H "authorization: Bearer $APP_KEY" -H 'x-tollgate-metadata: {"project_id":"bench"}')
    fi
    if [[ "$target" == guard ]]; then
        url=$GW_URL
        args+=(-H "authorization: Bearer $MASTER_KEY" -H 'x-tollgate-metadata: {"project_id":"bench"}' -H "$GUARD_HEADER")
    fi
    if [[ "$target" == msg ]]; then
        url="http://127.0.0.1:$GW_PORT/v1/messages"
        args+=(-H "x-api-key: $MASTER_KEY" -H 'x-tollgate-metadata: {"project_id":"bench"}')
    fi
    if [[ "$target" == dant ]]; then
        url="http://127.0.0.1:$MOCK_PORT/v1/messages"
        args+=(-H 'x-api-key: k' -H 'anthropic-version: 2023-06-01')
    fi
    [[ -n "$rate" ]] && args+=(-q "$rate" --latency-correction)
    local cmd="taskset -c $LOAD_CORE oha" a
    for a in "${args[@]}" "$url"; do cmd+=" $(shell_quote "$a")"; done
    printf '%s: %s\n' "$name" "$cmd" >>"$RESULTS/commands.txt"
    log "==> $name: -c $conc${rate:+ -q $rate} -z $dur -> $target"
    taskset -c "$LOAD_CORE" "$OHA" "${args[@]}" "$url" >"$RESULTS/$name.json"

    # rps, p50, p99 (seconds), ok (2xx), non-2xx, transport errors, status breakdown, error breakdown
    local row
    row=$(jq -r '
        def n: if . == null then "nan" else tostring end;
        [ (.summary.requestsPerSec | n),
          (.latencyPercentiles.p50 | n),
          (.latencyPercentiles.p99 | n),
          ([.statusCodeDistribution // {} | to_entries[] | select(.key | test("^2")) | .value] | add // 0),
          ([.statusCodeDistribution // {} | to_entries[] | select(.key | test("^2") | not) | .value] | add // 0),
          ([.errorDistribution // {} | to_entries[] | .value] | add // 0),
          ([.statusCodeDistribution // {} | to_entries[] | select(.key | test("^2") | not) | "\(.key)x\(.value)"] | join(",")),
          ([.errorDistribution // {} | to_entries[] | "\(.key) x\(.value)"] | join("; "))
        ] | @tsv' "$RESULTS/$name.json")
    local rps p50 p99 ok non2xx errs codes errtext
    IFS=$'\t' read -r rps p50 p99 ok non2xx errs codes errtext <<<"$row"
    if (( non2xx + errs > 0 )); then
        FAILED+=("$name")
        log "    !! $name: $non2xx non-2xx [${codes}] and $errs transport errors [${errtext}]"
    fi
    kill -0 "$MOCK_PID" 2>/dev/null || die "mock-upstream died during $name"
    kill -0 "$GW_PID" 2>/dev/null || die "tollgate died during $name"
    if [[ -n "$rate" ]] && awk -v r="$rps" -v q="$rate" 'BEGIN { exit !(r < 0.95 * q) }'; then
        log "    !! $name: achieved $(printf '%.0f' "$rps") req/s, below the requested $rate; the target cannot keep up"
    fi
    if [[ "$name" != warmup-* ]]; then
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$conc" "${rate:--}" "$rps" "$p50" "$p99" "$ok" "$non2xx" "$errs" >>"$ROWS"
    fi
}

run_oha warmup-gw gw "$TMP/gw.json" "$WARMUP" 8
run_oha warmup-direct direct "$TMP/direct.json" "$WARMUP" 8
run_oha warmup-proxy proxy "$TMP/direct.json" "$WARMUP" 8

# The configuration users run — a virtual key, the metadata contract, three
# rate limits, two budgets and the request log — beside the bare proxy,
# interleaved so that the machine's drift falls on both alike.
run_oha g-gov-max gov "$TMP/gw.json" "$DURATION" "$MAX_CONC"
run_oha e-proxy-max proxy "$TMP/direct.json" "$DURATION" "$MAX_CONC"
run_oha g-gov-rate gov "$TMP/gw.json" "$DURATION" "$RATE_CONC" "$RATE"
run_oha e-proxy-rate proxy "$TMP/direct.json" "$DURATION" "$RATE_CONC" "$RATE"
run_oha g-gov-rate200 gov "$TMP/gw.json" "$DURATION" "$RATE_CONC" 200
run_oha e-proxy-rate200 proxy "$TMP/direct.json" "$DURATION" "$RATE_CONC" 200
run_oha c-gov-stream gov "$TMP/gw-stream.json" "$DURATION" "$STREAM_CONC"
run_oha c-proxy-stream proxy "$TMP/direct-stream.json" "$DURATION" "$STREAM_CONC"
if [[ "$PHASES" == all ]]; then
    run_oha a-gw-max gw "$TMP/gw.json" "$DURATION" "$MAX_CONC"
    run_oha b-gw-rate gw "$TMP/gw.json" "$DURATION" "$RATE_CONC" "$RATE"
    run_oha b-direct-rate direct "$TMP/direct.json" "$DURATION" "$RATE_CONC" "$RATE"
    run_oha f-vm-max gw "$TMP/vm.json" "$DURATION" "$MAX_CONC"
    run_oha f-vm-rate gw "$TMP/vm.json" "$DURATION" "$RATE_CONC" "$RATE"
    run_oha c-gw-stream gw "$TMP/gw-stream.json" "$DURATION" "$STREAM_CONC"
    run_oha c-direct-stream direct "$TMP/direct-stream.json" "$DURATION" "$STREAM_CONC"
    if [[ "$DIRECT_MAX" != 0 ]]; then
        run_oha d-direct-max direct "$TMP/direct.json" "$DURATION" "$MAX_CONC"
    fi
    run_oha warmup-ant gw "$TMP/gw-ant.json" "$WARMUP" 8
    run_oha t-ant-max gw "$TMP/gw-ant.json" "$DURATION" "$MAX_CONC"
    run_oha t-ant-rate gw "$TMP/gw-ant.json" "$DURATION" "$RATE_CONC" "$RATE"
    run_oha t-direct-ant-rate dant "$TMP/direct-ant.json" "$DURATION" "$RATE_CONC" "$RATE"
    run_oha t-brk-max gw "$TMP/gw-brk.json" "$DURATION" "$MAX_CONC"
    run_oha t-brk-rate gw "$TMP/gw-brk.json" "$DURATION" "$RATE_CONC" "$RATE"
    run_oha t-msg-max msg "$TMP/gw-msg.json" "$DURATION" "$MAX_CONC"
    run_oha t-msg-rate msg "$TMP/gw-msg.json" "$DURATION" "$RATE_CONC" "$RATE"
    run_oha s-plain-max gw "$TMP/guard-plain.json" "$DURATION" "$MAX_CONC"
    run_oha s-plain-rate gw "$TMP/guard-plain.json" "$DURATION" "$RATE_CONC" "$RATE"
    run_oha s-guard-max guard "$TMP/guard.json" "$DURATION" "$MAX_CONC"
    run_oha s-guard-rate guard "$TMP/guard.json" "$DURATION" "$RATE_CONC" "$RATE"
    run_oha s-plain-stream gw "$TMP/guard-plain-stream.json" "$DURATION" "$STREAM_CONC"
    run_oha s-guard-stream guard "$TMP/guard-stream.json" "$DURATION" "$STREAM_CONC"
fi

# ----------------------------------------------------------------- report ---
# The gateway's memory after the load (64 connections at full rate): now
# and at its peak.
GW_RSS=$(awk '/^VmRSS/ { print $2 }' "/proc/$GW_PID/status" 2>/dev/null || echo '?')
GW_HWM=$(awk '/^VmHWM/ { print $2 }' "/proc/$GW_PID/status" 2>/dev/null || echo '?')
field() { awk -F'\t' -v n="$1" -v c="$2" '$1 == n { print $c }' "$ROWS"; }
overhead_us() { awk -v g="$1" -v d="$2" 'BEGIN { if (g == "nan" || d == "nan") print "-"; else printf "%+.0f", (g - d) * 1e6 }'; }

CPU=$(grep -m1 -E '^(model name|Hardware|Processor)' /proc/cpuinfo 2>/dev/null | cut -d: -f2- | sed 's/^ *//' || true)
[[ -n "$CPU" ]] || CPU=$(lscpu 2>/dev/null | awk -F: '/Model name/ { sub(/^ +/, "", $2); print $2; exit }' || true)
GIT_REV=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
[[ -n "$(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null)" ]] && GIT_REV="$GIT_REV (dirty)"
TG_VERSION=$("$TOLLGATE" --version 2>/dev/null || echo unknown)
OHA_VERSION=$("$OHA" --version 2>/dev/null || echo unknown)

{
    echo
    echo "tollgate load benchmark"
    echo "  date:     $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
    echo "  machine:  $NPROC cores, ${CPU:-unknown CPU}, $(uname -sr)"
    echo "  build:    $TG_VERSION, $PROFILE, commit $GIT_REV"
    echo "  load:     $OHA_VERSION ($OHA_THREADS thread(s)) on core $LOAD_CORE; mock-upstream ($MOCK_THREADS thread(s)) on core $LOAD_CORE; gateway (1 worker) on core $GW_CORE"
    echo "  phases:   $DURATION each, after a $WARMUP warm-up per target"
    echo "  memory:   gateway RSS $GW_RSS KiB after the phases, peak $GW_HWM KiB (under $MAX_CONC connections at full rate)"
    echo
    printf '%-18s %5s %6s %10s %10s %10s %9s %8s %7s %9s\n' phase conns rate 'req/s' 'p50 ms' 'p99 ms' ok non-2xx errors success
    printf '%-18s %5s %6s %10s %10s %10s %9s %8s %7s %9s\n' ------------------ ----- ------ ---------- ---------- ---------- --------- -------- ------- ---------
    while IFS=$'\t' read -r name conc rate rps p50 p99 ok non2xx errs; do
        awk -v name="$name" -v conc="$conc" -v rate="$rate" -v rps="$rps" -v p50="$p50" -v p99="$p99" \
            -v ok="$ok" -v bad="$non2xx" -v errs="$errs" 'BEGIN {
            tot = ok + bad + errs
            succ = tot > 0 ? sprintf("%.2f%%", 100 * ok / tot) : "-"
            f50 = (p50 == "nan") ? "-" : sprintf("%.3f", p50 * 1000)
            f99 = (p99 == "nan") ? "-" : sprintf("%.3f", p99 * 1000)
            printf "%-18s %5s %6s %10.0f %10s %10s %9d %8d %7d %9s\n", name, conc, rate, rps, f50, f99, ok, bad, errs, succ
        }'
    done <"$ROWS"
    echo
    ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b == 0) print "-"; else printf "%.0f%%", 100 * a / b }'; }
    echo "the configuration users run (virtual key, metadata, 3 rate limits, 2 budgets, request log $LOGGING) vs the bare proxy:"
    echo "  max throughput: $(ratio "$(field g-gov-max 4)" "$(field e-proxy-max 4)") of the proxy (target >= 60%)"
    echo "  added at 200 req/s: p50 $(overhead_us "$(field g-gov-rate200 5)" "$(field e-proxy-rate200 5)") us (target <= +100), p99 $(overhead_us "$(field g-gov-rate200 6)" "$(field e-proxy-rate200 6)") us (target <= +500)"
    echo "  added at $RATE req/s: p50 $(overhead_us "$(field g-gov-rate 5)" "$(field e-proxy-rate 5)") us (target <= +100), p99 $(overhead_us "$(field g-gov-rate 6)" "$(field e-proxy-rate 6)") us (target <= +500)"
    echo "  $STREAM_EVENTS-event streams: $(ratio "$(field c-gov-stream 4)" "$(field c-proxy-stream 4)") of the proxy's stream rate (target >= 60%)"
    if [[ "$PHASES" == all ]]; then
    echo "gateway overhead at $RATE req/s (gateway - direct):"
    echo "  p50: $(overhead_us "$(field b-gw-rate 5)" "$(field b-direct-rate 5)") us"
    echo "  p99: $(overhead_us "$(field b-gw-rate 6)" "$(field b-direct-rate 6)") us"
    echo "gateway vs a bare hyper pass-through proxy on the same core (same network hops):"
    echo "  throughput: $(awk -v g="$(field a-gw-max 4)" -v p="$(field e-proxy-max 4)" 'BEGIN { printf "%.0f%%", 100 * g / p }') of the bare proxy"
    echo "  overhead at $RATE req/s, p50: $(overhead_us "$(field b-gw-rate 5)" "$(field e-proxy-rate 5)") us, p99: $(overhead_us "$(field b-gw-rate 6)" "$(field e-proxy-rate 6)") us"
    echo "with a static key, metadata, three rate-limit rules and two budgets on (g-*) vs master key, no rules:"
    echo "  throughput: $(awk -v v="$(field g-gov-max 4)" -v g="$(field a-gw-max 4)" 'BEGIN { printf "%.0f%%", 100 * v / g }') of the plain path"
    echo "  added at $RATE req/s, p50: $(overhead_us "$(field g-gov-rate 5)" "$(field b-gw-rate 5)") us, p99: $(overhead_us "$(field g-gov-rate 6)" "$(field b-gw-rate 6)") us"
    echo "through a three-target virtual model (prod/bench) vs the plain provider model:"
    echo "  throughput: $(awk -v v="$(field f-vm-max 4)" -v g="$(field a-gw-max 4)" 'BEGIN { printf "%.0f%%", 100 * v / g }') of the plain model"
    echo "  added at $RATE req/s, p50: $(overhead_us "$(field f-vm-rate 5)" "$(field b-gw-rate 5)") us, p99: $(overhead_us "$(field f-vm-rate 6)" "$(field b-gw-rate 6)") us"
    echo "translation (t-*): OpenAI chat to an Anthropic provider, gateway - Anthropic mock direct at $RATE req/s:"
    echo "  p50: $(overhead_us "$(field t-ant-rate 5)" "$(field t-direct-ant-rate 5)") us, p99: $(overhead_us "$(field t-ant-rate 6)" "$(field t-direct-ant-rate 6)") us"
    echo "  throughput: $(awk -v v="$(field t-ant-max 4)" -v g="$(field a-gw-max 4)" 'BEGIN { printf "%.0f%%", 100 * v / g }') of the OpenAI pass-through path"
    echo "  to Bedrock (SigV4 signing included): $(awk -v v="$(field t-brk-max 4)" -v g="$(field a-gw-max 4)" 'BEGIN { printf "%.0f%%", 100 * v / g }') of the pass-through path; at $RATE req/s p50 $(overhead_us "$(field t-brk-rate 5)" "$(field b-gw-rate 5)") us, p99 $(overhead_us "$(field t-brk-rate 6)" "$(field b-gw-rate 6)") us over the pass-through path"
    echo "  /v1/messages to the OpenAI-compatible provider vs /v1/chat/completions there, at $RATE req/s:"
    echo "  p50: $(overhead_us "$(field t-msg-rate 5)" "$(field b-gw-rate 5)") us, p99: $(overhead_us "$(field t-msg-rate 6)" "$(field b-gw-rate 6)") us; throughput $(awk -v v="$(field t-msg-max 4)" -v g="$(field a-gw-max 4)" 'BEGIN { printf "%.0f%%", 100 * v / g }') of it"
    echo "guardrails (s-*): pii (mutate) + secrets on input, secrets (mutate) on output, ~700-byte prompt, vs the same prompt without:"
    echo "  throughput: $(awk -v v="$(field s-guard-max 4)" -v g="$(field s-plain-max 4)" 'BEGIN { printf "%.0f%%", 100 * v / g }') of the unguarded path"
    echo "  added at $RATE req/s, p50: $(overhead_us "$(field s-guard-rate 5)" "$(field s-plain-rate 5)") us, p99: $(overhead_us "$(field s-guard-rate 6)" "$(field s-plain-rate 6)") us"
    echo "  streamed with the output scan: p50 $(overhead_us "$(field s-guard-stream 5)" "$(field s-plain-stream 5)") us over the same stream unguarded"
    echo "streaming, gateway - direct (time to full stream, closed loop at -c $STREAM_CONC, includes queueing):"
    echo "  p50: $(overhead_us "$(field c-gw-stream 5)" "$(field c-direct-stream 5)") us"
    echo "  p99: $(overhead_us "$(field c-gw-stream 6)" "$(field c-direct-stream 6)") us"
    fi
    echo
    echo "command:"
    echo "  $REPRO"
    echo "raw results: ${RESULTS#"$ROOT"/}/"
} | tee "$RESULTS/summary.txt"

if (( ${#FAILED[@]} > 0 )); then
    log ""
    log "load.sh: FAILED: errors in ${FAILED[*]} (see ${RESULTS#"$ROOT"/}/<phase>.json and gateway.log)"
    exit 1
fi
