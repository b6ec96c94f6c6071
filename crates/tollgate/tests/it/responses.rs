//! `POST /v1/responses`: the OpenAI Responses API answered by any model,
//! whole and streamed, with tools, stored conversations and their isolation.

use http::Method;
use serde_json::{Value, json};
use testkit::MockUpstream;

use crate::common::*;

async fn responses(h: &Harness, key: &str, body: &Value) -> Resp {
    h.send(Method::POST, &h.url("/v1/responses"), Some(key), &[], body.to_string()).await
}

fn tools() -> Value {
    json!([{ "type": "function", "name": "lookup", "description": "find a thing",
             "parameters": { "type": "object", "properties": { "q": { "type": "string" } }, "required": ["q"] } }])
}

/// Every provider type the test kit speaks, by a model of each.
const MODELS: [&str; 6] = [
    "up/gpt-4o-mini",
    "claude/claude-sonnet-4-5",
    "gem/gemini-2.5-flash",
    "vx/gemini-2.5-pro",
    "br/anthropic.claude-3-5-haiku-20241022-v1:0",
    "co/command-r-plus",
];

#[tokio::test]
async fn every_provider_answers_in_the_responses_shape() {
    let up = MockUpstream::start().await;
    let (h, _d) = crate::providers::start(&up).await;
    for model in MODELS.iter().chain(&["mock/echo"]) {
        let r = responses(&h, MASTER, &json!({ "model": model, "instructions": "be brief", "input": "hello there",
            "max_output_tokens": 100, "metadata": { "ticket": "T-1" } }))
        .await;
        assert_eq!(r.status, 200, "{model}: {}", r.text());
        let v = r.json();
        assert_eq!(v["object"], "response", "{model}");
        assert!(v["id"].as_str().unwrap().starts_with("resp_"), "{v}");
        assert_eq!(v["status"], "completed", "{model}: {v}");
        assert_eq!(v["instructions"], "be brief");
        assert_eq!(v["metadata"], json!({ "ticket": "T-1" }));
        let msg = v["output"].as_array().unwrap().iter().find(|i| i["type"] == "message").unwrap();
        assert_eq!(msg["role"], "assistant");
        assert_eq!(msg["content"][0]["type"], "output_text");
        assert!(msg["content"][0]["text"].as_str().unwrap().contains("hello there"), "{model}: {v}");
        let u = &v["usage"];
        assert!(u["input_tokens"].as_u64().unwrap() > 0 && u["output_tokens"].as_u64().unwrap() > 0, "{model}: {v}");
        assert_eq!(u["total_tokens"], u["input_tokens"].as_u64().unwrap() + u["output_tokens"].as_u64().unwrap());
        assert_eq!(r.header("x-tollgate-resolved-model"), Some(*model));
    }
}

#[tokio::test]
async fn a_function_tool_round_trip_keeps_call_ids_on_every_provider() {
    let up = MockUpstream::start().await;
    let (h, _d) = crate::providers::start(&up).await;
    for model in MODELS {
        let first = responses(&h, MASTER, &json!({ "model": model, "input": "look it up", "tools": tools() })).await;
        assert_eq!(first.status, 200, "{model}: {}", first.text());
        let v = first.json();
        let call = v["output"].as_array().unwrap().iter().find(|i| i["type"] == "function_call").cloned();
        let call = call.unwrap_or_else(|| panic!("{model}: no function_call in {v}"));
        assert_eq!(call["name"], "lookup");
        assert_eq!(serde_json::from_str::<Value>(call["arguments"].as_str().unwrap()).unwrap(), json!({ "q": "x" }));
        let call_id = call["call_id"].as_str().unwrap().to_string();
        assert!(!call_id.is_empty());

        // Continued from the stored response: only the tool's output is sent.
        let output = json!({ "type": "function_call_output", "call_id": call_id, "output": "42 apples" });
        let next = responses(&h, MASTER, &json!({ "model": model, "tools": tools(),
            "previous_response_id": v["id"], "input": [output] }))
        .await;
        assert_eq!(next.status, 200, "{model}: {}", next.text());
        let n = next.json();
        assert_eq!(n["previous_response_id"], v["id"]);
        assert_eq!(n["output"][0]["content"][0]["text"], "tool said: 42 apples", "{model}: {n}");

        // The same turn with the whole history sent as items (store: false).
        let whole = json!({ "model": model, "tools": tools(), "store": false, "input": [
            { "role": "user", "content": "look it up" }, call, output ] });
        let again = responses(&h, MASTER, &whole).await.json();
        assert_eq!(again["output"][0]["content"][0]["text"], "tool said: 42 apples", "{model}: {again}");
        let gone = h.get(&format!("/v1/responses/{}", again["id"].as_str().unwrap()), Some(MASTER)).await;
        assert_eq!(gone.status, 404, "store: false is not kept");
    }
}

#[tokio::test]
async fn streams_follow_the_responses_event_sequence() {
    let up = MockUpstream::start().await;
    let (h, _d) = crate::providers::start(&up).await;
    for model in MODELS.iter().chain(&["mock/echo"]) {
        let with_tools = *model != "mock/echo";
        let mut body = json!({ "model": model, "input": "look", "stream": true });
        if with_tools {
            body["tools"] = tools();
        }
        let r = responses(&h, MASTER, &body).await;
        assert_eq!(r.status, 200, "{model}: {}", r.text());
        assert!(r.header("content-type").unwrap().starts_with("text/event-stream"));
        let ev = named_events(&r.text());
        let names: Vec<&str> = ev.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(&names[..2], ["response.created", "response.in_progress"], "{model}: {names:?}");
        assert_eq!(names.last(), Some(&"response.completed"), "{model}: {names:?}");
        for (i, (n, d)) in ev.iter().enumerate() {
            assert_eq!(d["type"], n.as_str(), "{model}: the data names its own event");
            assert_eq!(d["sequence_number"], i, "{model}: sequence numbers count from 0");
        }
        let done = &ev.last().unwrap().1["response"];
        assert_eq!(done["status"], "completed");
        assert!(done["usage"]["output_tokens"].as_u64().unwrap() > 0, "{model}: {done}");
        // Items open and close in order, each delta inside its own item.
        let mut open: Option<u64> = None;
        for (n, d) in &ev {
            match n.as_str() {
                "response.output_item.added" => {
                    assert!(open.replace(d["output_index"].as_u64().unwrap()).is_none(), "{model}: overlapping items")
                }
                "response.output_item.done" => assert_eq!(open.take(), d["output_index"].as_u64()),
                "response.output_text.delta" | "response.function_call_arguments.delta" => {
                    assert_eq!(open, d["output_index"].as_u64(), "{model}")
                }
                _ => {}
            }
        }
        if with_tools {
            let args: String = ev
                .iter()
                .filter(|(n, _)| n == "response.function_call_arguments.delta")
                .map(|(_, d)| d["delta"].as_str().unwrap().to_string())
                .collect();
            assert_eq!(serde_json::from_str::<Value>(&args).unwrap(), json!({ "q": "x" }), "{model}");
            let call = done["output"].as_array().unwrap().iter().find(|i| i["type"] == "function_call").unwrap();
            assert_eq!(call["arguments"].as_str().unwrap(), args);
            assert!(!call["call_id"].as_str().unwrap().is_empty());
        } else {
            let text: String = ev
                .iter()
                .filter(|(n, _)| n == "response.output_text.delta")
                .map(|(_, d)| d["delta"].as_str().unwrap().to_string())
                .collect();
            assert_eq!(done["output"][0]["content"][0]["text"].as_str().unwrap(), text);
        }
        // A streamed response is stored whole, like any other.
        let id = done["id"].as_str().unwrap();
        let stored = h.get(&format!("/v1/responses/{id}"), Some(MASTER)).await;
        assert_eq!(stored.status, 200, "{model}");
        assert_eq!(stored.json()["output"], done["output"]);
    }
}

#[tokio::test]
async fn stored_responses_belong_to_their_caller() {
    let up = MockUpstream::start().await;
    let h = Harness::start(&config(&up.base_url(), "")).await;
    let r = responses(&h, LIMITED, &json!({ "model": "mock/echo", "input": "mine" })).await.json();
    let id = r["id"].as_str().unwrap();
    let path = format!("/v1/responses/{id}");
    assert_eq!(h.get(&path, Some(LIMITED)).await.json()["id"], id);
    // Another caller can neither read it nor continue its conversation.
    assert_eq!(h.get(&path, Some(MASTER)).await.status, 404);
    let other = responses(&h, MASTER, &json!({ "model": "mock/echo", "input": "x", "previous_response_id": id })).await;
    assert_eq!(other.status, 400);
    assert!(other.error_message().contains("previous response"), "{}", other.text());
    let items = h.get(&format!("{path}/input_items"), Some(LIMITED)).await.json();
    assert_eq!(items["data"][0]["content"][0]["text"], "mine");
    // A continued conversation carries the earlier turns to the model.
    let next =
        responses(&h, LIMITED, &json!({ "model": "mock/echo", "input": "and more", "previous_response_id": id })).await;
    assert_eq!(next.status, 200, "{}", next.text());
    let deleted =
        h.send(Method::DELETE, &h.url(&path), Some(LIMITED), &[], String::new()).await.json();
    assert_eq!(deleted, json!({ "id": id, "object": "response.deleted", "deleted": true }));
    assert_eq!(h.get(&path, Some(LIMITED)).await.status, 404);
    let orphan = responses(&h, LIMITED, &json!({ "model": "mock/echo", "input": "x", "previous_response_id": id })).await;
    assert_eq!(orphan.status, 400);
    // Without a key: the usual 401, before anything is read.
    let anon = h.send(Method::POST, &h.url("/v1/responses"), None, &[], "{}".to_string()).await;
    assert_eq!(anon.status, 401);
}

#[tokio::test]
async fn the_upstream_gets_a_chat_request_and_the_log_names_the_api() {
    let up = MockUpstream::start().await;
    let h = Harness::start(&config(&up.base_url(), "")).await;
    let r = responses(&h, MASTER, &json!({ "model": "up/gpt-4o-mini", "instructions": "sys",
        "input": [{ "role": "user", "content": [{ "type": "input_text", "text": "hi" },
                   { "type": "input_image", "image_url": "https://example.com/a.png" }] }],
        "text": { "format": { "type": "json_schema", "name": "out", "schema": { "type": "object" } } },
        "reasoning": { "effort": "low" }, "max_output_tokens": 64, "temperature": 0.3 }))
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let sent = up.requests().last().cloned().unwrap();
    let body: Value = serde_json::from_slice(&sent.body).unwrap();
    assert_eq!(body["messages"][0], json!({ "role": "system", "content": "sys" }));
    assert_eq!(body["messages"][1]["content"][1]["image_url"]["url"], "https://example.com/a.png");
    assert_eq!(body["response_format"]["json_schema"]["name"], "out");
    assert_eq!((body["reasoning_effort"].clone(), body["max_tokens"].clone()), (json!("low"), json!(64)));
    let id = r.header("x-tollgate-request-id").unwrap().to_string();
    eventually("the log entry", async || {
        let url = h.admin_url(&format!("/admin/logs/{id}"));
        let e = h.send(Method::GET, &url, Some(MASTER), &[], String::new()).await;
        e.status == 200 && e.json()["route"] == "responses"
    })
    .await;
}

#[tokio::test]
async fn bad_requests_get_a_400_that_says_what_to_fix() {
    let up = MockUpstream::start().await;
    let h = Harness::start(&config(&up.base_url(), "")).await;
    for (body, says) in [
        (json!({ "model": "mock/echo" }), "`input` is required"),
        (json!({ "model": "mock/echo", "input": 5 }), "`input` must be"),
        (json!({ "model": "mock/echo", "input": "x", "tools": [{ "type": "file_search" }] }), "file_search"),
        (json!({ "model": "mock/echo", "input": "x", "previous_response_id": "resp_nope" }), "was not found"),
        (json!({ "model": "mock/echo", "input": [{ "type": "function_call", "name": "f" }] }), "call_id"),
    ] {
        let r = responses(&h, MASTER, &body).await;
        assert_eq!(r.status, 400, "{body}: {}", r.text());
        assert!(r.error_message().contains(says), "{body}: {}", r.text());
    }
    let r = h.send(Method::POST, &h.url("/v1/responses"), Some(MASTER), &[], "{oops".to_string()).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["code"], "invalid_json");
    // Refused at the front, and still one log entry each, under the caller.
    let id = r.header("x-tollgate-request-id").unwrap().to_string();
    eventually("the refusal is logged", async || {
        let url = h.admin_url(&format!("/admin/logs/{id}"));
        let e = h.send(Method::GET, &url, Some(MASTER), &[], String::new()).await;
        e.status == 200 && e.json()["status"] == 400 && e.json()["route"] == "responses" && e.json()["subject"] == "master"
    })
    .await;
    // A model the key may not use is refused as on chat.
    let r = responses(&h, LIMITED, &json!({ "model": "up/gpt-4o-mini", "input": "x" })).await;
    assert_eq!(r.status, 403, "{}", r.text());
}

#[tokio::test]
async fn governed_like_chat_guardrails_fallbacks_limits_and_cut_streams() {
    let (a, b) = (MockUpstream::start().await, MockUpstream::start().await);
    let yaml = format!(
        r#"
server: {{ listen: "127.0.0.1:0", admin_listen: "127.0.0.1:0" }}
auth: {{ master_key: "{MASTER}" }}
providers:
  - {{ name: a, type: openai_compatible, base_url: "{}", api_key: "sk-a", models: [{{ name: m }}] }}
  - {{ name: b, type: openai_compatible, base_url: "{}", api_key: "sk-b", models: [{{ name: m }}] }}
virtual_models:
  - name: prod/chat
    circuit_breaker: {{ consecutive_failures: 100 }}
    targets: [{{ model: a/m, fallback_on: [503] }}, {{ model: b/m }}]
guardrails:
  definitions: [{{ name: codenames, type: deny_list, terms: [atlas] }}]
  enforce: {{ llm_input: [codenames], llm_output: [codenames] }}
rate_limits:
  - {{ id: few, limit_by: [subject], unit: requests_per_minute, limit: 4 }}
"#,
        a.base_url(),
        b.base_url()
    );
    let h = Harness::start(&yaml).await;
    // An input guardrail refuses before any model is called.
    let r = responses(&h, MASTER, &json!({ "model": "prod/chat", "input": "ship Atlas now" })).await;
    assert_eq!((r.status.as_u16(), r.json()["error"]["code"].clone()), (400, json!("guardrail_blocked")));
    assert_eq!(a.request_count() + b.request_count(), 0);
    // A virtual model falls back as on chat.
    a.push_fault(testkit::Fault::Status { status: 503, body: None, retry_after: None });
    let r = responses(&h, MASTER, &json!({ "model": "prod/chat", "input": "hello" })).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-tollgate-resolved-model"), Some("b/m"));
    assert_eq!(r.header("x-tollgate-attempts"), Some("2"));
    // A stream the provider cuts ends with response.failed, never a false completion.
    a.push_fault(testkit::Fault::CutStream { after_events: 2, abort: false });
    let r = responses(&h, MASTER, &json!({ "model": "a/m", "input": "hello there friend", "stream": true })).await;
    let ev = named_events(&r.text());
    assert_eq!(ev.last().unwrap().0, "response.failed", "{}", r.text());
    assert!(!ev.iter().any(|(n, _)| n == "response.completed"));
    // The rate limit counts Responses requests like any other (the fourth of four).
    let r = responses(&h, MASTER, &json!({ "model": "b/m", "input": "hello" })).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = responses(&h, MASTER, &json!({ "model": "b/m", "input": "hello" })).await;
    assert_eq!(r.status, 429, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "rate_limit_exceeded");
}
