//! `POST /v1/messages`: Anthropic-shaped requests answered by any model,
//! with answers, streams and errors in exact Anthropic shape.

use http::Method;
use serde_json::{Value, json};
use testkit::{Fault, MockUpstream};

use crate::common::*;

async fn messages(h: &Harness, body: &Value) -> Resp {
    h.send(
        Method::POST,
        &h.url("/v1/messages"),
        None,
        &[("x-api-key", MASTER), ("anthropic-version", "2023-06-01")],
        body.to_string(),
    )
    .await
}

fn tools() -> Value {
    json!([{ "name": "lookup", "description": "find", "input_schema": { "type": "object", "properties": { "q": { "type": "string" } } } }])
}

const NON_ANTHROPIC: [&str; 4] =
    ["up/gpt-4o-mini", "gem/gemini-2.5-flash", "br/anthropic.claude-3-5-haiku-20241022-v1:0", "mock/echo"];

#[tokio::test]
async fn any_model_answers_in_anthropic_shape() {
    let up = MockUpstream::start().await;
    let (h, _d) = crate::providers::start(&up).await;
    for model in NON_ANTHROPIC {
        let r = messages(
            &h,
            &json!({ "model": model, "max_tokens": 200, "system": "be brief",
            "messages": [{ "role": "user", "content": "hello there" }] }),
        )
        .await;
        assert_eq!(r.status, 200, "{model}: {}", r.text());
        let v = r.json();
        assert_eq!(v["type"], "message", "{model}");
        assert_eq!(v["role"], "assistant");
        assert_eq!(v["model"], model);
        assert!(v["id"].as_str().unwrap().starts_with("msg_"));
        assert_eq!(v["content"][0]["type"], "text");
        assert!(v["content"][0]["text"].as_str().unwrap().contains("hello there"), "{model}: {v}");
        assert_eq!(v["stop_reason"], "end_turn");
        assert!(
            v["usage"]["input_tokens"].as_u64().unwrap() > 0 && v["usage"]["output_tokens"].as_u64().unwrap() > 0,
            "{v}"
        );
    }
}

#[tokio::test]
async fn tool_use_conversation_through_a_non_anthropic_model() {
    let up = MockUpstream::start().await;
    let (h, _d) = crate::providers::start(&up).await;
    for model in ["up/gpt-4o-mini", "gem/gemini-2.5-flash", "br/anthropic.claude-3-5-haiku-20241022-v1:0"] {
        let first = json!({ "role": "user", "content": "look it up" });
        let v = messages(&h, &json!({ "model": model, "max_tokens": 200, "tools": tools(), "messages": [first] }))
            .await
            .json();
        assert_eq!(v["stop_reason"], "tool_use", "{model}: {v}");
        let block = v["content"].as_array().unwrap().iter().find(|b| b["type"] == "tool_use").unwrap().clone();
        assert_eq!(block["name"], "lookup");
        assert_eq!(block["input"], json!({ "q": "x" }));
        let id = block["id"].as_str().unwrap().to_string();
        let turn = json!([first, { "role": "assistant", "content": v["content"] },
            { "role": "user", "content": [{ "type": "tool_result", "tool_use_id": id, "content": "42 apples" }] }]);
        let r = messages(&h, &json!({ "model": model, "max_tokens": 200, "tools": tools(), "messages": turn })).await;
        assert_eq!(r.status, 200, "{model}: {}", r.text());
        let v = r.json();
        assert_eq!(v["content"][0]["text"], "tool said: 42 apples", "{model}: {v}");
    }
}

#[tokio::test]
async fn streams_follow_the_anthropic_event_sequence() {
    let up = MockUpstream::start().await;
    let (h, _d) = crate::providers::start(&up).await;
    for model in NON_ANTHROPIC.iter().chain(&["claude/claude-sonnet-4-5"]) {
        let r = messages(
            &h,
            &json!({ "model": model, "max_tokens": 200, "stream": true, "tools": tools(),
            "messages": [{ "role": "user", "content": "look" }] }),
        )
        .await;
        assert_eq!(r.status, 200, "{model}: {}", r.text());
        let ev = named_events(&r.text());
        let names: Vec<&str> = ev.iter().map(|(n, _)| n.as_str()).filter(|n| *n != "ping").collect();
        assert_eq!(names.first(), Some(&"message_start"), "{model}: {names:?}");
        assert_eq!(&names[names.len() - 2..], ["message_delta", "message_stop"], "{model}: {names:?}");
        let json: String = ev
            .iter()
            .filter(|(_, d)| d["delta"]["type"] == "input_json_delta")
            .map(|(_, d)| d["delta"]["partial_json"].as_str().unwrap().to_string())
            .collect();
        let input: Value = serde_json::from_str(&json).unwrap();
        assert!(input["q"].is_string(), "{model}: {}", r.text());
        let start =
            ev.iter().find(|(n, d)| n == "content_block_start" && d["content_block"]["type"] == "tool_use").unwrap();
        assert!(!start.1["content_block"]["id"].as_str().unwrap().is_empty());
        let delta = &ev.iter().find(|(n, _)| n == "message_delta").unwrap().1;
        assert_eq!(delta["delta"]["stop_reason"], "tool_use", "{model}");
        assert!(delta["usage"]["output_tokens"].as_u64().unwrap() > 0, "{model}: {delta}");
        // Blocks open and close in order, never overlapping.
        let mut open = None;
        for (n, d) in &ev {
            match n.as_str() {
                "content_block_start" => {
                    assert!(open.replace(d["index"].clone()).is_none(), "{model}: overlapping blocks")
                }
                "content_block_stop" => assert_eq!(open.take(), Some(d["index"].clone())),
                "content_block_delta" => assert_eq!(open.as_ref(), Some(&d["index"])),
                _ => {}
            }
        }
    }
}

#[tokio::test]
async fn an_anthropic_model_gets_the_request_exactly_as_the_client_wrote_it() {
    let up = MockUpstream::start().await;
    let (h, _d) = crate::providers::start(&up).await;
    let body = json!({ "model": "claude/claude-sonnet-4-5", "max_tokens": 300,
        "system": [{ "type": "text", "text": "cached prefix", "cache_control": { "type": "ephemeral" } }],
        "messages": [{ "role": "user", "content": "hi" }], "top_k": 5, "metadata": { "user_id": "u-1" } });
    let r = h
        .send(
            Method::POST,
            &h.url("/v1/messages"),
            None,
            &[
                ("x-api-key", MASTER),
                ("anthropic-version", "2023-06-01"),
                ("anthropic-beta", "prompt-caching-2024-07-31"),
            ],
            body.to_string(),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let sent = &up.requests()[0];
    let mut expected = body.clone();
    expected["model"] = json!("claude-sonnet-4-5");
    assert_eq!(sent.json(), expected, "only the model changes");
    assert_eq!(sent.headers["anthropic-beta"], "prompt-caching-2024-07-31");
    assert_eq!(sent.headers["x-api-key"], "sk-ant-secret", "the provider's key, never the client's");
    let v = r.json();
    assert_eq!(v["usage"]["cache_read_input_tokens"], 3, "the provider's answer as it came: {v}");
}

#[tokio::test]
async fn errors_are_anthropic_shaped() {
    let up = MockUpstream::start().await;
    let (h, _d) = crate::providers::start(&up).await;
    let r = messages(&h, &json!({ "model": "up/gpt-4o-mini", "messages": [{ "role": "user", "content": "x" }] })).await;
    assert_eq!(r.status, 400);
    let v = r.json();
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "invalid_request_error");
    assert!(v["error"]["message"].as_str().unwrap().contains("max_tokens"), "{v}");
    let r =
        messages(&h, &json!({ "model": "nope/x", "max_tokens": 5, "messages": [{ "role": "user", "content": "x" }] }))
            .await;
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["error"]["type"], "not_found_error");
    let r = h.send(Method::POST, &h.url("/v1/messages"), None, &[("x-api-key", "wrong-key-123")], "{}").await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"]["type"], "authentication_error");
    up.push_fault(Fault::Status { status: 429, body: None, retry_after: Some("3".into()) });
    let r = messages(
        &h,
        &json!({ "model": "up/gpt-4o-mini", "max_tokens": 5, "messages": [{ "role": "user", "content": "x" }] }),
    )
    .await;
    assert_eq!(r.status, 429);
    assert_eq!(r.json()["error"]["type"], "rate_limit_error");
    assert_eq!(r.header("retry-after"), Some("3"));
    // Anthropic server tools only run on Anthropic models.
    let r = messages(
        &h,
        &json!({ "model": "up/gpt-4o-mini", "max_tokens": 5, "messages": [{ "role": "user", "content": "x" }],
        "tools": [{ "type": "web_search_20250305", "name": "web_search" }] }),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.json()["error"]["message"].as_str().unwrap().contains("server tool"), "{}", r.text());
    // A stream cut after it started ends with an Anthropic error event.
    up.push_fault(Fault::CutStream { after_events: 3, abort: false });
    let r = messages(&h, &json!({ "model": "up/gpt-4o-mini", "max_tokens": 5, "stream": true, "messages": [{ "role": "user", "content": "one two three four" }] })).await;
    let ev = named_events(&r.text());
    assert_eq!(ev.last().unwrap().0, "error", "{}", r.text());
    assert!(!ev.iter().any(|(n, _)| n == "message_stop"));
}

#[tokio::test]
async fn count_tokens_counts_with_the_tokenizer() {
    let up = MockUpstream::start().await;
    let (h, _d) = crate::providers::start(&up).await;
    let r = h
        .send(
            Method::POST,
            &h.url("/v1/messages/count_tokens"),
            None,
            &[("x-api-key", MASTER)],
            json!({ "model": "up/gpt-4o-mini", "messages": [{ "role": "user", "content": "hello world" }] })
                .to_string(),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let n = r.json()["input_tokens"].as_u64().unwrap();
    assert!((2..10).contains(&n), "{n}");
    assert_eq!(up.request_count(), 0);
}

/// A virtual model whose first target is Anthropic (sent the client's own
/// request) and whose fallback is OpenAI-compatible (sent the translation):
/// an overloaded Anthropic answer falls back and the client still gets
/// Anthropic's shape, streamed or not.
#[tokio::test]
async fn fallback_from_an_anthropic_target_to_an_openai_one_keeps_the_anthropic_shape() {
    let up = MockUpstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let extra = format!(
        "{}virtual_models:\n  - name: prod/assistant\n    strategy: priority\n    targets:\n      - {{ model: claude/claude-sonnet-4-5, fallback_on: [529] }}\n      - {{ model: up/gpt-4o-mini }}\n",
        crate::providers::providers(&up, dir.path())
    );
    let h = Harness::start(&config(&up.base_url(), &extra)).await;
    for stream in [false, true] {
        up.clear();
        up.push_fault(if stream {
            Fault::StreamError { after_events: 0, status: 529 }
        } else {
            Fault::Status { status: 529, body: None, retry_after: None }
        });
        let r = messages(
            &h,
            &json!({ "model": "prod/assistant", "max_tokens": 50, "stream": stream,
            "messages": [{ "role": "user", "content": "hello" }] }),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.header("x-tollgate-resolved-model"), Some("up/gpt-4o-mini"));
        assert_eq!(r.header("x-tollgate-attempts"), Some("2"));
        let paths: Vec<String> = up.requests().iter().map(|r| r.path.clone()).collect();
        assert_eq!(paths, ["/v1/messages", "/v1/chat/completions"], "native first, translation second");
        if stream {
            let ev = named_events(&r.text());
            assert_eq!(ev.first().map(|e| e.0.as_str()), Some("message_start"), "{}", r.text());
            assert_eq!(ev.last().map(|e| e.0.as_str()), Some("message_stop"), "{}", r.text());
        } else {
            let v = r.json();
            assert_eq!(v["type"], "message");
            assert_eq!(v["content"][0]["text"], "upstream says: hello");
        }
    }
}
