//! Hub (OpenAI chat) ⇄ Gemini `generateContent`, for providers of type
//! `gemini` (Google AI Studio) and Gemini models on `vertex`.
//!
//! Gemini often returns function calls without ids: the gateway gives each
//! one an id (`call_…`) and, on the next turn, finds the function name for
//! a tool result by that id. A call's `thoughtSignature` travels with the
//! hub tool call as `extra_content.google.thought_signature` (the
//! convention of Google's own OpenAI-compatible endpoint) and is put back
//! on the function call part when the conversation is replayed.

use std::collections::HashMap;

use serde_json::{Map, Value, json};

use super::hub::{self, Chunks, Tokens};
use super::{Result, StreamFail, ToOpenAiStream, UpEvent, refuse};

/// Gemini's documented value for a function call whose signature was lost
/// (e.g. a conversation that came through a client that drops it).
const SKIP_SIGNATURE: &str = "skip_thought_signature_validator";

pub fn request(req: &Value) -> Result<Value> {
    super::refuse_n(req, "Gemini")?;
    let Some(list) = req.get("messages").and_then(Value::as_array) else {
        return refuse("`messages` must be an array");
    };
    // Tool-call id → (function name, whether Gemini gave the id itself).
    let mut calls: HashMap<String, String> = HashMap::new();
    let mut system = Vec::new();
    let mut contents: Vec<(String, Vec<Value>)> = Vec::new();
    for m in list {
        let (role, parts) = match m.get("role").and_then(Value::as_str).unwrap_or("") {
            "system" | "developer" => {
                let t = super::content_text(m.get("content"));
                if !t.is_empty() {
                    system.push(json!({ "text": t }));
                }
                continue;
            }
            "user" => ("user", parts(m.get("content"))?),
            "assistant" => ("model", model_parts(m, &mut calls)?),
            "tool" | "function" => {
                let id = m.get("tool_call_id").and_then(Value::as_str).unwrap_or("");
                let Some(name) = calls.get(id).cloned() else {
                    return refuse(format!("tool message `{id}` answers no tool call of an earlier assistant message"));
                };
                let text = super::content_text(m.get("content"));
                let response = match serde_json::from_str::<Value>(&text) {
                    Ok(v @ Value::Object(_)) => v,
                    _ => json!({ "result": text }),
                };
                let mut fr = json!({ "name": name, "response": response });
                if !id.starts_with(SYNTHETIC) {
                    fr["id"] = json!(id);
                }
                ("user", vec![json!({ "functionResponse": fr })])
            }
            other => return refuse(format!("message role `{other}` is not one of system, user, assistant, tool")),
        };
        if parts.is_empty() {
            continue;
        }
        match contents.last_mut() {
            Some((r, p)) if r == role => p.extend(parts),
            _ => contents.push((role.to_string(), parts)),
        }
    }
    let mut out = Map::new();
    out.insert(
        "contents".into(),
        Value::Array(contents.into_iter().map(|(role, parts)| json!({ "role": role, "parts": parts })).collect()),
    );
    if !system.is_empty() {
        out.insert("systemInstruction".into(), json!({ "parts": system }));
    }
    let mut generation = Map::new();
    if let Some(t) = req.get("temperature").filter(|t| !t.is_null()) {
        generation.insert("temperature".into(), t.clone());
    }
    for (from, to) in [
        ("top_p", "topP"),
        ("top_k", "topK"),
        ("seed", "seed"),
        ("presence_penalty", "presencePenalty"),
        ("frequency_penalty", "frequencyPenalty"),
    ] {
        if let Some(v) = req.get(from).filter(|v| !v.is_null()) {
            generation.insert(to.into(), v.clone());
        }
    }
    if let Some(n) = super::max_tokens(req) {
        generation.insert("maxOutputTokens".into(), json!(n));
    }
    if let Some(stop) = super::stop_list(req.get("stop"))? {
        generation.insert("stopSequences".into(), Value::Array(stop));
    }
    match req.pointer("/response_format/type").and_then(Value::as_str) {
        Some("json_object") => {
            generation.insert("responseMimeType".into(), json!("application/json"));
        }
        Some("json_schema") => {
            generation.insert("responseMimeType".into(), json!("application/json"));
            if let Some(s) = req.pointer("/response_format/json_schema/schema") {
                generation.insert("responseJsonSchema".into(), s.clone());
            }
        }
        _ => {}
    }
    let budget = match (
        req.pointer("/thinking/budget_tokens").and_then(Value::as_u64),
        req.get("reasoning_effort").and_then(Value::as_str),
    ) {
        (Some(b), _) => Some(b),
        (None, Some("minimal" | "low")) => Some(1024),
        (None, Some("medium")) => Some(8192),
        (None, Some("high")) => Some(24576),
        _ => None,
    };
    if let Some(b) = budget {
        generation.insert("thinkingConfig".into(), json!({ "thinkingBudget": b, "includeThoughts": true }));
    }
    if !generation.is_empty() {
        out.insert("generationConfig".into(), Value::Object(generation));
    }
    if let Some(tools) = req.get("tools").and_then(Value::as_array).filter(|t| !t.is_empty()) {
        let decls: Vec<Value> = tools
            .iter()
            .filter_map(|t| t.get("function"))
            .map(|f| {
                let mut d = json!({ "name": f.get("name").cloned().unwrap_or(Value::Null) });
                if let Some(desc) = f.get("description") {
                    d["description"] = desc.clone();
                }
                if let Some(p) = f.get("parameters") {
                    d["parameters"] = schema(p);
                }
                d
            })
            .collect();
        out.insert("tools".into(), json!([{ "functionDeclarations": decls }]));
    }
    let mode = match req.get("tool_choice") {
        Some(Value::String(c)) if c == "none" => Some(json!({ "mode": "NONE" })),
        Some(Value::String(c)) if c == "required" => Some(json!({ "mode": "ANY" })),
        Some(Value::String(c)) if c == "auto" => Some(json!({ "mode": "AUTO" })),
        Some(c @ Value::Object(_)) => {
            c.pointer("/function/name").map(|n| json!({ "mode": "ANY", "allowedFunctionNames": [n] }))
        }
        _ => None,
    };
    if let Some(m) = mode {
        out.insert("toolConfig".into(), json!({ "functionCallingConfig": m }));
    }
    for k in ["safety_settings", "safetySettings"] {
        if let Some(s) = req.get(k) {
            out.insert("safetySettings".into(), s.clone());
        }
    }
    Ok(Value::Object(out))
}

/// Gemini's schema dialect refuses some JSON Schema keywords; they carry
/// no meaning for the model's output, so they are dropped.
fn schema(v: &Value) -> Value {
    match v {
        Value::Object(o) => Value::Object(
            o.iter()
                .filter(|(k, _)| !matches!(k.as_str(), "additionalProperties" | "$schema" | "strict"))
                .map(|(k, v)| (k.clone(), schema(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(schema).collect()),
        other => other.clone(),
    }
}

fn parts(content: Option<&Value>) -> Result<Vec<Value>> {
    match content {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) if s.is_empty() => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![json!({ "text": s })]),
        Some(Value::Array(list)) => list.iter().map(part).collect(),
        Some(_) => refuse("message `content` must be a string or an array of parts"),
    }
}

fn part(p: &Value) -> Result<Value> {
    match p.get("type").and_then(Value::as_str) {
        Some("text") => Ok(json!({ "text": p.get("text").cloned().unwrap_or(json!("")) })),
        Some("image_url") => {
            let url = p.pointer("/image_url/url").and_then(Value::as_str).unwrap_or("");
            match super::data_url(url) {
                Some((mime, data)) => Ok(json!({ "inlineData": { "mimeType": mime, "data": data } })),
                None if url.contains("://") => Ok(json!({ "fileData": { "mimeType": mime_of(url), "fileUri": url } })),
                None => refuse("an image_url must be a URL or a base64 data URL"),
            }
        }
        Some("file") => match p.pointer("/file/file_data").and_then(Value::as_str).and_then(super::data_url) {
            Some((mime, data)) => Ok(json!({ "inlineData": { "mimeType": mime, "data": data } })),
            None => refuse("a file part must carry `file_data` as a base64 data URL for Gemini models"),
        },
        Some("input_audio") => {
            let fmt = p.pointer("/input_audio/format").and_then(Value::as_str).unwrap_or("wav");
            Ok(
                json!({ "inlineData": { "mimeType": format!("audio/{fmt}"), "data": p.pointer("/input_audio/data").cloned().unwrap_or(json!("")) } }),
            )
        }
        Some(other) => refuse(format!("content part type `{other}` is not supported by Gemini models")),
        None => refuse("each content part needs a `type`"),
    }
}

fn mime_of(url: &str) -> &'static str {
    let lower = url.to_ascii_lowercase();
    match lower.rsplit('.').next() {
        Some("png") => "image/png",
        Some("gif") => "image/gif",
        Some("webp") => "image/webp",
        Some("pdf") => "application/pdf",
        _ => "image/jpeg",
    }
}

/// Ids the gateway made up for Gemini calls that came without one.
const SYNTHETIC: &str = "call_g";

fn model_parts(m: &Value, calls: &mut HashMap<String, String>) -> Result<Vec<Value>> {
    let mut out = parts(m.get("content"))?;
    let mut first_call = true;
    for c in m.get("tool_calls").and_then(Value::as_array).into_iter().flatten() {
        let id = c.get("id").and_then(Value::as_str).unwrap_or("");
        let name = c.pointer("/function/name").and_then(Value::as_str).unwrap_or("");
        calls.insert(id.to_string(), name.to_string());
        let args = super::arguments_object(c.pointer("/function/arguments"))?;
        let mut fc = json!({ "name": name, "args": args });
        if !id.starts_with(SYNTHETIC) && !id.is_empty() {
            fc["id"] = json!(id);
        }
        let mut p = json!({ "functionCall": fc });
        let sig = c.pointer("/extra_content/google/thought_signature").and_then(Value::as_str);
        match sig {
            Some(s) => p["thoughtSignature"] = json!(s),
            // Gemini checks the first call of a turn carries its signature.
            None if first_call => p["thoughtSignature"] = json!(SKIP_SIGNATURE),
            None => {}
        }
        first_call = false;
        out.push(p);
    }
    Ok(out)
}

fn new_call_id() -> String {
    let n: u64 = fastrand::u64(..);
    format!("{SYNTHETIC}{n:016x}")
}

fn call_from(fc: &Value, signature: Option<&Value>) -> Value {
    let id = fc.get("id").and_then(Value::as_str).filter(|s| !s.is_empty()).map_or_else(new_call_id, str::to_string);
    let args = fc.get("args").map_or_else(|| "{}".to_string(), Value::to_string);
    let mut c = hub::tool_call(&id, fc.get("name").and_then(Value::as_str).unwrap_or(""), args);
    if let Some(s) = signature {
        c["extra_content"] = json!({ "google": { "thought_signature": s } });
    }
    c
}

pub fn finish_reason(r: &str, has_calls: bool) -> &'static str {
    match r {
        "MAX_TOKENS" => "length",
        "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" | "IMAGE_SAFETY" => "content_filter",
        _ if has_calls => "tool_calls",
        _ => "stop",
    }
}

pub fn tokens(u: &Value) -> Tokens {
    let n = |k: &str| u.get(k).and_then(Value::as_u64).unwrap_or(0);
    let cached = n("cachedContentTokenCount");
    let thoughts = n("thoughtsTokenCount");
    Tokens {
        input: (n("promptTokenCount") + n("toolUsePromptTokenCount")).saturating_sub(cached),
        cache_read: cached,
        cache_write: 0,
        output: n("candidatesTokenCount") + thoughts,
        reasoning: thoughts,
    }
}

pub fn response(resp: &Value, model: &str) -> Result<Value> {
    let cand = resp.pointer("/candidates/0");
    let (mut text, mut reasoning, mut calls) = (String::new(), String::new(), Vec::new());
    for p in cand.and_then(|c| c.pointer("/content/parts")).and_then(Value::as_array).into_iter().flatten() {
        if let Some(fc) = p.get("functionCall") {
            calls.push(call_from(fc, p.get("thoughtSignature")));
        } else if let Some(t) = p.get("text").and_then(Value::as_str) {
            if p.get("thought").and_then(Value::as_bool) == Some(true) {
                reasoning.push_str(t);
            } else {
                text.push_str(t);
            }
        }
    }
    let finish = match cand.and_then(|c| c.get("finishReason")).and_then(Value::as_str) {
        Some(r) => finish_reason(r, !calls.is_empty()),
        // No candidate at all: the prompt itself was blocked.
        None if resp.pointer("/promptFeedback/blockReason").is_some() => "content_filter",
        None => finish_reason("STOP", !calls.is_empty()),
    };
    let id = resp.get("responseId").and_then(Value::as_str).unwrap_or("gemini");
    let model = resp.get("modelVersion").and_then(Value::as_str).unwrap_or(model);
    Ok(hub::completion(
        id,
        model,
        hub::message(text, reasoning, Vec::new(), calls),
        finish,
        resp.get("usageMetadata").map(tokens),
    ))
}

/// Error statuses Gemini names, as HTTP statuses.
pub fn error_status(v: &Value) -> u16 {
    if let Some(c) = v.pointer("/error/code").and_then(Value::as_u64).and_then(|c| u16::try_from(c).ok()) {
        return c;
    }
    match v.pointer("/error/status").and_then(Value::as_str) {
        Some("RESOURCE_EXHAUSTED") => 429,
        Some("UNAVAILABLE") => 503,
        Some("INVALID_ARGUMENT" | "FAILED_PRECONDITION") => 400,
        Some("PERMISSION_DENIED") => 403,
        Some("UNAUTHENTICATED") => 401,
        Some("NOT_FOUND") => 404,
        Some("DEADLINE_EXCEEDED") => 504,
        _ => 500,
    }
}

pub fn error_message(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    v.pointer("/error/message").and_then(Value::as_str).map(str::to_string)
}

/// `streamGenerateContent?alt=sse`: each event a partial response; the
/// last carries finishReason and usage. Gemini sends no terminator, so a
/// stream is complete only once a finish reason has been seen.
pub struct Stream {
    chunks: Chunks,
    started: bool,
    next_tool: usize,
    finish: Option<String>,
    tokens: Option<Tokens>,
}

impl Stream {
    pub fn new(model: &str, include_usage: bool) -> Stream {
        Stream {
            chunks: Chunks::new(format!("gemini-{:016x}", fastrand::u64(..)), model.to_string(), include_usage),
            started: false,
            next_tool: 0,
            finish: None,
            tokens: None,
        }
    }
}

impl ToOpenAiStream for Stream {
    fn event(&mut self, ev: UpEvent<'_>, out: &mut Vec<u8>) -> std::result::Result<(), StreamFail> {
        let UpEvent::Sse { data, .. } = ev else { return Ok(()) };
        let v: Value = serde_json::from_slice(data)
            .map_err(|e| StreamFail::Broken(format!("a stream event is not valid JSON: {e}")))?;
        if v.get("error").is_some() {
            let message =
                v.pointer("/error/message").and_then(Value::as_str).unwrap_or("error in the stream").to_string();
            return Err(StreamFail::Status { status: error_status(&v), message });
        }
        if !self.started {
            self.started = true;
            self.chunks.delta(out, json!({ "role": "assistant", "content": "" }), None);
        }
        let cand = v.pointer("/candidates/0");
        for p in cand.and_then(|c| c.pointer("/content/parts")).and_then(Value::as_array).into_iter().flatten() {
            if let Some(fc) = p.get("functionCall") {
                let mut call = call_from(fc, p.get("thoughtSignature"));
                call["index"] = json!(self.next_tool);
                self.next_tool += 1;
                self.chunks.delta(out, json!({ "tool_calls": [call] }), None);
            } else if let Some(t) = p.get("text").and_then(Value::as_str).filter(|t| !t.is_empty()) {
                let key = if p.get("thought").and_then(Value::as_bool) == Some(true) {
                    "reasoning_content"
                } else {
                    "content"
                };
                self.chunks.delta(out, json!({ key: t }), None);
            }
        }
        if let Some(r) = cand.and_then(|c| c.get("finishReason")).and_then(Value::as_str) {
            self.finish = Some(r.to_string());
        } else if v.pointer("/promptFeedback/blockReason").is_some() {
            self.finish = Some("SAFETY".into());
        }
        if let Some(u) = v.get("usageMetadata") {
            self.tokens = Some(tokens(u));
        }
        Ok(())
    }

    fn end(&mut self, out: &mut Vec<u8>) -> std::result::Result<(), StreamFail> {
        let Some(r) = self.finish.take() else {
            return Err(StreamFail::Broken(
                "the stream ended without a finish reason; the answer is incomplete".into(),
            ));
        };
        self.chunks.delta(out, json!({}), Some(finish_reason(&r, self.next_tool > 0)));
        self.chunks.close(out, self.tokens);
        Ok(())
    }
}

/// Hub embeddings input → `batchEmbedContents` for `model`.
pub fn embed_request(req: &Value, model: &str) -> Result<Value> {
    let inputs: Vec<&str> = match req.get("input") {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(a)) if a.iter().all(Value::is_string) => a.iter().filter_map(Value::as_str).collect(),
        _ => return refuse("`input` must be a string or an array of strings for Gemini embeddings"),
    };
    let requests: Vec<Value> = inputs
        .iter()
        .map(|t| {
            let mut r = json!({ "model": format!("models/{model}"), "content": { "parts": [{ "text": t }] } });
            if let Some(d) = req.get("dimensions") {
                r["outputDimensionality"] = d.clone();
            }
            r
        })
        .collect();
    Ok(json!({ "requests": requests }))
}

/// Hub embeddings input → Vertex `predict` for a text-embedding model.
pub fn vertex_embed_request(req: &Value) -> Result<Value> {
    let inputs: Vec<&str> = match req.get("input") {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(a)) if a.iter().all(Value::is_string) => a.iter().filter_map(Value::as_str).collect(),
        _ => return refuse("`input` must be a string or an array of strings for Vertex embeddings"),
    };
    let mut body = json!({ "instances": inputs.iter().map(|t| json!({ "content": t })).collect::<Vec<_>>() });
    if let Some(d) = req.get("dimensions") {
        body["parameters"] = json!({ "outputDimensionality": d });
    }
    Ok(body)
}

/// Vertex `predictions` as hub embeddings, with the token counts Vertex reports.
pub fn vertex_embed_response(resp: &Value, model: &str) -> (Value, u64) {
    let preds = resp.get("predictions").and_then(Value::as_array).cloned().unwrap_or_default();
    let tokens: u64 = preds
        .iter()
        .filter_map(|p| p.pointer("/embeddings/statistics/token_count"))
        .filter_map(Value::as_f64)
        .map(|n| n as u64)
        .sum();
    let data: Vec<Value> = preds
        .iter()
        .enumerate()
        .map(|(i, p)| json!({ "object": "embedding", "index": i, "embedding": p.pointer("/embeddings/values").cloned().unwrap_or(json!([])) }))
        .collect();
    (
        json!({ "object": "list", "data": data, "model": model, "usage": { "prompt_tokens": tokens, "total_tokens": tokens } }),
        tokens,
    )
}

pub fn embed_response(resp: &Value, model: &str, prompt_tokens: u64) -> Value {
    let data: Vec<Value> = resp
        .get("embeddings")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
        .map(|(i, e)| json!({ "object": "embedding", "index": i, "embedding": e.get("values").cloned().unwrap_or(json!([])) }))
        .collect();
    json!({ "object": "list", "data": data, "model": model,
        "usage": { "prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens } })
}
