//! Token estimates with a real tokenizer (o200k), used only when a provider
//! reports no usage, so such a request is logged and charged at an estimate
//! (marked as one) rather than at zero.

use serde_json::Value;

pub fn count(text: &str) -> u64 {
    if text.is_empty() {
        return 0;
    }
    bpe_openai::o200k_base().count(text) as u64
}


/// The prompt tokens of a request body (OpenAI chat or embeddings, or
/// Anthropic Messages): the text the model reads — message contents,
/// system prompts, tool definitions and tool-call arguments — plus a few
/// tokens of framing per message, as the providers count it.
pub fn prompt(body: &[u8]) -> u64 {
    let Ok(v) = serde_json::from_slice::<Value>(body) else { return 0 };
    let mut text = String::new();
    let mut messages = 0u64;
    for key in ["system", "messages", "input", "tools", "contents"] {
        if let Some(x) = v.get(key) {
            if key == "messages" {
                messages = x.as_array().map_or(0, |a| a.len() as u64);
            }
            collect(x, &mut text);
        }
    }
    count(&text) + 3 * messages
}

/// The text of an OpenAI completion body's answer: contents, reasoning and
/// tool-call arguments of every choice.
pub fn completion(body: &[u8]) -> u64 {
    let Ok(v) = serde_json::from_slice::<Value>(body) else { return 0 };
    let mut text = String::new();
    for c in v.get("choices").and_then(Value::as_array).into_iter().flatten() {
        let m = &c["message"];
        for k in ["content", "reasoning_content"] {
            if let Some(s) = m.get(k).and_then(Value::as_str) {
                text.push_str(s);
            }
        }
        for t in m.get("tool_calls").and_then(Value::as_array).into_iter().flatten() {
            if let Some(s) = t.pointer("/function/name").and_then(Value::as_str) {
                text.push_str(s);
            }
            if let Some(s) = t.pointer("/function/arguments").and_then(Value::as_str) {
                text.push_str(s);
            }
        }
    }
    count(&text)
}

fn collect(v: &Value, out: &mut String) {
    match v {
        Value::String(s)
            // Base64 payloads (images, files) are not read as text tokens.
            if !s.starts_with("data:") => {
                out.push_str(s);
                out.push('\n');
            }
        Value::Array(a) => a.iter().for_each(|x| collect(x, out)),
        Value::Object(o) => {
            for (k, x) in o {
                if !matches!(k.as_str(), "role" | "type" | "id" | "tool_call_id" | "data" | "cache_control") {
                    collect(x, out);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_with_the_tokenizer_not_by_bytes() {
        assert_eq!(count("hello world"), 2);
        assert_eq!(count(""), 0);
        let body = br#"{"model":"m","messages":[{"role":"user","content":"hello world"}]}"#;
        assert_eq!(prompt(body), count("hello world\n") + 3);
        let answer = br#"{"choices":[{"message":{"role":"assistant","content":"hello world"}}]}"#;
        assert_eq!(completion(answer), 2);
    }
}
