//! The configuration as users write it (SPEC §15). These types are the
//! first validation phase: serde rejects unknown keys and wrong types with a
//! file position; `validate.rs` turns them into the runtime snapshot.
//!
//! Doc comments here become descriptions in `config.schema.json`.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;

use super::loc::{ByteSize, Dur, Loc};

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ConfigFile {
    /// Listen addresses and request limits.
    pub server: ServerSection,
    /// Where budget spend, virtual keys and admin changes are kept.
    pub store: StoreSection,
    /// Who may call the gateway.
    pub auth: AuthSection,
    /// The metadata contract every request must satisfy.
    pub metadata: MetadataSection,
    /// Upstream model providers; models are addressed as `<provider>/<model>`.
    pub providers: Vec<ProviderSection>,
    /// Logical model names that resolve to provider targets.
    pub virtual_models: Vec<VirtualModelSection>,
    /// Request and token rate limits.
    pub rate_limits: Vec<RateLimitSection>,
    /// Cost and token budgets.
    pub budgets: Vec<BudgetSection>,
    /// Guardrail definitions and the org-wide set.
    pub guardrails: GuardrailsSection,
    /// Upstream MCP tool servers.
    pub mcp_servers: Vec<McpServerSection>,
    /// MCP servers composed from tools of several upstream servers.
    pub virtual_mcp_servers: Vec<VirtualMcpServerSection>,
    /// Upstream A2A agents, each served at `/a2a/<name>`.
    pub a2a_agents: Vec<A2aAgentSection>,
    /// Where events (budget alerts, …) are delivered.
    pub events: EventsSection,
    /// The request log.
    pub logging: LoggingSection,
    /// OpenTelemetry trace export.
    pub telemetry: TelemetrySection,
    /// The agent layer: the gateway-run tool loop, trust of tool results,
    /// tool policies once untrusted data is in the context, quarantine.
    pub agent: AgentSection,
    /// The response cache.
    pub cache: CacheSection,
    /// Versioned prompt templates requests name in `prompt` (docs/prompts.md).
    pub prompts: Vec<super::file_prompts::PromptSection>,
    /// The Batches API (`/v1/files`, `/v1/batches`), run by the gateway itself.
    pub batches: BatchesSection,
    /// Responses kept for `previous_response_id` and `GET /v1/responses/{id}`.
    pub responses: ResponsesSection,
    /// Several instances as one gateway: shared counters and budgets in
    /// Redis, changes pushed over NATS (docs/distributed.md).
    pub distributed: Option<super::file_distributed::DistributedSection>,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ResponsesSection {
    /// How long a stored response can be read or continued, e.g. `1h`. Default `1h`.
    pub retention: Option<Dur>,
    /// Most responses kept (oldest go first). Default 10000; 0 keeps none.
    pub max_stored: Option<usize>,
    /// Most bytes kept. Default `256MiB`.
    pub max_bytes: Option<ByteSize>,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct BatchesSection {
    /// Batch lines in flight at once, over every batch this instance runs;
    /// each line is an ordinary request and also counts toward
    /// `server.max_concurrent_requests`. Default 8.
    pub concurrency: Option<u32>,
    /// Largest file accepted on `POST /v1/files`. Default `100MiB`.
    pub max_file_size: Option<ByteSize>,
    /// How long files and finished batches are kept, e.g. `720h`. Default:
    /// until deleted (`DELETE /v1/files/{id}`).
    pub retention: Option<Dur>,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct CacheSection {
    /// `memory` (default: this process only) or `redis` (shared by instances).
    pub backend: CacheBackend,
    /// For `redis`: e.g. `redis://127.0.0.1:6379/0`.
    pub redis_url: Option<Loc<String>>,
    /// `off` (default), `exact` or `semantic`; a request may choose with `x-tollgate-cache`.
    pub mode: CacheMode,
    /// How long an answer is kept, e.g. `1h`. Default `1h`.
    pub ttl: Option<Dur>,
    /// Memory backend: most answers kept. Default 10000.
    pub max_entries: Option<usize>,
    /// Memory backend: most bytes kept. Default `256MiB`.
    pub max_bytes: Option<ByteSize>,
    /// How `semantic` mode compares requests.
    pub semantic: Option<SemanticSection>,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SemanticSection {
    /// `builtin` (default: a static embedding in the binary, matching
    /// rewordings) or a model this gateway serves on `/v1/embeddings`, e.g.
    /// `openai/text-embedding-3-small`, called as the requesting client.
    pub embedding_model: Option<String>,
    /// Least cosine similarity of the last user turns for a hit, above 0 and
    /// at most 1. Default 0.9.
    pub threshold: Option<f64>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CacheBackend {
    #[default]
    Memory,
    Redis,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CacheMode {
    #[default]
    Off,
    Exact,
    Semantic,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct AgentSection {
    /// Most model calls one request may make in a gateway-run tool loop. Default 10.
    pub max_steps: Option<u32>,
    /// Which tool results are trusted; the first entry whose `tools` match
    /// decides. A result no entry trusts is untrusted.
    pub tool_trust: Vec<ToolTrustSection>,
    /// What happens to a tool once the context holds an untrusted result.
    pub tool_policies: Vec<ToolPolicySection>,
    /// Results of these tools are read only by a model without tools.
    pub quarantine: Option<QuarantineSection>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ToolTrustSection {
    /// Globs over client function-tool names and `<server>/<tool>` MCP tools.
    pub tools: Vec<String>,
    /// `trusted` or `untrusted`. Omitted with `trusted_when`: trusted when every condition holds.
    #[serde(default)]
    pub trust: Option<Trust>,
    /// Conditions on the result that make it trusted (all must hold).
    #[serde(default)]
    pub trusted_when: Vec<TrustConditionSection>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Trust {
    Trusted,
    Untrusted,
}

/// A condition on a tool result: a field of the result read as JSON
/// (`field: "source"`, `field: "meta.origin"`) equal to a value, one of
/// several, or matching a regex; without `field`, `matches` applies to the
/// whole text.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TrustConditionSection {
    #[serde(default)]
    pub field: Option<String>,
    #[serde(default)]
    pub equals: Option<serde_json::Value>,
    #[serde(default)]
    pub one_of: Vec<serde_json::Value>,
    #[serde(default)]
    pub matches: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ToolPolicySection {
    /// Globs over client function-tool names and `<server>/<tool>` MCP tools.
    pub tools: Vec<String>,
    /// `allow`, `block` (taken away and refused) or `require_approval`
    /// (returned to the client, marked, instead of being carried out).
    pub when_untrusted: UntrustedPolicy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum UntrustedPolicy {
    Allow,
    Block,
    RequireApproval,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QuarantineSection {
    /// The model that reads quarantined results (`<provider>/<model>` or a virtual model); it is offered no tools.
    pub model: String,
    /// Globs over client function-tool names and `<server>/<tool>` MCP tools whose results are quarantined.
    pub tools: Vec<String>,
    /// Longest answer of type `string` the quarantined model may give. Default 64.
    #[serde(default)]
    pub max_answer_chars: Option<usize>,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetrySection {
    /// OTLP/HTTP endpoint, e.g. `http://127.0.0.1:4318` (spans go to `/v1/traces`, JSON). Omitted = no traces.
    pub otlp_endpoint: Option<Loc<String>>,
    /// `service.name` of the spans. Default `tollgate`.
    pub service_name: Option<String>,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct LoggingSection {
    /// Write a request log entry per request. Default true.
    pub enabled: Option<bool>,
    /// How long request log entries are kept, e.g. `720h`. Default: forever.
    pub retention: Option<Dur>,
    /// Also keep the request body and a non-streamed response body, with
    /// credentials and key-shaped strings masked. Default false.
    pub bodies: Option<bool>,
    /// Longest body kept (longer ones are cut). Default `64KiB`.
    pub max_body_size: Option<ByteSize>,
    /// Where entries the store cannot take yet are kept on disk, so a
    /// restart during a store outage keeps them. Default: the SQLite file's
    /// directory, or the working directory with PostgreSQL; none with
    /// `memory://`. Read at start-up.
    pub spool_dir: Option<String>,
    /// Largest the disk spool may grow; entries beyond it are dropped and
    /// counted. Default `1GiB`.
    pub spool_max_size: Option<ByteSize>,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct EventsSection {
    pub webhooks: Vec<WebhookSection>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookSection {
    /// Receives each event as a JSON POST.
    pub url: Loc<String>,
    /// Event types to send (`budget_threshold`, `budget_exceeded_warn`); omitted = all.
    #[serde(default)]
    pub kinds: Vec<String>,
    /// Signs each body: `x-tollgate-signature: sha256=<hex HMAC-SHA256 of the body>`.
    #[serde(default)]
    pub secret: Option<String>,
    /// Per attempt. Default 5s.
    #[serde(default)]
    pub timeout: Option<Dur>,
    /// Tries in all, with doubling backoff from 250ms. Default 4.
    #[serde(default)]
    pub attempts: Option<u32>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSection {
    /// Data-plane address (OpenAI-compatible API). Default `127.0.0.1:4000`.
    pub listen: Loc<String>,
    /// Admin API address (config, reload, usage, keys, rules). Default `127.0.0.1:4001`.
    pub admin_listen: Loc<String>,
    /// Largest request body accepted; larger bodies get 413. Default `10MiB`.
    pub max_body_size: ByteSize,
    /// Largest non-streaming upstream response accepted. Default `64MiB`.
    pub max_response_size: ByteSize,
    /// Requests handled at once on the data plane (streams count until
    /// they end); one more is answered 503 with `retry-after` instead of
    /// queueing until memory runs out. `0`: no limit. Default `10000`.
    pub max_concurrent_requests: u32,
    /// How long a client may take to send a request's headers; a slower
    /// one is disconnected (slowloris). Read at start-up. Default `10s`.
    pub header_read_timeout: Option<Dur>,
    /// How long a request body may take to arrive, from the request's
    /// start; a slower one gets 408. Default `30s`.
    pub body_read_timeout: Option<Dur>,
    /// Browser origins allowed to call `/mcp/…` besides the gateway's own
    /// (e.g. `https://inspector.example.com`); other origins get 403.
    pub allowed_origins: Vec<String>,
}

impl Default for ServerSection {
    fn default() -> Self {
        ServerSection {
            listen: Loc::unplaced("127.0.0.1:4000".into()),
            admin_listen: Loc::unplaced("127.0.0.1:4001".into()),
            max_body_size: ByteSize(10 << 20),
            max_response_size: ByteSize(64 << 20),
            max_concurrent_requests: 10_000,
            header_read_timeout: None,
            body_read_timeout: None,
            allowed_origins: Vec::new(),
        }
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct StoreSection {
    /// `sqlite://path` (default `sqlite://tollgate.db`), `postgres://user:password@host:port/db`, or `memory://`.
    pub url: Loc<String>,
}

impl Default for StoreSection {
    fn default() -> Self {
        StoreSection { url: Loc::unplaced("sqlite://tollgate.db".into()) }
    }
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSection {
    /// Bearer for the admin API; may also call the data plane with access to every model.
    pub master_key: Option<Loc<String>>,
    /// Static virtual keys.
    pub keys: Vec<StaticKeySection>,
    /// Trusted JWT issuers.
    pub jwt: Vec<JwtIssuerSection>,
    /// Model allowlists per team (the `team` of a key, token or metadata pin).
    pub teams: BTreeMap<String, AccessSection>,
    /// Model allowlists per group (from JWT group claims).
    pub groups: BTreeMap<String, AccessSection>,
    /// People by JWT subject: the team, role and metadata their requests
    /// carry when the token itself does not say.
    pub users: BTreeMap<String, UserSection>,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct UserSection {
    pub team: Option<String>,
    /// `admin`, `team_admin`, `viewer` or `member`.
    pub role: Option<Role>,
    /// Pinned under the credential's own metadata.
    pub metadata: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AccessSection {
    /// Model globs members may use (in addition to their own key's limits); omitted = no team limit on models.
    #[serde(default)]
    pub models: Option<Vec<Loc<String>>>,
    /// MCP tool globs (`<server>/<tool>`, e.g. `github/*`) members may call; omitted = no team limit on tools.
    #[serde(default)]
    pub tools: Option<Vec<Loc<String>>>,
    /// A2A agent globs members may call; omitted = no team limit on agents.
    #[serde(default)]
    pub agents: Option<Vec<Loc<String>>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StaticKeySection {
    /// A name for the key, shown in logs instead of the secret.
    pub name: Loc<String>,
    /// The key in plain text (hashed in memory at load).
    #[serde(default)]
    pub key: Option<Loc<String>>,
    /// The key's SHA-256 as 64 hex characters, when the plain key should not sit in the file.
    #[serde(default)]
    pub key_sha256: Option<Loc<String>>,
    /// Model globs this key may use (`prod/*`, `openai-main/gpt-4o*`); omitted = every model.
    #[serde(default)]
    pub models: Option<Vec<Loc<String>>>,
    /// MCP tool globs (`<server>/<tool>`, e.g. `github/*`) this key may call; omitted = every tool.
    #[serde(default)]
    pub tools: Option<Vec<Loc<String>>>,
    /// A2A agent globs this key may call; omitted = every agent.
    #[serde(default)]
    pub agents: Option<Vec<Loc<String>>>,
    /// Metadata merged under request metadata; these values cannot be overridden by the request.
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JwtIssuerSection {
    /// Expected `iss` claim.
    pub issuer: Loc<String>,
    /// Where the issuer publishes its signing keys (JWKS).
    pub jwks_url: Loc<String>,
    /// Accepted `aud` values; omitted = the audience is not checked.
    #[serde(default)]
    pub audiences: Vec<String>,
    /// Which claims give the subject, team, groups and metadata.
    #[serde(default)]
    pub claims: JwtClaimsSection,
    /// Group → admin role (`admin`, `team_admin`, `viewer`, `member`) for the admin API.
    #[serde(default)]
    pub roles: BTreeMap<String, String>,
    /// Model globs tokens from this issuer may use; omitted = every model.
    #[serde(default)]
    pub models: Option<Vec<Loc<String>>>,
    /// MCP tool globs (`<server>/<tool>`) tokens from this issuer may call; omitted = every tool.
    #[serde(default)]
    pub tools: Option<Vec<Loc<String>>>,
    /// A2A agent globs tokens from this issuer may call; omitted = every agent.
    #[serde(default)]
    pub agents: Option<Vec<Loc<String>>>,
    /// Seconds of clock skew tolerated on `exp` and `nbf`. Default 30.
    #[serde(default)]
    pub leeway_secs: Option<u64>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct JwtClaimsSection {
    /// Default `sub`.
    pub subject: String,
    /// Default `team`.
    pub team: String,
    /// A list (or space-separated string) of groups. Default `groups`.
    pub groups: String,
    /// Metadata key → claim name, e.g. `{ project_id: project }`; pinned like key metadata.
    pub metadata: BTreeMap<String, String>,
}

impl Default for JwtClaimsSection {
    fn default() -> Self {
        JwtClaimsSection {
            subject: "sub".into(),
            team: "team".into(),
            groups: "groups".into(),
            metadata: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct MetadataSection {
    /// Keys every request must carry (after key defaults are merged); missing → 400 naming the key.
    pub required: Vec<String>,
    /// For a key, the only values accepted.
    pub allowed_values: BTreeMap<String, Vec<String>>,
}

/// Every provider type tollgate knows. Types marked "later" are recognised
/// so configs can be checked, but are refused until their translation ships.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProviderType {
    Openai,
    OpenaiCompatible,
    AzureOpenai,
    Groq,
    Mistral,
    Together,
    Fireworks,
    Deepseek,
    Openrouter,
    Xai,
    Cerebras,
    Perplexity,
    Vllm,
    Sglang,
    Ollama,
    Lmstudio,
    Mock,
    Anthropic,
    Gemini,
    Vertex,
    Bedrock,
    Cohere,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProviderSection {
    /// Unique name; models are addressed as `<name>/<model>`.
    pub name: Loc<String>,
    /// Wire format and defaults of the provider.
    #[serde(rename = "type")]
    pub kind: Loc<ProviderType>,
    /// API root, e.g. `https://api.openai.com/v1`. Presets supply a default.
    #[serde(default)]
    pub base_url: Option<Loc<String>>,
    /// Credential sent upstream (use `${ENV}`); never logged or returned.
    #[serde(default)]
    pub api_key: Option<Loc<String>>,
    /// `azure_openai`: the `api-version` query parameter.
    #[serde(default)]
    pub api_version: Option<String>,
    /// `azure_openai`: model name → deployment name (default: the model name).
    #[serde(default)]
    pub deployments: BTreeMap<String, String>,
    /// Extra static headers sent upstream (e.g. `OpenAI-Organization`).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// `bedrock`/`vertex`: cloud region.
    #[serde(default)]
    pub region: Option<String>,
    /// `bedrock`: AWS access key id.
    #[serde(default)]
    pub access_key_id: Option<String>,
    /// `bedrock`: AWS secret access key.
    #[serde(default)]
    pub secret_access_key: Option<String>,
    /// `bedrock`: AWS session token, for temporary credentials.
    #[serde(default)]
    pub session_token: Option<String>,
    /// `vertex`: Google Cloud project id (default: the service account's project).
    #[serde(default)]
    pub project: Option<String>,
    /// `vertex`: path to a service-account JSON key file (default:
    /// `GOOGLE_APPLICATION_CREDENTIALS`). Its private key signs the token
    /// requests; tokens are refreshed in the background.
    #[serde(default)]
    pub credentials_file: Option<Loc<String>>,
    /// `anthropic`: the `anthropic-version` header. Default `2023-06-01`.
    #[serde(default)]
    pub anthropic_version: Option<String>,
    /// `anthropic`: `anthropic-beta` features to enable on every call
    /// (a client's own `anthropic-beta` header on `/v1/messages` is added to these).
    #[serde(default)]
    pub anthropic_beta: Vec<String>,
    /// `anthropic`, `bedrock`, `vertex`: max output tokens applied when a
    /// request gives none and the provider requires one. Default 4096.
    #[serde(default)]
    pub default_max_tokens: Option<u64>,
    /// What to do with a temperature above the provider's range (Anthropic,
    /// Bedrock and Cohere accept 0–1, OpenAI 0–2): `clamp` (default) lowers
    /// it to the maximum, `reject` refuses the request with a 400.
    #[serde(default)]
    pub temperature_policy: Option<TemperaturePolicySection>,
    /// Models served by this provider. Omitted = any model name is passed through.
    #[serde(default)]
    pub models: Vec<ModelSection>,
    /// Time limits for calls to this provider.
    #[serde(default)]
    pub timeout: TimeoutSection,
    /// `mock`: behaviour of the built-in mock provider.
    #[serde(default)]
    pub mock: Option<MockSection>,
}

#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TemperaturePolicySection {
    Clamp,
    Reject,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelSection {
    /// Model name as the provider knows it.
    pub name: Loc<String>,
    /// USD per million input tokens (overrides the built-in catalog).
    #[serde(default)]
    pub input_cost_per_mtok: Option<f64>,
    /// USD per million output tokens (overrides the built-in catalog).
    #[serde(default)]
    pub output_cost_per_mtok: Option<f64>,
}

#[derive(Debug, Default, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct TimeoutSection {
    /// TCP + TLS connect. Default 10s.
    pub connect: Option<Dur>,
    /// Until the response headers (non-streaming: the whole answer starts) arrive. Default 120s.
    pub first_token: Option<Dur>,
    /// Longest silence between two stream chunks. Default 60s.
    pub idle: Option<Dur>,
    /// Whole call. Default 600s.
    pub total: Option<Dur>,
}

#[derive(Debug, Default, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct MockSection {
    /// Fixed reply text; default echoes the last user message.
    pub reply: Option<String>,
    /// Delay before the first byte.
    pub latency: Option<Dur>,
    /// Delay between stream chunks.
    pub chunk_delay: Option<Dur>,
    /// Stream the answer in pieces of this many bytes, as a model's tokens
    /// cut through words (default: word by word).
    pub chunk_bytes: Option<usize>,
    /// Reported prompt tokens (default: estimated from the text).
    pub prompt_tokens: Option<u32>,
    /// Reported completion tokens (default: estimated from the reply).
    pub completion_tokens: Option<u32>,
    /// Deterministic failures.
    pub failure: Option<MockFailureSection>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MockFailureSection {
    /// HTTP status returned on failure.
    pub status: u16,
    /// Fail every n-th request (1 = always).
    #[serde(default)]
    pub every: Option<u32>,
    /// Fail this fraction of requests (0.0–1.0), chosen at random.
    #[serde(default)]
    pub rate: Option<f64>,
    /// `retry-after` seconds sent with the failure.
    #[serde(default)]
    pub retry_after: Option<u32>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VirtualModelSection {
    /// The logical name applications use, e.g. `prod/engineering-assistant`.
    pub name: Loc<String>,
    /// How the first target is chosen. Default `priority`.
    #[serde(default)]
    pub strategy: Option<Strategy>,
    /// Candidate targets.
    pub targets: Vec<TargetSection>,
    /// Rules evaluated top to bottom; the first match uses its own strategy and targets.
    #[serde(default)]
    pub routes: Vec<RouteSection>,
    /// When a target is taken out of rotation, and for how long.
    #[serde(default)]
    pub circuit_breaker: CircuitBreakerSection,
    /// Bounds the extra load retries may add.
    #[serde(default)]
    pub retry_budget: RetryBudgetSection,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// Targets in `priority` order (lowest first); the next on failure.
    #[default]
    Priority,
    /// A random target by `weight` (canary, A/B); the others on failure.
    Weight,
    /// The target with the lowest recent latency (power of two choices over a decaying average).
    Latency,
    /// The cheapest target by its provider model's price.
    Cost,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TargetSection {
    /// `<provider>/<model>` or another virtual model.
    pub model: Loc<String>,
    /// Order under `priority` (lower first; ties keep list order). Default 0.
    #[serde(default)]
    pub priority: Option<i32>,
    /// Share under `weight`. Default 1.
    #[serde(default)]
    pub weight: Option<u32>,
    /// Retries on this same target before moving on.
    #[serde(default)]
    pub retry: Option<RetrySection>,
    /// What moves on to the next target: statuses, `timeout`, `connect`.
    /// Default: 429, 500, 502, 503, 504, 529, timeout, connect.
    #[serde(default)]
    pub fallback_on: Option<Vec<FallbackCondition>>,
    /// Time limits for this target (each key overrides the provider's).
    #[serde(default)]
    pub timeout: Option<TimeoutSection>,
    /// Request parameters forced for this target, e.g. `{ temperature: 0.2 }`.
    #[serde(default)]
    pub overrides: BTreeMap<String, serde_json::Value>,
}

/// An upstream status (e.g. 429), `timeout` or `connect`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FallbackCondition {
    Status(u16),
    /// The connect, first-token or total time limit passed.
    Timeout,
    /// The connection could not be made, or broke before any answer.
    Connect,
}

impl<'de> Deserialize<'de> for FallbackCondition {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = FallbackCondition;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an HTTP status such as 429, or `timeout` or `connect`")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
                match u16::try_from(v) {
                    Ok(s) if (100..=599).contains(&s) => Ok(FallbackCondition::Status(s)),
                    _ => Err(E::custom(format!("{v} is not an HTTP status; use 100–599, `timeout` or `connect`"))),
                }
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Self::Value, E> {
                self.visit_u64(u64::try_from(v).map_err(|_| E::custom(format!("{v} is not an HTTP status")))?)
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                match v {
                    "timeout" => Ok(FallbackCondition::Timeout),
                    "connect" => Ok(FallbackCondition::Connect),
                    other => match other.parse::<u64>() {
                        Ok(n) => self.visit_u64(n),
                        Err(_) => Err(E::custom(format!(
                            "`{other}` is not a fallback condition; use a status such as 429, `timeout` or `connect`"
                        ))),
                    },
                }
            }
        }
        d.deserialize_any(V)
    }
}

impl JsonSchema for FallbackCondition {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "FallbackCondition".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "oneOf": [
                { "type": "integer", "minimum": 100, "maximum": 599 },
                { "type": "string", "enum": ["timeout", "connect"] }
            ],
            "description": "An upstream HTTP status, `timeout` or `connect`."
        })
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RetrySection {
    /// Tries on this target in all, the first included (1 = no retry).
    pub attempts: u32,
    /// Base delay; the n-th retry waits a random time up to backoff × 2^(n−1). Default 100ms.
    #[serde(default)]
    pub backoff: Option<Dur>,
    /// Upstream statuses worth retrying. Default 429, 500, 502, 503, 504, 529.
    #[serde(default)]
    pub on_status: Vec<u16>,
    /// Also retry when the provider did not answer in time (its
    /// `timeout.first_token`). Default false: the wait is paid again.
    #[serde(default)]
    pub on_timeout: bool,
    /// Also retry when no connection could be opened (refused, DNS, TLS,
    /// connect timeout). Default false.
    #[serde(default)]
    pub on_connect: bool,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteSection {
    pub when: WhenSection,
    #[serde(default)]
    pub strategy: Option<Strategy>,
    pub targets: Vec<TargetSection>,
}

#[derive(Debug, Default, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct CircuitBreakerSection {
    /// Open after this many failures in a row. Default 5.
    pub consecutive_failures: Option<u32>,
    /// Open when the recent failure ratio reaches this (0–1). Default 0.5.
    pub error_rate: Option<f64>,
    /// Requests seen before `error_rate` applies. Default 20.
    pub min_requests: Option<u32>,
    /// How long an open target is skipped before one probe is let through
    /// (longer when the provider's `retry-after` says so). Default 30s.
    pub cooldown: Option<Dur>,
}

#[derive(Debug, Default, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RetryBudgetSection {
    /// Retries allowed per request served, on average. Default 0.2.
    pub ratio: Option<f64>,
    /// Retries always allowed per second, whatever the ratio. Default 10.
    pub min_per_second: Option<u32>,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct WhenSection {
    /// Model globs, matched against the requested and the resolved name;
    /// a rule that names only `models` applies to model calls only.
    pub models: Vec<String>,
    /// MCP tool globs (`<server>/<tool>`); a rule that names only `tools`
    /// applies to tool calls only.
    pub tools: Vec<String>,
    /// A2A agent globs; a rule that names only `agents` applies to agent calls only.
    pub agents: Vec<String>,
    /// Metadata values that must all match.
    pub metadata: BTreeMap<String, String>,
    pub subjects: Vec<String>,
    pub teams: Vec<String>,
    pub groups: Vec<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimitSection {
    /// Named in the 429 a request gets when this rule refuses it.
    pub id: Loc<String>,
    /// Which requests the rule counts; omitted = every request.
    #[serde(default)]
    pub when: WhenSection,
    /// Values forming the counter key: `subject`, `model`, `provider`, `team`,
    /// `metadata.<key>`. Omitted = one counter for everything the rule matches.
    #[serde(default)]
    pub limit_by: Vec<Loc<String>>,
    pub unit: RateUnit,
    pub limit: u64,
    /// Most distinct counter keys the rule keeps (default 100000). Past it,
    /// unused counters are removed; if none is unused, new values share one
    /// overflow counter, so they are limited together, never uncounted.
    #[serde(default)]
    pub max_keys: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RateUnit {
    RequestsPerMinute,
    RequestsPerHour,
    RequestsPerDay,
    TokensPerMinute,
    TokensPerHour,
    TokensPerDay,
    InputTokensPerMinute,
    InputTokensPerHour,
    InputTokensPerDay,
    OutputTokensPerMinute,
    OutputTokensPerHour,
    OutputTokensPerDay,
    /// MCP tool calls (each `tools/call`); counts tool calls only.
    ToolCallsPerMinute,
    ToolCallsPerHour,
    ToolCallsPerDay,
    /// A2A agent calls; counts agent calls only.
    AgentCallsPerMinute,
    AgentCallsPerHour,
    AgentCallsPerDay,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BudgetSection {
    /// Named in the error a request gets when this budget refuses it.
    pub id: Loc<String>,
    #[serde(default)]
    pub when: WhenSection,
    /// Values forming the budget key, as for rate limits.
    #[serde(default)]
    pub limit_by: Vec<Loc<String>>,
    pub unit: BudgetUnit,
    /// USD for cost units, tokens for token units.
    pub limit: f64,
    /// `enforce` (refuse what would exceed the budget) or `warn` (let it through and report). Default `enforce`.
    #[serde(default)]
    pub mode: BudgetMode,
    /// Fractions of the limit at which an alert is raised once per period, e.g. `[0.5, 0.8, 1.0]`.
    #[serde(default)]
    pub alert_at: Vec<f64>,
    /// Most distinct accounts the budget keeps (default 100000). Past it,
    /// accounts with nothing spent this period are removed; if none is,
    /// new values share one overflow account.
    #[serde(default)]
    pub max_keys: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum BudgetUnit {
    CostPerDay,
    CostPerWeek,
    CostPerMonth,
    CostTotal,
    TokensPerDay,
    TokensPerWeek,
    TokensPerMonth,
    TokensTotal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum BudgetMode {
    #[default]
    Enforce,
    Warn,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct GuardrailsSection {
    pub definitions: Vec<GuardrailDefinitionSection>,
    pub enforce: GuardrailHooksSection,
}

/// One guardrail. Each type's options sit beside `type` (e.g. `terms:` for
/// `deny_list`); they are checked against the type when the config loads,
/// so a misspelt option is an error there, not a silent no-op.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct GuardrailDefinitionSection {
    pub name: Loc<String>,
    /// What it checks.
    #[serde(rename = "type")]
    pub kind: Loc<GuardrailType>,
    /// `validate` (pass/fail) or `mutate` (rewrites content). Default `validate`.
    #[serde(default)]
    pub action: GuardrailAction,
    /// `audit` (log only), `enforce` (block on fail) or `strict` (block on
    /// fail and on the guardrail's own error). Default `enforce`.
    #[serde(default)]
    pub mode: GuardrailMode,
    /// How long the guardrail may take before it counts as an error
    /// (`500ms`, `3s`). Default 2s for `webhook` and `llm_judge`; none for
    /// the in-process types, which take microseconds.
    #[serde(default)]
    pub timeout: Option<Dur>,
    /// The type's own options: `entities`, `restore` (pii); `terms`
    /// (deny_list); `patterns` (regex); `max_bytes` (max_size); `schema`
    /// (json_schema); `url`, `headers` (webhook); `model`, `prompt`, `key`
    /// (llm_judge); `policies` (cedar).
    #[serde(flatten)]
    pub options: BTreeMap<String, serde_json::Value>,
}

/// The built-in and external guardrail types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum GuardrailType {
    Pii,
    Secrets,
    PromptInjection,
    DenyList,
    Regex,
    MaxSize,
    JsonSchema,
    Webhook,
    LlmJudge,
    Cedar,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum GuardrailAction {
    #[default]
    Validate,
    Mutate,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum GuardrailMode {
    Audit,
    #[default]
    Enforce,
    Strict,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct GuardrailHooksSection {
    pub llm_input: Vec<Loc<String>>,
    pub llm_output: Vec<Loc<String>>,
    pub mcp_tool_pre: Vec<Loc<String>>,
    pub mcp_tool_post: Vec<Loc<String>>,
}

/// An upstream MCP server: exactly one of `url`, `sse_url` or `command`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct McpServerSection {
    pub name: Loc<String>,
    /// Streamable HTTP endpoint.
    #[serde(default)]
    pub url: Option<Loc<String>>,
    /// Legacy HTTP+SSE endpoint.
    #[serde(default)]
    pub sse_url: Option<Loc<String>>,
    /// stdio server: program to spawn (with `args` and `env`).
    #[serde(default)]
    pub command: Option<Loc<String>>,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// How the gateway authenticates to the server. Default `none`.
    #[serde(default)]
    pub auth: McpAuthSection,
    /// Pin each tool's definition at approval; a changed one is held until re-approved.
    #[serde(default)]
    pub pin_tools: bool,
    /// With `pin_tools`: `first_sight` (default) pins a tool's definition
    /// the first time it is seen; `approval` holds every tool until an
    /// admin approves it.
    #[serde(default)]
    pub pin_on: PinOn,
    /// For stdio servers: `shared` (default), one process for every client;
    /// `per_session`, one process per client session.
    #[serde(default)]
    pub process: ProcessMode,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PinOn {
    #[default]
    FirstSight,
    Approval,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProcessMode {
    #[default]
    Shared,
    PerSession,
}

/// How an MCP server is reached, from the one transport field a server sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum McpTransport {
    StreamableHttp(String),
    Sse(String),
    Stdio { command: String, args: Vec<String>, env: BTreeMap<String, String> },
}

impl McpServerSection {
    /// The transport, or why there is not exactly one.
    pub fn transport(&self) -> Result<McpTransport, String> {
        match (&self.url, &self.sse_url, &self.command) {
            (Some(u), None, None) => Ok(McpTransport::StreamableHttp(u.value.clone())),
            (None, Some(u), None) => Ok(McpTransport::Sse(u.value.clone())),
            (None, None, Some(c)) => {
                Ok(McpTransport::Stdio { command: c.value.clone(), args: self.args.clone(), env: self.env.clone() })
            }
            (None, None, None) => Err(format!("MCP server `{}` needs `url`, `sse_url` or `command`", self.name.value)),
            _ => Err(format!("MCP server `{}` sets more than one of `url`, `sse_url` and `command`", self.name.value)),
        }
    }
}

/// An upstream A2A agent.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct A2aAgentSection {
    /// The agent's name: its endpoint is `/a2a/<name>` and allowlists name it.
    pub name: Loc<String>,
    /// The agent's base URL: its card is read from
    /// `<url>/.well-known/agent-card.json` (`agent.json` for older agents).
    pub url: Loc<String>,
    /// How the gateway authenticates to the agent. Default `none`.
    #[serde(default)]
    pub auth: McpAuthSection,
    /// Guardrails on the text of messages to the agent (`input`) and of
    /// what it answers (`output`), by name from `guardrails.definitions`.
    #[serde(default)]
    pub guardrails: A2aGuardrailsSection,
    /// Longest wait for a non-streamed answer (`30s`, `5m`). Default `300s`.
    #[serde(default)]
    pub timeout: Option<Dur>,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct A2aGuardrailsSection {
    /// Run on the parts of every message sent to the agent (hook `llm_input`).
    pub input: Vec<Loc<String>>,
    /// Run on the parts of every message, task and artifact the agent sends back (hook `llm_output`).
    pub output: Vec<Loc<String>>,
}

/// Credentials the gateway sends to an MCP server or A2A agent (never the client's own).
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct McpAuthSection {
    #[serde(rename = "type", default)]
    pub kind: McpAuthType,
    /// For `static_header`: the header name, e.g. `authorization`.
    #[serde(default)]
    pub header: Option<String>,
    /// For `static_header`: its value, e.g. `"Bearer ${GITHUB_TOKEN}"`.
    #[serde(default)]
    pub value: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum McpAuthType {
    #[default]
    None,
    StaticHeader,
    OauthUser,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VirtualMcpServerSection {
    pub name: Loc<String>,
    /// `<server>/<tool>` globs, e.g. `github/search_*`.
    pub tools: Vec<String>,
    /// How tool names are shown: `always` `<server>__<tool>`, `on_conflict`
    /// (default) only where two servers have a tool of the same name, `never`.
    #[serde(default)]
    pub prefix: PrefixMode,
    /// Per-tool overrides, keyed by `<server>/<tool>`.
    #[serde(default)]
    pub overrides: BTreeMap<String, ToolOverrideSection>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PrefixMode {
    Always,
    #[default]
    OnConflict,
    Never,
}

/// A tool shown under another name or description in a virtual server.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ToolOverrideSection {
    pub rename: Option<String>,
    pub description: Option<String>,
}

/// Admin roles a key can carry. A key without a role is data-plane only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything on the admin API.
    Admin,
    /// Manages the keys of its own team; reads usage.
    TeamAdmin,
    /// Reads config, usage and keys.
    Viewer,
    /// Lists its own keys.
    Member,
}
