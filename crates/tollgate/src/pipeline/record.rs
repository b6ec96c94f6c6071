//! Stage 13: what happened is written on the response (request id, the
//! model that answered, phase timings) and logged. The request log, metrics
//! and traces will be handed to asynchronous writers from here; nothing in
//! this stage waits on I/O.

use std::fmt::Write;

use axum::response::Response;
use http::HeaderValue;

use super::RequestCtx;
use crate::error::GatewayError;
use crate::routing::execute::{Attempt, Outcome};

/// `target:outcome:status:latency_us;…` — compact, for the log line.
struct AttemptsLog<'a>(&'a [Attempt]);

impl std::fmt::Display for AttemptsLog<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, a) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(";")?;
            }
            let status = a.status.map_or_else(|| "-".to_string(), |s| s.to_string());
            write!(f, "{}:{}:{}:{}", a.target, a.outcome.as_str(), status, a.latency.as_micros())?;
        }
        Ok(())
    }
}

pub fn finish(ctx: &RequestCtx, result: Result<Response, GatewayError>) -> Response {
    let mut error_detail = None;
    let (mut resp, error) = match result {
        Ok(r) => (r, None),
        Err(e) => {
            let label = e.label();
            error_detail = crate::admission::record::refused(&ctx.adm, &e);
            if e.upstream().is_some() {
                tracing::warn!(request_id = %ctx.adm.id, error = %e, "upstream call failed");
            }
            (crate::error::render(e, ctx.front), Some(label))
        }
    };
    let total = ctx.adm.started.elapsed();
    observe(ctx, &resp, error_detail, total);
    if ctx.adm.snapshot.log_enabled || ctx.adm.snapshot.otlp.is_some() {
        log_entry(ctx, resp.status().as_u16(), error, total);
    }
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&ctx.adm.id) {
        h.insert("x-tollgate-request-id", v);
    }
    let resolved = ctx.target.as_ref().map(|t| &*t.canonical).or(ctx.cache.as_ref().and_then(|c| c.resolved.as_deref()));
    if let Some(r) = resolved
        && let Ok(v) = HeaderValue::from_str(r)
    {
        h.insert("x-tollgate-resolved-model", v);
    }
    if let Some(c) = &ctx.cache {
        h.insert(crate::cache::STATUS_HEADER, HeaderValue::from_static(c.status.as_str()));
        if let Some(v) = c.similarity.and_then(|s| HeaderValue::from_str(&format!("{s:.4}")).ok()) {
            h.insert(crate::cache::SIMILARITY_HEADER, v);
        }
    }
    if !ctx.trail.attempts.is_empty() {
        let tried = ctx.trail.attempts.iter().filter(|a| a.outcome != Outcome::SkippedOpen).count();
        h.insert("x-tollgate-attempts", HeaderValue::from(tried));
    }
    if let Some(v) = ctx.adm.guard.header().and_then(|v| HeaderValue::from_str(&v).ok()) {
        h.insert("x-tollgate-guardrails", v);
    }
    let mut timing = String::with_capacity(64);
    let upstream = ctx.trail.upstream_time.unwrap_or_default();
    let gateway = total.saturating_sub(upstream).saturating_sub(ctx.trail.backoff_time);
    let _ = write!(timing, "gateway;dur={:.3}", gateway.as_secs_f64() * 1000.0);
    if ctx.trail.upstream_time.is_some() {
        let _ = write!(timing, ", upstream;dur={:.3}", upstream.as_secs_f64() * 1000.0);
    }
    let guarded: u64 = ctx.adm.guard.decisions.lock().map(|d| d.iter().map(|x| x.duration_us).sum()).unwrap_or(0);
    if guarded > 0 {
        let _ = write!(timing, ", guardrail;dur={:.3}", guarded as f64 / 1000.0);
    }
    if !ctx.trail.backoff_time.is_zero() {
        let _ = write!(timing, ", backoff;dur={:.3}", ctx.trail.backoff_time.as_secs_f64() * 1000.0);
    }
    if let Ok(v) = HeaderValue::from_str(&timing) {
        h.insert("server-timing", v);
    }
    tracing::debug!(
        request_id = %ctx.adm.id,
        principal = ctx.adm.principal.as_ref().map_or("-", |p| p.id.as_str()),
        model = %ctx.adm.requested,
        resolved = ctx.target.as_ref().map_or("-", |t| &*t.canonical),
        status = resp.status().as_u16(),
        error = error.unwrap_or("-"),
        stream = ctx.stream,
        config_version = ctx.adm.snapshot.version,
        total_us = total.as_micros() as u64,
        upstream_us = upstream.as_micros() as u64,
        attempts = %AttemptsLog(&ctx.trail.attempts),
        "request"
    );
    resp
}

/// The bounded `model` and `provider` labels of a request.
pub fn labels(ctx: &RequestCtx) -> (String, String) {
    match (&ctx.target, ctx.adm.model()) {
        // A provider that lists no models passes any name through: label it
        // `<provider>/*` so a client cannot mint label values.
        (Some(t), _) if t.provider.any_model => (format!("{}/*", t.provider.name), t.provider.name.clone()),
        (Some(t), _) => (t.canonical.to_string(), t.provider.name.clone()),
        (None, Some(m)) => (m.name().to_string(), "-".to_string()),
        (None, None) => ("unknown".to_string(), "-".to_string()),
    }
}

/// The API the client called: the log's `route` and the metrics' label.
fn route(ctx: &RequestCtx) -> &'static str {
    ctx.surface.unwrap_or(match ctx.op {
        crate::wire::Operation::ChatCompletions => "chat",
        crate::wire::Operation::Embeddings => "embeddings",
    })
}

fn observe(ctx: &RequestCtx, resp: &Response, refusal: Option<(&'static str, String)>, total: std::time::Duration) {
    use crate::metrics::{ProviderLabels, RefusalLabels, RequestLabels, RouteLabels};
    let m = &ctx.adm.shared.metrics;
    let route = route(ctx);
    let (model, provider) = labels(ctx);
    m.requests
        .get_or_create(&RequestLabels { route, model, provider: provider.clone(), status: resp.status().as_u16() })
        .inc();
    m.duration.get_or_create(&RouteLabels { route }).observe(total.as_secs_f64());
    if let Some(up) = ctx.trail.upstream_time {
        if ctx.stream && resp.status().is_success() {
            // A stream's response starts when its first event is in hand.
            m.ttft.get_or_create(&ProviderLabels { provider: provider.clone() }).observe(total.as_secs_f64());
        }
        m.upstream.get_or_create(&ProviderLabels { provider }).observe(up.as_secs_f64());
    }
    let own = total.saturating_sub(ctx.trail.upstream_time.unwrap_or_default()).saturating_sub(ctx.trail.backoff_time);
    m.overhead.observe(own.as_secs_f64());
    if let Some((kind, rule)) = refusal {
        m.refusals.get_or_create(&RefusalLabels { kind, rule }).inc();
    }
}

/// The request's log entry; a stream's is completed when the stream ends.
fn log_entry(ctx: &RequestCtx, status: u16, error: Option<&'static str>, total: std::time::Duration) {
    use crate::reqlog::{AttemptLog, LogEntry};
    let usage = ctx.usage.clone().unwrap_or_default();
    let price = ctx.target.as_ref().and_then(|t| t.price);
    let entry = LogEntry {
        resolved_model: ctx
            .target
            .as_ref()
            .map(|t| t.canonical.to_string())
            .or_else(|| ctx.cache.as_ref().and_then(|c| c.resolved.clone())),
        cache: ctx.cache.as_ref().map(|c| crate::reqlog::entry::CacheLog {
            status: c.status.as_str().to_string(),
            saved_nanos: c.saved_nanos,
            similarity: c.similarity,
        }),
        provider: ctx.target.as_ref().map(|t| t.provider.name.clone()),
        route: route(ctx).into(),
        stream: ctx.stream,
        prompt_tokens: usage.prompt_tokens,
        completion_tokens: usage.completion_tokens,
        usage_estimated: ctx.usage_estimated,
        cost_nanos: price.map_or(0, |p| p.cost(&usage)),
        upstream_ms: ctx.trail.upstream_time.unwrap_or_default().as_secs_f64() * 1000.0,
        backoff_ms: ctx.trail.backoff_time.as_secs_f64() * 1000.0,
        attempts: ctx
            .trail
            .attempts
            .iter()
            .map(|a| AttemptLog {
                start_ms: a.ended.saturating_duration_since(ctx.adm.started).saturating_sub(a.latency).as_secs_f64()
                    * 1000.0,
                target: a.target.to_string(),
                outcome: a.outcome.as_str().to_string(),
                status: a.status,
                latency_ms: a.latency.as_secs_f64() * 1000.0,
                reason: a.reason.clone(),
            })
            .collect(),
        request_body: ctx.bodies.0.clone(),
        response_body: ctx.bodies.1.clone(),
        prompt: ctx.prompt.as_ref().map(|p| crate::reqlog::entry::PromptLog {
            id: p.id.clone(),
            version: p.version,
            label: p.label.clone(),
            override_for: ctx.target.as_ref().and_then(|t| p.override_used(&t.provider.name)).map(str::to_string),
        }),
        ..crate::admission::record::entry(&ctx.adm, status, error, total)
    };
    match (&ctx.log_slot, status) {
        (Some(slot), 200) => *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(entry),
        _ => ctx.adm.shared.reqlog.submit(entry),
    }
}
