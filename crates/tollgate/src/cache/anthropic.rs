//! Answers in Anthropic's own shape (a `/v1/messages` request relayed to an
//! Anthropic model): a complete event stream assembled into the message it
//! adds up to, and a kept message replayed as that event sequence, so a
//! streamed hit is accumulated by Anthropic's SDKs like a fresh answer.

use serde_json::{Map, Value, json};

use crate::wire::sse::{event_data, split_events};

/// The message a complete Anthropic event stream adds up to; `None` without
/// `message_start` and `message_stop`, or after an `error` event.
pub fn assemble(sse: &[u8]) -> Option<Value> {
    let mut message: Option<Value> = None;
    // Each block with the JSON text of a tool's input, streamed in pieces.
    let mut blocks: Vec<(Value, String)> = Vec::new();
    let mut stopped = false;
    for event in split_events(sse) {
        let Some(data) = event_data(event) else { continue };
        let Ok(v) = serde_json::from_slice::<Value>(data) else { continue };
        match v.get("type").and_then(Value::as_str)? {
            "message_start" => message = Some(v.get("message")?.clone()),
            "content_block_start" => {
                let i = usize::try_from(v.get("index")?.as_u64()?).ok()?;
                if i != blocks.len() {
                    return None; // blocks arrive in order; anything else is not a stream to keep
                }
                blocks.push((v.get("content_block")?.clone(), String::new()));
            }
            "content_block_delta" => {
                let i = usize::try_from(v.get("index")?.as_u64()?).ok()?;
                let (block, json_text) = blocks.get_mut(i)?;
                let delta = v.get("delta")?;
                match delta.get("type").and_then(Value::as_str)? {
                    "text_delta" => append(block, "text", delta.get("text")?),
                    "thinking_delta" => append(block, "thinking", delta.get("thinking")?),
                    "signature_delta" => append(block, "signature", delta.get("signature")?),
                    "input_json_delta" => json_text.push_str(delta.get("partial_json")?.as_str()?),
                    "citations_delta" => {
                        let c = block.as_object_mut()?.entry("citations").or_insert_with(|| json!([]));
                        c.as_array_mut()?.push(delta.get("citation")?.clone());
                    }
                    _ => return None, // a delta this build cannot add up: not kept
                }
            }
            "message_delta" => {
                let m = message.as_mut()?.as_object_mut()?;
                for (k, x) in v.get("delta").and_then(Value::as_object).into_iter().flatten() {
                    m.insert(k.clone(), x.clone());
                }
                if let Some(u) = v.get("usage").and_then(Value::as_object) {
                    let usage = m.entry("usage").or_insert_with(|| json!({}));
                    for (k, x) in u {
                        if !x.is_null() {
                            usage[k] = x.clone();
                        }
                    }
                }
            }
            "message_stop" => stopped = true,
            "error" => return None,
            _ => {} // ping, and events added later that carry no content
        }
    }
    let mut message = message.filter(|_| stopped)?;
    let mut content = Vec::with_capacity(blocks.len());
    for (mut block, json_text) in blocks {
        if !json_text.is_empty() {
            block["input"] = serde_json::from_str(&json_text).ok()?;
        }
        content.push(block);
    }
    message["content"] = Value::Array(content);
    Some(message)
}

fn append(block: &mut Value, field: &str, piece: &Value) {
    let joined = format!("{}{}", block.get(field).and_then(Value::as_str).unwrap_or(""), piece.as_str().unwrap_or(""));
    block[field] = Value::String(joined);
}

/// A kept message as Anthropic's event sequence: `message_start`, each
/// block as start / delta / stop, `message_delta` with the stop reason and
/// usage, `message_stop`.
pub fn replay(message: &Value) -> String {
    let mut out = String::new();
    let mut send = |event: &str, data: Value| {
        out.push_str("event: ");
        out.push_str(event);
        out.push_str("\ndata: ");
        out.push_str(&data.to_string());
        out.push_str("\n\n");
    };
    let usage = message.get("usage").cloned().unwrap_or_else(|| json!({}));
    let mut start = message.clone();
    start["content"] = json!([]);
    start["stop_reason"] = Value::Null;
    start["stop_sequence"] = Value::Null;
    let mut start_usage = usage.clone();
    start_usage["output_tokens"] = json!(0);
    start["usage"] = start_usage;
    send("message_start", json!({ "type": "message_start", "message": start }));
    let empty = Vec::new();
    let blocks = message.get("content").and_then(Value::as_array).unwrap_or(&empty);
    for (i, block) in blocks.iter().enumerate() {
        let (opening, deltas) = split_block(block);
        send("content_block_start", json!({ "type": "content_block_start", "index": i, "content_block": opening }));
        for d in deltas {
            send("content_block_delta", json!({ "type": "content_block_delta", "index": i, "delta": d }));
        }
        send("content_block_stop", json!({ "type": "content_block_stop", "index": i }));
    }
    send(
        "message_delta",
        json!({ "type": "message_delta",
                "delta": { "stop_reason": message.get("stop_reason"), "stop_sequence": message.get("stop_sequence") },
                "usage": usage }),
    );
    send("message_stop", json!({ "type": "message_stop" }));
    out
}

/// A block as its opening (content emptied) and the deltas that fill it.
fn split_block(block: &Value) -> (Value, Vec<Value>) {
    let mut opening = block.clone();
    let mut deltas = Vec::new();
    let mut take = |field: &str, kind: &str, name: &str| {
        if let Some(s) = block.get(field).and_then(Value::as_str) {
            opening[field] = json!("");
            if !s.is_empty() {
                let mut d = Map::new();
                d.insert("type".into(), json!(kind));
                d.insert(name.into(), json!(s));
                deltas.push(Value::Object(d));
            }
        }
    };
    match block.get("type").and_then(Value::as_str) {
        Some("text") => {
            take("text", "text_delta", "text");
            if let Some(o) = opening.as_object_mut() {
                o.remove("citations"); // replayed whole in the opening would be counted twice
            }
            for c in block.get("citations").and_then(Value::as_array).into_iter().flatten() {
                deltas.push(json!({ "type": "citations_delta", "citation": c }));
            }
        }
        Some("thinking") => {
            take("thinking", "thinking_delta", "thinking");
            take("signature", "signature_delta", "signature");
        }
        Some("tool_use" | "server_tool_use") => {
            let input = block.get("input").cloned().unwrap_or_else(|| json!({}));
            opening["input"] = json!({});
            deltas.push(json!({ "type": "input_json_delta", "partial_json": input.to_string() }));
        }
        _ => {} // any other block (redacted thinking, tool results) opens whole
    }
    (opening, deltas)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_replays_to_events_that_add_up_to_it() {
        let m = json!({
            "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x",
            "content": [
                { "type": "thinking", "thinking": "hmm", "signature": "sig" },
                { "type": "text", "text": "Hello" },
                { "type": "tool_use", "id": "toolu_1", "name": "f", "input": { "a": [1, 2] } },
                { "type": "redacted_thinking", "data": "xyz" },
            ],
            "stop_reason": "tool_use", "stop_sequence": null,
            "usage": { "input_tokens": 7, "output_tokens": 3, "cache_read_input_tokens": 2 },
        });
        let sse = replay(&m);
        assert!(sse.starts_with("event: message_start\n"));
        assert!(sse.contains(r#""type":"input_json_delta""#));
        assert_eq!(assemble(sse.as_bytes()).unwrap(), m);
        let cut = &sse[..sse.find("event: message_stop").unwrap()];
        assert!(assemble(cut.as_bytes()).is_none(), "no message_stop: not kept");
        let failed = format!("{cut}event: error\ndata: {{\"type\":\"error\",\"error\":{{}}}}\n\nevent: message_stop\ndata: {{\"type\":\"message_stop\"}}\n\n");
        assert!(assemble(failed.as_bytes()).is_none(), "an error event: not kept");
    }
}
