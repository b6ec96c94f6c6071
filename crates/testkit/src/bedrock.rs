//! Bedrock runtime wire format behind SigV4: Converse (JSON), ConverseStream
//! (the binary AWS event-stream, `application/vnd.amazon.eventstream`) and
//! InvokeModel for Titan text embeddings. Signature checks live in `sigv4`,
//! request checks in `validate`.

mod sigv4;
mod validate;

use std::sync::Arc;

use aws_smithy_eventstream::frame::write_message_to;
use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
use bytes::Bytes;
use http::{Response, header};
use serde_json::{Value, json};

use crate::gemini::percent_decode;
use crate::openai::full;
use crate::{Body, Fault, Recorded, State};

/// The access key id the mock accepts (SigV4, service `bedrock`).
pub const AWS_ACCESS_KEY_ID: &str = "AKIDMOCKTOLLGATE";
/// The secret key that goes with [`AWS_ACCESS_KEY_ID`].
pub const AWS_SECRET_ACCESS_KEY: &str = "mock/secret/key";

/// Each event-stream message is sent as two body chunks cut here, so
/// chunk boundaries never line up with message boundaries.
const SPLIT_AT: usize = 7;

fn aws_error(status: u16, kind: &str, message: &str) -> Response<Body> {
    let mut r = full(status, "application/json", json!({ "message": message }).to_string());
    if let Ok(v) = kind.parse() {
        r.headers_mut().insert("x-amzn-errortype", v);
    }
    r
}

fn validation(message: &str) -> Response<Body> {
    aws_error(400, "ValidationException", message)
}

pub(crate) fn error_response(status: u16, body: Option<&str>, retry_after: Option<&str>) -> Response<Body> {
    let kind = match status {
        429 => "ThrottlingException",
        503 => "ServiceUnavailableException",
        400 => "ValidationException",
        403 => "AccessDeniedException",
        424 => "ModelErrorException",
        _ => "InternalServerException",
    };
    let mut r = match body {
        Some(b) => {
            let mut r = full(status, "application/json", b.to_string());
            if let Ok(v) = kind.parse() {
                r.headers_mut().insert("x-amzn-errortype", v);
            }
            r
        }
        None => aws_error(status, kind, &format!("mock upstream error {status}")),
    };
    if let Some(ra) = retry_after
        && let Ok(v) = ra.parse()
    {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}

/// `/model/{modelId}/{operation}` with the model id percent-decoded.
pub(crate) fn route(path: &str) -> Option<(String, &str)> {
    let (model, op) = path.strip_prefix("/model/")?.rsplit_once('/')?;
    (!model.is_empty()).then(|| (percent_decode(model, false), op))
}

pub(crate) fn respond(req: &Recorded, fault: Option<Fault>, state: Arc<State>) -> Response<Body> {
    if let Err(e) = sigv4::verify_sigv4(&req.method, &req.path, req.query.as_deref(), &req.headers, &req.body) {
        return aws_error(403, e.kind, &e.message);
    }
    let route = route(&req.path).filter(|_| req.method == "POST");
    let Some((model, op)) = route else {
        return aws_error(404, "UnknownOperationException", &format!("no operation at {} {}", req.method, req.path));
    };
    let v: Value = match serde_json::from_slice(&req.body) {
        Ok(v) => v,
        Err(e) => {
            return validation(&format!("Malformed input request: {e}, please reformat your input and try again."));
        }
    };
    match op {
        "converse" | "converse-stream" => {
            if let Err(m) = validate::converse(&v) {
                return validation(&m);
            }
            let r = reply(&v);
            if op == "converse" {
                full(200, "application/json", converse_body(&r).to_string())
            } else {
                stream(&r, fault, state)
            }
        }
        "invoke" => invoke(&model, &v),
        _ => aws_error(404, "UnknownOperationException", &format!("unknown operation {op}")),
    }
}

/// InvokeModel for Titan text embeddings (`{"inputText": …}`).
fn invoke(model: &str, v: &Value) -> Response<Body> {
    if !model.contains("titan-embed") {
        return validation(&format!("this mock serves InvokeModel only for amazon.titan-embed-* models, not {model}"));
    }
    let Some(obj) = v.as_object() else { return validation("Malformed input request: expected a JSON object") };
    if let Some(k) =
        obj.keys().find(|k| !["inputText", "dimensions", "normalize", "embeddingTypes"].contains(&k.as_str()))
    {
        return validation(&format!(
            "Malformed input request: #: extraneous key [{k}] is not permitted, please reformat your input and try again."
        ));
    }
    if v.get("inputText").and_then(Value::as_str).is_none_or(|t| t.is_empty()) {
        return validation(
            "Malformed input request: #: required key [inputText] not found, please reformat your input and try again.",
        );
    }
    full(200, "application/json", json!({ "embedding": [0.1, 0.2, 0.3], "inputTextTokenCount": 4 }).to_string())
}

/// What the mock answers a Converse request with.
#[derive(Debug, PartialEq)]
pub(crate) enum Reply {
    /// Tool uses: (name, input).
    ToolUse(Vec<(String, Value)>),
    Text {
        text: String,
        max_tokens: bool,
    },
}

fn blocks(m: &Value) -> &[Value] {
    m.get("content").and_then(Value::as_array).map_or(&[][..], Vec::as_slice)
}

/// A tool result's text: its text blocks, JSON blocks serialized.
fn result_text(r: &Value) -> String {
    r.get("content")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| {
            c.get("text").and_then(Value::as_str).map(str::to_string).or_else(|| c.get("json").map(Value::to_string))
        })
        .collect()
}

pub(crate) fn reply(v: &Value) -> Reply {
    let tools: Vec<&str> = v
        .pointer("/toolConfig/tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|t| t.pointer("/toolSpec/name").and_then(Value::as_str))
        .collect();
    let msgs = v.get("messages").and_then(Value::as_array).map_or(&[][..], Vec::as_slice);
    let last_user =
        msgs.iter().rev().find(|m| m.get("role").and_then(Value::as_str) == Some("user")).map_or(&[][..], blocks);
    let results: Vec<String> = last_user.iter().filter_map(|b| b.get("toolResult")).map(result_text).collect();
    let text: String = last_user.iter().filter_map(|b| b.get("text").and_then(Value::as_str)).collect();
    if let Some(first) = tools.first()
        && results.is_empty()
    {
        let mut uses = vec![(first.to_string(), json!({ "q": "x" }))];
        if text.contains("[parallel]") {
            uses.push((tools.get(1).unwrap_or(first).to_string(), json!({ "q": "y" })));
        }
        return Reply::ToolUse(uses);
    }
    if v.pointer("/inferenceConfig/maxTokens").and_then(Value::as_u64).is_some_and(|n| n < 5) {
        return Reply::Text { text: "upstream".into(), max_tokens: true };
    }
    let text = if results.is_empty() {
        format!("upstream says: {text}")
    } else {
        format!("tool said: {}", results.join(" | "))
    };
    Reply::Text { text, max_tokens: false }
}

fn stop_reason(r: &Reply) -> &'static str {
    match r {
        Reply::ToolUse(_) => "tool_use",
        Reply::Text { max_tokens: true, .. } => "max_tokens",
        Reply::Text { .. } => "end_turn",
    }
}

fn usage() -> Value {
    json!({ "inputTokens": 11, "outputTokens": 7, "totalTokens": 18, "cacheReadInputTokens": 3, "cacheWriteInputTokens": 2 })
}

fn tool_use_id(i: usize) -> String {
    format!("tooluse_mock_{}", i + 1)
}

pub(crate) fn converse_body(r: &Reply) -> Value {
    let content: Vec<Value> = match r {
        Reply::ToolUse(uses) => uses
            .iter()
            .enumerate()
            .map(|(i, (name, input))| json!({ "toolUse": { "toolUseId": tool_use_id(i), "name": name, "input": input } }))
            .collect(),
        Reply::Text { text, .. } => vec![json!({ "text": text })],
    };
    json!({
        "output": { "message": { "role": "assistant", "content": content } },
        "stopReason": stop_reason(r),
        "usage": usage(),
        "metrics": { "latencyMs": 5 }
    })
}

/// The ConverseStream events (`:event-type`, payload) for a reply.
pub(crate) fn stream_events(r: &Reply) -> Vec<(&'static str, Value)> {
    let mut ev = vec![("messageStart", json!({ "role": "assistant" }))];
    match r {
        Reply::ToolUse(uses) => {
            for (i, (name, input)) in uses.iter().enumerate() {
                let start = json!({ "toolUse": { "toolUseId": tool_use_id(i), "name": name } });
                ev.push(("contentBlockStart", json!({ "contentBlockIndex": i, "start": start })));
                let args = input.to_string();
                let (a, b) = args.split_at(args.find(':').map_or(0, |p| p + 1));
                for piece in [a, b] {
                    let delta = json!({ "toolUse": { "input": piece } });
                    ev.push(("contentBlockDelta", json!({ "contentBlockIndex": i, "delta": delta })));
                }
                ev.push(("contentBlockStop", json!({ "contentBlockIndex": i })));
            }
        }
        Reply::Text { text, .. } => {
            for w in text.split_inclusive(' ') {
                ev.push(("contentBlockDelta", json!({ "contentBlockIndex": 0, "delta": { "text": w } })));
            }
            ev.push(("contentBlockStop", json!({ "contentBlockIndex": 0 })));
        }
    }
    ev.push(("messageStop", json!({ "stopReason": stop_reason(r) })));
    ev.push(("metadata", json!({ "usage": usage(), "metrics": { "latencyMs": 5 } })));
    ev
}

fn string(s: &'static str) -> HeaderValue {
    HeaderValue::String(s.into())
}

fn encode(headers: Vec<Header>, payload: &Value) -> Bytes {
    let mut buf: Vec<u8> = Vec::new();
    write_message_to(&Message::new_from_parts(headers, payload.to_string()), &mut buf)
        .expect("a small event-stream message always encodes");
    Bytes::from(buf)
}

pub(crate) fn event_message(event_type: &'static str, payload: &Value) -> Bytes {
    let headers = vec![
        Header::new(":event-type", string(event_type)),
        Header::new(":content-type", string("application/json")),
        Header::new(":message-type", string("event")),
    ];
    encode(headers, payload)
}

pub(crate) fn exception_message(status: u16) -> Bytes {
    let kind = match status {
        429 => "throttlingException",
        503 => "serviceUnavailableException",
        _ => "internalServerException",
    };
    let headers = vec![
        Header::new(":exception-type", string(kind)),
        Header::new(":content-type", string("application/json")),
        Header::new(":message-type", string("exception")),
    ];
    encode(headers, &json!({ "message": "mock upstream in-stream error" }))
}

/// Cuts every message in two so a reader must reassemble frames.
fn split_messages(messages: Vec<Bytes>) -> Vec<Bytes> {
    messages
        .into_iter()
        .flat_map(|mut m| {
            let tail = m.split_off(SPLIT_AT.min(m.len()));
            [m, tail]
        })
        .collect()
}

/// `paced` counts body chunks; each message is two, so the cut and stall
/// faults (counted in messages) are doubled.
fn per_chunk(fault: &Option<Fault>) -> Option<Fault> {
    match fault {
        Some(Fault::CutStream { after_events, abort }) => {
            Some(Fault::CutStream { after_events: after_events.saturating_mul(2), abort: *abort })
        }
        Some(Fault::StallStream { after_events, pause }) => {
            Some(Fault::StallStream { after_events: after_events.saturating_mul(2), pause: *pause })
        }
        other => other.clone(),
    }
}

fn stream(r: &Reply, fault: Option<Fault>, state: Arc<State>) -> Response<Body> {
    let mut messages: Vec<Bytes> = stream_events(r).into_iter().map(|(t, p)| event_message(t, &p)).collect();
    if let Some(Fault::StreamError { after_events, status }) = &fault {
        messages.truncate(*after_events);
        messages.push(exception_message(*status));
    }
    crate::wire::paced(split_messages(messages), &per_chunk(&fault), state, "application/vnd.amazon.eventstream")
}

#[cfg(test)]
mod tests {
    use aws_smithy_eventstream::frame::read_message_from;

    use super::*;

    fn header<'a>(m: &'a Message, name: &str) -> Option<&'a str> {
        m.headers()
            .iter()
            .find(|h| h.name().as_str() == name)
            .and_then(|h| h.value().as_string().ok())
            .map(|s| s.as_str())
    }

    #[test]
    fn routes_and_decodes_model_ids() {
        assert_eq!(
            route("/model/anthropic.claude-3-5-haiku-20241022-v1%3A0/converse-stream"),
            Some(("anthropic.claude-3-5-haiku-20241022-v1:0".to_string(), "converse-stream"))
        );
        assert_eq!(route("/model//converse"), None);
        assert_eq!(route("/models/x/converse"), None);
    }

    #[test]
    fn replies_follow_the_contract() {
        let tools = json!({ "tools": [{ "toolSpec": { "name": "a", "inputSchema": { "json": {} } } }] });
        let v =
            json!({ "messages": [{ "role": "user", "content": [{ "text": "go [parallel]" }] }], "toolConfig": tools });
        let r = reply(&v);
        assert_eq!(r, Reply::ToolUse(vec![("a".into(), json!({ "q": "x" })), ("a".into(), json!({ "q": "y" }))]));
        assert_eq!(converse_body(&r)["stopReason"], "tool_use");
        assert_eq!(converse_body(&r)["output"]["message"]["content"][1]["toolUse"]["toolUseId"], "tooluse_mock_2");
        let v = json!({ "toolConfig": tools, "messages": [
            { "role": "user", "content": [{ "text": "go" }] },
            { "role": "assistant", "content": [{ "toolUse": { "toolUseId": "t", "name": "a", "input": {} } }] },
            { "role": "user", "content": [{ "toolResult": { "toolUseId": "t", "content": [{ "text": "sun" }, { "json": { "t": 1 } }] } }] } ] });
        assert_eq!(reply(&v), Reply::Text { text: "tool said: sun{\"t\":1}".into(), max_tokens: false });
        let v = json!({ "messages": [{ "role": "user", "content": [{ "text": "hi" }] }], "inferenceConfig": { "maxTokens": 2 } });
        assert_eq!(converse_body(&reply(&v))["stopReason"], "max_tokens");
    }

    #[test]
    fn stream_is_valid_event_stream_split_off_message_boundaries() {
        let r = Reply::ToolUse(vec![("a".into(), json!({ "q": "x" }))]);
        let events = stream_events(&r);
        let names: Vec<&str> = events.iter().map(|(n, _)| *n).collect();
        assert_eq!(
            names,
            [
                "messageStart",
                "contentBlockStart",
                "contentBlockDelta",
                "contentBlockDelta",
                "contentBlockStop",
                "messageStop",
                "metadata"
            ]
        );
        assert_eq!(events[2].1["delta"]["toolUse"]["input"], "{\"q\":");
        assert_eq!(events[3].1["delta"]["toolUse"]["input"], "\"x\"}");
        let mut messages: Vec<Bytes> = events.iter().map(|(t, p)| event_message(t, p)).collect();
        messages.push(exception_message(429));
        let chunks = split_messages(messages);
        assert_eq!(chunks.len(), 16);
        assert_eq!(chunks[0].len(), SPLIT_AT);
        let all: Vec<u8> = chunks.iter().flat_map(|c| c.iter().copied()).collect();
        let mut rest: &[u8] = &all;
        let first = read_message_from(&mut rest).expect("first message");
        assert_eq!(header(&first, ":event-type"), Some("messageStart"));
        assert_eq!(header(&first, ":message-type"), Some("event"));
        assert_eq!(&first.payload()[..], br#"{"role":"assistant"}"#);
        let mut last = first;
        while !rest.is_empty() {
            last = read_message_from(&mut rest).expect("message");
        }
        assert_eq!(header(&last, ":message-type"), Some("exception"));
        assert_eq!(header(&last, ":exception-type"), Some("throttlingException"));
    }

    #[test]
    fn faults_count_messages_not_chunks() {
        let cut = per_chunk(&Some(Fault::CutStream { after_events: 3, abort: true }));
        assert!(matches!(cut, Some(Fault::CutStream { after_events: 6, abort: true })));
    }
}
