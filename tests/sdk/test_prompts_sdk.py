"""Prompt templates as OpenAI SDK users see them.

A gateway with one template in its config, in front of a recording
upstream, so each test sees exactly the messages the model got. Chat
completions send the template in `extra_body` (the SDK has no `prompt`
parameter there); the Responses API takes `prompt` natively.
"""

from __future__ import annotations

import contextlib
import uuid
from pathlib import Path
from typing import Iterator

import httpx
import openai
import pytest

from conftest import MASTER_KEY, REC_KEY, RecordingUpstream, _free_port, serve_gateway

CONFIG = """\
server: {{ listen: "127.0.0.1:{port}", admin_listen: "127.0.0.1:{admin_port}" }}
store: {{ url: "memory://" }}
auth: {{ master_key: "${{TG_MASTER}}" }}
providers:
  - name: rec
    type: openai
    base_url: "http://127.0.0.1:{rec_port}/v1"
    api_key: "{rec_key}"
    models: [{{ name: rec-chat }}]
prompts:
  - id: support-triage
    labels: {{ production: 1 }}
    versions:
      - version: 1
        variables:
          product: {{ default: Acme Cloud }}
          ticket: {{}}
        instructions: "You triage support tickets for {{{{product}}}}."
        messages:
          - {{ role: user, content: "Ticket: {{{{ticket}}}}" }}
"""


@contextlib.contextmanager
def _gateway(tmp_path: Path) -> Iterator[tuple[str, str, RecordingUpstream]]:
    recorder = RecordingUpstream()
    recorder.start()
    try:
        port, admin_port = _free_port(), _free_port()
        config = CONFIG.format(port=port, admin_port=admin_port, rec_port=recorder.port, rec_key=REC_KEY)
        with serve_gateway(tmp_path, config, port, admin_port) as (url, admin):
            yield url, admin, recorder
    finally:
        recorder.stop()


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, RecordingUpstream]]:
    with _gateway(tmp_path_factory.mktemp("prompts")) as g:
        yield g


def _client(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key=MASTER_KEY, max_retries=0)


def _admin(admin: str, method: str, path: str, body: dict | None = None) -> httpx.Response:
    return httpx.request(method, f"{admin}{path}", json=body, timeout=10,
                         headers={"authorization": f"Bearer {MASTER_KEY}"})


def test_chat_completions_render_the_template_from_extra_body(gw) -> None:
    url, _admin_url, recorder = gw
    marker = f"ticket-{uuid.uuid4().hex[:8]}"
    r = _client(url).chat.completions.create(
        model="rec/rec-chat",
        messages=[{"role": "user", "content": "please hurry"}],
        extra_body={"prompt": {"id": "support-triage", "variables": {"ticket": marker}}},
    )
    assert r.choices[0].message.content
    sent = recorder.find(marker).body
    assert "prompt" not in sent, "the template reference never goes upstream"
    assert sent["messages"] == [
        {"role": "system", "content": "You triage support tickets for Acme Cloud."},
        {"role": "user", "content": f"Ticket: {marker}"},
        {"role": "user", "content": "please hurry"},
    ]


def test_missing_variables_and_unknown_templates_raise_sdk_errors(gw) -> None:
    url, _admin_url, _recorder = gw
    client = _client(url)
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(
            model="rec/rec-chat",
            messages=[{"role": "user", "content": "x"}],
            extra_body={"prompt": {"id": "support-triage"}},
        )
    assert e.value.code == "prompt_variables_missing"
    assert "ticket" in e.value.message
    with pytest.raises(openai.NotFoundError) as e:
        client.chat.completions.create(
            model="rec/rec-chat",
            messages=[{"role": "user", "content": "x"}],
            extra_body={"prompt": {"id": "no-such-template"}},
        )
    assert e.value.code == "prompt_not_found"
    assert "support-triage" in e.value.message


def test_a_version_made_and_promoted_through_the_admin_api_is_what_the_sdk_gets(gw) -> None:
    url, admin, recorder = gw
    created = _admin(admin, "POST", "/admin/prompts/support-triage/versions", {
        "variables": {"ticket": {}},
        "instructions": "Version two: one word only.",
        "messages": [{"role": "user", "content": "{{ticket}}"}],
    })
    assert created.status_code == 201, created.text
    version = created.json()["version"]

    marker = f"v2-{uuid.uuid4().hex[:8]}"
    _client(url).chat.completions.create(
        model="rec/rec-chat",
        messages=[{"role": "user", "content": "go"}],
        extra_body={"prompt": {"id": "support-triage", "version": version, "variables": {"ticket": marker}}},
    )
    assert recorder.find(marker).body["messages"][0]["content"] == "Version two: one word only."

    diff = _admin(admin, "GET", f"/admin/prompts/support-triage/diff?from=1&to={version}").json()
    assert "+  | Version two: one word only." in diff["unified"]

    moved = _admin(admin, "PUT", "/admin/prompts/support-triage/labels/production", {"version": version})
    assert moved.status_code == 200, moved.text
    marker = f"prod-{uuid.uuid4().hex[:8]}"
    # The Responses API's own `prompt` parameter, with no version: the label decides.
    _client(url).responses.create(
        model="rec/rec-chat",
        input="go",
        prompt={"id": "support-triage", "variables": {"ticket": marker}},
    )
    messages = recorder.find(marker).body["messages"]
    assert messages[0] == {"role": "system", "content": "Version two: one word only."}
    assert messages[1] == {"role": "user", "content": marker}
