//! The Batches API, run by the gateway itself: files (`/v1/files`),
//! batches (`/v1/batches`) and the executor that runs every line of a
//! batch as an ordinary request through the data plane, in-process — so
//! each line is authenticated, limited, budgeted, guarded, routed, logged
//! and costed like any other. No provider's own batch API is used.
//!
//! - `input.rs`: the JSONL input file, checked at upload.
//! - `record.rs`: what the store keeps and the OpenAI objects shown of it.
//! - `seal.rs`: the creator's credential, sealed for the store.
//! - `run.rs`: the executor (bounded concurrency, retries on rate limits,
//!   progress per line, resume after a restart, cancel, expiry).
//! - `settings.rs`: the `batches` config section.

pub mod input;
pub mod record;
pub mod run;
pub mod seal;
pub mod settings;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use http::{HeaderMap, HeaderName, HeaderValue};
use tokio::sync::{Notify, watch};

use crate::config::file::Role;
use crate::identity::{Principal, PrincipalKind};
use crate::store::Store;

/// The request headers a batch keeps from its creator, to run each line as
/// them: the credential, and what shapes governance (metadata, guardrails).
const KEPT_HEADERS: &[&str] =
    &["authorization", "x-api-key", "x-tollgate-metadata", "x-tfy-metadata", "x-tollgate-guardrails"];

/// Batch state that outlives any one request: the store, the sealer, and
/// the batches this process runs now.
pub struct Batches {
    pub store: Arc<Store>,
    sealer: seal::Sealer,
    /// Wakes the executor: a batch was created or cancelled.
    wake: Notify,
    /// Batches this process is running, each with its cancel signal.
    running: Mutex<HashMap<String, watch::Sender<bool>>>,
    /// Who holds a batch's lease. With a store of its own (SQLite, memory)
    /// it is the same name across restarts, so a restarted process takes
    /// its batches back at once; on a shared PostgreSQL store it is unique
    /// to this process, so two instances never run one batch.
    runner: String,
}

impl std::fmt::Debug for Batches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batches").field("runner", &self.runner).finish_non_exhaustive()
    }
}

impl Batches {
    /// `secret`: the store's own secret (credentials are sealed with keys
    /// derived from it).
    pub fn new(store: Arc<Store>, secret: &[u8; 32]) -> Batches {
        let runner = match *store {
            Store::Postgres(_) => format!("instance-{}", hex::encode(crate::digest::os_random::<8>())),
            _ => "local".to_string(),
        };
        Batches { store, sealer: seal::Sealer::new(secret), wake: Notify::new(), running: Mutex::default(), runner }
    }

    /// The creator's credential and governance headers, sealed.
    pub fn seal(&self, headers: &HeaderMap) -> Vec<u8> {
        let kept: Vec<(&str, String)> = KEPT_HEADERS
            .iter()
            .filter_map(|name| headers.get(*name).map(|v| (*name, hex::encode(v.as_bytes()))))
            .collect();
        self.sealer.seal(&serde_json::to_vec(&kept).unwrap_or_default())
    }

    /// The headers `seal` kept, or `None` if they cannot be opened.
    fn open(&self, sealed: &[u8]) -> Option<HeaderMap> {
        let plain = self.sealer.open(sealed)?;
        let kept: Vec<(String, String)> = serde_json::from_slice(&plain).ok()?;
        let mut h = HeaderMap::new();
        for (name, value) in kept {
            let value = HeaderValue::from_bytes(&hex::decode(value).ok()?).ok()?;
            h.insert(HeaderName::from_bytes(name.as_bytes()).ok()?, value);
        }
        Some(h)
    }

    /// A batch was created or changed: look at the store again.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Stops a batch this process runs from starting more lines.
    pub fn cancel(&self, id: &str) {
        if let Some(tx) = self.running.lock().unwrap_or_else(|p| p.into_inner()).get(id) {
            let _ = tx.send(true);
        }
        self.wake();
    }
}

/// May this caller see an object owned by `owner`? Its own, and — for the
/// master key or an admin — everyone's.
pub fn sees(p: &Principal, owner: &str) -> bool {
    p.id == owner || p.kind == PrincipalKind::Master || p.role == Some(Role::Admin)
}

/// The owner a caller's objects are filed under; `None` for a caller who
/// sees everyone's.
pub fn scope(p: &Principal) -> Option<String> {
    (p.kind != PrincipalKind::Master && p.role != Some(Role::Admin)).then(|| p.id.clone())
}

/// `file-…`, `batch_…`, `batch_req_…`: the creation time in milliseconds
/// (12 hex digits), then 12 random ones — so ids sort in creation order
/// and lists page stably even within one second.
pub fn new_id(prefix: &str) -> String {
    let ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
    format!("{prefix}{:012x}{}", ms & 0xffff_ffff_ffff, hex::encode(crate::digest::os_random::<6>()))
}

pub fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn kept_headers_round_trip_sealed_and_nothing_else_is_kept() {
        let store = Arc::new(Store::open(&crate::store::StoreUrl::Memory).await.unwrap());
        let b = Batches::new(store, &[3; 32]);
        let mut h = HeaderMap::new();
        h.insert("authorization", HeaderValue::from_static("Bearer tg-secret-123"));
        h.insert("x-tollgate-metadata", HeaderValue::from_static(r#"{"team":"a"}"#));
        h.insert("cookie", HeaderValue::from_static("session=1"));
        let sealed = b.seal(&h);
        assert!(!String::from_utf8_lossy(&sealed).contains("tg-secret"));
        let back = b.open(&sealed).unwrap();
        assert_eq!(back.get("authorization").unwrap(), "Bearer tg-secret-123");
        assert_eq!(back.get("x-tollgate-metadata").unwrap(), r#"{"team":"a"}"#);
        assert!(back.get("cookie").is_none());
    }

    #[test]
    fn only_the_master_key_and_admins_see_other_owners() {
        let mut p = Principal { id: "key:a".into(), kind: PrincipalKind::VirtualKey, role: None, ..Default::default() };
        assert!(sees(&p, "key:a") && !sees(&p, "key:b"));
        assert_eq!(scope(&p).as_deref(), Some("key:a"));
        p.role = Some(Role::Admin);
        assert!(sees(&p, "key:b") && scope(&p).is_none());
        assert!(sees(&Principal::default(), "key:b"));
    }
}
