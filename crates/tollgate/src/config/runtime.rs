//! The validated, immutable runtime snapshot. A request loads one `Arc` of
//! it at the start and keeps it to the end, so a reload never changes the
//! rules under a request in flight. Nothing here holds connections or
//! counters: those live outside the snapshot and survive reloads.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;

use crate::budgets::{BudgetRule, Ledger};
use crate::glob::Glob;
use crate::limits::{Counters, RateRule};
use crate::pricing::Price;
use crate::providers::Provider;
use crate::providers::http::Upstreams;
use crate::routing::VirtualModel;
use crate::routing::health::HealthRegistry;

/// State that outlives any one snapshot: connection pools and what the
/// gateway has learned about its targets. Snapshots borrow from it at load.
#[derive(Debug, Clone)]
pub struct Shared {
    pub upstreams: Upstreams,
    pub health: HealthRegistry,
    pub counters: Counters,
    pub ledger: Ledger,
    pub keys: Arc<crate::keys::KeyRegistry>,
    pub jwks: crate::jwt::JwksRegistry,
    pub events: crate::events::EventBus,
    /// Rules and allowlists added through the admin API.
    pub overlays: super::overlay::Overlays,
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
            jwks: crate::jwt::JwksRegistry::default(),
            overlays: super::overlay::Overlays::default(),
            metrics: Arc::default(),
            audit: crate::audit::AuditLog::default(),
            reqlog: crate::reqlog::RequestLog::default(),
            events,
        }
    }
}

#[derive(Debug)]
pub struct Snapshot {
    /// Increases by one on every successful load in this process.
    pub version: u64,
    /// First 12 hex digits of the SHA-256 of the config text.
    pub digest: String,
    /// Where the config came from (a path, or `embedded defaults`).
    pub origin: String,
    pub server: ServerSettings,
    pub auth: AuthSettings,
    pub metadata: MetadataContract,
    pub models: ModelCatalog,
    pub rate_limits: Vec<RateRule>,
    pub budgets: Vec<Arc<BudgetRule>>,
    pub webhooks: Vec<crate::events::Webhook>,
    /// OTLP endpoint and service name, when traces are exported.
    pub otlp: Option<(http::Uri, String)>,
    pub log_enabled: bool,
    /// Keep bodies in the request log, up to this many bytes (`None`: no bodies).
    pub log_bodies: Option<usize>,
    /// How long request log entries are kept (`None`: forever).
    pub log_retention: Option<std::time::Duration>,
    /// Things that load but deserve attention (e.g. sections parsed but not enforced yet).
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct ServerSettings {
    pub listen: SocketAddr,
    pub admin_listen: SocketAddr,
    pub max_body_size: usize,
    pub max_response_size: usize,
    /// Opened at start-up; a change takes effect at the next restart.
    pub store: crate::store::StoreUrl,
}

/// Who the gateway recognises. Secrets are held only as SHA-256 digests.
#[derive(Debug, Default)]
pub struct AuthSettings {
    pub master: Option<[u8; 32]>,
    pub keys: HashMap<[u8; 32], Arc<Principal>>,
    /// The principal every master-key request runs as.
    pub master_principal: Arc<Principal>,
    /// Trusted JWT issuers.
    pub jwt: Vec<Arc<crate::jwt::Issuer>>,
    pub team_models: HashMap<String, Vec<Glob>>,
    pub group_models: HashMap<String, Vec<Glob>>,
    /// People by id: team, role and metadata for credentials that lack them.
    pub users: HashMap<String, crate::config::file::UserSection>,
}

impl AuthSettings {
    /// Fills in what the users directory knows about the person behind a
    /// verified JWT (its subject): team, role and metadata the token does
    /// not set itself. Never applied to keys, whose `owner` is free text.
    pub fn enrich(&self, p: Arc<Principal>) -> Arc<Principal> {
        let Some(user) = p.owner.as_ref().and_then(|o| self.users.get(o)) else { return p };
        let mut q = (*p).clone();
        if q.team.is_none() {
            q.team = user.team.clone();
        }
        if q.role.is_none() {
            q.role = user.role;
        }
        for (k, v) in &user.metadata {
            q.metadata.entry(k.clone()).or_insert_with(|| v.clone());
        }
        if let Some(t) = &q.team {
            q.metadata.entry("team".into()).or_insert_with(|| t.clone());
        }
        Arc::new(q)
    }

    /// May this principal use this (canonical or virtual) model? Its own
    /// globs, its team's allowlist, and — when any of its groups has an
    /// allowlist — at least one of those groups must all allow it.
    pub fn allows(&self, p: &Principal, model: &str) -> bool {
        if !p.may_use(model) {
            return false;
        }
        let team = p.team.as_ref().or_else(|| p.metadata.get("team"));
        if let Some(globs) = team.and_then(|t| self.team_models.get(t))
            && !globs.iter().any(|g| g.matches(model))
        {
            return false;
        }
        let mut listed = p.groups.iter().filter_map(|g| self.group_models.get(g)).peekable();
        if listed.peek().is_none() {
            return true;
        }
        listed.any(|globs| globs.iter().any(|g| g.matches(model)))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrincipalKind {
    Master,
    StaticKey,
    VirtualKey,
    Jwt,
}

/// The identity a credential resolves to: the `Subject` of SPEC §1 stage 2.
#[derive(Debug, Clone)]
pub struct Principal {
    /// Stable id used in logs and limit keys, e.g. `key:payments-ci`.
    pub id: String,
    pub kind: PrincipalKind,
    /// `None` = every model.
    pub models: Option<Vec<Glob>>,
    /// Groups the principal belongs to (from an identity provider).
    pub groups: Vec<String>,
    /// Defaults merged under request metadata; these keys are pinned.
    pub metadata: BTreeMap<String, String>,
    /// Admin role, if any (the master key is always an admin).
    pub role: Option<crate::keys::Role>,
    pub team: Option<String>,
    pub owner: Option<String>,
}

impl Default for Principal {
    fn default() -> Self {
        Principal {
            id: "master".into(),
            kind: PrincipalKind::Master,
            models: None,
            groups: Vec::new(),
            metadata: BTreeMap::new(),
            role: Some(crate::keys::Role::Admin),
            team: None,
            owner: None,
        }
    }
}

impl Principal {
    pub fn may_use(&self, model: &str) -> bool {
        match &self.models {
            None => true,
            Some(globs) => globs.iter().any(|g| g.matches(model)),
        }
    }
}

#[derive(Debug, Default)]
pub struct MetadataContract {
    pub required: Vec<String>,
    pub allowed_values: BTreeMap<String, Vec<String>>,
}

/// Every model name a request may carry, resolved to the provider that serves it.
#[derive(Debug, Default)]
pub struct ModelCatalog {
    pub providers: Vec<Arc<Provider>>,
    /// `<provider>/<model>` → target.
    pub by_name: HashMap<String, Target>,
    /// Bare `<model>` → target, only when exactly one provider lists it.
    pub by_bare_name: HashMap<String, Target>,
    pub virtual_models: HashMap<String, Arc<VirtualModel>>,
    /// Canonical and virtual names in listing order, for `/v1/models`.
    pub listed: Vec<String>,
}

/// What a requested model name stands for.
#[derive(Debug, Clone)]
pub enum ModelRef {
    Physical(Target),
    Virtual(Arc<VirtualModel>),
}

impl ModelRef {
    /// The name access rules are checked against.
    pub fn name(&self) -> &str {
        match self {
            ModelRef::Physical(t) => &t.canonical,
            ModelRef::Virtual(v) => &v.name,
        }
    }
}

/// One physical model on one provider.
#[derive(Debug, Clone)]
pub struct Target {
    /// `<provider>/<model>`, as shown in `x-tollgate-resolved-model`.
    pub canonical: Arc<str>,
    /// The model name sent to the provider.
    pub upstream_model: Arc<str>,
    pub provider: Arc<Provider>,
    /// From the config, else the built-in catalog; `None` when neither knows it.
    pub price: Option<Price>,
}

impl ModelCatalog {
    /// A virtual model by name, else a physical model.
    pub fn resolve_ref(&self, requested: &str) -> Option<ModelRef> {
        if let Some(v) = self.virtual_models.get(requested) {
            return Some(ModelRef::Virtual(v.clone()));
        }
        self.resolve(requested).map(ModelRef::Physical)
    }

    /// Resolves a requested physical model name; `None` means no provider serves it.
    pub fn resolve(&self, requested: &str) -> Option<Target> {
        if let Some(t) = self.by_name.get(requested) {
            return Some(t.clone());
        }
        if let Some(t) = self.by_bare_name.get(requested) {
            return Some(t.clone());
        }
        // Providers that list no models pass any model name through.
        let (prefix, model) = requested.split_once('/')?;
        let provider = self.providers.iter().find(|p| p.name == prefix && p.any_model)?;
        if model.is_empty() {
            return None;
        }
        Some(Target {
            canonical: requested.into(),
            upstream_model: model.into(),
            provider: provider.clone(),
            price: crate::pricing::builtin(model),
        })
    }
}
