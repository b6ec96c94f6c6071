//! Process state: what the gateway holds for as long as it runs, outside
//! any config snapshot — connection pools, target health, rate-limit
//! counters, budget accounts, virtual keys, JWKS caches, the event bus,
//! admin overlays, metrics and the log writers. A reload builds a new
//! snapshot that borrows from this; it never drops a warm connection,
//! forgets an open circuit or resets a count.

use std::sync::Arc;

use crate::budgets::Ledger;
use crate::limits::Counters;
use crate::providers::http::Upstreams;
use crate::routing::health::HealthRegistry;

/// State that outlives any one snapshot: connection pools and what the
/// gateway has learned about its targets. Snapshots borrow from it at load.
#[derive(Debug, Clone)]
pub struct Shared {
    pub upstreams: Upstreams,
    pub health: HealthRegistry,
    pub counters: Counters,
    pub ledger: Ledger,
    pub keys: Arc<crate::identity::keys::KeyRegistry>,
    pub jwks: crate::identity::jwt::JwksRegistry,
    pub events: crate::events::EventBus,
    /// Rules and allowlists added through the admin API.
    pub overlays: crate::config::overlay::Overlays,
    /// Prompt versions and labels created through the admin API.
    pub prompts: crate::prompts::StoredPrompts,
    pub metrics: Arc<crate::metrics::Metrics>,
    pub audit: crate::audit::AuditLog,
    pub reqlog: crate::reqlog::RequestLog,
    /// The gateway's own data plane, for guardrails that call a model
    /// through it (`llm_judge`).
    pub loopback: Loopback,
    /// The response cache's backends (memory, Redis).
    pub cache: Arc<crate::cache::Caches>,
    /// `serve --listen` / `--admin-listen`: they win over `server.listen` /
    /// `server.admin_listen` in every snapshot, so what the config reports
    /// is what is bound.
    pub listen: ListenFlags,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct ListenFlags {
    pub data: Option<std::net::SocketAddr>,
    pub admin: Option<std::net::SocketAddr>,
}

impl Default for Shared {
    /// Budget events go to the same bus the webhook dispatcher reads.
    fn default() -> Shared {
        let events = crate::events::EventBus::default();
        Shared {
            upstreams: Upstreams::default(),
            health: HealthRegistry::default(),
            counters: Counters::default(),
            ledger: Ledger::with_events(events.clone()),
            keys: Arc::default(),
            jwks: crate::identity::jwt::JwksRegistry::default(),
            overlays: crate::config::overlay::Overlays::default(),
            prompts: crate::prompts::StoredPrompts::default(),
            metrics: Arc::default(),
            audit: crate::audit::AuditLog::default(),
            reqlog: crate::reqlog::RequestLog::default(),
            loopback: Loopback::default(),
            cache: Arc::default(),
            listen: ListenFlags::default(),
            events,
        }
    }
}

type LoopbackFn = Arc<
    dyn Fn(http::HeaderMap, bytes::Bytes) -> std::pin::Pin<Box<dyn Future<Output = (u16, bytes::Bytes)> + Send>>
        + Send
        + Sync,
>;

/// `POST /v1/chat/completions` on this gateway, in-process: the running
/// server installs it at start-up (this layer cannot name the pipeline).
/// Boxed, because a call through it may itself reach a guardrail.
#[derive(Clone, Default)]
pub struct Loopback(Arc<std::sync::OnceLock<LoopbackFn>>);

impl Loopback {
    pub fn install(&self, f: LoopbackFn) {
        let _ = self.0.set(f);
    }

    /// (status, body); 503 before a server has installed itself.
    pub async fn call(&self, headers: http::HeaderMap, body: bytes::Bytes) -> (u16, bytes::Bytes) {
        match self.0.get() {
            Some(f) => f(headers, body).await,
            None => (503, bytes::Bytes::new()),
        }
    }
}

impl std::fmt::Debug for Loopback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Loopback").field(&self.0.get().is_some()).finish()
    }
}
