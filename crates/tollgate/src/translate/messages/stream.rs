//! A hub (OpenAI chunk) stream as Anthropic's event sequence:
//! message_start, then each content block as content_block_start /
//! content_block_delta… / content_block_stop, then message_delta with the
//! stop reason and usage, and message_stop. A hub error event (or a hub
//! stream that ends without `[DONE]`) becomes Anthropic's `error` event.

use serde_json::{Value, json};

use crate::translate::hub::Tokens;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Block {
    Text,
    Thinking,
    /// A tool_use block for this hub tool-call index.
    Tool(u64),
}

pub struct FromHub {
    model: String,
    id: String,
    started: bool,
    /// The open block and its Anthropic index.
    open: Option<(Block, u64)>,
    next_index: u64,
    tokens: Tokens,
    stop: &'static str,
    finished: bool,
    /// The prompt-token estimate, reported in message_start until the real
    /// count arrives in message_delta.
    prompt_estimate: u64,
}

impl FromHub {
    pub fn new(model: &str, prompt_estimate: u64) -> FromHub {
        FromHub {
            model: model.to_string(),
            id: String::new(),
            started: false,
            open: None,
            next_index: 0,
            tokens: Tokens::default(),
            stop: "end_turn",
            finished: false,
            prompt_estimate,
        }
    }

    pub fn finished(&self) -> bool {
        self.finished
    }

    /// One hub SSE event's data (`[DONE]` included).
    pub fn event(&mut self, data: &[u8], out: &mut Vec<u8>) {
        if self.finished {
            return;
        }
        if data == b"[DONE]" {
            self.finish(out);
            return;
        }
        let Ok(v) = serde_json::from_slice::<Value>(data) else {
            return self.error(out, 502, "the provider sent a malformed stream event");
        };
        if let Some(e) = v.get("error") {
            let message = e.get("message").and_then(Value::as_str).unwrap_or("the upstream stream failed");
            let status = match e.get("code").and_then(Value::as_str) {
                Some("upstream_timeout") => 504,
                // An output guardrail ended the stream: the client's request, not the upstream, failed.
                Some("guardrail_blocked") => 400,
                _ => 502,
            };
            return self.error(out, status, message);
        }
        self.start(&v, out);
        if let Some(u) = v.get("usage").filter(|u| u.is_object()) {
            self.tokens = Tokens::from_openai(u);
        }
        let Some(choice) = v.pointer("/choices/0") else { return };
        let d = &choice["delta"];
        if let Some(r) = d.get("reasoning_content").and_then(Value::as_str).filter(|r| !r.is_empty()) {
            let i = self.ensure(Block::Thinking, json!({ "type": "thinking", "thinking": "", "signature": "" }), out);
            send(
                out,
                "content_block_delta",
                &json!({ "type": "content_block_delta", "index": i,
                "delta": { "type": "thinking_delta", "thinking": r } }),
            );
        }
        for b in d.get("thinking_blocks").and_then(Value::as_array).into_iter().flatten() {
            match b.get("type").and_then(Value::as_str) {
                Some("thinking") => {
                    if let Some(sig) = b.get("signature").and_then(Value::as_str) {
                        let i = self.ensure(
                            Block::Thinking,
                            json!({ "type": "thinking", "thinking": "", "signature": "" }),
                            out,
                        );
                        send(
                            out,
                            "content_block_delta",
                            &json!({ "type": "content_block_delta", "index": i,
                            "delta": { "type": "signature_delta", "signature": sig } }),
                        );
                    }
                }
                Some("redacted_thinking") => {
                    self.close(out);
                    let i = self.open_block(Block::Thinking, b.clone(), out);
                    let _ = i;
                    self.close(out);
                }
                _ => {}
            }
        }
        if let Some(t) = d.get("content").and_then(Value::as_str).filter(|t| !t.is_empty()) {
            let i = self.ensure(Block::Text, json!({ "type": "text", "text": "" }), out);
            send(
                out,
                "content_block_delta",
                &json!({ "type": "content_block_delta", "index": i,
                "delta": { "type": "text_delta", "text": t } }),
            );
        }
        for c in d.get("tool_calls").and_then(Value::as_array).into_iter().flatten() {
            let n = c.get("index").and_then(Value::as_u64).unwrap_or(0);
            if self.open.map(|(b, _)| b) != Some(Block::Tool(n)) {
                let block = json!({ "type": "tool_use", "id": c.get("id").cloned().unwrap_or(json!("")),
                    "name": c.pointer("/function/name").cloned().unwrap_or(json!("")), "input": {} });
                self.close(out);
                self.open_block(Block::Tool(n), block, out);
            }
            if let Some(a) = c.pointer("/function/arguments").and_then(Value::as_str).filter(|a| !a.is_empty()) {
                let i = self.open.map_or(0, |(_, i)| i);
                send(
                    out,
                    "content_block_delta",
                    &json!({ "type": "content_block_delta", "index": i,
                    "delta": { "type": "input_json_delta", "partial_json": a } }),
                );
            }
        }
        if let Some(f) = choice.get("finish_reason").and_then(Value::as_str) {
            self.stop = super::stop_reason(f);
        }
    }

    /// The hub stream ended; if it never said `[DONE]` the answer is incomplete.
    pub fn end(&mut self, out: &mut Vec<u8>) {
        if !self.finished {
            self.error(out, 502, "the provider's stream ended early; the answer is incomplete");
        }
    }

    fn start(&mut self, v: &Value, out: &mut Vec<u8>) {
        if self.started {
            return;
        }
        self.started = true;
        self.id = match v.get("id").and_then(Value::as_str) {
            Some(id) if id.starts_with("msg_") => id.to_string(),
            Some(id) if !id.is_empty() => format!("msg_{id}"),
            _ => "msg_tollgate".into(),
        };
        let usage = json!({ "input_tokens": self.prompt_estimate, "output_tokens": 0,
            "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0 });
        send(
            out,
            "message_start",
            &json!({ "type": "message_start", "message": {
            "id": self.id, "type": "message", "role": "assistant", "model": self.model, "content": [],
            "stop_reason": null, "stop_sequence": null, "usage": usage } }),
        );
        send(out, "ping", &json!({ "type": "ping" }));
    }

    fn ensure(&mut self, kind: Block, start: Value, out: &mut Vec<u8>) -> u64 {
        match self.open {
            Some((b, i)) if b == kind => i,
            _ => {
                self.close(out);
                self.open_block(kind, start, out)
            }
        }
    }

    fn open_block(&mut self, kind: Block, start: Value, out: &mut Vec<u8>) -> u64 {
        let i = self.next_index;
        self.next_index += 1;
        send(out, "content_block_start", &json!({ "type": "content_block_start", "index": i, "content_block": start }));
        self.open = Some((kind, i));
        i
    }

    fn close(&mut self, out: &mut Vec<u8>) {
        if let Some((_, i)) = self.open.take() {
            send(out, "content_block_stop", &json!({ "type": "content_block_stop", "index": i }));
        }
    }

    fn finish(&mut self, out: &mut Vec<u8>) {
        self.start(&Value::Null, out);
        self.close(out);
        send(
            out,
            "message_delta",
            &json!({ "type": "message_delta",
            "delta": { "stop_reason": self.stop, "stop_sequence": null }, "usage": super::usage(self.tokens) }),
        );
        send(out, "message_stop", &json!({ "type": "message_stop" }));
        self.finished = true;
    }

    fn error(&mut self, out: &mut Vec<u8>, status: u16, message: &str) {
        self.finished = true;
        send(out, "error", &super::error_body(status, message));
    }
}

fn send(out: &mut Vec<u8>, event: &str, data: &Value) {
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(event.as_bytes());
    out.extend_from_slice(b"\ndata: ");
    let _ = serde_json::to_writer(&mut *out, data);
    out.extend_from_slice(b"\n\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(out: &[u8]) -> Vec<String> {
        String::from_utf8_lossy(out).lines().filter_map(|l| l.strip_prefix("event: ")).map(str::to_string).collect()
    }

    #[test]
    fn text_then_tool_call_makes_two_blocks_in_order() {
        let mut s = FromHub::new("m", 5);
        let mut out = Vec::new();
        for d in [
            r#"{"id":"c1","choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}"#,
            r#"{"id":"c1","choices":[{"index":0,"delta":{"content":"Hi"}}]}"#,
            r#"{"id":"c1","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"f","arguments":""}}]}}]}"#,
            r#"{"id":"c1","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"a\":1}"}}]}}]}"#,
            r#"{"id":"c1","choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}"#,
            r#"{"id":"c1","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":4,"total_tokens":13}}"#,
            "[DONE]",
        ] {
            s.event(d.as_bytes(), &mut out);
        }
        assert_eq!(
            events(&out),
            [
                "message_start",
                "ping",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains(r#""stop_reason":"tool_use""#));
        assert!(text.contains(r#""input_tokens":9"#) && text.contains(r#""output_tokens":4"#));
        assert!(text.contains(r#""id":"call_1""#));
    }

    #[test]
    fn a_cut_or_failed_hub_stream_ends_with_an_error_event() {
        let mut s = FromHub::new("m", 0);
        let mut out = Vec::new();
        s.event(br#"{"id":"c","choices":[{"index":0,"delta":{"content":"x"}}]}"#, &mut out);
        s.end(&mut out);
        assert_eq!(events(&out).last().map(String::as_str), Some("error"));
        let mut s = FromHub::new("m", 0);
        let mut out = Vec::new();
        s.event(br#"{"error":{"message":"boom","type":"api_error","code":"upstream_broken"}}"#, &mut out);
        assert!(String::from_utf8(out).unwrap().contains("boom"));
    }
}
