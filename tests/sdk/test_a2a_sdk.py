"""The A2A proxy as clients of the official Python `a2a-sdk` use it.

One gateway runs for this module, in front of an agent built with the same
SDK (a2a_upstream.py) that needs its own bearer token. The gateway serves
it as three agents with different policies: ``echo`` (plain), ``guarded``
(input and output guardrails) and ``limited`` (two calls a minute). Clients
resolve the card from the gateway and talk to the agent only through it —
JSON-RPC and REST, v1.0 and v0.3 method names, streaming and not.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest
from a2a.client import A2ACardResolver, ClientConfig, ClientFactory, create_client
from a2a.types.a2a_pb2 import (
    CancelTaskRequest,
    GetTaskRequest,
    Message,
    Part,
    Role,
    SendMessageRequest,
)

from conftest import MASTER_KEY, _free_port, _stop, _wait_until, serve_gateway

HERE = Path(__file__).resolve().parent
AGENT_KEY = "agent-key-for-a2a-tests"
NOBODY_KEY = "key-without-agents"
UPSTREAM_TOKEN = "upstream-agent-token-77"
TRACE_EXT = "https://tollgate.test/a2a/ext/trace/v1"

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
      agents: ["echo", "guarded", "limited"]
    - name: nobody
      key: "{nobody_key}"
      agents: ["someone-else"]
guardrails:
  definitions:
    - {{ name: no-launch-codes, type: deny_list, terms: ["launch code"] }}
    - {{ name: mask-pii, type: pii, action: mutate, entities: [EMAIL] }}
rate_limits:
  - id: limited-agent
    when: {{ agents: [limited] }}
    unit: agent_calls_per_minute
    limit: 2
a2a_agents:
  - name: echo
    url: "http://127.0.0.1:{up_port}"
    auth: {{ type: static_header, header: authorization, value: "Bearer {token}" }}
  - name: guarded
    url: "http://127.0.0.1:{up_port}"
    auth: {{ type: static_header, header: authorization, value: "Bearer {token}" }}
    guardrails: {{ input: [no-launch-codes], output: [mask-pii] }}
  - name: limited
    url: "http://127.0.0.1:{up_port}"
    auth: {{ type: static_header, header: authorization, value: "Bearer {token}" }}
"""


class Gateway:
    def __init__(self, url: str, admin: str, upstream: str) -> None:
        self.url = url
        self.admin = admin
        self.upstream = upstream

    def agent(self, name: str) -> str:
        return f"{self.url}/a2a/{name}"

    def seen(self) -> list[dict[str, Any]]:
        return httpx.get(f"{self.upstream}/_seen").json()

    def forget(self) -> None:
        httpx.delete(f"{self.upstream}/_seen")

    def logs(self, until=lambda entries: True, **q: str) -> list[dict[str, Any]]:
        """The a2a entries, once `until` holds of them (the log is written in batches)."""
        for _ in range(100):
            r = httpx.get(f"{self.admin}/admin/logs", params={"kind": "a2a", **q},
                          headers={"Authorization": f"Bearer {MASTER_KEY}"})
            assert r.status_code == 200, r.text
            entries = r.json()["data"]
            if until(entries):
                return entries
            time.sleep(0.05)
        return entries


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    work = tmp_path_factory.mktemp("a2a")
    up_port = _free_port()
    up_log = work / "upstream.log"
    with open(up_log, "wb") as out:
        upstream = subprocess.Popen(
            [sys.executable, str(HERE / "a2a_upstream.py"), "--port", str(up_port), "--token", UPSTREAM_TOKEN],
            stdout=out, stderr=subprocess.STDOUT)
    up_url = f"http://127.0.0.1:{up_port}"
    _wait_until(lambda: httpx.get(f"{up_url}/_seen", timeout=1).status_code == 200, upstream, up_log, "upstream")
    port, admin_port = _free_port(), _free_port()
    config = CONFIG.format(port=port, admin_port=admin_port, agent_key=AGENT_KEY, nobody_key=NOBODY_KEY,
                           up_port=up_port, token=UPSTREAM_TOKEN)
    try:
        with serve_gateway(work, config, port, admin_port) as (url, admin):
            yield Gateway(url, admin, up_url)
    finally:
        _stop(upstream)


def run(coro):
    return asyncio.run(coro)


def http(key: str = AGENT_KEY) -> httpx.AsyncClient:
    """What the SDK talks through: the key on every request, the card's too."""
    return httpx.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=30)


def request(text: str, **kw: Any) -> SendMessageRequest:
    return SendMessageRequest(
        message=Message(role=Role.ROLE_USER, message_id=str(uuid.uuid4()), parts=[Part(text=text)]), **kw)


async def collect(client, req: SendMessageRequest) -> list:
    return [ev async for ev in client.send_message(req)]


def artifact_texts(events: list) -> list[str]:
    out = []
    for ev in events:
        if ev.HasField("artifact_update"):
            out += [p.text for p in ev.artifact_update.artifact.parts]
        if ev.HasField("task"):
            out += [p.text for a in ev.task.artifacts for p in a.parts]
    return out


def final_task(events: list):
    tasks = [ev.task for ev in events if ev.HasField("task")]
    assert tasks, events
    return tasks[-1]


async def legacy_client(hc: httpx.AsyncClient, url: str, binding: str = "JSONRPC", **cfg: Any):
    """A client of the card's v0.3 interface (the SDK's compat transport)."""
    card = await A2ACardResolver(hc, url).get_agent_card()
    keep = [i for i in card.supported_interfaces if i.protocol_version == "0.3" and i.protocol_binding == binding]
    assert keep, card.supported_interfaces
    del card.supported_interfaces[:]
    card.supported_interfaces.extend(keep)
    bindings = [binding] if binding != "JSONRPC" else []
    return ClientFactory(ClientConfig(httpx_client=hc, supported_protocol_bindings=bindings, **cfg)).create(card)


# --- the card ------------------------------------------------------------------


def test_the_card_names_only_the_gateway_and_asks_for_a_gateway_key(gw: Gateway) -> None:
    r = httpx.get(f"{gw.agent('echo')}/.well-known/agent-card.json", headers={"Authorization": f"Bearer {AGENT_KEY}"})
    assert r.status_code == 200, r.text
    card = r.json()
    assert gw.upstream.split("//")[1] not in r.text, "no URL of the upstream may remain"
    urls = {(i["protocolBinding"], i["protocolVersion"]): i["url"] for i in card["supportedInterfaces"]}
    assert urls[("JSONRPC", "1.0")] == gw.agent("echo")
    assert urls[("JSONRPC", "0.3")] == gw.agent("echo")
    assert urls[("HTTP+JSON", "1.0")] == gw.agent("echo") + "/rest"
    assert card["url"] == gw.agent("echo"), "the v0.3 fields are rewritten too"
    assert list(card["securitySchemes"]) == ["tollgate"]
    assert card["skills"][0]["id"] == "echo"
    legacy = httpx.get(f"{gw.agent('echo')}/.well-known/agent.json", headers={"Authorization": f"Bearer {AGENT_KEY}"})
    assert legacy.json()["supportedInterfaces"] == card["supportedInterfaces"]


def test_the_card_needs_a_key_that_may_call_the_agent(gw: Gateway) -> None:
    path = f"{gw.agent('echo')}/.well-known/agent-card.json"
    anonymous = httpx.get(path)
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"].startswith("Bearer")
    other = httpx.get(path, headers={"Authorization": f"Bearer {NOBODY_KEY}"})
    assert other.status_code == 403
    assert "echo" in other.json()["error"]["message"]


# --- v1.0 JSON-RPC through the SDK ---------------------------------------------------


def test_a_client_from_the_gateways_card_sends_a_message(gw: Gateway) -> None:
    async def go():
        async with http() as hc:
            client = await create_client(gw.agent("echo"), client_config=ClientConfig(httpx_client=hc, streaming=False))
            task = final_task(await collect(client, request("hello agent")))
            assert task.status.state == 3  # TASK_STATE_COMPLETED
            assert [p.text for a in task.artifacts for p in a.parts] == ["echo: hello agent"]
            got = await client.get_task(GetTaskRequest(id=task.id))
            assert got.id == task.id
    run(go())


def test_a_streamed_answer_arrives_event_by_event(gw: Gateway) -> None:
    async def go():
        async with http() as hc:
            client = await create_client(gw.agent("echo"), client_config=ClientConfig(httpx_client=hc))
            events = await collect(client, request("stream it"))
            assert artifact_texts(events) == [f"chunk {i}: stream it" for i in range(3)]
            assert events[-1].HasField("status_update")
            assert events[-1].status_update.status.state == 3
    run(go())


def test_a_running_task_can_be_fetched_and_cancelled(gw: Gateway) -> None:
    async def go():
        async with http() as hc:
            client = await create_client(
                gw.agent("echo"), client_config=ClientConfig(httpx_client=hc, streaming=False, polling=True))
            task = final_task(await collect(client, request("slow one")))
            cancelled = await client.cancel_task(CancelTaskRequest(id=task.id))
            assert cancelled.status.state == 5  # TASK_STATE_CANCELED
        logs = gw.logs(lambda es: any(e["a2a"]["method"] == "CancelTask" for e in es))
        cancel = next(e for e in logs if e["a2a"]["method"] == "CancelTask" and e["a2a"]["task_id"] == task.id)
        assert cancel["a2a"]["task_state"] == "canceled"
    run(go())


# --- v0.3 and REST ---------------------------------------------------------------------


def test_a_v03_client_uses_the_old_method_names_through_the_same_endpoint(gw: Gateway) -> None:
    async def go():
        gw.forget()
        async with http() as hc:
            client = await legacy_client(hc, gw.agent("echo"), streaming=False)
            task = final_task(await collect(client, request("old school")))
            assert [p.text for a in task.artifacts for p in a.parts] == ["echo: old school"]
            streaming = await legacy_client(hc, gw.agent("echo"))
            events = await collect(streaming, request("stream legacy"))
            assert artifact_texts(events) == [f"chunk {i}: stream legacy" for i in range(3)]
        assert [s["path"] for s in gw.seen()] == ["/rpc", "/rpc"]
        assert [s["headers"].get("a2a-version") for s in gw.seen()] == ["0.3", "0.3"]
        logged = [e["a2a"]["method"] for e in gw.logs(lambda es: {"message/send", "message/stream"} <= {e["a2a"]["method"] for e in es})]
        assert "message/send" in logged and "message/stream" in logged
    run(go())


def test_the_rest_binding_is_relayed_in_both_generations(gw: Gateway) -> None:
    async def go():
        gw.forget()
        async with http() as hc:
            cfg = ClientConfig(httpx_client=hc, streaming=False, supported_protocol_bindings=["HTTP+JSON"])
            client = await create_client(gw.agent("echo"), client_config=cfg)
            task = final_task(await collect(client, request("over rest")))
            assert [p.text for a in task.artifacts for p in a.parts] == ["echo: over rest"]
            got = await client.get_task(GetTaskRequest(id=task.id))
            assert got.id == task.id
            old = await legacy_client(hc, gw.agent("echo"), "HTTP+JSON", streaming=False)
            task = final_task(await collect(old, request("old rest")))
            assert [p.text for a in task.artifacts for p in a.parts] == ["echo: old rest"]
        paths = [s["path"] for s in gw.seen()]
        assert paths == ["/rest/message:send", f"/rest/tasks/{got.id}", "/rest/v1/message:send"], paths
        rest = [e["a2a"] for e in gw.logs(lambda es: any(e["a2a"]["method"] == "POST /message:send" for e in es))
                if e["a2a"]["binding"] == "rest"]
        assert any(e["method"] == "POST /message:send" and e["task_state"] == "completed" for e in rest)
    run(go())


# --- what the agent sees -----------------------------------------------------------------


def test_the_agent_gets_the_gateways_credential_and_the_protocol_headers_only(gw: Gateway) -> None:
    gw.forget()
    body = {"jsonrpc": "2.0", "id": 1, "method": "SendMessage",
            "params": {"message": {"messageId": "m-1", "role": "ROLE_USER", "parts": [{"text": "headers"}]}}}
    r = httpx.post(gw.agent("echo"), json=body, headers={
        "Authorization": f"Bearer {AGENT_KEY}", "A2A-Version": "1.0", "A2A-Extensions": TRACE_EXT,
        "Cookie": "session=secret-cookie", "x-tollgate-metadata": json.dumps({"team": "search"})})
    assert r.status_code == 200, r.text
    assert r.json()["result"]["task"]["status"]["state"] == "TASK_STATE_COMPLETED"
    assert r.headers["a2a-extensions"] == TRACE_EXT, "the agent's protocol headers come back"
    assert r.headers["x-tollgate-request-id"]
    [seen] = gw.seen()
    h = seen["headers"]
    assert h["authorization"] == f"Bearer {UPSTREAM_TOKEN}"
    assert h["a2a-version"] == "1.0"
    assert h["a2a-extensions"] == TRACE_EXT
    assert AGENT_KEY not in json.dumps(h)
    assert "cookie" not in h and "x-tollgate-metadata" not in h
    assert h["traceparent"].startswith("00-")


def test_raw_json_rpc_with_both_generations_of_names(gw: Gateway) -> None:
    auth = {"Authorization": f"Bearer {AGENT_KEY}"}
    old = httpx.post(gw.agent("echo"), headers=auth, json={
        "jsonrpc": "2.0", "id": 7, "method": "message/send",
        "params": {"message": {"kind": "message", "messageId": "m-7", "role": "user",
                               "parts": [{"kind": "text", "text": "v03"}]}}})
    assert old.status_code == 200, old.text
    task = old.json()["result"]
    assert task["kind"] == "task" and task["status"]["state"] == "completed"
    got = httpx.post(gw.agent("echo"), headers=auth,
                     json={"jsonrpc": "2.0", "id": 8, "method": "tasks/get", "params": {"id": task["id"]}})
    assert got.json()["result"]["id"] == task["id"]
    new = httpx.post(gw.agent("echo"), headers={**auth, "A2A-Version": "1.0"},
                     json={"jsonrpc": "2.0", "id": 9, "method": "GetTask", "params": {"id": task["id"]}})
    assert new.json()["result"]["status"]["state"] == "TASK_STATE_COMPLETED"
    missing = httpx.post(gw.agent("echo"), headers={**auth, "A2A-Version": "1.0"},
                         json={"jsonrpc": "2.0", "id": 10, "method": "GetTask", "params": {"id": "nope"}})
    assert missing.json()["error"]["code"] == -32001, "the agent's own errors pass through"
    logs = gw.logs(lambda es: any(e["a2a"].get("rpc_error") for e in es))
    entry = next(e for e in logs if e["a2a"]["method"] == "GetTask" and e["a2a"].get("rpc_error"))
    assert entry["a2a"]["rpc_error"] == -32001


# --- policy ---------------------------------------------------------------------------------


def test_a_key_without_the_agent_is_refused_and_nothing_reaches_it(gw: Gateway) -> None:
    async def go():
        gw.forget()
        async with http(NOBODY_KEY) as hc:
            r = await hc.post(gw.agent("echo"), json={"jsonrpc": "2.0", "id": 1, "method": "SendMessage",
                                                       "params": {"message": {"parts": [{"text": "hi"}]}}})
            assert r.status_code == 403
            err = r.json()["error"]
            assert "echo" in err["message"] and err["data"]["code"] == "agent_not_allowed"
        async with httpx.AsyncClient() as anonymous:
            r = await anonymous.post(gw.agent("echo"), json={"jsonrpc": "2.0", "id": 1, "method": "GetTask"})
            assert r.status_code == 401
        assert gw.seen() == []
        refused = [e for e in gw.logs(lambda es: any(e["status"] == 403 for e in es)) if e["status"] == 403]
        assert refused and refused[0]["subject"] == "key:nobody" and refused[0]["a2a"]["decision"] == "refused"
    run(go())


def test_agent_calls_are_rate_limited(gw: Gateway) -> None:
    async def go():
        async with http() as hc:
            client = await create_client(gw.agent("limited"), client_config=ClientConfig(httpx_client=hc, streaming=False))
            for i in range(2):
                await collect(client, request(f"call {i}"))
            r = await hc.post(gw.agent("limited"), headers={"A2A-Version": "1.0"}, json={
                "jsonrpc": "2.0", "id": 3, "method": "SendMessage",
                "params": {"message": {"messageId": "m", "role": "ROLE_USER", "parts": [{"text": "third"}]}}})
            assert r.status_code == 429, r.text
            assert r.json()["error"]["data"]["code"] == "rate_limit_exceeded"
            assert int(r.headers["retry-after"]) >= 1
    run(go())


def test_guardrails_read_the_parts_going_in_and_coming_back(gw: Gateway) -> None:
    async def go():
        gw.forget()
        async with http() as hc:
            client = await create_client(gw.agent("guarded"), client_config=ClientConfig(httpx_client=hc, streaming=False))
            task = final_task(await collect(client, request("write to alice@example.com")))
            assert [p.text for a in task.artifacts for p in a.parts] == ["echo: write to <EMAIL_1>"]
            r = await hc.post(gw.agent("guarded"), headers={"A2A-Version": "1.0"}, json={
                "jsonrpc": "2.0", "id": 2, "method": "SendMessage",
                "params": {"message": {"messageId": "m", "role": "ROLE_USER",
                                       "parts": [{"text": "here is the launch code"}]}}})
            assert r.status_code == 400
            assert r.json()["error"]["data"] == {"code": "guardrail_blocked", "guardrail": "no-launch-codes",
                                                  "hook": "llm_input"}
        assert len(gw.seen()) == 1, "the blocked message never reached the agent"
        blocked = next(e for e in gw.logs(lambda es: any(e["a2a"]["decision"] == "blocked" for e in es))
                       if e["a2a"]["decision"] == "blocked")
        assert blocked["guardrails"][0]["name"] == "no-launch-codes"
    run(go())


def test_every_call_is_in_the_request_log_and_the_admin_api_shows_the_agents(gw: Gateway) -> None:
    entries = gw.logs()
    assert entries and all(e["kind"] == "a2a" for e in entries)
    sent = next(e for e in entries if e["a2a"]["method"] == "SendMessage" and e["status"] == 200)
    assert sent["subject"] == "key:agent"
    assert sent["a2a"]["agent"] in {"echo", "guarded", "limited"}
    assert sent["a2a"]["task_id"] and sent["a2a"]["binding"] == "jsonrpc"
    r = httpx.get(f"{gw.admin}/admin/a2a/agents", headers={"Authorization": f"Bearer {MASTER_KEY}"})
    assert r.status_code == 200, r.text
    agents = {a["name"]: a for a in r.json()["agents"]}
    assert set(agents) == {"echo", "guarded", "limited"}
    assert agents["echo"]["health"]["status"] == "ok"
    assert agents["guarded"]["guardrails"] == {"input": ["no-launch-codes"], "output": ["mask-pii"]}
    assert UPSTREAM_TOKEN not in r.text
    metrics = httpx.get(f"{gw.admin}/metrics", headers={"Authorization": f"Bearer {MASTER_KEY}"}).text
    assert 'tollgate_a2a_calls_total{agent="echo",operation="send",decision="allowed"}' in metrics
