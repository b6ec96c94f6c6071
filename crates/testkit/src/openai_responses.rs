//! OpenAI's Responses API (`POST /v1/responses`), as the `openai` provider
//! type passes it through: a whole response or its event stream, with the
//! same behaviour as the chat mock — the last user text echoed, the first
//! function tool called until a `function_call_output` comes back.

use std::sync::Arc;

use bytes::Bytes;
use serde_json::{Value, json};

use crate::openai::full;
use crate::{Body, Fault, State};

fn text_of(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts.iter().filter_map(|p| p.get("text").and_then(Value::as_str)).collect(),
        _ => String::new(),
    }
}

/// Response ids are unique, as OpenAI's are.
static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

pub(crate) fn respond(v: &Value, fault: Option<Fault>, state: Arc<State>) -> http::Response<Body> {
    let id = format!("resp_up_{}", NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    let model = v.get("model").and_then(Value::as_str).unwrap_or("unknown").to_string();
    let items: Vec<Value> = match v.get("input") {
        Some(Value::String(s)) => vec![json!({ "role": "user", "content": s })],
        Some(Value::Array(a)) => a.clone(),
        _ => Vec::new(),
    };
    let last_user = items.iter().rev().find(|i| i.get("role").and_then(Value::as_str) == Some("user"));
    let last = last_user.map(|i| text_of(&i["content"])).unwrap_or_default();
    let results: Vec<String> = items
        .iter()
        .rev()
        .take_while(|i| i.get("type").and_then(Value::as_str) == Some("function_call_output"))
        .map(|i| i.get("output").map(text_of).unwrap_or_default())
        .collect();
    let tool = v
        .pointer("/tools/0/name")
        .and_then(Value::as_str)
        .filter(|_| results.is_empty())
        .map(str::to_string);
    let text = if results.is_empty() {
        format!("upstream says: {last}")
    } else {
        format!("tool said: {}", results.into_iter().rev().collect::<Vec<_>>().join(" | "))
    };
    let item = match &tool {
        Some(name) => json!({ "type": "function_call", "id": "fc_up_1", "call_id": "call_up_1", "name": name,
                              "arguments": "{\"q\":\"x\"}", "status": "completed" }),
        None => json!({ "type": "message", "id": "msg_up_1", "status": "completed", "role": "assistant",
                        "content": [{ "type": "output_text", "text": text, "annotations": [] }] }),
    };
    let response = |status: &str, output: Value, usage: Value| {
        json!({ "id": id, "object": "response", "created_at": 1, "status": status, "model": model,
                "output": output, "usage": usage, "error": null, "incomplete_details": null,
                "tools": v.get("tools").cloned().unwrap_or(json!([])), "metadata": v.get("metadata").cloned().unwrap_or(json!({})) })
    };
    let usage = json!({ "input_tokens": 11, "input_tokens_details": { "cached_tokens": 0 },
                        "output_tokens": 7, "output_tokens_details": { "reasoning_tokens": 0 }, "total_tokens": 18 });
    if v.get("stream").and_then(Value::as_bool) != Some(true) {
        return full(200, "application/json", response("completed", json!([item]), usage).to_string());
    }
    let mut seq = 0;
    let mut events = Vec::new();
    let mut send = |kind: &str, mut data: Value| {
        data["type"] = json!(kind);
        data["sequence_number"] = json!(seq);
        seq += 1;
        events.push(Bytes::from(format!("event: {kind}\ndata: {data}\n\n")));
    };
    send("response.created", json!({ "response": response("in_progress", json!([]), Value::Null) }));
    send("response.in_progress", json!({ "response": response("in_progress", json!([]), Value::Null) }));
    match &tool {
        Some(_) => {
            let mut open = item.clone();
            open["arguments"] = json!("");
            open["status"] = json!("in_progress");
            send("response.output_item.added", json!({ "output_index": 0, "item": open }));
            for part in ["{\"q\":", "\"x\"}"] {
                send("response.function_call_arguments.delta", json!({ "item_id": "fc_up_1", "output_index": 0, "delta": part }));
            }
            send("response.function_call_arguments.done", json!({ "item_id": "fc_up_1", "output_index": 0, "arguments": "{\"q\":\"x\"}" }));
        }
        None => {
            send("response.output_item.added", json!({ "output_index": 0, "item": { "type": "message", "id": "msg_up_1",
                "status": "in_progress", "role": "assistant", "content": [] } }));
            let part = json!({ "type": "output_text", "text": "", "annotations": [] });
            send("response.content_part.added", json!({ "item_id": "msg_up_1", "output_index": 0, "content_index": 0, "part": part }));
            for w in text.split_inclusive(' ') {
                send("response.output_text.delta", json!({ "item_id": "msg_up_1", "output_index": 0, "content_index": 0, "delta": w, "logprobs": [] }));
            }
            send("response.output_text.done", json!({ "item_id": "msg_up_1", "output_index": 0, "content_index": 0, "text": text, "logprobs": [] }));
            send("response.content_part.done", json!({ "item_id": "msg_up_1", "output_index": 0, "content_index": 0,
                "part": item["content"][0] }));
        }
    }
    send("response.output_item.done", json!({ "output_index": 0, "item": item }));
    send("response.completed", json!({ "response": response("completed", json!([item]), usage) }));
    if let Some(Fault::StreamError { after_events, status }) = &fault {
        events.truncate(*after_events);
        events.push(Bytes::from(format!(
            "event: error\ndata: {}\n\n",
            json!({ "type": "error", "code": status.to_string(), "message": format!("mock upstream in-stream error {status}") })
        )));
    }
    crate::wire::paced(events, &fault, state, "text/event-stream")
}
