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
    pub metrics: Arc<crate::metrics::Metrics>,
    pub audit: crate::audit::AuditLog,
    pub reqlog: crate::reqlog::RequestLog,
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
            metrics: Arc::default(),
            audit: crate::audit::AuditLog::default(),
            reqlog: crate::reqlog::RequestLog::default(),
            events,
        }
    }
}
