#!/usr/bin/env bash
# Memory of an idle gateway and of many idle streams.
#
# Starts `tollgate serve` on its embedded defaults (SQLite, the built-in
# mock provider) and reads its RSS when idle; then starts it on a config
# whose mock model streams one event a minute, opens STREAMS streaming
# requests that each receive their first event and then wait, and reads
# the RSS again: (RSS with the streams − idle RSS) / STREAMS is the memory
# one open stream costs.
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
[[ $BUILD == 1 ]] && (cd "$ROOT" && cargo build --release -p tollgate)
# Each open stream is a socket on both ends.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT

rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
wait_ready() { for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$1/ready" >/dev/null && return 0; sleep 0.1; done; return 1; }

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
python3 - "$PORT" "$STREAMS" <<'PY' &
import asyncio, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
body = b'{"model":"slow/drip","stream":true,"messages":[{"role":"user","content":"hello there"}]}'
req = (b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer bench-master-key-0123\r\n"
       b"content-type: application/json\r\ncontent-length: %d\r\n\r\n" % len(body)) + body
async def one(ready):
    r, w = await asyncio.open_connection("127.0.0.1", port)
    w.write(req)
    await w.drain()
    buf = b""
    while b"data:" not in buf:
        chunk = await r.read(4096)
        if not chunk:
            raise SystemExit("a stream closed early")
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
    print("open", len(ready), flush=True)
    open("/dev/shm/tollgate-streams-ready", "w").write(str(len(ready)))
    await asyncio.sleep(3600)
asyncio.run(main())
PY
CLIENT=$!
rm -f /dev/shm/tollgate-streams-ready
for _ in $(seq 1 600); do [[ -f /dev/shm/tollgate-streams-ready ]] && break; sleep 0.5; done
sleep 2
LOADED=$(rss_kb "$PID")
kill "$CLIENT" 2>/dev/null || true
rm -f /dev/shm/tollgate-streams-ready
PER=$(( (LOADED - BASE) * 1024 / STREAMS ))
printf '| measure | value |\n|---|---|\n'
printf '| idle RSS, embedded defaults | %d KiB (%.1f MB) |\n' "$IDLE" "$(echo "$IDLE/1024" | bc -l)"
printf '| RSS before the streams | %d KiB |\n' "$BASE"
printf '| RSS with %d open idle streams | %d KiB |\n' "$STREAMS" "$LOADED"
printf '| per open stream | %d bytes |\n' "$PER"
