//! Cohere v2 wire format: `POST /v2/chat` (JSON or SSE with `event:` lines,
//! no `[DONE]`) and `POST /v2/embed`.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Response, header};
use serde_json::{Map, Value, json};

use crate::openai::full;
use crate::wire::{paced, sse_event};
use crate::{Body, Fault, Recorded, State};

const TOOL_PLAN: &str = "I will call the tool.";
/// OpenAI request fields with no place in a Cohere v2 chat request.
const OPENAI_ONLY: [&str; 5] = ["n", "stop", "max_completion_tokens", "stream_options", "top_p"];
const INPUT_TYPES: [&str; 5] = ["search_document", "search_query", "classification", "clustering", "image"];
const EMBEDDING_TYPES: [&str; 6] = ["float", "int8", "uint8", "binary", "ubinary", "base64"];

fn message(status: u16, m: &str) -> Response<Body> {
    full(status, "application/json", json!({ "message": m }).to_string())
}

pub(crate) fn error_response(status: u16, body: Option<&str>, retry_after: Option<&str>) -> Response<Body> {
    let mut r = match body {
        Some(b) => full(status, "application/json", b.to_string()),
        None => message(status, &format!("mock upstream error {status}")),
    };
    if let Some(ra) = retry_after
        && let Ok(v) = HeaderValue::from_str(ra)
    {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}

pub(crate) fn respond(req: &Recorded, fault: Option<Fault>, state: Arc<State>) -> Response<Body> {
    let path = req.path.as_str();
    if req.method != "POST" || !matches!(path, "/v2/chat" | "/v2/embed") {
        return message(404, &format!("{} {path}: not found", req.method));
    }
    let auth = req.headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    if auth.and_then(|a| a.strip_prefix("Bearer ")).is_none_or(|t| t.trim().is_empty()) {
        return message(401, "invalid api token");
    }
    let v: Value = match serde_json::from_slice(&req.body) {
        Ok(v) => v,
        Err(e) => return message(400, &format!("invalid request: body is not valid JSON: {e}")),
    };
    let checked = if path == "/v2/embed" { validate_embed(&v) } else { validate_chat(&v) };
    if let Err(m) = checked {
        return message(400, &format!("invalid request: {m}"));
    }
    if path == "/v2/embed" {
        return full(200, "application/json", embed(&v).to_string());
    }
    let a = answer(&v);
    if v["stream"] != true {
        return full(200, "application/json", chat(&a).to_string());
    }
    let mut events: Vec<Bytes> = stream_events(&a).into_iter().map(|(e, d)| sse_event(Some(e), &d)).collect();
    // Cohere has no in-stream error event to rely on: a failure is a stream
    // that simply ends early, without `message-end`.
    if let Some(Fault::StreamError { after_events, .. }) = &fault {
        events.truncate(*after_events);
    }
    paced(events, &fault, state, "text/event-stream")
}

fn ty(p: &Value) -> &str {
    p["type"].as_str().unwrap_or("")
}

/// Whether `content` is a string or an array of parts of the given kinds.
fn parts_ok(content: &Value, kinds: &[&str]) -> bool {
    let part_ok = |p: &Value| match ty(p) {
        k if !kinds.contains(&k) => false,
        "text" => p["text"].is_string(),
        "thinking" => p["thinking"].is_string(),
        "document" => p["document"].is_object(),
        "image_url" => p["image_url"]["url"].is_string(),
        _ => false,
    };
    match content {
        Value::String(_) => true,
        Value::Array(a) => a.iter().all(part_ok),
        _ => false,
    }
}

fn validate_chat(v: &Value) -> Result<(), String> {
    let obj = v.as_object().ok_or("body must be a JSON object")?;
    if let Some(k) = OPENAI_ONLY.iter().find(|k| obj.contains_key(**k)) {
        return Err(format!("unknown field: parameter {k} is not a valid field"));
    }
    if v["model"].as_str().is_none_or(str::is_empty) {
        return Err("model must be a non-empty string".into());
    }
    if v.get("temperature").is_some_and(|t| !t.as_f64().is_some_and(|t| (0.0..=1.0).contains(&t))) {
        return Err("temperature must be between 0 and 1".into());
    }
    if v.get("max_tokens").is_some_and(|m| m.as_u64().is_none_or(|m| m == 0)) {
        return Err("max_tokens must be a positive integer".into());
    }
    if v.get("stop_sequences")
        .is_some_and(|s| !s.as_array().is_some_and(|a| a.len() <= 5 && a.iter().all(Value::is_string)))
    {
        return Err("stop_sequences must be an array of at most 5 strings".into());
    }
    if v.get("tool_choice").is_some_and(|c| c != "REQUIRED" && c != "NONE") {
        return Err("tool_choice must be one of \"REQUIRED\" or \"NONE\"".into());
    }
    if v.get("stream").is_some_and(|s| !s.is_boolean()) {
        return Err("stream must be a boolean".into());
    }
    let tools = match &v["tools"] {
        Value::Null => &[][..],
        t => t.as_array().map(Vec::as_slice).ok_or("tools must be an array")?,
    };
    for (i, t) in tools.iter().enumerate() {
        let f = &t["function"];
        if ty(t) != "function" || f["name"].as_str().is_none_or(str::is_empty) {
            return Err(format!("tools[{i}] must be {{type: \"function\", function: {{name, parameters}}}}"));
        }
        if f.get("parameters").is_some_and(|p| !p.is_object()) {
            return Err(format!("tools[{i}].function.parameters must be an object"));
        }
    }
    validate_messages(v["messages"].as_array().ok_or("messages must be an array")?)
}

fn validate_messages(msgs: &[Value]) -> Result<(), String> {
    if msgs.is_empty() {
        return Err("messages must not be empty".into());
    }
    let mut call_ids: Vec<&str> = Vec::new();
    for (i, m) in msgs.iter().enumerate() {
        let content = &m["content"];
        match m["role"].as_str().unwrap_or("") {
            "system" if !parts_ok(content, &["text"]) => {
                return Err(format!("messages[{i}].content must be a string or an array of text parts"));
            }
            "user" if !parts_ok(content, &["text", "image_url"]) => {
                return Err(format!("messages[{i}].content must be a string or an array of text/image_url parts"));
            }
            "system" | "user" => {}
            "assistant" => {
                let calls = match &m["tool_calls"] {
                    Value::Null => &[][..],
                    c => c
                        .as_array()
                        .map(Vec::as_slice)
                        .ok_or_else(|| format!("messages[{i}].tool_calls must be an array"))?,
                };
                for (j, c) in calls.iter().enumerate() {
                    let f = &c["function"];
                    let ok = c["id"].is_string() && ty(c) == "function" && f["name"].is_string();
                    if !ok || !f["arguments"].is_string() {
                        return Err(format!(
                            "messages[{i}].tool_calls[{j}] must be {{id, type: \"function\", \
                            function: {{name, arguments (a JSON string)}}}}"
                        ));
                    }
                    call_ids.extend(c["id"].as_str());
                }
                if calls.is_empty() && !parts_ok(content, &["text", "thinking"]) {
                    return Err(format!("messages[{i}]: an assistant message needs content or tool_calls"));
                }
            }
            "tool" => {
                let id = m["tool_call_id"].as_str().unwrap_or("");
                if !call_ids.contains(&id) {
                    return Err(format!(
                        "messages[{i}].tool_call_id {id:?} matches no tool call of an earlier \
                        assistant message"
                    ));
                }
                if !parts_ok(content, &["text", "document"]) {
                    return Err(format!("messages[{i}].content must be a string or an array of text/document parts"));
                }
            }
            other => {
                return Err(format!("messages[{i}].role {other:?} must be one of system, user, assistant, tool"));
            }
        }
    }
    Ok(())
}

/// The text of a message's content: the string, or its text (and document
/// data) parts joined with no separator.
pub(crate) fn content_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .map(|p| match ty(p) {
                "text" => p["text"].as_str().unwrap_or("").to_string(),
                "document" => {
                    p["document"]["data"].as_str().map_or_else(|| p["document"]["data"].to_string(), String::from)
                }
                _ => String::new(),
            })
            .collect(),
        _ => String::new(),
    }
}

/// The text of the last `user` message.
pub(crate) fn last_user_text(msgs: &[Value]) -> String {
    msgs.iter().rev().find(|m| m["role"] == "user").map(|m| content_text(&m["content"])).unwrap_or_default()
}

/// The results the conversation ends with: the text of each trailing `tool` message.
pub(crate) fn tool_results(msgs: &[Value]) -> Vec<String> {
    let trailing = msgs.iter().rev().take_while(|m| m["role"] == "tool").count();
    msgs[msgs.len() - trailing..].iter().map(|m| content_text(&m["content"])).collect()
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Answer {
    /// Tool calls as (tool name, value of `q`).
    calls: Vec<(String, &'static str)>,
    text: String,
    finish: &'static str,
}

pub(crate) fn answer(v: &Value) -> Answer {
    let msgs = v["messages"].as_array().map_or(&[][..], Vec::as_slice);
    let results = tool_results(msgs);
    let said = last_user_text(msgs);
    let tools = v["tools"].as_array().map_or(&[][..], Vec::as_slice);
    let names: Vec<&str> = tools.iter().filter_map(|t| t["function"]["name"].as_str()).collect();
    if let Some(&first) = names.first()
        && results.is_empty()
        && v["tool_choice"] != "NONE"
    {
        let mut calls = vec![(first.to_string(), "x")];
        if said.contains("[parallel]") {
            calls.push((names.get(1).unwrap_or(&first).to_string(), "y"));
        }
        return Answer { calls, text: String::new(), finish: "TOOL_CALL" };
    }
    if v["max_tokens"].as_u64().is_some_and(|m| m < 5) {
        return Answer { calls: vec![], text: "upstream".into(), finish: "MAX_TOKENS" };
    }
    let text = if results.is_empty() {
        format!("upstream says: {said}")
    } else {
        format!("tool said: {}", results.join(" | "))
    };
    Answer { calls: vec![], text, finish: "COMPLETE" }
}

fn usage() -> Value {
    let tokens = json!({ "input_tokens": 11, "output_tokens": 7 });
    json!({ "billed_units": tokens, "tokens": tokens })
}

fn tool_calls(a: &Answer) -> Vec<Value> {
    let call = |i: usize, name: &str, q: &str| {
        let function = json!({ "name": name, "arguments": format!("{{\"q\":\"{q}\"}}") });
        json!({ "id": format!("call_mock_{}", i + 1), "type": "function", "function": function })
    };
    a.calls.iter().enumerate().map(|(i, (name, q))| call(i, name.as_str(), q)).collect()
}

fn chat(a: &Answer) -> Value {
    let message = if a.calls.is_empty() {
        json!({ "role": "assistant", "content": [{ "type": "text", "text": a.text }] })
    } else {
        json!({ "role": "assistant", "tool_plan": TOOL_PLAN, "tool_calls": tool_calls(a) })
    };
    json!({ "id": "cohere-mock-1", "finish_reason": a.finish, "message": message, "usage": usage() })
}

/// The full SSE sequence as (event type, data); each data repeats its type.
pub(crate) fn stream_events(a: &Answer) -> Vec<(&'static str, Value)> {
    let start = json!({ "role": "assistant", "content": [], "tool_plan": "", "tool_calls": [], "citations": [] });
    let mut ev = vec![("message-start", json!({ "id": "cohere-mock-1", "delta": { "message": start } }))];
    if a.calls.is_empty() {
        ev.push((
            "content-start",
            json!({ "index": 0, "delta": { "message": { "content": { "type": "text", "text": "" } } } }),
        ));
        for w in a.text.split_inclusive(' ') {
            ev.push(("content-delta", json!({ "index": 0, "delta": { "message": { "content": { "text": w } } } })));
        }
        ev.push(("content-end", json!({ "index": 0 })));
    } else {
        ev.push(("tool-plan-delta", json!({ "delta": { "message": { "tool_plan": TOOL_PLAN } } })));
    }
    for (index, mut call) in tool_calls(a).into_iter().enumerate() {
        let arguments = call["function"]["arguments"].as_str().unwrap_or("").to_string();
        call["function"]["arguments"] = json!("");
        ev.push(("tool-call-start", json!({ "index": index, "delta": { "message": { "tool_calls": call } } })));
        let (head, tail) = arguments.split_at(arguments.find(':').map_or(0, |p| p + 1));
        for fragment in [head, tail] {
            let delta = json!({ "message": { "tool_calls": { "function": { "arguments": fragment } } } });
            ev.push(("tool-call-delta", json!({ "index": index, "delta": delta })));
        }
        ev.push(("tool-call-end", json!({ "index": index })));
    }
    ev.push(("message-end", json!({ "delta": { "finish_reason": a.finish, "usage": usage() } })));
    for (kind, data) in &mut ev {
        data["type"] = json!(kind);
    }
    ev
}

/// The embed request's inputs: `texts` strings, or the text parts of each of `inputs`.
fn embed_texts(v: &Value) -> Option<Vec<String>> {
    match (v["texts"].as_array(), v["inputs"].as_array()) {
        (Some(t), None) => t.iter().map(|t| t.as_str().map(String::from)).collect(),
        (None, Some(i)) => Some(i.iter().map(|i| content_text(&i["content"])).collect()),
        _ => None,
    }
}

fn validate_embed(v: &Value) -> Result<(), String> {
    if v["model"].as_str().is_none_or(str::is_empty) {
        return Err("model must be a non-empty string".into());
    }
    if !v["input_type"].as_str().is_some_and(|t| INPUT_TYPES.contains(&t)) {
        return Err(format!("input_type is required and must be one of {}", INPUT_TYPES.join(", ")));
    }
    let n = embed_texts(v).ok_or("give either `texts` (an array of strings) or `inputs`")?.len();
    if n == 0 || n > 96 {
        return Err(format!("between 1 and 96 texts are allowed, got {n}"));
    }
    match &v["embedding_types"] {
        Value::Null => Ok(()),
        Value::Array(a)
            if !a.is_empty() && a.iter().all(|t| t.as_str().is_some_and(|t| EMBEDDING_TYPES.contains(&t))) =>
        {
            Ok(())
        }
        _ => Err(format!("embedding_types must be a non-empty array of {}", EMBEDDING_TYPES.join(", "))),
    }
}

fn embed(v: &Value) -> Value {
    let texts = embed_texts(v).unwrap_or_default();
    let types =
        v["embedding_types"].as_array().map_or_else(|| vec!["float"], |a| a.iter().filter_map(Value::as_str).collect());
    let mut embeddings = Map::new();
    for t in types {
        let one = match t {
            "float" => json!([0.1, 0.2, 0.3]),
            "base64" => json!("zczMPc3MTD6amZk+"),
            _ => json!([1, 2, 3]),
        };
        embeddings.insert(t.to_string(), Value::Array(vec![one; texts.len()]));
    }
    json!({ "id": "embed-mock-1", "embeddings": embeddings, "texts": texts, "response_type": "embeddings_by_type",
        "meta": { "api_version": { "version": "2" }, "billed_units": { "input_tokens": 4 } } })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(messages: Value) -> Value {
        let tools =
            json!([{ "type": "function", "function": { "name": "lookup", "parameters": { "type": "object" } } }]);
        json!({ "model": "command-a", "messages": messages, "tools": tools })
    }

    fn tool_turns(result_id: &str) -> Value {
        let call = json!({ "id": "call_a", "type": "function", "function": { "name": "lookup", "arguments": "{}" } });
        json!([{ "role": "user", "content": "find it" }, { "role": "assistant", "tool_calls": [call] },
            { "role": "tool", "tool_call_id": result_id, "content": [{ "type": "text", "text": "42" }] }])
    }

    #[test]
    fn tool_results_must_answer_an_earlier_call() {
        assert_eq!(validate_chat(&req(tool_turns("call_a"))), Ok(()));
        assert!(validate_chat(&req(tool_turns("call_b"))).expect_err("unknown id").contains("call_b"));
        let a = answer(&req(tool_turns("call_a")));
        assert_eq!((a.text.as_str(), a.finish), ("tool said: 42", "COMPLETE"));
    }

    #[test]
    fn openai_shapes_are_refused() {
        let mut v = req(json!([{ "role": "user", "content": "hi" }]));
        v["tool_choice"] = json!("auto");
        assert!(validate_chat(&v).is_err());
        v["tool_choice"] = json!("REQUIRED");
        assert_eq!(validate_chat(&v), Ok(()));
        v["n"] = json!(2);
        assert!(validate_chat(&v).is_err());
        let mut v = req(tool_turns("call_a"));
        v["messages"][1]["tool_calls"][0]["function"]["arguments"] = json!({ "q": "x" });
        assert!(validate_chat(&v).is_err(), "arguments must be a JSON string");
    }

    #[test]
    fn answers_follow_the_conversation() {
        let a = answer(&req(json!([{ "role": "user", "content": [{ "type": "text", "text": "a [parallel]" }] }])));
        assert_eq!((a.calls, a.finish), (vec![("lookup".to_string(), "x"), ("lookup".to_string(), "y")], "TOOL_CALL"));
        let v = json!({ "model": "m", "max_tokens": 3, "messages": [{ "role": "user", "content": "hi" }] });
        let a = answer(&v);
        assert_eq!((a.text.as_str(), a.finish), ("upstream", "MAX_TOKENS"));
    }

    #[test]
    fn stream_sequence_is_complete_and_ordered() {
        let ev = stream_events(&answer(&req(json!([{ "role": "user", "content": "go" }]))));
        let names: Vec<&str> = ev.iter().map(|(n, _)| *n).collect();
        let expected = [
            "message-start",
            "tool-plan-delta",
            "tool-call-start",
            "tool-call-delta",
            "tool-call-delta",
            "tool-call-end",
            "message-end",
        ];
        assert_eq!(names, expected);
        assert!(ev.iter().all(|(n, d)| d["type"] == *n));
        let args: String = ev[3..5]
            .iter()
            .filter_map(|(_, d)| d["delta"]["message"]["tool_calls"]["function"]["arguments"].as_str())
            .collect();
        assert_eq!(args, "{\"q\":\"x\"}");
        assert_eq!(ev[6].1["delta"]["finish_reason"], "TOOL_CALL");
        let text = stream_events(&answer(&json!({ "messages": [{ "role": "user", "content": "a b" }] })));
        let words: Vec<&str> = text
            .iter()
            .filter(|(n, _)| *n == "content-delta")
            .filter_map(|(_, d)| d["delta"]["message"]["content"]["text"].as_str())
            .collect();
        assert_eq!(words, ["upstream ", "says: ", "a ", "b"]);
    }

    #[test]
    fn embed_needs_an_input_type() {
        let mut v = json!({ "model": "embed-v4.0", "texts": ["a", "b"], "embedding_types": ["float"] });
        assert!(validate_embed(&v).is_err());
        v["input_type"] = json!("search_document");
        assert_eq!(validate_embed(&v), Ok(()));
        assert_eq!(embed(&v)["embeddings"]["float"].as_array().map(Vec::len), Some(2));
    }
}
