"""The MCP gateway as clients of the official Python `mcp` SDK use it.

One gateway runs for this module, in front of three copies of an MCP server
built with the same SDK (mcp_upstream.py): ``py`` over stdio (tollgate
spawns it), ``web`` over Streamable HTTP with a static credential, ``old``
over legacy HTTP+SSE; and a virtual server ``combo`` that composes tools of
``py`` and ``web``. Clients connect by URL with a tollgate key, exactly as
they would connect to the server itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, AsyncIterator, Iterator

import httpx
import httpx2
import mcp_types as types
import pytest
from mcp.client.client import Client
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from conftest import MASTER_KEY, _binary, _free_port, _stop, _wait_until

HERE = Path(__file__).resolve().parent
AGENT_KEY = "agent-key-for-mcp-tests"
UPSTREAM_SECRET = "upstream-credential-42"
MASK = "[REDACTED:AWS_ACCESS_KEY]"

CONFIG = """\
server:
  listen: "127.0.0.1:{port}"
  admin_listen: "127.0.0.1:{admin_port}"
store:
  url: "memory://"
auth:
  master_key: "${{TG_MASTER}}"
  keys:
    - name: agent
      key: "{agent_key}"
      tools: ["py/shout", "py/count", "py/ask", "combo-free/*"]
mcp_servers:
  - name: py
    command: "{python}"
    args: ["{upstream}"]
    env: {{ MCP_MARK: "stdio:" }}
  - name: web
    url: "http://127.0.0.1:{http_port}/mcp"
    auth: {{ type: static_header, header: authorization, value: "Bearer {secret}" }}
  - name: old
    sse_url: "http://127.0.0.1:{sse_port}/sse"
virtual_mcp_servers:
  - name: combo
    tools: ["py/shout", "py/leak", "web/shout", "web/whoami"]
    prefix: on_conflict
    overrides:
      "web/whoami": {{ rename: credential, description: "Shows the upstream credential." }}
guardrails:
  definitions:
    - {{ name: mask-secrets, type: secrets, action: mutate }}
    - {{ name: no-ssh-keys, type: deny_list, terms: [id_rsa] }}
    - {{ name: injection, type: prompt_injection, mode: audit }}
  enforce:
    mcp_tool_pre: [no-ssh-keys]
    mcp_tool_post: [mask-secrets, injection]
"""


def _serve_upstream(flag: str, port: int, work: Path, name: str) -> subprocess.Popen:
    log = work / f"{name}.log"
    out = open(log, "wb")
    proc = subprocess.Popen([sys.executable, str(HERE / "mcp_upstream.py"), flag, str(port)],
                            stdout=out, stderr=subprocess.STDOUT)

    def ready() -> bool:
        try:
            httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
            return True
        except httpx.TransportError:
            return False

    _wait_until(ready, proc, log, name)
    return proc


class Gateway:
    def __init__(self, url: str, admin: str) -> None:
        self.url = url
        self.admin = admin

    def mcp(self, name: str) -> str:
        return f"{self.url}/mcp/{name}"


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    work = tmp_path_factory.mktemp("mcp")
    http_port, sse_port = _free_port(), _free_port()
    upstreams = [_serve_upstream("--http", http_port, work, "web"), _serve_upstream("--sse", sse_port, work, "old")]
    tollgate = _binary("TOLLGATE_BIN", "tollgate")
    port, admin_port = _free_port(), _free_port()
    config = work / "tollgate.yaml"
    config.write_text(CONFIG.format(
        port=port, admin_port=admin_port, agent_key=AGENT_KEY, python=sys.executable,
        upstream=HERE / "mcp_upstream.py", http_port=http_port, sse_port=sse_port, secret=UPSTREAM_SECRET,
    ))
    log = work / "tollgate.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(tollgate), "serve", "--config", str(config)], cwd=work,
                                env={**os.environ, "TG_MASTER": MASTER_KEY}, stdout=out, stderr=subprocess.STDOUT)
        try:
            url = f"http://127.0.0.1:{port}"
            _wait_until(lambda: httpx.get(f"{url}/ready", timeout=1).status_code == 200, proc, log, "tollgate")
            yield Gateway(url, f"http://127.0.0.1:{admin_port}")
        finally:
            _stop(proc)
            for u in upstreams:
                _stop(u)


@contextlib.asynccontextmanager
async def connect(url: str, key: str, mode: str = "legacy", **kw: Any) -> AsyncIterator[Client]:
    """A Streamable HTTP client session through the gateway (`legacy`: the
    initialize handshake; `auto`: the SDK's default, which prefers 2026-07-28)."""
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=30)
    async with http, Client(streamable_http_client(url, http_client=http), mode=mode, **kw) as c:
        yield c


@contextlib.asynccontextmanager
async def connect_sse(url: str, key: str) -> AsyncIterator[Client]:
    """A legacy HTTP+SSE client session through the gateway."""
    async with Client(sse_client(url, headers={"Authorization": f"Bearer {key}"}), mode="legacy") as c:
        yield c


def run(coro):
    return asyncio.run(coro)


def text(result: types.CallToolResult) -> str:
    return "".join(getattr(c, "text", "") for c in result.content)


async def names(c: Client) -> list[str]:
    return sorted(t.name for t in (await c.list_tools()).tools)


# --- transports --------------------------------------------------------------


def test_a_stdio_server_is_served_over_streamable_http(gw: Gateway) -> None:
    async def go():
        async with connect(gw.mcp("py"), MASTER_KEY) as c:
            assert await names(c) == ["ask", "count", "inject", "leak", "shout", "whoami"]
            r = await c.call_tool("shout", {"text": "hello"})
            assert not r.is_error
            assert text(r) == "stdio:HELLO"
    run(go())


def test_the_sdks_default_negotiates_the_stateless_2026_revision(gw: Gateway) -> None:
    async def go():
        async with connect(gw.mcp("py"), MASTER_KEY, mode="auto") as c:
            assert c.session.protocol_version == "2026-07-28"
            assert await names(c) == ["ask", "count", "inject", "leak", "shout", "whoami"]
            assert text(await c.call_tool("shout", {"text": "modern"})) == "stdio:MODERN"
            assert text(await c.call_tool("leak", {})) == f"the deploy key is {MASK} keep it safe"
        async with connect(gw.mcp("py"), AGENT_KEY, mode="2026-07-28") as c:
            assert await names(c) == ["ask", "count", "shout"]
            with pytest.raises(MCPError):
                await c.call_tool("leak", {})
    run(go())


def test_a_streamable_http_upstream_gets_the_gateways_credential_never_the_clients(gw: Gateway) -> None:
    async def go():
        async with connect(gw.mcp("web"), MASTER_KEY) as c:
            assert text(await c.call_tool("shout", {"text": "over http"})) == "OVER HTTP"
            who = text(await c.call_tool("whoami", {}))
            assert who == f"scheme=Bearer ends={UPSTREAM_SECRET[-6:]}"
    run(go())


def test_a_legacy_sse_upstream_works_and_legacy_clients_work(gw: Gateway) -> None:
    async def go():
        async with connect(gw.mcp("old"), MASTER_KEY) as c:
            assert text(await c.call_tool("shout", {"text": "to sse"})) == "TO SSE"
        async with connect_sse(gw.mcp("py") + "/sse", MASTER_KEY) as c:
            assert "shout" in await names(c)
            assert text(await c.call_tool("shout", {"text": "from sse"})) == "stdio:FROM SSE"
    run(go())


def test_progress_and_sampling_are_relayed_both_ways(gw: Gateway) -> None:
    progress: list[tuple[float, float | None]] = []

    async def on_progress(p: float, total: float | None, message: str | None) -> None:
        progress.append((p, total))

    async def sampling(context, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
        asked = params.messages[0].content.text
        return types.CreateMessageResult(role="assistant", model="client-model",
                                         content=types.TextContent(type="text", text=f"42 ({asked})"))

    async def go():
        async with connect(gw.mcp("py"), MASTER_KEY, sampling_callback=sampling) as c:
            r = await c.call_tool("count", {"n": 3}, progress_callback=on_progress)
            assert text(r) == "counted to 3"
            r = await c.call_tool("ask", {"question": "meaning of life?"})
            assert text(r) == "the model said: 42 (meaning of life?)"
    run(go())
    assert progress == [(1, 3), (2, 3), (3, 3)]


# --- identity ------------------------------------------------------------------


def test_a_key_sees_exactly_the_tools_it_may_call(gw: Gateway) -> None:
    async def go():
        async with connect(gw.mcp("py"), AGENT_KEY) as c:
            assert await names(c) == ["ask", "count", "shout"]
            with pytest.raises(MCPError) as forbidden:
                await c.call_tool("leak", {})
            with pytest.raises(MCPError) as missing:
                await c.call_tool("no_such_tool", {})
            # Not allowed and not there are indistinguishable.
            assert forbidden.value.error.code == missing.value.error.code
            assert str(forbidden.value).replace("leak", "X") == str(missing.value).replace("no_such_tool", "X")
        async with connect(gw.mcp("web"), AGENT_KEY) as c:
            assert await names(c) == []
    run(go())


def test_a_client_without_a_valid_key_is_refused_with_a_challenge(gw: Gateway) -> None:
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
    accept = {"Accept": "application/json, text/event-stream"}
    r = httpx.post(gw.mcp("py"), json=init, headers=accept)
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith("Bearer")
    r = httpx.post(gw.mcp("py"), json=init, headers={**accept, "Authorization": "Bearer wrong"})
    assert r.status_code == 401
    r = httpx.post(gw.mcp("py"), json=init,
                   headers={**accept, "Authorization": f"Bearer {MASTER_KEY}", "Origin": "https://evil.example"})
    assert r.status_code == 403


# --- virtual servers -------------------------------------------------------------


def test_a_virtual_server_composes_prefixes_and_renames(gw: Gateway) -> None:
    async def go():
        async with connect(gw.mcp("combo"), MASTER_KEY) as c:
            tools = {t.name: t for t in (await c.list_tools()).tools}
            assert sorted(tools) == ["credential", "leak", "py__shout", "web__shout"]
            assert tools["credential"].description == "Shows the upstream credential."
            assert text(await c.call_tool("py__shout", {"text": "a"})) == "stdio:A"
            assert text(await c.call_tool("web__shout", {"text": "b"})) == "B"
            assert text(await c.call_tool("credential", {})) == f"scheme=Bearer ends={UPSTREAM_SECRET[-6:]}"
    run(go())


# --- guardrails ------------------------------------------------------------------


def test_a_secret_in_a_tool_result_is_masked_before_the_client_sees_it(gw: Gateway) -> None:
    async def go():
        async with connect(gw.mcp("py"), MASTER_KEY) as c:
            r = await c.call_tool("leak", {})
            assert text(r) == f"the deploy key is {MASK} keep it safe"
            assert "AKIA" not in str(r.structured_content)
    run(go())


def test_arguments_a_guardrail_blocks_never_reach_the_server(gw: Gateway) -> None:
    async def go():
        async with connect(gw.mcp("py"), MASTER_KEY) as c:
            r = await c.call_tool("shout", {"text": "cat ~/.ssh/id_rsa"})
            assert r.is_error
            assert "no-ssh-keys" in text(r)
            assert "ID_RSA" not in text(r)
    run(go())


def test_an_injection_in_a_tool_result_is_marked(gw: Gateway) -> None:
    async def go():
        async with connect(gw.mcp("py"), MASTER_KEY) as c:
            r = await c.call_tool("inject", {})
            marks = (r.meta or {}).get("io.tollgate/guardrails")
            assert marks and marks[0]["guardrail"] == "injection" and marks[0]["outcome"] == "flagged"
    run(go())


# --- the audit trail ---------------------------------------------------------------


def test_every_tool_call_allowed_or_refused_is_in_the_request_log(gw: Gateway) -> None:
    async def go():
        async with connect(gw.mcp("py"), AGENT_KEY) as c:
            await c.call_tool("shout", {"text": "logged"})
            with pytest.raises(MCPError):
                await c.call_tool("leak", {})
    run(go())
    admin = {"Authorization": f"Bearer {MASTER_KEY}"}

    def entries() -> list[dict]:
        r = httpx.get(f"{gw.admin}/admin/logs", params={"kind": "mcp", "subject": "key:agent"}, headers=admin)
        assert r.status_code == 200, r.text
        return r.json()["data"]

    for _ in range(50):
        got = entries()
        decisions = {(e["mcp"]["tool"], e["mcp"]["decision"]) for e in got}
        if ("shout", "allowed") in decisions and ("-", "refused") in decisions:
            break
        asyncio.run(asyncio.sleep(0.1))
    assert ("shout", "allowed") in decisions, got
    assert ("-", "refused") in decisions, got
    shout = next(e for e in got if e["mcp"]["tool"] == "shout")
    assert shout["kind"] == "mcp" and shout["mcp"]["server"] == "py"
    assert len(shout["mcp"]["arguments_sha256"]) == 64 and shout["mcp"]["result_bytes"] > 0
    assert "logged" not in str(shout), "arguments are hashed, never stored"


def test_the_admin_api_lists_servers_with_health_and_tools(gw: Gateway) -> None:
    r = httpx.get(f"{gw.admin}/admin/mcp/servers", params={"refresh": "true"},
                  headers={"Authorization": f"Bearer {MASTER_KEY}"}, timeout=30)
    assert r.status_code == 200, r.text
    servers = {s["name"]: s for s in r.json()["servers"]}
    assert set(servers) == {"py", "web", "old"}
    for s in servers.values():
        assert s["health"]["status"] == "ok", s
        assert "shout" in {t["name"] for t in s["tools"]}
    assert servers["web"]["transport"] == "streamable_http"
    assert UPSTREAM_SECRET not in r.text


# --- the official TypeScript SDK client ---------------------------------------------

JS = HERE / "js"


def js_client(url: str, key: str, transport: str, tool: str, args: dict) -> dict:
    """Runs js/mcp_client.mjs (the npm `@modelcontextprotocol/sdk` client)."""
    assert (JS / "node_modules" / "@modelcontextprotocol" / "sdk").is_dir(), \
        "run `npm ci` in tests/sdk/js (tests/sdk/run.sh does)"
    p = subprocess.run(["node", str(JS / "mcp_client.mjs"), url, key, transport, tool, json.dumps(args)],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout.strip().splitlines()[-1])
    assert "fatal" not in out, out["fatal"]
    return out


def test_the_typescript_sdk_client_over_streamable_http(gw: Gateway) -> None:
    out = js_client(gw.mcp("py"), MASTER_KEY, "http", "count", {"n": 2})
    assert out["server"]["name"] == "tollgate/py"
    assert out["sessionId"]
    assert out["tools"] == ["ask", "count", "inject", "leak", "shout", "whoami"]
    assert out["result"]["content"][0]["text"] == "counted to 2"
    assert out["progress"] == [[1, 2], [2, 2]]


def test_the_typescript_sdk_client_sees_only_its_tools_and_masked_results(gw: Gateway) -> None:
    out = js_client(gw.mcp("py"), AGENT_KEY, "http", "leak", {})
    assert out["tools"] == ["ask", "count", "shout"]
    assert out["error"]["code"] == -32602 and "Unknown tool: leak" in out["error"]["message"]
    out = js_client(gw.mcp("combo"), MASTER_KEY, "http", "leak", {})
    assert out["result"]["content"][0]["text"] == f"the deploy key is {MASK} keep it safe"


def test_the_typescript_sdk_client_over_legacy_sse(gw: Gateway) -> None:
    out = js_client(gw.mcp("web") + "/sse", MASTER_KEY, "sse", "shout", {"text": "js over sse"})
    assert out["result"]["content"][0]["text"] == "JS OVER SSE"
