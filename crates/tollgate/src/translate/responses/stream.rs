//! A hub (OpenAI chunk) stream as the Responses API's event sequence:
//! `response.created`, `response.in_progress`, then each output item as
//! `response.output_item.added`, its parts and deltas
//! (`response.content_part.added`, `response.output_text.delta`…,
//! `response.function_call_arguments.delta`…, reasoning summary deltas),
//! their `….done` events and `response.output_item.done`, and finally
//! `response.completed` (or `response.incomplete`) with the whole response.
//! A hub error event, or a hub stream that ends without `[DONE]`, becomes
//! an `error` event and `response.failed`. Every event carries the
//! `sequence_number` the official SDKs read.

use serde_json::{Value, json};

use super::{Echo, function_call, output_text, reasoning_item, status, usage_object};
use crate::translate::hub::Tokens;

#[derive(Debug, Clone, PartialEq)]
enum Open {
    Reasoning { id: String, text: String, blocks: Vec<Value> },
    Message { id: String, text: String },
    /// A function call for this hub tool-call index.
    Call { index: u64, id: String, call_id: String, name: String, arguments: String },
}

/// What a finished stream leaves behind: the final response and the
/// assistant message (hub shape) for a later turn to continue from.
pub struct Finished {
    pub response: Value,
    pub message: Value,
}

pub struct FromHub {
    id: String,
    created_at: u64,
    req: Value,
    model: String,
    ids: Box<dyn FnMut(&str) -> String + Send>,
    seq: u64,
    started: bool,
    open: Option<Open>,
    /// Items already closed, in output order.
    done: Vec<Value>,
    /// The hub assistant message being rebuilt, for storage.
    text: String,
    reasoning: String,
    blocks: Vec<Value>,
    calls: Vec<Value>,
    finish: Option<String>,
    tokens: Option<Tokens>,
    finished: Option<Finished>,
    ended: bool,
}

impl FromHub {
    pub fn new(id: String, created_at: u64, req: Value, ids: Box<dyn FnMut(&str) -> String + Send>) -> FromHub {
        let model = req.get("model").and_then(Value::as_str).unwrap_or("").to_string();
        FromHub {
            id,
            created_at,
            req,
            model,
            ids,
            seq: 0,
            started: false,
            open: None,
            done: Vec::new(),
            text: String::new(),
            reasoning: String::new(),
            blocks: Vec::new(),
            calls: Vec::new(),
            finish: None,
            tokens: None,
            finished: None,
            ended: false,
        }
    }

    /// True once the last event (`response.completed`/`failed`) is written.
    pub fn ended(&self) -> bool {
        self.ended
    }

    /// The completed response, once (for the store).
    pub fn take_finished(&mut self) -> Option<Finished> {
        self.finished.take()
    }

    /// One hub SSE event's data (`[DONE]` included).
    pub fn event(&mut self, data: &[u8], out: &mut Vec<u8>) {
        if self.ended {
            return;
        }
        if data == b"[DONE]" {
            return self.complete(out);
        }
        let Ok(v) = serde_json::from_slice::<Value>(data) else {
            return self.fail(out, "upstream_error", "the provider sent a malformed stream event");
        };
        if let Some(e) = v.get("error") {
            let message = e.get("message").and_then(Value::as_str).unwrap_or("the upstream stream failed");
            let code = e.get("code").and_then(Value::as_str).unwrap_or("upstream_error").to_string();
            return self.fail(out, &code, message);
        }
        if let Some(m) = v.get("model").and_then(Value::as_str).filter(|m| !m.is_empty()) {
            self.model = m.to_string();
        }
        self.start(out);
        if let Some(u) = v.get("usage").filter(|u| u.is_object()) {
            self.tokens = Some(Tokens::from_openai(u));
        }
        let Some(choice) = v.pointer("/choices/0") else { return };
        if let Some(f) = choice.get("finish_reason").and_then(Value::as_str) {
            self.finish = Some(f.to_string());
        }
        let d = &choice["delta"];
        if let Some(r) = d.get("reasoning_content").and_then(Value::as_str).filter(|r| !r.is_empty()) {
            self.reasoning_delta(r, out);
        }
        if let Some(blocks) = d.get("thinking_blocks").and_then(Value::as_array).filter(|b| !b.is_empty()) {
            self.reasoning_delta("", out);
            if let Some(Open::Reasoning { blocks: open, .. }) = &mut self.open {
                open.extend(blocks.iter().cloned());
            }
            self.blocks.extend(blocks.iter().cloned());
        }
        if let Some(t) = d.get("content").and_then(Value::as_str).filter(|t| !t.is_empty()) {
            self.text_delta(t, out);
        }
        for c in d.get("tool_calls").and_then(Value::as_array).into_iter().flatten() {
            self.call_delta(c, out);
        }
    }

    /// The hub body ended: a stream without `[DONE]` was cut short.
    pub fn end(&mut self, out: &mut Vec<u8>) {
        if !self.ended {
            self.fail(out, "upstream_error", "the upstream stream ended before it was complete");
        }
    }

    fn start(&mut self, out: &mut Vec<u8>) {
        if self.started {
            return;
        }
        self.started = true;
        let r = self.response("in_progress", Vec::new(), None);
        self.send(out, "response.created", json!({ "response": r }));
        self.send(out, "response.in_progress", json!({ "response": r }));
    }

    fn index(&self) -> usize {
        self.done.len()
    }

    fn reasoning_delta(&mut self, text: &str, out: &mut Vec<u8>) {
        if !matches!(self.open, Some(Open::Reasoning { .. })) {
            self.close(out);
            let id = (self.ids)("rs");
            let idx = self.index();
            self.send(out, "response.output_item.added", json!({ "output_index": idx, "item": reasoning_item(&id, "", None) }));
            self.send(out, "response.reasoning_summary_part.added", json!({
                "item_id": id, "output_index": idx, "summary_index": 0,
                "part": { "type": "summary_text", "text": "" },
            }));
            self.open = Some(Open::Reasoning { id, text: String::new(), blocks: Vec::new() });
        }
        if text.is_empty() {
            return;
        }
        self.reasoning.push_str(text);
        let idx = self.index();
        if let Some(Open::Reasoning { id, text: acc, .. }) = &mut self.open {
            acc.push_str(text);
            let id = id.clone();
            self.send(out, "response.reasoning_summary_text.delta", json!({
                "item_id": id, "output_index": idx, "summary_index": 0, "delta": text,
            }));
        }
    }

    fn text_delta(&mut self, text: &str, out: &mut Vec<u8>) {
        if !matches!(self.open, Some(Open::Message { .. })) {
            self.close(out);
            let id = (self.ids)("msg");
            let idx = self.index();
            self.send(out, "response.output_item.added", json!({ "output_index": idx, "item": {
                "type": "message", "id": id, "status": "in_progress", "role": "assistant", "content": [],
            } }));
            self.send(out, "response.content_part.added", json!({
                "item_id": id, "output_index": idx, "content_index": 0, "part": output_text(""),
            }));
            self.open = Some(Open::Message { id, text: String::new() });
        }
        self.text.push_str(text);
        let idx = self.index();
        if let Some(Open::Message { id, text: acc }) = &mut self.open {
            acc.push_str(text);
            let id = id.clone();
            self.send(out, "response.output_text.delta", json!({
                "item_id": id, "output_index": idx, "content_index": 0, "delta": text, "logprobs": [],
            }));
        }
    }

    fn call_delta(&mut self, c: &Value, out: &mut Vec<u8>) {
        let index = c.get("index").and_then(Value::as_u64).unwrap_or(0);
        let same = matches!(&self.open, Some(Open::Call { index: i, .. }) if *i == index);
        if !same {
            self.close(out);
            let id = (self.ids)("fc");
            let call_id = c.get("id").and_then(Value::as_str).unwrap_or("").to_string();
            let name = c.pointer("/function/name").and_then(Value::as_str).unwrap_or("").to_string();
            let idx = self.index();
            self.send(out, "response.output_item.added", json!({
                "output_index": idx, "item": function_call(&id, &call_id, &name, "", "in_progress"),
            }));
            self.open = Some(Open::Call { index, id, call_id, name, arguments: String::new() });
        }
        let Some(delta) = c.pointer("/function/arguments").and_then(Value::as_str).filter(|a| !a.is_empty()) else {
            return;
        };
        let idx = self.index();
        if let Some(Open::Call { id, arguments, .. }) = &mut self.open {
            arguments.push_str(delta);
            let id = id.clone();
            self.send(out, "response.function_call_arguments.delta", json!({
                "item_id": id, "output_index": idx, "delta": delta,
            }));
        }
    }

    /// Closes the open item with its `….done` events.
    fn close(&mut self, out: &mut Vec<u8>) {
        let Some(open) = self.open.take() else { return };
        let idx = self.index();
        let item = match open {
            Open::Reasoning { id, text, blocks } => {
                let part = json!({ "type": "summary_text", "text": text });
                self.send(out, "response.reasoning_summary_text.done", json!({
                    "item_id": id, "output_index": idx, "summary_index": 0, "text": text,
                }));
                self.send(out, "response.reasoning_summary_part.done", json!({
                    "item_id": id, "output_index": idx, "summary_index": 0, "part": part,
                }));
                reasoning_item(&id, &text, Some(&blocks))
            }
            Open::Message { id, text } => {
                self.send(out, "response.output_text.done", json!({
                    "item_id": id, "output_index": idx, "content_index": 0, "text": text, "logprobs": [],
                }));
                self.send(out, "response.content_part.done", json!({
                    "item_id": id, "output_index": idx, "content_index": 0, "part": output_text(&text),
                }));
                json!({ "type": "message", "id": id, "status": "completed", "role": "assistant",
                        "content": [output_text(&text)] })
            }
            Open::Call { id, call_id, name, arguments, .. } => {
                self.send(out, "response.function_call_arguments.done", json!({
                    "item_id": id, "output_index": idx, "name": name, "arguments": arguments,
                }));
                self.calls.push(crate::translate::hub::tool_call(&call_id, &name, arguments.clone()));
                function_call(&id, &call_id, &name, &arguments, "completed")
            }
        };
        self.send(out, "response.output_item.done", json!({ "output_index": idx, "item": item }));
        self.done.push(item);
    }

    fn complete(&mut self, out: &mut Vec<u8>) {
        self.start(out);
        self.close(out);
        let status = status(self.finish.as_deref());
        let r = self.response(status, self.done.clone(), self.tokens);
        let kind = if status == "completed" { "response.completed" } else { "response.incomplete" };
        self.send(out, kind, json!({ "response": r }));
        self.ended = true;
        let mut message = json!({
            "role": "assistant",
            "content": if self.text.is_empty() { Value::Null } else { Value::String(std::mem::take(&mut self.text)) },
        });
        if !self.reasoning.is_empty() {
            message["reasoning_content"] = Value::String(std::mem::take(&mut self.reasoning));
        }
        if !self.blocks.is_empty() {
            message["thinking_blocks"] = Value::Array(std::mem::take(&mut self.blocks));
        }
        if !self.calls.is_empty() {
            message["tool_calls"] = Value::Array(std::mem::take(&mut self.calls));
        }
        self.finished = Some(Finished { response: r, message });
    }

    fn fail(&mut self, out: &mut Vec<u8>, code: &str, message: &str) {
        self.start(out);
        self.send(out, "error", json!({ "code": code, "message": message, "param": Value::Null }));
        let done = std::mem::take(&mut self.done);
        let mut r = self.response("failed", done, self.tokens);
        r["error"] = json!({ "code": code, "message": message });
        self.send(out, "response.failed", json!({ "response": r }));
        self.ended = true;
    }

    fn response(&self, status: &str, output: Vec<Value>, usage: Option<Tokens>) -> Value {
        let echo = Echo { id: &self.id, created_at: self.created_at, req: &self.req };
        let mut r = echo.response(&self.model, status, output, usage);
        if status == "in_progress" || status == "failed" {
            r["usage"] = Value::Null;
        }
        if let (Some(t), "failed") = (usage, status) {
            r["usage"] = usage_object(t);
        }
        r
    }

    /// One SSE event: `event:` names the type, as OpenAI sends it.
    fn send(&mut self, out: &mut Vec<u8>, kind: &str, mut data: Value) {
        data["type"] = Value::String(kind.to_string());
        data["sequence_number"] = Value::from(self.seq);
        self.seq += 1;
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(kind.as_bytes());
        out.extend_from_slice(b"\ndata: ");
        let _ = serde_json::to_writer(&mut *out, &data);
        out.extend_from_slice(b"\n\n");
    }
}

/// An OpenAI Responses stream relayed to a Responses client as it is: each
/// event re-emitted unchanged, the end checked (`response.completed`,
/// `response.incomplete`), and `error` or `response.failed` turned into a
/// failure (before the first event: a fallback).
#[derive(Default)]
pub struct Native {
    ended: bool,
}

impl crate::translate::ToOpenAiStream for Native {
    fn event(
        &mut self,
        ev: crate::translate::UpEvent<'_>,
        out: &mut Vec<u8>,
    ) -> std::result::Result<(), crate::translate::StreamFail> {
        let crate::translate::UpEvent::Sse { event, data } = ev else { return Ok(()) };
        let kind = match event {
            Some(e) => e.to_string(),
            None => serde_json::from_slice::<Value>(data)
                .ok()
                .and_then(|v| v.get("type").and_then(Value::as_str).map(str::to_string))
                .unwrap_or_default(),
        };
        if kind == "error" || kind == "response.failed" {
            let v: Value = serde_json::from_slice(data).unwrap_or(Value::Null);
            let e = if kind == "error" { &v } else { &v["response"]["error"] };
            let message = e.get("message").and_then(Value::as_str).unwrap_or("the upstream stream failed").to_string();
            return Err(crate::translate::StreamFail::Status { status: 502, message });
        }
        if kind == "response.completed" || kind == "response.incomplete" {
            self.ended = true;
        }
        crate::translate::reemit(event, data, out);
        Ok(())
    }

    fn end(&mut self, _out: &mut Vec<u8>) -> std::result::Result<(), crate::translate::StreamFail> {
        if self.ended {
            Ok(())
        } else {
            Err(crate::translate::StreamFail::Broken(
                "the stream ended before response.completed; the answer is incomplete".into(),
            ))
        }
    }
}
