//! Relays an upstream SSE body to the client as it arrives.
//!
//! The relay is the response body itself (no task, no channel): each poll
//! from the client connection polls the upstream once, so backpressure is
//! end to end, and a client that goes away drops the relay and with it the
//! upstream connection — which cancels the upstream call at once.
//!
//! An upstream that ends without `data: [DONE]`, errors, goes silent for
//! longer than the idle timeout or passes the total deadline ends the client
//! stream with an OpenAI-shaped error event, never with a clean end.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use tokio::time::{Instant, Sleep};

use crate::wire::openai::error_event;
use crate::wire::sse::SseFramer;

pub struct SseRelay {
    upstream: Incoming,
    framer: SseFramer,
    provider: Box<str>,
    idle: Duration,
    idle_timer: Pin<Box<Sleep>>,
    deadline: Pin<Box<Sleep>>,
    finished: bool,
}

impl SseRelay {
    pub fn new(upstream: Incoming, provider: Box<str>, idle: Duration, deadline: Instant) -> SseRelay {
        SseRelay {
            upstream,
            framer: SseFramer::default(),
            provider,
            idle,
            idle_timer: Box::pin(tokio::time::sleep(idle)),
            deadline: Box::pin(tokio::time::sleep_until(deadline)),
            finished: false,
        }
    }

    fn fail(&mut self, message: String, code: &str) -> Poll<Option<Result<Frame<Bytes>, std::convert::Infallible>>> {
        self.finished = true;
        tracing::warn!(provider = %self.provider, %message, "upstream stream failed");
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(error_event(&message, "api_error", code))))))
    }
}

impl Body for SseRelay {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if this.finished {
            return Poll::Ready(None);
        }
        loop {
            match Pin::new(&mut this.upstream).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    let Ok(data) = frame.into_data() else { continue }; // trailers carry nothing for SSE
                    let deadline = Instant::now() + this.idle;
                    this.idle_timer.as_mut().reset(deadline);
                    match this.framer.push(data) {
                        Ok(out) if out.is_empty() => continue,
                        Ok(out) => return Poll::Ready(Some(Ok(Frame::data(out)))),
                        Err(_) => {
                            let msg = format!("provider `{}` sent an oversized stream event", this.provider);
                            return this.fail(msg, "upstream_broken");
                        }
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    let msg = format!("provider `{}` stream broke: {e}", this.provider);
                    return this.fail(msg, "upstream_broken");
                }
                Poll::Ready(None) => {
                    if this.framer.done() {
                        this.finished = true;
                        return Poll::Ready(None);
                    }
                    let msg = format!("provider `{}` ended the stream before [DONE]; the answer is incomplete", this.provider);
                    return this.fail(msg, "upstream_stream_cut");
                }
                Poll::Pending => break,
            }
        }
        if this.deadline.as_mut().poll(cx).is_ready() {
            let msg = format!("provider `{}` stream passed its total time limit", this.provider);
            return this.fail(msg, "upstream_timeout");
        }
        if this.idle_timer.as_mut().poll(cx).is_ready() {
            let msg = format!("provider `{}` sent nothing for {}ms", this.provider, this.idle.as_millis());
            return this.fail(msg, "upstream_timeout");
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.finished
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}
