#!/usr/bin/env bash
# Load shedding under overload: does the gateway stop taking work before
# memory runs out?
#
# Starts a gateway with `server.max_concurrent_requests: LIMIT` whose
# built-in mock model streams one event a minute, then opens CLIENTS
# streaming requests at once (a Python asyncio client, one socket each)
# and holds them. Each request either streams (admitted: it holds a slot)
# or is answered 503 `overloaded` with `retry-after` (shed). Prints how
# many of each, what the shed answers carried, and the gateway's RSS with
# LIMIT requests held, against the RSS the same CLIENTS would need if all
# were admitted (CLIENTS x the per-stream figure measured here).
#
# Usage:   bash bench/overload.sh                   (release binary; builds it)
#          BUILD=0 LIMIT=1000 CLIENTS=5000 bash bench/overload.sh
set -euo pipefail
BUILD=${BUILD:-1}
PROFILE=${PROFILE:-release}
LIMIT=${LIMIT:-1000}
CLIENTS=${CLIENTS:-5000}
PORT=${PORT:-4800}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN="$ROOT/target/$PROFILE/tollgate"
[[ $BUILD == 1 ]] && (cd "$ROOT" && cargo build --release -p tollgate)
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
WORK=$(mktemp -d)
# The gateway runs in a subshell: its command line names $WORK.
trap 'kill $(jobs -p) 2>/dev/null || true; pkill -f "$WORK/" 2>/dev/null || true; rm -rf "$WORK"' EXIT

cat >"$WORK/overload.yaml" <<YAML
server: { listen: "127.0.0.1:$PORT", admin_listen: "127.0.0.1:$((PORT + 1))", max_concurrent_requests: $LIMIT }
store: { url: "sqlite://$WORK/o.db" }
auth: { master_key: bench-master-key-0123 }
providers:
  - { name: slow, type: mock, mock: { chunk_delay: 60s }, models: [{ name: drip }] }
YAML
(cd "$WORK" && "$BIN" serve --config "$WORK/overload.yaml" >"$WORK/gateway.log" 2>&1) &
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/ready" >/dev/null && break; sleep 0.1; done
PID=$(pgrep -f "config $WORK/overload.yaml" | head -1)
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$PID/status"; }
BASE=$(rss_kb)

python3 - "$PORT" "$CLIENTS" "$WORK/result" <<'PY' &
import asyncio, sys
port, n, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
body = b'{"model":"slow/drip","stream":true,"messages":[{"role":"user","content":"hello there"}]}'
req = (b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer bench-master-key-0123\r\n"
       b"content-type: application/json\r\ncontent-length: %d\r\n\r\n" % len(body)) + body
seen = {"admitted": 0, "shed": 0, "shed_with_retry_after": 0, "other": 0}
async def one():
    try:
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(req)
        await w.drain()
        buf = b""
        while True:
            chunk = await asyncio.wait_for(r.read(4096), 30)
            if not chunk:
                break
            buf += chunk
            if b"data:" in buf or (b"\r\n\r\n" in buf and b" 503 " in buf.split(b"\r\n", 1)[0] and b"overloaded" in buf):
                break
        if buf.startswith(b"HTTP/1.1 200") and b"data:" in buf:
            seen["admitted"] += 1
            await asyncio.sleep(3600)
        elif buf.startswith(b"HTTP/1.1 503"):
            seen["shed"] += 1
            if b"\r\nretry-after: 1\r\n" in buf.lower():
                seen["shed_with_retry_after"] += 1
        else:
            seen["other"] += 1
    except Exception:
        seen["other"] += 1
async def main():
    tasks = [asyncio.create_task(one()) for _ in range(n)]
    while seen["admitted"] + seen["shed"] + seen["other"] < n:
        await asyncio.sleep(0.2)
    open(out, "w").write(" ".join(f"{k}={v}" for k, v in seen.items()))
    await asyncio.gather(*tasks)
asyncio.run(main())
PY
CLIENT=$!
for _ in $(seq 1 600); do [[ -s "$WORK/result" ]] && break; sleep 0.5; done
[[ -s "$WORK/result" ]] || { echo "the client did not finish" >&2; exit 1; }
sleep 2
LOADED=$(rss_kb)
RESULT=$(cat "$WORK/result")
SHED_METRIC=$(curl -s -H "authorization: Bearer bench-master-key-0123" "http://127.0.0.1:$((PORT + 1))/metrics" | awk '/^tollgate_requests_shed_total / {print $2}')
kill "$CLIENT" 2>/dev/null || true
ADMITTED=$(sed -E 's/.*admitted=([0-9]+).*/\1/' <<<"$RESULT")
PER=$(( ADMITTED > 0 ? (LOADED - BASE) * 1024 / ADMITTED : 0 ))
printf '| measure | value |\n|---|---|\n'
printf '| limit, clients | %d, %d |\n' "$LIMIT" "$CLIENTS"
printf '| outcome | %s (tollgate_requests_shed_total %s) |\n' "$RESULT" "${SHED_METRIC:-?}"
printf '| RSS before, with the admitted streams held | %d KiB, %d KiB |\n' "$BASE" "$LOADED"
printf '| RSS if all %d had been admitted (at %d bytes each) | %d KiB |\n' "$CLIENTS" "$PER" "$(( BASE + PER * CLIENTS / 1024 ))"
