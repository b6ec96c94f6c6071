//! OpenAI wire format: chat completions (JSON and SSE), embeddings, models.

use std::time::Duration;

use bytes::Bytes;
use futures_util::stream;
use http::{Response, StatusCode, header};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use serde_json::{Value, json};

use std::sync::Arc;
use std::sync::atomic::Ordering;

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
    let tool = v.pointer("/tools/0/function/name").and_then(Value::as_str).map(str::to_string);
    let text = format!("upstream says: {last}");
    let usage = json!({ "prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18 });
    if v.get("stream").and_then(Value::as_bool) == Some(true) {
        let include_usage = v.pointer("/stream_options/include_usage").and_then(Value::as_bool) == Some(true);
        let delay = *state.chunk_delay.lock().expect("lock");
        return sse(&model, &text, tool.as_deref(), include_usage.then_some(usage), fault, delay, state);
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

/// Counts a stream as aborted if its body is dropped before the end.
struct Watch {
    state: Arc<State>,
    done: bool,
}

impl Drop for Watch {
    fn drop(&mut self) {
        if !self.done {
            self.state.aborted_streams.fetch_add(1, Ordering::SeqCst);
        }
    }
}

fn sse(
    model: &str,
    text: &str,
    tool: Option<&str>,
    usage: Option<Value>,
    fault: Option<Fault>,
    delay: Duration,
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

    let (cut, abort, stall) = match fault {
        Some(Fault::CutStream { after_events, abort }) => (Some(after_events), abort, None),
        Some(Fault::StallStream { after_events, pause }) => (None, false, Some((after_events, pause))),
        _ => (None, false, None),
    };
    if let Some(n) = cut {
        events.truncate(n);
    }
    if let Some(Fault::StreamError { after_events, status }) = &fault {
        events.truncate(*after_events);
        events.push(format!(
            "data: {}\n\n",
            json!({ "error": { "message": format!("mock upstream in-stream error {status}"), "type": "mock_error", "code": status.to_string() } })
        ));
    }
    let items: Vec<(usize, String)> = events.into_iter().enumerate().collect();
    let watch = Watch { state, done: false };
    let body = stream::unfold((items.into_iter(), false, watch), move |(mut it, ended, mut watch)| async move {
        if ended {
            return None;
        }
        let next = it.next();
        if next.is_none() && !abort {
            watch.done = true;
        }
        match next {
            Some((i, e)) => {
                if i > 0 && !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                if let Some((n, pause)) = stall
                    && i == n
                {
                    tokio::time::sleep(pause).await;
                }
                Some((Ok(Frame::data(Bytes::from(e))), (it, false, watch)))
            }
            None if abort => {
                watch.done = true; // the mock broke it on purpose; not a reader going away
                // Let what was sent reach the wire first, so the break is mid-stream.
                tokio::time::sleep(Duration::from_millis(50)).await;
                Some((Err(std::io::Error::other("mock upstream aborted the stream")), (it, true, watch)))
            }
            None => None,
        }
    });
    let mut r = Response::new(StreamBody::new(body).boxed());
    r.headers_mut().insert(header::CONTENT_TYPE, "text/event-stream".parse().expect("static"));
    r
}
