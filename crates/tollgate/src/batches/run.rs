//! The executor: runs the lines of every unfinished batch through the
//! data-plane router, in-process (`tower::ServiceExt::oneshot`), so a line
//! is the same request an HTTP client would send — same load shedding,
//! authentication, limits, budgets, guardrails, routing, request log and
//! cost — with the batch id added to its metadata.
//!
//! - Concurrency: at most `batches.concurrency` lines in flight over all
//!   batches (read per line, so a reload applies at once). A line waiting
//!   out a rate limit gives its slot back.
//! - A 429 from a rate limit (the gateway's or a provider's) or a 503 from
//!   load shedding is waited out (`retry-after`) and retried; a budget
//!   refusal, any other 4xx and a 5xx are a failed line.
//! - Progress: each finished line is stored at once, so after a restart
//!   only unfinished lines run (a line cut off mid-flight by a crash runs
//!   again; every line is in the output exactly once).
//! - A batch is leased while it runs; instances sharing a PostgreSQL store
//!   run each batch once.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::body::Body;
use futures_util::StreamExt;
use http::{HeaderMap, HeaderValue, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tower::ServiceExt;

use super::input::{self, Line};
use super::record::{BatchError, BatchRecord, FileRecord, LineResult, Status};
use super::{Batches, new_id, now_secs};
use crate::config::reload::Live;

/// How often the store is read for batches nobody runs (another
/// instance's that stopped, one whose last pass could not finish).
const POLL: Duration = Duration::from_secs(10);
/// How long a lease lasts; renewed every third of it.
const LEASE: u64 = 60;
/// Longest wait for a rate limit before trying a line again.
const MAX_WAIT: Duration = Duration::from_secs(300);
/// How often finished batches and old files are pruned, with a retention.
const PRUNE_EVERY: u64 = 3600;

struct Exec {
    batches: Arc<Batches>,
    live: Arc<Live>,
    router: axum::Router,
    stop: watch::Receiver<bool>,
    slots: Slots,
}

/// Starts the executor. It stops taking lines when `stop` fires, lets the
/// lines in flight finish and keeps their results, and leaves the rest for
/// the next start.
pub fn start(
    batches: Arc<Batches>,
    live: Arc<Live>,
    router: axum::Router,
    stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    let ex = Arc::new(Exec { batches, live, router, stop, slots: Slots::default() });
    crate::task::spawn("batch-executor", main_loop(ex))
}

async fn main_loop(ex: Arc<Exec>) {
    let mut tasks: Vec<JoinHandle<()>> = Vec::new();
    let mut stop = ex.stop.clone();
    let mut pruned_at = 0;
    loop {
        tasks.retain(|t| !t.is_finished());
        match ex.batches.store.unfinished_batches().await {
            Ok(list) => {
                for rec in list {
                    if let Some(cancel) = claim(&ex, &rec.id).await {
                        tasks.push(crate::task::spawn("batch", run_batch(ex.clone(), rec, cancel)));
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not read unfinished batches from the store; trying again"),
        }
        if let Some(keep) = ex.live.snapshot().batches.retention
            && now_secs() >= pruned_at + PRUNE_EVERY
        {
            pruned_at = now_secs();
            match ex.batches.store.prune_batches(pruned_at.saturating_sub(keep.as_secs())).await {
                Ok(n) if n > 0 => tracing::info!(removed = n, "pruned batches and files past batches.retention"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "could not prune old batches and files"),
            }
        }
        tokio::select! {
            _ = ex.batches.wake.notified() => {}
            _ = tokio::time::sleep(POLL) => {}
            _ = stop.wait_for(|s| *s) => break,
        }
    }
    for t in tasks {
        let _ = t.await;
    }
}

/// Takes a batch this process does not run yet, if its lease is free: its
/// cancel signal.
async fn claim(ex: &Exec, id: &str) -> Option<watch::Receiver<bool>> {
    let b = &ex.batches;
    if b.running.lock().unwrap_or_else(|p| p.into_inner()).contains_key(id) {
        return None;
    }
    let now = now_secs();
    match b.store.claim_batch(id.to_string(), b.runner.clone(), now, now + LEASE).await {
        Ok(true) => {}
        Ok(false) => return None,
        Err(e) => {
            tracing::warn!(batch = id, error = %e, "could not claim a batch");
            return None;
        }
    }
    let (tx, rx) = watch::channel(false);
    b.running.lock().unwrap_or_else(|p| p.into_inner()).insert(id.to_string(), tx);
    Some(rx)
}

async fn run_batch(ex: Arc<Exec>, rec: BatchRecord, cancel: watch::Receiver<bool>) {
    let id = rec.id.clone();
    if let Err(e) = run(&ex, rec, cancel).await {
        tracing::warn!(batch = %id, error = %e, "batch pass stopped; it resumes on the next pass");
    }
    ex.batches.running.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
}

async fn run(ex: &Exec, mut rec: BatchRecord, cancel: watch::Receiver<bool>) -> Result<(), String> {
    let store = &ex.batches.store;
    let Some(content) = store.file_content(rec.input_file_id.clone()).await? else {
        return fail(ex, rec, "input_file_missing", "the input file was deleted before the batch ran").await;
    };
    let lines = match input::parse(&content) {
        Ok(l) => l,
        Err(e) => return fail(ex, rec, "invalid_input_file", &e).await,
    };
    let sealed = store.batch_credential(rec.id.clone()).await?;
    let Some(headers) = sealed.and_then(|s| ex.batches.open(&s)) else {
        let why = "the creator's credential cannot be read (the store's secret changed); create the batch again";
        return fail(ex, rec, "credential_unavailable", why).await;
    };
    if rec.status == Status::Validating {
        let mut next = rec.clone();
        next.status = Status::InProgress;
        next.in_progress_at = Some(now_secs());
        if store.update_batch(next.clone(), &[Status::Validating]).await? {
            rec = next;
        }
    }
    if rec.status == Status::InProgress && !*cancel.borrow() {
        let done: HashSet<u64> = store.done_lines(rec.id.clone()).await?.into_iter().collect();
        // Owned lines (the body is shared bytes): the futures borrow nothing per item.
        let todo: Vec<Line> = lines.iter().filter(|l| !done.contains(&l.index)).cloned().collect();
        let headers = with_batch_id(headers, &rec.id);
        let work = futures_util::stream::iter(todo)
            .map(|l| run_line(ex, &rec, &headers, l, cancel.clone()))
            // Lines wait for a slot inside; this only bounds futures held.
            .buffer_unordered(1024)
            .for_each(|_| async {});
        tokio::pin!(work);
        let mut renew = tokio::time::interval(Duration::from_secs(LEASE / 3));
        loop {
            tokio::select! {
                _ = &mut work => break,
                _ = renew.tick() => renew_lease(ex, &rec.id).await,
            }
        }
    }
    if *ex.stop.borrow() {
        return Ok(());
    }
    finish(ex, &rec.id, lines).await
}

/// Keeps the lease and notices a cancel made through another instance.
async fn renew_lease(ex: &Exec, id: &str) {
    let b = &ex.batches;
    let now = now_secs();
    if let Err(e) = b.store.claim_batch(id.to_string(), b.runner.clone(), now, now + LEASE).await {
        tracing::warn!(batch = id, error = %e, "could not renew a batch lease");
    }
    if let Ok(Some(r)) = b.store.get_batch(id.to_string()).await
        && r.status == Status::Cancelling
    {
        b.cancel(id);
    }
}

/// After a pass: the batch ends cancelled, expired or completed, or — when
/// some line's result could not be stored — waits for the next pass.
async fn finish(ex: &Exec, id: &str, lines: Vec<Line>) -> Result<(), String> {
    let store = &ex.batches.store;
    let Some(mut rec) = store.get_batch(id.to_string()).await? else { return Ok(()) };
    let done: HashSet<u64> = store.done_lines(id.to_string()).await?.into_iter().collect();
    let left: Vec<&Line> = lines.iter().filter(|l| !done.contains(&l.index)).collect();
    let now = now_secs();
    let (from, to) = match rec.status {
        Status::Cancelling => (Status::Cancelling, Status::Cancelled),
        Status::InProgress | Status::Finalizing if left.is_empty() => (rec.status, Status::Completed),
        Status::InProgress | Status::Finalizing if now >= rec.expires_at => {
            // What never ran goes to the error file, as OpenAI reports it.
            for l in left {
                let err = json!({
                    "code": "batch_expired",
                    "message": "This request could not be executed before the completion window expired.",
                });
                let json =
                    json!({ "id": new_id("batch_req_"), "custom_id": l.custom_id, "response": null, "error": err });
                store
                    .record_line(id.to_string(), LineResult { line: l.index, ok: false, json: json.to_string() })
                    .await?;
            }
            (rec.status, Status::Expired)
        }
        Status::InProgress => {
            return Err(format!("{} line(s) have no stored result yet", left.len()));
        }
        _ => return Ok(()),
    };
    if to != Status::Cancelled && from == Status::InProgress {
        let mut next = rec.clone();
        next.status = Status::Finalizing;
        next.finalizing_at = Some(now);
        if !store.update_batch(next.clone(), &[Status::InProgress]).await? {
            // Cancelled meanwhile: the next pass ends it as cancelled.
            ex.batches.wake();
            return Ok(());
        }
        rec = next;
    }
    let results = store.batch_lines(id.to_string()).await?;
    rec.output_file_id = write_file(ex, &rec, "output", results.iter().filter(|r| r.ok)).await?;
    rec.error_file_id = write_file(ex, &rec, "error", results.iter().filter(|r| !r.ok)).await?;
    let from = rec.status;
    rec.status = to;
    match to {
        Status::Completed => rec.completed_at = Some(now),
        Status::Expired => rec.expired_at = Some(now),
        _ => rec.cancelled_at = Some(now),
    }
    store.update_batch(rec, &[from]).await?;
    tracing::info!(batch = id, status = to.as_str(), "batch finished");
    Ok(())
}

/// The output or error file, or `None` when no line belongs in it. Its id
/// follows from the batch's, so finishing again after a crash replaces it.
async fn write_file<'a>(
    ex: &Exec,
    rec: &BatchRecord,
    kind: &str,
    lines: impl Iterator<Item = &'a LineResult>,
) -> Result<Option<String>, String> {
    let mut content = Vec::new();
    for l in lines {
        content.extend_from_slice(l.json.as_bytes());
        content.push(b'\n');
    }
    if content.is_empty() {
        return Ok(None);
    }
    let digest = crate::digest::sha256(format!("{}:{kind}", rec.id).as_bytes());
    let file = FileRecord {
        id: format!("file-{}", &hex::encode(digest)[..24]),
        owner: rec.owner.clone(),
        created_at: now_secs(),
        filename: format!("{}_{kind}.jsonl", rec.id),
        purpose: "batch_output".into(),
        bytes: content.len() as u64,
    };
    let id = file.id.clone();
    ex.batches.store.put_file(file, content).await?;
    Ok(Some(id))
}

/// A batch that cannot run at all.
async fn fail(ex: &Exec, mut rec: BatchRecord, code: &str, message: &str) -> Result<(), String> {
    let from = rec.status;
    rec.status = Status::Failed;
    rec.failed_at = Some(now_secs());
    rec.errors.push(BatchError { code: code.into(), message: message.into(), line: None });
    tracing::warn!(batch = %rec.id, code, "batch failed");
    ex.batches.store.update_batch(rec, &[from]).await.map(|_| ())
}

/// The creator's headers, with `batch_id` added to the request metadata
/// (a key the creator's credential pins is left as it is).
fn with_batch_id(mut h: HeaderMap, id: &str) -> HeaderMap {
    let name = if h.contains_key("x-tollgate-metadata") { "x-tollgate-metadata" } else { "x-tfy-metadata" };
    let mut meta = h
        .get(name)
        .and_then(|v| serde_json::from_slice::<serde_json::Map<String, Value>>(v.as_bytes()).ok())
        .unwrap_or_default();
    meta.entry("batch_id").or_insert_with(|| Value::String(id.to_string()));
    if let Ok(v) = HeaderValue::from_str(&Value::Object(meta).to_string()) {
        h.remove("x-tfy-metadata");
        h.insert("x-tollgate-metadata", v);
    }
    h.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h
}

/// Runs one line until it has a result, and stores it. Returns without a
/// result when the batch is cancelled, the gateway stops or the window ends.
async fn run_line(ex: &Exec, rec: &BatchRecord, headers: &HeaderMap, line: Line, mut cancel: watch::Receiver<bool>) {
    let mut stop = ex.stop.clone();
    let mut backoff = Duration::from_secs(1);
    let (status, request_id, body) = loop {
        let slot = tokio::select! {
            s = ex.slots.take(|| ex.live.snapshot().batches.concurrency) => s,
            _ = cancel.wait_for(|c| *c) => return,
            _ = stop.wait_for(|s| *s) => return,
        };
        if *cancel.borrow() || *stop.borrow() || now_secs() >= rec.expires_at {
            return;
        }
        let mut req = Request::post(line.url.as_str()).body(Body::from(line.body.clone())).unwrap_or_default();
        *req.headers_mut() = headers.clone();
        let resp = match ex.router.clone().oneshot(req).await {
            Ok(r) => r,
            Err(never) => match never {},
        };
        let (parts, body) = resp.into_parts();
        let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
        drop(slot);
        let Some(wait) = retry_wait(parts.status, &parts.headers, &mut backoff) else {
            let request_id =
                parts.headers.get("x-tollgate-request-id").and_then(|v| v.to_str().ok()).map(str::to_string);
            break (parts.status, request_id, body);
        };
        tracing::debug!(batch = %rec.id, custom_id = %line.custom_id, wait_ms = wait.as_millis() as u64, "batch line waits out a rate limit");
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = cancel.wait_for(|c| *c) => return,
            _ = stop.wait_for(|s| *s) => return,
        }
    };
    let body: Value =
        serde_json::from_slice(&body).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
    let json = json!({
        "id": new_id("batch_req_"),
        "custom_id": line.custom_id,
        "response": { "status_code": status.as_u16(), "request_id": request_id, "body": body },
        "error": null,
    });
    let result = LineResult { line: line.index, ok: status.is_success(), json: json.to_string() };
    if let Err(e) = ex.batches.store.record_line(rec.id.clone(), result).await {
        tracing::warn!(batch = %rec.id, error = %e, "could not store a batch line's result; it runs again on the next pass");
    }
}

/// How long to wait before trying a refused line again, or `None` when its
/// answer is final. A rate limit (429) and load shedding (503 with
/// `retry-after`) pass with time; a budget refusal (`x-should-retry:
/// false`) or a request larger than a limit allows at all does not.
fn retry_wait(status: StatusCode, h: &HeaderMap, backoff: &mut Duration) -> Option<Duration> {
    let header = |n: &str| h.get(n).and_then(|v| v.to_str().ok());
    let after = header("retry-after").and_then(|v| v.trim().parse::<f64>().ok()).filter(|s| s.is_finite() && *s >= 0.0);
    let retryable = match status {
        StatusCode::TOO_MANY_REQUESTS => {
            header("x-should-retry") != Some("false") && (after.is_some() || header("x-tollgate-limit").is_none())
        }
        StatusCode::SERVICE_UNAVAILABLE => after.is_some(),
        _ => false,
    };
    if !retryable {
        return None;
    }
    let wait = match after {
        Some(s) => Duration::from_secs_f64(s).max(Duration::from_millis(100)),
        None => {
            let w = *backoff;
            *backoff = (*backoff * 2).min(Duration::from_secs(60));
            w
        }
    };
    Some(wait.min(MAX_WAIT))
}

/// Lines in flight over every batch, up to a limit read at each take (so a
/// reload of `batches.concurrency` applies to the next line).
#[derive(Default)]
struct Slots {
    used: AtomicUsize,
    freed: Notify,
}

struct Slot<'a>(&'a Slots);

impl Slots {
    async fn take(&self, limit: impl Fn() -> usize) -> Slot<'_> {
        loop {
            let freed = self.freed.notified();
            tokio::pin!(freed);
            // Registered before the check, so a slot freed in between wakes us.
            freed.as_mut().enable();
            let n = self.used.load(Ordering::Acquire);
            if n < limit().max(1) {
                if self.used.compare_exchange(n, n + 1, Ordering::AcqRel, Ordering::Acquire).is_ok() {
                    return Slot(self);
                }
                continue;
            }
            freed.await;
        }
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.used.fetch_sub(1, Ordering::AcqRel);
        self.0.freed.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs.iter().map(|(k, v)| (http::HeaderName::from_static(k), HeaderValue::from_static(v))).collect()
    }

    #[test]
    fn rate_limits_are_waited_out_and_budgets_are_not() {
        let mut b = Duration::from_secs(1);
        let limited = h(&[("retry-after", "3"), ("x-tollgate-limit", "per-minute")]);
        assert_eq!(retry_wait(StatusCode::TOO_MANY_REQUESTS, &limited, &mut b), Some(Duration::from_secs(3)));
        // A provider's 429 without retry-after: doubling backoff.
        assert_eq!(retry_wait(StatusCode::TOO_MANY_REQUESTS, &h(&[]), &mut b), Some(Duration::from_secs(1)));
        assert_eq!(retry_wait(StatusCode::TOO_MANY_REQUESTS, &h(&[]), &mut b), Some(Duration::from_secs(2)));
        let budget = h(&[("retry-after", "100"), ("x-should-retry", "false")]);
        assert_eq!(retry_wait(StatusCode::TOO_MANY_REQUESTS, &budget, &mut b), None);
        // Larger than the limit allows at all: waiting cannot help.
        assert_eq!(retry_wait(StatusCode::TOO_MANY_REQUESTS, &h(&[("x-tollgate-limit", "tpm")]), &mut b), None);
        assert_eq!(
            retry_wait(StatusCode::SERVICE_UNAVAILABLE, &h(&[("retry-after", "1")]), &mut b),
            Some(Duration::from_secs(1))
        );
        assert_eq!(retry_wait(StatusCode::SERVICE_UNAVAILABLE, &h(&[]), &mut b), None);
        assert_eq!(retry_wait(StatusCode::BAD_REQUEST, &limited, &mut b), None);
        assert_eq!(retry_wait(StatusCode::TOO_MANY_REQUESTS, &h(&[("retry-after", "99999")]), &mut b), Some(MAX_WAIT));
    }

    #[test]
    fn the_batch_id_joins_the_creators_metadata() {
        let out = with_batch_id(h(&[("x-tfy-metadata", r#"{"team":"a"}"#)]), "batch_1");
        let meta: Value = serde_json::from_slice(out.get("x-tollgate-metadata").unwrap().as_bytes()).unwrap();
        assert_eq!(meta, json!({ "team": "a", "batch_id": "batch_1" }));
        assert!(out.get("x-tfy-metadata").is_none());
    }

    #[tokio::test]
    async fn slots_bound_what_runs_at_once() {
        let s = Slots::default();
        let a = s.take(|| 2).await;
        let _b = s.take(|| 2).await;
        let third = s.take(|| 2);
        tokio::pin!(third);
        assert!(tokio::time::timeout(Duration::from_millis(50), third.as_mut()).await.is_err());
        drop(a);
        assert!(tokio::time::timeout(Duration::from_secs(1), third).await.is_ok());
    }
}
