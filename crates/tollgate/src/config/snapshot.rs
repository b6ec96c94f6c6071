//! The validated, immutable runtime snapshot. A request loads one `Arc` of
//! it at the start and keeps it to the end, so a reload never changes the
//! rules under a request in flight. Nothing here holds connections or
//! counters: those live outside the snapshot and survive reloads.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use crate::budgets::BudgetRule;
use crate::identity::AuthSettings;
use crate::limits::RateRule;
use crate::routing::catalog::ModelCatalog;

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
    /// Guardrail definitions and the org-wide lists per hook.
    pub guardrails: crate::guardrails::Guardrails,
    /// MCP servers and virtual servers, as `/mcp/<name>` serves them.
    pub mcp: Arc<crate::mcp::registry::Registry>,
    /// A2A agents, as `/a2a/<name>` serves them.
    pub a2a: Arc<crate::a2a::registry::Registry>,
    /// The agent layer's loop limit, trust rules, tool policies and quarantine.
    pub agent: Arc<crate::agent::trust::AgentSettings>,
    /// The response cache: mode, backend, TTL, bounds.
    pub cache: crate::cache::CacheSettings,
    /// Prompt templates: the file's and the admin API's versions and labels.
    pub prompts: Arc<crate::prompts::Registry>,
    /// The Batches API: executor concurrency, file size, retention.
    pub batches: crate::batches::settings::Settings,
    /// Bounds on the responses kept for the Responses API.
    pub responses: crate::responses::Settings,
    /// Distributed mode (Redis, NATS), read at start-up; `None`: this
    /// instance counts alone.
    pub distributed: Option<Arc<crate::distributed::settings::Settings>>,
    /// OTLP endpoint and service name, when traces are exported.
    pub otlp: Option<(http::Uri, String)>,
    pub log_enabled: bool,
    /// Keep bodies in the request log, up to this many bytes (`None`: no bodies).
    pub log_bodies: Option<usize>,
    /// How long request log entries are kept (`None`: forever).
    pub log_retention: Option<std::time::Duration>,
    /// The request log's disk spool (`None` with an in-memory store).
    pub log_spool: Option<crate::reqlog::spool::DiskSpool>,
    /// Things that load but deserve attention (e.g. sections parsed but not enforced yet).
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct ServerSettings {
    pub listen: SocketAddr,
    pub admin_listen: SocketAddr,
    pub max_body_size: usize,
    pub max_response_size: usize,
    /// In-flight data-plane requests beyond which new ones get 503 (`usize::MAX`: no limit).
    pub max_concurrent_requests: usize,
    pub header_read_timeout: std::time::Duration,
    pub body_read_timeout: std::time::Duration,
    /// Lower-case origins (`scheme://host[:port]`) allowed on `/mcp/…` besides the gateway's own.
    pub allowed_origins: Vec<String>,
    /// Opened at start-up; a change takes effect at the next restart.
    pub store: crate::store::StoreUrl,
}

#[derive(Debug, Default)]
pub struct MetadataContract {
    pub required: Vec<String>,
    pub allowed_values: BTreeMap<String, Vec<String>>,
}
