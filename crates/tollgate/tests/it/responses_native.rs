//! `/v1/responses` to an `openai` provider: passed to OpenAI's own
//! Responses API as the client wrote it — whole and streamed, with the
//! stored conversation written out as items — and translated like for any
//! other provider when a fallback, an output guardrail or a template needs it.

use http::Method;
use serde_json::{Value, json};
use testkit::{Fault, MockUpstream};

use crate::common::*;

fn yaml(up: &MockUpstream, extra: &str) -> String {
    config(
        &up.base_url(),
        &format!(
            r#"  - {{ name: oai, type: openai, base_url: "{}", api_key: "sk-oai", models: [{{ name: gpt-5 }}] }}
  - {{ name: claude, type: anthropic, base_url: "http://{}", api_key: "sk-ant", models: [{{ name: claude-sonnet-4-5 }}] }}
{extra}"#,
            up.base_url(),
            up.addr
        ),
    )
}

async fn responses(h: &Harness, body: &Value) -> Resp {
    h.send(Method::POST, &h.url("/v1/responses"), Some(MASTER), &[], body.to_string()).await
}

fn last_sent(up: &MockUpstream) -> (String, Value) {
    let r = up.requests().last().cloned().unwrap();
    (r.path.clone(), serde_json::from_slice(&r.body).unwrap_or(Value::Null))
}

#[tokio::test]
async fn an_openai_model_gets_the_request_as_written_and_answers_as_openai_does() {
    let up = MockUpstream::start().await;
    let h = Harness::start(&yaml(&up, "")).await;
    let tools = json!([{ "type": "function", "name": "lookup", "parameters": { "type": "object" } }]);
    let r = responses(&h, &json!({ "model": "oai/gpt-5", "instructions": "be brief", "input": "look it up",
        "tools": tools, "reasoning": { "effort": "low", "summary": "auto" }, "include": ["reasoning.encrypted_content"] }))
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let (path, sent) = last_sent(&up);
    assert_eq!(path, "/v1/responses");
    assert_eq!(sent["model"], "gpt-5");
    assert_eq!(sent["include"], json!(["reasoning.encrypted_content"]), "fields only OpenAI knows go as written");
    assert_eq!(sent["input"], json!([{ "role": "user", "content": "look it up" }]));
    let v = r.json();
    let first = v["id"].as_str().unwrap().to_string();
    assert!(first.starts_with("resp_up_"), "OpenAI's own answer, id and all: {v}");
    assert_eq!(v["output"][0]["call_id"], "call_up_1");
    assert_eq!(r.header("x-tollgate-resolved-model"), Some("oai/gpt-5"));

    // The next turn: the stored conversation is written out, not left to OpenAI.
    let out = json!({ "type": "function_call_output", "call_id": "call_up_1", "output": "42 apples" });
    let r = responses(&h, &json!({ "model": "oai/gpt-5", "tools": tools, "previous_response_id": first, "input": [out] })).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let (_, sent) = last_sent(&up);
    assert!(sent.get("previous_response_id").is_none());
    let kinds: Vec<_> = sent["input"].as_array().unwrap().iter().map(|i| i["type"].as_str().unwrap_or("message").to_string()).collect();
    assert_eq!(kinds, ["message", "function_call", "function_call_output"]);
    assert_eq!(r.json()["output"][0]["content"][0]["text"], "tool said: 42 apples");

    // The same conversation continued on Claude: translated from the stored turns.
    let r = responses(&h, &json!({ "model": "claude/claude-sonnet-4-5", "tools": tools,
        "previous_response_id": first, "input": [out] })).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let (path, sent) = last_sent(&up);
    assert_eq!(path, "/v1/messages");
    assert_eq!(sent["messages"].as_array().unwrap().len(), 3, "{sent}");

    // Usage and the log as for any request.
    let id = r.header("x-tollgate-request-id").unwrap().to_string();
    eventually("logged", async || {
        let e = h.send(Method::GET, &h.admin_url(&format!("/admin/logs/{id}")), Some(MASTER), &[], String::new()).await;
        e.status == 200 && e.json()["route"] == "responses"
    })
    .await;
}

#[tokio::test]
async fn a_native_stream_is_relayed_as_it_came_and_kept() {
    let up = MockUpstream::start().await;
    let h = Harness::start(&yaml(&up, "")).await;
    let r = responses(&h, &json!({ "model": "oai/gpt-5", "input": "stream me", "stream": true })).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let text = r.text();
    assert!(text.starts_with("event: response.created\n"), "{text}");
    assert!(text.contains("event: response.completed\n"), "{text}");
    assert_eq!(last_sent(&up).0, "/v1/responses");
    let id = text.split("\"id\":\"").nth(1).and_then(|r| r.split('"').next()).unwrap().to_string();
    let stored = h.get(&format!("/v1/responses/{id}"), Some(MASTER)).await;
    assert_eq!(stored.status, 200);
    assert_eq!(stored.json()["output"][0]["content"][0]["text"], "upstream says: stream me");
    // A stream OpenAI cuts short ends with an error event, not a false end.
    up.push_fault(Fault::CutStream { after_events: 3, abort: false });
    let r = responses(&h, &json!({ "model": "oai/gpt-5", "input": "stream me", "stream": true })).await;
    let text = r.text();
    assert!(!text.contains("event: response.completed"), "{text}");
    assert!(text.contains("event: error"), "{text}");
}

#[tokio::test]
async fn fallbacks_and_output_guardrails_translate_instead() {
    let up = MockUpstream::start().await;
    let extra = r#"virtual_models:
  - name: prod/mixed
    circuit_breaker: { consecutive_failures: 100 }
    targets: [{ model: oai/gpt-5, fallback_on: [503] }, { model: claude/claude-sonnet-4-5 }]
"#;
    let h = Harness::start(&yaml(&up, extra)).await;
    up.push_fault(Fault::Status { status: 503, body: None, retry_after: None });
    let r = responses(&h, &json!({ "model": "prod/mixed", "input": "hello" })).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-tollgate-resolved-model"), Some("claude/claude-sonnet-4-5"));
    assert_eq!(r.json()["output"][0]["content"][0]["text"], "upstream says: hello");
    let paths: Vec<String> = up.requests().iter().map(|r| r.path.clone()).collect();
    assert_eq!(paths, ["/v1/responses", "/v1/messages"]);

    // With an output guardrail the answer must be read as chat: no native call.
    let guarded = Harness::start(&yaml(&up, r#"guardrails:
  definitions: [{ name: secrets, type: secrets }]
  enforce: { llm_output: [secrets] }
"#))
    .await;
    up.clear();
    let r = responses(&guarded, &json!({ "model": "oai/gpt-5", "input": "hello" })).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(last_sent(&up).0, "/v1/chat/completions");
    assert!(r.json()["id"].as_str().unwrap().starts_with("resp_"));
}

#[tokio::test]
async fn azure_openai_takes_it_on_its_v1_responses_path_with_the_deployment() {
    let up = MockUpstream::start().await;
    let extra = format!(
        r#"  - {{ name: az, type: azure_openai, base_url: "http://{}", api_key: "az-secret", deployments: {{ gpt-5: prod-gpt5 }}, models: [{{ name: gpt-5 }}] }}
"#,
        up.addr
    );
    let h = Harness::start(&yaml(&up, &extra)).await;
    let r = responses(&h, &json!({ "model": "az/gpt-5", "input": "hello" })).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let sent = up.requests().last().cloned().unwrap();
    assert_eq!(sent.path, "/openai/v1/responses");
    assert_eq!(sent.headers.get("api-key").and_then(|v| v.to_str().ok()), Some("az-secret"));
    let body: Value = serde_json::from_slice(&sent.body).unwrap();
    assert_eq!(body["model"], "prod-gpt5");
    assert_eq!(r.json()["output"][0]["content"][0]["text"], "upstream says: hello");
}
