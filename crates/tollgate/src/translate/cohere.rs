//! Hub (OpenAI chat) ⇄ Cohere v2 chat and embed. Cohere v2 is close to the
//! hub, but names parameters differently (`p`, `k`, `stop_sequences`),
//! accepts only 0–1 temperatures and reports finish reasons and usage its
//! own way; its stream is a typed event sequence ending in `message-end`.

use serde_json::{Map, Value, json};

use super::hub::{self, Chunks, Tokens};
use super::{Result, Settings, StreamFail, ToOpenAiStream, UpEvent, refuse};

pub fn request(req: &Value, model: &str, s: &Settings) -> Result<Value> {
    super::refuse_n(req, "Cohere")?;
    let Some(list) = req.get("messages").and_then(Value::as_array) else {
        return refuse("`messages` must be an array");
    };
    let mut messages = Vec::with_capacity(list.len());
    for m in list {
        let role = m.get("role").and_then(Value::as_str).unwrap_or("");
        messages.push(match role {
            "system" | "developer" => json!({ "role": "system", "content": super::content_text(m.get("content")) }),
            "user" => json!({ "role": "user", "content": user_content(m.get("content"))? }),
            "assistant" => {
                let mut a = json!({ "role": "assistant" });
                let text = super::content_text(m.get("content"));
                if !text.is_empty() {
                    a["content"] = json!(text);
                }
                if let Some(calls) = m.get("tool_calls").and_then(Value::as_array).filter(|c| !c.is_empty()) {
                    let calls: Vec<Value> = calls
                        .iter()
                        .map(|c| {
                            let args = c.pointer("/function/arguments").and_then(Value::as_str).unwrap_or("{}");
                            json!({ "id": c["id"], "type": "function",
                                "function": { "name": c["function"]["name"], "arguments": if args.is_empty() { "{}" } else { args } } })
                        })
                        .collect();
                    a["tool_calls"] = Value::Array(calls);
                    if let Some(plan) = m.get("reasoning_content").and_then(Value::as_str) {
                        a["tool_plan"] = json!(plan);
                    }
                }
                a
            }
            "tool" | "function" => {
                let Some(id) = m.get("tool_call_id").and_then(Value::as_str) else {
                    return refuse("a `tool` message needs the `tool_call_id` of the call it answers");
                };
                json!({ "role": "tool", "tool_call_id": id, "content": super::content_text(m.get("content")) })
            }
            other => return refuse(format!("message role `{other}` is not one of system, user, assistant, tool")),
        });
    }
    let mut out = Map::new();
    out.insert("model".into(), json!(model));
    out.insert("messages".into(), Value::Array(messages));
    if let Some(n) = super::max_tokens(req) {
        out.insert("max_tokens".into(), json!(n));
    }
    if let Some(t) = super::temperature(req.get("temperature"), 1.0, s.temperature, "Cohere")? {
        out.insert("temperature".into(), t);
    }
    for (from, to) in [
        ("top_p", "p"),
        ("top_k", "k"),
        ("seed", "seed"),
        ("frequency_penalty", "frequency_penalty"),
        ("presence_penalty", "presence_penalty"),
    ] {
        if let Some(v) = req.get(from).filter(|v| !v.is_null()) {
            out.insert(to.into(), v.clone());
        }
    }
    if let Some(stop) = super::stop_list(req.get("stop"))? {
        out.insert("stop_sequences".into(), Value::Array(stop));
    }
    if req.get("stream").and_then(Value::as_bool) == Some(true) {
        out.insert("stream".into(), json!(true));
    }
    match req.pointer("/response_format/type").and_then(Value::as_str) {
        Some("json_object") => {
            out.insert("response_format".into(), json!({ "type": "json_object" }));
        }
        Some("json_schema") => {
            let schema = req.pointer("/response_format/json_schema/schema").cloned().unwrap_or(json!({}));
            out.insert("response_format".into(), json!({ "type": "json_object", "json_schema": schema }));
        }
        _ => {}
    }
    if let Some(tools) = req.get("tools").and_then(Value::as_array).filter(|t| !t.is_empty()) {
        let list: Vec<Value> = tools
            .iter()
            .filter_map(|t| t.get("function"))
            .map(|f| {
                let mut func = json!({ "name": f["name"], "parameters": f.get("parameters").cloned().unwrap_or(json!({ "type": "object" })) });
                if let Some(d) = f.get("description") {
                    func["description"] = d.clone();
                }
                json!({ "type": "function", "function": func })
            })
            .collect();
        out.insert("tools".into(), Value::Array(list));
        match req.get("tool_choice") {
            Some(Value::String(c)) if c == "required" => {
                out.insert("tool_choice".into(), json!("REQUIRED"));
            }
            Some(Value::String(c)) if c == "none" => {
                out.insert("tool_choice".into(), json!("NONE"));
            }
            Some(Value::Object(_)) => {
                return refuse("Cohere cannot be told to call one named tool; use tool_choice \"required\"");
            }
            _ => {}
        }
    }
    Ok(Value::Object(out))
}

fn user_content(content: Option<&Value>) -> Result<Value> {
    match content {
        Some(Value::String(s)) => Ok(json!(s)),
        Some(Value::Array(parts)) => parts
            .iter()
            .map(|p| match p.get("type").and_then(Value::as_str) {
                Some("text") => Ok(json!({ "type": "text", "text": p["text"] })),
                Some("image_url") => Ok(json!({ "type": "image_url", "image_url": { "url": p["image_url"]["url"] } })),
                Some(other) => refuse(format!("content part type `{other}` is not supported by Cohere")),
                None => refuse("each content part needs a `type`"),
            })
            .collect::<Result<Vec<_>>>()
            .map(Value::Array),
        _ => Ok(json!("")),
    }
}

pub fn finish_reason(r: &str) -> &'static str {
    match r {
        "MAX_TOKENS" => "length",
        "TOOL_CALL" => "tool_calls",
        _ => "stop",
    }
}

pub fn tokens(u: &Value) -> Tokens {
    // `tokens` counts what the model read and wrote; `billed_units` what was charged.
    let src = u.get("tokens").or_else(|| u.get("billed_units")).unwrap_or(&Value::Null);
    let n = |k: &str| src.get(k).and_then(Value::as_f64).unwrap_or(0.0) as u64;
    Tokens { input: n("input_tokens"), output: n("output_tokens"), ..Tokens::default() }
}

pub fn response(resp: &Value, model: &str) -> Result<Value> {
    let Some(msg) = resp.get("message") else { return refuse("the provider's answer has no `message`") };
    let text: String = msg
        .get("content")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| c.get("text").and_then(Value::as_str))
        .collect();
    let calls: Vec<Value> = msg
        .get("tool_calls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|c| {
            hub::tool_call(
                c.get("id").and_then(Value::as_str).unwrap_or(""),
                c.pointer("/function/name").and_then(Value::as_str).unwrap_or(""),
                c.pointer("/function/arguments").and_then(Value::as_str).unwrap_or("{}").to_string(),
            )
        })
        .collect();
    let plan = msg.get("tool_plan").and_then(Value::as_str).unwrap_or("").to_string();
    let finish = finish_reason(resp.get("finish_reason").and_then(Value::as_str).unwrap_or("COMPLETE"));
    Ok(hub::completion(
        resp.get("id").and_then(Value::as_str).unwrap_or("cohere"),
        model,
        hub::message(text, plan, Vec::new(), calls),
        finish,
        resp.get("usage").map(tokens),
    ))
}

pub fn error_message(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    v.get("message").and_then(Value::as_str).map(str::to_string)
}

pub struct Stream {
    chunks: Chunks,
    /// Cohere's tool-call index → hub index.
    tools: Vec<(u64, usize)>,
    ended: bool,
}

impl Stream {
    pub fn new(model: &str, include_usage: bool) -> Stream {
        Stream {
            chunks: Chunks::new("cohere".into(), model.to_string(), include_usage),
            tools: Vec::new(),
            ended: false,
        }
    }
}

impl ToOpenAiStream for Stream {
    fn event(&mut self, ev: UpEvent<'_>, out: &mut Vec<u8>) -> std::result::Result<(), StreamFail> {
        let UpEvent::Sse { data, .. } = ev else { return Ok(()) };
        let v: Value = serde_json::from_slice(data)
            .map_err(|e| StreamFail::Broken(format!("a stream event is not valid JSON: {e}")))?;
        let index = v.get("index").and_then(Value::as_u64).unwrap_or(0);
        let m = v.pointer("/delta/message");
        match v.get("type").and_then(Value::as_str).unwrap_or("") {
            "message-start" => {
                if let Some(id) = v.get("id").and_then(Value::as_str) {
                    self.chunks.id = id.to_string();
                }
                self.chunks.delta(out, json!({ "role": "assistant", "content": "" }), None);
            }
            "content-delta" => {
                if let Some(t) = m.and_then(|m| m.pointer("/content/text")).and_then(Value::as_str) {
                    self.chunks.delta(out, json!({ "content": t }), None);
                }
            }
            "tool-plan-delta" => {
                if let Some(t) = m.and_then(|m| m.get("tool_plan")).and_then(Value::as_str) {
                    self.chunks.delta(out, json!({ "reasoning_content": t }), None);
                }
            }
            "tool-call-start" => {
                let c = m.and_then(|m| m.get("tool_calls")).cloned().unwrap_or(Value::Null);
                let n = self.tools.len();
                self.tools.push((index, n));
                let args = c.pointer("/function/arguments").cloned().unwrap_or(json!(""));
                let call = json!([{ "index": n, "id": c["id"], "type": "function",
                    "function": { "name": c["function"]["name"], "arguments": args } }]);
                self.chunks.delta(out, json!({ "tool_calls": call }), None);
            }
            "tool-call-delta" => {
                let Some(&(_, n)) = self.tools.iter().find(|(i, _)| *i == index) else {
                    return Err(StreamFail::Broken("tool-call-delta for a call that never started".into()));
                };
                if let Some(a) = m.and_then(|m| m.pointer("/tool_calls/function/arguments")).and_then(Value::as_str) {
                    self.chunks.delta(
                        out,
                        json!({ "tool_calls": [{ "index": n, "function": { "arguments": a } }] }),
                        None,
                    );
                }
            }
            "message-end" => {
                let d = &v["delta"];
                let reason = d.get("finish_reason").and_then(Value::as_str).unwrap_or("COMPLETE");
                if reason == "ERROR" {
                    let message = d.pointer("/error").and_then(Value::as_str).unwrap_or("the model failed mid-answer");
                    return Err(StreamFail::Status { status: 500, message: message.to_string() });
                }
                self.chunks.delta(out, json!({}), Some(finish_reason(reason)));
                self.chunks.close(out, d.get("usage").map(tokens));
                self.ended = true;
            }
            _ => {}
        }
        Ok(())
    }

    fn end(&mut self, _out: &mut Vec<u8>) -> std::result::Result<(), StreamFail> {
        if self.ended {
            Ok(())
        } else {
            Err(StreamFail::Broken("the stream ended before message-end; the answer is incomplete".into()))
        }
    }
}

pub fn embed_request(req: &Value, model: &str) -> Result<Value> {
    let texts: Vec<Value> = match req.get("input") {
        Some(Value::String(s)) => vec![json!(s)],
        Some(Value::Array(a)) if a.iter().all(Value::is_string) => a.clone(),
        _ => return refuse("`input` must be a string or an array of strings for Cohere embeddings"),
    };
    let input_type = req.get("input_type").and_then(Value::as_str).unwrap_or("search_document");
    Ok(json!({ "model": model, "texts": texts, "input_type": input_type, "embedding_types": ["float"] }))
}

pub fn embed_response(resp: &Value, model: &str) -> (Value, u64) {
    let vectors = resp.pointer("/embeddings/float").and_then(Value::as_array).cloned().unwrap_or_default();
    let n = resp.pointer("/meta/billed_units/input_tokens").and_then(Value::as_f64).unwrap_or(0.0) as u64;
    let data: Vec<Value> = vectors
        .into_iter()
        .enumerate()
        .map(|(i, e)| json!({ "object": "embedding", "index": i, "embedding": e }))
        .collect();
    (json!({ "object": "list", "data": data, "model": model, "usage": { "prompt_tokens": n, "total_tokens": n } }), n)
}
