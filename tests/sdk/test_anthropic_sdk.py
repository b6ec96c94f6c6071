"""`POST /v1/messages` as users of the official `anthropic` SDK see it.

The SDK is pointed at the gateway (`base_url` = the gateway root, the key
as `x-api-key`) and talks to models of any provider: an OpenAI-compatible
one, Gemini and Bedrock through translation, and Anthropic itself, whose
requests pass through as written. Answers, streams, tool use, token counts
and errors must all be what the SDK expects from Anthropic.

The mock behind every provider answers `upstream says: <last user text>`,
calls the first declared tool with {"q": "x"} (and the second with
{"q": "y"} on `[parallel]`) until the conversation carries tool results,
then answers `tool said: <results joined by " | ">`; 7 output tokens.
"""

from __future__ import annotations

import json

import anthropic
import pytest

from conftest import MASTER_KEY, Gateway

OPENAI_COMPAT = "up/gpt-4o-mini"
GEMINI = "gem/gemini-2.5-flash"
BEDROCK = "br/anthropic.claude-3-5-haiku-20241022-v1:0"
CLAUDE = "claude/claude-sonnet-4-5"

MODELS = [OPENAI_COMPAT, GEMINI, BEDROCK, CLAUDE]
# The OpenAI-compatible mock makes one tool call at most, reads only string
# user content and ignores max_tokens, so some tests leave it out.
NATIVE_FORMAT_MODELS = [GEMINI, BEDROCK, CLAUDE]

# (input_tokens, cache_read_input_tokens, cache_creation_input_tokens) in
# Anthropic's sense, where input_tokens excludes the cached part. Gemini
# reports 11 prompt tokens of which 3 cached; Bedrock and Anthropic 11 fresh,
# 3 read and 2 written; the OpenAI-compatible mock 11, no cache.
USAGE = {
    OPENAI_COMPAT: (11, 0, 0),
    GEMINI: (8, 3, 0),
    BEDROCK: (11, 3, 2),
    CLAUDE: (11, 3, 2),
}

FIRST_TOOL_ID = {OPENAI_COMPAT: "call_up_1", BEDROCK: "tooluse_mock_1", CLAUDE: "toolu_mock_1"}
GEMINI_ID_PREFIX = "call_g"  # Gemini gives no ids; the gateway makes them

TOOLS = [
    {"name": "lookup", "description": "find a thing",
     "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}},
    {"name": "clock", "description": "tell the time",
     "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}}},
]


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def bare(model: str) -> str:
    return model.split("/", 1)[1]


def assert_first_tool_id(model: str, tool_id: str) -> None:
    if model == GEMINI:
        assert tool_id.startswith(GEMINI_ID_PREFIX) and len(tool_id) > len(GEMINI_ID_PREFIX), tool_id
    else:
        assert tool_id == FIRST_TOOL_ID[model]


def tool_uses(message) -> list:
    return [b for b in message.content if b.type == "tool_use"]


def assert_usage(model: str, usage) -> None:
    fresh, read, written = USAGE[model]
    assert usage.input_tokens == fresh
    assert (usage.cache_read_input_tokens or 0) == read
    assert (usage.cache_creation_input_tokens or 0) == written
    assert usage.output_tokens == 7


# --- non-streaming ------------------------------------------------------------


@pytest.mark.parametrize("model", MODELS)
def test_create_answers_in_anthropic_shape(anthropic_client: anthropic.Anthropic, model: str) -> None:
    msg = anthropic_client.messages.create(
        model=model, max_tokens=200, system="be brief", messages=user("hello there"),
    )
    assert msg.type == "message"
    assert msg.role == "assistant"
    assert msg.id.startswith("msg_")
    # Translated answers name the model as the client did; Anthropic's own
    # answer comes back as the provider wrote it.
    assert msg.model in (model, bare(model))
    assert [(b.type, b.text) for b in msg.content] == [("text", "upstream says: hello there")]
    assert msg.stop_reason == "end_turn"
    assert msg.stop_sequence is None
    assert_usage(model, msg.usage)


@pytest.mark.parametrize("model", MODELS)
def test_multi_turn_answers_the_last_user_turn(anthropic_client: anthropic.Anthropic, model: str) -> None:
    msg = anthropic_client.messages.create(model=model, max_tokens=200, messages=[
        *user("first question"), {"role": "assistant", "content": "first answer"}, *user("second question"),
    ])
    assert msg.content[0].text == "upstream says: second question"


@pytest.mark.parametrize("model", NATIVE_FORMAT_MODELS)
def test_text_blocks_are_read_as_text(anthropic_client: anthropic.Anthropic, model: str) -> None:
    msg = anthropic_client.messages.create(model=model, max_tokens=200, messages=[{"role": "user", "content": [
        {"type": "text", "text": "two "}, {"type": "text", "text": "blocks"},
    ]}])
    assert msg.content[0].text == "upstream says: two blocks"


@pytest.mark.parametrize("model", NATIVE_FORMAT_MODELS)
def test_running_out_of_tokens_is_stop_reason_max_tokens(anthropic_client: anthropic.Anthropic, model: str) -> None:
    msg = anthropic_client.messages.create(model=model, max_tokens=3, messages=user("a long answer please"))
    assert msg.stop_reason == "max_tokens"
    assert msg.content[0].text == "upstream"


def test_stop_sequences_reach_anthropic(anthropic_client: anthropic.Anthropic) -> None:
    msg = anthropic_client.messages.create(
        model=CLAUDE, max_tokens=200, stop_sequences=["there"], messages=user("hello there"),
    )
    assert msg.stop_reason == "stop_sequence"
    assert msg.stop_sequence == "there"
    assert msg.content[0].text == "upstream says: hello "


def test_anthropic_gets_cache_control_metadata_and_betas_as_written(anthropic_client: anthropic.Anthropic) -> None:
    # The mock refuses any field or block shape the real API would, so a
    # 200 means the request reached it intact.
    msg = anthropic_client.messages.create(
        model=CLAUDE, max_tokens=300, metadata={"user_id": "u-1"},
        system=[{"type": "text", "text": "cached prefix", "cache_control": {"type": "ephemeral"}}],
        messages=user("hi"), extra_headers={"anthropic-beta": "prompt-caching-2024-07-31"},
    )
    assert msg.content[0].text == "upstream says: hi"
    assert msg.usage.cache_read_input_tokens == 3


def test_raw_response_headers_say_what_ran(anthropic_client: anthropic.Anthropic) -> None:
    raw = anthropic_client.messages.with_raw_response.create(model=GEMINI, max_tokens=50, messages=user("hi"))
    assert raw.http_response.status_code == 200
    assert raw.headers.get("x-tollgate-resolved-model") == GEMINI
    assert raw.headers.get("x-tollgate-request-id")
    assert raw.parse().content[0].text == "upstream says: hi"


# --- streaming ------------------------------------------------------------------


@pytest.mark.parametrize("model", MODELS)
def test_stream_text_and_final_message(anthropic_client: anthropic.Anthropic, model: str) -> None:
    with anthropic_client.messages.stream(model=model, max_tokens=200, messages=user("one two three")) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    assert "".join(pieces) == "upstream says: one two three"
    assert len(pieces) > 1, "streamed as it came, not in one piece"
    assert [(b.type, b.text) for b in final.content] == [("text", "upstream says: one two three")]
    assert final.stop_reason == "end_turn"
    assert_usage(model, final.usage)


@pytest.mark.parametrize("model", MODELS)
def test_raw_stream_follows_the_event_sequence(anthropic_client: anthropic.Anthropic, model: str) -> None:
    events = list(anthropic_client.messages.create(
        model=model, max_tokens=200, stream=True, tools=TOOLS, messages=user("look"),
    ))
    types = [e.type for e in events]
    assert types[0] == "message_start"
    assert types[-2:] == ["message_delta", "message_stop"]
    assert events[0].message.role == "assistant"
    assert events[0].message.content == []
    # Blocks open and close in order, never overlapping, deltas inside them.
    open_index = None
    for e in events:
        if e.type == "content_block_start":
            assert open_index is None, f"{model}: block {e.index} opened inside block {open_index}"
            open_index = e.index
        elif e.type == "content_block_delta":
            assert e.index == open_index
        elif e.type == "content_block_stop":
            assert e.index == open_index
            open_index = None
    assert open_index is None
    partial = "".join(e.delta.partial_json for e in events
                      if e.type == "content_block_delta" and e.delta.type == "input_json_delta")
    assert json.loads(partial) == {"q": "x"}
    assert events[-2].delta.stop_reason == "tool_use"
    assert events[-2].usage.output_tokens == 7


# --- tool use -------------------------------------------------------------------


@pytest.mark.parametrize("model", MODELS)
def test_tool_use_conversation(anthropic_client: anthropic.Anthropic, model: str) -> None:
    messages: list = user("look it up")
    msg = anthropic_client.messages.create(model=model, max_tokens=200, tools=TOOLS, messages=messages)
    assert msg.stop_reason == "tool_use"
    (call,) = tool_uses(msg)
    assert (call.name, call.input) == ("lookup", {"q": "x"})
    assert_first_tool_id(model, call.id)

    # The second turn as the SDK's docs write it.
    messages.append({"role": "assistant", "content": msg.content})
    messages.append({"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": call.id, "content": "42 apples"},
    ]})
    msg = anthropic_client.messages.create(model=model, max_tokens=200, tools=TOOLS, messages=messages)
    assert msg.stop_reason == "end_turn"
    assert [(b.type, b.text) for b in msg.content] == [("text", "tool said: 42 apples")]


@pytest.mark.parametrize("model", MODELS)
def test_tool_result_as_content_blocks(anthropic_client: anthropic.Anthropic, model: str) -> None:
    messages: list = user("look it up")
    msg = anthropic_client.messages.create(model=model, max_tokens=200, tools=TOOLS, messages=messages)
    call = tool_uses(msg)[0]
    messages += [
        {"role": "assistant", "content": msg.content},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id,
                                      "content": [{"type": "text", "text": "in blocks"}]}]},
    ]
    msg = anthropic_client.messages.create(model=model, max_tokens=200, tools=TOOLS, messages=messages)
    assert msg.content[0].text == "tool said: in blocks"


@pytest.mark.parametrize("model", NATIVE_FORMAT_MODELS)
def test_parallel_tool_use(anthropic_client: anthropic.Anthropic, model: str) -> None:
    messages: list = user("both please [parallel]")
    msg = anthropic_client.messages.create(model=model, max_tokens=200, tools=TOOLS, messages=messages)
    calls = tool_uses(msg)
    assert [(c.name, c.input) for c in calls] == [("lookup", {"q": "x"}), ("clock", {"q": "y"})]
    assert calls[0].id != calls[1].id
    messages += [
        {"role": "assistant", "content": msg.content},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": calls[0].id, "content": "apples"},
            {"type": "tool_result", "tool_use_id": calls[1].id, "content": "noon"},
        ]},
    ]
    msg = anthropic_client.messages.create(model=model, max_tokens=200, tools=TOOLS, messages=messages)
    assert msg.content[0].text == "tool said: apples | noon"


@pytest.mark.parametrize("model", MODELS)
def test_streaming_tool_use_then_streamed_answer(anthropic_client: anthropic.Anthropic, model: str) -> None:
    messages: list = user("look it up")
    with anthropic_client.messages.stream(model=model, max_tokens=200, tools=TOOLS, messages=messages) as stream:
        # The SDK's own accumulation of input_json_delta events.
        snapshots = [e.snapshot for e in stream if e.type == "input_json"]
        final = stream.get_final_message()
    assert snapshots and snapshots[-1] == {"q": "x"}
    assert final.stop_reason == "tool_use"
    (call,) = tool_uses(final)
    assert (call.name, call.input) == ("lookup", {"q": "x"})
    assert_first_tool_id(model, call.id)

    messages.append({"role": "assistant", "content": final.content})
    messages.append({"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": call.id, "content": "streamed result"},
    ]})
    with anthropic_client.messages.stream(model=model, max_tokens=200, tools=TOOLS, messages=messages) as stream:
        text = stream.get_final_text()
        final = stream.get_final_message()
    assert text == "tool said: streamed result"
    assert final.stop_reason == "end_turn"


@pytest.mark.parametrize("model", MODELS)
def test_tool_choice_names_the_tool(anthropic_client: anthropic.Anthropic, model: str) -> None:
    msg = anthropic_client.messages.create(
        model=model, max_tokens=200, tools=TOOLS, tool_choice={"type": "tool", "name": "lookup"},
        messages=user("use lookup"),
    )
    assert msg.stop_reason == "tool_use"
    assert [(c.name, c.input) for c in tool_uses(msg)] == [("lookup", {"q": "x"})]


# --- extended thinking (Anthropic itself) ----------------------------------------

THINKING = {"type": "enabled", "budget_tokens": 1024}


def test_thinking_blocks_replayed_across_a_tool_turn(anthropic_client: anthropic.Anthropic) -> None:
    messages: list = user("think, then look it up")
    msg = anthropic_client.messages.create(
        model=CLAUDE, max_tokens=3000, thinking=THINKING, tools=TOOLS, messages=messages,
    )
    assert [b.type for b in msg.content] == ["thinking", "tool_use"]
    thinking, call = msg.content
    assert (thinking.thinking, thinking.signature) == ("mock reasoning", "sig_mock_1")

    messages.append({"role": "assistant", "content": msg.content})
    messages.append({"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "found"}]})
    msg = anthropic_client.messages.create(
        model=CLAUDE, max_tokens=3000, thinking=THINKING, tools=TOOLS, messages=messages,
    )
    assert [b.type for b in msg.content] == ["thinking", "text"]
    assert msg.content[1].text == "tool said: found"


def test_streamed_thinking_keeps_its_signature(anthropic_client: anthropic.Anthropic) -> None:
    with anthropic_client.messages.stream(
        model=CLAUDE, max_tokens=3000, thinking=THINKING, tools=TOOLS, messages=user("think"),
    ) as stream:
        kinds = [e.type for e in stream]
        final = stream.get_final_message()
    assert "thinking" in kinds and "signature" in kinds
    assert final.content[0].type == "thinking"
    assert (final.content[0].thinking, final.content[0].signature) == ("mock reasoning", "sig_mock_1")
    assert final.content[1].type == "tool_use"


# --- count_tokens -----------------------------------------------------------------


@pytest.mark.parametrize("model", MODELS)
def test_count_tokens(anthropic_client: anthropic.Anthropic, model: str) -> None:
    short = anthropic_client.messages.count_tokens(model=model, messages=user("hello world"))
    long = anthropic_client.messages.count_tokens(
        model=model, system="be brief", messages=user("hello world, " * 40),
    )
    assert 1 <= short.input_tokens < 20
    assert long.input_tokens > short.input_tokens + 40


# --- errors -------------------------------------------------------------------------


def test_unknown_model_is_not_found(anthropic_client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.NotFoundError) as e:
        anthropic_client.messages.create(model="nope/x", max_tokens=5, messages=user("x"))
    assert e.value.status_code == 404
    assert e.value.body["type"] == "error"
    assert e.value.body["error"]["type"] == "not_found_error"
    assert "nope/x" in e.value.body["error"]["message"]


def test_a_bad_key_is_an_authentication_error(gateway: Gateway) -> None:
    with anthropic.Anthropic(base_url=gateway.url, api_key="wrong-key-123", max_retries=0) as bad:
        with pytest.raises(anthropic.AuthenticationError) as e:
            bad.messages.create(model=GEMINI, max_tokens=5, messages=user("x"))
    assert e.value.status_code == 401
    assert e.value.body["error"]["type"] == "authentication_error"


def test_server_tools_are_refused_for_other_providers(anthropic_client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.BadRequestError) as e:
        anthropic_client.messages.create(
            model=OPENAI_COMPAT, max_tokens=50, messages=user("search"),
            tools=[{"type": "web_search_20250305", "name": "web_search"}],
        )
    assert e.value.body["error"]["type"] == "invalid_request_error"
    assert "server tool" in e.value.body["error"]["message"]


def test_anthropics_own_400_reaches_the_client(anthropic_client: anthropic.Anthropic) -> None:
    # A thinking budget under 1024 passes through and Anthropic refuses it.
    with pytest.raises(anthropic.BadRequestError) as e:
        anthropic_client.messages.create(
            model=CLAUDE, max_tokens=3000, thinking={"type": "enabled", "budget_tokens": 500}, messages=user("x"),
        )
    assert e.value.body["error"]["type"] == "invalid_request_error"
    assert "budget_tokens" in e.value.body["error"]["message"]


def test_a_translated_providers_400_is_anthropic_shaped(anthropic_client: anthropic.Anthropic) -> None:
    # Bedrock cannot fetch image URLs; the gateway refuses before sending.
    with pytest.raises(anthropic.BadRequestError) as e:
        anthropic_client.messages.create(model=BEDROCK, max_tokens=50, messages=[{"role": "user", "content": [
            {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.png"}},
            {"type": "text", "text": "what is this"},
        ]}])
    assert e.value.body["type"] == "error"
    assert e.value.body["error"]["type"] == "invalid_request_error"


def test_a_base_url_ending_in_v1_gets_a_hint_not_a_bare_404(gateway: Gateway) -> None:
    # A common mistake: the OpenAI SDK's base URL (…/v1) given to the
    # Anthropic SDK, which adds /v1 itself.
    with anthropic.Anthropic(base_url=f"{gateway.url}/v1", api_key=MASTER_KEY, max_retries=0, timeout=15) as c:
        with pytest.raises(anthropic.NotFoundError) as e:
            c.messages.create(model=CLAUDE, max_tokens=10, messages=[{"role": "user", "content": "hi"}])
    assert e.value.body["error"]["type"] == "not_found_error"
    message = e.value.body["error"]["message"]
    assert "`/v1` appears twice" in message and "base URL without `/v1`" in message, message
