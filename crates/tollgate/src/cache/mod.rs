//! The response cache: answers to chat requests kept by an exact key, in
//! this process or on Redis, per tenant.
//!
//! The key hashes the tenant scope (the caller's team, else the caller),
//! the request's `namespace`, the model the request resolved to, the front
//! door, and every field of the request (canonical JSON, so key order never
//! matters) except those that do not shape the answer (`stream`,
//! `stream_options`, `user`, `metadata`, `store`). Only complete answers are
//! kept: a failed call or a stream that did not end properly never is.
//!
//! - `memory` — the in-process backend.
//! - `redis` — the shared backend; an outage is a miss.
//! - `stream` — a streamed answer assembled as it passes, to be kept.
//! - `anthropic` — the same for answers in Anthropic's own shape.

pub mod anthropic;
pub mod embed;
pub mod memory;
pub mod redis;
pub mod semantic;
pub mod stream;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::HeaderMap;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::diag::Diags;
use crate::config::file::{CacheBackend, CacheMode, CacheSection};
use crate::error::RequestError;
use crate::identity::Principal;
use crate::wire::openai::Usage;

/// The request header that steers the cache for one request.
pub const HEADER: &str = "x-tollgate-cache";
/// The response header that says what the cache did.
pub const STATUS_HEADER: &str = "x-tollgate-cache-status";
/// On a semantic hit: how similar the request was to the one answered.
pub const SIMILARITY_HEADER: &str = "x-tollgate-cache-similarity";

const DEFAULT_TTL: Duration = Duration::from_secs(3600);
const DEFAULT_MAX_ENTRIES: usize = 10_000;
const DEFAULT_MAX_BYTES: usize = 256 << 20;
/// An answer larger than this is not kept (nor buffered to be kept).
pub const MAX_ENTRY_BYTES: usize = 4 << 20;

/// The cache as the config sets it.
#[derive(Debug, Clone)]
pub struct CacheSettings {
    pub mode: CacheMode,
    pub backend: CacheBackend,
    pub redis_url: Option<String>,
    pub ttl: Duration,
    pub max_entries: usize,
    pub max_bytes: usize,
    pub semantic: SemanticSettings,
}

/// How `semantic` mode compares requests.
#[derive(Debug, Clone)]
pub struct SemanticSettings {
    /// The embedding model routed by this gateway; `None`: the built-in one.
    pub model: Option<String>,
    pub threshold: f32,
}

const DEFAULT_THRESHOLD: f32 = 0.9;

impl Default for SemanticSettings {
    fn default() -> Self {
        SemanticSettings { model: None, threshold: DEFAULT_THRESHOLD }
    }
}

impl Default for CacheSettings {
    fn default() -> Self {
        CacheSettings {
            mode: CacheMode::Off,
            backend: CacheBackend::Memory,
            redis_url: None,
            ttl: DEFAULT_TTL,
            max_entries: DEFAULT_MAX_ENTRIES,
            max_bytes: DEFAULT_MAX_BYTES,
            semantic: SemanticSettings::default(),
        }
    }
}

pub fn build(sec: &CacheSection, d: &mut Diags) -> CacheSettings {
    let at = crate::config::loc::Loc::unplaced(());
    let semantic = sec.semantic.as_ref().map_or_else(SemanticSettings::default, |s| {
        let threshold = s.threshold.unwrap_or(f64::from(DEFAULT_THRESHOLD));
        if !(threshold > 0.0 && threshold <= 1.0) {
            d.at(&at, format!("cache.semantic.threshold {threshold} is not a similarity"), "give a number above 0 and at most 1, e.g. 0.9");
        }
        SemanticSettings {
            model: s.embedding_model.clone().filter(|m| m != "builtin"),
            threshold: threshold as f32,
        }
    });
    let redis_url = sec.redis_url.as_ref().map(|u| u.value.clone());
    match (&sec.backend, &redis_url) {
        (CacheBackend::Redis, None) => d.at(&at, "cache: backend redis needs `redis_url`", "e.g. redis://127.0.0.1:6379/0"),
        // Not echoed: the URL may carry a password.
        (CacheBackend::Redis, Some(u)) if ::redis::Client::open(u.as_str()).is_err() => {
            d.at(&at, "cache: `redis_url` is not a Redis URL", "e.g. redis://127.0.0.1:6379/0")
        }
        _ => {}
    }
    CacheSettings {
        mode: sec.mode,
        backend: sec.backend,
        redis_url,
        ttl: sec.ttl.as_ref().map_or(DEFAULT_TTL, |t| t.0),
        max_entries: sec.max_entries.unwrap_or(DEFAULT_MAX_ENTRIES),
        max_bytes: sec.max_bytes.as_ref().map_or(DEFAULT_MAX_BYTES, |b| usize::try_from(b.0).unwrap_or(usize::MAX)),
        semantic,
    }
}

/// What the cache did for a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Hit,
    Miss,
    /// `force_refresh`: asked upstream, and the answer replaces the kept one.
    Refresh,
    /// The request turned the cache off.
    Bypass,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Hit => "hit",
            Status::Miss => "miss",
            Status::Refresh => "refresh",
            Status::Bypass => "bypass",
        }
    }
}

/// The cache's part in one request.
#[derive(Debug, Clone)]
pub struct Decision {
    pub status: Status,
    pub key: String,
    pub ttl: Duration,
    /// On a hit: the model that gave the kept answer, and what it cost then.
    pub resolved: Option<String>,
    pub saved_nanos: u64,
    /// In semantic mode, for a request that ends with a user turn.
    pub probe: Option<Probe>,
    /// A hit found by similarity rather than by its exact key.
    pub similarity: Option<f32>,
}

/// What semantic matching compares: the last user turn, within the
/// partition of requests equal in everything else.
#[derive(Debug, Clone)]
pub struct Probe {
    pub partition: String,
    pub text: String,
    pub threshold: f32,
    /// The text's embedding, once made (kept with the answer on a miss).
    pub vector: Option<Arc<Vec<f32>>>,
}

/// `x-tollgate-cache`, as a request writes it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Control {
    mode: Option<CacheMode>,
    ttl: Option<String>,
    namespace: Option<String>,
    #[serde(default)]
    force_refresh: bool,
    threshold: Option<f32>,
}

/// What the cache should do for this request (`None`: the cache is off
/// and the request did not ask for it), or why the header is wrong.
pub fn decide(
    settings: &CacheSettings,
    headers: &HeaderMap,
    principal: Option<&Principal>,
    model: &str,
    front: &str,
    body: &[u8],
) -> Result<Option<Decision>, RequestError> {
    let bad = |m: String| RequestError::InvalidHeader { header: HEADER, message: m };
    let control: Control = match headers.get(HEADER) {
        None => Control::default(),
        Some(v) => serde_json::from_slice(v.as_bytes()).map_err(|e| {
            bad(format!(r#"must be a JSON object like {{"mode": "exact", "ttl": "10m", "namespace": "evals", "force_refresh": false}} ({e})"#))
        })?,
    };
    let mode = control.mode.unwrap_or(settings.mode);
    let threshold = control.threshold.unwrap_or(settings.semantic.threshold);
    if !(threshold > 0.0 && threshold <= 1.0) {
        return Err(bad(format!("`threshold` {threshold} is not a similarity: give a number above 0 and at most 1")));
    }
    let ttl = match &control.ttl {
        Some(t) => crate::config::loc::Dur::parse(t).map_err(|e| bad(format!("`ttl`: {e}")))?,
        None => settings.ttl,
    };
    if mode == CacheMode::Off {
        let asked = headers.contains_key(HEADER);
        return Ok(asked.then(|| Decision {
            status: Status::Bypass,
            key: String::new(),
            ttl,
            resolved: None,
            saved_nanos: 0,
            probe: None,
            similarity: None,
        }));
    }
    let Ok(mut request) = serde_json::from_slice::<Value>(body) else { return Ok(None) };
    if let Some(o) = request.as_object_mut() {
        for k in ["stream", "stream_options", "user", "metadata", "store"] {
            o.remove(k);
        }
    }
    let scope = principal.map_or_else(
        || "-".to_string(),
        |p| p.team.as_ref().map_or_else(|| format!("subject:{}", p.id), |t| format!("team:{t}")),
    );
    let mut keyed = serde_json::json!({
        "v": 1, "scope": scope, "namespace": control.namespace.unwrap_or_default(),
        "model": model, "front": front, "request": request,
    });
    let key = crate::mcp::inventory::canonical_sha256(&keyed);
    let probe = if mode == CacheMode::Semantic {
        last_user_turn(&mut keyed["request"]).map(|text| {
            keyed["v"] = Value::from("semantic-1");
            let partition = crate::mcp::inventory::canonical_sha256(&keyed);
            Probe { partition, text, threshold, vector: None }
        })
    } else {
        None
    };
    let status = if control.force_refresh { Status::Refresh } else { Status::Miss };
    Ok(Some(Decision { status, key, ttl, resolved: None, saved_nanos: 0, probe, similarity: None }))
}

/// The text of the request's last message when a user wrote it (text
/// parts only; a turn carrying tool results is not a question to match),
/// taken out of the request so the rest names the partition.
fn last_user_turn(request: &mut Value) -> Option<String> {
    let last = request.get_mut("messages")?.as_array_mut()?.last_mut()?;
    if last.get("role").and_then(Value::as_str) != Some("user") {
        return None;
    }
    let text = match last.get("content")? {
        Value::String(s) => s.clone(),
        Value::Array(parts) => {
            let mut out = Vec::new();
            for p in parts {
                match (p.get("type").and_then(Value::as_str), p.get("text").and_then(Value::as_str)) {
                    (Some("text"), Some(t)) => out.push(t),
                    _ => return None, // an image, a file or a tool result: only an exact match will do
                }
            }
            out.join("\n")
        }
        _ => return None,
    };
    if text.trim().is_empty() {
        return None;
    }
    last["content"] = Value::Null;
    Some(text)
}

/// A kept answer: the complete chat completion (hub JSON) or, for a
/// `/v1/messages` request relayed to an Anthropic model, the Anthropic
/// message; its usage, the model that gave it and what it cost.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    pub body: String,
    /// The body is an Anthropic message (only ever under a `/v1/messages` key).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub anthropic: bool,
    pub usage: Option<Usage>,
    pub resolved: String,
    pub cost_nanos: u64,
}

/// The backends, kept across config reloads.
#[derive(Default)]
pub struct Caches {
    memory: memory::Memory,
    redis: Mutex<Option<Arc<redis::Redis>>>,
    index: semantic::Index,
}

impl std::fmt::Debug for Caches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Caches").field("memory_bytes", &self.memory.bytes()).finish_non_exhaustive()
    }
}

impl Caches {
    fn redis(&self, url: &str) -> Arc<redis::Redis> {
        let mut r = self.redis.lock().unwrap_or_else(|p| p.into_inner());
        match r.as_ref() {
            Some(x) if x.url() == url => x.clone(),
            _ => r.insert(Arc::new(redis::Redis::new(url))).clone(),
        }
    }

    pub async fn get(&self, s: &CacheSettings, key: &str) -> Option<Entry> {
        let raw = match (s.backend, &s.redis_url) {
            (CacheBackend::Redis, Some(url)) => self.redis(url).get(key).await,
            _ => self.memory.get(key),
        }?;
        serde_json::from_slice(&raw).ok()
    }

    /// Keeps an answer; returns the entries evicted to make room.
    pub async fn put(&self, s: &CacheSettings, key: &str, entry: &Entry, ttl: Duration) -> u64 {
        let Ok(raw) = serde_json::to_vec(entry) else { return 0 };
        if raw.len() > MAX_ENTRY_BYTES {
            return 0;
        }
        match (s.backend, &s.redis_url) {
            (CacheBackend::Redis, Some(url)) => {
                self.redis(url).put(key, Bytes::from(raw), ttl).await;
                0
            }
            _ => self.memory.put(key.to_string(), Bytes::from(raw), ttl, s.max_entries, s.max_bytes),
        }
    }

    /// Bytes held by the memory backend.
    pub fn memory_bytes(&self) -> usize {
        self.memory.bytes()
    }

    /// The kept answers whose last user turn is like `vector`, best first.
    /// With Redis, the partition's vectors added by other instances are
    /// read first (at most every `SYNC_EVERY`).
    pub async fn similar(&self, s: &CacheSettings, probe: &Probe, vector: &[f32]) -> Vec<semantic::Match> {
        if let (CacheBackend::Redis, Some(url)) = (s.backend, &s.redis_url) {
            let (cursor, synced) = self.index.cursor(&probe.partition);
            if synced.is_none_or(|t| t.elapsed() >= SYNC_EVERY)
                && let Some(changes) = self.redis(url).changes(&probe.partition, &cursor).await
            {
                let mut last = cursor;
                for (id, key, v, ttl) in changes {
                    self.index.insert(&probe.partition, &key, &v, ttl, s.max_entries);
                    last = id;
                }
                self.index.set_cursor(&probe.partition, last);
            }
        }
        self.index.search(&probe.partition, vector, probe.threshold, 3)
    }

    /// An indexed answer that is gone from the backend.
    pub fn forget(&self, probe: &Probe, key: &str) {
        self.index.remove(&probe.partition, key);
    }

    /// Indexes a kept answer's vector (and shares it through Redis).
    pub async fn index(&self, s: &CacheSettings, probe: &Probe, key: &str, vector: &[f32], ttl: Duration) {
        self.index.insert(&probe.partition, key, vector, ttl, s.max_entries);
        if let (CacheBackend::Redis, Some(url)) = (s.backend, &s.redis_url) {
            self.redis(url).append(&probe.partition, key, vector, ttl, s.max_entries).await;
        }
    }

    /// Vectors held by the semantic index.
    pub fn indexed(&self) -> usize {
        self.index.len()
    }
}

/// How stale another instance's view of a partition may be with Redis.
const SYNC_EVERY: Duration = Duration::from_millis(100);

#[cfg(test)]
mod tests {
    use super::*;

    fn on() -> CacheSettings {
        CacheSettings { mode: CacheMode::Exact, ..Default::default() }
    }

    fn key(h: &HeaderMap, body: &str) -> Option<Decision> {
        decide(&on(), h, None, "mock/echo", "openai", body.as_bytes()).unwrap()
    }

    #[test]
    fn the_key_ignores_key_order_and_stream_flags_but_not_content() {
        let h = HeaderMap::new();
        let a = key(&h, r#"{"model": "m", "messages": [{"role": "user", "content": "hi"}], "temperature": 0}"#).unwrap();
        let b = key(&h, r#"{"temperature": 0, "stream": true, "messages": [{"content": "hi", "role": "user"}], "model": "m"}"#).unwrap();
        assert_eq!(a.key, b.key);
        let c = key(&h, r#"{"model": "m", "messages": [{"role": "user", "content": "hi"}], "temperature": 1}"#).unwrap();
        assert_ne!(a.key, c.key, "a generation parameter changes the key");
        assert_eq!(a.status, Status::Miss);
    }

    #[test]
    fn the_header_steers_and_is_checked() {
        let mut h = HeaderMap::new();
        h.insert(HEADER, r#"{"namespace": "evals", "force_refresh": true, "ttl": "5m"}"#.parse().unwrap());
        let d = key(&h, r#"{"model": "m", "messages": []}"#).unwrap();
        assert_eq!((d.status, d.ttl), (Status::Refresh, Duration::from_secs(300)));
        assert_ne!(d.key, key(&HeaderMap::new(), r#"{"model": "m", "messages": []}"#).unwrap().key, "namespaces part");
        h.insert(HEADER, r#"{"mode": "off"}"#.parse().unwrap());
        assert_eq!(key(&h, "{}").unwrap().status, Status::Bypass);
        h.insert(HEADER, r#"{"mood": "exact"}"#.parse().unwrap());
        assert!(decide(&on(), &h, None, "m", "openai", b"{}").is_err());
        let off = CacheSettings::default();
        assert!(decide(&off, &HeaderMap::new(), None, "m", "openai", b"{}").unwrap().is_none(), "off and not asked");
    }

    #[test]
    fn semantic_mode_probes_the_last_user_turn_within_a_partition_of_the_rest() {
        let s = CacheSettings { mode: CacheMode::Semantic, ..Default::default() };
        let d = |body: Value| decide(&s, &HeaderMap::new(), None, "m", "openai", body.to_string().as_bytes()).unwrap().unwrap();
        let ask = |sys: &str, q: &str| {
            serde_json::json!({ "model": "m", "messages": [{ "role": "system", "content": sys }, { "role": "user", "content": q }] })
        };
        let a = d(ask("be brief", "capital of France?")).probe.unwrap();
        let b = d(ask("be brief", "France's capital?")).probe.unwrap();
        assert_eq!((a.text.as_str(), a.threshold), ("capital of France?", 0.9));
        assert_eq!(a.partition, b.partition, "only the last user turn differs");
        assert_ne!(a.partition, d(ask("be verbose", "capital of France?")).probe.unwrap().partition);
        let parts = serde_json::json!({ "model": "m", "messages": [{ "role": "user", "content": [
            { "type": "text", "text": "one" }, { "type": "text", "text": "two" }] }] });
        assert_eq!(d(parts).probe.unwrap().text, "one\ntwo");
        let image = serde_json::json!({ "model": "m", "messages": [{ "role": "user", "content": [
            { "type": "text", "text": "what is this" }, { "type": "image_url", "image_url": { "url": "data:," } }] }] });
        assert!(d(image).probe.is_none(), "an image is matched exactly only");
        let tool = serde_json::json!({ "model": "m", "messages": [{ "role": "user", "content": "x" }, { "role": "tool", "content": "y" }] });
        assert!(d(tool).probe.is_none(), "a tool result is not a question");
        let exact = CacheSettings { mode: CacheMode::Exact, ..Default::default() };
        assert!(decide(&exact, &HeaderMap::new(), None, "m", "openai", ask("a", "b").to_string().as_bytes()).unwrap().unwrap().probe.is_none());
    }

    #[test]
    fn a_threshold_outside_zero_to_one_is_refused() {
        let mut d = Diags::default();
        let sec = CacheSection {
            mode: CacheMode::Semantic,
            semantic: Some(crate::config::file::SemanticSection { embedding_model: Some("builtin".into()), threshold: Some(0.0) }),
            ..Default::default()
        };
        let s = build(&sec, &mut d);
        assert_eq!(d.0.len(), 1);
        assert!(s.semantic.model.is_none(), "builtin is the built-in embedding");
    }
}
