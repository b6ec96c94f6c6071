"""Writes stream.in.bin: a Bedrock ConverseStream answer in AWS's binary
event-stream framing, encoded here independently of the gateway's decoder
(prelude and message CRC32s, string headers as Bedrock sends them, and the
`p` padding field Bedrock adds to every payload to hide its length).

Run: python3 make.py (from this directory)."""
import json
import struct
import zlib


def header(name: str, value: str) -> bytes:
    n, v = name.encode(), value.encode()
    return struct.pack(">B", len(n)) + n + struct.pack(">BH", 7, len(v)) + v


def frame(kind: str, payload: dict, message_type: str = "event") -> bytes:
    headers = header(":event-type" if message_type == "event" else ":exception-type", kind) \
        + header(":content-type", "application/json") + header(":message-type", message_type)
    body = json.dumps(payload, separators=(",", ":")).encode()
    total = 12 + len(headers) + len(body) + 4
    prelude = struct.pack(">II", total, len(headers))
    prelude += struct.pack(">I", zlib.crc32(prelude))
    message = prelude + headers + body
    return message + struct.pack(">I", zlib.crc32(message))


events = [
    ("messageStart", {"p": "abcdefghijklmnopqrstuvwxyzABCDEFGHIJ", "role": "assistant"}),
    ("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Bonjour"}, "p": "abcdefghijklm"}),
    ("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": " — ça va ?"}, "p": "abcdefghijklmnopqrstu"}),
    ("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": " 👋"}, "p": "abcd"}),
    ("contentBlockStop", {"contentBlockIndex": 0, "p": "abcdefghijklmnopqrstuvwxyzABCDEFGH"}),
    ("messageStop", {"p": "abcdefghijklmnopqrstuvwxyzABCDE", "stopReason": "end_turn"}),
    ("metadata", {"metrics": {"latencyMs": 412}, "p": "abcdefghijklmnopqrstuvwxyzABC",
                  "usage": {"inputTokens": 21, "outputTokens": 9, "totalTokens": 30}}),
]
with open("stream.in.bin", "wb") as f:
    for kind, payload in events:
        f.write(frame(kind, payload))
