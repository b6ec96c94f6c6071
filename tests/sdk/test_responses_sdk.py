"""The OpenAI Responses API as the official `openai` SDK and the OpenAI
Agents SDK call it, answered by OpenAI-compatible, Anthropic and Gemini
models behind tollgate.

What the mock answers (see crates/testkit): `upstream says: <last user
text>`; with tools declared, a call to the first tool with {"q": "x"};
after tool results, `tool said: <results>`.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path

import agents
import openai
import pytest

from conftest import MASTER_KEY, _free_port, serve_gateway

MODELS = ["up/gpt-4o-mini", "claude/claude-sonnet-4-5", "gem/gemini-2.5-flash", "mock/echo"]
TOOL_MODELS = ["up/gpt-4o-mini", "claude/claude-sonnet-4-5", "gem/gemini-2.5-flash"]

LOOKUP = {
    "type": "function",
    "name": "lookup",
    "description": "find a thing",
    "parameters": {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]},
}


@pytest.mark.parametrize("model", MODELS)
def test_create_answers_with_output_text_and_usage(client: openai.OpenAI, model: str) -> None:
    r = client.responses.create(model=model, instructions="be brief", input="hello there",
                                max_output_tokens=100, metadata={"ticket": "T-9"})
    assert r.status == "completed"
    assert r.id.startswith("resp_")
    assert "hello there" in r.output_text
    assert r.metadata == {"ticket": "T-9"}
    assert r.usage is not None and r.usage.output_tokens > 0
    assert r.usage.total_tokens == r.usage.input_tokens + r.usage.output_tokens
    # Stored: the SDK reads it back.
    assert client.responses.retrieve(r.id).output_text == r.output_text


@pytest.mark.parametrize("model", TOOL_MODELS)
def test_function_tools_round_trip_without_and_with_a_stream(client: openai.OpenAI, model: str) -> None:
    first = client.responses.create(model=model, input="look it up", tools=[LOOKUP])
    calls = [o for o in first.output if o.type == "function_call"]
    assert len(calls) == 1, first.output
    assert calls[0].name == "lookup" and json.loads(calls[0].arguments) == {"q": "x"}
    second = client.responses.create(
        model=model, tools=[LOOKUP], previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": calls[0].call_id, "output": "42 apples"}])
    assert second.output_text == "tool said: 42 apples"

    # The SDK's stream helper accumulates the events into the final response.
    with client.responses.stream(model=model, input="look it up", tools=[LOOKUP]) as stream:
        deltas = [e.delta for e in stream if e.type == "response.function_call_arguments.delta"]
        final = stream.get_final_response()
    call = next(o for o in final.output if o.type == "function_call")
    assert "".join(deltas) == call.arguments
    assert json.loads(call.arguments) == {"q": "x"}
    assert final.status == "completed" and final.usage.output_tokens > 0


@pytest.mark.parametrize("model", MODELS)
def test_streamed_text_arrives_as_deltas(client: openai.OpenAI, model: str) -> None:
    events = list(client.responses.create(model=model, input="stream me", stream=True))
    kinds = [e.type for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] == "response.completed"
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert "stream me" in text
    assert events[-1].response.output_text == text


def test_structured_output_and_errors(client: openai.OpenAI) -> None:
    r = client.responses.create(
        model="up/gpt-4o-mini", input="as json",
        text={"format": {"type": "json_schema", "name": "out", "schema": {"type": "object"}, "strict": True}})
    assert r.status == "completed"
    with pytest.raises(openai.BadRequestError) as e:
        client.responses.create(model="mock/echo", input="x", previous_response_id="resp_missing")
    assert "was not found" in str(e.value)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve("resp_missing")


def test_an_agent_runs_a_function_tool_through_tollgate(gateway) -> None:
    seen: list[str] = []

    @agents.function_tool
    def lookup(q: str) -> str:
        """Find a thing."""
        seen.append(q)
        return "42 apples"

    client = openai.AsyncOpenAI(base_url=f"{gateway.url}/v1", api_key=MASTER_KEY, max_retries=0)
    model = agents.OpenAIResponsesModel(model="claude/claude-sonnet-4-5", openai_client=client)
    agent = agents.Agent(name="helper", instructions="use the tool", tools=[lookup], model=model)
    agents.set_tracing_disabled(True)
    result = asyncio.run(agents.Runner.run(agent, "how many apples?"))
    assert seen == ["x"]
    assert result.final_output == "tool said: 42 apples"


JS = Path(__file__).resolve().parent / "js"


@pytest.mark.parametrize("model", TOOL_MODELS)
def test_the_vercel_ai_sdk_default_openai_model_runs_tools_and_streams(gateway, model: str) -> None:
    """`@ai-sdk/openai`'s default model speaks the Responses API; it keeps
    responses stored and sends earlier output items back by reference."""
    assert (JS / "node_modules" / "@ai-sdk" / "openai").is_dir(), "run `npm ci` in tests/sdk/js"
    p = subprocess.run(["node", str(JS / "vercel_ai.mjs"), f"{gateway.url}/v1", MASTER_KEY, model],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout.strip().splitlines()[-1])
    assert "error" not in out, out
    assert out["toolInputs"] == ["x"]
    assert out["steps"] == 2 and out["finishReason"] == "stop"
    assert "tool said:" in out["text"] and "42 apples" in out["text"]
    assert "stream me" in out["streamed"]
    assert out["usage"]["outputTokens"] > 0


NATIVE_CONFIG = """\
server: {{ listen: "127.0.0.1:{port}", admin_listen: "127.0.0.1:{admin_port}" }}
store: {{ url: "sqlite://{db}" }}
auth: {{ master_key: "${{TG_MASTER}}" }}
providers:
  - {{ name: oai, type: openai, base_url: "{upstream}/v1", api_key: "sk-oai", models: [{{ name: gpt-5 }}] }}
"""


def test_an_openai_model_is_called_through_its_own_responses_api(gateway, tmp_path) -> None:
    """An `openai` provider gets the request as written (OpenAI's own
    Responses API); the SDK reads its answers and streams unchanged."""
    port, admin_port = _free_port(), _free_port()
    config = NATIVE_CONFIG.format(port=port, admin_port=admin_port, db=tmp_path / "t.db", upstream=gateway.upstream_url)
    with serve_gateway(tmp_path, config, port, admin_port) as (url, _admin):
        with openai.OpenAI(base_url=f"{url}/v1", api_key=MASTER_KEY, max_retries=0, timeout=15) as client:
            first = client.responses.create(model="oai/gpt-5", input="look it up", tools=[LOOKUP])
            assert first.id.startswith("resp_up_")
            call = next(o for o in first.output if o.type == "function_call")
            second = client.responses.create(
                model="oai/gpt-5", tools=[LOOKUP], previous_response_id=first.id,
                input=[{"type": "function_call_output", "call_id": call.call_id, "output": "42 apples"}])
            assert second.output_text == "tool said: 42 apples"
            with client.responses.stream(model="oai/gpt-5", input="stream me") as stream:
                text = "".join(e.delta for e in stream if e.type == "response.output_text.delta")
                final = stream.get_final_response()
            assert text == final.output_text == "upstream says: stream me"
            assert client.responses.retrieve(final.id).output_text == text
