//! Relays an upstream SSE body to the client as it arrives.
//!
//! The relay is the response body itself (no task, no channel): each poll
//! from the client connection polls the upstream once, so backpressure is
//! end to end, and a client that goes away drops the relay and with it the
//! upstream connection — which cancels the upstream call at once.
//!
//! Before the response starts, `first_event` waits for the first whole
//! event: an error event, a cut or silence at that point is returned as an
//! error so routing can still retry or fall back. After it, an upstream
//! that ends without its terminator (`data: [DONE]`, Anthropic's
//! `message_stop`, …), breaks, goes silent for longer than the idle timeout
//! or passes the total deadline ends the client stream with an error event
//! in the client's dialect — never a clean end, never a splice.
//!
//! An OpenAI-family stream is relayed as whole events, byte for byte. Any
//! other provider's stream is decoded (SSE or the AWS event-stream) and
//! each event handed to that provider's translator, which writes the hub
//! (OpenAI chunk) events the client receives.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::HeaderValue;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use tokio::time::{Instant, Sleep};

use super::Dialect;
use crate::error::UpstreamError;
use crate::translate::{StreamFail, ToOpenAiStream, UpEvent};
use crate::wire::eventstream::EventStreamDecoder;
use crate::wire::openai::{error_event, peek_error_message};
use crate::wire::sse::{SseFramer, sse_events};

/// How upstream bytes become client events.
pub enum Mode {
    /// OpenAI SSE relayed as whole events; the end is `data: [DONE]`.
    Pass,
    /// SSE events, each translated.
    Sse(Box<dyn ToOpenAiStream>),
    /// AWS event-stream messages, each translated.
    Aws(Box<dyn ToOpenAiStream>, Box<EventStreamDecoder>),
}

pub struct SseRelay {
    upstream: Incoming,
    framer: SseFramer,
    mode: Mode,
    /// The shape of the error event a failure after the first event becomes.
    dialect: Dialect,
    /// The upstream ended and the translator's closing events went out.
    ended: bool,
    provider: Box<str>,
    idle: Duration,
    /// The first-token limit, for the error message.
    first_window: Duration,
    idle_timer: Pin<Box<Sleep>>,
    deadline: Pin<Box<Sleep>>,
    /// The first events, held by `first_event` until the client polls.
    head: Option<Bytes>,
    finished: bool,
}

enum Step {
    Data(Bytes),
    End,
    Fail {
        message: String,
        code: &'static str,
    },
    /// The provider reported an error in the stream, standing for this status.
    Status {
        status: u16,
        message: String,
    },
}

impl SseRelay {
    /// `first_by` bounds the wait for the first event; `idle` each gap after it.
    pub fn new(
        upstream: Incoming,
        provider: Box<str>,
        idle: Duration,
        first: (Instant, Duration),
        deadline: Instant,
    ) -> SseRelay {
        let (first_by, first_window) = first;
        SseRelay {
            upstream,
            framer: SseFramer::default(),
            mode: Mode::Pass,
            dialect: Dialect::OpenAi,
            ended: false,
            provider,
            idle,
            first_window,
            idle_timer: Box::pin(tokio::time::sleep_until(first_by)),
            deadline: Box::pin(tokio::time::sleep_until(deadline)),
            head: None,
            finished: false,
        }
    }

    /// Decode and translate with `mode`; fail in `dialect`'s shape.
    pub fn with_mode(mut self, mode: Mode, dialect: Dialect) -> SseRelay {
        self.mode = mode;
        self.dialect = dialect;
        self
    }

    /// Waits for the first whole event. An error event (e.g. a rate limit
    /// reported in-stream), a cut or a timeout before it is an error.
    pub async fn first_event(&mut self) -> Result<(), UpstreamError> {
        let step = std::future::poll_fn(|cx| self.poll_step(cx)).await;
        let provider = self.provider.to_string();
        match step {
            Step::Data(bytes) => {
                if matches!(self.mode, Mode::Pass)
                    && let Some(err) = in_stream_error(&bytes, &provider)
                {
                    return Err(err);
                }
                self.head = Some(bytes);
                Ok(())
            }
            Step::End => {
                Err(UpstreamError::Broken { provider, message: "the stream ended before its first event".into() })
            }
            Step::Fail { code: "upstream_timeout", .. } => {
                Err(UpstreamError::Timeout { provider, phase: "first token", after: self.first_window })
            }
            Step::Fail { message, .. } => Err(UpstreamError::Broken { provider, message }),
            Step::Status { status, message } => {
                Err(UpstreamError::Status { provider, status, message, retry_after: None })
            }
        }
    }

    /// Hands whole upstream bytes to the decoder and translator.
    fn translate(&mut self, data: Bytes) -> Result<Vec<u8>, StreamFail> {
        let mut out = Vec::new();
        match &mut self.mode {
            Mode::Pass => out.extend_from_slice(&data), // not reached: pass-through never copies
            Mode::Sse(t) => {
                for (event, payload) in sse_events(&data) {
                    t.event(UpEvent::Sse { event, data: &payload }, &mut out)?;
                }
            }
            Mode::Aws(t, dec) => {
                dec.push(&data);
                while let Some(m) = dec.next_message().map_err(StreamFail::Broken)? {
                    t.event(
                        UpEvent::Aws { message_type: &m.message_type, kind: &m.kind, payload: &m.payload },
                        &mut out,
                    )?;
                }
            }
        }
        Ok(out)
    }

    fn fail_step(&self, f: StreamFail) -> Step {
        match f {
            StreamFail::Status { status, message } => Step::Status {
                status,
                message: format!("provider `{}` reported in the stream: {message}", self.provider),
            },
            StreamFail::Broken(m) => {
                Step::Fail { message: format!("provider `{}` stream: {m}", self.provider), code: "upstream_broken" }
            }
        }
    }

    fn poll_step(&mut self, cx: &mut Context<'_>) -> Poll<Step> {
        loop {
            match Pin::new(&mut self.upstream).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    let Ok(data) = frame.into_data() else { continue }; // trailers carry nothing for SSE
                    let next = Instant::now() + self.idle;
                    self.idle_timer.as_mut().reset(next);
                    let whole = if matches!(self.mode, Mode::Aws(..)) { Ok(data) } else { self.framer.push(data) };
                    match whole {
                        Ok(out) if out.is_empty() => continue,
                        // Pass-through: the whole events go on as they are, no copy.
                        Ok(out) if matches!(self.mode, Mode::Pass) => return Poll::Ready(Step::Data(out)),
                        Ok(out) => match self.translate(out) {
                            Ok(o) if o.is_empty() => continue,
                            Ok(o) => return Poll::Ready(Step::Data(Bytes::from(o))),
                            Err(f) => return Poll::Ready(self.fail_step(f)),
                        },
                        Err(_) => {
                            let message = format!("provider `{}` sent an oversized stream event", self.provider);
                            return Poll::Ready(Step::Fail { message, code: "upstream_broken" });
                        }
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    let message = format!("provider `{}` stream broke: {e}", self.provider);
                    return Poll::Ready(Step::Fail { message, code: "upstream_broken" });
                }
                Poll::Ready(None) if self.ended => return Poll::Ready(Step::End),
                Poll::Ready(None) if !matches!(self.mode, Mode::Pass) => {
                    self.ended = true;
                    let mut out = Vec::new();
                    let r = match &mut self.mode {
                        Mode::Sse(t) | Mode::Aws(t, _) => t.end(&mut out),
                        Mode::Pass => Ok(()),
                    };
                    return Poll::Ready(match r {
                        Ok(()) if out.is_empty() => Step::End,
                        Ok(()) => Step::Data(Bytes::from(out)),
                        Err(f) => self.fail_step(f),
                    });
                }
                Poll::Ready(None) if self.framer.done() => return Poll::Ready(Step::End),
                Poll::Ready(None) => {
                    let message = format!(
                        "provider `{}` ended the stream before [DONE]; the answer is incomplete",
                        self.provider
                    );
                    return Poll::Ready(Step::Fail { message, code: "upstream_stream_cut" });
                }
                Poll::Pending => break,
            }
        }
        if self.deadline.as_mut().poll(cx).is_ready() {
            let message = format!("provider `{}` stream passed its total time limit", self.provider);
            return Poll::Ready(Step::Fail { message, code: "upstream_timeout" });
        }
        if self.idle_timer.as_mut().poll(cx).is_ready() {
            let message = format!("provider `{}` sent nothing for {}ms", self.provider, self.idle.as_millis());
            return Poll::Ready(Step::Fail { message, code: "upstream_timeout" });
        }
        Poll::Pending
    }
}

/// An OpenAI-style `data: {"error": …}` as the first event, read as the
/// status it stands for so fallback rules (e.g. on 429) apply to it.
fn in_stream_error(events: &[u8], provider: &str) -> Option<UpstreamError> {
    let first = events.split(|&b| b == b'\n').find_map(|l| l.strip_prefix(b"data:"))?;
    let data = first.strip_prefix(b" ").unwrap_or(first);
    if !data.starts_with(b"{\"error\"") {
        return None;
    }
    #[derive(serde::Deserialize)]
    struct Peek {
        error: Detail,
    }
    #[derive(serde::Deserialize)]
    struct Detail {
        #[serde(default, rename = "type")]
        kind: Option<String>,
        #[serde(default)]
        code: Option<serde_json::Value>,
        #[serde(default)]
        status: Option<u16>,
    }
    let detail = serde_json::from_slice::<Peek>(data).ok()?.error;
    let numeric =
        |v: &serde_json::Value| v.as_u64().or_else(|| v.as_str()?.parse().ok()).and_then(|n| u16::try_from(n).ok());
    let kind = detail.kind.unwrap_or_default();
    let status =
        detail.status.or_else(|| detail.code.as_ref().and_then(numeric)).filter(|s| (400..=599).contains(s)).unwrap_or(
            if kind.contains("rate_limit") {
                429
            } else if kind.contains("overloaded") {
                529
            } else {
                500
            },
        );
    let message = crate::redact::text(&peek_error_message(data).unwrap_or_else(|| "error event in the stream".into()));
    let retry_after = None::<HeaderValue>;
    Some(UpstreamError::Status { provider: provider.into(), status, message, retry_after })
}

impl SseRelay {
    fn fail(&mut self, message: String, code: &str) -> Poll<Option<Result<Frame<Bytes>, std::convert::Infallible>>> {
        self.finished = true;
        tracing::warn!(provider = %self.provider, %message, "upstream stream failed");
        let event = match self.dialect {
            Dialect::OpenAi => error_event(&message, "api_error", code),
            Dialect::Anthropic => {
                let status = if code == "upstream_timeout" { 504 } else { 502 };
                let body = crate::translate::messages::error_body(status, &message);
                format!("event: error\ndata: {body}\n\n").into_bytes()
            }
            Dialect::Responses => {
                let body = serde_json::json!({ "type": "error", "code": code, "message": message, "param": null });
                format!("event: error\ndata: {body}\n\n").into_bytes()
            }
        };
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(event)))))
    }
}

impl Body for SseRelay {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if let Some(head) = this.head.take() {
            return Poll::Ready(Some(Ok(Frame::data(head))));
        }
        if this.finished {
            return Poll::Ready(None);
        }
        match this.poll_step(cx) {
            Poll::Ready(Step::Data(b)) => Poll::Ready(Some(Ok(Frame::data(b)))),
            Poll::Ready(Step::End) => {
                this.finished = true;
                Poll::Ready(None)
            }
            Poll::Ready(Step::Fail { message, code }) => this.fail(message, code),
            Poll::Ready(Step::Status { status, message }) => {
                let code = if status == 429 { "upstream_rate_limited" } else { "upstream_error" };
                this.fail(message, code)
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.finished && self.head.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_stream_errors_become_statuses() {
        let s = |body: &str| match in_stream_error(body.as_bytes(), "p") {
            Some(UpstreamError::Status { status, .. }) => Some(status),
            _ => None,
        };
        assert_eq!(s("data: {\"error\":{\"message\":\"slow down\",\"type\":\"rate_limit_error\"}}\n\n"), Some(429));
        assert_eq!(s("data: {\"error\":{\"message\":\"x\",\"code\":\"503\"}}\n\n"), Some(503));
        assert_eq!(s("data: {\"error\":{\"message\":\"x\",\"type\":\"server_error\"}}\n\n"), Some(500));
        assert_eq!(s("data: {\"choices\":[]}\n\n"), None);
    }
}
