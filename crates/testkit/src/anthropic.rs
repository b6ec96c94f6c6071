//! Anthropic Messages wire format: `POST /v1/messages` (JSON or SSE),
//! `POST /v1/messages/count_tokens`, and the same API as Vertex AI serves it
//! (`…/publishers/anthropic/models/{model}:rawPredict` / `:streamRawPredict`).
//! Request checks live in `validate`.

mod validate;

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Response, header};
use serde_json::{Value, json};

use crate::openai::full;
use crate::wire::{paced, sse_event};
use crate::{Body, Fault, Recorded, State};
use validate::validate;

const SIGNATURE: &str = "sig_mock_1";

#[derive(Debug, Clone, PartialEq)]
enum Route {
    Messages,
    CountTokens,
    Vertex { model: String, stream: bool },
}

fn route(path: &str) -> Option<Route> {
    match path {
        "/v1/messages" => Some(Route::Messages),
        "/v1/messages/count_tokens" => Some(Route::CountTokens),
        _ => {
            let (_, rest) = path.split_once("/publishers/anthropic/models/")?;
            match rest.rsplit_once(':')? {
                (model, "rawPredict") => Some(Route::Vertex { model: model.to_string(), stream: false }),
                (model, "streamRawPredict") => Some(Route::Vertex { model: model.to_string(), stream: true }),
                _ => None,
            }
        }
    }
}

fn error_type(status: u16) -> &'static str {
    match status {
        400 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        529 => "overloaded_error",
        _ => "api_error",
    }
}

fn json_response(status: u16, body: String) -> Response<Body> {
    let mut r = full(status, "application/json", body);
    r.headers_mut().insert("request-id", HeaderValue::from_static("req_mock"));
    r
}

fn err(status: u16, message: &str) -> Response<Body> {
    json_response(
        status,
        json!({ "type": "error", "error": { "type": error_type(status), "message": message } }).to_string(),
    )
}

pub(crate) fn error_response(status: u16, body: Option<&str>, retry_after: Option<&str>) -> Response<Body> {
    let mut r = match body {
        Some(b) => json_response(status, b.to_string()),
        None => err(status, &format!("mock upstream error {status}")),
    };
    if let Some(ra) = retry_after
        && let Ok(v) = HeaderValue::from_str(ra)
    {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}

fn header_str<'a>(req: &'a Recorded, name: &str) -> Option<&'a str> {
    req.headers.get(name).and_then(|v| v.to_str().ok()).filter(|v| !v.is_empty())
}

pub(crate) fn respond(req: &Recorded, fault: Option<Fault>, state: Arc<State>) -> Response<Body> {
    let Some(route) = route(&req.path).filter(|_| req.method == "POST") else {
        return err(404, &format!("{} {}: not found", req.method, req.path));
    };
    if let Route::Vertex { .. } = route {
        let token = header_str(req, "authorization").and_then(|a| a.strip_prefix("Bearer "));
        if !token.is_some_and(|t| t.starts_with("ya29.mock-")) {
            // Google's front end refuses the credentials, in Google's error shape.
            let body = json!({ "error": { "code": 401, "status": "UNAUTHENTICATED",
                "message": "Request had invalid authentication credentials. Expected OAuth 2 access token." } });
            return full(401, "application/json", body.to_string());
        }
    } else if header_str(req, "x-api-key").is_none() {
        return err(401, "x-api-key header is required");
    } else if header_str(req, "anthropic-version").is_none() {
        return err(400, "anthropic-version: header is required");
    }
    let v: Value = match serde_json::from_slice(&req.body) {
        Ok(v) => v,
        Err(e) => return err(400, &format!("invalid JSON body: {e}")),
    };
    if let Err(m) = validate(&v, &route) {
        return err(400, &m);
    }
    let (model, stream) = match &route {
        Route::CountTokens => return json_response(200, json!({ "input_tokens": count_tokens(&v) }).to_string()),
        Route::Vertex { model, stream } => (model.clone(), *stream || v["stream"] == true),
        Route::Messages => (v["model"].as_str().unwrap_or_default().to_string(), v["stream"] == true),
    };
    let a = answer(&v);
    if !stream {
        let body = json!({ "id": "msg_mock_1", "type": "message", "role": "assistant", "model": model,
            "content": content(&a), "stop_reason": a.stop_reason, "stop_sequence": a.stop_sequence, "usage": usage(7) });
        return json_response(200, body.to_string());
    }
    let mut events: Vec<Bytes> = stream_events(&model, &a).into_iter().map(|(e, d)| sse_event(Some(e), &d)).collect();
    if let Some(Fault::StreamError { after_events, status }) = &fault {
        events.truncate(*after_events);
        let (kind, message) = match status {
            529 => ("overloaded_error", "mock upstream overloaded".to_string()),
            429 => ("rate_limit_error", "mock upstream rate limited".to_string()),
            s => ("api_error", format!("mock upstream in-stream error {s}")),
        };
        let data = json!({ "type": "error", "error": { "type": kind, "message": message } });
        events.push(sse_event(Some("error"), &data));
    }
    let mut r = paced(events, &fault, state, "text/event-stream");
    r.headers_mut().insert("request-id", HeaderValue::from_static("req_mock"));
    r
}

fn usage(output_tokens: u64) -> Value {
    json!({ "input_tokens": 11, "output_tokens": output_tokens,
        "cache_creation_input_tokens": 2, "cache_read_input_tokens": 3 })
}

fn ty(b: &Value) -> &str {
    b["type"].as_str().unwrap_or("")
}

fn role(m: &Value) -> &str {
    m["role"].as_str().unwrap_or("")
}

/// A message's content as blocks (a string is one text block).
pub(crate) fn blocks_of(m: &Value) -> Option<Vec<Value>> {
    match m.get("content")? {
        Value::String(s) if s.is_empty() => Some(Vec::new()),
        Value::String(s) => Some(vec![json!({ "type": "text", "text": s })]),
        Value::Array(a) => Some(a.clone()),
        _ => None,
    }
}

/// The `key` of every block of type `kind` in the message.
fn ids_of(m: &Value, kind: &str, key: &str) -> Vec<String> {
    let blocks = blocks_of(m).unwrap_or_default();
    blocks.iter().filter(|b| ty(b) == kind).filter_map(|b| b[key].as_str()).map(String::from).collect()
}

/// The last message with role `user`.
pub(crate) fn last_user_turn(msgs: &[Value]) -> Option<&Value> {
    msgs.iter().rev().find(|m| role(m) == "user")
}

/// The turn's text blocks, joined with no separator.
pub(crate) fn turn_text(m: &Value) -> String {
    let blocks = blocks_of(m).unwrap_or_default();
    blocks.iter().filter(|b| ty(b) == "text").filter_map(|b| b["text"].as_str()).collect()
}

/// The text of each `tool_result` block in the turn.
pub(crate) fn tool_results(m: &Value) -> Vec<String> {
    let blocks = blocks_of(m).unwrap_or_default();
    let text = |c: &Value| c.as_str().map_or_else(|| turn_text(&json!({ "content": c })), str::to_string);
    blocks.iter().filter(|b| ty(b) == "tool_result").map(|b| text(&b["content"])).collect()
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Answer {
    thinking: bool,
    /// Tool calls as (tool name, value of `q`).
    calls: Vec<(String, &'static str)>,
    /// Tool calls already in the conversation: ids go on from there, so
    /// they stay unique over a long tool loop (`toolu_mock_1` first).
    earlier_calls: usize,
    text: String,
    stop_reason: &'static str,
    stop_sequence: Option<String>,
}

pub(crate) fn answer(v: &Value) -> Answer {
    let msgs = v["messages"].as_array().map_or(&[][..], Vec::as_slice);
    let turn = last_user_turn(msgs);
    let results = turn.map(tool_results).unwrap_or_default();
    let said = turn.map(turn_text).unwrap_or_default();
    let thinking = ty(&v["thinking"]) == "enabled";
    let earlier_calls = msgs.iter().map(|m| ids_of(m, "tool_use", "id").len()).sum();
    let text = String::new();
    let mut a = Answer { thinking, calls: vec![], earlier_calls, text, stop_reason: "end_turn", stop_sequence: None };
    let tools = v["tools"].as_array().map_or(&[][..], Vec::as_slice);
    let names: Vec<&str> = tools.iter().filter_map(|t| t["name"].as_str()).collect();
    let choice = &v["tool_choice"];
    if let Some(&first) = names.first()
        && results.is_empty()
        && ty(choice) != "none"
    {
        let first = choice["name"].as_str().filter(|_| ty(choice) == "tool").unwrap_or(first);
        a.calls.push((first.to_string(), "x"));
        if said.contains("[parallel]") && choice["disable_parallel_tool_use"] != true {
            a.calls.push((names.get(1).unwrap_or(&first).to_string(), "y"));
        }
        a.stop_reason = "tool_use";
        return a;
    }
    if v["max_tokens"].as_u64().is_some_and(|m| m < 5) {
        (a.text, a.stop_reason) = ("upstream".to_string(), "max_tokens");
        return a;
    }
    a.text = if results.is_empty() {
        format!("upstream says: {said}")
    } else {
        format!("tool said: {}", results.join(" | "))
    };
    let stops = v["stop_sequences"].as_array().map_or(&[][..], Vec::as_slice);
    let cut = stops.iter().filter_map(Value::as_str).filter(|s| !s.is_empty());
    if let Some((pos, stop)) = cut.filter_map(|s| a.text.find(s).map(|p| (p, s))).min() {
        a.text.truncate(pos);
        (a.stop_reason, a.stop_sequence) = ("stop_sequence", Some(stop.to_string()));
    }
    a
}

fn content(a: &Answer) -> Vec<Value> {
    let mut c = Vec::new();
    if a.thinking {
        c.push(json!({ "type": "thinking", "thinking": "mock reasoning", "signature": SIGNATURE }));
    }
    if a.calls.is_empty() {
        c.push(json!({ "type": "text", "text": a.text }));
    }
    for (i, (name, q)) in a.calls.iter().enumerate() {
        c.push(json!({ "type": "tool_use", "id": format!("toolu_mock_{}", a.earlier_calls + i + 1), "name": name, "input": { "q": q } }));
    }
    c
}

/// The full SSE sequence as (event name, data).
pub(crate) fn stream_events(model: &str, a: &Answer) -> Vec<(&'static str, Value)> {
    let message = json!({ "id": "msg_mock_1", "type": "message", "role": "assistant", "model": model,
        "content": [], "stop_reason": null, "stop_sequence": null, "usage": usage(1) });
    let mut ev = vec![
        ("message_start", json!({ "type": "message_start", "message": message })),
        ("ping", json!({ "type": "ping" })),
    ];
    for (index, block) in content(a).into_iter().enumerate() {
        let (start, deltas): (Value, Vec<Value>) = match ty(&block) {
            "thinking" => (
                json!({ "type": "thinking", "thinking": "", "signature": "" }),
                vec![
                    json!({ "type": "thinking_delta", "thinking": "mock reasoning" }),
                    json!({ "type": "signature_delta", "signature": SIGNATURE }),
                ],
            ),
            "tool_use" => {
                let q = block["input"]["q"].as_str().unwrap_or("x");
                let frags = ["{\"q\":".to_string(), format!("\"{q}\"}}")];
                let start = json!({ "type": "tool_use", "id": block["id"], "name": block["name"], "input": {} });
                (start, frags.iter().map(|f| json!({ "type": "input_json_delta", "partial_json": f })).collect())
            }
            _ => (
                json!({ "type": "text", "text": "" }),
                a.text.split_inclusive(' ').map(|w| json!({ "type": "text_delta", "text": w })).collect(),
            ),
        };
        let start = json!({ "type": "content_block_start", "index": index, "content_block": start });
        ev.push(("content_block_start", start));
        for d in deltas {
            ev.push(("content_block_delta", json!({ "type": "content_block_delta", "index": index, "delta": d })));
        }
        ev.push(("content_block_stop", json!({ "type": "content_block_stop", "index": index })));
    }
    let delta = json!({ "stop_reason": a.stop_reason, "stop_sequence": a.stop_sequence });
    ev.push(("message_delta", json!({ "type": "message_delta", "delta": delta, "usage": { "output_tokens": 7 } })));
    ev.push(("message_stop", json!({ "type": "message_stop" })));
    ev
}

/// A rough count: every character of text in `system` and `messages`, / 4.
pub(crate) fn count_tokens(v: &Value) -> u64 {
    let system = turn_text(&json!({ "content": v["system"] })).chars().count();
    let msgs = v["messages"].as_array().map_or(&[][..], Vec::as_slice);
    let text: usize =
        msgs.iter().map(|m| turn_text(m).chars().count() + tool_results(m).concat().chars().count()).sum();
    ((system + text) / 4).max(1) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn req(messages: Value) -> Value {
        let tools = json!([{ "name": "lookup", "input_schema": { "type": "object" } }]);
        json!({ "model": "claude-x", "max_tokens": 2048, "messages": messages, "tools": tools })
    }

    pub(super) fn tool_turns(assistant: Value, result_id: &str) -> Value {
        let result = json!([{ "type": "tool_result", "tool_use_id": result_id, "content": "42" }]);
        json!([{ "role": "user", "content": "find it" }, { "role": "assistant", "content": assistant },
            { "role": "user", "content": result }])
    }

    pub(super) fn call() -> Value {
        json!({ "type": "tool_use", "id": "toolu_a", "name": "lookup", "input": {} })
    }

    #[test]
    fn answers_follow_the_conversation() {
        let a = answer(&req(json!([{ "role": "user", "content": [{ "type": "text", "text": "a [parallel]" }] }])));
        assert_eq!(
            (a.calls, a.stop_reason),
            (vec![("lookup".to_string(), "x"), ("lookup".to_string(), "y")], "tool_use")
        );
        let mut v = req(tool_turns(json!([call()]), "toolu_a"));
        let a = answer(&v);
        assert_eq!((a.text.as_str(), a.stop_reason), ("tool said: 42", "end_turn"));
        v["messages"][2]["content"] = json!("again");
        assert_eq!(content(&answer(&v))[0]["id"], "toolu_mock_2", "ids stay unique in a tool loop");
        let mut v = json!({ "max_tokens": 99, "messages": [{ "role": "user", "content": "hello world" }],
            "stop_sequences": ["world"] });
        let a = answer(&v);
        assert_eq!((a.text.as_str(), a.stop_sequence.as_deref()), ("upstream says: hello ", Some("world")));
        v["max_tokens"] = json!(3);
        let a = answer(&v);
        assert_eq!((a.text.as_str(), a.stop_reason), ("upstream", "max_tokens"));
        assert_eq!(count_tokens(&v), 2);
    }

    #[test]
    fn stream_sequence_is_complete_and_ordered() {
        let mut v = req(json!([{ "role": "user", "content": "go" }]));
        v["thinking"] = json!({ "type": "enabled", "budget_tokens": 1024 });
        let ev = stream_events("claude-x", &answer(&v));
        let names: Vec<&str> = ev.iter().map(|(n, _)| *n).collect();
        let block = ["content_block_start", "content_block_delta", "content_block_delta", "content_block_stop"];
        let expected =
            [&["message_start", "ping"][..], &block[..], &block[..], &["message_delta", "message_stop"][..]].concat();
        assert_eq!(names, expected);
        assert_eq!(
            (&ev[3].1["delta"]["type"], &ev[4].1["delta"]["signature"]),
            (&json!("thinking_delta"), &json!(SIGNATURE))
        );
        assert_eq!(ev[6].1["content_block"]["id"], "toolu_mock_1");
        let args: String = ev[7..9].iter().filter_map(|(_, d)| d["delta"]["partial_json"].as_str()).collect();
        assert_eq!(args, "{\"q\":\"x\"}");
        assert_eq!(ev[10].1["delta"]["stop_reason"], "tool_use");
    }
}
