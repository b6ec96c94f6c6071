"""Fixtures for the SDK suites (the `openai` and `anthropic` packages).

One gateway runs for the whole session, in front of these providers:

- ``mock``: the built-in mock provider (no network);
- ``up``: the ``mock-upstream`` binary, as an OpenAI-compatible server;
- ``rec``: a small recording server in this process, so tests can see
  exactly what the gateway sent upstream (credential, model, extra fields);
- ``claude`` (anthropic), ``gem`` (gemini), ``vx`` (vertex, with a
  service-account file whose token endpoint is the mock), ``br`` (bedrock,
  SigV4 with the mock's access key) and ``co`` (cohere): the same
  ``mock-upstream`` process, which speaks each provider's wire format on
  that provider's paths.

The binaries are the ones cargo built; point ``TOLLGATE_BIN`` and
``MOCK_UPSTREAM_BIN`` elsewhere to test another build. A missing binary is a
failure, never a skip: a suite that silently tests nothing is worse than none.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator

import anthropic
import httpx
import openai
import pytest

REPO = Path(__file__).resolve().parents[2]

MASTER_KEY = "sk-tollgate-master-for-sdk-tests"
LIMITED_KEY = "limited-key-123"
UP_KEY = "sk-upstream-secret"
REC_KEY = "sk-recorder-secret"

# Small, so the 413 test does not need megabytes of payload.
MAX_BODY_SIZE = 64 * 1024

STARTUP_TIMEOUT = 10.0

# The service-account key the Vertex provider signs its token requests with.
VERTEX_KEY_PEM = REPO / "crates" / "tollgate" / "tests" / "fixtures" / "jwt" / "rsa.pem"
VERTEX_PROJECT = "proj-sdk"
# The only AWS credentials the mock's SigV4 check accepts.
AWS_ACCESS_KEY_ID = "AKIDMOCKTOLLGATE"
AWS_SECRET_ACCESS_KEY = "mock/secret/key"

# Every model of the translating providers (claude, gem, vx, br, co) below.
TRANSLATED_MODELS = frozenset({
    "claude/claude-sonnet-4-5",
    "gem/gemini-2.5-flash",
    "gem/text-embedding-004",
    "vx/gemini-2.5-pro",
    "vx/claude-sonnet-4-5",
    "br/anthropic.claude-3-5-haiku-20241022-v1:0",
    "br/amazon.titan-embed-text-v2:0",
    "co/command-r-plus",
    "co/embed-english-v3.0",
})


_GIVEN_PORTS: set[int] = set()


def _free_port() -> int:
    # The port is released before the server binds it, and the kernel may
    # hand the same one out again at once: two calls in a row (a listen and
    # an admin port) could then collide. A port is never given twice here;
    # a collision remains possible only with another process racing for it.
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _GIVEN_PORTS:
            _GIVEN_PORTS.add(port)
            return port


def _binary(env: str, name: str) -> Path:
    path = Path(os.environ.get(env) or REPO / "target" / "debug" / name)
    if not path.is_file() or not os.access(path, os.X_OK):
        pytest.fail(
            f"{name} binary not found at {path}; build it with `cargo build` "
            f"or set {env} to its path",
            pytrace=False,
        )
    return path


def _tail(log: Path, limit: int = 4000) -> str:
    try:
        text = log.read_text(errors="replace")
    except OSError as e:
        return f"(could not read {log}: {e})"
    return text[-limit:] or "(no output)"


def _wait_until(probe, proc: subprocess.Popen, log: Path, what: str) -> None:
    """Polls `probe` until it returns True; fails with the process's output
    if the process exits or does not come up in time."""
    deadline = time.monotonic() + STARTUP_TIMEOUT
    last_error = "no attempt made"
    while time.monotonic() < deadline:
        code = proc.poll()
        if code is not None:
            pytest.fail(f"{what} exited with status {code} during startup:\n{_tail(log)}", pytrace=False)
        try:
            if probe():
                return
            last_error = "probe answered but not ready"
        except httpx.HTTPError as e:
            last_error = repr(e)
        time.sleep(0.05)
    pytest.fail(
        f"{what} was not ready within {STARTUP_TIMEOUT:.0f}s (last: {last_error}):\n{_tail(log)}",
        pytrace=False,
    )


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


@contextlib.contextmanager
def serve_gateway(work: Path, config: str, port: int, admin_port: int) -> Iterator[tuple[str, str]]:
    """The built `tollgate serve` on `config` (with `TG_MASTER` set to the
    master key), ready: yields its data-plane and admin base URLs."""
    tollgate = _binary("TOLLGATE_BIN", "tollgate")
    path = work / "tollgate.yaml"
    path.write_text(config)
    log = work / "tollgate.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(tollgate), "serve", "--config", str(path)], cwd=work,
                                env={**os.environ, "TG_MASTER": MASTER_KEY}, stdout=out, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_until(lambda: httpx.get(f"{url}/ready", timeout=1).status_code == 200, proc, log, "tollgate")
        yield url, f"http://127.0.0.1:{admin_port}"
    finally:
        _stop(proc)


# --- recording upstream -----------------------------------------------------


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]  # lower-cased names
    body: Any


class RecordingUpstream:
    """An OpenAI-compatible server that remembers every request it gets.

    Directives in the last user message steer it:
    ``[rec:status=NNN]`` answers with that status (429 carries
    ``retry-after: 7``); ``[rec:truncate]`` on a stream sends a few chunks
    and closes the connection without ``data: [DONE]``.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: list[Recorded] = []
        handler = type("Handler", (_RecorderHandler,), {"upstream": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def record(self, r: Recorded) -> None:
        with self._lock:
            self._requests.append(r)

    def find(self, marker: str) -> Recorded:
        """The one recorded request whose body mentions `marker`."""
        with self._lock:
            hits = [r for r in self._requests if marker in json.dumps(r.body)]
        assert len(hits) == 1, f"expected one upstream request mentioning {marker!r}, got {len(hits)}"
        return hits[0]


def _last_user_text(body: dict) -> str:
    for m in reversed(body.get("messages") or []):
        if m.get("role") == "user":
            c = m.get("content")
            return c if isinstance(c, str) else json.dumps(c)
    return ""


class _RecorderHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    upstream: RecordingUpstream

    def log_message(self, format: str, *args: Any) -> None:  # keep pytest output clean
        pass

    def _json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("content-length") or 0))
        try:
            body = json.loads(raw)
        except ValueError:
            body = raw.decode(errors="replace")
        self.upstream.record(
            Recorded(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
        )
        if not isinstance(body, dict):
            return self._json(400, {"error": {"message": "recorder: body is not a JSON object"}})
        if self.path.endswith("/embeddings"):
            inputs = body.get("input")
            count = len(inputs) if isinstance(inputs, list) else 1
            return self._json(200, {
                "object": "list",
                "data": [{"object": "embedding", "index": i, "embedding": [0.5, 0.25]} for i in range(count)],
                "model": body.get("model"),
                "usage": {"prompt_tokens": 2, "total_tokens": 2},
            })
        if not self.path.endswith("/chat/completions"):
            return self._json(404, {"error": {"message": f"recorder: no route {self.path}"}})

        text = _last_user_text(body)
        if "[rec:status=" in text:
            status = int(text.split("[rec:status=", 1)[1][:3])
            headers = {"retry-after": "7"} if status == 429 else {}
            return self._json(status, {"error": {
                "message": f"recorder refused with {status}", "type": "recorder_error", "param": None, "code": None,
            }}, headers)

        reply = f"recorded: {text}"
        if body.get("stream"):
            return self._stream(body.get("model"), reply, truncate="[rec:truncate]" in text)
        self._json(200, {
            "id": "chatcmpl-rec", "object": "chat.completion", "created": 1, "model": body.get("model"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": reply}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7},
        })

    def _stream(self, model: str, reply: str, truncate: bool) -> None:
        def chunk(delta: dict, finish: str | None = None) -> bytes:
            c = {"id": "chatcmpl-rec", "object": "chat.completion.chunk", "created": 1, "model": model,
                 "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
            return f"data: {json.dumps(c)}\n\n".encode()

        events = [chunk({"role": "assistant", "content": ""})]
        events += [chunk({"content": w}) for w in reply.split(" ") if w]
        if truncate:
            events = events[:3]
        else:
            events += [chunk({}, "stop"), b"data: [DONE]\n\n"]
        # No content-length and a closing connection: the body ends at EOF,
        # which is how a truncated stream looks to the gateway.
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("connection", "close")
        self.end_headers()
        for e in events:
            self.wfile.write(e)
            self.wfile.flush()
        self.close_connection = True


# --- the gateway ------------------------------------------------------------


@dataclass
class Gateway:
    url: str  # data plane root, without /v1
    admin_url: str
    recorder: RecordingUpstream
    log: Path
    upstream_url: str  # the mock-upstream process's root, without /v1


CONFIG = """\
server:
  listen: "127.0.0.1:{port}"
  admin_listen: "127.0.0.1:{admin_port}"
  max_body_size: {max_body}
store:
  url: "memory://"
auth:
  master_key: "${{TG_MASTER}}"
  keys:
    - name: limited
      key: "{limited}"
      models: ["mock/*"]
providers:
  - name: mock
    type: mock
    models: [{{ name: echo }}, {{ name: embed }}]
  - name: up
    type: openai_compatible
    base_url: "http://127.0.0.1:{up_port}/v1"
    api_key: "{up_key}"
    models: [{{ name: gpt-4o-mini }}, {{ name: text-embedding-3-small }}]
  - name: rec
    type: openai
    base_url: "http://127.0.0.1:{rec_port}/v1"
    api_key: "{rec_key}"
    models: [{{ name: rec-chat }}, {{ name: rec-embed }}]
  - name: flaky
    type: mock
    mock: {{ failure: {{ status: 503, every: 1 }} }}
    models: [{{ name: unstable }}]
  - name: claude
    type: anthropic
    base_url: "http://127.0.0.1:{up_port}"
    api_key: "sk-ant-sdk-secret"
    models: [{{ name: claude-sonnet-4-5 }}]
  - name: gem
    type: gemini
    base_url: "http://127.0.0.1:{up_port}"
    api_key: "gem-sdk-secret"
    models: [{{ name: gemini-2.5-flash }}, {{ name: text-embedding-004 }}]
  - name: vx
    type: vertex
    base_url: "http://127.0.0.1:{up_port}"
    region: us-central1
    credentials_file: {vertex_credentials}
    models: [{{ name: gemini-2.5-pro }}, {{ name: claude-sonnet-4-5 }}]
  - name: br
    type: bedrock
    base_url: "http://127.0.0.1:{up_port}"
    region: us-east-1
    access_key_id: "{aws_key_id}"
    secret_access_key: "{aws_secret}"
    models: [{{ name: "anthropic.claude-3-5-haiku-20241022-v1:0" }}, {{ name: "amazon.titan-embed-text-v2:0" }}]
  - name: co
    type: cohere
    base_url: "http://127.0.0.1:{up_port}"
    api_key: "co-sdk-secret"
    models: [{{ name: command-r-plus }}, {{ name: embed-english-v3.0 }}]
virtual_models:
  - name: prod/assistant
    targets:
      - {{ model: flaky/unstable }}
      - {{ model: mock/echo }}
"""


def _vertex_credentials(work: Path, up_port: int) -> Path:
    """A service-account key file whose token endpoint is the mock upstream."""
    if not VERTEX_KEY_PEM.is_file():
        pytest.fail(f"Vertex test key not found at {VERTEX_KEY_PEM}", pytrace=False)
    path = work / "vertex-sa.json"
    path.write_text(json.dumps({
        "type": "service_account",
        "project_id": VERTEX_PROJECT,
        "client_email": f"gw@{VERTEX_PROJECT}.iam.gserviceaccount.com",
        "private_key": VERTEX_KEY_PEM.read_text(),
        "token_uri": f"http://127.0.0.1:{up_port}/token",
    }))
    return path


@pytest.fixture(scope="session")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    tollgate = _binary("TOLLGATE_BIN", "tollgate")
    mock_upstream = _binary("MOCK_UPSTREAM_BIN", "mock-upstream")
    # The gateway's working directory, so anything it writes stays here.
    work = tmp_path_factory.mktemp("gateway")

    procs: list[subprocess.Popen] = []
    logs = []
    recorder = RecordingUpstream()
    recorder.start()
    try:
        up_port = _free_port()
        up_log = work / "mock-upstream.log"
        logs.append(open(up_log, "wb"))
        up = subprocess.Popen([str(mock_upstream), f"127.0.0.1:{up_port}"], cwd=work,
                              stdout=logs[-1], stderr=subprocess.STDOUT)
        procs.append(up)
        _wait_until(lambda: httpx.get(f"http://127.0.0.1:{up_port}/v1/models", timeout=1).status_code == 200,
                    up, up_log, "mock-upstream")

        port, admin_port = _free_port(), _free_port()
        config = work / "tollgate.yaml"
        config.write_text(CONFIG.format(
            port=port, admin_port=admin_port, max_body=MAX_BODY_SIZE, limited=LIMITED_KEY,
            up_port=up_port, up_key=UP_KEY, rec_port=recorder.port, rec_key=REC_KEY,
            # A JSON string is a valid YAML double-quoted scalar.
            vertex_credentials=json.dumps(str(_vertex_credentials(work, up_port))),
            aws_key_id=AWS_ACCESS_KEY_ID, aws_secret=AWS_SECRET_ACCESS_KEY,
        ))
        log = work / "tollgate.log"
        logs.append(open(log, "wb"))
        # The master key reaches the gateway through ${TG_MASTER}, the way
        # deployments keep it out of the file.
        env = {**os.environ, "TG_MASTER": MASTER_KEY}
        gw = subprocess.Popen([str(tollgate), "serve", "--config", str(config)], cwd=work, env=env,
                              stdout=logs[-1], stderr=subprocess.STDOUT)
        procs.append(gw)
        url = f"http://127.0.0.1:{port}"

        def ready() -> bool:
            r = httpx.get(f"{url}/ready", timeout=1)
            return r.status_code == 200 and r.json().get("status") == "ready"

        _wait_until(ready, gw, log, "tollgate")
        yield Gateway(url=url, admin_url=f"http://127.0.0.1:{admin_port}", recorder=recorder, log=log,
                      upstream_url=f"http://127.0.0.1:{up_port}")
    finally:
        for p in reversed(procs):
            _stop(p)
        for f in logs:
            f.close()
        recorder.stop()


def _sdk(gateway: Gateway, key: str) -> openai.OpenAI:
    # No retries: every test must see the gateway's first answer.
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0, timeout=15)


@pytest.fixture(scope="session")
def client(gateway: Gateway) -> Iterator[openai.OpenAI]:
    with _sdk(gateway, MASTER_KEY) as c:
        yield c


@pytest.fixture(scope="session")
def limited_client(gateway: Gateway) -> Iterator[openai.OpenAI]:
    with _sdk(gateway, LIMITED_KEY) as c:
        yield c


@pytest.fixture(scope="session")
def http(gateway: Gateway) -> Iterator[httpx.Client]:
    """Raw HTTP, for what the SDK will not send (malformed bodies, no key)."""
    with httpx.Client(base_url=gateway.url, timeout=15) as c:
        yield c


@pytest.fixture(scope="session")
def recorder(gateway: Gateway) -> RecordingUpstream:
    return gateway.recorder


@pytest.fixture(scope="session")
def anthropic_client(gateway: Gateway) -> Iterator[anthropic.Anthropic]:
    """The `anthropic` SDK pointed at the gateway: it appends /v1/messages
    to the root and sends the key as `x-api-key`."""
    with anthropic.Anthropic(base_url=gateway.url, api_key=MASTER_KEY, max_retries=0, timeout=15) as c:
        yield c
