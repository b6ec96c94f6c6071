//! OpenAI wire format: chat completions (JSON and SSE), embeddings, models.

use bytes::Bytes;
use http::{Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};

use std::sync::Arc;

use crate::{Body, Fault, Recorded, State};

pub(crate) fn full(status: u16, content_type: &str, body: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(Full::new(body.into()).map_err(|never| match never {}).boxed());
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(header::CONTENT_TYPE, content_type.parse().expect("static content type"));
    r
}

pub(crate) fn error_response(status: u16, body: Option<&str>, retry_after: Option<&str>) -> Response<Body> {
    let body = body.map(str::to_string).unwrap_or_else(|| {
        json!({ "error": { "message": format!("mock upstream error {status}"), "type": "mock_error", "param": null, "code": null } })
            .to_string()
    });
    let mut r = full(status, "application/json", body);
    if let Some(ra) = retry_after
        && let Ok(v) = ra.parse()
    {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}

pub(crate) fn respond(req: &Recorded, fault: Option<Fault>, state: Arc<State>) -> Response<Body> {
    let path = req.path.as_str();
    if req.method == "GET" && path.ends_with("/models") {
        return full(
            200,
            "application/json",
            json!({ "object": "list", "data": [
            { "id": "gpt-4o-mini", "object": "model", "created": 0, "owned_by": "mock" } ] })
            .to_string(),
        );
    }
    let v: Value =
        match serde_json::from_slice(&req.body) {
            Ok(v) => v,
            Err(e) => return error_response(
                400,
                Some(
                    &json!({ "error": { "message": format!("invalid JSON: {e}"), "type": "invalid_request_error" } })
                        .to_string(),
                ),
                None,
            ),
        };
    if path.ends_with("/embeddings") {
        return embeddings(&v);
    }
    if !path.ends_with("/chat/completions") {
        return error_response(404, None, None);
    }
    let model = v.get("model").and_then(Value::as_str).unwrap_or("unknown").to_string();
    let last = v
        .get("messages")
        .and_then(Value::as_array)
        .and_then(|m| m.iter().rev().find(|m| m.get("role").and_then(Value::as_str) == Some("user")))
        .and_then(|m| m.get("content"))
        .map(|c| c.as_str().map_or_else(|| c.to_string(), str::to_string))
        .unwrap_or_default();
    // A tool is called until the conversation carries a tool result, so a
    // client's tool loop ends with an answer.
    let last_is_tool = v
        .get("messages")
        .and_then(Value::as_array)
        .and_then(|m| m.last())
        .is_some_and(|m| m.get("role").and_then(Value::as_str) == Some("tool"));
    let tool =
        v.pointer("/tools/0/function/name").filter(|_| !last_is_tool).and_then(Value::as_str).map(str::to_string);
    // Tool results at the end of the conversation are answered, as a model would.
    let results: Vec<String> = v
        .get("messages")
        .and_then(Value::as_array)
        .map(|m| {
            m.iter()
                .rev()
                .take_while(|m| m.get("role").and_then(Value::as_str) == Some("tool"))
                .map(|m| m.get("content").and_then(Value::as_str).unwrap_or("").to_string())
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    let text = if results.is_empty() {
        format!("upstream says: {last}")
    } else {
        format!("tool said: {}", results.into_iter().rev().collect::<Vec<_>>().join(" | "))
    };
    let usage = json!({ "prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18 });
    if v.get("stream").and_then(Value::as_bool) == Some(true) {
        let include_usage = v.pointer("/stream_options/include_usage").and_then(Value::as_bool) == Some(true);
        return sse(&model, &text, tool.as_deref(), include_usage.then_some(usage), fault, state);
    }
    let message = match &tool {
        Some(name) => json!({ "role": "assistant", "content": null, "tool_calls": [
            { "id": "call_up_1", "type": "function", "function": { "name": name, "arguments": "{\"q\":\"x\"}" } } ] }),
        None => json!({ "role": "assistant", "content": text }),
    };
    let n = v.get("n").and_then(Value::as_u64).unwrap_or(1);
    let choices: Vec<Value> = (0..n)
        .map(|i| json!({ "index": i, "message": message, "finish_reason": if tool.is_some() { "tool_calls" } else { "stop" } }))
        .collect();
    full(
        200,
        "application/json",
        json!({
            "id": "chatcmpl-up-1", "object": "chat.completion", "created": 1, "model": model,
            "choices": choices, "usage": usage
        })
        .to_string(),
    )
}

fn embeddings(v: &Value) -> Response<Body> {
    let n = match v.get("input") {
        Some(Value::Array(a)) => a.len(),
        _ => 1,
    };
    let data: Vec<Value> =
        (0..n).map(|i| json!({ "object": "embedding", "index": i, "embedding": [0.1, 0.2, 0.3] })).collect();
    full(
        200,
        "application/json",
        json!({ "object": "list", "data": data, "model": v.get("model"),
        "usage": { "prompt_tokens": 4, "total_tokens": 4 } })
        .to_string(),
    )
}

fn sse(
    model: &str,
    text: &str,
    tool: Option<&str>,
    usage: Option<Value>,
    fault: Option<Fault>,
    state: Arc<State>,
) -> Response<Body> {
    let chunk = |delta: Value, finish: Value| {
        format!(
            "data: {}\n\n",
            json!({ "id": "chatcmpl-up-1", "object": "chat.completion.chunk", "created": 1, "model": model,
            "choices": [{ "index": 0, "delta": delta, "finish_reason": finish }] })
        )
    };
    let mut events = vec![chunk(json!({ "role": "assistant", "content": "" }), Value::Null)];
    match tool {
        Some(name) => {
            events.push(chunk(json!({ "tool_calls": [{ "index": 0, "id": "call_up_1", "type": "function", "function": { "name": name, "arguments": "" } }] }), Value::Null));
            events.push(chunk(
                json!({ "tool_calls": [{ "index": 0, "function": { "arguments": "{\"q\":\"x\"}" } }] }),
                Value::Null,
            ));
            events.push(chunk(json!({}), json!("tool_calls")));
        }
        None => {
            for w in text.split_inclusive(' ') {
                events.push(chunk(json!({ "content": w }), Value::Null));
            }
            events.push(chunk(json!({}), json!("stop")));
        }
    }
    if let Some(u) = usage {
        events.push(format!(
            "data: {}\n\n",
            json!({ "id": "chatcmpl-up-1", "object": "chat.completion.chunk", "created": 1,
            "model": model, "choices": [], "usage": u })
        ));
    }
    events.push("data: [DONE]\n\n".to_string());

    if let Some(Fault::StreamError { after_events, status }) = &fault {
        events.truncate(*after_events);
        events.push(format!(
            "data: {}\n\n",
            json!({ "error": { "message": format!("mock upstream in-stream error {status}"), "type": "mock_error", "code": status.to_string() } })
        ));
    }
    crate::wire::paced(events.into_iter().map(Bytes::from).collect(), &fault, state, "text/event-stream")
}
