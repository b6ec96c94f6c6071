//! Prometheus metrics, served at `GET /metrics` on the admin port.
//!
//! Naming: `tollgate_<what>_<unit>`, counters end in `_total`. Labels are
//! bounded by the config: `model` is a configured model or virtual model
//! name (anything else is `unknown`), `provider` a configured provider,
//! `rule` a configured rule id, `status` an HTTP status. Never a request
//! id, a subject or a metadata value.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::{Family, MetricConstructor};
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub route: &'static str,
    pub model: String,
    pub provider: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TokenLabels {
    pub model: String,
    pub provider: String,
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModelLabels {
    pub model: String,
    pub provider: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProviderLabels {
    pub provider: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefusalLabels {
    pub kind: &'static str,
    pub rule: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GuardrailLabels {
    pub guardrail: String,
    pub hook: &'static str,
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GuardrailTimeLabels {
    pub guardrail: String,
    pub hook: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct McpLabels {
    pub server: String,
    pub tool: String,
    pub decision: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct McpServerLabels {
    pub server: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CacheLabels {
    /// `hit`, `miss`, `refresh` or `bypass`.
    pub status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct A2aLabels {
    pub agent: String,
    /// The operation (`send`, `stream`, `get_task`, …), whichever name carried it.
    pub operation: &'static str,
    pub decision: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct A2aAgentLabels {
    pub agent: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CircuitLabels {
    pub virtual_model: String,
    pub target: String,
}

#[derive(Clone)]
/// Builds the histograms of a family with the latency buckets.
pub struct Buckets(fn() -> Histogram);

impl MetricConstructor<Histogram> for Buckets {
    fn new_metric(&self) -> Histogram {
        (self.0)()
    }
}

/// Latency buckets from 50 µs to ~100 s.
fn latency() -> Histogram {
    Histogram::new(exponential_buckets(0.000_05, 2.0, 22))
}

/// In-process guardrails take microseconds; external ones up to seconds.
fn guardrail_latency() -> Histogram {
    Histogram::new(exponential_buckets(0.000_001, 4.0, 14))
}

pub struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub tokens: Family<TokenLabels, Counter>,
    pub cost_usd: Family<ModelLabels, Counter<f64, AtomicU64>>,
    pub duration: Family<RouteLabels, Histogram, Buckets>,
    pub upstream: Family<ProviderLabels, Histogram, Buckets>,
    pub overhead: Histogram,
    pub refusals: Family<RefusalLabels, Counter>,
    pub circuit_open: Family<CircuitLabels, Gauge>,
    pub events_dropped: Gauge,
    pub config_version: Gauge,
    pub log_spooled: Gauge,
    pub log_dropped: Gauge,
    pub audit_dropped: Gauge,
    pub ttft: Family<ProviderLabels, Histogram, Buckets>,
    pub guardrail_decisions: Family<GuardrailLabels, Counter>,
    pub guardrail_duration: Family<GuardrailTimeLabels, Histogram, Buckets>,
    pub mcp_calls: Family<McpLabels, Counter>,
    pub mcp_duration: Family<McpServerLabels, Histogram, Buckets>,
    pub a2a_calls: Family<A2aLabels, Counter>,
    pub a2a_duration: Family<A2aAgentLabels, Histogram, Buckets>,
    pub cache_requests: Family<CacheLabels, Counter>,
    pub cache_evictions: Counter,
    pub cache_bytes: Gauge,
    pub cache_vectors: Gauge,
    pub in_flight: Gauge,
    pub shed: Counter,
    /// Distributed mode (set when scraped): 1 while Redis / NATS answer.
    pub redis_up: Gauge,
    pub nats_up: Gauge,
    pub redis_sync_failures: Gauge,
    pub changes_received: Gauge,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("tollgate");
        let m = Metrics {
            requests: Family::default(),
            tokens: Family::default(),
            cost_usd: Family::default(),
            duration: Family::new_with_constructor(Buckets(latency)),
            upstream: Family::new_with_constructor(Buckets(latency)),
            overhead: latency(),
            refusals: Family::default(),
            circuit_open: Family::default(),
            events_dropped: Gauge::default(),
            config_version: Gauge::default(),
            log_spooled: Gauge::default(),
            log_dropped: Gauge::default(),
            audit_dropped: Gauge::default(),
            ttft: Family::new_with_constructor(Buckets(latency)),
            guardrail_decisions: Family::default(),
            guardrail_duration: Family::new_with_constructor(Buckets(guardrail_latency)),
            mcp_calls: Family::default(),
            mcp_duration: Family::new_with_constructor(Buckets(latency)),
            a2a_calls: Family::default(),
            a2a_duration: Family::new_with_constructor(Buckets(latency)),
            cache_requests: Family::default(),
            cache_evictions: Counter::default(),
            cache_bytes: Gauge::default(),
            cache_vectors: Gauge::default(),
            in_flight: Gauge::default(),
            shed: Counter::default(),
            redis_up: Gauge::default(),
            nats_up: Gauge::default(),
            redis_sync_failures: Gauge::default(),
            changes_received: Gauge::default(),
            registry: Registry::default(),
        };
        registry.register("requests", "Requests answered, by route, model, provider and status", m.requests.clone());
        registry.register("tokens", "Tokens used, by model, provider and kind (prompt, completion)", m.tokens.clone());
        registry.register("cost_usd", "Cost in USD, by model and provider", m.cost_usd.clone());
        registry.register("request_duration_seconds", "Time from request to response headers", m.duration.clone());
        registry.register(
            "upstream_duration_seconds",
            "Time in upstream attempts (to the response, or a stream's first event)",
            m.upstream.clone(),
        );
        registry.register(
            "gateway_overhead_seconds",
            "The gateway's own time: total minus upstream and retry waits",
            m.overhead.clone(),
        );
        registry.register("refusals", "Requests refused by a rate limit or budget, by rule", m.refusals.clone());
        registry.register("circuit_open", "1 while a target's circuit is open or half-open", m.circuit_open.clone());
        registry.register(
            "events_dropped",
            "Events dropped because the event queue was full",
            m.events_dropped.clone(),
        );
        registry.register("config_version", "Version of the running config snapshot", m.config_version.clone());
        registry.register(
            "request_log_spooled",
            "Request log entries waiting for the store (queue and spool)",
            m.log_spooled.clone(),
        );
        registry.register(
            "request_log_dropped",
            "Request log entries dropped (queue or spool full)",
            m.log_dropped.clone(),
        );
        registry.register("audit_dropped", "Audit records dropped (queue full)", m.audit_dropped.clone());
        registry.register("requests_in_flight", "Data-plane requests being handled (streams until they end)", m.in_flight.clone());
        registry.register(
            "requests_shed",
            "Requests answered 503 because server.max_concurrent_requests were in flight",
            m.shed.clone(),
        );
        registry.register(
            "time_to_first_token_seconds",
            "Streams: time from request to the first event from the provider",
            m.ttft.clone(),
        );
        registry.register(
            "guardrail_decisions",
            "Guardrail decisions, by guardrail, hook and outcome (pass, flagged, mutated, blocked, error)",
            m.guardrail_decisions.clone(),
        );
        registry.register(
            "guardrail_duration_seconds",
            "Time one guardrail took on one hook",
            m.guardrail_duration.clone(),
        );
        registry.register(
            "mcp_tool_calls",
            "MCP tool calls, by server, tool and decision (allowed, refused, blocked, error)",
            m.mcp_calls.clone(),
        );
        registry.register(
            "mcp_tool_call_duration_seconds",
            "Time from a tools/call to its answer, by server",
            m.mcp_duration.clone(),
        );
        registry.register(
            "a2a_calls",
            "A2A agent calls, by agent, operation and decision (allowed, refused, blocked, error)",
            m.a2a_calls.clone(),
        );
        registry.register(
            "a2a_call_duration_seconds",
            "Time from an agent call to its answer (a stream's end), by agent",
            m.a2a_duration.clone(),
        );
        registry.register(
            "cache_requests",
            "Chat requests the response cache saw, by status (hit, miss, refresh, bypass)",
            m.cache_requests.clone(),
        );
        registry.register("cache_evictions", "Answers evicted from the memory cache to make room", m.cache_evictions.clone());
        registry.register("cache_bytes", "Bytes held by the memory cache", m.cache_bytes.clone());
        registry.register("cache_vectors", "Vectors held by this instance's semantic cache index", m.cache_vectors.clone());
        registry.register(
            "distributed_redis_up",
            "Distributed mode: 1 while Redis answers; 0 while limits and budgets count locally (or refuse, fail_closed)",
            m.redis_up.clone(),
        );
        registry.register("distributed_nats_up", "Distributed mode: 1 while connected to NATS", m.nats_up.clone());
        registry.register(
            "distributed_redis_sync_failures",
            "Distributed mode: syncs with Redis that failed since start",
            m.redis_sync_failures.clone(),
        );
        registry.register(
            "distributed_changes_received",
            "Distributed mode: changes announced by other instances over NATS",
            m.changes_received.clone(),
        );
        Metrics { registry, ..m }
    }
}

impl Metrics {
    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
