//! Traces: every finished request becomes an OpenTelemetry span, with one
//! child span per upstream attempt, exported over OTLP/HTTP (JSON encoding,
//! `POST {endpoint}/v1/traces`) following the GenAI semantic conventions
//! (`gen_ai.operation.name`, `gen_ai.request.model`, `gen_ai.response.model`,
//! `gen_ai.provider.name`, `gen_ai.usage.input_tokens`/`output_tokens`).
//!
//! An incoming W3C `traceparent` is honoured: the request's span joins that
//! trace under that parent. Spans are built and sent by a background task
//! from the request log entry (off the request path), in batches; a full
//! queue or a failed export drops spans and counts them.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Uri};
use http_body_util::Full;
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};

use crate::providers::http::HttpClient;
use crate::reqlog::entry::LogEntry;

/// (trace id, span id, parent span id) for a request: from `traceparent`
/// when it is valid, else a new trace.
pub fn context(headers: &HeaderMap) -> (String, String, Option<String>) {
    let span = format!("{:016x}", fastrand::u64(1..));
    if let Some((trace, parent)) = headers.get("traceparent").and_then(|v| v.to_str().ok()).and_then(parse_traceparent)
    {
        return (trace, span, Some(parent));
    }
    (format!("{:016x}{:016x}", fastrand::u64(1..), fastrand::u64(..)), span, None)
}

/// `00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`; all-zero ids are invalid.
fn parse_traceparent(v: &str) -> Option<(String, String)> {
    let mut parts = v.trim().split('-');
    let (version, trace, parent, flags) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase());
    let valid = hex(version, 2)
        && version != "ff"
        && hex(trace, 32)
        && hex(parent, 16)
        && hex(flags, 2)
        && trace.bytes().any(|b| b != b'0')
        && parent.bytes().any(|b| b != b'0');
    valid.then(|| (trace.to_string(), parent.to_string()))
}

#[derive(Debug, Clone)]
pub struct Exporter {
    tx: mpsc::Sender<LogEntry>,
    pub dropped: Arc<AtomicU64>,
}

impl Exporter {
    pub fn export(&self, e: &LogEntry) {
        if self.tx.try_send(e.clone()).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Starts the exporter task for `endpoint` (e.g. `http://127.0.0.1:4318`).
pub fn start(
    endpoint: Uri,
    service: String,
    client: HttpClient,
    mut stop: watch::Receiver<bool>,
) -> (Exporter, tokio::task::JoinHandle<()>) {
    let (tx, mut rx) = mpsc::channel::<LogEntry>(8192);
    let dropped = Arc::new(AtomicU64::new(0));
    let exporter = Exporter { tx, dropped: dropped.clone() };
    let url: Uri = format!("{}/v1/traces", endpoint.to_string().trim_end_matches('/')).parse().unwrap_or(endpoint);
    let handle = crate::task::spawn("trace-exporter", async move {
        let mut batch: Vec<LogEntry> = Vec::new();
        loop {
            let stopping = tokio::select! {
                e = rx.recv() => match e { Some(e) => { batch.push(e); false } None => true },
                _ = stop.wait_for(|s| *s) => true,
                _ = tokio::time::sleep(Duration::from_millis(500)), if !batch.is_empty() => false,
            };
            while let Ok(e) = rx.try_recv() {
                batch.push(e);
            }
            if !batch.is_empty() && (stopping || batch.len() >= 256 || rx.is_empty()) {
                let body = encode(&service, &batch);
                let mut sent = false;
                for _ in 0..2 {
                    let req = Request::builder()
                        .method(Method::POST)
                        .uri(url.clone())
                        .header("content-type", "application/json")
                        .body(Full::new(Bytes::from(body.clone())));
                    let Ok(req) = req else { break };
                    match tokio::time::timeout(Duration::from_secs(5), client.request(req)).await {
                        Ok(Ok(r)) if r.status().is_success() => {
                            sent = true;
                            break;
                        }
                        Ok(Ok(r)) => tracing::warn!(status = %r.status(), "OTLP export refused"),
                        Ok(Err(e)) => tracing::warn!(error = %e, "OTLP export failed"),
                        Err(_) => tracing::warn!("OTLP export timed out"),
                    }
                }
                if !sent {
                    dropped.fetch_add(batch.len() as u64, Ordering::Relaxed);
                }
                batch.clear();
            }
            if stopping {
                return;
            }
        }
    });
    (exporter, handle)
}

fn attr(key: &str, value: Value) -> Value {
    let v = match value {
        Value::String(s) => json!({ "stringValue": s }),
        Value::Bool(b) => json!({ "boolValue": b }),
        Value::Number(n) if n.is_f64() => json!({ "doubleValue": n }),
        Value::Number(n) => json!({ "intValue": n.to_string() }),
        other => json!({ "stringValue": other.to_string() }),
    };
    json!({ "key": key, "value": v })
}

fn nanos(ms: f64) -> String {
    format!("{}", (ms * 1_000_000.0).round() as u128)
}

/// OTLP JSON: one resource, one scope, a server span per request and a
/// client span per attempt.
pub fn encode(service: &str, entries: &[LogEntry]) -> String {
    let mut spans = Vec::new();
    for e in entries {
        let op = if e.route == "embeddings" { "embeddings" } else { "chat" };
        let start = e.time as f64;
        let mut attrs = vec![
            attr("gen_ai.operation.name", json!(op)),
            attr("gen_ai.request.model", json!(e.requested_model)),
            attr("gen_ai.usage.input_tokens", json!(e.prompt_tokens)),
            attr("gen_ai.usage.output_tokens", json!(e.completion_tokens)),
            attr("http.response.status_code", json!(e.status)),
            attr("tollgate.request_id", json!(e.id)),
            attr("tollgate.subject", json!(e.subject)),
            attr("tollgate.cost_usd", json!(crate::pricing::nanos_to_usd(e.cost_nanos))),
            attr("tollgate.stream", json!(e.stream)),
            attr("tollgate.config_version", json!(e.config_version)),
        ];
        if let Some(m) = &e.resolved_model {
            attrs.push(attr("gen_ai.response.model", json!(m)));
        }
        if let Some(p) = &e.provider {
            attrs.push(attr("gen_ai.provider.name", json!(p)));
        }
        if let Some(err) = &e.error {
            attrs.push(attr("error.type", json!(err)));
        }
        let status = if e.status >= 500 || (e.status >= 400 && e.error.is_some()) {
            json!({ "code": 2, "message": e.error.clone().unwrap_or_default() })
        } else {
            json!({ "code": 1 })
        };
        let mut span = json!({
            "traceId": e.trace_id, "spanId": e.span_id,
            "name": format!("{op} {}", e.requested_model),
            "kind": 2,
            "startTimeUnixNano": nanos(start),
            "endTimeUnixNano": nanos(start + e.total_ms),
            "attributes": attrs,
            "status": status,
        });
        if let Some(p) = &e.parent_span_id {
            span["parentSpanId"] = json!(p);
        }
        spans.push(span);
        for (i, a) in e.attempts.iter().enumerate() {
            let mut attrs = vec![
                attr("gen_ai.operation.name", json!(op)),
                attr("gen_ai.request.model", json!(a.target)),
                attr("tollgate.attempt.outcome", json!(a.outcome)),
            ];
            if let Some(s) = a.status {
                attrs.push(attr("http.response.status_code", json!(s)));
            }
            if let Some((provider, _)) = a.target.split_once('/') {
                attrs.push(attr("gen_ai.provider.name", json!(provider)));
            }
            let failed = !matches!(a.outcome.as_str(), "ok" | "skipped_open_circuit");
            spans.push(json!({
                "traceId": e.trace_id,
                "spanId": format!("{:016x}", u64::from_str_radix(&e.span_id, 16).unwrap_or(1).wrapping_add(i as u64 + 1)),
                "parentSpanId": e.span_id,
                "name": format!("{op} {}", a.target),
                "kind": 3,
                "startTimeUnixNano": nanos(start + a.start_ms),
                "endTimeUnixNano": nanos(start + a.start_ms + a.latency_ms),
                "attributes": attrs,
                "status": if failed { json!({ "code": 2, "message": a.reason }) } else { json!({ "code": 1 }) },
            }));
        }
    }
    json!({ "resourceSpans": [{
        "resource": { "attributes": [attr("service.name", json!(service))] },
        "scopeSpans": [{ "scope": { "name": "tollgate" }, "spans": spans }]
    }] })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_is_honoured_only_when_valid() {
        let mut h = HeaderMap::new();
        h.insert("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".parse().unwrap());
        let (trace, span, parent) = context(&h);
        assert_eq!(trace, "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(parent.as_deref(), Some("00f067aa0ba902b7"));
        assert_eq!(span.len(), 16);
        for bad in [
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "zz-x-y-z",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        ] {
            assert!(parse_traceparent(bad).is_none(), "{bad}");
        }
        let (t, _, p) = context(&HeaderMap::new());
        assert_eq!((t.len(), p), (32, None));
    }
}
