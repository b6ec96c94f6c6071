//! Stage 8: the response cache. A hit is an `UpstreamReply` like an
//! upstream's answer — replayed as a stream when the client asked for one —
//! so output guardrails, settlement (at no cost: a hit spends no tokens),
//! the request log and the `/v1/messages` translation run on it exactly as
//! on a fresh answer. On a miss, the answer is kept once it is complete.

use axum::body::Body;
use bytes::Bytes;
use http::HeaderMap;

use super::RequestCtx;
use super::receive::Parsed;
use crate::cache::{Decision, Entry, Status};
use crate::error::GatewayError;
use crate::providers::UpstreamReply;
use crate::wire::{Dialect, Operation};

pub async fn lookup(
    ctx: &mut RequestCtx,
    headers: &HeaderMap,
    req: &Parsed<'_>,
    bytes: &Bytes,
) -> Result<Option<UpstreamReply>, GatewayError> {
    if ctx.op != Operation::ChatCompletions {
        return Ok(None);
    }
    let Some(model) = ctx.adm.model().map(|m| m.name().to_string()) else { return Ok(None) };
    let front = if ctx.front == Dialect::Anthropic { "anthropic" } else { "openai" };
    let settings = &ctx.adm.snapshot.cache;
    let decided = crate::cache::decide(settings, headers, ctx.adm.principal.as_deref(), &model, front, bytes)?;
    let Some(mut d) = decided else { return Ok(None) };
    let mut reply = None;
    let mut found = None;
    if d.status == Status::Miss {
        found = ctx.adm.shared.cache.get(settings, &d.key).await;
    }
    if found.is_none()
        && matches!(d.status, Status::Miss | Status::Refresh)
        && let Some(probe) = d.probe.as_mut()
        && let Some(vector) = embed(ctx, headers, &settings.semantic, &probe.text).await
    {
        let vector = std::sync::Arc::new(vector);
        if d.status == Status::Miss {
            for m in ctx.adm.shared.cache.similar(settings, probe, &vector).await {
                match ctx.adm.shared.cache.get(settings, &m.key).await {
                    Some(e) => {
                        found = Some(e);
                        d.similarity = Some(m.similarity);
                        break;
                    }
                    None => ctx.adm.shared.cache.forget(probe, &m.key),
                }
            }
        }
        probe.vector = Some(vector);
    }
    if let Some(e) = found
        && let Ok(answer) = serde_json::from_str::<serde_json::Value>(&e.body)
    {
        d.status = Status::Hit;
        d.resolved = Some(e.resolved);
        d.saved_nanos = e.cost_nanos;
        let dialect = if e.anthropic { Dialect::Anthropic } else { Dialect::OpenAi };
        reply = Some(match (req.stream, dialect) {
            // Usage rides along as upstream streams' does; settlement keeps it
            // from a client that did not ask for it.
            (true, Dialect::OpenAi) => {
                UpstreamReply::Stream(Body::from(crate::wire::openai::completion_as_sse(&answer, true)), dialect)
            }
            (true, Dialect::Anthropic) => UpstreamReply::Stream(Body::from(crate::cache::anthropic::replay(&answer)), dialect),
            // Never kept (see `keep`), so never found.
            (true, Dialect::Responses) => UpstreamReply::Stream(Body::from(e.body), dialect),
            (false, _) => UpstreamReply::Complete { body: Bytes::from(e.body), usage: e.usage, dialect },
        });
    }
    ctx.adm
        .shared
        .metrics
        .cache_requests
        .get_or_create(&crate::metrics::CacheLabels { status: d.status.as_str() })
        .inc();
    ctx.cache = Some(d);
    Ok(reply)
}

type Pending = std::pin::Pin<Box<dyn std::future::Future<Output = axum::response::Response> + Send>>;

/// The pipeline called from within itself, for an embedding. Boxed behind
/// `dyn` in a plain function: inline, the future would contain itself.
fn embedding_call(
    id: String,
    snapshot: std::sync::Arc<super::Snapshot>,
    shared: std::sync::Arc<crate::state::Shared>,
    headers: HeaderMap,
    body: String,
) -> Pending {
    Box::pin(super::handle(id, Operation::Embeddings, Dialect::OpenAi, snapshot, shared, headers, Body::from(body)))
}

/// The embedding of a last user turn: the built-in one, or one asked of
/// the configured model through this gateway's own `/v1/embeddings` path —
/// as the requesting client, so its limits, budgets and request log apply,
/// logged as a child of the request. `None` when that call fails: the
/// request then matches exactly only.
async fn embed(
    ctx: &RequestCtx,
    headers: &HeaderMap,
    semantic: &crate::cache::SemanticSettings,
    text: &str,
) -> Option<Vec<f32>> {
    let Some(model) = semantic.model.as_deref() else { return Some(crate::cache::embed::builtin(text)) };
    let mut h = headers.clone();
    for name in [http::header::CONTENT_LENGTH.as_str(), crate::cache::HEADER, "traceparent"] {
        h.remove(name);
    }
    if let Ok(v) = http::HeaderValue::from_str(&format!("{}:{}", crate::admission::hop_token(), ctx.adm.id)) {
        h.insert(crate::admission::HOP_HEADER, v);
    }
    if let Ok(v) = http::HeaderValue::from_str(&format!("00-{}-{}-01", ctx.adm.trace.0, ctx.adm.trace.1)) {
        h.insert("traceparent", v);
    }
    let body = serde_json::json!({ "model": model, "input": text }).to_string();
    let call = embedding_call(format!("{}-embed", ctx.adm.id), ctx.adm.snapshot.clone(), ctx.adm.shared.clone(), h, body);
    let (parts, b) = call.await.into_parts();
    let bytes = http_body_util::BodyExt::collect(http_body_util::Limited::new(b, 64 << 20)).await.ok()?.to_bytes();
    if !parts.status.is_success() {
        tracing::warn!(status = parts.status.as_u16(), model, "the cache's embedding call failed; the request matches exactly only");
        return None;
    }
    let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let vector: Vec<f32> = v
        .pointer("/data/0/embedding")?
        .as_array()?
        .iter()
        .map(|x| x.as_f64().map(|f| f as f32))
        .collect::<Option<_>>()?;
    (!vector.is_empty()).then_some(vector)
}

/// After a miss (or a forced refresh): the upstream's answer, kept once
/// complete — in the hub's shape, or in Anthropic's for a `/v1/messages`
/// request relayed to an Anthropic model.
pub fn keep(ctx: &RequestCtx, reply: UpstreamReply) -> UpstreamReply {
    let Some(d) = ctx.cache.as_ref().filter(|d| matches!(d.status, Status::Miss | Status::Refresh)) else {
        return reply;
    };
    let Some(target) = &ctx.target else { return reply };
    // A Responses answer passed through from OpenAI is not kept: a hit is
    // replayed through the hub, and its native items have no hub shape.
    if reply.dialect() == Dialect::Responses {
        return reply;
    }
    let store = Store {
        shared: ctx.adm.shared.clone(),
        settings: ctx.adm.snapshot.cache.clone(),
        decision: d.clone(),
        resolved: target.canonical.to_string(),
        price: target.price,
    };
    match reply {
        UpstreamReply::Complete { body, usage, dialect } => {
            if let Ok(text) = std::str::from_utf8(&body) {
                store.put(text.to_string(), usage.clone(), dialect);
            }
            UpstreamReply::Complete { body, usage, dialect }
        }
        UpstreamReply::Stream(body, dialect) => {
            let assemble: crate::cache::stream::Assemble = match dialect {
                Dialect::OpenAi | Dialect::Responses => crate::cache::stream::assemble,
                Dialect::Anthropic => crate::cache::anthropic::assemble,
            };
            let tap = crate::cache::stream::Tap::new(
                body,
                assemble,
                Box::new(move |answer| {
                    let usage = answer.get("usage").and_then(|u| match dialect {
                        Dialect::OpenAi | Dialect::Responses => serde_json::from_value(u.clone()).ok(),
                        Dialect::Anthropic => Some(crate::wire::openai::Usage::from(crate::translate::anthropic::tokens(u))),
                    });
                    store.put(answer.to_string(), usage, dialect);
                }),
            );
            UpstreamReply::Stream(Body::new(tap), dialect)
        }
    }
}

struct Store {
    shared: std::sync::Arc<crate::state::Shared>,
    settings: crate::cache::CacheSettings,
    decision: Decision,
    resolved: String,
    price: Option<crate::pricing::Price>,
}

impl Store {
    /// Off the request's path: the client never waits for the cache.
    fn put(self, body: String, usage: Option<crate::wire::openai::Usage>, dialect: Dialect) {
        let cost_nanos = match (&usage, self.price) {
            (Some(u), Some(p)) => p.cost(u),
            _ => 0,
        };
        let entry = Entry { body, anthropic: dialect == Dialect::Anthropic, usage, resolved: self.resolved, cost_nanos };
        crate::task::spawn("cache-store", async move {
            let d = &self.decision;
            let evicted = self.shared.cache.put(&self.settings, &d.key, &entry, d.ttl).await;
            if let Some(probe) = &d.probe
                && let Some(v) = &probe.vector
            {
                self.shared.cache.index(&self.settings, probe, &d.key, v, d.ttl).await;
            }
            let m = &self.shared.metrics;
            m.cache_evictions.inc_by(evicted);
            m.cache_bytes.set(self.shared.cache.memory_bytes() as i64);
            m.cache_vectors.set(self.shared.cache.indexed() as i64);
        });
    }
}
