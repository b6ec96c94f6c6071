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
pub mod memory;
pub mod redis;
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
        }
    }
}

pub fn build(sec: &CacheSection, d: &mut Diags) -> CacheSettings {
    let at = crate::config::loc::Loc::unplaced(());
    if sec.mode == CacheMode::Semantic || sec.semantic.is_some() {
        d.at(&at, "cache: semantic matching is not available in this build", "use mode: exact");
    }
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
    if mode == CacheMode::Semantic {
        return Err(bad("`mode`: semantic matching is not available in this build; use exact".into()));
    }
    let ttl = match &control.ttl {
        Some(t) => crate::config::loc::Dur::parse(t).map_err(|e| bad(format!("`ttl`: {e}")))?,
        None => settings.ttl,
    };
    if mode == CacheMode::Off {
        let asked = headers.contains_key(HEADER);
        return Ok(asked.then(|| Decision { status: Status::Bypass, key: String::new(), ttl, resolved: None, saved_nanos: 0 }));
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
    let keyed = serde_json::json!({
        "v": 1, "scope": scope, "namespace": control.namespace.unwrap_or_default(),
        "model": model, "front": front, "request": request,
    });
    let key = crate::mcp::inventory::canonical_sha256(&keyed);
    let status = if control.force_refresh { Status::Refresh } else { Status::Miss };
    Ok(Some(Decision { status, key, ttl, resolved: None, saved_nanos: 0 }))
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
}

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
}
