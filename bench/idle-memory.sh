#!/usr/bin/env bash
# Memory of an idle gateway and of many idle streams.
#
# 1. `tollgate serve` on its embedded defaults (SQLite, the built-in mock
#    provider): RSS when idle.
# 2. A gateway whose built-in mock model streams one event a minute, with
#    STREAMS streaming requests open, each having received its first event:
#    (RSS with the streams - RSS before) / STREAMS.
# 3. The same through a real upstream connection: the test kit's
#    mock-upstream sends each stream one event and then stays silent
#    (MOCK_STALL_AFTER), the gateway (virtual key, metadata, three rate
#    limits, two budgets, request log) relays STREAMS of them, and so does
#    the bare pass-through proxy, one after the other: the proxy's figure is
#    what a stream costs any hyper proxy (two sockets, two connections'
#    buffers), the difference is the gateway's own.
#
# Usage:   bash bench/idle-memory.sh             (release binary; builds it)
#          BUILD=0 STREAMS=2000 bash bench/idle-memory.sh
set -euo pipefail
BUILD=${BUILD:-1}
PROFILE=${PROFILE:-release}
STREAMS=${STREAMS:-10000}
PORT=${PORT:-4600}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN="$ROOT/target/$PROFILE/tollgate"
[[ $BUILD == 1 ]] && (cd "$ROOT" && cargo build --release -p tollgate -p testkit)
# Each open stream is a socket on both ends.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
WORK=$(mktemp -d)
# Gateways run in subshells: their command lines name $WORK, so they are found by it.
trap 'kill $(jobs -p) 2>/dev/null || true; pkill -f "$WORK/" 2>/dev/null || true; rm -rf "$WORK"' EXIT

rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
wait_ready() { for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$1/ready" >/dev/null && return 0; sleep 0.1; done; return 1; }

# open_streams PORT PATH BODY AUTH-HEADER: opens STREAMS streams, waits until
# each has its first event, then prints nothing and keeps them open (the
# caller kills it).
open_streams() {
python3 - "$1" "$STREAMS" "$2" "$3" "$4" <<'PY' &
import asyncio, sys
port, n, path, body, auth = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4].encode(), sys.argv[5]
auth = auth.replace("\\r\\n", "\r\n")  # several headers arrive joined by a literal \r\n
req = (b"POST %s HTTP/1.1\r\nhost: x\r\n%s\r\n"
       b"content-type: application/json\r\ncontent-length: %d\r\n\r\n" % (path.encode(), auth.encode(), len(body))) + body
async def one(ready):
    r, w = await asyncio.open_connection("127.0.0.1", port)
    w.write(req)
    await w.drain()
    buf = b""
    while b"data:" not in buf:
        chunk = await r.read(4096)
        if not chunk:
            raise SystemExit("a stream closed early: " + buf[:300].decode(errors="replace"))
        buf += chunk
    ready.append(1)
    await asyncio.sleep(3600)
async def main():
    ready = []
    tasks = []
    for i in range(n):
        tasks.append(asyncio.create_task(one(ready)))
        if i % 500 == 499:
            await asyncio.sleep(0.2)
    while len(ready) < n:
        await asyncio.sleep(0.2)
    open("/dev/shm/tollgate-streams-ready", "w").write(str(len(ready)))
    await asyncio.sleep(3600)
asyncio.run(main())
PY
CLIENT=$!
for _ in $(seq 1 600); do [[ -f /dev/shm/tollgate-streams-ready ]] && break; sleep 0.5; done
[[ -f /dev/shm/tollgate-streams-ready ]] || { echo "the streams did not all open" >&2; exit 1; }
sleep 2
}
close_streams() { kill "$CLIENT" 2>/dev/null || true; wait "$CLIENT" 2>/dev/null || true; rm -f /dev/shm/tollgate-streams-ready; sleep 1; }


# 1. Idle, on the embedded defaults.
(cd "$WORK" && TOLLGATE_MASTER_KEY=bench-master-key-0123 "$BIN" serve --listen "127.0.0.1:$PORT" --admin-listen "127.0.0.1:$((PORT + 1))" >"$WORK/idle.log" 2>&1) &
wait_ready "$PORT"
sleep 2
PID=$(pgrep -f "listen 127.0.0.1:$PORT" | head -1)
IDLE=$(rss_kb "$PID")
kill "$PID"; wait "$PID" 2>/dev/null || true

# 2. STREAMS open streams, each idle after its first event.
cat >"$WORK/streams.yaml" <<YAML
server: { listen: "127.0.0.1:$PORT", admin_listen: "127.0.0.1:$((PORT + 1))", max_concurrent_requests: 0 }
store: { url: "sqlite://$WORK/t.db" }
auth: { master_key: bench-master-key-0123 }
providers:
  - { name: slow, type: mock, mock: { chunk_delay: 60s }, models: [{ name: drip }] }
YAML
(cd "$WORK" && "$BIN" serve --config "$WORK/streams.yaml" >"$WORK/streams.log" 2>&1) &
wait_ready "$PORT"
sleep 1
PID=$(pgrep -f "config $WORK/streams.yaml" | head -1)
BASE=$(rss_kb "$PID")
rm -f /dev/shm/tollgate-streams-ready
open_streams "$PORT" /v1/chat/completions '{"model":"slow/drip","stream":true,"messages":[{"role":"user","content":"hello there"}]}' "authorization: Bearer bench-master-key-0123"
LOADED=$(rss_kb "$PID")
close_streams
kill "$PID"; wait "$PID" 2>/dev/null || true
PER=$(( (LOADED - BASE) * 1024 / STREAMS ))

# 3. Through a real upstream connection: the gateway, then the bare proxy.
# Each relayed stream holds two sockets in the relaying process.
UP_STREAMS=$(( STREAMS < ($(ulimit -n) - 500) / 2 ? STREAMS : ($(ulimit -n) - 500) / 2 ))
MPORT=$((PORT + 2)) XPORT=$((PORT + 3))
MOCK_STALL_AFTER=1 "$ROOT/target/$PROFILE/mock-upstream" "127.0.0.1:$MPORT" >"$WORK/mock.log" 2>&1 &
MOCK=$!
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$MPORT/v1/models" >/dev/null && break; sleep 0.1; done
cat >"$WORK/upstream.yaml" <<YAML
server: { listen: "127.0.0.1:$PORT", admin_listen: "127.0.0.1:$((PORT + 1))", max_concurrent_requests: 0 }
store: { url: "sqlite://$WORK/u.db" }
auth:
  master_key: bench-master-key-0123
  keys: [{ name: app, key: bench-app-key-0123456789, models: ["up/*"], metadata: { team: bench } }]
metadata: { required: [project_id] }
rate_limits:
  - { id: rpm, when: { subjects: ["key:app"] }, limit_by: [subject], unit: requests_per_minute, limit: 100000000 }
  - { id: tpm, when: { subjects: ["key:app"] }, limit_by: [metadata.project_id], unit: tokens_per_minute, limit: 100000000000 }
  - { id: rpd, when: { subjects: ["key:app"] }, limit_by: [team], unit: requests_per_day, limit: 100000000000 }
budgets:
  - { id: daily, when: { subjects: ["key:app"] }, limit_by: [team], unit: cost_per_day, limit: 1000000.0 }
  - { id: monthly, when: { subjects: ["key:app"] }, limit_by: [metadata.project_id], unit: tokens_per_month, limit: 100000000000 }
providers:
  - { name: up, type: openai_compatible, base_url: "http://127.0.0.1:$MPORT/v1", api_key: sk-bench, models: [{ name: gpt-4o-mini }] }
YAML
(cd "$WORK" && "$BIN" serve --config "$WORK/upstream.yaml" >"$WORK/upstream.log" 2>&1) &
wait_ready "$PORT"
sleep 1
PID=$(pgrep -f "config $WORK/upstream.yaml" | head -1)
GW_BASE=$(rss_kb "$PID")
STREAMS=$UP_STREAMS open_streams "$PORT" /v1/chat/completions '{"model":"up/gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"hello there"}]}' \
    "authorization: Bearer bench-app-key-0123456789\r\nx-tollgate-metadata: {\"project_id\":\"p1\"}"
GW_LOADED=$(rss_kb "$PID")
close_streams
kill "$PID"; wait "$PID" 2>/dev/null || true
# The gateway opts out of transparent huge pages at start (see
# docs/config.md); the proxy is started the same way (prctl 41 =
# PR_SET_THP_DISABLE, kept across exec) so both count memory alike.
python3 -c 'import ctypes, os, sys; ctypes.CDLL(None).prctl(41, 1, 0, 0, 0); os.execv(sys.argv[1], sys.argv[1:])' \
    "$ROOT/target/$PROFILE/bare-proxy" "127.0.0.1:$XPORT" "127.0.0.1:$MPORT" >"$WORK/proxy.log" 2>&1 &
PROXY=$!
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$XPORT/v1/models" >/dev/null && break; sleep 0.1; done
PX_BASE=$(rss_kb "$PROXY")
STREAMS=$UP_STREAMS open_streams "$XPORT" /v1/chat/completions '{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"hello there"}]}' "x-none: 1"
PX_LOADED=$(rss_kb "$PROXY")
close_streams
GW_PER=$(( (GW_LOADED - GW_BASE) * 1024 / UP_STREAMS ))
PX_PER=$(( (PX_LOADED - PX_BASE) * 1024 / UP_STREAMS ))
printf '| measure | value |\n|---|---|\n'
printf '| idle RSS, embedded defaults | %d KiB (%.1f MB) |\n' "$IDLE" "$(echo "$IDLE/1024" | bc -l)"
printf '| RSS before the streams | %d KiB |\n' "$BASE"
printf '| RSS with %d open idle streams | %d KiB |\n' "$STREAMS" "$LOADED"
printf '| per open stream | %d bytes |\n' "$PER"
printf '| through an upstream connection, governed gateway, %d streams: per open stream | %d bytes (RSS %d -> %d KiB) |\n' "$UP_STREAMS" "$GW_PER" "$GW_BASE" "$GW_LOADED"
printf '| through an upstream connection, bare proxy: per open stream | %d bytes (RSS %d -> %d KiB) |\n' "$PX_PER" "$PX_BASE" "$PX_LOADED"
printf '| the gateway'"'"'s own share per stream (gateway - proxy) | %d bytes |\n' "$((GW_PER - PX_PER))"
