//! The Anthropic front (`/v1/messages`): the client's request becomes a hub
//! request for the stages (plus the original, for Anthropic providers), and
//! the answer goes back in Anthropic's shape — translated when a
//! non-Anthropic provider answered, as it came when an Anthropic one did.

use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, header};
use http_body::Frame;
use serde_json::Value;

use crate::error::RequestError;
use crate::providers::UpstreamReply;
use crate::translate::messages::{self, stream::FromHub};
use crate::wire::Dialect;
use crate::wire::sse::sse_events;

/// The hub request for a `/v1/messages` body, and why it is incomplete if
/// it is (an Anthropic-only feature: only an Anthropic provider can serve it).
pub fn prepare(bytes: &[u8]) -> Result<(Bytes, Option<String>), RequestError> {
    if bytes.is_empty() {
        return Err(RequestError::InvalidJson("the request body is empty; send a JSON object".into()));
    }
    let v: Value = serde_json::from_slice(bytes).map_err(|e| {
        RequestError::InvalidJson(format!("the request body is not valid JSON: {e}; send a JSON object"))
    })?;
    if !v.get("model").is_some_and(Value::is_string) {
        return Err(RequestError::MissingField("model"));
    }
    messages::validate(&v).map_err(|e| RequestError::InvalidBody(e.0))?;
    let (hub, problem) = match messages::to_hub(&v) {
        Ok(h) => (h, None),
        Err(e) => {
            // A stand-in the stages can read (model, stream, max_tokens);
            // no provider other than Anthropic will be sent it.
            let stand_in = serde_json::json!({
                "model": v["model"], "max_tokens": v["max_tokens"],
                "stream": v.get("stream").cloned().unwrap_or(Value::Bool(false)),
                "messages": [{ "role": "user", "content": "" }],
            });
            (stand_in, Some(e.0))
        }
    };
    Ok((Bytes::from(hub.to_string()), problem))
}

pub fn beta(headers: &HeaderMap) -> Option<String> {
    headers.get("anthropic-beta").and_then(|v| v.to_str().ok()).map(str::to_string)
}

/// The reply in Anthropic's shape.
pub fn respond(reply: UpstreamReply, model: &str, prompt_estimate: u64) -> Response {
    match reply {
        UpstreamReply::Complete { body, dialect: Dialect::Anthropic, .. } => json(body),
        UpstreamReply::Complete { body, .. } => {
            let hub: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            json(Bytes::from(messages::from_hub(&hub, model).to_string()))
        }
        UpstreamReply::Stream(body, Dialect::Anthropic) => stream(body),
        UpstreamReply::Stream(body, _) => stream(translated(body, FromHub::new(model, prompt_estimate))),
    }
}

pub fn json(body: Bytes) -> Response {
    let mut r = Response::new(Body::from(body));
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

pub fn stream(body: Body) -> Response {
    let mut r = Response::new(body);
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    r
}

/// Turns a hub stream's events into another API's, event by event.
pub trait FromHubStream: Send + Unpin + 'static {
    /// One hub SSE event's data (`[DONE]` included); appends what it becomes.
    fn event(&mut self, data: &[u8], out: &mut Vec<u8>);
    /// The hub body ended (cut short, unless the translator has finished).
    fn end(&mut self, out: &mut Vec<u8>);
    fn finished(&self) -> bool;
}

impl FromHubStream for FromHub {
    fn event(&mut self, data: &[u8], out: &mut Vec<u8>) {
        FromHub::event(self, data, out);
    }
    fn end(&mut self, out: &mut Vec<u8>) {
        FromHub::end(self, out);
    }
    fn finished(&self) -> bool {
        FromHub::finished(self)
    }
}

/// A hub SSE body re-emitted through `tr`.
pub fn translated(inner: Body, tr: impl FromHubStream) -> Body {
    Body::new(Translated { inner, tr, pending: Vec::new(), done: false })
}

/// A hub SSE body re-emitted as another API's events.
struct Translated<T> {
    inner: Body,
    tr: T,
    /// Bytes of an event not yet complete.
    pending: Vec<u8>,
    done: bool,
}

impl<T: FromHubStream> http_body::Body for Translated<T> {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        loop {
            if this.done {
                return Poll::Ready(None);
            }
            let mut out = Vec::new();
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    let Ok(data) = frame.into_data() else { continue };
                    this.pending.extend_from_slice(&data);
                    // Only whole events (up to the last blank line) are read.
                    let Some(end) = crate::wire::sse::last_boundary(&this.pending) else { continue };
                    let whole: Vec<u8> = this.pending.drain(..end).collect();
                    for (_, data) in sse_events(&whole) {
                        this.tr.event(&data, &mut out);
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    this.done = true;
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Ready(None) => {
                    this.done = true;
                    this.tr.end(&mut out);
                }
                Poll::Pending => return Poll::Pending,
            }
            if this.tr.finished() {
                this.done = true;
            }
            if !out.is_empty() {
                return Poll::Ready(Some(Ok(Frame::data(Bytes::from(out)))));
            }
        }
    }
}
