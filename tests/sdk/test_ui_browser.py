"""The admin console at /ui/, driven in headless Chromium.

A gateway of its own (mock providers, a fallback, a rate limit, a budget,
a guardrail, an MCP server whose tools wait for approval) gets real traffic through the
data plane; then `js/ui_browser.mjs` (playwright-core on Debian's
`/usr/bin/chromium`, no browser download) signs in, finds that traffic in
the dashboard and the explorer, creates and revokes a key, approves a tool,
chats in the playground, and is refused cleanly with a `member` key — with
no error in the browser console. It takes a screenshot of every page:
into a temporary directory, or into ``$TOLLGATE_UI_SCREENSHOTS`` (``docs/ui``
to refresh the documentation's pictures).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import httpx
import pytest

from conftest import MASTER_KEY, _binary, _free_port, _stop, _wait_until, serve_gateway

HERE = Path(__file__).resolve().parent
JS = HERE / "js"
CHROMIUM = Path("/usr/bin/chromium")

CONFIG = """
server:
  listen: "127.0.0.1:{port}"
  admin_listen: "127.0.0.1:{admin_port}"
store: {{ url: "memory://" }}
logging: {{ bodies: true }}
auth:
  master_key: "${{TG_MASTER}}"
providers:
  - name: mock
    type: mock
    models:
      - {{ name: echo }}
      - {{ name: agent, input_cost_per_mtok: 3.0, output_cost_per_mtok: 15.0 }}
  - name: down
    type: mock
    mock: {{ failure: {{ status: 503, every: 1 }} }}
    models:
      - {{ name: chat }}
virtual_models:
  - name: prod/chat
    targets:
      - {{ model: down/chat, fallback_on: [503] }}
      - {{ model: mock/agent }}
rate_limits:
  - {{ id: per-key-rpm, limit_by: [subject], unit: requests_per_minute, limit: 600 }}
budgets:
  - {{ id: team-daily, limit_by: [team], unit: cost_per_day, limit: 5 }}
guardrails:
  definitions:
    - {{ name: pii-redaction, type: pii, action: mutate, entities: [EMAIL], restore: true }}
  enforce:
    llm_input: [pii-redaction]
mcp_servers:
  - {{ name: ops, command: "{tollgate}", args: [mcp, mock-server], pin_tools: true, pin_on: approval }}
"""


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory):
    work = tmp_path_factory.mktemp("ui")
    port, admin_port = _free_port(), _free_port()
    config = CONFIG.format(port=port, admin_port=admin_port, tollgate=_binary("TOLLGATE_BIN", "tollgate"))
    with serve_gateway(work, config, port, admin_port) as (url, admin):
        yield url, admin, work


def _chat(url: str, model: str, text: str, team: str) -> httpx.Response:
    return httpx.post(f"{url}/v1/chat/completions", timeout=10,
                      headers={"authorization": f"Bearer {MASTER_KEY}",
                               "x-tollgate-metadata": json.dumps({"team": team})},
                      json={"model": model, "messages": [{"role": "user", "content": text}]})


def test_console_in_a_browser(console) -> None:
    url, admin, work = console
    assert CHROMIUM.is_file(), "Chromium is missing: apt-get install -y chromium (.ci/run does)"
    assert (JS / "node_modules" / "playwright-core").is_dir(), \
        "playwright-core is missing: npm ci in tests/sdk/js (tests/sdk/run.sh does)"

    # Traffic the console must show: plain calls, a fallback, a refusal.
    for i in range(3):
        assert _chat(url, "mock/echo", f"hello {i}", "payments").status_code == 200
    fell_back = _chat(url, "prod/chat", "route me", "search")
    assert fell_back.status_code == 200
    assert _chat(url, "mock/nope", "unknown model", "payments").status_code in (400, 404)
    # A key with the weakest admin role, for the refusal path.
    member = httpx.post(f"{admin}/admin/keys", headers={"authorization": f"Bearer {MASTER_KEY}"},
                        json={"name": "ui-member", "role": "member", "owner": "dana@example.com"}, timeout=10)
    assert member.status_code == 201, member.text
    team_admin = httpx.post(f"{admin}/admin/keys", headers={"authorization": f"Bearer {MASTER_KEY}"},
                            json={"name": "ui-payments-admin", "role": "team_admin", "team": "payments"}, timeout=10)
    assert team_admin.status_code == 201, team_admin.text

    shots = Path(os.environ.get("TOLLGATE_UI_SCREENSHOTS") or work / "shots").resolve()
    shots.mkdir(parents=True, exist_ok=True)
    args = {
        "admin": admin, "data": url, "master": MASTER_KEY, "member": member.json()["key"], "teamAdmin": team_admin.json()["key"],
        "fellBack": fell_back.headers["x-tollgate-request-id"], "shots": str(shots),
        "chromium": str(CHROMIUM),
    }
    p = subprocess.run(["node", str(JS / "ui_browser.mjs"), json.dumps(args)],
                       capture_output=True, text=True, timeout=180, cwd=JS)
    assert p.returncode == 0, f"browser run failed:\n{p.stdout[-4000:]}\n{p.stderr[-4000:]}"
    result = json.loads(p.stdout.strip().splitlines()[-1])
    assert result["consoleErrors"] == [], result["consoleErrors"]
    assert result["newKeyWorked"] == 200 and result["revokedKeyStatus"] == 401
    assert result["playgroundAnswer"], "the playground showed no answer"
    assert result["explorerAttempts"] >= 2, "the fallback's attempts were not shown"
    for page in ("dashboard", "requests", "keys", "usage", "limits", "config", "mcp", "playground"):
        png = shots / f"{page}.png"
        assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f"no screenshot of {page}"

    # The playground's request went through the data plane as the master key.
    logs = httpx.get(f"{admin}/admin/logs", params={"model": "mock/echo", "limit": 100},
                     headers={"authorization": f"Bearer {MASTER_KEY}"}, timeout=10).json()["data"]
    assert any(e["stream"] and e["status"] == 200 for e in logs), "no streamed playground request in the log"


def test_data_plane_cors_is_for_the_console_only(console) -> None:
    url, admin, _ = console
    admin_origin = admin  # http://127.0.0.1:<admin port>
    pre = httpx.options(f"{url}/v1/chat/completions", timeout=5, headers={
        "origin": admin_origin, "access-control-request-method": "POST",
        "access-control-request-headers": "authorization, content-type"})
    assert pre.status_code == 204
    assert pre.headers["access-control-allow-origin"] == admin_origin
    assert "authorization" in pre.headers["access-control-allow-headers"]
    r = httpx.get(f"{url}/v1/models", timeout=5,
                  headers={"origin": admin_origin, "authorization": f"Bearer {MASTER_KEY}"})
    assert r.headers["access-control-allow-origin"] == admin_origin
    assert "x-tollgate-request-id" in r.headers["access-control-expose-headers"]
    # Any other origin gets nothing it could use.
    for origin in ("http://evil.example", "http://127.0.0.1:1", f"http://evil.example:{admin.rsplit(':', 1)[1]}"):
        pre = httpx.options(f"{url}/v1/chat/completions", timeout=5,
                            headers={"origin": origin, "access-control-request-method": "POST"})
        assert "access-control-allow-origin" not in pre.headers, origin
        r = httpx.get(f"{url}/v1/models", timeout=5, headers={"origin": origin, "authorization": f"Bearer {MASTER_KEY}"})
        assert "access-control-allow-origin" not in r.headers, origin


def test_settings_name_the_caller_and_the_data_plane(console) -> None:
    url, admin, _ = console
    s = httpx.get(f"{admin}/admin/ui/settings", headers={"authorization": f"Bearer {MASTER_KEY}"}, timeout=5)
    assert s.status_code == 200
    body = s.json()
    assert body["data_url"] == url and body["role"] == "admin" and body["subject"] == "master"
    assert httpx.get(f"{admin}/admin/ui/settings", timeout=5).status_code == 401
    page = httpx.get(f"{admin}/ui/", timeout=5)
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and url in csp
    assert httpx.get(f"{admin}/ui/js/nope.js", timeout=5).status_code == 404


def test_openapi_document_is_valid_and_names_every_route(console) -> None:
    import jsonschema  # openapi-spec-validator's own dependency
    from openapi_spec_validator import validate

    _, admin, _ = console
    doc = httpx.get(f"{admin}/admin/openapi.json", timeout=5).json()
    validate(doc)  # raises on any OpenAPI 3.1 violation
    assert doc["openapi"].startswith("3.1")
    paths = doc["paths"]
    for path, method in [("/admin/logs", "get"), ("/admin/keys", "post"), ("/admin/keys/{id}/rotate", "post"),
                         ("/admin/mcp/servers/{server}/tools/{tool}/approve", "post"), ("/admin/ui/settings", "get")]:
        assert method in paths[path], (method, path)
    # The answers match the shapes the document gives them.
    headers = {"authorization": f"Bearer {MASTER_KEY}"}
    for path in ("/admin/config", "/admin/usage", "/admin/logs", "/admin/keys", "/admin/ui/settings",
                 "/admin/usage/report", "/admin/mcp/servers", "/admin/rate_limits"):
        template = "/admin/{kind}" if path == "/admin/rate_limits" else path
        schema = paths[template]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
        body = httpx.get(f"{admin}{path}", headers=headers, timeout=10).json()
        jsonschema.validate(body, {**schema, "components": doc["components"]})


def test_a_newcomer_on_the_embedded_defaults_sees_their_traffic(tmp_path: Path) -> None:
    """The README's first command (`tollgate serve`, no config), its printed
    master key, the Quickstart's request: the console shows it."""
    port, admin_port = _free_port(), _free_port()
    env = {k: v for k, v in os.environ.items()
           if k not in ("TOLLGATE_MASTER_KEY", "OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY")}
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(_binary("TOLLGATE_BIN", "tollgate")), "serve",
                                 "--listen", f"127.0.0.1:{port}", "--admin-listen", f"127.0.0.1:{admin_port}"],
                                cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        url, admin = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{admin_port}"
        _wait_until(lambda: httpx.get(f"{url}/ready", timeout=1).status_code == 200, proc, log, "tollgate")
        printed = log.read_text().split("this run's master key is:", 1)
        assert len(printed) == 2, f"no master key printed:\n{log.read_text()}"
        key = printed[1].split()[0]
        r = httpx.post(f"{url}/v1/chat/completions", timeout=10,
                       headers={"authorization": f"Bearer {key}",
                                "x-tollgate-metadata": '{"team":"payments","project_id":"checkout"}'},
                       json={"model": "mock/echo", "messages": [{"role": "user", "content": "Hello!"}]})
        assert r.status_code == 200, r.text
        args = {"mode": "newcomer", "admin": admin, "data": url, "master": key,
                "shots": str(tmp_path), "chromium": str(CHROMIUM)}
        p = subprocess.run(["node", str(JS / "ui_browser.mjs"), json.dumps(args)],
                           capture_output=True, text=True, timeout=120, cwd=JS)
        assert p.returncode == 0, f"browser run failed:\n{p.stdout[-4000:]}\n{p.stderr[-4000:]}"
        result = json.loads(p.stdout.strip().splitlines()[-1])
        assert result["consoleErrors"] == [], result["consoleErrors"]
        assert result["dashboardRequests"] >= 1
    finally:
        _stop(proc)
