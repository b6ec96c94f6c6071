"""An A2A agent built with the official Python SDK (a2a-sdk 1.x), used as
tollgate's upstream in the A2A proxy tests.

    python tests/sdk/a2a_upstream.py --port N [--token T]

prints ``READY <port>`` once listening. Endpoints (all on 127.0.0.1:N):

- ``GET /.well-known/agent-card.json`` and the legacy ``/.well-known/agent.json``:
  the card (never behind the token);
- ``POST /rpc``: JSON-RPC, v1.0 method names and (compat) v0.3 ones;
- ``/rest/...``: the HTTP+JSON binding, v1.0 (``/rest/message:send``) and
  v0.3 (``/rest/v1/message:send``);
- ``GET /_seen`` / ``DELETE /_seen``: the requests received on the two
  endpoints above, with their headers, so tests can check what the gateway
  sent (never behind the token either).

Behaviour, by the text of the user's message:
- contains ``direct``: a single Message ``echo: <text>``, no task;
- contains ``stream``: a task with three artifact chunks 50 ms apart;
- contains ``slow``: a task that stays working (30 s) until canceled;
- anything else: a completed task with one artifact ``echo: <text>``.

With ``--token T`` every RPC/REST request needs ``Authorization: Bearer T``
(401 otherwise) and the card declares a bearer security scheme.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from a2a.helpers.proto_helpers import new_task_from_user_message, new_text_message, new_text_part
from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.events import EventQueue
from a2a.server.request_handlers import DefaultRequestHandler
from a2a.server.routes import create_agent_card_routes, create_jsonrpc_routes, create_rest_routes
from a2a.server.tasks import InMemoryTaskStore, TaskUpdater
from a2a.types.a2a_pb2 import (
    AgentCapabilities,
    AgentCard,
    AgentExtension,
    AgentInterface,
    AgentProvider,
    AgentSkill,
    HTTPAuthSecurityScheme,
    SecurityRequirement,
    SecurityScheme,
    StringList,
)

CARD_PATHS = ("/.well-known/agent-card.json", "/.well-known/agent.json")
# An extension the card advertises, so tests have a realistic A2A-Extensions value.
TRACE_EXT = "https://tollgate.test/a2a/ext/trace/v1"


class Echo(AgentExecutor):
    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        text = context.get_user_input()
        if "direct" in text:
            await event_queue.enqueue_event(
                new_text_message(f"echo: {text}", context_id=context.context_id))
            return
        # The first event must be the Task itself; the SDK keeps it in the store
        # so tasks/get and tasks/cancel can find it later.
        task = context.current_task or new_task_from_user_message(context.message)
        await event_queue.enqueue_event(task)
        updater = TaskUpdater(event_queue, task.id, task.context_id)
        await updater.start_work()
        if "slow" in text:
            # Long enough for a test to cancel it; cancel() below ends it early.
            await asyncio.sleep(30)
        if "stream" in text:
            for i in range(3):
                await updater.add_artifact([new_text_part(f"chunk {i}: {text}")],
                                           artifact_id="stream", name="stream",
                                           append=i > 0, last_chunk=i == 2)
                await asyncio.sleep(0.05)
        else:
            await updater.add_artifact([new_text_part(f"echo: {text}")], name="echo")
        await updater.complete()

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        # The SDK has already cancelled execute(); report the terminal state.
        await TaskUpdater(event_queue, context.task_id, context.context_id).cancel()


def agent_card(base: str, token: str | None) -> AgentCard:
    card = AgentCard(
        name="sdk-a2a-upstream",
        description="Echoes what it is told (A2A SDK test agent).",
        version="1.0.0",
        # v1.0 interfaces first: the 1.x client prefers 1.0. The SDK derives the
        # legacy v0.3 fields (url, preferredTransport, additionalInterfaces) from
        # the 0.3 entries, so 0.3 clients can read the same card.
        supported_interfaces=[
            AgentInterface(url=f"{base}/rpc", protocol_binding="JSONRPC", protocol_version="1.0"),
            AgentInterface(url=f"{base}/rest", protocol_binding="HTTP+JSON", protocol_version="1.0"),
            AgentInterface(url=f"{base}/rpc", protocol_binding="JSONRPC", protocol_version="0.3"),
            AgentInterface(url=f"{base}/rest", protocol_binding="HTTP+JSON", protocol_version="0.3"),
        ],
        # Non-endpoint URLs on the upstream host, as real agents have them.
        provider=AgentProvider(organization="tollgate tests", url="https://tollgate.test"),
        documentation_url=f"{base}/docs",
        icon_url=f"{base}/icon.png",
        capabilities=AgentCapabilities(
            streaming=True, push_notifications=False,
            extensions=[AgentExtension(uri=TRACE_EXT, description="echoes a trace id")]),
        default_input_modes=["text/plain"],
        default_output_modes=["text/plain"],
        skills=[
            AgentSkill(id="echo", name="Echo", description="Echoes the message back.",
                       tags=["echo"], examples=["hello"]),
            AgentSkill(id="stream", name="Stream", description="Answers in three chunks.",
                       tags=["stream"], examples=["stream this"]),
        ],
    )
    if token:
        card.security_schemes["bearer"].CopyFrom(SecurityScheme(
            http_auth_security_scheme=HTTPAuthSecurityScheme(scheme="bearer")))
        card.security_requirements.append(SecurityRequirement(schemes={"bearer": StringList()}))
    return card


class Guard:
    """ASGI middleware: records the headers of every RPC/REST request, enforces
    the bearer token, and echoes ``A2A-Extensions`` on the response (the SDK
    reads that header but never sends one back)."""

    def __init__(self, app, token: str | None, seen: list):
        self.app, self.token, self.seen = app, token, seen

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"] in CARD_PATHS or scope["path"] == "/_seen":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        self.seen.append({"path": scope["path"], "method": scope["method"], "headers": headers})
        if self.token and headers.get("authorization") != f"Bearer {self.token}":
            body = json.dumps({"error": "missing or wrong bearer token"}).encode()
            await send({"type": "http.response.start", "status": 401,
                        "headers": [(b"content-type", b"application/json"),
                                    (b"www-authenticate", b"Bearer")]})
            return await send({"type": "http.response.body", "body": body})
        ext = headers.get("a2a-extensions") or headers.get("x-a2a-extensions")

        async def send_with_ext(message):
            if ext and message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []),
                                      (b"a2a-extensions", ext.encode("latin-1"))]
            await send(message)

        await self.app(scope, receive, send_with_ext)


def build_app(port: int, token: str | None) -> Guard:
    card = agent_card(f"http://127.0.0.1:{port}", token)
    handler = DefaultRequestHandler(agent_executor=Echo(), task_store=InMemoryTaskStore(),
                                    agent_card=card)
    seen: list[dict] = []

    async def seen_endpoint(request: Request) -> Response:
        if request.method == "DELETE":
            seen.clear()
            return Response(status_code=204)
        return JSONResponse(seen)

    routes = [
        Route("/_seen", seen_endpoint, methods=["GET", "DELETE"]),
        *[r for path in CARD_PATHS for r in create_agent_card_routes(card, card_url=path)],
        *create_jsonrpc_routes(handler, "/rpc", enable_v0_3_compat=True),
        *create_rest_routes(handler, enable_v0_3_compat=True, path_prefix="/rest"),
    ]
    return Guard(Starlette(routes=routes), token, seen)


async def main(port: int, token: str | None) -> None:
    config = uvicorn.Config(build_app(port, token), host="127.0.0.1", port=port,
                            log_level="warning")
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    while not server.started:
        if serving.done():  # e.g. the port is taken: surface uvicorn's error
            return await serving
        await asyncio.sleep(0.02)
    print(f"READY {port}", flush=True)
    await serving


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--token")
    a = p.parse_args()
    try:
        asyncio.run(main(a.port, a.token))
    except KeyboardInterrupt:
        sys.exit(0)
