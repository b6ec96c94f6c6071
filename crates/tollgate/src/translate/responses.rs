//! The inbound OpenAI Responses API (`POST /v1/responses`): a Responses
//! request as a hub (chat) request, and the hub answer — whole or streamed
//! (`stream`) — back as a Responses object, whatever provider answered.
//!
//! Items and messages map one to one where the two APIs overlap: a
//! `function_call` item is an assistant tool call whose `call_id` is the
//! tool call's `id`, a `function_call_output` item is a `tool` message with
//! that id, so ids survive every provider's translation exactly. Reasoning
//! comes back as a `reasoning` item; signed thinking blocks ride in its
//! `encrypted_content`, so a client that sends the item back hands the
//! provider its own blocks again.

pub mod stream;

use serde_json::{Map, Value, json};

use super::hub::Tokens;
use super::{Result, refuse};

/// Prefix of the `encrypted_content` this gateway writes: the hub's
/// thinking blocks as hex-encoded JSON (opaque to clients, as OpenAI's is).
const SEALED: &str = "tollgate.v1.";

/// A Responses request turned into a hub request.
#[derive(Debug)]
pub struct Converted {
    pub hub: Value,
    /// This request's own input as hub messages (no `instructions`): what a
    /// later `previous_response_id` continues from, after the history.
    pub input: Vec<Value>,
}

/// Fields the Responses API has and chat has not, refused with what to do.
const UNSUPPORTED: &[(&str, &str)] = &[
    ("background", "background responses are not supported; send the request without `background`"),
    ("conversation", "`conversation` objects are not supported; chain turns with `previous_response_id`"),
];

/// The hub request for a Responses body; `history` is the conversation a
/// `previous_response_id` names, as hub messages, oldest first; `lookup`
/// finds a stored output item an `item_reference` names.
pub fn to_hub(req: &Value, history: &[Value], lookup: &dyn Fn(&str) -> Option<Value>) -> Result<Converted> {
    let Some(obj) = req.as_object() else { return refuse("the request body must be a JSON object") };
    if !obj.get("model").is_some_and(Value::is_string) {
        return refuse("`model` is required and must be a string");
    }
    for (field, why) in UNSUPPORTED {
        if obj.get(*field).is_some_and(|v| !v.is_null() && v != &Value::Bool(false)) {
            return refuse(*why);
        }
    }
    let input = match obj.get("input") {
        None | Some(Value::Null) => return refuse("`input` is required: a string or an array of input items"),
        Some(Value::String(s)) => vec![json!({ "role": "user", "content": s })],
        Some(Value::Array(items)) => items_to_messages(items, lookup)?,
        Some(_) => return refuse("`input` must be a string or an array of input items"),
    };
    let mut messages = Vec::with_capacity(history.len() + input.len() + 1);
    match obj.get("instructions") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => messages.push(json!({ "role": "system", "content": s })),
        Some(_) => return refuse("`instructions` must be a string"),
    }
    messages.extend(history.iter().cloned());
    messages.extend(input.iter().cloned());
    if messages.is_empty() {
        return refuse("`input` must contain at least one item");
    }

    let mut hub = Map::new();
    hub.insert("model".into(), obj["model"].clone());
    hub.insert("messages".into(), Value::Array(messages));
    for (from, to) in [
        ("temperature", "temperature"),
        ("top_p", "top_p"),
        ("parallel_tool_calls", "parallel_tool_calls"),
        ("user", "user"),
        ("safety_identifier", "user"),
        ("top_logprobs", "top_logprobs"),
        ("service_tier", "service_tier"),
        // Prompt templates are resolved by the gateway from this field.
        ("prompt", "prompt"),
    ] {
        if let Some(v) = obj.get(from).filter(|v| !v.is_null()) {
            hub.insert(to.into(), v.clone());
        }
    }
    match obj.get("max_output_tokens") {
        None | Some(Value::Null) => {}
        Some(v) if v.as_u64().is_some_and(|n| n > 0) => {
            hub.insert("max_tokens".into(), v.clone());
        }
        Some(_) => return refuse("`max_output_tokens` must be a positive integer"),
    }
    if let Some(effort) = obj.get("reasoning").and_then(|r| r.get("effort")).filter(|v| !v.is_null()) {
        match effort.as_str() {
            Some("minimal" | "low" | "medium" | "high") => {
                hub.insert("reasoning_effort".into(), effort.clone());
            }
            _ => return refuse("`reasoning.effort` must be one of minimal, low, medium, high"),
        }
    }
    if let Some(format) = obj.get("text").and_then(|t| t.get("format")).filter(|v| !v.is_null()) {
        if let Some(rf) = response_format(format)? {
            hub.insert("response_format".into(), rf);
        }
    }
    if let Some(tools) = obj.get("tools").filter(|v| !v.is_null()) {
        let Some(list) = tools.as_array() else { return refuse("`tools` must be an array") };
        if !list.is_empty() {
            hub.insert("tools".into(), Value::Array(list.iter().enumerate().map(tool).collect::<Result<_>>()?));
        }
    }
    if let Some(choice) = obj.get("tool_choice").filter(|v| !v.is_null()) {
        hub.insert("tool_choice".into(), tool_choice(choice)?);
    }
    let stream = obj.get("stream").and_then(Value::as_bool).unwrap_or(false);
    if stream {
        hub.insert("stream".into(), Value::Bool(true));
        // The final `response.completed` carries usage: ask every provider for it.
        hub.insert("stream_options".into(), json!({ "include_usage": true }));
    }
    Ok(Converted { hub: Value::Object(hub), input })
}

/// Input items as hub messages. Consecutive assistant items (text,
/// reasoning, function calls) become one assistant message, as chat needs.
fn items_to_messages(items: &[Value], lookup: &dyn Fn(&str) -> Option<Value>) -> Result<Vec<Value>> {
    let mut out: Vec<Value> = Vec::new();
    // Reasoning waiting for the assistant message it belongs to.
    let mut reasoning: Option<(String, Vec<Value>)> = None;
    for (i, item) in items.iter().enumerate() {
        // Clients that keep responses stored (the Vercel AI SDK by default)
        // send earlier output items by reference.
        let referenced;
        let item = match item.get("type").and_then(Value::as_str) {
            Some("item_reference") => {
                let id = item.get("id").and_then(Value::as_str).unwrap_or("");
                referenced = lookup(id).ok_or_else(|| {
                    super::Untranslatable(format!(
                        "input.{i}: item `{id}` was not found: it is not an output item of a response stored \
                         for this caller (or it has expired); send the item itself"
                    ))
                })?;
                &referenced
            }
            _ => item,
        };
        let Some(o) = item.as_object() else { return refuse(format!("input.{i}: an input item must be an object")) };
        let kind = o.get("type").and_then(Value::as_str).unwrap_or("message");
        match kind {
            "message" => {
                let role = match o.get("role").and_then(Value::as_str) {
                    Some(r @ ("user" | "assistant" | "system" | "developer")) => r,
                    _ => return refuse(format!("input.{i}: `role` must be user, assistant, system or developer")),
                };
                let content = message_content(i, role, o.get("content"))?;
                if role == "assistant" {
                    let m = assistant(&mut out, &mut reasoning);
                    let text = super::content_text(Some(&content));
                    let joined = match m.get("content").and_then(Value::as_str) {
                        Some(prev) if !prev.is_empty() => format!("{prev}{text}"),
                        _ => text,
                    };
                    m["content"] = Value::String(joined);
                } else {
                    out.push(json!({ "role": role, "content": content }));
                }
            }
            "function_call" => {
                let call_id = str_field(o, "call_id", i)?;
                let name = str_field(o, "name", i)?;
                let arguments = o.get("arguments").and_then(Value::as_str).unwrap_or("{}");
                let m = assistant(&mut out, &mut reasoning);
                let calls = m.as_object_mut().map(|m| m.entry("tool_calls").or_insert_with(|| json!([])));
                if let Some(Value::Array(calls)) = calls {
                    calls.push(super::hub::tool_call(call_id, name, arguments.to_string()));
                }
            }
            "function_call_output" => {
                let call_id = str_field(o, "call_id", i)?;
                let output = match o.get("output") {
                    Some(Value::String(s)) => s.clone(),
                    Some(Value::Array(parts)) => parts
                        .iter()
                        .filter_map(|p| p.get("text").and_then(Value::as_str))
                        .collect::<Vec<_>>()
                        .join(""),
                    _ => return refuse(format!("input.{i}: a function_call_output needs `output` (a string)")),
                };
                out.push(json!({ "role": "tool", "tool_call_id": call_id, "content": output }));
            }
            "reasoning" => {
                let summary: String = o
                    .get("summary")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|s| s.get("text").and_then(Value::as_str))
                    .collect::<Vec<_>>()
                    .join("\n");
                let blocks = o.get("encrypted_content").and_then(Value::as_str).map(unseal).unwrap_or_default();
                let r = reasoning.get_or_insert_with(Default::default);
                r.0.push_str(&summary);
                r.1.extend(blocks);
            }
            other => {
                return refuse(format!(
                    "input.{i}: input items of type `{other}` are not supported; send message, function_call, \
                     function_call_output or reasoning items"
                ));
            }
        }
    }
    Ok(out)
}

/// The assistant message that assistant items are gathered into: the last
/// message if it is one still open for them, else a new one (carrying any
/// reasoning that came before it).
fn assistant<'a>(out: &'a mut Vec<Value>, reasoning: &mut Option<(String, Vec<Value>)>) -> &'a mut Value {
    let open = out.last().is_some_and(|m| m["role"] == "assistant") && reasoning.is_none();
    if !open {
        let mut m = json!({ "role": "assistant", "content": Value::Null });
        if let Some((text, blocks)) = reasoning.take() {
            if !text.is_empty() {
                m["reasoning_content"] = Value::String(text);
            }
            if !blocks.is_empty() {
                m["thinking_blocks"] = Value::Array(blocks);
            }
        }
        out.push(m);
    }
    let last = out.len() - 1;
    &mut out[last]
}

fn str_field<'a>(o: &'a Map<String, Value>, field: &str, i: usize) -> Result<&'a str> {
    match o.get(field).and_then(Value::as_str) {
        Some(s) if !s.is_empty() => Ok(s),
        _ => refuse(format!("input.{i}: `{field}` is required and must be a string")),
    }
}

/// A message item's content as hub content (a string or hub parts).
fn message_content(i: usize, role: &str, content: Option<&Value>) -> Result<Value> {
    let parts = match content {
        Some(Value::String(s)) => return Ok(Value::String(s.clone())),
        Some(Value::Array(parts)) => parts,
        _ => return refuse(format!("input.{i}: `content` must be a string or an array of content parts")),
    };
    let mut out = Vec::with_capacity(parts.len());
    for (j, p) in parts.iter().enumerate() {
        match p.get("type").and_then(Value::as_str) {
            Some("input_text" | "output_text" | "text") => {
                let Some(text) = p.get("text").and_then(Value::as_str) else {
                    return refuse(format!("input.{i}.content.{j}: a text part needs `text`"));
                };
                out.push(json!({ "type": "text", "text": text }));
            }
            Some("refusal") => {
                let text = p.get("refusal").and_then(Value::as_str).unwrap_or("");
                out.push(json!({ "type": "text", "text": text }));
            }
            Some("input_image") if role != "assistant" => {
                let Some(url) = p.get("image_url").and_then(Value::as_str) else {
                    return refuse(format!(
                        "input.{i}.content.{j}: an input_image needs `image_url` (a URL or a data: URL); \
                         `file_id` images are not supported"
                    ));
                };
                let mut image = json!({ "url": url });
                if let Some(d) = p.get("detail").filter(|d| d.is_string()) {
                    image["detail"] = d.clone();
                }
                out.push(json!({ "type": "image_url", "image_url": image }));
            }
            Some(other) => {
                return refuse(format!(
                    "input.{i}.content.{j}: content parts of type `{other}` are not supported here; \
                     send input_text or input_image"
                ));
            }
            None => return refuse(format!("input.{i}.content.{j}: a content part needs a `type`")),
        }
    }
    Ok(Value::Array(out))
}

/// `text.format` as chat's `response_format` (`None` for plain text).
fn response_format(format: &Value) -> Result<Option<Value>> {
    match format.get("type").and_then(Value::as_str) {
        Some("text") => Ok(None),
        Some("json_object") => Ok(Some(json!({ "type": "json_object" }))),
        Some("json_schema") => {
            let Some(schema) = format.get("schema").filter(|s| s.is_object()) else {
                return refuse("`text.format` of type json_schema needs `schema` (an object)");
            };
            let mut js = json!({
                "name": format.get("name").and_then(Value::as_str).unwrap_or("response"),
                "schema": schema,
            });
            for k in ["strict", "description"] {
                if let Some(v) = format.get(k).filter(|v| !v.is_null()) {
                    js[k] = v.clone();
                }
            }
            Ok(Some(json!({ "type": "json_schema", "json_schema": js })))
        }
        _ => refuse("`text.format.type` must be text, json_object or json_schema"),
    }
}

/// A Responses tool as a chat tool. Only function tools can be carried to
/// every provider; built-in tools run inside OpenAI's own service.
fn tool((i, t): (usize, &Value)) -> Result<Value> {
    match t.get("type").and_then(Value::as_str) {
        Some("function") => {
            let Some(name) = t.get("name").and_then(Value::as_str) else {
                return refuse(format!("tools.{i}: a function tool needs `name`"));
            };
            let mut f = json!({ "name": name });
            for k in ["description", "parameters", "strict"] {
                if let Some(v) = t.get(k).filter(|v| !v.is_null()) {
                    f[k] = v.clone();
                }
            }
            Ok(json!({ "type": "function", "function": f }))
        }
        Some(other) => refuse(format!(
            "tools.{i}: tools of type `{other}` are not supported through the gateway; declare function tools"
        )),
        None => refuse(format!("tools.{i}: a tool needs a `type`")),
    }
}

fn tool_choice(choice: &Value) -> Result<Value> {
    match choice {
        Value::String(s) if matches!(s.as_str(), "auto" | "none" | "required") => Ok(choice.clone()),
        Value::Object(o) if o.get("type").and_then(Value::as_str) == Some("function") => {
            let Some(name) = o.get("name").and_then(Value::as_str) else {
                return refuse("`tool_choice` of type function needs `name`");
            };
            Ok(json!({ "type": "function", "function": { "name": name } }))
        }
        _ => refuse("`tool_choice` must be auto, none, required or {\"type\": \"function\", \"name\": …}"),
    }
}

/// Thinking blocks sealed into a reasoning item's `encrypted_content`.
pub fn seal(blocks: &[Value]) -> String {
    format!("{SEALED}{}", hex::encode(Value::Array(blocks.to_vec()).to_string()))
}

/// The blocks back; anything this gateway did not seal carries none.
fn unseal(s: &str) -> Vec<Value> {
    s.strip_prefix(SEALED)
        .and_then(|h| hex::decode(h).ok())
        .and_then(|b| serde_json::from_slice::<Vec<Value>>(&b).ok())
        .unwrap_or_default()
}

/// What a Responses answer says about the request besides its output:
/// the request's own settings, echoed as OpenAI does.
pub struct Echo<'a> {
    pub id: &'a str,
    pub created_at: u64,
    pub req: &'a Value,
}

impl Echo<'_> {
    /// The response object around `output`.
    pub fn response(&self, model: &str, status: &str, output: Vec<Value>, usage: Option<Tokens>) -> Value {
        let r = self.req;
        let get = |k: &str| r.get(k).cloned().unwrap_or(Value::Null);
        let or = |k: &str, d: Value| r.get(k).filter(|v| !v.is_null()).cloned().unwrap_or(d);
        let incomplete = match status {
            "incomplete:length" => Some("max_output_tokens"),
            "incomplete:content_filter" => Some("content_filter"),
            _ => None,
        };
        let status = status.split(':').next().unwrap_or(status);
        json!({
            "id": self.id,
            "object": "response",
            "created_at": self.created_at,
            "status": status,
            "background": false,
            "error": Value::Null,
            "incomplete_details": incomplete.map(|reason| json!({ "reason": reason })),
            "instructions": get("instructions"),
            "max_output_tokens": get("max_output_tokens"),
            "max_tool_calls": get("max_tool_calls"),
            "model": model,
            "output": output,
            "parallel_tool_calls": or("parallel_tool_calls", Value::Bool(true)),
            "previous_response_id": get("previous_response_id"),
            "reasoning": json!({
                "effort": r.pointer("/reasoning/effort").cloned().unwrap_or(Value::Null),
                "summary": r.pointer("/reasoning/summary").cloned().unwrap_or(Value::Null),
            }),
            "service_tier": or("service_tier", json!("default")),
            "store": or("store", Value::Bool(true)),
            "temperature": or("temperature", json!(1.0)),
            "text": or("text", json!({ "format": { "type": "text" } })),
            "tool_choice": or("tool_choice", json!("auto")),
            "tools": or("tools", json!([])),
            "top_logprobs": or("top_logprobs", json!(0)),
            "top_p": or("top_p", json!(1.0)),
            "truncation": or("truncation", json!("disabled")),
            "usage": usage.map(usage_object),
            "user": get("user"),
            "metadata": or("metadata", json!({})),
        })
    }
}

/// A Responses usage object as hub tokens.
pub fn tokens(u: &Value) -> Tokens {
    let n = |p: &str| u.pointer(p).and_then(Value::as_u64).unwrap_or(0);
    let cached = n("/input_tokens_details/cached_tokens");
    Tokens {
        input: n("/input_tokens").saturating_sub(cached),
        cache_read: cached,
        cache_write: 0,
        output: n("/output_tokens"),
        reasoning: n("/output_tokens_details/reasoning_tokens"),
    }
}

/// Hub tokens as the Responses usage object.
pub fn usage_object(t: Tokens) -> Value {
    let input = t.input + t.cache_read + t.cache_write;
    json!({
        "input_tokens": input,
        "input_tokens_details": { "cached_tokens": t.cache_read },
        "output_tokens": t.output,
        "output_tokens_details": { "reasoning_tokens": t.reasoning },
        "total_tokens": input + t.output,
    })
}

/// The status a hub finish reason stands for (`incomplete:<why>` carries
/// the reason to `Echo::response`).
pub fn status(finish: Option<&str>) -> &'static str {
    match finish {
        Some("length") => "incomplete:length",
        Some("content_filter") => "incomplete:content_filter",
        _ => "completed",
    }
}

/// Output items of one hub assistant message, in the order a Responses
/// answer lists them: reasoning, the message, then function calls.
pub fn output_items(message: &Value, ids: &mut impl FnMut(&str) -> String) -> Vec<Value> {
    let mut out = Vec::new();
    let reasoning = message.get("reasoning_content").and_then(Value::as_str).unwrap_or("");
    let blocks = message.get("thinking_blocks").and_then(Value::as_array).filter(|b| !b.is_empty());
    if !reasoning.is_empty() || blocks.is_some() {
        out.push(reasoning_item(&ids("rs"), reasoning, blocks.map(Vec::as_slice)));
    }
    let text = super::content_text(message.get("content"));
    let refusal = message.get("refusal").and_then(Value::as_str).filter(|r| !r.is_empty());
    if !text.is_empty() || refusal.is_some() {
        let part = match refusal {
            Some(r) if text.is_empty() => json!({ "type": "refusal", "refusal": r }),
            _ => output_text(&text),
        };
        out.push(json!({
            "type": "message", "id": ids("msg"), "status": "completed", "role": "assistant", "content": [part],
        }));
    }
    for c in message.get("tool_calls").and_then(Value::as_array).into_iter().flatten() {
        out.push(function_call(
            &ids("fc"),
            c.get("id").and_then(Value::as_str).unwrap_or(""),
            c.pointer("/function/name").and_then(Value::as_str).unwrap_or(""),
            c.pointer("/function/arguments").and_then(Value::as_str).unwrap_or(""),
            "completed",
        ));
    }
    out
}

pub fn output_text(text: &str) -> Value {
    json!({ "type": "output_text", "text": text, "annotations": [], "logprobs": [] })
}

pub fn function_call(id: &str, call_id: &str, name: &str, arguments: &str, status: &str) -> Value {
    json!({ "type": "function_call", "id": id, "call_id": call_id, "name": name, "arguments": arguments, "status": status })
}

pub fn reasoning_item(id: &str, summary: &str, blocks: Option<&[Value]>) -> Value {
    let mut item = json!({
        "type": "reasoning", "id": id,
        "summary": if summary.is_empty() { json!([]) } else { json!([{ "type": "summary_text", "text": summary }]) },
    });
    if let Some(b) = blocks.filter(|b| !b.is_empty()) {
        item["encrypted_content"] = Value::String(seal(b));
    }
    item
}

/// A whole hub completion as a Responses object, plus the assistant
/// message (as a hub message) a later turn continues from.
pub fn from_hub(hub: &Value, echo: &Echo<'_>, ids: &mut impl FnMut(&str) -> String) -> (Value, Value) {
    let message = hub.pointer("/choices/0/message").cloned().unwrap_or_else(|| json!({ "role": "assistant" }));
    let finish = hub.pointer("/choices/0/finish_reason").and_then(Value::as_str);
    let usage = hub.get("usage").filter(|u| u.is_object()).map(Tokens::from_openai);
    let model = hub.get("model").and_then(Value::as_str).or_else(|| echo.req.get("model").and_then(Value::as_str));
    let output = output_items(&message, ids);
    (echo.response(model.unwrap_or(""), status(finish), output, usage), stored_message(&message))
}

/// The assistant message as kept for a later turn: only what a provider
/// may be sent back.
pub fn stored_message(m: &Value) -> Value {
    let mut out = json!({ "role": "assistant", "content": m.get("content").cloned().unwrap_or(Value::Null) });
    for k in ["tool_calls", "reasoning_content", "thinking_blocks"] {
        if let Some(v) = m.get(k).filter(|v| !v.is_null()) {
            out[k] = v.clone();
        }
    }
    out
}

/// The input items of a stored response, for `GET /v1/responses/{id}/input_items`.
pub fn input_items(req: &Value, ids: &mut impl FnMut(&str) -> String) -> Vec<Value> {
    match req.get("input") {
        Some(Value::String(s)) => vec![json!({
            "type": "message", "id": ids("msg"), "role": "user", "status": "completed",
            "content": [{ "type": "input_text", "text": s }],
        })],
        Some(Value::Array(items)) => items
            .iter()
            .map(|it| {
                let mut it = it.clone();
                if let Some(o) = it.as_object_mut() {
                    o.entry("type").or_insert_with(|| json!("message"));
                    if o.get("type") == Some(&json!("message")) {
                        if let Some(Value::String(s)) = o.get("content").cloned() {
                            o.insert("content".into(), json!([{ "type": "input_text", "text": s }]));
                        }
                    }
                    if !o.contains_key("id") {
                        let prefix = if o.get("type") == Some(&json!("message")) { "msg" } else { "item" };
                        o.insert("id".into(), Value::String(ids(prefix)));
                    }
                }
                it
            })
            .collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests;
