//! A streamed answer kept once it is complete: the chunks are watched as
//! they pass to the client (nothing is held back) and assembled into the
//! chat completion they add up to. A stream that breaks off, or never says
//! `[DONE]`, is not kept.

use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Body;
use bytes::Bytes;
use http_body::Frame;
use serde_json::{Map, Value, json};

use crate::wire::sse::{event_data, split_events};

/// Called with the assembled completion when the stream ended properly.
pub type OnComplete = Box<dyn FnOnce(Value) + Send>;

/// Adds a complete stream up to the answer it carries.
pub type Assemble = fn(&[u8]) -> Option<Value>;

pub struct Tap {
    inner: Body,
    assemble: Assemble,
    seen: Vec<u8>,
    /// Too large to keep: watching stopped.
    overflow: bool,
    on_complete: Option<OnComplete>,
}

impl Tap {
    pub fn new(inner: Body, assemble: Assemble, on_complete: OnComplete) -> Tap {
        Tap { inner, assemble, seen: Vec::new(), overflow: false, on_complete: Some(on_complete) }
    }
}

impl http_body::Body for Tap {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(d) = frame.data_ref()
                    && !this.overflow
                {
                    if this.seen.len() + d.len() > super::MAX_ENTRY_BYTES {
                        this.overflow = true;
                        this.seen = Vec::new();
                    } else {
                        this.seen.extend_from_slice(d);
                    }
                }
            }
            Poll::Ready(Some(Err(_))) => this.overflow = true,
            Poll::Ready(None) => {
                if !this.overflow
                    && let Some(done) = this.on_complete.take()
                    && let Some(c) = (this.assemble)(&this.seen)
                {
                    done(c);
                }
            }
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }
}

/// The chat completion a complete OpenAI chunk stream adds up to; `None`
/// without the `[DONE]` terminator or a finish reason.
pub fn assemble(sse: &[u8]) -> Option<Value> {
    let mut done = false;
    let (mut id, mut model, mut created, mut usage) = (Value::Null, Value::Null, Value::Null, Value::Null);
    let mut content = String::new();
    let mut has_content = false;
    let mut calls: Vec<Map<String, Value>> = Vec::new();
    let mut finish = Value::Null;
    for event in split_events(sse) {
        let Some(data) = event_data(event) else { continue };
        if data == b"[DONE]" {
            done = true;
            continue;
        }
        let Ok(chunk) = serde_json::from_slice::<Value>(data) else { continue };
        for (slot, k) in [(&mut id, "id"), (&mut model, "model"), (&mut created, "created")] {
            if slot.is_null() {
                *slot = chunk.get(k).cloned().unwrap_or(Value::Null);
            }
        }
        if let Some(u) = chunk.get("usage").filter(|u| !u.is_null()) {
            usage = u.clone();
        }
        // Several choices (`n` > 1) interleave; this assembles one, so such a stream is not kept.
        if chunk.get("choices").and_then(Value::as_array).is_some_and(|c| {
            c.iter().any(|x| x.get("index").and_then(Value::as_u64).unwrap_or(0) != 0)
        }) {
            return None;
        }
        let Some(choice) = chunk.pointer("/choices/0") else { continue };
        if let Some(f) = choice.get("finish_reason").filter(|f| !f.is_null()) {
            finish = f.clone();
        }
        let Some(delta) = choice.get("delta") else { continue };
        if let Some(t) = delta.get("content").and_then(Value::as_str) {
            content.push_str(t);
            has_content = true;
        }
        for c in delta.get("tool_calls").and_then(Value::as_array).into_iter().flatten() {
            let i = c.get("index").and_then(Value::as_u64).unwrap_or(0) as usize;
            while calls.len() <= i {
                calls.push(Map::new());
            }
            let call = &mut calls[i];
            for k in ["id", "type"] {
                if let Some(v) = c.get(k) {
                    call.insert(k.into(), v.clone());
                }
            }
            let f = call.entry("function").or_insert_with(|| json!({ "name": "", "arguments": "" }));
            if let Some(n) = c.pointer("/function/name").and_then(Value::as_str) {
                f["name"] = Value::String(format!("{}{n}", f["name"].as_str().unwrap_or("")));
            }
            if let Some(a) = c.pointer("/function/arguments").and_then(Value::as_str) {
                f["arguments"] = Value::String(format!("{}{a}", f["arguments"].as_str().unwrap_or("")));
            }
        }
    }
    if !done || finish.is_null() {
        return None;
    }
    let mut message = json!({ "role": "assistant", "content": if has_content { Value::String(content) } else { Value::Null } });
    if !calls.is_empty() {
        message["tool_calls"] = Value::Array(calls.into_iter().map(Value::Object).collect());
    }
    let mut out = json!({ "id": id, "object": "chat.completion", "created": created, "model": model,
        "choices": [{ "index": 0, "message": message, "finish_reason": finish }] });
    if !usage.is_null() {
        out["usage"] = usage;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_add_up_to_the_completion_and_replay_to_the_same_chunks() {
        let sse = concat!(
            "data: {\"id\":\"c1\",\"created\":5,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"Hel\"}}]}\n\n",
            "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo\"}}]}\n\n",
            "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"t\",\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"{\\\"a\\\"\"}}]}}]}\n\n",
            "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\":1}\"}}]}}]}\n\n",
            "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\n",
            "data: {\"id\":\"c1\",\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":2,\"total_tokens\":5}}\n\n",
            "data: [DONE]\n\n",
        );
        let c = assemble(sse.as_bytes()).unwrap();
        assert_eq!(c["choices"][0]["message"]["content"], "Hello");
        assert_eq!(c["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"], "{\"a\":1}");
        assert_eq!(c["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(c["usage"]["total_tokens"], 5);
        let replay = crate::wire::openai::completion_as_sse(&c, true);
        assert_eq!(assemble(replay.as_bytes()).unwrap(), c, "a replay adds up to the same answer");
        assert!(assemble(&sse.as_bytes()[..sse.len() - 14]).is_none(), "no [DONE]: not kept");
        let two = sse.replacen("\"index\":0,\"delta\":{\"content\":\"lo\"}", "\"index\":1,\"delta\":{\"content\":\"lo\"}", 1);
        assert!(assemble(two.as_bytes()).is_none(), "n > 1: not kept");
    }
}
