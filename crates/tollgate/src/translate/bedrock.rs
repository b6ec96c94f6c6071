//! Hub (OpenAI chat) ⇄ Bedrock Converse / ConverseStream.

use serde_json::{Map, Value, json};

use super::hub::{self, Chunks, Tokens};
use super::{Result, Settings, StreamFail, ToOpenAiStream, UpEvent, refuse};

pub fn request(req: &Value, s: &Settings) -> Result<Value> {
    super::refuse_n(req, "Bedrock")?;
    if let Some(rf) = req.pointer("/response_format/type").and_then(Value::as_str).filter(|t| *t != "text") {
        return refuse(format!(
            "`response_format` {rf} is not supported by Bedrock Converse; use a tool with an input schema"
        ));
    }
    let Some(list) = req.get("messages").and_then(Value::as_array) else {
        return refuse("`messages` must be an array");
    };
    let mut system = Vec::new();
    let mut messages: Vec<(String, Vec<Value>)> = Vec::new();
    for m in list {
        let (role, blocks) = match m.get("role").and_then(Value::as_str).unwrap_or("") {
            "system" | "developer" => {
                let t = super::content_text(m.get("content"));
                if !t.is_empty() {
                    system.push(json!({ "text": t }));
                }
                continue;
            }
            "user" => ("user", blocks(m.get("content"))?),
            "assistant" => ("assistant", assistant(m)?),
            "tool" | "function" => {
                let Some(id) = m.get("tool_call_id").and_then(Value::as_str) else {
                    return refuse("a `tool` message needs the `tool_call_id` of the call it answers");
                };
                let text = super::content_text(m.get("content"));
                let content = match serde_json::from_str::<Value>(&text) {
                    Ok(v @ Value::Object(_)) => json!([{ "json": v }]),
                    _ => json!([{ "text": text }]),
                };
                ("user", vec![json!({ "toolResult": { "toolUseId": id, "content": content } })])
            }
            other => return refuse(format!("message role `{other}` is not one of system, user, assistant, tool")),
        };
        if blocks.is_empty() {
            continue;
        }
        match messages.last_mut() {
            Some((r, b)) if r == role => b.extend(blocks),
            _ => messages.push((role.to_string(), blocks)),
        }
    }
    let mut out = Map::new();
    out.insert(
        "messages".into(),
        Value::Array(messages.into_iter().map(|(role, content)| json!({ "role": role, "content": content })).collect()),
    );
    if !system.is_empty() {
        out.insert("system".into(), Value::Array(system));
    }
    let mut inf = Map::new();
    inf.insert("maxTokens".into(), json!(super::max_tokens(req).unwrap_or(s.default_max_tokens)));
    if let Some(t) = super::temperature(req.get("temperature"), 1.0, s.temperature, "Bedrock")? {
        inf.insert("temperature".into(), t);
    }
    if let Some(p) = req.get("top_p").filter(|v| !v.is_null()) {
        inf.insert("topP".into(), p.clone());
    }
    if let Some(stop) = super::stop_list(req.get("stop"))? {
        inf.insert("stopSequences".into(), Value::Array(stop));
    }
    out.insert("inferenceConfig".into(), Value::Object(inf));
    let mut extra = Map::new();
    if let Some(k) = req.get("top_k").filter(|v| !v.is_null()) {
        extra.insert("top_k".into(), k.clone());
    }
    let effort = req.get("reasoning_effort").and_then(Value::as_str).and_then(|e| match e {
        "minimal" | "low" => Some(1024),
        "medium" => Some(4096),
        "high" => Some(16384),
        _ => None,
    });
    match (req.get("thinking").filter(|t| t.is_object()), effort) {
        (Some(t), _) => {
            extra.insert("thinking".into(), t.clone());
        }
        (None, Some(b)) => {
            extra.insert("thinking".into(), json!({ "type": "enabled", "budget_tokens": b }));
        }
        _ => {}
    }
    if !extra.is_empty() {
        out.insert("additionalModelRequestFields".into(), Value::Object(extra));
    }
    // Converse has no "none" tool choice: without tools in the history the
    // tools are left out, which means the same; with them Bedrock needs the
    // tool config, and the model may call a tool (a documented caveat).
    let none = req.get("tool_choice").and_then(Value::as_str) == Some("none");
    let history = out["messages"].to_string().contains("\"toolUse\"");
    if let Some(tools) = req.get("tools").and_then(Value::as_array).filter(|t| !t.is_empty() && (!none || history)) {
        let specs: Vec<Value> = tools
            .iter()
            .filter_map(|t| t.get("function"))
            .map(|f| {
                let mut spec = json!({ "name": f.get("name").cloned().unwrap_or(Value::Null),
                    "inputSchema": { "json": f.get("parameters").cloned().unwrap_or(json!({ "type": "object" })) } });
                if let Some(d) = f.get("description") {
                    spec["description"] = d.clone();
                }
                json!({ "toolSpec": spec })
            })
            .collect();
        let mut cfg = json!({ "tools": specs });
        let choice = match req.get("tool_choice") {
            Some(Value::String(c)) if c == "required" => Some(json!({ "any": {} })),
            Some(Value::String(c)) if c == "auto" => Some(json!({ "auto": {} })),
            Some(c @ Value::Object(_)) => c.pointer("/function/name").map(|n| json!({ "tool": { "name": n } })),
            _ => None,
        };
        if let Some(c) = choice {
            cfg["toolChoice"] = c;
        }
        out.insert("toolConfig".into(), cfg);
    }
    Ok(Value::Object(out))
}

fn blocks(content: Option<&Value>) -> Result<Vec<Value>> {
    match content {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) if s.is_empty() => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![json!({ "text": s })]),
        Some(Value::Array(parts)) => parts.iter().map(part).collect(),
        Some(_) => refuse("message `content` must be a string or an array of parts"),
    }
}

fn part(p: &Value) -> Result<Value> {
    match p.get("type").and_then(Value::as_str) {
        Some("text") => Ok(json!({ "text": p.get("text").cloned().unwrap_or(json!("")) })),
        Some("image_url") => {
            let url = p.pointer("/image_url/url").and_then(Value::as_str).unwrap_or("");
            match super::data_url(url) {
                Some((mime, data)) => {
                    let format = mime.strip_prefix("image/").unwrap_or("png");
                    let format = if format == "jpg" { "jpeg" } else { format };
                    Ok(json!({ "image": { "format": format, "source": { "bytes": data } } }))
                }
                None => refuse("Bedrock takes images inline only: send the image as a base64 data URL"),
            }
        }
        Some("file") => match p.pointer("/file/file_data").and_then(Value::as_str).and_then(super::data_url) {
            Some((mime, data)) => {
                let format = mime.rsplit('/').next().unwrap_or("pdf");
                let name = p.pointer("/file/filename").and_then(Value::as_str).unwrap_or("document");
                // Bedrock allows only letters, digits, spaces, hyphens, parentheses and brackets in names.
                let name: String =
                    name.chars().map(|c| if c.is_alphanumeric() || " -()[]".contains(c) { c } else { '-' }).collect();
                Ok(json!({ "document": { "format": format, "name": name, "source": { "bytes": data } } }))
            }
            None => refuse("a file part must carry `file_data` as a base64 data URL for Bedrock"),
        },
        Some(other) => refuse(format!("content part type `{other}` is not supported by Bedrock Converse")),
        None => refuse("each content part needs a `type`"),
    }
}

fn assistant(m: &Value) -> Result<Vec<Value>> {
    let mut out = Vec::new();
    for b in m.get("thinking_blocks").and_then(Value::as_array).into_iter().flatten() {
        match b.get("type").and_then(Value::as_str) {
            Some("thinking") if b.get("signature").and_then(Value::as_str).is_some_and(|s| !s.is_empty()) => {
                out.push(json!({ "reasoningContent": { "reasoningText": { "text": b["thinking"], "signature": b["signature"] } } }));
            }
            Some("redacted_thinking") => out.push(json!({ "reasoningContent": { "redactedContent": b["data"] } })),
            _ => {}
        }
    }
    out.extend(blocks(m.get("content"))?);
    for c in m.get("tool_calls").and_then(Value::as_array).into_iter().flatten() {
        let Some(id) = c.get("id").and_then(Value::as_str) else {
            return refuse("each tool call in an assistant message needs its `id`");
        };
        let input = super::arguments_object(c.pointer("/function/arguments"))?;
        out.push(json!({ "toolUse": { "toolUseId": id, "name": c.pointer("/function/name").cloned().unwrap_or(json!("")), "input": input } }));
    }
    Ok(out)
}

pub fn finish_reason(r: &str) -> &'static str {
    match r {
        "max_tokens" | "model_context_window_exceeded" => "length",
        "tool_use" => "tool_calls",
        "guardrail_intervened" | "content_filtered" => "content_filter",
        _ => "stop",
    }
}

pub fn tokens(u: &Value) -> Tokens {
    let n = |k: &str| u.get(k).and_then(Value::as_u64).unwrap_or(0);
    Tokens {
        input: n("inputTokens"),
        cache_read: n("cacheReadInputTokens"),
        cache_write: n("cacheWriteInputTokens"),
        output: n("outputTokens"),
        reasoning: 0,
    }
}

pub fn response(resp: &Value, model: &str) -> Result<Value> {
    let Some(content) = resp.pointer("/output/message/content").and_then(Value::as_array) else {
        return refuse("the provider's answer has no output message");
    };
    let (mut text, mut reasoning, mut thinking, mut calls) = (String::new(), String::new(), Vec::new(), Vec::new());
    for b in content {
        if let Some(t) = b.get("text").and_then(Value::as_str) {
            text.push_str(t);
        } else if let Some(u) = b.get("toolUse") {
            calls.push(hub::tool_call(
                u.get("toolUseId").and_then(Value::as_str).unwrap_or(""),
                u.get("name").and_then(Value::as_str).unwrap_or(""),
                u.get("input").map_or_else(|| "{}".into(), Value::to_string),
            ));
        } else if let Some(r) = b.get("reasoningContent") {
            if let Some(rt) = r.get("reasoningText") {
                let t = rt.get("text").and_then(Value::as_str).unwrap_or("");
                reasoning.push_str(t);
                thinking.push(json!({ "type": "thinking", "thinking": t, "signature": rt.get("signature").cloned().unwrap_or(json!("")) }));
            } else if let Some(d) = r.get("redactedContent") {
                thinking.push(json!({ "type": "redacted_thinking", "data": d }));
            }
        }
    }
    let finish = finish_reason(resp.get("stopReason").and_then(Value::as_str).unwrap_or("end_turn"));
    Ok(hub::completion(
        &format!("bedrock-{:016x}", fastrand::u64(..)),
        model,
        hub::message(text, reasoning, thinking, calls),
        finish,
        resp.get("usage").map(tokens),
    ))
}

/// Bedrock's exception names as HTTP statuses routing can act on.
pub fn exception_status(kind: &str) -> u16 {
    let k = kind.to_ascii_lowercase();
    if k.starts_with("throttling") {
        429
    } else if k.starts_with("serviceunavailable") {
        503
    } else if k.starts_with("validation") {
        400
    } else if k.starts_with("accessdenied") {
        403
    } else if k.starts_with("resourcenotfound") {
        404
    } else if k.starts_with("modeltimeout") {
        408
    } else if k.starts_with("modelnotready") {
        503
    } else if k.starts_with("modelstreamerror") || k.starts_with("modelerror") {
        424
    } else {
        500
    }
}

pub fn error_message(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    v.get("message").or_else(|| v.get("Message")).and_then(Value::as_str).map(str::to_string)
}

/// ConverseStream events (decoded from the AWS event-stream) as hub chunks.
pub struct Stream {
    chunks: Chunks,
    /// contentBlockIndex → hub tool-call index.
    tools: Vec<(u64, usize)>,
    thinking: String,
    finish: Option<&'static str>,
    tokens: Option<Tokens>,
    closed: bool,
}

impl Stream {
    pub fn new(model: &str, include_usage: bool) -> Stream {
        Stream {
            chunks: Chunks::new(format!("bedrock-{:016x}", fastrand::u64(..)), model.to_string(), include_usage),
            tools: Vec::new(),
            thinking: String::new(),
            finish: None,
            tokens: None,
            closed: false,
        }
    }

    fn close(&mut self, out: &mut Vec<u8>) {
        if let Some(f) = self.finish.filter(|_| !self.closed) {
            self.chunks.delta(out, json!({}), Some(f));
            self.chunks.close(out, self.tokens);
            self.closed = true;
        }
    }
}

impl ToOpenAiStream for Stream {
    fn event(&mut self, ev: UpEvent<'_>, out: &mut Vec<u8>) -> std::result::Result<(), StreamFail> {
        let UpEvent::Aws { message_type, kind, payload } = ev else { return Ok(()) };
        if message_type != "event" {
            let message = error_message(payload).unwrap_or_else(|| format!("{kind} in the stream"));
            return Err(StreamFail::Status { status: exception_status(kind), message: format!("{kind}: {message}") });
        }
        let v: Value = serde_json::from_slice(payload)
            .map_err(|e| StreamFail::Broken(format!("a stream event is not valid JSON: {e}")))?;
        let index = v.get("contentBlockIndex").and_then(Value::as_u64).unwrap_or(0);
        match kind {
            "messageStart" => self.chunks.delta(out, json!({ "role": "assistant", "content": "" }), None),
            "contentBlockStart" => {
                if let Some(t) = v.pointer("/start/toolUse") {
                    let n = self.tools.len();
                    self.tools.push((index, n));
                    let call = json!([{ "index": n, "id": t["toolUseId"], "type": "function",
                        "function": { "name": t["name"], "arguments": "" } }]);
                    self.chunks.delta(out, json!({ "tool_calls": call }), None);
                }
            }
            "contentBlockDelta" => {
                let d = &v["delta"];
                if let Some(t) = d.get("text").and_then(Value::as_str) {
                    self.chunks.delta(out, json!({ "content": t }), None);
                } else if let Some(a) = d.pointer("/toolUse/input").and_then(Value::as_str) {
                    let Some(&(_, n)) = self.tools.iter().find(|(i, _)| *i == index) else {
                        return Err(StreamFail::Broken("toolUse input for a block that never started".into()));
                    };
                    self.chunks.delta(
                        out,
                        json!({ "tool_calls": [{ "index": n, "function": { "arguments": a } }] }),
                        None,
                    );
                } else if let Some(r) = d.get("reasoningContent") {
                    if let Some(t) = r.get("text").and_then(Value::as_str) {
                        self.thinking.push_str(t);
                        self.chunks.delta(out, json!({ "reasoning_content": t }), None);
                    }
                    if let Some(sig) = r.get("signature") {
                        let b = json!({ "type": "thinking", "thinking": self.thinking, "signature": sig });
                        self.thinking.clear();
                        self.chunks.delta(out, json!({ "thinking_blocks": [b] }), None);
                    }
                }
            }
            "messageStop" => {
                self.finish = Some(finish_reason(v.get("stopReason").and_then(Value::as_str).unwrap_or("end_turn")));
            }
            "metadata" => {
                if let Some(u) = v.get("usage") {
                    self.tokens = Some(tokens(u));
                }
                self.close(out);
            }
            _ => {}
        }
        Ok(())
    }

    fn end(&mut self, out: &mut Vec<u8>) -> std::result::Result<(), StreamFail> {
        if self.finish.is_none() {
            return Err(StreamFail::Broken("the stream ended before messageStop; the answer is incomplete".into()));
        }
        self.close(out);
        Ok(())
    }
}

/// Embeddings through InvokeModel: Titan takes one text per call, Cohere a list.
pub fn embed_request(req: &Value, model: &str) -> Result<Value> {
    let inputs: Vec<&str> = match req.get("input") {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(a)) if a.iter().all(Value::is_string) => a.iter().filter_map(Value::as_str).collect(),
        _ => return refuse("`input` must be a string or an array of strings for Bedrock embeddings"),
    };
    if model.starts_with("cohere.") {
        return Ok(json!({ "texts": inputs, "input_type": "search_document" }));
    }
    match inputs.as_slice() {
        [one] => {
            let mut body = json!({ "inputText": one });
            if let Some(d) = req.get("dimensions") {
                body["dimensions"] = d.clone();
            }
            Ok(body)
        }
        _ => refuse("Titan embeddings take one input per request; send `input` as a single string"),
    }
}

pub fn embed_response(resp: &Value, model: &str) -> (Value, u64) {
    let vectors: Vec<Value> = match (resp.get("embedding"), resp.get("embeddings")) {
        (Some(e), _) => vec![e.clone()],
        (None, Some(Value::Array(list))) => list.clone(),
        (None, Some(Value::Object(by_type))) => {
            by_type.get("float").and_then(Value::as_array).cloned().unwrap_or_default()
        }
        _ => Vec::new(),
    };
    let tokens = resp.get("inputTextTokenCount").and_then(Value::as_u64).unwrap_or(0);
    let data: Vec<Value> = vectors
        .into_iter()
        .enumerate()
        .map(|(i, e)| json!({ "object": "embedding", "index": i, "embedding": e }))
        .collect();
    (
        json!({ "object": "list", "data": data, "model": model, "usage": { "prompt_tokens": tokens, "total_tokens": tokens } }),
        tokens,
    )
}
