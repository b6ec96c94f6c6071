//! Stage 11 on a stream: output guardrails on the text as it passes.
//!
//! The text of each choice (OpenAI chunks) or content block (Anthropic
//! events) is gathered in a lane. A lane releases text only once no
//! detected value can still be growing at its end: it holds back the last
//! [`HOLD`] bytes, any run without whitespace that reaches the end (keys and
//! tokens have none), an unterminated PEM block and a half-written
//! placeholder. So a secret split across events is seen whole — masked, or
//! the stream ended with an error event and no `[DONE]` — before any byte
//! of it leaves. Validators see the released text with [`CONTEXT`] bytes
//! before it, so a phrase across a release boundary is caught too.
//!
//! Guardrails that judge a whole answer (`json_schema`, `webhook`,
//! `llm_judge`, `cedar`) hold the text to the end of the stream: their
//! window is the answer. Non-text events (role, tool calls, finish, usage)
//! pass in order, after the lanes before them are flushed.
//!
//! The work runs in a task that feeds the response body through a small
//! channel: a client that goes away drops the receiver, and the task (and
//! the upstream stream) stop at the next send.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use bytes::Bytes;
use detectors::redact::{Placeholders, floor_boundary};
use http_body::Frame;
use http_body_util::BodyExt;
use serde_json::{Value, json};

use crate::admission::Admission;
use crate::admission::guardrails::{self as runner, CallView, Hook, Outcome, Verdict};
use crate::config::file::{GuardrailAction, GuardrailMode, GuardrailType};
use crate::guardrails::{Check, Guardrail, Shape, Source};
use crate::wire::Dialect;

/// Bytes always held back at a lane's end: longer than any spaced value
/// (an IBAN in groups of four is 42).
pub const HOLD: usize = 64;
/// Released text validators see again before new text.
pub const CONTEXT: usize = 256;
/// A whitespace-free run or PEM block is held at most this long, so a
/// stream of one endless token still flows.
pub const MAX_HOLD: usize = 16 << 10;

/// Wraps a stream in the output guardrails in force; the stream as it was
/// when none are.
pub fn guard(adm: &mut Admission, body: Body, dialect: Dialect) -> Body {
    let active = runner::active(adm, Hook::LlmOutput);
    let restore = adm.guard.restore && !adm.guard.placeholders.is_empty();
    if active.is_empty() && !restore {
        return body;
    }
    let guard = Guard {
        view: CallView::of(adm),
        whole: active.iter().any(|g| !is_text(g)),
        active,
        placeholders: adm.guard.placeholders.clone(),
        restore,
        dialect,
        lanes: BTreeMap::new(),
        decided: BTreeMap::new(),
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, axum::Error>>(8);
    crate::task::spawn("guardrail-stream", guard.pump(body, tx));
    let frames = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|f| (f, rx)) });
    Body::new(http_body_util::StreamBody::new(frames))
}

/// In-process text checks (and `max_size`) scan as the text passes.
fn is_text(g: &Guardrail) -> bool {
    g.check.is_text() || g.kind == GuardrailType::MaxSize
}

#[derive(Default)]
struct Lane {
    /// Text received and not yet released.
    pending: String,
    /// The end of what was released, for validators' context.
    tail: String,
    /// Bytes released so far (for `max_size`).
    released: usize,
    /// The latest text event of this lane: the shape of the events sent on.
    template: Option<Value>,
}

struct Guard {
    view: CallView,
    active: Vec<Arc<Guardrail>>,
    /// A whole-answer guardrail is active: lanes release only at the end.
    whole: bool,
    placeholders: Placeholders,
    restore: bool,
    dialect: Dialect,
    lanes: BTreeMap<u64, Lane>,
    /// Per guardrail: the first non-pass outcome, or time spent passing.
    decided: BTreeMap<String, (Option<Outcome>, Duration)>,
}

/// The guard stopped the stream (a block, or the client left).
struct Stop;

type Tx = tokio::sync::mpsc::Sender<Result<Frame<Bytes>, axum::Error>>;

impl Guard {
    async fn pump(mut self, mut upstream: Body, tx: Tx) {
        let mut buf: Vec<u8> = Vec::new();
        loop {
            match upstream.frame().await {
                Some(Ok(frame)) => {
                    let Ok(data) = frame.into_data() else { continue };
                    buf.extend_from_slice(&data);
                    let Some(end) = crate::wire::sse::last_boundary(&buf) else { continue };
                    let whole: Vec<u8> = buf.drain(..end).collect();
                    for event in crate::wire::sse::split_events(&whole) {
                        if self.event(event, &tx).await.is_err() {
                            return self.finish();
                        }
                    }
                }
                Some(Err(e)) => {
                    let _ = self.flush_all(&tx).await;
                    let _ = tx.send(Err(e)).await;
                    return self.finish();
                }
                None => break,
            }
        }
        if self.flush_all(&tx).await.is_ok() && !buf.is_empty() {
            let _ = tx.send(Ok(Frame::data(Bytes::from(buf)))).await;
        }
        self.finish();
    }

    /// One whole SSE event.
    async fn event(&mut self, event: &[u8], tx: &Tx) -> Result<(), Stop> {
        let parsed = crate::wire::sse::event_data(event).and_then(|d| serde_json::from_slice::<Value>(d).ok());
        // A chunk for several choices (`n` > 1) goes on as one chunk per
        // choice, as OpenAI itself sends them, so each choice is its own lane.
        if self.dialect == Dialect::OpenAi
            && let Some(v) = &parsed
            && let Some(choices) = v.get("choices").and_then(Value::as_array)
            && choices.len() > 1
        {
            for c in choices.clone() {
                let mut one = v.clone();
                one["choices"] = Value::Array(vec![c]);
                let raw = format!("data: {one}\n\n");
                self.value(Some(one), raw.as_bytes(), tx).await?;
            }
            return Ok(());
        }
        self.value(parsed, event, tx).await
    }

    async fn value(&mut self, parsed: Option<Value>, event: &[u8], tx: &Tx) -> Result<(), Stop> {
        if let Some(v) = parsed
            && let Some((lane, text)) = text_of(&v, self.dialect)
        {
            let text = text.to_string();
            let l = self.lanes.entry(lane).or_default();
            l.pending.push_str(&text);
            l.template = Some(v);
            return self.process(lane, false, tx).await;
        }
        // Anything else goes out in order, after the text before it.
        self.flush_all(tx).await?;
        send(tx, Bytes::copy_from_slice(event)).await
    }

    async fn flush_all(&mut self, tx: &Tx) -> Result<(), Stop> {
        let lanes: Vec<u64> = self.lanes.keys().copied().collect();
        for lane in lanes {
            self.process(lane, true, tx).await?;
        }
        Ok(())
    }

    /// Checks and releases what a lane can release (`last`: all of it).
    async fn process(&mut self, lane: u64, last: bool, tx: &Tx) -> Result<(), Stop> {
        let Some(l) = self.lanes.get_mut(&lane) else { return Ok(()) };
        let cut = if last {
            l.pending.len()
        } else {
            outside_findings(&self.active, &l.pending, release_point(&l.pending, &self.placeholders, self.whole))
        };
        if cut == 0 {
            return Ok(());
        }
        let rest = l.pending.split_off(cut);
        let mut region = std::mem::replace(&mut l.pending, rest);
        let tail = l.tail.clone();
        let released_before = l.released;
        let template = l.template.clone();

        // Mutators in order, then validators on the result (with context).
        for g in self.active.clone() {
            let started = Instant::now();
            let verdict = self.check(&g, &mut region, &tail, released_before).await;
            if self.decide(&g, verdict, started.elapsed()) {
                let _ = send(tx, self.error_event(&g.name)).await;
                return Err(Stop);
            }
        }
        let out = if self.restore { self.placeholders.restore(&region).into_owned() } else { region.clone() };
        if let Some(l) = self.lanes.get_mut(&lane) {
            l.released += region.len();
            l.tail.push_str(&region);
            let keep = floor_boundary(&l.tail, l.tail.len().saturating_sub(CONTEXT));
            l.tail.drain(..keep);
        }
        match (out.is_empty(), template) {
            (false, Some(t)) => send(tx, self.text_event(t, &out)).await,
            _ => Ok(()),
        }
    }

    /// One guardrail over a region about to be released.
    async fn check(&mut self, g: &Guardrail, region: &mut String, tail: &str, released: usize) -> Verdict {
        let audit = g.mode == GuardrailMode::Audit;
        if let Check::MaxSize(m) = &g.check {
            return match m.check(released + region.len()) {
                Ok(()) => Verdict::Pass,
                Err(r) => Verdict::Fail(r),
            };
        }
        if is_text(g) {
            if g.action == GuardrailAction::Mutate && !audit {
                return match runner::rewrite(g, region, Source::Assistant, &mut self.placeholders) {
                    Some(new) => {
                        *region = new;
                        Verdict::Mutated
                    }
                    None => Verdict::Pass,
                };
            }
            let window = format!("{tail}{region}");
            let found: Vec<_> = g
                .check
                .findings(&window, Source::Assistant)
                .unwrap_or_default()
                .into_iter()
                .filter(|f| f.end > tail.len())
                .collect();
            return if found.is_empty() { Verdict::Pass } else { Verdict::Fail(crate::guardrails::reason(&found)) };
        }
        // A whole-answer guardrail, on the answer as one message.
        let mut doc = json!({"choices": [{"index": 0, "message": {"role": "assistant", "content": region.as_str()}}]});
        let verdict = if g.action == GuardrailAction::Mutate && !audit {
            runner::mutate(&self.view, &mut self.placeholders, g, Hook::LlmOutput, Shape::ChatResponse, &mut doc).await
        } else {
            runner::validate(&self.view, g, Hook::LlmOutput, Shape::ChatResponse, &mut doc).await
        };
        if verdict == Verdict::Mutated {
            let text = runner::joined(&mut doc, Shape::ChatResponse);
            *region = text;
        }
        verdict
    }

    /// Applies the mode; a guardrail is recorded once per stream, at its
    /// first non-pass outcome (or as a pass at the end).
    fn decide(&mut self, g: &Guardrail, v: Verdict, took: Duration) -> bool {
        let entry = self.decided.entry(g.name.clone()).or_insert((None, Duration::ZERO));
        entry.1 += took;
        let stops = match &v {
            Verdict::Fail(_) => g.mode != GuardrailMode::Audit,
            Verdict::Error(_) => g.mode == GuardrailMode::Strict,
            Verdict::Pass | Verdict::Mutated => false,
        };
        if v == Verdict::Pass || (entry.0.is_some() && !stops) {
            return false;
        }
        let spent = entry.1;
        let stop = runner::decide(&self.view, g, Hook::LlmOutput, v.clone(), spent);
        let outcome = match (&v, stop) {
            (_, true) => Outcome::Blocked,
            (Verdict::Mutated, _) => Outcome::Mutated,
            (Verdict::Fail(_), _) => Outcome::Flagged,
            _ => Outcome::Error,
        };
        if let Some(e) = self.decided.get_mut(&g.name) {
            e.0 = Some(outcome);
        }
        stop
    }

    /// Passes are recorded when the stream ends (or stops).
    fn finish(self) {
        for g in &self.active {
            if let Some((None, spent)) = self.decided.get(&g.name) {
                runner::record(&self.view, &g.name, Hook::LlmOutput, Outcome::Pass, None, *spent);
            }
        }
    }

    fn text_event(&self, mut template: Value, text: &str) -> Bytes {
        match self.dialect {
            Dialect::OpenAi => {
                if let Some(c) = template.pointer_mut("/choices/0/delta/content") {
                    *c = Value::String(text.to_string());
                }
                Bytes::from(format!("data: {template}\n\n"))
            }
            Dialect::Anthropic => {
                if let Some(c) = template.pointer_mut("/delta/text") {
                    *c = Value::String(text.to_string());
                }
                Bytes::from(format!("event: content_block_delta\ndata: {template}\n\n"))
            }
            Dialect::Responses => {
                if let Some(c) = template.pointer_mut("/delta") {
                    *c = Value::String(text.to_string());
                }
                Bytes::from(format!("event: response.output_text.delta\ndata: {template}\n\n"))
            }
        }
    }

    /// The event that ends a blocked stream (and no `[DONE]` after it).
    fn error_event(&self, guardrail: &str) -> Bytes {
        let message = format!("guardrail `{guardrail}` blocked this response at llm_output");
        match self.dialect {
            Dialect::OpenAi => Bytes::from(format!(
                "data: {}\n\n",
                json!({"error": {"message": message, "type": "invalid_request_error", "code": "guardrail_blocked", "param": null}})
            )),
            Dialect::Anthropic => Bytes::from(format!(
                "event: error\ndata: {}\n\n",
                json!({"type": "error", "error": {"type": "invalid_request_error", "message": message}})
            )),
            Dialect::Responses => Bytes::from(format!(
                "event: error\ndata: {}\n\n",
                json!({"type": "error", "code": "guardrail_blocked", "message": message, "param": null})
            )),
        }
    }
}

async fn send(tx: &Tx, bytes: Bytes) -> Result<(), Stop> {
    tx.send(Ok(Frame::data(bytes))).await.map_err(|_| Stop)
}

/// (lane, text) when an event carries only answer text: a hub chunk with
/// one choice's `delta.content`, or an Anthropic `text_delta`.
fn text_of(v: &Value, dialect: Dialect) -> Option<(u64, &str)> {
    match dialect {
        Dialect::OpenAi => {
            let choices = v.get("choices")?.as_array()?;
            let [c] = choices.as_slice() else { return None };
            if c.get("finish_reason").is_some_and(|f| !f.is_null()) {
                return None;
            }
            let delta = c.get("delta")?;
            // The role chunk and tool calls go on as they are.
            if delta.get("tool_calls").is_some() || delta.get("role").is_some() {
                return None;
            }
            Some((c.get("index").and_then(Value::as_u64).unwrap_or(0), delta.get("content")?.as_str()?))
        }
        Dialect::Anthropic => {
            if v.get("type")?.as_str()? != "content_block_delta" {
                return None;
            }
            let d = v.get("delta")?;
            if d.get("type")?.as_str()? != "text_delta" {
                return None;
            }
            Some((v.get("index").and_then(Value::as_u64).unwrap_or(0), d.get("text")?.as_str()?))
        }
        // Only the deltas: a Responses stream repeats its text in the
        // `….done` events and the final response, which is why a native
        // Responses stream is passed through only when no output guardrail
        // or placeholder restore applies (see `server/responses.rs`).
        Dialect::Responses => {
            if v.get("type")?.as_str()? != "response.output_text.delta" {
                return None;
            }
            Some((v.get("output_index").and_then(Value::as_u64).unwrap_or(0), v.get("delta")?.as_str()?))
        }
    }
}

/// Moves `cut` back to the start of any value a text guardrail finds
/// across it. With `cut` at least [`HOLD`] bytes before the end, a value of
/// up to that length lying across it is already whole in `pending`, so it
/// is found here and released (or not) in one piece.
fn outside_findings(active: &[Arc<Guardrail>], pending: &str, mut cut: usize) -> usize {
    if cut == 0 {
        return 0;
    }
    let mut spans = Vec::new();
    for g in active {
        // An injection finding is the whole text: it blocks, it is never cut around.
        if is_text(g) && g.kind != GuardrailType::PromptInjection {
            spans.extend(g.check.findings(pending, Source::Assistant).unwrap_or_default());
        }
    }
    // Moving the cut back can land it inside an earlier value: repeat until none crosses it.
    while let Some(f) = spans.iter().find(|f| f.start < cut && f.end > cut) {
        cut = f.start;
    }
    cut
}

/// How much of `pending` may go out now without cutting a value that may
/// still be growing.
fn release_point(pending: &str, placeholders: &Placeholders, whole: bool) -> usize {
    if whole {
        return 0;
    }
    let mut cut = pending.len().saturating_sub(HOLD);
    // A whitespace-free run reaching the end may be a token still arriving.
    let run = pending.rfind(char::is_whitespace).map_or(0, |i| i + 1);
    if pending.len() - run <= MAX_HOLD {
        cut = cut.min(run);
    }
    // A private key spans lines: hold from its header to its footer.
    if let Some(b) = pending.rfind("-----BEGIN")
        && !pending[b..].contains("-----END")
        && pending.len() - b <= MAX_HOLD
    {
        cut = cut.min(b);
    }
    let cut = floor_boundary(pending, cut);
    cut - placeholders.held_back(&pending[..cut])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_runs_pem_blocks_and_the_last_bytes() {
        let p = Placeholders::default();
        let prose = "word ".repeat(40);
        assert_eq!(release_point(&prose, &p, false), prose.len() - HOLD);
        let text = format!("{prose}key=sk-ant-api03-abcdefghijkl");
        assert!(release_point(&text, &p, false) <= text.find("key=").expect("key"));
        let pem = format!("{prose}-----BEGIN PRIVATE KEY-----\nMIIE {}", "x ".repeat(100));
        assert!(release_point(&pem, &p, false) <= pem.find("-----BEGIN").expect("pem"));
        assert_eq!(release_point(&prose, &p, true), 0);
        assert_eq!(release_point("short", &p, false), 0);
    }

    #[test]
    fn only_plain_text_deltas_are_lanes() {
        let chunk = json!({"choices": [{"index": 0, "delta": {"content": "hi"}, "finish_reason": null}]});
        assert_eq!(text_of(&chunk, Dialect::OpenAi), Some((0, "hi")));
        let finish = json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]});
        assert_eq!(text_of(&finish, Dialect::OpenAi), None);
        let ant = json!({"type": "content_block_delta", "index": 2, "delta": {"type": "text_delta", "text": "x"}});
        assert_eq!(text_of(&ant, Dialect::Anthropic), Some((2, "x")));
        let json_delta = json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "{"}});
        assert_eq!(text_of(&json_delta, Dialect::Anthropic), None);
    }
}
