"""The shipped binary under a governed config, as clients of the official
`openai` and `anthropic` SDKs meet it: virtual keys created through the
admin API, JWTs signed by a local identity provider (its JWKS served here),
rate limits and a cost budget — on a SQLite store and on PostgreSQL, with
the real process restarted in between, after which keys, revocations,
spend and the request log must still be there.

The other SDK suites run with the master key and no limits; this one proves
that `tollgate serve` wires up what users configure to govern it.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator
from urllib.parse import urlsplit

import anthropic
import httpx
import jwt
import openai
import pytest

from conftest import MASTER_KEY, REPO, _free_port, serve_gateway

FIXTURES = REPO / "crates" / "tollgate" / "tests" / "fixtures" / "jwt"
ISSUER = "https://idp.test/"

CONFIG = """\
server:
  listen: "127.0.0.1:{port}"
  admin_listen: "127.0.0.1:{admin_port}"
store:
  url: "{store_url}"
auth:
  master_key: "${{TG_MASTER}}"
  jwt:
    - issuer: "{issuer}"
      jwks_url: "http://127.0.0.1:{jwks_port}/jwks.json"
      audiences: [tollgate]
      models: ["mock/*"]
providers:
  - name: mock
    type: mock
    models: [{{ name: echo }}]
  - name: priced
    type: mock
    mock: {{ prompt_tokens: 5, completion_tokens: 1000 }}
    models: [{{ name: m, input_cost_per_mtok: 1.0, output_cost_per_mtok: 1.0 }}]
  - name: other
    type: mock
    models: [{{ name: x }}]
rate_limits:
  - {{ id: jwt-rpm, limit_by: [subject], unit: requests_per_minute, limit: 4, when: {{ subjects: ["jwt:*"] }} }}
budgets:
  - {{ id: team-daily, limit_by: [team], unit: cost_per_day, limit: 0.0025 }}
"""


# --- the identity provider ----------------------------------------------------


class _Jwks(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        body = (FIXTURES / "jwks.json").read_bytes()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture(scope="module")
def jwks_port() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Jwks)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()


def token(**overrides: object) -> str:
    claims = {"iss": ISSUER, "aud": "tollgate", "sub": "alice", "team": "research", "exp": int(time.time()) + 300}
    claims.update(overrides)
    key = (FIXTURES / "rsa.pem").read_text()
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": "rsa-1"})


# --- the stores ---------------------------------------------------------------


PG_BASE = os.environ.get("TOLLGATE_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres")


def _psql(sql: str) -> None:
    done = subprocess.run(["psql", PG_BASE, "-v", "ON_ERROR_STOP=1", "-qc", sql], capture_output=True, text=True)
    assert done.returncode == 0, f"PostgreSQL is needed at {PG_BASE} (set TOLLGATE_TEST_POSTGRES_URL): {done.stderr}"


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite://{tmp_path_factory.mktemp('governed-sqlite') / 'tollgate.db'}"
        return
    # A fresh database per run; a missing server fails the test, never skips it.
    name = f"tg_sdk_{secrets.token_hex(4)}"
    _psql(f"CREATE DATABASE {name}")
    yield urlsplit(PG_BASE)._replace(path=f"/{name}").geturl()
    _psql(f"DROP DATABASE {name} WITH (FORCE)")


class Gateway:
    """One gateway process at a time on a fixed config, restartable."""

    def __init__(self, work: Path, config: str, port: int, admin_port: int) -> None:
        self.work, self.config, self.port, self.admin_port = work, config, port, admin_port
        self._running = None
        self.url = self.admin = ""

    def start(self) -> None:
        self._running = serve_gateway(self.work, self.config, self.port, self.admin_port)
        self.url, self.admin = self._running.__enter__()

    def stop(self) -> None:
        if self._running is not None:
            self._running.__exit__(None, None, None)
            self._running = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def admin_call(self, method: str, path: str, body: object = None) -> httpx.Response:
        return httpx.request(method, f"{self.admin}{path}", json=body,
                             headers={"Authorization": f"Bearer {MASTER_KEY}"}, timeout=10)

    def openai(self, key: str) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.url}/v1", api_key=key, max_retries=0)


@pytest.fixture(scope="module")
def gw(store_url: str, jwks_port: int, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    work = tmp_path_factory.mktemp("governed")
    port, admin_port = _free_port(), _free_port()
    config = CONFIG.format(port=port, admin_port=admin_port, store_url=store_url, issuer=ISSUER, jwks_port=jwks_port)
    g = Gateway(work, config, port, admin_port)
    g.start()
    try:
        yield g
    finally:
        g.stop()


def _logged(gw: Gateway, subject: str) -> list[dict]:
    data = gw.admin_call("GET", "/admin/logs?limit=1000").json()["data"]
    return [e for e in data if e.get("subject") == subject]


def _wait_logged(gw: Gateway, subject: str, n: int) -> list[dict]:
    """The subject's log entries, once there are `n` (the log is written in batches)."""
    for _ in range(200):
        got = _logged(gw, subject)
        if len(got) >= n:
            break
        time.sleep(0.05)
    assert len(got) == n, f"{len(got)} entries for {subject}, {n} expected"
    return got


def _spent(gw: Gateway, account: str) -> float:
    budgets = gw.admin_call("GET", "/admin/usage").json()["budgets"]
    return next(b["spent"] for b in budgets if b["key"] == account)


# --- the tests ------------------------------------------------------------------


def test_keys_budgets_and_revocations_hold_and_survive_a_restart(gw: Gateway) -> None:
    made = gw.admin_call("POST", "/admin/keys", {"name": "ci-bot", "team": "payments", "models": ["priced/*", "mock/*"]})
    assert made.status_code == 201, made.text
    secret = made.json()["key"]
    doomed = gw.admin_call("POST", "/admin/keys", {"name": "doomed", "team": "payments"}).json()

    client = gw.openai(secret)
    ask = [{"role": "user", "content": "hi"}]
    first = client.chat.completions.create(model="priced/m", messages=ask, max_tokens=1000)
    assert first.usage.total_tokens == 1005
    with pytest.raises(openai.PermissionDeniedError) as denied:
        client.chat.completions.create(model="other/x", messages=ask)
    assert denied.value.body["code"] == "model_not_allowed", denied.value.body

    # $0.001005 a call against $0.0025 a day: the third call is refused.
    answered = 1
    with pytest.raises(openai.RateLimitError) as refused:
        for _ in range(5):
            client.chat.completions.create(model="priced/m", messages=ask, max_tokens=1000)
            answered += 1
    assert answered == 2, answered
    assert refused.value.body["code"] == "budget_exceeded", refused.value.body
    assert refused.value.response.headers["x-tollgate-budget"] == "team-daily"
    assert refused.value.response.headers["x-should-retry"] == "false"
    spent = _spent(gw, next(b["key"] for b in gw.admin_call("GET", "/admin/usage").json()["budgets"]
                            if b["key"].startswith("team-daily") and b["key"].endswith("|payments")))
    assert spent == pytest.approx(2 * 0.001005), "charged exactly the two answers"

    assert gw.admin_call("DELETE", f"/admin/keys/{doomed['id']}").status_code == 200
    with pytest.raises(openai.AuthenticationError):
        gw.openai(doomed["key"]).chat.completions.create(model="mock/echo", messages=ask)

    # Every call is logged, refusals too: two answers, the denied model, the refused budget.
    _wait_logged(gw, "key:ci-bot", 4)
    gw.restart()

    # The key, its revoked sibling, the spend and the log are all still there.
    again = client.chat.completions.create(model="mock/echo", messages=ask)
    assert again.choices[0].message.content
    with pytest.raises(openai.RateLimitError) as still:
        client.chat.completions.create(model="priced/m", messages=ask, max_tokens=1000)
    assert still.value.body["code"] == "budget_exceeded"
    with pytest.raises(openai.AuthenticationError):
        gw.openai(doomed["key"]).chat.completions.create(model="mock/echo", messages=ask)
    accounts = gw.admin_call("GET", "/admin/usage").json()["budgets"]
    payments = next(b for b in accounts if b["key"].startswith("team-daily") and b["key"].endswith("|payments"))
    assert payments["spent"] == pytest.approx(spent), "spend survived the restart"
    _wait_logged(gw, "key:ci-bot", 4 + 2)


def test_tokens_from_the_identity_provider_are_checked_and_rate_limited(gw: Gateway) -> None:
    alice = token()
    client = gw.openai(alice)
    ask = [{"role": "user", "content": "hello"}]
    for _ in range(4):
        assert client.chat.completions.create(model="mock/echo", messages=ask).choices[0].message.content
    with pytest.raises(openai.RateLimitError) as limited:
        client.chat.completions.create(model="mock/echo", messages=ask)
    assert limited.value.body["code"] == "rate_limit_exceeded", limited.value.body
    assert limited.value.response.headers["x-tollgate-limit"] == "jwt-rpm"
    assert int(limited.value.response.headers["retry-after"]) > 0

    # Another subject has its own counter; the Anthropic SDK sends the token
    # as a bearer too.
    bob = anthropic.Anthropic(base_url=gw.url, auth_token=token(sub="bob"), max_retries=0)
    reply = bob.messages.create(model="mock/echo", max_tokens=50, messages=[{"role": "user", "content": "hi"}])
    assert reply.content[0].text

    with pytest.raises(openai.PermissionDeniedError):
        gw.openai(token(sub="carol")).chat.completions.create(model="priced/m", messages=ask)
    for bad in [token(sub="dave", exp=int(time.time()) - 600), token(sub="erin", aud="someone-else"),
                token(sub="frank", iss="https://evil.test/")]:
        with pytest.raises(openai.AuthenticationError) as refused:
            gw.openai(bad).chat.completions.create(model="mock/echo", messages=ask)
        assert refused.value.status_code == 401
    logged = _wait_logged(gw, "jwt:alice", 5)
    assert sorted(e["status"] for e in logged) == [200, 200, 200, 200, 429]
    assert all(e["metadata"].get("team") == "research" for e in logged), logged[0]
