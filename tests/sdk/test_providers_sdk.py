"""Every translating provider type as OpenAI SDK users see it.

The session gateway fronts Anthropic, Gemini, Vertex (Gemini and Claude),
Bedrock and Cohere, all served by the one `mock-upstream` process in each
provider's own wire format. An application changes only `model` and gets
OpenAI-shaped answers, streams, tool calls, embeddings and errors back.

What the mock answers (see crates/testkit): `upstream says: <last user
text>`; with tools declared, a call to the first tool with {"q": "x"} (and
a second one, to the second tool with {"q": "y"}, when the text contains
`[parallel]`); after tool results, `tool said: <results joined by " | ">`;
7 completion tokens.
"""

from __future__ import annotations

import base64
import json
import struct

import openai
import pytest

CLAUDE = "claude/claude-sonnet-4-5"
GEMINI = "gem/gemini-2.5-flash"
VERTEX_GEMINI = "vx/gemini-2.5-pro"
VERTEX_CLAUDE = "vx/claude-sonnet-4-5"
BEDROCK = "br/anthropic.claude-3-5-haiku-20241022-v1:0"
COHERE = "co/command-r-plus"

CHAT_MODELS = [CLAUDE, GEMINI, VERTEX_GEMINI, VERTEX_CLAUDE, BEDROCK, COHERE]
GEMINI_MODELS = {GEMINI, VERTEX_GEMINI}
CLAUDE_MODELS = [CLAUDE, VERTEX_CLAUDE]

# (prompt_tokens, cached_tokens) as each mock reports them, normalised:
# Anthropic and Bedrock count 11 fresh + 3 cache-read + 2 cache-write input
# tokens; Gemini 11 prompt tokens of which 3 cached; Cohere 11, no cache.
PROMPT_USAGE = {
    CLAUDE: (16, 3),
    VERTEX_CLAUDE: (16, 3),
    BEDROCK: (16, 3),
    GEMINI: (11, 3),
    VERTEX_GEMINI: (11, 3),
    COHERE: (11, None),
}

# How each provider's first tool-call id looks. Gemini gives none: the
# gateway makes them (`call_g…`), so only the prefix is known.
FIRST_CALL_ID = {
    CLAUDE: "toolu_mock_1",
    VERTEX_CLAUDE: "toolu_mock_1",
    BEDROCK: "tooluse_mock_1",
    COHERE: "call_mock_1",
}
GEMINI_ID_PREFIX = "call_g"
GEMINI_SIGNATURE = "gsig_mock_1"
ANTHROPIC_SIGNATURE = "sig_mock_1"

RESOLVED = "x-tollgate-resolved-model"


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def function_tool(name: str, properties: dict, required: list[str]) -> dict:
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": f"{name} for the tests",
            "parameters": {"type": "object", "properties": properties, "required": required},
        },
    }


LOOKUP = function_tool("lookup", {"q": {"type": "string"}}, ["q"])
CLOCK = function_tool("clock", {"q": {"type": "string"}}, [])
TOOLS = [LOOKUP, CLOCK]


def assert_call_id(model: str, call_id: str, position: int = 0) -> None:
    if model in GEMINI_MODELS:
        assert call_id.startswith(GEMINI_ID_PREFIX) and len(call_id) > len(GEMINI_ID_PREFIX), call_id
    elif position == 0:
        assert call_id == FIRST_CALL_ID[model]
    else:
        assert call_id and call_id != FIRST_CALL_ID[model], call_id


def collect_stream(stream) -> dict:
    """Drains a chat stream the way SDK users do: content, reasoning and
    tool-call deltas accumulated by index, the finish reason and usage."""
    out: dict = {"content": "", "reasoning": "", "thinking_blocks": [], "calls": {},
                 "finish": None, "usage": None, "chunks": 0, "content_chunks": 0}
    for chunk in stream:
        out["chunks"] += 1
        if chunk.usage is not None:
            out["usage"] = chunk.usage
        for choice in chunk.choices:
            assert choice.index == 0
            delta = choice.delta
            if delta.content:
                out["content"] += delta.content
                out["content_chunks"] += 1
            extra = delta.model_extra or {}
            out["reasoning"] += extra.get("reasoning_content") or ""
            out["thinking_blocks"] += extra.get("thinking_blocks") or []
            for d in delta.tool_calls or []:
                call = out["calls"].setdefault(d.index, {"id": None, "name": "", "arguments": "", "extra": {}})
                if d.id:
                    call["id"] = d.id
                if d.function and d.function.name:
                    call["name"] += d.function.name
                if d.function and d.function.arguments:
                    call["arguments"] += d.function.arguments
                call["extra"].update(d.model_extra or {})
            if choice.finish_reason:
                out["finish"] = choice.finish_reason
    return out


def assistant_from_stream(s: dict) -> dict:
    """The assistant message a client rebuilds from a streamed answer,
    provider extras (thought signatures, thinking blocks) included."""
    message: dict = {"role": "assistant", "content": s["content"] or None, "tool_calls": [
        {"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": c["arguments"]}, **c["extra"]}
        for _, c in sorted(s["calls"].items())
    ]}
    if s["thinking_blocks"]:
        message["reasoning_content"] = s["reasoning"]
        message["thinking_blocks"] = s["thinking_blocks"]
    return message


# --- text ---------------------------------------------------------------------


@pytest.mark.parametrize("model", CHAT_MODELS)
def test_text_answer_in_openai_shape(client: openai.OpenAI, model: str) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model=model, max_tokens=100,
        messages=[{"role": "system", "content": "be brief"}, *user("hello there")],
    )
    assert raw.status_code == 200
    assert raw.headers.get(RESOLVED) == model
    resp = raw.parse()
    assert resp.object == "chat.completion"
    assert resp.id
    assert resp.model == model.split("/", 1)[1]
    assert len(resp.choices) == 1
    choice = resp.choices[0]
    assert choice.finish_reason == "stop"
    assert choice.message.role == "assistant"
    assert choice.message.content == "upstream says: hello there"
    assert choice.message.tool_calls is None

    prompt, cached = PROMPT_USAGE[model]
    assert resp.usage is not None
    assert resp.usage.completion_tokens == 7
    assert resp.usage.prompt_tokens == prompt
    assert resp.usage.total_tokens == prompt + 7
    details = resp.usage.prompt_tokens_details
    assert (details.cached_tokens if details else None) == cached


@pytest.mark.parametrize("model", CHAT_MODELS)
def test_multi_turn_text_answers_the_last_user_turn(client: openai.OpenAI, model: str) -> None:
    resp = client.chat.completions.create(model=model, messages=[
        *user("first question"), {"role": "assistant", "content": "first answer"}, *user("second question"),
    ])
    assert resp.choices[0].message.content == "upstream says: second question"


@pytest.mark.parametrize("model", CHAT_MODELS)
def test_stream_text_with_usage_chunk(client: openai.OpenAI, model: str) -> None:
    stream = client.chat.completions.create(
        model=model, stream=True, stream_options={"include_usage": True}, messages=user("one two three"),
    )
    s = collect_stream(stream)
    assert s["content"] == "upstream says: one two three"
    # Streamed for real, not one chunk at the end.
    assert s["content_chunks"] > 1
    assert s["finish"] == "stop"
    assert s["calls"] == {}
    assert s["usage"] is not None, "include_usage asks for a final usage chunk"
    prompt, _ = PROMPT_USAGE[model]
    assert (s["usage"].prompt_tokens, s["usage"].completion_tokens) == (prompt, 7)


@pytest.mark.parametrize("model", CHAT_MODELS)
def test_stream_without_include_usage_has_no_usage_chunk(client: openai.OpenAI, model: str) -> None:
    s = collect_stream(client.chat.completions.create(model=model, stream=True, messages=user("quiet")))
    assert s["content"] == "upstream says: quiet"
    assert s["usage"] is None


# --- tools ----------------------------------------------------------------------


@pytest.mark.parametrize("model", CHAT_MODELS)
def test_tool_call_then_tool_result_turn(client: openai.OpenAI, model: str) -> None:
    messages: list = user("look it up")
    resp = client.chat.completions.create(model=model, tools=TOOLS, messages=messages)
    choice = resp.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls
    assert calls is not None and len(calls) == 1
    call = calls[0]
    assert call.type == "function"
    assert call.function.name == "lookup"
    assert json.loads(call.function.arguments) == {"q": "x"}
    assert_call_id(model, call.id)
    if model in GEMINI_MODELS:
        # Gemini's thought signature rides on the call and must come back.
        assert call.model_extra["extra_content"] == {"google": {"thought_signature": GEMINI_SIGNATURE}}

    # The second turn exactly as SDK users write it.
    messages.append(choice.message)
    messages.append({"role": "tool", "tool_call_id": call.id, "content": "42 apples"})
    resp = client.chat.completions.create(model=model, tools=TOOLS, messages=messages)
    assert resp.choices[0].finish_reason == "stop"
    assert resp.choices[0].message.content == "tool said: 42 apples"
    assert resp.choices[0].message.tool_calls is None


@pytest.mark.parametrize("model", sorted(GEMINI_MODELS))
def test_gemini_tool_call_replayed_without_its_signature(client: openai.OpenAI, model: str) -> None:
    # Clients that rebuild the assistant message by hand drop
    # `extra_content`; the gateway then sends Gemini its documented
    # "signature lost" value instead of failing the conversation.
    call = client.chat.completions.create(model=model, tools=TOOLS, messages=user("look")).choices[0].message.tool_calls[0]
    rebuilt = {"role": "assistant", "content": None, "tool_calls": [
        {"id": call.id, "type": "function", "function": {"name": call.function.name, "arguments": call.function.arguments}},
    ]}
    resp = client.chat.completions.create(model=model, tools=TOOLS, messages=[
        *user("look"), rebuilt, {"role": "tool", "tool_call_id": call.id, "content": "by hand"},
    ])
    assert resp.choices[0].message.content == "tool said: by hand"


@pytest.mark.parametrize("model", CHAT_MODELS)
def test_parallel_tool_calls_and_both_results(client: openai.OpenAI, model: str) -> None:
    messages: list = user("both please [parallel]")
    resp = client.chat.completions.create(model=model, tools=TOOLS, messages=messages)
    msg = resp.choices[0].message
    assert resp.choices[0].finish_reason == "tool_calls"
    assert msg.tool_calls is not None
    assert [(c.function.name, json.loads(c.function.arguments)) for c in msg.tool_calls] == [
        ("lookup", {"q": "x"}), ("clock", {"q": "y"}),
    ]
    first, second = msg.tool_calls
    assert first.id != second.id
    assert_call_id(model, first.id, 0)
    assert_call_id(model, second.id, 1)

    messages.append(msg)
    messages.append({"role": "tool", "tool_call_id": first.id, "content": "apples"})
    messages.append({"role": "tool", "tool_call_id": second.id, "content": "noon"})
    resp = client.chat.completions.create(model=model, tools=TOOLS, messages=messages)
    assert resp.choices[0].message.content == "tool said: apples | noon"


# Not Gemini: the gateway sends it `functionCallingConfig.mode: NONE`, which
# the mock does not act on (it calls a tool whenever tools are declared).
@pytest.mark.parametrize("model", [CLAUDE, VERTEX_CLAUDE, BEDROCK, COHERE])
def test_tool_choice_none_answers_with_text(client: openai.OpenAI, model: str) -> None:
    resp = client.chat.completions.create(model=model, tools=TOOLS, tool_choice="none", messages=user("no tools"))
    # "none" forbids tool calls. Anthropic and Cohere take it as such;
    # Bedrock's Converse API has no "none", so the tools must not be offered.
    assert resp.choices[0].finish_reason == "stop"
    assert resp.choices[0].message.content == "upstream says: no tools"


@pytest.mark.parametrize("model", CHAT_MODELS)
def test_streamed_tool_call_then_tool_result_turn(client: openai.OpenAI, model: str) -> None:
    messages: list = user("look it up")
    s = collect_stream(client.chat.completions.create(
        model=model, stream=True, stream_options={"include_usage": True}, tools=TOOLS, messages=messages,
    ))
    assert s["finish"] == "tool_calls"
    assert list(s["calls"]) == [0]
    call = s["calls"][0]
    assert call["name"] == "lookup"
    assert json.loads(call["arguments"]) == {"q": "x"}
    assert_call_id(model, call["id"])
    if model in GEMINI_MODELS:
        assert call["extra"]["extra_content"] == {"google": {"thought_signature": GEMINI_SIGNATURE}}
    assert s["usage"] is not None and s["usage"].completion_tokens == 7

    messages.append(assistant_from_stream(s))
    messages.append({"role": "tool", "tool_call_id": call["id"], "content": "streamed result"})
    s = collect_stream(client.chat.completions.create(model=model, stream=True, tools=TOOLS, messages=messages))
    assert s["content"] == "tool said: streamed result"
    assert s["finish"] == "stop"


# --- Anthropic extended thinking ------------------------------------------------


@pytest.mark.parametrize("model", CLAUDE_MODELS)
def test_thinking_blocks_are_replayed_across_a_tool_turn(client: openai.OpenAI, model: str) -> None:
    messages: list = user("think, then look it up")
    resp = client.chat.completions.create(
        model=model, max_tokens=3000, reasoning_effort="low", tools=TOOLS, messages=messages,
    )
    msg = resp.choices[0].message
    assert resp.choices[0].finish_reason == "tool_calls"
    extra = msg.model_extra
    assert extra["reasoning_content"] == "mock reasoning"
    assert [(b["type"], b["signature"]) for b in extra["thinking_blocks"]] == [("thinking", ANTHROPIC_SIGNATURE)]
    call = msg.tool_calls[0]
    assert call.id == "toolu_mock_1"

    # Appending the message as-is carries the signed thinking block back;
    # the mock, like Anthropic, refuses the turn without it.
    messages.append(msg)
    messages.append({"role": "tool", "tool_call_id": call.id, "content": "found"})
    resp = client.chat.completions.create(
        model=model, max_tokens=3000, reasoning_effort="low", tools=TOOLS, messages=messages,
    )
    assert resp.choices[0].finish_reason == "stop"
    assert resp.choices[0].message.content == "tool said: found"
    # The answer after the tool turn thinks again, with its own block.
    assert resp.choices[0].message.model_extra["reasoning_content"] == "mock reasoning"


@pytest.mark.parametrize("model", CLAUDE_MODELS)
def test_dropping_the_thinking_blocks_is_the_providers_400(client: openai.OpenAI, model: str) -> None:
    first = client.chat.completions.create(
        model=model, max_tokens=3000, reasoning_effort="low", tools=TOOLS, messages=user("think"),
    ).choices[0].message
    call = first.tool_calls[0]
    bare = {"role": "assistant", "content": None, "tool_calls": [call.model_dump(exclude_none=True)]}
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(
            model=model, max_tokens=3000, reasoning_effort="low", tools=TOOLS,
            messages=[*user("think"), bare, {"role": "tool", "tool_call_id": call.id, "content": "found"}],
        )
    assert e.value.status_code == 400
    assert "thinking" in e.value.message


def test_streamed_thinking_is_replayed_across_a_tool_turn(client: openai.OpenAI) -> None:
    messages: list = user("think, then look it up")
    s = collect_stream(client.chat.completions.create(
        model=CLAUDE, stream=True, max_tokens=3000, reasoning_effort="low", tools=TOOLS, messages=messages,
    ))
    assert s["reasoning"] == "mock reasoning"
    assert [b["signature"] for b in s["thinking_blocks"]] == [ANTHROPIC_SIGNATURE]
    assert s["finish"] == "tool_calls"
    call = s["calls"][0]
    assert (call["id"], call["name"], json.loads(call["arguments"])) == ("toolu_mock_1", "lookup", {"q": "x"})

    messages.append(assistant_from_stream(s))
    messages.append({"role": "tool", "tool_call_id": call["id"], "content": "found"})
    s = collect_stream(client.chat.completions.create(
        model=CLAUDE, stream=True, max_tokens=3000, reasoning_effort="low", tools=TOOLS, messages=messages,
    ))
    assert s["content"] == "tool said: found"
    assert s["finish"] == "stop"


# --- errors -------------------------------------------------------------------


@pytest.mark.parametrize("model", CHAT_MODELS)
def test_n_above_one_is_refused_with_a_400(client: openai.OpenAI, model: str) -> None:
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model=model, n=2, messages=user("twice"))
    assert e.value.status_code == 400
    assert "`n` > 1" in e.value.message
    assert (e.value.type, e.value.code) == ("invalid_request_error", "unsupported_by_provider")


def test_bedrock_refuses_an_image_url_it_cannot_fetch(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model=BEDROCK, messages=[{"role": "user", "content": [
            {"type": "text", "text": "what is this"},
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
        ]}])
    assert "base64 data URL" in e.value.message


def test_unknown_model_of_a_known_provider_is_a_404(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as e:
        client.chat.completions.create(model="claude/claude-nonexistent-1", messages=user("hi"))
    assert e.value.code == "model_not_found"


# --- embeddings -----------------------------------------------------------------

EMBEDDINGS = [
    ("gem/text-embedding-004", ["alpha", "beta"]),
    ("br/amazon.titan-embed-text-v2:0", "alpha"),
    ("co/embed-english-v3.0", ["alpha", "beta"]),
]
MOCK_VECTOR = [0.1, 0.2, 0.3]


@pytest.mark.parametrize(("model", "inputs"), EMBEDDINGS, ids=[m for m, _ in EMBEDDINGS])
def test_embeddings(client: openai.OpenAI, model: str, inputs: str | list[str]) -> None:
    # The SDK asks for base64 unless told otherwise and decodes it itself.
    resp = client.embeddings.create(model=model, input=inputs)
    count = len(inputs) if isinstance(inputs, list) else 1
    assert resp.object == "list"
    assert resp.model == model.split("/", 1)[1]
    assert [d.index for d in resp.data] == list(range(count))
    for d in resp.data:
        assert d.object == "embedding"
        assert d.embedding == pytest.approx(MOCK_VECTOR, abs=1e-6)
    assert resp.usage.prompt_tokens > 0
    assert resp.usage.total_tokens == resp.usage.prompt_tokens


@pytest.mark.parametrize(("model", "inputs"), EMBEDDINGS, ids=[m for m, _ in EMBEDDINGS])
def test_embeddings_as_floats(client: openai.OpenAI, model: str, inputs: str | list[str]) -> None:
    resp = client.embeddings.create(model=model, input=inputs, encoding_format="float")
    assert all(d.embedding == pytest.approx(MOCK_VECTOR) for d in resp.data)


@pytest.mark.parametrize(("model", "inputs"), EMBEDDINGS, ids=[m for m, _ in EMBEDDINGS])
def test_embeddings_as_base64_when_asked(client: openai.OpenAI, model: str, inputs: str | list[str]) -> None:
    # Asked for explicitly, the SDK hands the base64 string through as-is,
    # as OpenAI sends it: little-endian float32s.
    resp = client.embeddings.create(model=model, input=inputs, encoding_format="base64")
    for d in resp.data:
        assert isinstance(d.embedding, str), f"base64 was asked for, got {type(d.embedding).__name__}"
        raw = base64.b64decode(d.embedding)
        assert list(struct.unpack(f"<{len(raw) // 4}f", raw)) == pytest.approx(MOCK_VECTOR, abs=1e-6)


def test_a_chat_model_is_not_an_embedding_model(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as e:
        client.embeddings.create(model=CLAUDE, input="x")
    assert "no embeddings API" in e.value.message
