//! The request log: one entry per request — who, what was asked, what ran
//! (every attempt), the outcome, tokens, cost and phase timings, and the
//! config version — written by a background task in batches.
//!
//! Logging never slows or fails a request: entries go through a bounded
//! queue to one writer. When the store is down or slow, entries wait in a
//! bounded spool in memory and are written when it is back; with a disk
//! spool (`spool.rs`, every persistent store) they are also appended to a
//! file while they wait, so a restart during the outage keeps them. Inserts
//! are keyed by the request id, so a batch written twice is stored once.
//! Anything that has to be dropped (the queue full, or the disk spool full)
//! is counted and logged.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};

use crate::store::Store;

pub mod entry;
pub mod spool;
pub use entry::{AttemptLog, LogEntry};

const QUEUE: usize = 16_384;
const SPOOL: usize = 200_000;
const BATCH: usize = 512;
/// How long the writer gathers entries before a write that is not full.
const LINGER: Duration = Duration::from_millis(20);
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// Where entries are sent. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct RequestLog {
    tx: Arc<OnceLock<mpsc::Sender<LogEntry>>>,
    /// Where finished requests are also sent as trace spans.
    pub traces: Arc<OnceLock<crate::traces::Exporter>>,
    pub dropped: Arc<AtomicU64>,
    pub spooled: Arc<AtomicU64>,
}

impl RequestLog {
    pub fn submit(&self, e: LogEntry) {
        if let Some(t) = self.traces.get() {
            t.export(&e);
        }
        if !e.log {
            return;
        }
        let Some(tx) = self.tx.get() else { return };
        if tx.try_send(e).is_err() {
            let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            tracing::warn!(dropped_total = n, "request log queue full; an entry was dropped");
        }
    }

    /// Starts the writer; it runs until `stop`, then writes what it holds
    /// (trying for a few seconds if the store is down).
    pub fn start(
        &self,
        store: Arc<Store>,
        retention: Arc<dyn Fn() -> Option<Duration> + Send + Sync>,
        disk: Option<spool::DiskSpool>,
        mut stop: watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        let (tx, mut rx) = mpsc::channel::<LogEntry>(QUEUE);
        let _ = self.tx.set(tx);
        let (dropped, spooled) = (self.dropped.clone(), self.spooled.clone());
        crate::task::spawn("request-log-writer", async move {
            let mut disk = Disk::new(disk, dropped.clone());
            // What an earlier run left on disk goes first, in order.
            let mut spool: VecDeque<LogEntry> = disk.take_left_over().into();
            let mut failing = false;
            let mut last_prune: Option<tokio::time::Instant> = None;
            loop {
                let stopping = tokio::select! {
                    r = rx.recv() => match r { Some(e) => { spool.push_back(redacted(e)); false } None => true },
                    _ = stop.wait_for(|s| *s) => true,
                    // Waiting entries (a refused batch, or left by an earlier run) are retried.
                    _ = tokio::time::sleep(Duration::from_millis(if failing { 500 } else { 0 })), if !spool.is_empty() => false,
                };
                while let Ok(e) = rx.try_recv() {
                    spool.push_back(redacted(e));
                }
                // Gather a batch for a moment before writing: each write
                // (one SQLite transaction, one PostgreSQL statement) costs
                // about the same for 5 entries as for 500 — SQLite rewrites
                // whole pages per commit — so a few ms of waiting takes most
                // of the log's cost off the request core at full load.
                if !stopping && !failing && spool.len() < BATCH {
                    let until = tokio::time::Instant::now() + LINGER;
                    while spool.len() < BATCH {
                        match tokio::time::timeout_at(until, rx.recv()).await {
                            Ok(Some(e)) => spool.push_back(redacted(e)),
                            Ok(None) | Err(_) => break,
                        }
                    }
                }
                failing = disk.flush(&store, &mut spool).await;
                disk.settle(&store, &spool, failing).await;
                while spool.len() > SPOOL {
                    // On disk already when there is a disk spool: read back once the store is.
                    let e = spool.pop_front();
                    disk.evicted(e.as_ref());
                }
                spooled.store(spool.len() as u64 + disk.evicted_count(), Ordering::Relaxed);
                // Retention: drop what is older than the configured window, at most hourly.
                let due = last_prune.is_none_or(|t| t.elapsed() > PRUNE_EVERY);
                if let Some(keep) = retention().filter(|_| due) {
                    last_prune = Some(tokio::time::Instant::now());
                    let before = now_ms().saturating_sub(keep.as_millis() as u64);
                    match store.prune_logs(before).await {
                        Ok(n) if n > 0 => tracing::info!(removed = n, "request log entries past retention removed"),
                        Ok(_) => {}
                        Err(e) => tracing::warn!(error = %e, "could not prune the request log"),
                    }
                }
                if stopping {
                    for _ in 0..10 {
                        if !failing || spool.is_empty() {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        failing = disk.flush(&store, &mut spool).await;
                    }
                    disk.settle(&store, &spool, failing).await;
                    let lost = if disk.on() { disk.lost_at_shutdown(spool.len()) } else { spool.len() as u64 };
                    if lost > 0 {
                        dropped.fetch_add(lost, Ordering::Relaxed);
                        tracing::error!(
                            entries = lost,
                            "request log entries not written at shutdown (the store is unavailable and the disk spool is off or full)"
                        );
                    }
                    if disk.on() && spool.len() as u64 > lost {
                        tracing::warn!(
                            entries = spool.len() as u64 - lost,
                            "request log entries kept in the disk spool until the store is back"
                        );
                    }
                    return;
                }
            }
        })
    }
}

/// The writer's side of the disk spool: which waiting entries are on disk.
struct Disk {
    spool: Option<spool::DiskSpool>,
    dropped: Arc<AtomicU64>,
    /// The first `persisted` entries of the memory spool are in the file.
    persisted: usize,
    /// Entries in the file no longer held in memory (evicted, or left by an
    /// earlier run beyond the memory bound): read back once the store is up.
    evicted: u64,
    /// The file holds entries (some may be in the store already).
    dirty: bool,
    full_warned: bool,
}

impl Disk {
    fn new(spool: Option<spool::DiskSpool>, dropped: Arc<AtomicU64>) -> Disk {
        Disk { spool, dropped, persisted: 0, evicted: 0, dirty: false, full_warned: false }
    }

    fn on(&self) -> bool {
        self.spool.is_some()
    }

    fn evicted_count(&self) -> u64 {
        self.evicted
    }

    /// Entries left by an earlier run, to be written first (all of them are
    /// already in the file).
    fn take_left_over(&mut self) -> Vec<LogEntry> {
        let Some(s) = &self.spool else { return Vec::new() };
        let mut left = s.load();
        if !left.is_empty() {
            tracing::info!(entries = left.len(), "request log entries from the disk spool are written first");
        }
        if left.len() > SPOOL {
            self.evicted = (left.len() - SPOOL) as u64;
            left.truncate(SPOOL);
        }
        self.persisted = left.len();
        self.dirty = !left.is_empty() || self.evicted > 0;
        left
    }

    /// Writes what waits to the store, keeping track of what left the
    /// front of the memory spool; true when the store refused.
    async fn flush(&mut self, store: &Store, spool: &mut VecDeque<LogEntry>) -> bool {
        let before = spool.len();
        let failing = flush(store, spool).await;
        self.drained(before - spool.len());
        failing
    }

    /// After a flush: what still waits goes to disk, or, with everything
    /// written, the file goes.
    async fn settle(&mut self, store: &Store, spool: &VecDeque<LogEntry>, failing: bool) {
        if failing {
            self.keep(spool);
        } else {
            self.written(store).await;
        }
    }

    /// The store refuses: whatever waits and is not on disk yet goes there.
    fn keep(&mut self, spool: &VecDeque<LogEntry>) {
        let Some(s) = &self.spool else { return };
        if spool.len() <= self.persisted {
            return;
        }
        match s.append(spool.iter().skip(self.persisted)) {
            Ok(written) => {
                self.persisted += written;
                self.dirty |= written > 0;
                if self.persisted < spool.len() && !self.full_warned {
                    self.full_warned = true;
                    tracing::error!(
                        waiting = spool.len() - self.persisted,
                        "request log disk spool full; further entries wait in memory only"
                    );
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not write the request log disk spool; entries wait in memory only"),
        }
    }

    /// `n` entries from the front of the memory spool reached the store.
    fn drained(&mut self, n: usize) {
        self.persisted = self.persisted.saturating_sub(n);
    }

    /// One entry out of memory: lost unless it is in the file.
    fn evicted(&mut self, e: Option<&LogEntry>) {
        if e.is_none() {
            return;
        }
        if self.persisted > 0 {
            self.persisted -= 1;
            self.evicted += 1;
        } else {
            let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            tracing::warn!(dropped_total = n, "request log spool full; the oldest entry was dropped");
        }
    }

    /// The memory spool is written: entries only on disk are read back and
    /// written too, then the file goes.
    async fn written(&mut self, store: &Store) {
        let Some(s) = &self.spool else { return };
        if !self.dirty {
            return;
        }
        if self.evicted > 0 {
            let mut all: VecDeque<LogEntry> = s.load().into();
            if flush(store, &mut all).await {
                return; // the store failed again: the file stays, read back next time
            }
        }
        s.clear();
        self.persisted = 0;
        self.evicted = 0;
        self.dirty = false;
        self.full_warned = false;
    }

    /// At shutdown: entries neither in the store nor on disk are lost.
    fn lost_at_shutdown(&self, waiting: usize) -> u64 {
        (waiting - self.persisted.min(waiting)) as u64
    }
}

/// Masks secrets in the bodies (here, off the request path).
fn redacted(mut e: LogEntry) -> LogEntry {
    e.request_body = e.request_body.map(|b| crate::redact::body(&b));
    e.response_body = e.response_body.map(|b| crate::redact::body(&b));
    e
}

/// Writes the spool in batches; true while the store refuses.
async fn flush(store: &Store, spool: &mut VecDeque<LogEntry>) -> bool {
    while !spool.is_empty() {
        let n = spool.len().min(BATCH);
        // Moved out, not copied: a copy of every entry was a measurable part
        // of the log's cost per request. A refused batch is put back in front.
        let batch: Arc<Vec<LogEntry>> = Arc::new(spool.drain(..n).collect());
        if let Err(e) = store.append_logs(batch.clone()).await {
            let back = Arc::try_unwrap(batch).unwrap_or_else(|b| (*b).clone());
            for entry in back.into_iter().rev() {
                spool.push_front(entry);
            }
            tracing::warn!(error = %e, spooled = spool.len(), "request log store unavailable; entries wait in the spool");
            return true;
        }
    }
    false
}

/// Filters for a log search.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Query {
    /// Unix milliseconds, inclusive.
    pub from: Option<u64>,
    pub to: Option<u64>,
    pub subject: Option<String>,
    /// Matches the requested or the resolved model.
    pub model: Option<String>,
    pub status: Option<u16>,
    /// `model`, `mcp` or `a2a`.
    #[serde(default)]
    pub kind: Option<crate::resource::Kind>,
    /// `key=value` pairs on metadata.
    #[serde(default)]
    pub metadata: Vec<(String, String)>,
    /// The calls the agent layer made for this request.
    #[serde(default)]
    pub parent: Option<String>,
    /// Requests that used this prompt template (`id`, or `id@version`).
    #[serde(default)]
    pub prompt: Option<String>,
    pub limit: Option<usize>,
}

impl Query {
    pub fn matches(&self, e: &LogEntry) -> bool {
        self.from.is_none_or(|f| e.time >= f)
            && self.to.is_none_or(|t| e.time <= t)
            && self.subject.as_ref().is_none_or(|s| &e.subject == s)
            && self.model.as_ref().is_none_or(|m| &e.requested_model == m || e.resolved_model.as_ref() == Some(m))
            && self.status.is_none_or(|s| e.status == s)
            && self.kind.is_none_or(|k| e.kind == k)
            && self.parent.as_ref().is_none_or(|p| e.parent_id.as_ref() == Some(p))
            && self.metadata.iter().all(|(k, v)| e.metadata.get(k) == Some(v))
            && self.prompt.as_deref().is_none_or(|want| {
                e.prompt.as_ref().is_some_and(|p| match want.split_once('@') {
                    Some((id, v)) => p.id == id && v.parse() == Ok(p.version),
                    None => p.id == want,
                })
            })
    }
}

/// One row of a usage report: the group's values and its sums.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct UsageRow {
    pub group: BTreeMap<String, String>,
    pub requests: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub cost_usd: f64,
    /// Requests the response cache answered, and what those answers cost when first paid for.
    pub cache_hits: u64,
    pub saved_usd: f64,
}

/// Groups entries by `group_by` keys (`model`, `provider`, `subject`,
/// `status`, `day`, `metadata.<key>`) and sums them.
pub fn aggregate<'a>(entries: impl Iterator<Item = &'a LogEntry>, group_by: &[String]) -> Vec<UsageRow> {
    let mut groups: BTreeMap<Vec<String>, UsageRow> = BTreeMap::new();
    for e in entries {
        let values: Vec<String> = group_by.iter().map(|g| group_value(e, g)).collect();
        let row = groups.entry(values.clone()).or_insert_with(|| UsageRow {
            group: group_by.iter().cloned().zip(values).collect(),
            ..Default::default()
        });
        row.requests += 1;
        row.prompt_tokens += e.prompt_tokens;
        row.completion_tokens += e.completion_tokens;
        row.cost_usd += crate::pricing::nanos_to_usd(e.cost_nanos);
        if let Some(c) = e.cache.as_ref().filter(|c| c.status == "hit") {
            row.cache_hits += 1;
            row.saved_usd += crate::pricing::nanos_to_usd(c.saved_nanos);
        }
    }
    let mut rows: Vec<UsageRow> = groups.into_values().collect();
    rows.sort_by(|a, b| b.cost_usd.total_cmp(&a.cost_usd).then(b.requests.cmp(&a.requests)));
    rows
}

fn group_value(e: &LogEntry, key: &str) -> String {
    let v = match key {
        "model" => e.resolved_model.clone().unwrap_or_else(|| e.requested_model.clone()),
        "requested_model" => e.requested_model.clone(),
        "provider" => e.provider.clone().unwrap_or_else(|| "-".into()),
        "subject" => e.subject.clone(),
        "status" => e.status.to_string(),
        "day" => crate::budgets::period::format_utc(e.time / 1000)[..10].to_string(),
        other => match other.strip_prefix("metadata.") {
            Some(k) => e.metadata.get(k).cloned().unwrap_or_else(|| "-".into()),
            None => "-".into(),
        },
    };
    if v.is_empty() { "-".into() } else { v }
}

pub fn valid_group_key(key: &str) -> bool {
    matches!(key, "model" | "requested_model" | "provider" | "subject" | "status" | "day")
        || key.strip_prefix("metadata.").is_some_and(|k| !k.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(team: &str, model: &str, cost: u64) -> LogEntry {
        LogEntry {
            id: format!("r{cost}"),
            kind: crate::resource::Kind::Model,
            time: 1_795_000_000_000,
            subject: "key:a".into(),
            metadata: [("team".to_string(), team.to_string())].into(),
            requested_model: model.into(),
            resolved_model: Some(model.into()),
            provider: Some("p".into()),
            route: "chat".into(),
            stream: false,
            status: 200,
            error: None,
            prompt_tokens: 10,
            completion_tokens: 5,
            usage_estimated: false,
            cost_nanos: cost,
            total_ms: 1.0,
            upstream_ms: 0.5,
            backoff_ms: 0.0,
            attempts: vec![],
            config_version: 1,
            trace_id: String::new(),
            span_id: String::new(),
            parent_span_id: None,
            request_body: None,
            response_body: None,
            guardrails: vec![],
            mcp: None,
            a2a: None,
            cache: None,
            parent_id: None,
            agent: None,
            prompt: None,
            log: true,
        }
    }

    #[test]
    fn queries_filter_on_the_kind_of_call() {
        let model = entry("a", "m", 1);
        let tool = LogEntry { kind: crate::resource::Kind::Mcp, ..entry("a", "github/search", 2) };
        let q = |kind| Query { kind, ..Default::default() };
        assert!(q(None).matches(&model) && q(None).matches(&tool));
        assert!(q(Some(crate::resource::Kind::Mcp)).matches(&tool));
        assert!(!q(Some(crate::resource::Kind::Mcp)).matches(&model));
        assert!(!q(Some(crate::resource::Kind::A2a)).matches(&tool));
        // An entry stored before `kind` existed reads as a model call.
        let old: LogEntry = serde_json::from_value({
            let mut v = serde_json::to_value(&model).unwrap();
            v.as_object_mut().unwrap().remove("kind");
            v
        })
        .unwrap();
        assert_eq!(old.kind, crate::resource::Kind::Model);
    }

    #[test]
    fn usage_groups_by_metadata_and_model() {
        let es = [entry("a", "m1", 1_000_000_000), entry("a", "m1", 500_000_000), entry("b", "m2", 1)];
        let rows = aggregate(es.iter(), &["metadata.team".into(), "model".into()]);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].group["metadata.team"], "a");
        assert_eq!((rows[0].requests, rows[0].prompt_tokens), (2, 20));
        assert!((rows[0].cost_usd - 1.5).abs() < 1e-9);
        assert_eq!(aggregate(es.iter(), &["day".into()])[0].group["day"], "2026-11-18");
    }
}
