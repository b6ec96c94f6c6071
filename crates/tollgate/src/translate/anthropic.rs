//! Hub (OpenAI chat) ⇄ Anthropic Messages, for providers of type
//! `anthropic` and Anthropic models on Vertex.

use serde_json::{Map, Value, json};

use super::hub::{self, Chunks, Tokens};
use super::{Result, Settings, StreamFail, ToOpenAiStream, UpEvent, refuse};

/// OpenAI `reasoning_effort` as an Anthropic thinking budget.
fn effort_budget(effort: &str) -> Option<u64> {
    match effort {
        "minimal" | "low" => Some(1024),
        "medium" => Some(4096),
        "high" => Some(16384),
        _ => None,
    }
}

/// A hub request as an Anthropic Messages request for `model`.
pub fn request(req: &Value, model: &str, s: &Settings) -> Result<Value> {
    super::refuse_n(req, "Anthropic")?;
    if let Some(rf) = req.get("response_format").and_then(|r| r.get("type")).and_then(Value::as_str)
        && rf != "text"
    {
        return refuse(format!(
            "`response_format` {rf} is not supported by Anthropic models; describe the JSON you want in the prompt \
             or use a tool with an input schema"
        ));
    }
    let mut out = Map::new();
    out.insert("model".into(), json!(model));
    let (system, messages) = messages(req)?;
    if !system.is_empty() {
        out.insert("system".into(), Value::Array(system));
    }
    out.insert("messages".into(), Value::Array(messages));
    let mut max = super::max_tokens(req).unwrap_or(s.default_max_tokens);
    let thinking = match (req.get("thinking"), req.get("reasoning_effort").and_then(Value::as_str)) {
        (Some(t @ Value::Object(_)), _) => Some(t.clone()),
        (_, Some(e)) => effort_budget(e).map(|b| json!({ "type": "enabled", "budget_tokens": b })),
        _ => None,
    };
    if let Some(t) = thinking {
        // The thinking budget is part of max_tokens: keep room for the answer.
        if let Some(b) = t.get("budget_tokens").and_then(Value::as_u64)
            && max <= b
        {
            max = b + s.default_max_tokens;
        }
        out.insert("thinking".into(), t);
    }
    out.insert("max_tokens".into(), json!(max));
    if let Some(t) = super::temperature(req.get("temperature"), 1.0, s.temperature, "Anthropic")? {
        out.insert("temperature".into(), t);
    }
    for k in ["top_p", "top_k"] {
        if let Some(v) = req.get(k).filter(|v| !v.is_null()) {
            out.insert(k.into(), v.clone());
        }
    }
    if let Some(stop) = super::stop_list(req.get("stop"))? {
        out.insert("stop_sequences".into(), Value::Array(stop));
    }
    if req.get("stream").and_then(Value::as_bool) == Some(true) {
        out.insert("stream".into(), json!(true));
    }
    if let Some(user) = req.get("user").and_then(Value::as_str) {
        out.insert("metadata".into(), json!({ "user_id": user }));
    }
    if let Some(tools) = req.get("tools").and_then(Value::as_array) {
        out.insert("tools".into(), Value::Array(tools.iter().map(tool).collect::<Result<_>>()?));
    }
    let parallel_off = req.get("parallel_tool_calls").and_then(Value::as_bool) == Some(false);
    let mut choice = match req.get("tool_choice") {
        None | Some(Value::Null) => None,
        Some(Value::String(c)) => Some(match c.as_str() {
            "auto" => json!({ "type": "auto" }),
            "none" => json!({ "type": "none" }),
            "required" => json!({ "type": "any" }),
            other => return refuse(format!("`tool_choice` \"{other}\" is not one of auto, none, required")),
        }),
        Some(c) => match c.pointer("/function/name").and_then(Value::as_str) {
            Some(name) => Some(json!({ "type": "tool", "name": name })),
            None => return refuse("`tool_choice` must be auto, none, required or {type: function, function: {name}}"),
        },
    };
    if parallel_off && out.contains_key("tools") {
        let c = choice.get_or_insert_with(|| json!({ "type": "auto" }));
        if c["type"] != "none" {
            c["disable_parallel_tool_use"] = json!(true);
        }
    }
    if let Some(c) = choice {
        out.insert("tool_choice".into(), c);
    }
    Ok(Value::Object(out))
}

fn tool(t: &Value) -> Result<Value> {
    let Some(f) = t.get("function") else {
        return refuse("each tool must be {type: function, function: {name, parameters}}");
    };
    let Some(name) = f.get("name").and_then(Value::as_str) else { return refuse("each tool needs a function name") };
    let mut out = json!({
        "name": name,
        "input_schema": f.get("parameters").cloned().unwrap_or_else(|| json!({ "type": "object", "properties": {} })),
    });
    if let Some(d) = f.get("description").and_then(Value::as_str) {
        out["description"] = json!(d);
    }
    if let Some(cc) = t.get("cache_control") {
        out["cache_control"] = cc.clone();
    }
    Ok(out)
}

/// The hub messages as Anthropic's top-level system blocks and alternating
/// user/assistant messages. Tool results become `tool_result` blocks in a
/// user turn; consecutive turns of one role are merged, so parallel tool
/// results share one user message as Anthropic requires.
fn messages(req: &Value) -> Result<(Vec<Value>, Vec<Value>)> {
    let Some(list) = req.get("messages").and_then(Value::as_array) else {
        return refuse("`messages` must be an array");
    };
    let mut system = Vec::new();
    let mut out: Vec<(String, Vec<Value>)> = Vec::new();
    for m in list {
        let role = m.get("role").and_then(Value::as_str).unwrap_or("");
        let (role, blocks) = match role {
            "system" | "developer" => {
                system.extend(text_blocks(m.get("content"))?);
                continue;
            }
            "user" => ("user", user_blocks(m.get("content"))?),
            "assistant" => ("assistant", assistant_blocks(m)?),
            "tool" | "function" => {
                let Some(id) = m.get("tool_call_id").and_then(Value::as_str) else {
                    return refuse("a `tool` message needs the `tool_call_id` of the call it answers");
                };
                let content = match m.get("content") {
                    Some(Value::String(s)) => json!(s),
                    Some(Value::Array(_)) => Value::Array(text_blocks(m.get("content"))?),
                    _ => json!(""),
                };
                ("user", vec![json!({ "type": "tool_result", "tool_use_id": id, "content": content })])
            }
            other => return refuse(format!("message role `{other}` is not one of system, user, assistant, tool")),
        };
        if blocks.is_empty() {
            continue;
        }
        match out.last_mut() {
            Some((r, b)) if r == role => b.extend(blocks),
            _ => out.push((role.to_string(), blocks)),
        }
    }
    let messages = out.into_iter().map(|(role, content)| json!({ "role": role, "content": content })).collect();
    Ok((system, messages))
}

fn text_blocks(content: Option<&Value>) -> Result<Vec<Value>> {
    match content {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) if s.is_empty() => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![json!({ "type": "text", "text": s })]),
        Some(Value::Array(parts)) => parts.iter().map(part).collect(),
        Some(_) => refuse("message `content` must be a string or an array of parts"),
    }
}

fn user_blocks(content: Option<&Value>) -> Result<Vec<Value>> {
    text_blocks(content)
}

/// One OpenAI content part as an Anthropic block; `cache_control` is kept.
fn part(p: &Value) -> Result<Value> {
    let mut b = match p.get("type").and_then(Value::as_str) {
        Some("text") => json!({ "type": "text", "text": p.get("text").and_then(Value::as_str).unwrap_or("") }),
        Some("image_url") => {
            let url = p.pointer("/image_url/url").and_then(Value::as_str).unwrap_or("");
            match super::data_url(url) {
                Some((media, data)) => {
                    json!({ "type": "image", "source": { "type": "base64", "media_type": media, "data": data } })
                }
                None if url.starts_with("http://") || url.starts_with("https://") => {
                    json!({ "type": "image", "source": { "type": "url", "url": url } })
                }
                None => return refuse("an image_url must be an http(s) URL or a base64 data URL"),
            }
        }
        Some("file") => {
            let data = p.pointer("/file/file_data").and_then(Value::as_str).and_then(super::data_url);
            match data {
                Some((media, data)) => {
                    json!({ "type": "document", "source": { "type": "base64", "media_type": media, "data": data } })
                }
                None => return refuse("a file part must carry `file_data` as a base64 data URL for Anthropic models"),
            }
        }
        Some(other) => return refuse(format!("content part type `{other}` is not supported by Anthropic models")),
        None => return refuse("each content part needs a `type`"),
    };
    if let Some(cc) = p.get("cache_control") {
        b["cache_control"] = cc.clone();
    }
    Ok(b)
}

fn assistant_blocks(m: &Value) -> Result<Vec<Value>> {
    let mut blocks = Vec::new();
    // Thinking comes first, exactly as the model produced it: Anthropic
    // checks the signature when a tool-use turn is replayed.
    if let Some(tb) = m.get("thinking_blocks").and_then(Value::as_array) {
        for b in tb {
            match b.get("type").and_then(Value::as_str) {
                Some("thinking") if b.get("signature").and_then(Value::as_str).is_some_and(|s| !s.is_empty()) => {
                    blocks
                        .push(json!({ "type": "thinking", "thinking": b.get("thinking").cloned().unwrap_or(json!("")),
                        "signature": b["signature"] }));
                }
                Some("redacted_thinking") => {
                    blocks.push(
                        json!({ "type": "redacted_thinking", "data": b.get("data").cloned().unwrap_or(json!("")) }),
                    );
                }
                // Thinking without a signature came from another provider: Anthropic would refuse it.
                _ => {}
            }
        }
    }
    blocks.extend(text_blocks(m.get("content"))?);
    if let Some(calls) = m.get("tool_calls").and_then(Value::as_array) {
        for c in calls {
            let Some(id) = c.get("id").and_then(Value::as_str) else {
                return refuse("each tool call in an assistant message needs its `id`");
            };
            let name = c.pointer("/function/name").and_then(Value::as_str).unwrap_or("");
            let input = super::arguments_object(c.pointer("/function/arguments"))?;
            blocks.push(json!({ "type": "tool_use", "id": id, "name": name, "input": input }));
        }
    }
    Ok(blocks)
}

pub fn finish_reason(stop: &str) -> &'static str {
    match stop {
        "max_tokens" | "model_context_window_exceeded" => "length",
        "tool_use" => "tool_calls",
        "refusal" => "content_filter",
        _ => "stop",
    }
}

pub fn tokens(u: &Value) -> Tokens {
    let n = |k: &str| u.get(k).and_then(Value::as_u64).unwrap_or(0);
    Tokens {
        input: n("input_tokens"),
        cache_read: n("cache_read_input_tokens"),
        cache_write: n("cache_creation_input_tokens"),
        output: n("output_tokens"),
        reasoning: 0,
    }
}

/// Anthropic content blocks (a provider's answer, or an assistant turn a
/// client replays on `/v1/messages`) as one hub assistant message: text
/// joined, thinking as `reasoning_content` with the signed blocks kept
/// intact in `thinking_blocks`, `tool_use` as tool calls with their ids.
/// `strict` (a client's request): a block the hub cannot carry, a block
/// without a type or a `tool_use` without its id is refused; otherwise
/// (a provider's answer) such blocks are skipped.
pub fn blocks_to_hub(blocks: &[Value], strict: bool) -> Result<Value> {
    let (mut text, mut reasoning, mut thinking, mut calls) = (String::new(), String::new(), Vec::new(), Vec::new());
    for b in blocks {
        match b.get("type").and_then(Value::as_str) {
            Some("text") => text.push_str(b.get("text").and_then(Value::as_str).unwrap_or("")),
            Some("thinking") => {
                reasoning.push_str(b.get("thinking").and_then(Value::as_str).unwrap_or(""));
                thinking.push(b.clone());
            }
            Some("redacted_thinking") => thinking.push(b.clone()),
            Some("tool_use") => {
                let id = b.get("id").and_then(Value::as_str);
                if strict && id.is_none() {
                    return refuse("a tool_use block needs its `id`");
                }
                calls.push(hub::tool_call(
                    id.unwrap_or(""),
                    b.get("name").and_then(Value::as_str).unwrap_or(""),
                    b.get("input").map_or_else(|| "{}".into(), Value::to_string),
                ));
            }
            Some(other) if strict => {
                return refuse(format!("assistant content block type `{other}` is not supported for this model"));
            }
            None if strict => return refuse("each content block needs a `type`"),
            _ => {}
        }
    }
    Ok(hub::message(text, reasoning, thinking, calls))
}

/// An Anthropic message as a hub `chat.completion`.
pub fn response(resp: &Value) -> Result<Value> {
    let Some(content) = resp.get("content").and_then(Value::as_array) else {
        return refuse("the provider's answer has no `content` array");
    };
    let finish = finish_reason(resp.get("stop_reason").and_then(Value::as_str).unwrap_or("end_turn"));
    Ok(hub::completion(
        resp.get("id").and_then(Value::as_str).unwrap_or("msg"),
        resp.get("model").and_then(Value::as_str).unwrap_or(""),
        blocks_to_hub(content, false)?,
        finish,
        resp.get("usage").map(tokens),
    ))
}

/// Anthropic's stream (message_start … message_stop) as hub chunks.
pub struct Stream {
    chunks: Option<Chunks>,
    model: String,
    include_usage: bool,
    /// Anthropic block index → (OpenAI tool-call index) for tool_use blocks.
    tools: Vec<(u64, usize)>,
    /// Thinking text so far in the current block, for the signature chunk.
    thinking: String,
    tokens: Tokens,
    finish: Option<&'static str>,
    stopped: bool,
}

impl Stream {
    pub fn new(model: &str, include_usage: bool) -> Stream {
        Stream {
            chunks: None,
            model: model.to_string(),
            include_usage,
            tools: Vec::new(),
            thinking: String::new(),
            tokens: Tokens::default(),
            finish: None,
            stopped: false,
        }
    }

    fn chunks(&mut self) -> &Chunks {
        let (model, usage) = (self.model.clone(), self.include_usage);
        self.chunks.get_or_insert_with(|| Chunks::new("msg".into(), model, usage))
    }
}

pub fn stream_error(v: &Value) -> StreamFail {
    let kind = v.pointer("/error/type").and_then(Value::as_str).unwrap_or("api_error");
    let message =
        v.pointer("/error/message").and_then(Value::as_str).unwrap_or("error event in the stream").to_string();
    StreamFail::Status { status: error_status(kind), message }
}

/// Anthropic's error types as the statuses they come with.
pub fn error_status(kind: &str) -> u16 {
    match kind {
        "invalid_request_error" => 400,
        "authentication_error" => 401,
        "permission_error" => 403,
        "not_found_error" => 404,
        "request_too_large" => 413,
        "rate_limit_error" => 429,
        "overloaded_error" => 529,
        _ => 500,
    }
}

impl ToOpenAiStream for Stream {
    fn event(&mut self, ev: UpEvent<'_>, out: &mut Vec<u8>) -> std::result::Result<(), StreamFail> {
        let UpEvent::Sse { data, .. } = ev else { return Ok(()) };
        let v: Value = serde_json::from_slice(data)
            .map_err(|e| StreamFail::Broken(format!("a stream event is not valid JSON: {e}")))?;
        match v.get("type").and_then(Value::as_str).unwrap_or("") {
            "message_start" => {
                let id = v.pointer("/message/id").and_then(Value::as_str).unwrap_or("msg").to_string();
                if let Some(m) = v.pointer("/message/model").and_then(Value::as_str) {
                    self.model = m.to_string();
                }
                if let Some(u) = v.pointer("/message/usage") {
                    self.tokens = tokens(u);
                }
                let c = Chunks::new(id, self.model.clone(), self.include_usage);
                c.delta(out, json!({ "role": "assistant", "content": "" }), None);
                self.chunks = Some(c);
            }
            "content_block_start" => {
                let index = v.get("index").and_then(Value::as_u64).unwrap_or(0);
                let block = v.get("content_block").cloned().unwrap_or(Value::Null);
                match block.get("type").and_then(Value::as_str) {
                    Some("tool_use") => {
                        let n = self.tools.len();
                        self.tools.push((index, n));
                        let call = json!([{ "index": n, "id": block["id"], "type": "function",
                            "function": { "name": block["name"], "arguments": "" } }]);
                        self.chunks().delta(out, json!({ "tool_calls": call }), None);
                    }
                    Some("thinking") => self.thinking.clear(),
                    Some("redacted_thinking") => {
                        self.chunks().delta(out, json!({ "thinking_blocks": [block] }), None);
                    }
                    _ => {}
                }
            }
            "content_block_delta" => {
                let index = v.get("index").and_then(Value::as_u64).unwrap_or(0);
                let d = &v["delta"];
                match d.get("type").and_then(Value::as_str) {
                    Some("text_delta") => {
                        self.chunks().delta(out, json!({ "content": d["text"] }), None);
                    }
                    // Anthropic opens a tool's input with an empty fragment: nothing to send.
                    Some("input_json_delta") if d["partial_json"] == "" => {}
                    Some("input_json_delta") => {
                        let Some(&(_, n)) = self.tools.iter().find(|(i, _)| *i == index) else {
                            return Err(StreamFail::Broken(
                                "input_json_delta for a block that is not a tool_use".into(),
                            ));
                        };
                        let call = json!([{ "index": n, "function": { "arguments": d["partial_json"] } }]);
                        self.chunks().delta(out, json!({ "tool_calls": call }), None);
                    }
                    Some("thinking_delta") => {
                        let t = d.get("thinking").and_then(Value::as_str).unwrap_or("");
                        self.thinking.push_str(t);
                        self.chunks().delta(out, json!({ "reasoning_content": t }), None);
                    }
                    Some("signature_delta") => {
                        let block =
                            json!({ "type": "thinking", "thinking": self.thinking, "signature": d["signature"] });
                        self.chunks().delta(out, json!({ "thinking_blocks": [block] }), None);
                    }
                    _ => {}
                }
            }
            "message_delta" => {
                if let Some(r) = v.pointer("/delta/stop_reason").and_then(Value::as_str) {
                    self.finish = Some(finish_reason(r));
                }
                if let Some(u) = v.get("usage") {
                    let later = tokens(u);
                    self.tokens.output = later.output;
                    // Newer streams repeat the input counts here; keep them when given.
                    if u.get("input_tokens").is_some() {
                        self.tokens.input = later.input;
                        self.tokens.cache_read = later.cache_read;
                        self.tokens.cache_write = later.cache_write;
                    }
                }
            }
            "message_stop" => {
                let finish = self.finish.unwrap_or("stop");
                let tokens = self.tokens;
                let c = self.chunks();
                c.delta(out, json!({}), Some(finish));
                c.close(out, Some(tokens));
                self.stopped = true;
            }
            "error" => return Err(stream_error(&v)),
            _ => {} // ping, content_block_stop and future event types
        }
        Ok(())
    }

    fn end(&mut self, _out: &mut Vec<u8>) -> std::result::Result<(), StreamFail> {
        if self.stopped {
            Ok(())
        } else {
            Err(StreamFail::Broken("the stream ended before message_stop; the answer is incomplete".into()))
        }
    }
}

/// The hub usage an Anthropic stream reports, for metering streams relayed
/// in Anthropic's own shape (`/v1/messages` to an Anthropic provider).
pub fn stream_usage(data: &[u8], acc: &mut Tokens) -> bool {
    let Ok(v) = serde_json::from_slice::<Value>(data) else { return false };
    match v.get("type").and_then(Value::as_str) {
        Some("message_start") => {
            if let Some(u) = v.pointer("/message/usage") {
                *acc = tokens(u);
            }
            false
        }
        Some("message_delta") => {
            if let Some(u) = v.get("usage") {
                acc.output = tokens(u).output;
            }
            true
        }
        _ => false,
    }
}

/// An Anthropic stream relayed to an Anthropic client as it is: each event
/// re-emitted unchanged, the end checked (`message_stop`), and an `error`
/// event turned into a failure (before the first event: a fallback).
#[derive(Default)]
pub struct Native {
    stopped: bool,
}

impl ToOpenAiStream for Native {
    fn event(&mut self, ev: UpEvent<'_>, out: &mut Vec<u8>) -> std::result::Result<(), StreamFail> {
        let UpEvent::Sse { event, data } = ev else { return Ok(()) };
        if event == Some("error") || data.starts_with(br#"{"type":"error""#) {
            let v: Value = serde_json::from_slice(data).unwrap_or(Value::Null);
            return Err(stream_error(&v));
        }
        if event == Some("message_stop") {
            self.stopped = true;
        }
        super::reemit(event, data, out);
        Ok(())
    }

    fn end(&mut self, _out: &mut Vec<u8>) -> std::result::Result<(), StreamFail> {
        if self.stopped {
            Ok(())
        } else {
            Err(StreamFail::Broken("the stream ended before message_stop; the answer is incomplete".into()))
        }
    }
}
