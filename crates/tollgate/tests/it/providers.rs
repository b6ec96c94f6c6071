//! Every translating provider type through the real router against the
//! test kit's mock of its wire format: requests as the provider wants
//! them, answers and streams back in the hub (OpenAI) shape, tool-call ids
//! kept across turns, usage normalised, errors mapped.

use serde_json::{Value, json};
use testkit::{Fault, MockUpstream, Wire};

use crate::common::*;

/// Providers of every translating type, all pointed at one mock upstream.
pub fn providers(up: &MockUpstream, dir: &std::path::Path) -> String {
    let pem = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/jwt/rsa.pem")).unwrap();
    let key = json!({ "type": "service_account", "project_id": "proj-1", "client_email": "gw@proj-1.iam.gserviceaccount.com",
        "private_key": pem, "token_uri": format!("http://{}/token", up.addr) });
    let creds = dir.join("sa.json");
    std::fs::write(&creds, key.to_string()).unwrap();
    let a = up.addr;
    format!(
        r#"  - name: claude
    type: anthropic
    base_url: "http://{a}"
    api_key: "sk-ant-secret"
    models: [{{ name: claude-sonnet-4-5 }}]
  - name: gem
    type: gemini
    base_url: "http://{a}"
    api_key: "gem-secret"
    models: [{{ name: gemini-2.5-flash }}, {{ name: text-embedding-004 }}]
  - name: vx
    type: vertex
    base_url: "http://{a}"
    region: us-central1
    credentials_file: "{creds}"
    models: [{{ name: gemini-2.5-pro }}, {{ name: claude-sonnet-4-5 }}, {{ name: text-embedding-005 }}]
  - name: br
    type: bedrock
    base_url: "http://{a}"
    region: us-east-1
    access_key_id: "{id}"
    secret_access_key: "{secret}"
    models: [{{ name: "anthropic.claude-3-5-haiku-20241022-v1:0" }}, {{ name: "amazon.titan-embed-text-v2:0" }}]
  - name: co
    type: cohere
    base_url: "http://{a}"
    api_key: "co-secret"
    models: [{{ name: command-r-plus }}, {{ name: embed-english-v3.0 }}]
"#,
        creds = creds.display(),
        id = testkit::AWS_ACCESS_KEY_ID,
        secret = testkit::AWS_SECRET_ACCESS_KEY,
    )
}

pub async fn start(up: &MockUpstream) -> (Harness, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::start(&config(&up.base_url(), &providers(up, dir.path()))).await;
    (h, dir)
}

const MODELS: [&str; 6] = [
    "claude/claude-sonnet-4-5",
    "gem/gemini-2.5-flash",
    "vx/gemini-2.5-pro",
    "vx/claude-sonnet-4-5",
    "br/anthropic.claude-3-5-haiku-20241022-v1:0",
    "co/command-r-plus",
];

fn tools() -> Value {
    json!([
        { "type": "function", "function": { "name": "lookup", "description": "find a thing",
          "parameters": { "type": "object", "properties": { "q": { "type": "string" } }, "required": ["q"], "additionalProperties": false } } },
        { "type": "function", "function": { "name": "clock", "parameters": { "type": "object", "properties": {} } } }
    ])
}

#[tokio::test]
async fn every_provider_answers_text_in_the_openai_shape_with_usage() {
    let up = MockUpstream::start().await;
    let (h, _d) = start(&up).await;
    for model in MODELS {
        let r = h
            .chat(Some(MASTER), &json!({ "model": model, "max_tokens": 100,
                "messages": [{ "role": "system", "content": "be brief" }, { "role": "user", "content": "hello there" }] }))
            .await;
        assert_eq!(r.status, 200, "{model}: {}", r.text());
        let v = r.json();
        assert_eq!(v["object"], "chat.completion", "{model}");
        assert_eq!(v["choices"][0]["message"]["content"], "upstream says: hello there", "{model}");
        assert_eq!(v["choices"][0]["finish_reason"], "stop", "{model}");
        assert!(v["usage"]["completion_tokens"].as_u64().unwrap() > 0, "{model}: {v}");
        assert_eq!(r.header("x-tollgate-resolved-model"), Some(model));
    }
    // Each request went out in its provider's own format, system prompt included.
    let reqs = up.requests();
    let anthropic = reqs.iter().find(|r| r.path == "/v1/messages").unwrap();
    assert_eq!(anthropic.headers["x-api-key"], "sk-ant-secret");
    assert_eq!(anthropic.json()["system"][0]["text"], "be brief");
    assert_eq!(anthropic.json()["max_tokens"], 100);
    let gemini = reqs.iter().find(|r| r.path.ends_with("gemini-2.5-flash:generateContent")).unwrap();
    assert_eq!(gemini.json()["systemInstruction"]["parts"][0]["text"], "be brief");
    assert_eq!(gemini.json()["generationConfig"]["maxOutputTokens"], 100);
    let bedrock = reqs.iter().find(|r| r.path.ends_with("/converse")).unwrap();
    assert_eq!(bedrock.path, "/model/anthropic.claude-3-5-haiku-20241022-v1%3A0/converse");
    assert!(
        bedrock.headers["authorization"].to_str().unwrap().starts_with("AWS4-HMAC-SHA256 Credential=AKIDMOCKTOLLGATE/")
    );
    let vertex = reqs.iter().find(|r| r.path.contains("/publishers/anthropic/")).unwrap();
    assert_eq!(
        vertex.path,
        "/v1/projects/proj-1/locations/us-central1/publishers/anthropic/models/claude-sonnet-4-5:rawPredict"
    );
    assert_eq!(vertex.json()["anthropic_version"], "vertex-2023-10-16");
    // One token for both Vertex calls: fetched once, then reused.
    assert_eq!(reqs.iter().filter(|r| r.path == "/token").count(), 1);
}

#[tokio::test]
async fn usage_is_normalised_with_cached_tokens() {
    let up = MockUpstream::start().await;
    let (h, _d) = start(&up).await;
    // Anthropic's mock reports 11 fresh + 3 cache-read + 2 cache-write input tokens.
    let v = h.chat(Some(MASTER), &json!({ "model": "claude/claude-sonnet-4-5", "messages": user("hi") })).await.json();
    assert_eq!(v["usage"]["prompt_tokens"], 16);
    assert_eq!(v["usage"]["prompt_tokens_details"]["cached_tokens"], 3);
    assert_eq!(v["usage"]["completion_tokens"], 7);
    // Gemini's: 11 prompt tokens of which 3 cached.
    let v = h.chat(Some(MASTER), &json!({ "model": "gem/gemini-2.5-flash", "messages": user("hi") })).await.json();
    assert_eq!(v["usage"]["prompt_tokens"], 11);
    assert_eq!(v["usage"]["prompt_tokens_details"]["cached_tokens"], 3);
}

/// Two turns of tool use: the id the provider gave (or the gateway made
/// for Gemini) comes back on the tool result and reaches the provider.
#[tokio::test]
async fn tool_calls_keep_their_ids_across_turns_on_every_provider() {
    let up = MockUpstream::start().await;
    let (h, _d) = start(&up).await;
    for model in MODELS {
        let first = json!({ "role": "user", "content": "look it up" });
        let r = h.chat(Some(MASTER), &json!({ "model": model, "tools": tools(), "messages": [first] })).await;
        assert_eq!(r.status, 200, "{model}: {}", r.text());
        let v = r.json();
        assert_eq!(v["choices"][0]["finish_reason"], "tool_calls", "{model}: {v}");
        let msg = v["choices"][0]["message"].clone();
        let call = &msg["tool_calls"][0];
        assert_eq!(call["function"]["name"], "lookup", "{model}");
        assert_eq!(
            serde_json::from_str::<Value>(call["function"]["arguments"].as_str().unwrap()).unwrap(),
            json!({ "q": "x" })
        );
        let id = call["id"].as_str().unwrap().to_string();
        assert!(!id.is_empty(), "{model}");
        up.clear();
        let second = json!({ "model": model, "tools": tools(), "messages": [
            first, msg, { "role": "tool", "tool_call_id": id, "content": "42 apples" } ] });
        let r = h.chat(Some(MASTER), &second).await;
        assert_eq!(r.status, 200, "{model}: {}", r.text());
        assert_eq!(r.json()["choices"][0]["message"]["content"], "tool said: 42 apples", "{model}");
        let sent = up.requests().into_iter().find(|r| Wire::of(&r.path) != Wire::OpenAi && r.path != "/token").unwrap();
        let body = sent.body.clone();
        let text = String::from_utf8_lossy(&body);
        if !model.starts_with("gem/") && !model.starts_with("vx/gemini") {
            assert!(text.contains(&id), "{model}: the provider's own id goes back: {text}");
        } else {
            // Gemini pairs results by function name; its thought signature came back too.
            assert!(text.contains(r#""name":"lookup""#) && text.contains("gsig_mock_1"), "{model}: {text}");
        }
    }
}

#[tokio::test]
async fn parallel_tool_calls_come_back_as_two_calls() {
    let up = MockUpstream::start().await;
    let (h, _d) = start(&up).await;
    for model in MODELS {
        let v = h
            .chat(
                Some(MASTER),
                &json!({ "model": model, "tools": tools(), "messages": user("both please [parallel]") }),
            )
            .await
            .json();
        let calls = v["choices"][0]["message"]["tool_calls"].as_array().cloned().unwrap_or_default();
        assert_eq!(calls.len(), 2, "{model}: {v}");
        assert_ne!(calls[0]["id"], calls[1]["id"], "{model}");
    }
}

/// Reads a hub stream: (content, tool-call argument text, finish reason, saw [DONE], usage).
pub fn read_stream(body: &str) -> (String, String, Option<String>, bool, Option<Value>) {
    let (mut text, mut args, mut finish, mut done, mut usage) = (String::new(), String::new(), None, false, None);
    for d in sse_data(body) {
        if d == "[DONE]" {
            done = true;
            continue;
        }
        let v: Value = serde_json::from_str(&d).unwrap_or_else(|e| panic!("{e}: {d}"));
        assert!(v.get("error").is_none(), "error event: {d}");
        if let Some(u) = v.get("usage").filter(|u| u.is_object()) {
            usage = Some(u.clone());
        }
        let Some(c) = v["choices"].get(0) else { continue };
        if let Some(t) = c["delta"]["content"].as_str() {
            text.push_str(t);
        }
        for tc in c["delta"]["tool_calls"].as_array().into_iter().flatten() {
            args.push_str(tc["function"]["arguments"].as_str().unwrap_or(""));
        }
        if let Some(f) = c["finish_reason"].as_str() {
            finish = Some(f.to_string());
        }
    }
    (text, args, finish, done, usage)
}

#[tokio::test]
async fn every_provider_streams_text_and_tool_calls_event_by_event() {
    let up = MockUpstream::start().await;
    let (h, _d) = start(&up).await;
    for model in MODELS {
        let body = json!({ "model": model, "stream": true, "stream_options": { "include_usage": true }, "messages": user("one two three") });
        let r = h.chat(Some(MASTER), &body).await;
        assert_eq!(r.status, 200, "{model}: {}", r.text());
        assert_eq!(r.header("content-type"), Some("text/event-stream"));
        let (text, _, finish, done, usage) = read_stream(&r.text());
        assert_eq!(text, "upstream says: one two three", "{model}: {}", r.text());
        assert_eq!(finish.as_deref(), Some("stop"), "{model}");
        assert!(done, "{model}: ends with [DONE]");
        assert_eq!(usage.unwrap()["completion_tokens"], 7, "{model}");

        let body = json!({ "model": model, "stream": true, "tools": tools(), "messages": user("look") });
        let r = h.chat(Some(MASTER), &body).await;
        let (_, args, finish, done, _) = read_stream(&r.text());
        assert_eq!(serde_json::from_str::<Value>(&args).unwrap(), json!({ "q": "x" }), "{model}: {}", r.text());
        assert_eq!(finish.as_deref(), Some("tool_calls"), "{model}");
        assert!(done);
    }
}

#[tokio::test]
async fn a_cut_stream_ends_with_an_error_never_a_clean_end() {
    let up = MockUpstream::start().await;
    let (h, _d) = start(&up).await;
    for model in MODELS {
        up.push_fault(Fault::CutStream { after_events: 3, abort: false });
        let r = h
            .chat(Some(MASTER), &json!({ "model": model, "stream": true, "messages": user("one two three four") }))
            .await;
        assert_eq!(r.status, 200, "{model}: {}", r.text());
        let events = sse_data(&r.text());
        let last = events.last().unwrap();
        assert!(last.contains("\"error\""), "{model}: must end with an error event: {}", r.text());
        assert!(!events.iter().any(|e| e == "[DONE]"), "{model}: no [DONE] after a cut");
    }
}

#[tokio::test]
async fn provider_errors_keep_their_message_and_map_to_actionable_statuses() {
    let up = MockUpstream::start().await;
    let (h, _d) = start(&up).await;
    let cases = [
        ("claude/claude-sonnet-4-5", 529, 503),
        ("claude/claude-sonnet-4-5", 429, 429),
        ("gem/gemini-2.5-flash", 429, 429),
        ("br/anthropic.claude-3-5-haiku-20241022-v1:0", 429, 429),
        ("co/command-r-plus", 503, 503),
        ("claude/claude-sonnet-4-5", 400, 400),
    ];
    for (model, upstream, client) in cases {
        up.push_fault(Fault::Status { status: upstream, body: None, retry_after: Some("1".into()) });
        let r = h.chat(Some(MASTER), &json!({ "model": model, "messages": user("hi") })).await;
        assert_eq!(r.status.as_u16(), client, "{model} {upstream}: {}", r.text());
        assert!(r.error_message().contains(&format!("mock upstream error {upstream}")), "{model}: {}", r.text());
    }
    // A stream that fails with an in-stream error before any content is a status, too.
    up.push_fault(Fault::StreamError { after_events: 0, status: 529 });
    let r = h
        .chat(Some(MASTER), &json!({ "model": "claude/claude-sonnet-4-5", "stream": true, "messages": user("hi") }))
        .await;
    assert_eq!(r.status, 503, "{}", r.text());
    up.push_fault(Fault::StreamError { after_events: 0, status: 429 });
    let r = h
        .chat(
            Some(MASTER),
            &json!({ "model": "br/anthropic.claude-3-5-haiku-20241022-v1:0", "stream": true, "messages": user("hi") }),
        )
        .await;
    assert_eq!(r.status, 429, "{}", r.text());
}

#[tokio::test]
async fn requests_a_provider_cannot_take_get_a_400_that_says_why() {
    let up = MockUpstream::start().await;
    let (h, _d) = start(&up).await;
    let r = h.chat(Some(MASTER), &json!({ "model": "claude/claude-sonnet-4-5", "n": 3, "messages": user("hi") })).await;
    assert_eq!(r.status, 400);
    assert!(r.error_message().contains("`n` > 1"), "{}", r.text());
    let r = h
        .chat(Some(MASTER), &json!({ "model": "br/anthropic.claude-3-5-haiku-20241022-v1:0",
            "messages": [{ "role": "user", "content": [{ "type": "image_url", "image_url": { "url": "https://x/y.png" } }] }] }))
        .await;
    assert_eq!(r.status, 400);
    assert!(r.error_message().contains("base64 data URL"), "{}", r.text());
    assert_eq!(up.request_count(), 0, "nothing untranslatable was sent");
}

#[tokio::test]
async fn temperature_is_clamped_by_default_and_refused_when_configured() {
    let up = MockUpstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let extra = format!(
        "{}  - name: strict\n    type: anthropic\n    base_url: \"http://{}\"\n    api_key: k\n    temperature_policy: reject\n    models: [{{ name: claude-sonnet-4-5 }}]\n",
        providers(&up, dir.path()),
        up.addr
    );
    let h = Harness::start(&config(&up.base_url(), &extra)).await;
    let r = h
        .chat(Some(MASTER), &json!({ "model": "claude/claude-sonnet-4-5", "temperature": 1.6, "messages": user("hi") }))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(up.requests()[0].json()["temperature"], 1.0);
    let r = h
        .chat(Some(MASTER), &json!({ "model": "strict/claude-sonnet-4-5", "temperature": 1.6, "messages": user("hi") }))
        .await;
    assert_eq!(r.status, 400);
    assert!(r.error_message().contains("0–1"), "{}", r.text());
}

/// Anthropic thinking blocks come back with their signature and, replayed
/// with a tool turn, reach Anthropic intact (the mock refuses them otherwise).
#[tokio::test]
async fn thinking_blocks_survive_a_tool_turn() {
    let up = MockUpstream::start().await;
    let (h, _d) = start(&up).await;
    let first = json!({ "role": "user", "content": "think, then look it up" });
    let req = |messages: Value| json!({ "model": "claude/claude-sonnet-4-5", "max_tokens": 3000, "reasoning_effort": "low", "tools": tools(), "messages": messages });
    let v = h.chat(Some(MASTER), &req(json!([first]))).await.json();
    let msg = v["choices"][0]["message"].clone();
    assert_eq!(msg["reasoning_content"], "mock reasoning", "{v}");
    assert_eq!(msg["thinking_blocks"][0]["signature"], "sig_mock_1");
    let id = msg["tool_calls"][0]["id"].as_str().unwrap().to_string();
    let result = json!({ "role": "tool", "tool_call_id": id, "content": "found" });
    let r = h.chat(Some(MASTER), &req(json!([first, msg, result]))).await;
    assert_eq!(r.status, 200, "{}", r.text());
    // Dropping the thinking block is what the provider refuses.
    let mut bare = msg.clone();
    bare.as_object_mut().unwrap().remove("thinking_blocks");
    let r = h.chat(Some(MASTER), &req(json!([first, bare, result]))).await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.error_message().contains("thinking"), "{}", r.text());
}

#[tokio::test]
async fn embeddings_from_gemini_bedrock_and_cohere() {
    let up = MockUpstream::start().await;
    let (h, _d) = start(&up).await;
    for (model, input) in [
        ("gem/text-embedding-004", json!(["a", "b"])),
        ("br/amazon.titan-embed-text-v2:0", json!("a")),
        ("co/embed-english-v3.0", json!(["a", "b"])),
        ("vx/text-embedding-005", json!(["a", "b"])),
    ] {
        let r = h
            .send(
                http::Method::POST,
                &h.url("/v1/embeddings"),
                Some(MASTER),
                &[],
                json!({ "model": model, "input": input }).to_string(),
            )
            .await;
        assert_eq!(r.status, 200, "{model}: {}", r.text());
        let v = r.json();
        let n = if input.is_array() { 2 } else { 1 };
        assert_eq!(v["data"].as_array().map(Vec::len), Some(n), "{model}: {v}");
        assert_eq!(v["data"][0]["embedding"], json!([0.1, 0.2, 0.3]), "{model}");
    }
}

#[tokio::test]
async fn a_wrong_aws_secret_is_a_gateway_credential_problem() {
    let up = MockUpstream::start().await;
    let extra = format!(
        "  - name: br\n    type: bedrock\n    base_url: \"http://{}\"\n    region: us-east-1\n    access_key_id: {}\n    secret_access_key: wrong\n    models: [{{ name: m }}]\n",
        up.addr,
        testkit::AWS_ACCESS_KEY_ID
    );
    let h = Harness::start(&config(&up.base_url(), &extra)).await;
    let r = h.chat(Some(MASTER), &json!({ "model": "br/m", "messages": user("hi") })).await;
    assert_eq!(r.status, 502, "{}", r.text());
    assert!(r.error_message().contains("signature"), "{}", r.text());
    assert!(!r.text().contains("wrong"), "the secret never shows");
}
