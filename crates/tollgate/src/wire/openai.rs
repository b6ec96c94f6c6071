//! The OpenAI shapes the gateway reads or writes itself. Everything else in
//! an OpenAI body is passed through as raw JSON and never typed here.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::json::write_json_string;

/// Token usage as OpenAI reports it; missing fields read as zero.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct Usage {
    #[serde(default)]
    pub prompt_tokens: u64,
    #[serde(default)]
    pub completion_tokens: u64,
    #[serde(default)]
    pub total_tokens: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_tokens_details: Option<PromptDetails>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_tokens_details: Option<CompletionDetails>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct PromptDetails {
    #[serde(default)]
    pub cached_tokens: u64,
    /// Tokens written to a prompt cache (Anthropic, Bedrock); not an OpenAI field.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cache_write_tokens: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct CompletionDetails {
    #[serde(default)]
    pub reasoning_tokens: u64,
}

/// Reads the `usage` object of a complete response without typing the rest.
pub fn peek_usage(body: &[u8]) -> Option<Usage> {
    #[derive(Deserialize)]
    struct Peek {
        #[serde(default)]
        usage: Option<Usage>,
    }
    serde_json::from_slice::<Peek>(body).ok()?.usage
}

/// Reads `error.message` of a provider's error body, if it has one.
pub fn peek_error_message(body: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct Peek {
        error: ErrorField,
    }
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum ErrorField {
        Obj { message: String },
        Str(String),
    }
    match serde_json::from_slice::<Peek>(body).ok()?.error {
        ErrorField::Obj { message } | ErrorField::Str(message) => Some(message),
    }
}

/// `{"error":{"message","type","param","code"}}` — the body of every error on OpenAI routes.
pub fn error_body(message: &str, kind: &str, code: Option<&str>, param: Option<&str>) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 96);
    out.extend_from_slice(b"{\"error\":{\"message\":");
    write_json_string(&mut out, message);
    out.extend_from_slice(b",\"type\":");
    write_json_string(&mut out, kind);
    out.extend_from_slice(b",\"param\":");
    match param {
        Some(p) => write_json_string(&mut out, p),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"code\":");
    match code {
        Some(c) => write_json_string(&mut out, c),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b"}}");
    out
}

/// The same error as one SSE event, for failures after a stream has started.
pub fn error_event(message: &str, kind: &str, code: &str) -> Vec<u8> {
    let body = error_body(message, kind, Some(code), None);
    let mut out = Vec::with_capacity(body.len() + 10);
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(&body);
    out.extend_from_slice(b"\n\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_body_is_openai_shaped() {
        let b = error_body("bad \"x\"", "invalid_request_error", Some("c"), None);
        let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(v["error"]["message"], "bad \"x\"");
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert_eq!(v["error"]["code"], "c");
        assert!(v["error"]["param"].is_null());
    }

    #[test]
    fn provider_error_messages_are_read_in_both_shapes() {
        assert_eq!(peek_error_message(br#"{"error":{"message":"m","type":"t"}}"#).as_deref(), Some("m"));
        assert_eq!(peek_error_message(br#"{"error":"plain"}"#).as_deref(), Some("plain"));
        assert_eq!(peek_error_message(b"<html>"), None);
    }
}

/// A complete chat completion as the chunks a stream of it would carry:
/// what the agent layer and the cache send a client that asked for a stream.
pub fn completion_as_sse(resp: &Value, include_usage: bool) -> String {
    let base = |choices: Value| {
        json!({ "id": resp.get("id"), "object": "chat.completion.chunk", "created": resp.get("created"),
                "model": resp.get("model"), "choices": choices })
    };
    let msg = resp.pointer("/choices/0/message").cloned().unwrap_or_else(|| json!({}));
    let mut out = String::new();
    let mut push = |v: Value| out.push_str(&format!("data: {v}\n\n"));
    let content = msg.get("content").cloned().unwrap_or(Value::Null);
    push(base(json!([{ "index": 0, "delta": { "role": "assistant", "content": content }, "finish_reason": null }])));
    if let Some(calls) = msg.get("tool_calls").and_then(Value::as_array).filter(|c| !c.is_empty()) {
        let deltas: Vec<Value> = calls
            .iter()
            .enumerate()
            .map(|(i, c)| json!({ "index": i, "id": c.get("id"), "type": "function", "function": c.get("function") }))
            .collect();
        push(base(json!([{ "index": 0, "delta": { "tool_calls": deltas }, "finish_reason": null }])));
    }
    let finish = resp.pointer("/choices/0/finish_reason").cloned().unwrap_or(json!("stop"));
    push(base(json!([{ "index": 0, "delta": {}, "finish_reason": finish }])));
    if include_usage {
        let mut u = base(json!([]));
        u["usage"] = resp.get("usage").cloned().unwrap_or(Value::Null);
        push(u);
    }
    out.push_str("data: [DONE]\n\n");
    out
}

#[cfg(test)]
mod completion_sse_tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_complete_answer_streams_as_chunks_an_sdk_accumulates() {
        let resp = json!({ "id": "c1", "created": 1, "model": "m", "usage": { "total_tokens": 3 },
            "choices": [{ "index": 0, "finish_reason": "tool_calls", "message": { "role": "assistant", "content": null,
                "tool_calls": [{ "id": "t1", "type": "function", "function": { "name": "f", "arguments": "{}" } }] } }] });
        let sse = completion_as_sse(&resp, true);
        let events: Vec<Value> = sse
            .split("\n\n")
            .filter_map(|e| e.strip_prefix("data: "))
            .filter(|d| *d != "[DONE]")
            .map(|d| serde_json::from_str(d).unwrap())
            .collect();
        assert_eq!(events.len(), 4);
        assert_eq!(events[1]["choices"][0]["delta"]["tool_calls"][0]["function"]["name"], "f");
        assert_eq!(events[2]["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(events[3]["usage"]["total_tokens"], 3);
        assert!(sse.ends_with("data: [DONE]\n\n"));
    }
}
