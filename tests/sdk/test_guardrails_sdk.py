"""Guardrails as users of the official `openai` and `anthropic` SDKs see them.

The session gateway of conftest.py has no `guardrails:` section, so this
module starts its own gateways, each with the built-in mock provider
(`mock/echo` answers with the last user message; `chunky/echo` streams it
in 5-byte pieces) and one guardrail setup:

- ``org``: org-wide on `llm_input`, a PII mutator (cards and e-mail
  addresses become `<CREDIT_CARD_1>`, `<EMAIL_1>`) and a secrets validator;
  a deny-list a request can add with the `x-tollgate-guardrails` header;
- ``restore``: the same PII mutator with `restore: true`, org-wide;
- ``output``: nothing org-wide; a masking and a blocking secrets guardrail
  that requests add on `llm_output`.

The mock echoes what it was sent, so an answer shows what the model saw.
Secret-looking values are built at run time; none sits in this file.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from pathlib import Path
from typing import Iterator

import anthropic
import httpx
import openai
import pytest

from conftest import MASTER_KEY, _binary, _free_port, _stop, _wait_until

ECHO = "mock/echo"
CHUNKY = "chunky/echo"  # the same echo, streamed in 5-byte pieces

HEADER = "x-tollgate-guardrails"

# A well-known test card number (Luhn-valid, never issued) and an address.
CARD = "4111 1111 1111 1111"
EMAIL = "bob@example.com"
PII_TEXT = f"charge {CARD} and mail {EMAIL}, again {CARD}"
PII_REDACTED = "charge <CREDIT_CARD_1> and mail <EMAIL_1>, again <CREDIT_CARD_1>"

# The stream guard holds back the last 64 bytes of an answer, so a short
# answer leaves in one piece; this lead-in makes every streamed answer
# below arrive in many 5-byte pieces.
LEAD = "Here is a rather long introduction that goes on for a while, and then "
MASK = "[REDACTED:AWS_ACCESS_KEY]"

# What follows a leaked key in the answer: nothing, a few words, or a
# sentence longer than the guard's 64-byte hold.
TAILS = {
    "key-at-the-end": "",
    "short-tail": " keep it safe",
    "long-tail": " keep it safe and tell nobody about it, not even the team lead or the auditors",
}


def leaking_answer(key: str, tail: str) -> str:
    return f"{LEAD}the deploy key is {key}{tail}"


def aws_key() -> str:
    """An AWS access key id, built at run time so none sits in the source."""
    return "AKIA" + "Q7Z3X9K2M4N8P6R5"


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def add(**hooks: list[str]) -> dict[str, str]:
    """The request header that adds guardrails to one call."""
    return {HEADER: json.dumps(hooks)}


# --- gateways -----------------------------------------------------------------

CONFIG = """\
server:
  listen: "127.0.0.1:{port}"
  admin_listen: "127.0.0.1:{admin_port}"
store:
  url: "memory://"
auth:
  master_key: "${{TG_MASTER}}"
providers:
  - name: mock
    type: mock
    models: [{{ name: echo }}]
  - name: chunky
    type: mock
    mock: {{ chunk_bytes: 5 }}
    models: [{{ name: echo }}]
guardrails:
{guardrails}"""

ORG_GUARDRAILS = """\
  definitions:
    - { name: pii-redact, type: pii, action: mutate, entities: [CREDIT_CARD, EMAIL] }
    - { name: no-secrets, type: secrets }
    - { name: codenames, type: deny_list, terms: [atlas, orion] }
  enforce:
    llm_input: [pii-redact, no-secrets]
"""

RESTORE_GUARDRAILS = """\
  definitions:
    - { name: pii-restore, type: pii, action: mutate, entities: [CREDIT_CARD, EMAIL], restore: true }
  enforce:
    llm_input: [pii-restore]
"""

OUTPUT_GUARDRAILS = """\
  definitions:
    - { name: mask-secrets, type: secrets, action: mutate }
    - { name: stop-secrets, type: secrets }
"""


@contextlib.contextmanager
def running_gateway(work: Path, guardrails: str) -> Iterator[str]:
    """Starts tollgate with `guardrails` as its guardrails section; yields
    the data plane's root URL."""
    tollgate = _binary("TOLLGATE_BIN", "tollgate")
    port, admin_port = _free_port(), _free_port()
    config = work / "tollgate.yaml"
    config.write_text(CONFIG.format(port=port, admin_port=admin_port, guardrails=guardrails))
    log = work / "tollgate.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(tollgate), "serve", "--config", str(config)], cwd=work,
            env={**os.environ, "TG_MASTER": MASTER_KEY}, stdout=out, stderr=subprocess.STDOUT,
        )
        try:
            url = f"http://127.0.0.1:{port}"

            def ready() -> bool:
                r = httpx.get(f"{url}/ready", timeout=1)
                return r.status_code == 200 and r.json().get("status") == "ready"

            _wait_until(ready, proc, log, f"tollgate ({work.name})")
            yield url
        finally:
            _stop(proc)


@contextlib.contextmanager
def clients(tmp_path_factory: pytest.TempPathFactory, name: str, guardrails: str):
    with running_gateway(tmp_path_factory.mktemp(name), guardrails) as url:
        with openai.OpenAI(base_url=f"{url}/v1", api_key=MASTER_KEY, max_retries=0, timeout=15) as oa, \
                anthropic.Anthropic(base_url=url, api_key=MASTER_KEY, max_retries=0, timeout=15) as an:
            yield oa, an


@pytest.fixture(scope="module")
def org(tmp_path_factory: pytest.TempPathFactory):
    with clients(tmp_path_factory, "guardrails-org", ORG_GUARDRAILS) as c:
        yield c


@pytest.fixture(scope="module")
def restore(tmp_path_factory: pytest.TempPathFactory):
    with clients(tmp_path_factory, "guardrails-restore", RESTORE_GUARDRAILS) as c:
        yield c


@pytest.fixture(scope="module")
def output(tmp_path_factory: pytest.TempPathFactory):
    with clients(tmp_path_factory, "guardrails-output", OUTPUT_GUARDRAILS) as c:
        yield c


def stream_text(stream) -> tuple[str, int]:
    """Drains a chat stream: the concatenated content and the number of content pieces."""
    pieces = [c.choices[0].delta.content for c in stream if c.choices and c.choices[0].delta.content]
    return "".join(pieces), len(pieces)


# --- openai: PII mutation and restore -----------------------------------------


def test_openai_org_wide_pii_mutator_hides_the_card_from_the_model(org) -> None:
    client, _ = org
    raw = client.chat.completions.with_raw_response.create(model=ECHO, messages=user(PII_TEXT))
    assert raw.status_code == 200
    assert raw.headers.get(HEADER) == "pii-redact=mutated"
    answer = raw.parse().choices[0].message.content
    # The echo shows what the model got: typed, numbered, consistent placeholders.
    assert answer == PII_REDACTED
    assert CARD not in answer and EMAIL not in answer


def test_openai_a_call_without_pii_has_no_guardrail_header(org) -> None:
    client, _ = org
    raw = client.chat.completions.with_raw_response.create(model=ECHO, messages=user("nothing personal"))
    assert raw.status_code == 200
    # Passes are not listed; with only passes there is no header at all.
    assert raw.headers.get(HEADER) is None
    assert raw.parse().choices[0].message.content == "nothing personal"


def test_openai_pii_restore_gives_the_user_their_card_back(restore) -> None:
    client, _ = restore
    raw = client.chat.completions.with_raw_response.create(model=ECHO, messages=user(PII_TEXT))
    assert raw.status_code == 200
    assert raw.headers.get(HEADER) == "pii-restore=mutated"
    assert raw.parse().choices[0].message.content == PII_TEXT


@pytest.mark.parametrize("tail", ["", " and that is all, thank you very much for your patience with this"],
                         ids=["card-near-the-end", "long-tail"])
def test_openai_pii_restore_on_a_stream_with_placeholders_split_across_chunks(restore, tail: str) -> None:
    client, _ = restore
    text = LEAD + PII_TEXT + tail
    got, pieces = stream_text(client.chat.completions.create(model=CHUNKY, messages=user(text), stream=True))
    assert pieces > 3, "the answer should arrive in several pieces"
    assert got == text


# --- openai: blocked input ------------------------------------------------------


def test_openai_blocked_input_is_a_bad_request_that_names_the_guardrail_not_the_secret(org) -> None:
    client, _ = org
    key = aws_key()
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=ECHO, messages=user(f"deploy with {key}"))
    e = caught.value
    assert e.status_code == 400
    assert e.code == "guardrail_blocked"
    assert isinstance(e.body, dict) and e.body["code"] == "guardrail_blocked"
    assert "no-secrets" in e.message and "llm_input" in e.message, e.message
    assert key not in e.message
    assert key not in e.response.text
    assert e.response.headers.get(HEADER) == "no-secrets=blocked"


# --- openai: streams --------------------------------------------------------------


@pytest.mark.parametrize("tail", TAILS.values(), ids=TAILS.keys())
def test_openai_stream_masks_a_leaked_key_split_across_chunks(output, tail: str) -> None:
    client, _ = output
    key = aws_key()
    stream = client.chat.completions.create(
        model=CHUNKY, messages=user(leaking_answer(key, tail)), stream=True,
        extra_headers=add(llm_output=["mask-secrets"]),
    )
    text, pieces = stream_text(stream)
    assert pieces > 3, "the answer should arrive in several pieces"
    # No piece of the key reaches the client, in one chunk or across them.
    assert key[4:12] not in text and key[-8:] not in text, text
    assert text == f"{LEAD}the deploy key is {MASK}{tail}"


def test_openai_guarded_stream_still_says_it_is_the_assistant(output) -> None:
    """The SDK's stream helper builds the final message from the chunks; the
    first chunk of an OpenAI stream carries `role: assistant`."""
    client, _ = output
    plain = "a harmless answer with nothing to mask"
    with client.chat.completions.stream(model=CHUNKY, messages=user(plain)) as s:
        unguarded = s.get_final_completion().choices[0].message
    assert (unguarded.role, unguarded.content) == ("assistant", plain)
    with client.chat.completions.stream(model=CHUNKY, messages=user(plain),
                                        extra_headers=add(llm_output=["mask-secrets"])) as s:
        guarded = s.get_final_completion().choices[0].message
    assert guarded.content == plain
    assert guarded.role == "assistant"


def test_openai_masking_a_leaked_key_in_a_complete_answer(output) -> None:
    client, _ = output
    key = aws_key()
    tail = TAILS["long-tail"]
    raw = client.chat.completions.with_raw_response.create(
        model=ECHO, messages=user(leaking_answer(key, tail)), extra_headers=add(llm_output=["mask-secrets"]),
    )
    assert raw.headers.get(HEADER) == "mask-secrets=mutated"
    assert raw.parse().choices[0].message.content == f"{LEAD}the deploy key is {MASK}{tail}"


@pytest.mark.parametrize("tail", TAILS.values(), ids=TAILS.keys())
def test_openai_stream_blocked_on_output_raises_api_error_mid_stream(output, tail: str) -> None:
    client, _ = output
    key = aws_key()
    stream = client.chat.completions.create(
        model=CHUNKY, messages=user(leaking_answer(key, tail)), stream=True,
        extra_headers=add(llm_output=["stop-secrets"]),
    )
    received: list[str] = []
    with pytest.raises(openai.APIError) as caught:
        for c in stream:
            if c.choices and c.choices[0].delta.content:
                received.append(c.choices[0].delta.content)
    e = caught.value
    # The stream began with a 200, so the SDK raises the plain APIError it
    # makes of an `error` event, not a status error.
    assert not isinstance(e, openai.APIStatusError), type(e)
    assert e.code == "guardrail_blocked"
    assert isinstance(e.body, dict) and e.body.get("type") == "invalid_request_error"
    assert "stop-secrets" in e.message and "llm_output" in e.message, e.message
    assert key[4:] not in e.message
    # The prose before the key got through, in pieces; no byte of the key did.
    before = "".join(received)
    assert len(received) > 3, received
    assert f"{LEAD}the deploy key is ".startswith(before), before


# --- openai: the request header -------------------------------------------------


def test_openai_request_header_adds_a_guardrail_for_one_call(org) -> None:
    client, _ = org
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=ECHO, messages=user("ship Atlas now"),
                                       extra_headers=add(llm_input=["codenames"]))
    assert caught.value.code == "guardrail_blocked"
    assert "codenames" in caught.value.message and "llm_input" in caught.value.message
    # Without the header the deny-list is not in force; with it, only whole words match.
    assert client.chat.completions.create(
        model=ECHO, messages=user("ship Atlas now")).choices[0].message.content == "ship Atlas now"
    assert client.chat.completions.create(
        model=ECHO, messages=user("atlases are fine"),
        extra_headers=add(llm_input=["codenames"])).choices[0].message.content == "atlases are fine"


def test_openai_request_header_cannot_switch_off_org_wide_guardrails(org) -> None:
    client, _ = org
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=ECHO, messages=user(f"key {aws_key()}"),
                                       extra_headers=add(llm_input=[]))
    assert caught.value.code == "guardrail_blocked"
    assert "no-secrets" in caught.value.message


def test_openai_unknown_guardrail_in_the_header_is_invalid_header(org) -> None:
    client, _ = org
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=ECHO, messages=user("hi"), extra_headers=add(llm_input=["nope"]))
    e = caught.value
    assert e.status_code == 400
    assert e.code == "invalid_header"
    assert "no guardrail named `nope`" in e.message, e.message


# --- anthropic --------------------------------------------------------------------


def test_anthropic_blocked_input_is_a_bad_request_naming_the_guardrail(org) -> None:
    _, client = org
    key = aws_key()
    with pytest.raises(anthropic.BadRequestError) as caught:
        client.messages.create(model=ECHO, max_tokens=50, messages=user(f"deploy with {key}"))
    e = caught.value
    assert e.status_code == 400
    assert isinstance(e.body, dict) and e.body["type"] == "error"
    assert e.body["error"]["type"] == "invalid_request_error"
    message = e.body["error"]["message"]
    assert "no-secrets" in message and "llm_input" in message, message
    assert key not in str(e) and key not in e.response.text
    assert e.response.headers.get(HEADER) == "no-secrets=blocked"


def test_anthropic_pii_is_redacted_through_messages(org) -> None:
    _, client = org
    raw = client.messages.with_raw_response.create(model=ECHO, max_tokens=200, messages=user(PII_TEXT))
    assert raw.status_code == 200
    assert raw.headers.get(HEADER) == "pii-redact=mutated"
    msg = raw.parse()
    assert [(b.type, b.text) for b in msg.content] == [("text", PII_REDACTED)]


def test_anthropic_pii_restore_through_messages(restore) -> None:
    _, client = restore
    msg = client.messages.create(model=ECHO, max_tokens=200, messages=user(PII_TEXT))
    assert [(b.type, b.text) for b in msg.content] == [("text", PII_TEXT)]


@pytest.mark.parametrize("tail", TAILS.values(), ids=TAILS.keys())
def test_anthropic_stream_masks_a_leaked_key(output, tail: str) -> None:
    _, client = output
    key = aws_key()
    with client.messages.stream(
        model=CHUNKY, max_tokens=500, messages=user(leaking_answer(key, tail)),
        extra_headers=add(llm_output=["mask-secrets"]),
    ) as stream:
        text = "".join(stream.text_stream)
    assert key[4:12] not in text and key[-8:] not in text, text
    assert text == f"{LEAD}the deploy key is {MASK}{tail}"


def test_anthropic_stream_blocked_on_output_raises_on_the_error_event(output) -> None:
    _, client = output
    key = aws_key()
    received: list[str] = []
    with pytest.raises(anthropic.APIStatusError) as caught:
        with client.messages.stream(
            model=CHUNKY, max_tokens=500, messages=user(leaking_answer(key, "")),
            extra_headers=add(llm_output=["stop-secrets"]),
        ) as stream:
            for t in stream.text_stream:
                received.append(t)
    e = caught.value
    # The SDK turns an `error` event into a status error carrying the
    # event's body (and the stream's own status, 200).
    assert isinstance(e.body, dict) and e.body["type"] == "error", e.body
    message = e.body["error"]["message"]
    assert "stop-secrets" in message and "llm_output" in message, message
    assert key[4:] not in message
    assert f"{LEAD}the deploy key is ".startswith("".join(received)), received
    # The same block as a 400 on /v1/messages, and as the stream guard
    # writes it for an Anthropic upstream: invalid_request_error.
    assert e.body["error"]["type"] == "invalid_request_error", e.body
