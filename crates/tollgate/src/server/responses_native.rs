//! The Responses front's side of passing a request to OpenAI's own
//! Responses API: the request as the client wrote it, with the stored
//! conversation a `previous_response_id` names written out as items (so no
//! state at OpenAI is relied on, and a later turn may go to any provider),
//! and the answer — whole or streamed — kept as OpenAI wrote it.

use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Body;
use bytes::Bytes;
use http_body::Frame;
use serde_json::{Value, json};

/// This turn's input as items: a string as one user message, references
/// replaced by the items they name (`lookup`), everything else as sent.
pub fn turn_input(req: &Value, lookup: &dyn Fn(&str) -> Option<Value>) -> Vec<Value> {
    match req.get("input") {
        Some(Value::String(s)) => vec![json!({ "role": "user", "content": s })],
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| match i.get("type").and_then(Value::as_str) {
                Some("item_reference") => i.get("id").and_then(Value::as_str).and_then(lookup).unwrap_or_else(|| i.clone()),
                _ => i.clone(),
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// The body sent to OpenAI: the request with the history in `input` and
/// no `previous_response_id`.
pub fn body(req: &Value, history: Vec<Value>, input: &[Value]) -> Bytes {
    let mut r = req.clone();
    if let Some(o) = r.as_object_mut() {
        o.remove("previous_response_id");
        let mut items = history;
        items.extend(input.iter().cloned());
        o.insert("input".into(), Value::Array(items));
    }
    Bytes::from(r.to_string())
}

/// A Responses stream passed on unchanged, its final response handed to
/// `done` once seen (`response.completed` or `response.incomplete`).
pub struct Tapped {
    inner: Body,
    pending: Vec<u8>,
    done: Option<Box<dyn FnOnce(Value) + Send>>,
}

pub fn tap(inner: Body, done: Box<dyn FnOnce(Value) + Send>) -> Body {
    Body::new(Tapped { inner, pending: Vec::new(), done: Some(done) })
}

impl Tapped {
    fn look(&mut self, data: &[u8]) {
        if self.done.is_none() {
            return;
        }
        self.pending.extend_from_slice(data);
        let Some(end) = crate::wire::sse::last_boundary(&self.pending) else { return };
        let whole: Vec<u8> = self.pending.drain(..end).collect();
        for (_, data) in crate::wire::sse::sse_events(&whole) {
            if !crate::wire::sse::memfind(&data, b"\"response.completed\"")
                && !crate::wire::sse::memfind(&data, b"\"response.incomplete\"")
            {
                continue;
            }
            if let Ok(v) = serde_json::from_slice::<Value>(&data)
                && let Some(done) = self.done.take()
            {
                done(v["response"].clone());
                self.pending = Vec::new();
                return;
            }
        }
    }
}

impl http_body::Body for Tapped {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            let data = data.clone();
            this.look(&data);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_goes_into_input_and_references_are_resolved() {
        let stored = |id: &str| (id == "fc_1").then(|| json!({"type": "function_call", "id": "fc_1", "call_id": "c"}));
        let req = json!({"model": "m", "previous_response_id": "resp_1",
            "input": [{"type": "item_reference", "id": "fc_1"}, {"type": "function_call_output", "call_id": "c", "output": "o"}]});
        let input = turn_input(&req, &stored);
        assert_eq!(input[0]["call_id"], "c");
        let b: Value = serde_json::from_slice(&body(&req, vec![json!({"role": "user", "content": "before"})], &input)).unwrap();
        assert!(b.get("previous_response_id").is_none());
        assert_eq!(b["input"].as_array().unwrap().len(), 3);
        assert_eq!(turn_input(&json!({"input": "hi"}), &stored), vec![json!({"role": "user", "content": "hi"})]);
    }
}
