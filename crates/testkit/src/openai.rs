//! OpenAI wire format: chat completions (JSON and SSE), embeddings, models;
//! the Responses API is in `openai_responses`.

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
    if path.ends_with("/responses") {
        return crate::openai_responses::respond(&v, fault, state);
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

/// The model whose vectors mean something: see `concepts`.
pub const CONCEPTS_MODEL: &str = "concepts-embed";

fn embeddings(v: &Value) -> Response<Body> {
    let texts: Vec<&str> = match v.get("input") {
        Some(Value::Array(a)) => a.iter().map(|x| x.as_str().unwrap_or("")).collect(),
        Some(x) => vec![x.as_str().unwrap_or("")],
        None => vec![""],
    };
    let concepts = v.get("model").and_then(Value::as_str) == Some(CONCEPTS_MODEL);
    let data: Vec<Value> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let e = if concepts { json!(self::concepts(t)) } else { json!([0.1, 0.2, 0.3]) };
            json!({ "object": "embedding", "index": i, "embedding": e })
        })
        .collect();
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

/// A small stand-in for an embedding model that knows synonyms: each word
/// is mapped to its concept (a few synonym groups, common words dropped),
/// each concept to a fixed random direction, and the text to their sum —
/// so "buy a car" and "purchase an automobile" are the same vector, which
/// no wording-based comparison would find.
pub fn concepts(text: &str) -> Vec<f32> {
    const SAME: &[&[&str]] = &[&["buy", "purchase"], &["car", "automobile", "vehicle"], &["cheap", "inexpensive", "affordable"]];
    const DROP: &[&str] = &["a", "an", "the", "i", "do", "how", "can", "to", "is", "what", "my"];
    let mut v = vec![0f32; 64];
    let lower = text.to_lowercase();
    for w in lower.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty() && !DROP.contains(w)) {
        let concept = SAME.iter().find(|g| g.contains(&w)).map_or(w, |g| g[0]);
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in concept.bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        for x in &mut v {
            h ^= h << 13;
            h ^= h >> 7;
            h ^= h << 17;
            *x += (h >> 40) as f32 / (1u64 << 23) as f32 - 1.0;
        }
    }
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if n > 0.0 {
        v.iter_mut().for_each(|x| *x /= n);
    }
    v
}
