//! Chat completions and embeddings through the OpenAI-compatible provider
//! (against the test kit's mock upstream) and the built-in mock.

use std::time::{Duration, Instant};

use http::Method;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use testkit::MockUpstream;

use crate::common::*;

#[tokio::test]
async fn passthrough_keeps_unknown_fields_rewrites_model_and_swaps_credentials() {
    let up = MockUpstream::start().await;
    let h = Harness::start(&config(&up.base_url(), "")).await;
    let body = json!({
        "model": "up/gpt-4o-mini",
        "messages": [{ "role": "user", "content": [{ "type": "text", "text": "what is here?" },
                      { "type": "image_url", "image_url": { "url": "data:image/png;base64,iVBORw0KGgo=" } }] }],
        "tools": [{ "type": "function", "function": { "name": "lookup", "parameters": { "type": "object" } } }],
        "tool_choice": "auto", "parallel_tool_calls": true,
        "response_format": { "type": "json_schema", "json_schema": { "name": "x", "schema": { "type": "object" } } },
        "n": 2, "temperature": 0.25, "logprobs": true, "vendor_extension": { "deep": [1, 2.50, "x"] }
    });
    // Sent as text so number formatting (2.50) is the client's own, not serde's.
    let raw = body.to_string().replace(r#"[1,2.5,"x"]"#, r#"[1,2.50,"x"]"#);
    let r = h.send(Method::POST, &h.url("/v1/chat/completions"), Some(MASTER), &[], raw).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-tollgate-resolved-model"), Some("up/gpt-4o-mini"));
    assert!(r.header("x-tollgate-request-id").is_some_and(|id| id.starts_with("req_")));
    let timing = r.header("server-timing").unwrap_or_default();
    assert!(timing.contains("gateway;dur=") && timing.contains("upstream;dur="), "{timing}");
    let v = r.json();
    assert_eq!(v["choices"].as_array().map(Vec::len), Some(2));
    assert_eq!(v["choices"][0]["message"]["tool_calls"][0]["id"], "call_up_1");

    let reqs = up.requests();
    assert_eq!(reqs.len(), 1);
    let sent = &reqs[0];
    assert_eq!(sent.path, "/v1/chat/completions");
    assert_eq!(sent.headers.get("authorization").unwrap(), "Bearer sk-upstream-secret");
    let mut expected = body.clone();
    expected["model"] = json!("gpt-4o-mini");
    assert_eq!(sent.json(), expected, "every field but model passes through untouched");
    // Raw bytes of nested values are preserved (2.50 is not re-serialised as 2.5).
    assert!(String::from_utf8_lossy(&sent.body).contains(r#"[1,2.50,"x"]"#));
}

#[tokio::test]
async fn the_clients_key_never_reaches_the_upstream() {
    let up = MockUpstream::start().await;
    let h = Harness::start(&config(&up.base_url(), "")).await;
    let r = h
        .send(
            Method::POST,
            &h.url("/v1/chat/completions"),
            None,
            &[("x-api-key", MASTER)],
            json!({ "model": "up/gpt-4o-mini", "messages": user("hi") }).to_string(),
        )
        .await;
    assert_eq!(r.status, 200);
    let sent = &up.requests()[0];
    assert!(sent.headers.get("x-api-key").is_none());
    for (_, v) in &sent.headers {
        assert!(!String::from_utf8_lossy(v.as_bytes()).contains(MASTER), "client key leaked upstream");
    }
}

#[tokio::test]
async fn streams_are_relayed_chunk_by_chunk() {
    let up = MockUpstream::start().await;
    up.set_chunk_delay(Duration::from_millis(120));
    let h = Harness::start(&config(&up.base_url(), "")).await;
    let body = json!({ "model": "up/gpt-4o-mini", "stream": true, "stream_options": { "include_usage": true },
                       "messages": user("one two three four five") });
    let req = http::Request::builder()
        .method(Method::POST)
        .uri(h.url("/v1/chat/completions"))
        .header("authorization", format!("Bearer {MASTER}"))
        .body(http_body_util::Full::new(bytes::Bytes::from(body.to_string())))
        .unwrap();
    let started = Instant::now();
    let resp = h.client.request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    assert_eq!(resp.headers()["x-tollgate-resolved-model"], "up/gpt-4o-mini");
    let mut body = resp.into_body();
    let mut arrivals = Vec::new();
    let mut text = String::new();
    while let Some(frame) = body.frame().await {
        if let Ok(d) = frame.unwrap().into_data() {
            arrivals.push(started.elapsed());
            text.push_str(&String::from_utf8_lossy(&d));
        }
    }
    let total = started.elapsed();
    assert!(total >= Duration::from_millis(800), "mock paces ~9 events at 120ms: {total:?}");
    // Relative, so a slow machine cannot fail it: the mock paces the events,
    // and the first must arrive long before the last.
    assert!(total - arrivals[0] >= Duration::from_millis(600), "first chunk must not wait for the whole stream: {arrivals:?}");
    assert!(arrivals.len() >= 5, "chunks arrive separately: {arrivals:?}");
    let data = sse_data(&text);
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    let content: String = data
        .iter()
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|v| v.pointer("/choices/0/delta/content").and_then(Value::as_str).map(str::to_string))
        .collect();
    assert_eq!(content, "upstream says: one two three four five");
    assert!(data.iter().any(|d| d.contains("\"usage\"") && d.contains("\"total_tokens\":18")));
}

#[tokio::test]
async fn mock_provider_answers_chat_stream_tools_and_embeddings() {
    let up = MockUpstream::start().await;
    let h = Harness::start(&config(&up.base_url(), "")).await;

    let r = h.chat(Some(LIMITED), &json!({ "model": "mock/echo", "messages": user("hello there") })).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["choices"][0]["message"]["content"], "hello there");
    assert!(v["usage"]["total_tokens"].as_u64().unwrap() > 0);

    let tools = json!([
        { "type": "function", "function": { "name": "get_weather", "parameters": { "type": "object",
          "properties": { "city": { "type": "string" } }, "required": ["city"] } } },
        { "type": "function", "function": { "name": "get_time", "parameters": { "type": "object", "properties": {} } } }
    ]);
    let r = h
        .chat(
            Some(MASTER),
            &json!({ "model": "mock/echo", "tools": tools,
        "messages": user("get_weather and get_time for Oslo") }),
        )
        .await;
    let v = r.json();
    let calls = v["choices"][0]["message"]["tool_calls"].as_array().cloned().unwrap_or_default();
    assert_eq!(calls.len(), 2, "parallel tool calls: {v}");
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
    let args: Value = serde_json::from_str(calls[0]["function"]["arguments"].as_str().unwrap()).unwrap();
    assert!(args["city"].is_string());

    let r = h
        .send(
            Method::POST,
            &h.url("/v1/chat/completions"),
            Some(MASTER),
            &[],
            json!({ "model": "mock/echo", "tools": tools, "stream": true, "messages": user("get_time") }).to_string(),
        )
        .await;
    let data = sse_data(&r.text());
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    let args: String = data
        .iter()
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|v| {
            v.pointer("/choices/0/delta/tool_calls/0/function/arguments").and_then(Value::as_str).map(str::to_string)
        })
        .collect();
    assert_eq!(args, "{}");

    let r = h
        .send(
            Method::POST,
            &h.url("/v1/embeddings"),
            Some(MASTER),
            &[],
            json!({ "model": "mock/embed", "input": ["a", "b"], "dimensions": 8 }).to_string(),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["data"].as_array().map(Vec::len), Some(2));
    assert_eq!(v["data"][0]["embedding"].as_array().map(Vec::len), Some(8));
}

#[tokio::test]
async fn embeddings_pass_through_to_the_upstream() {
    let up = MockUpstream::start().await;
    let h = Harness::start(&config(&up.base_url(), "")).await;
    let r = h
        .send(
            Method::POST,
            &h.url("/v1/embeddings"),
            Some(MASTER),
            &[],
            json!({ "model": "up/text-embedding-3-small", "input": "x", "encoding_format": "float" }).to_string(),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["data"][0]["embedding"], json!([0.1, 0.2, 0.3]));
    assert_eq!(up.requests()[0].path, "/v1/embeddings");
    assert_eq!(up.requests()[0].json()["model"], "text-embedding-3-small");
}

#[tokio::test]
async fn azure_uses_deployments_api_version_and_api_key_header() {
    let up = MockUpstream::start().await;
    let extra = format!(
        r#"  - name: azure
    type: azure_openai
    base_url: "http://{}"
    api_key: "azure-secret"
    api_version: "2024-10-21"
    deployments: {{ gpt-4o: prod-gpt4o }}
    models: [{{ name: gpt-4o }}]
"#,
        up.addr
    );
    let h = Harness::start(&config(&up.base_url(), &extra)).await;
    let r = h.chat(Some(MASTER), &json!({ "model": "azure/gpt-4o", "messages": user("hi") })).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let sent = &up.requests()[0];
    assert_eq!(sent.path, "/openai/deployments/prod-gpt4o/chat/completions");
    assert_eq!(sent.query.as_deref(), Some("api-version=2024-10-21"));
    assert_eq!(sent.headers.get("api-key").unwrap(), "azure-secret");
    assert!(sent.headers.get("authorization").is_none());
}

#[tokio::test]
async fn health_ready_and_unknown_routes() {
    let up = MockUpstream::start().await;
    let h = Harness::start(&config(&up.base_url(), "")).await;
    assert_eq!(h.get("/health", None).await.status, 200);
    let r = h.get("/ready", None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["status"], "ready");
    let r = h.get("/v2/whatever", Some(MASTER)).await;
    assert_eq!(r.status, 404);
    assert!(r.error_message().contains("/v1"));
}
