//! The inbound Anthropic Messages API (`POST /v1/messages`): a client's
//! Anthropic request as a hub request, and the hub answer — whole or
//! streamed — back in exact Anthropic shape, whatever provider answered.

use serde_json::{Map, Value, json};

use super::hub::Tokens;
use super::{Result, refuse};

/// Problems Anthropic itself would refuse, found before anything is routed.
pub fn validate(req: &Value) -> Result<()> {
    let Some(obj) = req.as_object() else { return refuse("the request body must be a JSON object") };
    if obj.get("max_tokens").is_none_or(|v| v.as_u64().is_none_or(|n| n == 0)) {
        return refuse("`max_tokens` is required and must be a positive integer");
    }
    let Some(messages) = obj.get("messages").and_then(Value::as_array) else {
        return refuse("`messages` is required and must be an array");
    };
    if messages.is_empty() {
        return refuse("`messages` must contain at least one message");
    }
    for (i, m) in messages.iter().enumerate() {
        match m.get("role").and_then(Value::as_str) {
            Some("user" | "assistant") => {}
            Some("system") => {
                return refuse(format!(
                    "messages.{i}: role `system` is not allowed here; put it in the top-level `system`"
                ));
            }
            _ => return refuse(format!("messages.{i}: `role` must be `user` or `assistant`")),
        }
        match m.get("content") {
            Some(Value::String(_) | Value::Array(_)) => {}
            _ => return refuse(format!("messages.{i}: `content` must be a string or an array of content blocks")),
        }
    }
    if let Some(t) = obj.get("temperature").and_then(Value::as_f64)
        && !(0.0..=1.0).contains(&t)
    {
        return refuse("`temperature` must be between 0 and 1");
    }
    Ok(())
}

/// An Anthropic request as a hub request. Server tools and other
/// Anthropic-only features are refused here; an Anthropic provider never
/// sees this translation (it takes the original request).
pub fn to_hub(req: &Value) -> Result<Value> {
    validate(req)?;
    let mut out = Map::new();
    out.insert("model".into(), req["model"].clone());
    let mut messages = Vec::new();
    match req.get("system") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => messages.push(json!({ "role": "system", "content": s })),
        Some(Value::Array(blocks)) => {
            let text: String =
                blocks.iter().filter_map(|b| b.get("text").and_then(Value::as_str)).collect::<Vec<_>>().join("\n");
            messages.push(json!({ "role": "system", "content": text }));
        }
        Some(_) => return refuse("`system` must be a string or an array of text blocks"),
    }
    for m in req["messages"].as_array().into_iter().flatten() {
        match m["role"].as_str() {
            Some("assistant") => messages.push(assistant(&m["content"])?),
            _ => user(&m["content"], &mut messages)?,
        }
    }
    out.insert("messages".into(), Value::Array(messages));
    out.insert("max_tokens".into(), req["max_tokens"].clone());
    for k in ["temperature", "top_p", "top_k"] {
        if let Some(v) = req.get(k).filter(|v| !v.is_null()) {
            out.insert(k.into(), v.clone());
        }
    }
    if let Some(s) = req.get("stop_sequences").and_then(Value::as_array).filter(|s| !s.is_empty()) {
        out.insert("stop".into(), Value::Array(s.clone()));
    }
    if req.get("stream").and_then(Value::as_bool) == Some(true) {
        out.insert("stream".into(), json!(true));
        // The Anthropic stream reports usage at its end: always ask for it.
        out.insert("stream_options".into(), json!({ "include_usage": true }));
    }
    if let Some(u) = req.pointer("/metadata/user_id").and_then(Value::as_str) {
        out.insert("user".into(), json!(u));
    }
    if let Some(t) = req.get("thinking").filter(|t| t.get("type").and_then(Value::as_str) == Some("enabled")) {
        out.insert("thinking".into(), t.clone());
    }
    if let Some(tools) = req.get("tools").and_then(Value::as_array) {
        let mut list = Vec::new();
        for t in tools {
            if let Some(kind) = t.get("type").and_then(Value::as_str).filter(|k| *k != "custom") {
                return refuse(format!(
                    "tool type `{kind}` is an Anthropic server tool; it only runs on Anthropic models"
                ));
            }
            let mut f = json!({ "name": t.get("name").cloned().unwrap_or(Value::Null),
                "parameters": t.get("input_schema").cloned().unwrap_or(json!({ "type": "object" })) });
            if let Some(d) = t.get("description") {
                f["description"] = d.clone();
            }
            list.push(json!({ "type": "function", "function": f }));
        }
        out.insert("tools".into(), Value::Array(list));
    }
    if let Some(c) = req.get("tool_choice").filter(|c| !c.is_null()) {
        let choice = match c.get("type").and_then(Value::as_str) {
            Some("auto") => json!("auto"),
            Some("any") => json!("required"),
            Some("none") => json!("none"),
            Some("tool") => {
                json!({ "type": "function", "function": { "name": c.get("name").cloned().unwrap_or(Value::Null) } })
            }
            _ => return refuse("`tool_choice.type` must be auto, any, tool or none"),
        };
        out.insert("tool_choice".into(), choice);
        if c.get("disable_parallel_tool_use").and_then(Value::as_bool) == Some(true) {
            out.insert("parallel_tool_calls".into(), json!(false));
        }
    }
    Ok(Value::Object(out))
}

/// A user turn: its tool results become `tool` messages first (in order),
/// then the rest of its content one user message.
fn user(content: &Value, messages: &mut Vec<Value>) -> Result<()> {
    let blocks = match content {
        Value::String(s) => {
            messages.push(json!({ "role": "user", "content": s }));
            return Ok(());
        }
        Value::Array(b) => b,
        _ => return refuse("`content` must be a string or an array of content blocks"),
    };
    let mut parts = Vec::new();
    for b in blocks {
        match b.get("type").and_then(Value::as_str) {
            Some("tool_result") => {
                let Some(id) = b.get("tool_use_id").and_then(Value::as_str) else {
                    return refuse("a tool_result block needs the `tool_use_id` of the tool_use it answers");
                };
                let mut extra = Vec::new();
                let text = match b.get("content") {
                    Some(Value::String(s)) => s.clone(),
                    Some(Value::Array(inner)) => {
                        let mut t = String::new();
                        for ib in inner {
                            match ib.get("type").and_then(Value::as_str) {
                                Some("text") => t.push_str(ib.get("text").and_then(Value::as_str).unwrap_or("")),
                                _ => extra.push(part(ib)?),
                            }
                        }
                        t
                    }
                    _ => String::new(),
                };
                messages.push(json!({ "role": "tool", "tool_call_id": id, "content": text }));
                // OpenAI tool messages carry text only; images a tool returned follow as user content.
                parts.extend(extra);
            }
            _ => parts.push(part(b)?),
        }
    }
    if !parts.is_empty() {
        messages.push(json!({ "role": "user", "content": parts }));
    }
    Ok(())
}

fn part(b: &Value) -> Result<Value> {
    match b.get("type").and_then(Value::as_str) {
        Some("text") => Ok(json!({ "type": "text", "text": b.get("text").cloned().unwrap_or(json!("")) })),
        Some("image") => {
            let src = &b["source"];
            match src.get("type").and_then(Value::as_str) {
                Some("base64") => {
                    let url = format!(
                        "data:{};base64,{}",
                        src.get("media_type").and_then(Value::as_str).unwrap_or("image/png"),
                        src.get("data").and_then(Value::as_str).unwrap_or("")
                    );
                    Ok(json!({ "type": "image_url", "image_url": { "url": url } }))
                }
                Some("url") => Ok(json!({ "type": "image_url", "image_url": { "url": src["url"] } })),
                _ => refuse("an image block's source must be base64 or url"),
            }
        }
        Some("document") => {
            let src = &b["source"];
            match src.get("type").and_then(Value::as_str) {
                Some("base64") => {
                    let media = src.get("media_type").and_then(Value::as_str).unwrap_or("application/pdf");
                    let data = src.get("data").and_then(Value::as_str).unwrap_or("");
                    Ok(json!({ "type": "file", "file": { "file_data": format!("data:{media};base64,{data}") } }))
                }
                Some("text") => Ok(json!({ "type": "text", "text": src.get("data").cloned().unwrap_or(json!("")) })),
                _ => refuse("a document block's source must be base64 or text for non-Anthropic models"),
            }
        }
        Some(other) => refuse(format!("content block type `{other}` is not supported for this model")),
        None => refuse("each content block needs a `type`"),
    }
}

fn assistant(content: &Value) -> Result<Value> {
    let blocks = match content {
        Value::String(s) => return Ok(json!({ "role": "assistant", "content": s })),
        Value::Array(b) => b,
        _ => return refuse("`content` must be a string or an array of content blocks"),
    };
    super::anthropic::blocks_to_hub(blocks, true)
}

pub fn stop_reason(finish: &str) -> &'static str {
    match finish {
        "length" => "max_tokens",
        "tool_calls" | "function_call" => "tool_use",
        "content_filter" => "refusal",
        _ => "end_turn",
    }
}

pub fn usage(t: Tokens) -> Value {
    json!({
        "input_tokens": t.input,
        "output_tokens": t.output,
        "cache_creation_input_tokens": t.cache_write,
        "cache_read_input_tokens": t.cache_read,
    })
}

/// A hub completion as an Anthropic message; `model` is the name the client asked for.
pub fn from_hub(resp: &Value, model: &str) -> Value {
    let msg = resp.pointer("/choices/0/message").cloned().unwrap_or(Value::Null);
    let mut content = thinking_blocks(&msg);
    if let Some(t) = msg.get("content").and_then(Value::as_str).filter(|t| !t.is_empty()) {
        content.push(json!({ "type": "text", "text": t }));
    }
    for c in msg.get("tool_calls").and_then(Value::as_array).into_iter().flatten() {
        content.push(json!({ "type": "tool_use", "id": c["id"], "name": c["function"]["name"],
            "input": tool_input(c.pointer("/function/arguments")) }));
    }
    let finish = resp.pointer("/choices/0/finish_reason").and_then(Value::as_str).unwrap_or("stop");
    json!({
        "id": message_id(resp.get("id").and_then(Value::as_str)),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason(finish),
        "stop_sequence": null,
        "usage": usage(resp.get("usage").map(Tokens::from_openai).unwrap_or_default()),
    })
}

/// Thinking blocks of a hub message: the signed blocks when the provider
/// gave them, else the reasoning text as a block without a signature.
fn thinking_blocks(msg: &Value) -> Vec<Value> {
    if let Some(b) = msg.get("thinking_blocks").and_then(Value::as_array).filter(|b| !b.is_empty()) {
        return b.clone();
    }
    match msg.get("reasoning_content").and_then(Value::as_str).filter(|r| !r.is_empty()) {
        Some(r) => vec![json!({ "type": "thinking", "thinking": r, "signature": "" })],
        None => Vec::new(),
    }
}

/// Tool arguments as an object; text that is not a JSON object (a model's
/// malformed output) is kept under `_raw` rather than lost.
fn tool_input(args: Option<&Value>) -> Value {
    match args.and_then(Value::as_str) {
        None => json!({}),
        Some(s) if s.trim().is_empty() => json!({}),
        Some(s) => match serde_json::from_str::<Value>(s) {
            Ok(v @ Value::Object(_)) => v,
            _ => json!({ "_raw": s }),
        },
    }
}

fn message_id(id: Option<&str>) -> String {
    match id {
        Some(id) if id.starts_with("msg_") => id.to_string(),
        Some(id) if !id.is_empty() => format!("msg_{id}"),
        _ => "msg_tollgate".into(),
    }
}

/// Anthropic's error type for a status.
pub fn error_type(status: u16) -> &'static str {
    match status {
        400 | 422 => "invalid_request_error",
        401 => "authentication_error",
        402 | 403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        503 | 529 => "overloaded_error",
        504 => "timeout_error",
        _ => "api_error",
    }
}

/// `{"type":"error","error":{"type","message"}}`.
pub fn error_body(status: u16, message: &str) -> Value {
    json!({ "type": "error", "error": { "type": error_type(status), "message": message } })
}

/// Counts the input tokens of a request for `/v1/messages/count_tokens`.
pub fn count_tokens(req: &Value) -> u64 {
    let mut text = String::new();
    collect_text(req.get("system"), &mut text);
    collect_text(req.get("messages"), &mut text);
    collect_text(req.get("tools"), &mut text);
    super::tokens::count(&text)
}

fn collect_text(v: Option<&Value>, out: &mut String) {
    match v {
        Some(Value::String(s)) => {
            out.push_str(s);
            out.push('\n');
        }
        Some(Value::Array(a)) => a.iter().for_each(|x| collect_text(Some(x), out)),
        Some(Value::Object(o)) => {
            for (k, x) in o {
                // Base64 payloads are not text the model reads as tokens.
                if k != "data" && k != "type" && k != "source" {
                    collect_text(Some(x), out);
                }
            }
        }
        _ => {}
    }
}

pub mod stream;
