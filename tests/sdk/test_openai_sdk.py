"""The gateway as OpenAI SDK users see it.

Every test calls the running gateway through the official `openai` package
the way an application would, after changing only `base_url` and `api_key`.
Raw HTTP is used only for what the SDK cannot send (malformed bodies, no
credentials) and to look at the wire where the SDK hides it.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest
from pydantic import BaseModel

from conftest import MASTER_KEY, MAX_BODY_SIZE, REC_KEY, TRANSLATED_MODELS, Gateway, RecordingUpstream

ECHO = "mock/echo"
EMBED = "mock/embed"
UP_CHAT = "up/gpt-4o-mini"
UP_EMBED = "up/text-embedding-3-small"
REC_CHAT = "rec/rec-chat"
REC_EMBED = "rec/rec-embed"

REQUEST_ID = "x-tollgate-request-id"
RESOLVED = "x-tollgate-resolved-model"


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def tool(name: str, properties: dict, required: list[str]) -> dict:
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": f"{name} for the tests",
            "parameters": {"type": "object", "properties": properties, "required": required},
        },
    }


WEATHER = tool(
    "get_weather",
    {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}, "days": {"type": "integer"}},
    ["city", "unit"],
)
CLOCK = tool("get_time", {"zone": {"type": "string"}}, ["zone"])

MOCK_CALL_ID = re.compile(r"^call_mock_\d+_(\d+)$")


def collect_text(stream) -> tuple[str, list]:
    """Drains a chat stream; returns the concatenated content of choice 0 and every chunk."""
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices and c.choices[0].index == 0)
    return text, chunks


def collect_tool_calls(chunks) -> dict[int, dict]:
    """Accumulates streamed tool-call deltas by index, as SDK users do."""
    calls: dict[int, dict] = {}
    for c in chunks:
        for choice in c.choices:
            for d in choice.delta.tool_calls or []:
                call = calls.setdefault(d.index, {"id": None, "name": "", "arguments": ""})
                if d.id:
                    call["id"] = d.id
                if d.function and d.function.name:
                    call["name"] += d.function.name
                if d.function and d.function.arguments:
                    call["arguments"] += d.function.arguments
    return calls


def assert_server_timing(value: str | None, upstream: bool) -> None:
    assert value, "server-timing header missing"
    assert re.search(r"\bgateway;dur=\d+(\.\d+)?", value), value
    if upstream:
        assert re.search(r"\bupstream;dur=\d+(\.\d+)?", value), value


# --- chat, non-streaming ----------------------------------------------------


def test_chat_echoes_the_last_user_message(client: openai.OpenAI) -> None:
    text = "Hello from the SDK suite"
    resp = client.chat.completions.create(
        model=ECHO,
        messages=[{"role": "system", "content": "be brief"}, *user("earlier turn"),
                  {"role": "assistant", "content": "ok"}, *user(text)],
    )
    assert resp.object == "chat.completion"
    assert resp.id
    # The body names the model as the provider knows it; the gateway's own
    # `<provider>/<model>` name is in x-tollgate-resolved-model.
    assert resp.model in ("echo", ECHO)
    assert len(resp.choices) == 1
    choice = resp.choices[0]
    assert choice.index == 0
    assert choice.finish_reason == "stop"
    assert choice.message.role == "assistant"
    assert choice.message.content == text
    assert choice.message.tool_calls is None
    assert resp.usage is not None
    assert resp.usage.prompt_tokens > 0
    assert resp.usage.completion_tokens > 0
    assert resp.usage.total_tokens == resp.usage.prompt_tokens + resp.usage.completion_tokens


def test_chat_response_headers_say_what_ran(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(model=ECHO, messages=user("headers please"))
    assert raw.status_code == 200
    assert raw.headers.get(REQUEST_ID)
    assert raw.headers.get(RESOLVED) == ECHO
    assert_server_timing(raw.headers.get("server-timing"), upstream=True)
    # The raw wrapper still parses into the usual typed object.
    assert raw.parse().choices[0].message.content == "headers please"


def test_request_ids_are_unique(client: openai.OpenAI) -> None:
    ids = {
        client.chat.completions.with_raw_response.create(model=ECHO, messages=user(f"id {i}")).headers[REQUEST_ID]
        for i in range(5)
    }
    assert len(ids) == 5


@pytest.mark.parametrize(("bare", "canonical"), [("echo", ECHO), ("gpt-4o-mini", UP_CHAT)])
def test_bare_model_name_resolves_when_unambiguous(client: openai.OpenAI, bare: str, canonical: str) -> None:
    raw = client.chat.completions.with_raw_response.create(model=bare, messages=user("bare name"))
    assert raw.status_code == 200
    assert raw.headers.get(RESOLVED) == canonical


def test_content_parts_are_read_as_text(client: openai.OpenAI) -> None:
    resp = client.chat.completions.create(
        model=ECHO,
        messages=[{"role": "user", "content": [{"type": "text", "text": "two"}, {"type": "text", "text": "parts"}]}],
    )
    assert resp.choices[0].message.content == "two parts"


def test_n_returns_that_many_choices(client: openai.OpenAI) -> None:
    resp = client.chat.completions.create(model=ECHO, messages=user("twice over"), n=2)
    assert [c.index for c in resp.choices] == [0, 1]
    assert [c.message.content for c in resp.choices] == ["twice over", "twice over"]
    assert all(c.finish_reason == "stop" for c in resp.choices)


def test_max_tokens_truncates_with_finish_reason_length(client: openai.OpenAI) -> None:
    text = "a fairly long sentence that cannot possibly fit into two tokens of output"
    resp = client.chat.completions.create(model=ECHO, messages=user(text), max_tokens=2)
    choice = resp.choices[0]
    assert choice.finish_reason == "length"
    assert choice.message.content
    assert len(choice.message.content) < len(text)
    assert text.startswith(choice.message.content)


def test_response_format_json_object_gives_parseable_json(client: openai.OpenAI) -> None:
    text = 'quotes " and \\ backslashes survive'
    resp = client.chat.completions.create(
        model=ECHO, messages=user(text), response_format={"type": "json_object"}
    )
    assert json.loads(resp.choices[0].message.content) == {"echo": text}


class Echo(BaseModel):
    echo: str


def test_structured_output_parses_into_a_model(client: openai.OpenAI) -> None:
    # `parse` sends a strict json_schema response_format built from the
    # pydantic model and validates the reply against it.
    completions = client.chat.completions
    parse = getattr(completions, "parse", None) or client.beta.chat.completions.parse
    resp = parse(model=ECHO, messages=user("structured"), response_format=Echo)
    assert resp.choices[0].message.parsed == Echo(echo="structured")


def test_unknown_extra_fields_are_accepted(client: openai.OpenAI) -> None:
    resp = client.chat.completions.create(
        model=ECHO,
        messages=user("vendor fields"),
        extra_body={"vendor_x": {"a": 1}, "top_k": 5},
        temperature=0.2,
        seed=7,
        user="sdk-suite",
    )
    assert resp.choices[0].message.content == "vendor fields"


def test_concurrent_requests_get_their_own_answers(client: openai.OpenAI) -> None:
    def ask(i: int) -> str:
        r = client.chat.completions.create(model=ECHO, messages=user(f"request number {i}"))
        return r.choices[0].message.content

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(ask, range(16)))
    assert answers == [f"request number {i}" for i in range(16)]


# --- chat, streaming --------------------------------------------------------


def test_stream_deltas_rebuild_the_full_text(client: openai.OpenAI) -> None:
    text = "the quick brown fox jumps over the lazy dog"
    stream = client.chat.completions.create(
        model=ECHO, messages=user(text), stream=True, stream_options={"include_usage": True}
    )
    got, chunks = collect_text(stream)  # finishing the loop means the stream ended cleanly
    assert got == text
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    content_chunks = [c for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(content_chunks) > 1, "expected the text in several chunks"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    # include_usage: one final chunk with no choices and the usage.
    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None
    assert last.usage.completion_tokens > 0
    assert last.usage.total_tokens == last.usage.prompt_tokens + last.usage.completion_tokens
    assert all(c.usage is None for c in chunks[:-1])


def test_stream_without_include_usage_has_no_usage_chunk(client: openai.OpenAI) -> None:
    got, chunks = collect_text(client.chat.completions.create(model=ECHO, messages=user("no usage here"), stream=True))
    assert got == "no usage here"
    assert all(c.usage is None for c in chunks)
    assert all(c.choices for c in chunks)


def test_stream_headers_and_terminator(client: openai.OpenAI, http: httpx.Client) -> None:
    raw = client.chat.completions.with_raw_response.create(model=ECHO, messages=user("stream headers"), stream=True)
    assert raw.headers.get("content-type", "").startswith("text/event-stream")
    assert raw.headers.get(REQUEST_ID)
    assert raw.headers.get(RESOLVED) == ECHO
    assert collect_text(raw.parse())[0] == "stream headers"

    # The SDK stops quietly at [DONE] and also at a bare EOF, so look at the
    # wire: a clean stream ends with exactly one `data: [DONE]` event.
    body = {"model": ECHO, "messages": user("wire check"), "stream": True}
    with http.stream("POST", "/v1/chat/completions", json=body,
                     headers={"authorization": f"Bearer {MASTER_KEY}"}) as r:
        assert r.status_code == 200
        events = [e for e in r.read().decode().split("\n\n") if e.strip()]
    assert events[-1] == "data: [DONE]"
    assert sum(e == "data: [DONE]" for e in events) == 1
    for e in events[:-1]:
        assert e.startswith("data: ")
        json.loads(e[len("data: "):])


def test_stream_with_n_streams_every_choice(client: openai.OpenAI) -> None:
    chunks = list(client.chat.completions.create(model=ECHO, messages=user("both ways"), stream=True, n=2))
    texts = {0: "", 1: ""}
    for c in chunks:
        for ch in c.choices:
            texts[ch.index] += ch.delta.content or ""
    assert texts == {0: "both ways", 1: "both ways"}


def test_stream_helper_accumulates_the_final_completion(client: openai.OpenAI) -> None:
    # `chat.completions.stream` is the SDK's event-based helper; it rebuilds
    # the final completion from the chunks.
    with client.chat.completions.stream(model=ECHO, messages=user("helper based stream")) as stream:
        final = stream.get_final_completion()
    assert final.choices[0].message.content == "helper based stream"
    assert final.choices[0].finish_reason == "stop"


def test_async_client_streams(gateway: Gateway) -> None:
    async def run() -> str:
        async with openai.AsyncOpenAI(base_url=f"{gateway.url}/v1", api_key=MASTER_KEY, max_retries=0) as c:
            stream = await c.chat.completions.create(model=ECHO, messages=user("async works too"), stream=True)
            return "".join([ch.choices[0].delta.content or "" async for ch in stream if ch.choices])

    assert asyncio.run(run()) == "async works too"


def test_cut_stream_raises_while_iterating(client: openai.OpenAI) -> None:
    text = "one two three four five six seven eight [mock:cut]"
    # The status is 200 (the stream had started); the failure surfaces as
    # an error event the SDK turns into an exception mid-iteration.
    stream = client.chat.completions.create(model=ECHO, messages=user(text), stream=True)
    received = []
    with pytest.raises(openai.APIError) as err:
        for chunk in stream:
            received.append(chunk)
    assert not isinstance(err.value, openai.APIStatusError)
    assert err.value.message
    assert any(c.choices and c.choices[0].delta.content for c in received), "expected part of the answer first"
    assert "".join(c.choices[0].delta.content or "" for c in received if c.choices) != text


def test_stream_error_before_first_byte_is_an_http_status(client: openai.OpenAI) -> None:
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model=ECHO, messages=user("[mock:status=429]"), stream=True)


# --- tools --------------------------------------------------------------------


def test_tool_call_for_the_named_tool(client: openai.OpenAI) -> None:
    text = "please get_weather for Paris"
    resp = client.chat.completions.create(model=ECHO, messages=user(text), tools=[CLOCK, WEATHER])
    choice = resp.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls
    assert calls is not None and len(calls) == 1
    call = calls[0]
    assert call.type == "function"
    assert MOCK_CALL_ID.match(call.id), call.id
    assert call.function.name == "get_weather"
    # Required properties are filled: strings with the user text, enums with
    # their first value; optional ones are left out.
    assert json.loads(call.function.arguments) == {"city": text, "unit": "c"}


def test_first_tool_is_called_when_none_is_named(client: openai.OpenAI) -> None:
    resp = client.chat.completions.create(model=ECHO, messages=user("what now?"), tools=[CLOCK, WEATHER])
    calls = resp.choices[0].message.tool_calls
    assert [c.function.name for c in calls] == ["get_time"]


def test_parallel_tool_calls_for_two_named_tools(client: openai.OpenAI) -> None:
    resp = client.chat.completions.create(
        model=ECHO, messages=user("call get_weather and get_time"), tools=[WEATHER, CLOCK]
    )
    calls = resp.choices[0].message.tool_calls
    assert sorted(c.function.name for c in calls) == ["get_time", "get_weather"]
    assert len({c.id for c in calls}) == 2, "tool call ids must be distinct"
    assert sorted(int(MOCK_CALL_ID.match(c.id).group(1)) for c in calls) == [0, 1]
    for c in calls:
        assert isinstance(json.loads(c.function.arguments), dict)


def test_parallel_tool_calls_false_gives_one_call(client: openai.OpenAI) -> None:
    resp = client.chat.completions.create(
        model=ECHO, messages=user("call get_weather and get_time"), tools=[WEATHER, CLOCK], parallel_tool_calls=False
    )
    assert len(resp.choices[0].message.tool_calls) == 1


def test_tool_choice_forces_the_named_function(client: openai.OpenAI) -> None:
    resp = client.chat.completions.create(
        model=ECHO,
        messages=user("I only mention get_weather"),
        tools=[WEATHER, CLOCK],
        tool_choice={"type": "function", "function": {"name": "get_time"}},
    )
    calls = resp.choices[0].message.tool_calls
    assert [c.function.name for c in calls] == ["get_time"]
    assert json.loads(calls[0].function.arguments) == {"zone": "I only mention get_weather"}


def test_tool_choice_none_answers_in_text(client: openai.OpenAI) -> None:
    resp = client.chat.completions.create(
        model=ECHO, messages=user("no get_weather please"), tools=[WEATHER], tool_choice="none"
    )
    assert resp.choices[0].message.tool_calls is None
    assert resp.choices[0].message.content == "no get_weather please"
    assert resp.choices[0].finish_reason == "stop"


def test_tool_results_round_trip(client: openai.OpenAI) -> None:
    messages: list = user("use get_weather and get_time")
    first = client.chat.completions.create(model=ECHO, messages=messages, tools=[WEATHER, CLOCK])
    assistant = first.choices[0].message
    assert len(assistant.tool_calls) == 2
    # Feed the assistant message back as the SDK object itself, as the
    # OpenAI function-calling guide does.
    messages.append(assistant)
    results = {"get_weather": "sunny, 21C", "get_time": "12:00"}
    for call in assistant.tool_calls:
        messages.append({"role": "tool", "tool_call_id": call.id, "content": results[call.function.name]})
    second = client.chat.completions.create(model=ECHO, messages=messages, tools=[WEATHER, CLOCK])
    choice = second.choices[0]
    assert choice.finish_reason == "stop"
    assert choice.message.tool_calls is None
    expected = "; ".join(f"{c.id} → {results[c.function.name]}" for c in assistant.tool_calls)
    assert choice.message.content == f"Tool results: {expected}"


def test_streamed_tool_calls_accumulate_to_valid_json(client: openai.OpenAI) -> None:
    text = "get_weather and get_time, streamed"
    chunks = list(client.chat.completions.create(
        model=ECHO, messages=user(text), tools=[WEATHER, CLOCK], stream=True
    ))
    calls = collect_tool_calls(chunks)
    assert sorted(calls) == [0, 1]
    assert {c["name"] for c in calls.values()} == {"get_weather", "get_time"}
    for c in calls.values():
        assert MOCK_CALL_ID.match(c["id"] or ""), c
        assert isinstance(json.loads(c["arguments"]), dict)
    finishes = [ch.choices[0].finish_reason for ch in chunks if ch.choices and ch.choices[0].finish_reason]
    assert finishes == ["tool_calls"]


# --- embeddings ---------------------------------------------------------------


def test_embeddings_base64_default_is_decoded(client: openai.OpenAI) -> None:
    # Without encoding_format the SDK asks for base64 and decodes it itself.
    raw = client.embeddings.with_raw_response.create(model=EMBED, input="embed me")
    on_the_wire = raw.http_response.json()["data"][0]["embedding"]
    assert isinstance(on_the_wire, str), "the gateway should have answered in base64"
    assert raw.headers.get(RESOLVED) == EMBED
    resp = raw.parse()
    vec = resp.data[0].embedding
    assert len(vec) == 16
    assert all(isinstance(x, float) for x in vec)
    assert math.isclose(math.fsum(x * x for x in vec), 1.0, rel_tol=1e-4)
    assert resp.usage.prompt_tokens > 0


def test_embeddings_are_deterministic_and_follow_dimensions(client: openai.OpenAI) -> None:
    a = client.embeddings.create(model=EMBED, input="same text").data[0].embedding
    b = client.embeddings.create(model=EMBED, input="same text", encoding_format="float").data[0].embedding
    c = client.embeddings.create(model=EMBED, input="other text").data[0].embedding
    # base64 carries the same little-endian float32 values as the float form.
    assert a == pytest.approx(b, abs=1e-6)
    assert a != c
    small = client.embeddings.create(model=EMBED, input="same text", dimensions=8).data[0].embedding
    assert len(small) == 8


def test_embeddings_batch_keeps_order(client: openai.OpenAI) -> None:
    inputs = ["alpha", "beta", "gamma"]
    resp = client.embeddings.create(model=EMBED, input=inputs)
    assert [d.index for d in resp.data] == [0, 1, 2]
    singles = [client.embeddings.create(model=EMBED, input=t).data[0].embedding for t in inputs]
    for d, single in zip(resp.data, singles):
        assert d.embedding == pytest.approx(single, abs=1e-6)


# --- models -----------------------------------------------------------------


def test_models_list_for_the_master_key(client: openai.OpenAI) -> None:
    models = list(client.models.list())
    expected = {ECHO, EMBED, UP_CHAT, UP_EMBED, REC_CHAT, REC_EMBED, "flaky/unstable", ASSISTANT}
    assert {m.id for m in models} == expected | TRANSLATED_MODELS
    for m in models:
        assert m.object == "model"
        assert m.owned_by == ("tollgate" if m.id == ASSISTANT else m.id.split("/")[0])


def test_models_list_for_a_limited_key(limited_client: openai.OpenAI) -> None:
    assert {m.id for m in limited_client.models.list()} == {ECHO, EMBED}


def test_models_retrieve_respects_the_key(limited_client: openai.OpenAI) -> None:
    assert limited_client.models.retrieve(ECHO).id == ECHO
    # A model the key may not use does not exist as far as it can tell.
    with pytest.raises(openai.NotFoundError):
        limited_client.models.retrieve(UP_CHAT)


def test_limited_key_can_use_its_models(limited_client: openai.OpenAI) -> None:
    resp = limited_client.chat.completions.create(model=ECHO, messages=user("allowed"))
    assert resp.choices[0].message.content == "allowed"
    assert len(limited_client.embeddings.create(model=EMBED, input="allowed").data[0].embedding) == 16


# --- errors -------------------------------------------------------------------


def assert_openai_error_shape(response: httpx.Response) -> dict:
    body = response.json()
    assert set(body) == {"error"}
    assert {"message", "type", "param", "code"} <= set(body["error"])
    assert body["error"]["message"]
    return body["error"]


def test_bad_key_is_an_authentication_error(gateway: Gateway) -> None:
    with openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="sk-not-a-real-key", max_retries=0) as bad:
        with pytest.raises(openai.AuthenticationError) as err:
            bad.chat.completions.create(model=ECHO, messages=user("hi"))
    assert err.value.status_code == 401
    assert err.value.code == "invalid_api_key"
    assert_openai_error_shape(err.value.response)
    assert "sk-not-a-real-key" not in err.value.response.text


def test_missing_key_is_401(http: httpx.Client) -> None:
    r = http.post("/v1/chat/completions", json={"model": ECHO, "messages": user("hi")})
    assert r.status_code == 401
    assert assert_openai_error_shape(r)["code"] == "invalid_api_key"


def test_limited_key_is_refused_other_models(limited_client: openai.OpenAI) -> None:
    with pytest.raises(openai.PermissionDeniedError) as err:
        limited_client.chat.completions.create(model=UP_CHAT, messages=user("hi"))
    assert err.value.status_code == 403
    assert err.value.code == "model_not_allowed"
    assert UP_CHAT in err.value.body["message"]
    with pytest.raises(openai.PermissionDeniedError):
        limited_client.embeddings.create(model=UP_EMBED, input="hi", encoding_format="float")


def test_unknown_model_is_not_found(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as err:
        client.chat.completions.create(model="nowhere/no-such-model", messages=user("hi"))
    assert err.value.status_code == 404
    assert err.value.code == "model_not_found"
    assert "nowhere/no-such-model" in err.value.body["message"]


def test_missing_messages_is_a_bad_request(client: openai.OpenAI) -> None:
    # The typed method will not send this, so go through the client's
    # generic post, which still applies auth and error mapping.
    with pytest.raises(openai.BadRequestError) as err:
        client.post("/chat/completions", body={"model": ECHO}, cast_to=object)
    assert err.value.status_code == 400
    assert err.value.param == "messages"


def test_malformed_json_is_a_bad_request(http: httpx.Client) -> None:
    r = http.post("/v1/chat/completions", content=b'{"model": "mock/echo", "messages": [',
                  headers={"authorization": f"Bearer {MASTER_KEY}", "content-type": "application/json"})
    assert r.status_code == 400
    assert_openai_error_shape(r)


def test_body_over_the_limit_is_413(client: openai.OpenAI) -> None:
    with pytest.raises(openai.APIStatusError) as err:
        client.chat.completions.create(model=ECHO, messages=user("x" * (MAX_BODY_SIZE + 1024)))
    assert err.value.status_code == 413
    assert_openai_error_shape(err.value.response)


def test_upstream_429_is_a_rate_limit_error(client: openai.OpenAI) -> None:
    with pytest.raises(openai.RateLimitError) as err:
        client.chat.completions.create(model=ECHO, messages=user("slow down [mock:status=429]"))
    assert err.value.status_code == 429
    assert err.value.response.headers.get("retry-after")
    assert_openai_error_shape(err.value.response)


@pytest.mark.parametrize(("directive", "status"), [("503", 503), ("500", 502)])
def test_upstream_server_errors(client: openai.OpenAI, directive: str, status: int) -> None:
    with pytest.raises(openai.InternalServerError) as err:
        client.chat.completions.create(model=ECHO, messages=user(f"[mock:status={directive}]"))
    assert err.value.status_code == status
    assert_openai_error_shape(err.value.response)


def test_error_responses_carry_a_request_id(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as err:
        client.chat.completions.create(model="nowhere/x", messages=user("hi"))
    assert err.value.response.headers.get(REQUEST_ID)
    assert_server_timing(err.value.response.headers.get("server-timing"), upstream=False)


@pytest.mark.parametrize("path", ["/v1/models", "/v1/models/mock/echo", "/v1/no-such-route"])
def test_every_api_response_carries_the_gateway_headers(http: httpx.Client, path: str) -> None:
    r = http.get(path, headers={"authorization": f"Bearer {MASTER_KEY}"})
    assert r.headers.get(REQUEST_ID), f"{path}: no {REQUEST_ID}"
    assert_server_timing(r.headers.get("server-timing"), upstream=False)


# --- passthrough to an OpenAI-compatible upstream ---------------------------


def test_upstream_chat(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(model=UP_CHAT, messages=user("hello upstream"))
    assert raw.headers.get(RESOLVED) == UP_CHAT
    assert_server_timing(raw.headers.get("server-timing"), upstream=True)
    resp = raw.parse()
    assert resp.choices[0].message.content == "upstream says: hello upstream"
    assert resp.choices[0].finish_reason == "stop"
    assert (resp.usage.prompt_tokens, resp.usage.completion_tokens, resp.usage.total_tokens) == (11, 7, 18)
    # The gateway sends the provider's own model name upstream.
    assert resp.model == "gpt-4o-mini"


def test_upstream_stream(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model=UP_CHAT, messages=user("stream me please"), stream=True, stream_options={"include_usage": True}
    )
    got, chunks = collect_text(stream)
    assert got == "upstream says: stream me please"
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    assert chunks[-1].choices == []
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (11, 7)


def test_upstream_tools(client: openai.OpenAI) -> None:
    resp = client.chat.completions.create(model=UP_CHAT, messages=user("weather?"), tools=[WEATHER])
    choice = resp.choices[0]
    assert choice.finish_reason == "tool_calls"
    [call] = choice.message.tool_calls
    assert (call.id, call.function.name) == ("call_up_1", "get_weather")
    assert json.loads(call.function.arguments) == {"q": "x"}


def test_upstream_streamed_tools(client: openai.OpenAI) -> None:
    chunks = list(client.chat.completions.create(
        model=UP_CHAT, messages=user("weather?"), tools=[WEATHER], stream=True
    ))
    calls = collect_tool_calls(chunks)
    assert calls == {0: {"id": "call_up_1", "name": "get_weather", "arguments": '{"q":"x"}'}}


def test_upstream_embeddings_float(client: openai.OpenAI) -> None:
    # mock-upstream only speaks float, so ask for it explicitly.
    raw = client.embeddings.with_raw_response.create(model=UP_EMBED, input=["a", "b"], encoding_format="float")
    assert raw.headers.get(RESOLVED) == UP_EMBED
    resp = raw.parse()
    assert [d.embedding for d in resp.data] == [[0.1, 0.2, 0.3], [0.1, 0.2, 0.3]]


def test_upstream_accepts_unknown_extra_fields(client: openai.OpenAI) -> None:
    resp = client.chat.completions.create(
        model=UP_CHAT, messages=user("extra"), extra_body={"vendor_x": {"a": 1}}
    )
    assert resp.choices[0].message.content == "upstream says: extra"


def test_upstream_gets_the_provider_key_not_the_callers(client: openai.OpenAI, recorder: RecordingUpstream) -> None:
    marker = "credential-check-7f3a"
    resp = client.chat.completions.create(model=REC_CHAT, messages=user(marker))
    assert resp.choices[0].message.content == f"recorded: {marker}"
    seen = recorder.find(marker)
    assert seen.path == "/v1/chat/completions"
    assert seen.headers.get("authorization") == f"Bearer {REC_KEY}"
    for name, value in seen.headers.items():
        assert MASTER_KEY not in value, f"the caller's key leaked upstream in {name}"


def test_upstream_gets_fields_untouched_and_its_own_model_name(client: openai.OpenAI, recorder: RecordingUpstream) -> None:
    marker = "passthrough-check-91c2"
    client.chat.completions.create(
        model=REC_CHAT,
        messages=user(marker),
        temperature=0.3,
        extra_body={"vendor_x": {"a": 1, "nested": [1, "two", None]}},
    )
    body = recorder.find(marker).body
    assert body["model"] == "rec-chat"
    assert body["vendor_x"] == {"a": 1, "nested": [1, "two", None]}
    assert body["temperature"] == 0.3
    assert body["messages"] == user(marker)


def test_upstream_embeddings_get_the_provider_key(client: openai.OpenAI, recorder: RecordingUpstream) -> None:
    marker = "embedding-check-5d0e"
    resp = client.embeddings.create(model=REC_EMBED, input=[marker], encoding_format="float")
    assert resp.data[0].embedding == [0.5, 0.25]
    seen = recorder.find(marker)
    assert seen.path == "/v1/embeddings"
    assert seen.headers.get("authorization") == f"Bearer {REC_KEY}"
    assert seen.body["model"] == "rec-embed"


def test_upstream_429_keeps_retry_after_and_message(client: openai.OpenAI) -> None:
    with pytest.raises(openai.RateLimitError) as err:
        client.chat.completions.create(model=REC_CHAT, messages=user("[rec:status=429]"))
    assert err.value.response.headers.get("retry-after") == "7"
    assert "recorder refused with 429" in err.value.body["message"]


@pytest.mark.parametrize(("upstream", "expected"), [(500, 502), (503, 503), (401, 502), (400, 400)])
def test_upstream_statuses_are_normalised(client: openai.OpenAI, upstream: int, expected: int) -> None:
    # A provider refusing the gateway's credential (401) is the gateway's
    # problem, not the caller's: it must not look like a bad client key.
    with pytest.raises(openai.APIStatusError) as err:
        client.chat.completions.create(model=REC_CHAT, messages=user(f"[rec:status={upstream}]"))
    assert err.value.status_code == expected
    assert_openai_error_shape(err.value.response)


def test_upstream_stream_without_done_is_an_error(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model=REC_CHAT, messages=user("one two three four five [rec:truncate]"), stream=True
    )
    received = []
    with pytest.raises(openai.APIError) as err:
        for chunk in stream:
            received.append(chunk)
    assert not isinstance(err.value, openai.APIStatusError)
    assert received, "the chunks before the cut should have been relayed"


# --- virtual models -------------------------------------------------------------

ASSISTANT = "prod/assistant"


def test_a_virtual_model_falls_back_past_a_failing_provider(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(model=ASSISTANT, messages=user("still there?"))
    assert raw.headers["x-tollgate-resolved-model"] == "mock/echo"
    assert raw.headers["x-tollgate-attempts"] == "2"
    assert raw.parse().choices[0].message.content == "still there?"


def test_a_virtual_model_streams_after_falling_back(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(model=ASSISTANT, stream=True, messages=user("a b c"))
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "a b c"


def test_a_virtual_model_is_retrievable(client: openai.OpenAI) -> None:
    m = client.models.retrieve(ASSISTANT)
    assert (m.id, m.owned_by) == (ASSISTANT, "tollgate")
