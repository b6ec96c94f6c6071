//! Stage 12: settle real usage against rate-limit token reservations and
//! budgets. A complete answer settles at once. A stream settles when it
//! ends — at the usage its final chunk reports — or, if the client goes
//! away first, at the tokens actually delivered (estimated from the content
//! that went out), so a cancelled stream is charged for what it consumed
//! and its reservation is never leaked.

use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Body;
use bytes::Bytes;
use http_body::Frame;

use super::RequestCtx;
use crate::admission::Holds;
use crate::pricing::Price;
use crate::providers::UpstreamReply;
use crate::translate::hub::Tokens;
use crate::wire::Dialect;
use crate::wire::openai::Usage;
use crate::wire::sse::{event_data, memfind as find, split_events};

/// The log entry of a stream, handed from stage 13 to the stream's end.
pub type LogSlot = std::sync::Arc<std::sync::Mutex<Option<crate::reqlog::LogEntry>>>;

/// Counts tokens and cost for the metrics.
pub fn count(metrics: &crate::metrics::Metrics, model: &str, provider: &str, usage: &Usage, price: Option<Price>) {
    use crate::metrics::{ModelLabels, TokenLabels};
    for (kind, n) in [("prompt", usage.prompt_tokens), ("completion", usage.completion_tokens)] {
        if n > 0 {
            let labels = TokenLabels { model: model.to_string(), provider: provider.to_string(), kind };
            metrics.tokens.get_or_create(&labels).inc_by(n);
        }
    }
    if let Some(p) = price {
        let usd = crate::pricing::nanos_to_usd(p.cost(usage));
        metrics
            .cost_usd
            .get_or_create(&ModelLabels { model: model.to_string(), provider: provider.to_string() })
            .inc_by(usd);
    }
}

/// `request` is the client's body: tokenized for an estimate only when the
/// provider reports no usage.
pub fn run(ctx: &mut RequestCtx, reply: UpstreamReply, strip_usage: bool, request: &Bytes) -> UpstreamReply {
    // A cache hit spends no tokens and costs nothing: it settles at zero.
    let free = ctx.cache.as_ref().is_some_and(|c| c.status == crate::cache::Status::Hit);
    let price = if free { None } else { ctx.target.as_ref().and_then(|t| t.price) };
    let (model, provider) = super::record::labels(ctx);
    match reply {
        UpstreamReply::Complete { body, usage, dialect } => {
            if free {
                ctx.usage = Some(Usage::default());
            } else if usage.is_none() {
                // No usage from the provider: an estimate with the tokenizer
                // (marked as such), never zero.
                let prompt = crate::translate::tokens::prompt(request);
                let completion = crate::translate::tokens::completion(&body);
                ctx.usage = Some(Usage {
                    prompt_tokens: prompt,
                    completion_tokens: completion,
                    total_tokens: prompt + completion,
                    ..Default::default()
                });
                ctx.usage_estimated = true;
            }
            if let Some(u) = &ctx.usage {
                count(&ctx.adm.shared.metrics, &model, &provider, u, price);
            }
            if !ctx.adm.holds.is_empty() {
                let used = ctx.usage.clone();
                ctx.adm.holds.settle(used.as_ref(), price);
            }
            UpstreamReply::Complete { body, usage, dialect }
        }
        UpstreamReply::Stream(body, dialect) => {
            let slot = LogSlot::default();
            ctx.log_slot = Some(slot.clone());
            let metered = Metered {
                log: slot,
                reqlog: ctx.adm.shared.reqlog.clone(),
                started: ctx.adm.started,
                inner: body,
                holds: std::mem::take(&mut ctx.adm.holds),
                decisions: ctx.adm.guard.decisions.clone(),
                metrics: ctx.adm.shared.metrics.clone(),
                labels: (model, provider),
                price,
                usage: None,
                anthropic: (dialect == Dialect::Anthropic).then(Tokens::default),
                responses: dialect == Dialect::Responses,
                delivered: Vec::new(),
                request: request.clone(),
                strip_usage,
                free,
                done: false,
            };
            UpstreamReply::Stream(Body::new(metered), dialect)
        }
    }
}

/// A stream body that watches the events going out for usage and content,
/// and settles the request's holds when the stream ends or is dropped.
struct Metered {
    log: LogSlot,
    reqlog: crate::reqlog::RequestLog,
    started: std::time::Instant,
    inner: Body,
    holds: Holds,
    /// Guardrail decisions, some made as the stream passed.
    decisions: crate::admission::guardrails::Decisions,
    metrics: std::sync::Arc<crate::metrics::Metrics>,
    /// (model, provider) for the metrics.
    labels: (String, String),
    price: Option<Price>,
    usage: Option<Usage>,
    /// For a stream in Anthropic's shape: its usage as the events report it.
    anthropic: Option<Tokens>,
    /// A Responses stream: usage arrives in its final `response.completed`.
    responses: bool,
    /// The text delivered so far (bounded), tokenized if no usage arrives.
    delivered: Vec<u8>,
    /// The client's request body, tokenized if no usage arrives.
    request: Bytes,
    /// The usage chunk was asked for by the gateway, not the client: keep it from the client.
    strip_usage: bool,
    /// A cache hit: settled at zero whatever its usage chunk says.
    free: bool,
    done: bool,
}

impl Metered {
    fn finish(&mut self) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        if self.free {
            self.usage = Some(Usage::default());
        }
        let estimated = self.usage.is_none();
        let usage = self.usage.take().unwrap_or_else(|| {
            let prompt = crate::translate::tokens::prompt(&self.request);
            let completion = crate::translate::tokens::count(&String::from_utf8_lossy(&self.delivered));
            Usage {
                prompt_tokens: prompt,
                completion_tokens: completion,
                total_tokens: prompt + completion,
                ..Default::default()
            }
        });
        count(&self.metrics, &self.labels.0, &self.labels.1, &usage, self.price);
        self.holds.settle(Some(&usage), self.price);
        let entry = self.log.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(mut e) = entry {
            e.prompt_tokens = usage.prompt_tokens;
            e.completion_tokens = usage.completion_tokens;
            e.usage_estimated = estimated;
            e.cost_nanos = self.price.map_or(0, |p| p.cost(&usage));
            e.total_ms = self.started.elapsed().as_secs_f64() * 1000.0;
            e.guardrails = self.decisions.lock().map(|d| d.clone()).unwrap_or_default();
            self.reqlog.submit(e);
        }
    }

    /// Looks at whole events; returns the bytes to send on.
    fn inspect(&mut self, data: Bytes) -> Bytes {
        let mut keep: Option<Vec<u8>> = None;
        let mut start = 0;
        for event in split_events(&data) {
            let payload = event_data(event);
            if let Some(p) = payload {
                let keys = if self.anthropic.is_some() {
                    ANTHROPIC_TEXT
                } else if self.responses {
                    RESPONSES_TEXT
                } else {
                    HUB_TEXT
                };
                collect_text(p, keys, &mut self.delivered);
                if self.responses {
                    if find(p, b"\"usage\"")
                        && let Ok(v) = serde_json::from_slice::<serde_json::Value>(p)
                        && let Some(u) = v.pointer("/response/usage").filter(|u| u.is_object())
                    {
                        self.usage = Some(Usage::from(crate::translate::responses::tokens(u)));
                    }
                    continue;
                }
                if let Some(acc) = &mut self.anthropic {
                    if find(p, b"\"usage\"") && crate::translate::anthropic::stream_usage(p, acc) {
                        self.usage = Some(Usage::from(*acc));
                    }
                    continue;
                }
                if find(p, b"\"usage\"")
                    && let Some(u) = crate::wire::openai::peek_usage(p)
                {
                    self.usage = Some(u);
                    if self.strip_usage && find(p, b"\"choices\":[]") {
                        // Copy everything but this event.
                        let out = keep.get_or_insert_with(Vec::new);
                        let offset = event.as_ptr() as usize - data.as_ptr() as usize;
                        out.extend_from_slice(&data[start..offset]);
                        start = offset + event.len();
                    }
                }
            }
        }
        match keep {
            None => data,
            Some(mut out) => {
                out.extend_from_slice(&data[start..]);
                Bytes::from(out)
            }
        }
    }
}

impl http_body::Body for Metered {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        loop {
            return match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => {
                        let out = this.inspect(data);
                        if out.is_empty() {
                            continue;
                        }
                        Poll::Ready(Some(Ok(Frame::data(out))))
                    }
                    Err(frame) => Poll::Ready(Some(Ok(frame))),
                },
                Poll::Ready(None) => {
                    this.finish();
                    Poll::Ready(None)
                }
                Poll::Ready(Some(Err(e))) => {
                    this.finish();
                    Poll::Ready(Some(Err(e)))
                }
                Poll::Pending => Poll::Pending,
            };
        }
    }
}

impl Drop for Metered {
    fn drop(&mut self) {
        self.finish();
    }
}

/// Cap on the delivered text kept for a token estimate.
const MAX_DELIVERED: usize = 1 << 20;

/// The text-bearing fields of a stream event, by dialect.
const HUB_TEXT: &[&[u8]] = &[b"\"content\"", b"\"arguments\""];
const ANTHROPIC_TEXT: &[&[u8]] = &[b"\"text\"", b"\"thinking\"", b"\"partial_json\""];
const RESPONSES_TEXT: &[&[u8]] = &[b"\"delta\""];

/// Appends the raw contents of the text-bearing strings in a chunk (`keys`),
/// any whitespace around the colon.
fn collect_text(p: &[u8], keys: &[&[u8]], out: &mut Vec<u8>) {
    for key in keys {
        let mut i = 0;
        while let Some(pos) = p[i..].windows(key.len()).position(|w| w == *key) {
            let mut j = i + pos + key.len();
            while j < p.len() && p[j].is_ascii_whitespace() {
                j += 1;
            }
            if p.get(j) != Some(&b':') {
                i = j;
                continue;
            }
            j += 1;
            while j < p.len() && p[j].is_ascii_whitespace() {
                j += 1;
            }
            if p.get(j) != Some(&b'"') {
                i = j;
                continue;
            }
            j += 1;
            let start = j;
            while j < p.len() && p[j] != b'"' {
                j += if p[j] == b'\\' { 2 } else { 1 };
            }
            let end = j.min(p.len());
            if out.len() + (end - start) <= MAX_DELIVERED {
                out.extend_from_slice(&p[start..end]);
            }
            i = end;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_is_collected() {
        let text = |p: &[u8], a: bool| {
            let mut out = Vec::new();
            collect_text(p, if a { ANTHROPIC_TEXT } else { HUB_TEXT }, &mut out);
            String::from_utf8(out).unwrap()
        };
        assert_eq!(text(br#"{"delta":{"content":"hello \"x\""}}"#, false), r#"hello \"x\""#);
        assert_eq!(text(br#"{"message": {"content" : "four", "x": "content"}}"#, false), "four");
        assert_eq!(text(br#"{"content": null}"#, false), "");
        assert_eq!(text(br#"{"delta":{"type":"text_delta","text":"hi"}}"#, true), "hi");
    }
}
