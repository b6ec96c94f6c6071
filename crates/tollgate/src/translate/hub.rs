//! Writing the hub (OpenAI chat) shapes: whole completions, stream chunks
//! and normalised usage.

use serde_json::{Value, json};

/// Token counts every provider reports in its own words, normalised.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tokens {
    /// Input tokens neither read from nor written to a prompt cache.
    pub input: u64,
    pub cache_read: u64,
    pub cache_write: u64,
    /// Output tokens, reasoning included.
    pub output: u64,
    /// Of `output`, the tokens spent reasoning.
    pub reasoning: u64,
}

impl Tokens {
    /// OpenAI's usage object: `prompt_tokens` counts every input token
    /// (cached ones too, as OpenAI does), with the cached share in
    /// `prompt_tokens_details`.
    pub fn to_openai(self) -> Value {
        let prompt = self.input + self.cache_read + self.cache_write;
        let mut u = json!({
            "prompt_tokens": prompt,
            "completion_tokens": self.output,
            "total_tokens": prompt + self.output,
        });
        if self.cache_read > 0 || self.cache_write > 0 {
            u["prompt_tokens_details"] = json!({ "cached_tokens": self.cache_read });
            if self.cache_write > 0 {
                u["prompt_tokens_details"]["cache_write_tokens"] = json!(self.cache_write);
            }
        }
        if self.reasoning > 0 {
            u["completion_tokens_details"] = json!({ "reasoning_tokens": self.reasoning });
        }
        u
    }

    /// Reads an OpenAI usage object back.
    pub fn from_openai(u: &Value) -> Tokens {
        let n = |p: &str| u.pointer(p).and_then(Value::as_u64).unwrap_or(0);
        let (read, write) = (n("/prompt_tokens_details/cached_tokens"), n("/prompt_tokens_details/cache_write_tokens"));
        Tokens {
            input: n("/prompt_tokens").saturating_sub(read + write),
            cache_read: read,
            cache_write: write,
            output: n("/completion_tokens"),
            reasoning: n("/completion_tokens_details/reasoning_tokens"),
        }
    }
}

/// A whole `chat.completion` with one choice.
pub fn completion(id: &str, model: &str, message: Value, finish: &str, usage: Option<Tokens>) -> Value {
    let mut v = json!({
        "id": id,
        "object": "chat.completion",
        "created": super::now_secs(),
        "model": model,
        "choices": [{ "index": 0, "message": message, "logprobs": null, "finish_reason": finish }],
    });
    if let Some(u) = usage {
        v["usage"] = u.to_openai();
    }
    v
}

/// An assistant message from its parts; `content` is null when empty, as
/// OpenAI sends it beside tool calls.
pub fn message(text: String, reasoning: String, thinking_blocks: Vec<Value>, tool_calls: Vec<Value>) -> Value {
    let mut m =
        json!({ "role": "assistant", "content": if text.is_empty() { Value::Null } else { Value::String(text) } });
    if !reasoning.is_empty() {
        m["reasoning_content"] = Value::String(reasoning);
    }
    if !thinking_blocks.is_empty() {
        m["thinking_blocks"] = Value::Array(thinking_blocks);
    }
    if !tool_calls.is_empty() {
        m["tool_calls"] = Value::Array(tool_calls);
    }
    m
}

pub fn tool_call(id: &str, name: &str, arguments: String) -> Value {
    json!({ "id": id, "type": "function", "function": { "name": name, "arguments": arguments } })
}

/// Writes `chat.completion.chunk` events for one streamed answer.
pub struct Chunks {
    pub id: String,
    pub model: String,
    created: u64,
    /// The client asked for `stream_options.include_usage`.
    include_usage: bool,
}

impl Chunks {
    pub fn new(id: String, model: String, include_usage: bool) -> Chunks {
        Chunks { id, model, created: super::now_secs(), include_usage }
    }

    pub fn delta(&self, out: &mut Vec<u8>, delta: Value, finish: Option<&str>) {
        let mut c = json!({
            "id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
            "choices": [{ "index": 0, "delta": delta, "logprobs": null, "finish_reason": finish }],
        });
        if self.include_usage {
            c["usage"] = Value::Null;
        }
        event(out, &c);
    }

    /// The closing events: the usage chunk when asked for, then `[DONE]`.
    pub fn close(&self, out: &mut Vec<u8>, usage: Option<Tokens>) {
        if self.include_usage {
            let u = usage.map_or(Value::Null, Tokens::to_openai);
            let c = json!({
                "id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
                "choices": [], "usage": u,
            });
            event(out, &c);
        }
        out.extend_from_slice(b"data: [DONE]\n\n");
    }
}

fn event(out: &mut Vec<u8>, v: &Value) {
    out.extend_from_slice(b"data: ");
    // Writing a Value into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, v);
    out.extend_from_slice(b"\n\n");
}

/// Standard base64, for embeddings asked for as `encoding_format: base64`.
pub fn b64(bytes: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for c in bytes.chunks(3) {
        let n =
            (u32::from(c[0]) << 16) | (u32::from(*c.get(1).unwrap_or(&0)) << 8) | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// OpenAI sends embeddings as base64 little-endian float32 when asked
/// (`encoding_format: base64`); providers that only return floats get
/// their vectors encoded here.
pub fn encode_embeddings(resp: &mut Value, req: &Value) {
    if req.get("encoding_format").and_then(Value::as_str) != Some("base64") {
        return;
    }
    for d in resp.get_mut("data").and_then(Value::as_array_mut).into_iter().flatten() {
        if let Some(list) = d.get("embedding").and_then(Value::as_array) {
            let bytes: Vec<u8> = list.iter().flat_map(|x| (x.as_f64().unwrap_or(0.0) as f32).to_le_bytes()).collect();
            d["embedding"] = Value::String(b64(&bytes));
        }
    }
}

/// Whether a hub request asked for the usage chunk.
pub fn wants_usage(req: &Value) -> bool {
    req.pointer("/stream_options/include_usage").and_then(Value::as_bool) == Some(true)
}

// Normalised tokens become the usage the stages settle and log.
impl From<Tokens> for crate::wire::openai::Usage {
    fn from(t: Tokens) -> crate::wire::openai::Usage {
        let prompt = t.input + t.cache_read + t.cache_write;
        crate::wire::openai::Usage {
            prompt_tokens: prompt,
            completion_tokens: t.output,
            total_tokens: prompt + t.output,
            prompt_tokens_details: (t.cache_read > 0 || t.cache_write > 0).then_some(
                crate::wire::openai::PromptDetails { cached_tokens: t.cache_read, cache_write_tokens: t.cache_write },
            ),
            completion_tokens_details: (t.reasoning > 0)
                .then_some(crate::wire::openai::CompletionDetails { reasoning_tokens: t.reasoning }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_round_trips_through_openai_shape() {
        let t = Tokens { input: 11, cache_read: 3, cache_write: 2, output: 7, reasoning: 4 };
        let u = t.to_openai();
        assert_eq!(u["prompt_tokens"], 16);
        assert_eq!(u["total_tokens"], 23);
        assert_eq!(u["prompt_tokens_details"]["cached_tokens"], 3);
        assert_eq!(Tokens::from_openai(&u), t);
    }
}
