"""The response cache as clients of the official `openai` and `anthropic`
SDKs see it: the same answer again without an upstream call, and a cached
answer asked for as a stream replayed as a stream each SDK accumulates.

One gateway runs for this module with `cache: {mode: exact}` in front of the
``mock-upstream`` binary (as an OpenAI-compatible and as an Anthropic
upstream); its `/metrics` count shows whether a request reached the upstream.
"""

from __future__ import annotations

import subprocess
import time
from typing import Iterator

import anthropic
import httpx
import openai
import pytest

from conftest import MASTER_KEY, _binary, _free_port, _stop, serve_gateway

CONFIG = """\
server:
  listen: "127.0.0.1:{port}"
  admin_listen: "127.0.0.1:{admin_port}"
store:
  url: "memory://"
auth:
  master_key: "${{TG_MASTER}}"
providers:
  - name: up
    type: openai_compatible
    base_url: "http://127.0.0.1:{up_port}/v1"
    api_key: "sk-up"
    models: [{{ name: gpt-4o-mini, input_cost_per_mtok: 0.15, output_cost_per_mtok: 0.6 }}]
  - name: claude
    type: anthropic
    base_url: "http://127.0.0.1:{up_port}"
    api_key: "sk-ant-up"
    models: [{{ name: claude-sonnet-4-5, input_cost_per_mtok: 3, output_cost_per_mtok: 15 }}]
cache:
  mode: exact
  ttl: 10m
"""


class Gateway:
    def __init__(self, url: str, admin: str) -> None:
        self.url = url
        self.admin = admin

    def metric(self, name: str) -> int:
        text = httpx.get(f"{self.admin}/metrics", headers={"Authorization": f"Bearer {MASTER_KEY}"}).text
        return sum(int(float(line.rsplit(" ", 1)[1])) for line in text.splitlines() if line.startswith(name + " "))

    def upstream_calls(self) -> int:
        text = httpx.get(f"{self.admin}/metrics", headers={"Authorization": f"Bearer {MASTER_KEY}"}).text
        return sum(int(float(line.rsplit(" ", 1)[1])) for line in text.splitlines()
                   if line.startswith("tollgate_cache_requests_total") and 'status="miss"' in line)


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    work = tmp_path_factory.mktemp("cache")
    up_port, port, admin_port = _free_port(), _free_port(), _free_port()
    mock = _binary("MOCK_UPSTREAM_BIN", "mock-upstream")
    up_log = work / "upstream.log"
    with open(up_log, "wb") as out:
        upstream = subprocess.Popen([str(mock), f"127.0.0.1:{up_port}"], stdout=out, stderr=subprocess.STDOUT)
    config = CONFIG.format(port=port, admin_port=admin_port, up_port=up_port)
    try:
        with serve_gateway(work, config, port, admin_port) as (url, admin):
            yield Gateway(url, admin)
    finally:
        _stop(upstream)


def until_hit(call):
    """The answer is kept off the request's path: ask until it is a hit."""
    for _ in range(50):
        raw = call()
        if raw.headers.get("x-tollgate-cache-status") == "hit":
            return raw
        time.sleep(0.02)
    pytest.fail("the cache never answered a hit")


def test_the_openai_sdk_gets_the_same_answer_again_and_a_replayed_stream(gw: Gateway) -> None:
    client = openai.OpenAI(base_url=f"{gw.url}/v1", api_key=MASTER_KEY)
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    create = client.chat.completions.with_raw_response.create
    first = create(model="up/gpt-4o-mini", messages=messages, temperature=0)
    assert first.headers["x-tollgate-cache-status"] == "miss"
    hit = until_hit(lambda: create(model="up/gpt-4o-mini", messages=messages, temperature=0))
    assert hit.parse().choices[0].message.content == first.parse().choices[0].message.content
    misses = gw.upstream_calls()
    stream = client.chat.completions.create(model="up/gpt-4o-mini", messages=messages, temperature=0, stream=True,
                                            stream_options={"include_usage": True})
    text, usage = "", None
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            text += chunk.choices[0].delta.content
        usage = chunk.usage or usage
    assert text == first.parse().choices[0].message.content
    assert usage is not None and usage.total_tokens == first.parse().usage.total_tokens
    assert gw.upstream_calls() == misses, "the stream was a hit"


def test_the_anthropic_sdk_gets_a_cached_answer_in_its_own_shape(gw: Gateway) -> None:
    client = anthropic.Anthropic(base_url=gw.url, api_key=MASTER_KEY)
    messages = [{"role": "user", "content": "Name a prime number."}]
    create = client.messages.with_raw_response.create
    first = create(model="up/gpt-4o-mini", max_tokens=100, messages=messages)
    hit = until_hit(lambda: create(model="up/gpt-4o-mini", max_tokens=100, messages=messages))
    assert hit.parse().content[0].text == first.parse().content[0].text
    with client.messages.stream(model="up/gpt-4o-mini", max_tokens=100, messages=messages) as s:
        text = "".join(s.text_stream)
        final = s.get_final_message()
    assert text == first.parse().content[0].text
    assert final.stop_reason == first.parse().stop_reason


def test_an_anthropic_model_answer_is_kept_and_replayed_in_anthropic_shape(gw: Gateway) -> None:
    client = anthropic.Anthropic(base_url=gw.url, api_key=MASTER_KEY)
    messages = [{"role": "user", "content": "Which ocean is the largest?"}]
    # Streamed first: the answer is assembled from Anthropic's events and kept.
    with client.messages.stream(model="claude/claude-sonnet-4-5", max_tokens=100, messages=messages) as s:
        streamed = "".join(s.text_stream)
        first = s.get_final_message()
    create = client.messages.with_raw_response.create
    hit = until_hit(lambda: create(model="claude/claude-sonnet-4-5", max_tokens=100, messages=messages))
    message = hit.parse()
    assert message.id == first.id, "the kept message itself"
    assert message.content[0].text == streamed
    assert message.usage.output_tokens == first.usage.output_tokens
    misses = gw.upstream_calls()
    with client.messages.stream(model="claude/claude-sonnet-4-5", max_tokens=100, messages=messages) as s:
        again = "".join(s.text_stream)
        final = s.get_final_message()
    assert again == streamed and final.stop_reason == first.stop_reason
    assert gw.upstream_calls() == misses, "the replayed stream was a hit"


def test_a_reworded_question_is_a_semantic_hit_for_the_openai_sdk(gw: Gateway) -> None:
    client = openai.OpenAI(base_url=f"{gw.url}/v1", api_key=MASTER_KEY,
                           default_headers={"x-tollgate-cache": '{"mode": "semantic"}'})
    create = client.chat.completions.with_raw_response.create
    vectors = gw.metric("tollgate_cache_vectors")
    first = create(model="up/gpt-4o-mini", messages=[{"role": "user", "content": "How many legs does a spider have?"}])
    assert first.headers["x-tollgate-cache-status"] == "miss"
    for _ in range(100):  # the vector is indexed off the request's path
        if gw.metric("tollgate_cache_vectors") > vectors:
            break
        time.sleep(0.02)
    hit = create(model="up/gpt-4o-mini", messages=[{"role": "user", "content": "Tell me: how many legs does a spider have"}])
    assert hit.headers["x-tollgate-cache-status"] == "hit"
    assert 0.9 < float(hit.headers["x-tollgate-cache-similarity"]) < 1.0
    assert hit.parse().choices[0].message.content == first.parse().choices[0].message.content
    other = create(model="up/gpt-4o-mini", messages=[{"role": "user", "content": "How many eyes does a spider have?"}])
    assert other.headers["x-tollgate-cache-status"] == "miss"


def test_a_bad_cache_header_is_a_clear_400(gw: Gateway) -> None:
    client = openai.OpenAI(base_url=f"{gw.url}/v1", api_key=MASTER_KEY)
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model="up/gpt-4o-mini", messages=[{"role": "user", "content": "x"}],
                                       extra_headers={"x-tollgate-cache": '{"ttl": "forever"}'})
    assert "x-tollgate-cache" in str(e.value)
