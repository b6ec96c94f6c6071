"""The Batches API as OpenAI SDK users call it.

Upload a JSONL file with `client.files.create(purpose="batch")`, start a
batch, poll `client.batches.retrieve` until it ends, read the results with
`client.files.content`. tollgate runs every line itself, through its own
data plane, against whatever provider the line's model resolves to.
"""

from __future__ import annotations

import io
import json
import time

import openai
import pytest

from conftest import LIMITED_KEY, MASTER_KEY, _free_port, serve_gateway

ECHO = "mock/echo"
UP_CHAT = "up/gpt-4o-mini"


def jsonl(lines: list[dict]) -> bytes:
    return ("\n".join(json.dumps(l) for l in lines) + "\n").encode()


def chat(custom_id: str, model: str, text: str) -> dict:
    return {
        "custom_id": custom_id,
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {"model": model, "messages": [{"role": "user", "content": text}]},
    }


def wait(client: openai.OpenAI, batch_id: str, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while True:
        b = client.batches.retrieve(batch_id)
        if b.status in ("completed", "failed", "cancelled", "expired"):
            return b
        assert time.monotonic() < deadline, f"batch still {b.status} after {timeout}s"
        time.sleep(0.1)


def test_a_batch_over_two_providers_completes_with_output_and_error_files(client: openai.OpenAI) -> None:
    upload = client.files.create(
        file=("requests.jsonl", io.BytesIO(jsonl([
            chat("echo-1", ECHO, "hello from the batch"),
            chat("upstream-1", UP_CHAT, "and from the upstream"),
            chat("missing", "nowhere/model", "this model does not exist"),
        ]))),
        purpose="batch",
    )
    assert upload.object == "file" and upload.purpose == "batch" and upload.id.startswith("file-")
    assert client.files.retrieve(upload.id).filename == "requests.jsonl"

    batch = client.batches.create(
        input_file_id=upload.id,
        endpoint="/v1/chat/completions",
        completion_window="24h",
        metadata={"job": "sdk-test"},
    )
    assert batch.object == "batch" and batch.status in ("validating", "in_progress")
    assert batch.metadata == {"job": "sdk-test"}

    done = wait(client, batch.id)
    assert done.status == "completed", done
    assert done.request_counts.total == 3
    assert done.request_counts.completed == 2 and done.request_counts.failed == 1
    assert done.completed_at and done.in_progress_at

    out = [json.loads(l) for l in client.files.content(done.output_file_id).text.splitlines()]
    by_id = {l["custom_id"]: l for l in out}
    assert set(by_id) == {"echo-1", "upstream-1"}
    assert by_id["echo-1"]["response"]["status_code"] == 200
    assert "hello from the batch" in by_id["echo-1"]["response"]["body"]["choices"][0]["message"]["content"]
    assert by_id["upstream-1"]["response"]["body"]["object"] == "chat.completion"
    assert all(l["error"] is None for l in out)

    errors = [json.loads(l) for l in client.files.content(done.error_file_id).text.splitlines()]
    assert [e["custom_id"] for e in errors] == ["missing"]
    assert errors[0]["response"]["status_code"] == 404

    assert any(b.id == batch.id for b in client.batches.list(limit=100))
    assert client.files.delete(done.output_file_id).deleted


def test_bad_input_is_refused_with_the_line_to_fix(client: openai.OpenAI) -> None:
    bad = jsonl([chat("a", ECHO, "fine"), {"custom_id": "b", "method": "GET", "url": "/v1/chat/completions", "body": {}}])
    with pytest.raises(openai.BadRequestError) as e:
        client.files.create(file=("bad.jsonl", io.BytesIO(bad)), purpose="batch")
    assert "line 2" in str(e.value) and '"POST"' in str(e.value)
    with pytest.raises(openai.BadRequestError) as e:
        client.files.create(file=("x.jsonl", io.BytesIO(jsonl([chat("a", ECHO, "x")]))), purpose="fine-tune")
    assert 'purpose "batch"' in str(e.value)


SLOW_CONFIG = """\
server: {{ listen: "127.0.0.1:{port}", admin_listen: "127.0.0.1:{admin_port}" }}
store: {{ url: "sqlite://{db}" }}
auth: {{ master_key: "${{TG_MASTER}}" }}
providers:
  - {{ name: slow, type: mock, mock: {{ latency: 400ms }}, models: [{{ name: lag }}] }}
batches: {{ concurrency: 2 }}
"""


def test_cancel_keeps_what_finished(tmp_path) -> None:
    # A gateway of its own, with a slow model: the cancel finds lines not started.
    port, admin_port = _free_port(), _free_port()
    config = SLOW_CONFIG.format(port=port, admin_port=admin_port, db=tmp_path / "t.db")
    with serve_gateway(tmp_path, config, port, admin_port) as (url, _admin):
        with openai.OpenAI(base_url=f"{url}/v1", api_key=MASTER_KEY, max_retries=0, timeout=15) as client:
            lines = [chat(f"s{i}", "slow/lag", "x") for i in range(10)]
            upload = client.files.create(file=("slow.jsonl", io.BytesIO(jsonl(lines))), purpose="batch")
            batch = client.batches.create(
                input_file_id=upload.id, endpoint="/v1/chat/completions", completion_window="24h"
            )
            cancelled = client.batches.cancel(batch.id)
            assert cancelled.status == "cancelling" and cancelled.cancelling_at
            final = wait(client, batch.id)
            assert final.status == "cancelled" and final.cancelled_at
            assert final.request_counts.total == 10 and final.request_counts.completed <= 2
            if final.output_file_id:
                done = client.files.content(final.output_file_id).text.splitlines()
                assert len(done) == final.request_counts.completed


def test_each_key_sees_only_its_own(client: openai.OpenAI, limited_client: openai.OpenAI) -> None:
    upload = limited_client.files.create(
        file=("mine.jsonl", io.BytesIO(jsonl([chat("l0", ECHO, "x")]))), purpose="batch"
    )
    batch = limited_client.batches.create(
        input_file_id=upload.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    # The master key sees every tenant's batches; the limited key not the master's.
    assert client.batches.retrieve(batch.id).id == batch.id
    own = client.files.create(file=("m.jsonl", io.BytesIO(jsonl([chat("m", ECHO, "x")]))), purpose="batch")
    with pytest.raises(openai.NotFoundError):
        limited_client.files.retrieve(own.id)
    assert all(f.id != own.id for f in limited_client.files.list())
    final = wait(limited_client, batch.id)
    assert final.status == "completed"
    assert LIMITED_KEY not in final.model_dump_json()


def test_a_batch_of_responses_api_requests_runs_on_any_provider(client: openai.OpenAI) -> None:
    lines = [
        {"custom_id": f"r-{m}", "method": "POST", "url": "/v1/responses",
         "body": {"model": m, "instructions": "be brief", "input": f"batched for {m}"}}
        for m in (ECHO, UP_CHAT, "claude/claude-sonnet-4-5")
    ]
    upload = client.files.create(file=("responses.jsonl", io.BytesIO(jsonl(lines))), purpose="batch")
    batch = client.batches.create(input_file_id=upload.id, endpoint="/v1/responses", completion_window="24h")
    done = wait(client, batch.id)
    assert done.status == "completed" and done.request_counts.completed == 3, done
    out = {l["custom_id"]: l for l in map(json.loads, client.files.content(done.output_file_id).text.splitlines())}
    for m in (ECHO, UP_CHAT, "claude/claude-sonnet-4-5"):
        body = out[f"r-{m}"]["response"]["body"]
        assert body["object"] == "response" and body["status"] == "completed", body
        text = next(c["text"] for o in body["output"] if o["type"] == "message" for c in o["content"])
        assert f"batched for {m}" in text
