//! One request log entry, as written, stored and read back. No I/O: the
//! store, the trace exporter and the writer all share this shape.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::resource::Kind;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttemptLog {
    /// Milliseconds from the request's arrival to the attempt's start.
    #[serde(default)]
    pub start_ms: f64,
    pub target: String,
    pub outcome: String,
    pub status: Option<u16>,
    pub latency_ms: f64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LogEntry {
    pub id: String,
    /// What was called: `model`, `mcp` (a tool) or `a2a` (an agent).
    /// Entries written before tool and agent calls existed read as `model`.
    #[serde(default)]
    pub kind: Kind,
    /// Unix milliseconds at arrival.
    pub time: u64,
    pub subject: String,
    pub metadata: BTreeMap<String, String>,
    pub requested_model: String,
    pub resolved_model: Option<String>,
    pub provider: Option<String>,
    pub route: String,
    pub stream: bool,
    pub status: u16,
    /// A bounded error label (`upstream_timeout`, `budget_exceeded`, …).
    pub error: Option<String>,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// True when the provider reported no usage and tokens were estimated.
    pub usage_estimated: bool,
    pub cost_nanos: u64,
    pub total_ms: f64,
    pub upstream_ms: f64,
    pub backoff_ms: f64,
    pub attempts: Vec<AttemptLog>,
    pub config_version: u64,
    /// W3C trace context: the trace this request belongs to (from an
    /// incoming `traceparent`, else new), its own span and its parent.
    #[serde(default)]
    pub trace_id: String,
    #[serde(default)]
    pub span_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_span_id: Option<String>,
    /// The request body as sent (with `logging.bodies`), masked before it is stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_body: Option<String>,
    /// A non-streamed response body (with `logging.bodies`), masked before it is stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_body: Option<String>,
    /// Every guardrail that ran on this call: name, hook, outcome, time.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub guardrails: Vec<GuardrailLog>,
    /// A tool call's particulars (`kind: mcp`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mcp: Option<McpLog>,
    /// What the response cache did: `status` and, on a hit, the cost the
    /// answer had when it was first paid for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<CacheLog>,
    /// The client request this call was made for by the agent layer (a
    /// model call of its tool loop, a tool call, a quarantine question).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<String>,
    /// What the agent layer did on this request: steps, tools, taint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<AgentLog>,
    /// An agent call's particulars (`kind: a2a`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub a2a: Option<A2aLog>,
    /// The prompt template the request named.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<PromptLog>,
    /// Whether the entry goes to the request log (`logging.enabled`); an
    /// entry built only for tracing does not.
    #[serde(skip)]
    pub log: bool,
}

/// A prompt template in the request log: which version was rendered, how
/// it was asked for, and the provider whose override the answer used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromptLog {
    pub id: String,
    pub version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub override_for: Option<String>,
}

/// An MCP tool call in the request log. Never the arguments or result
/// themselves: their hash and size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct McpLog {
    /// The endpoint called (`/mcp/<endpoint>`): a server or a virtual server.
    pub endpoint: String,
    pub server: String,
    pub tool: String,
    /// SHA-256 of the arguments as the client sent them (canonical JSON).
    pub arguments_sha256: String,
    pub result_bytes: u64,
    /// `allowed`, `refused` (unknown, not allowed, quarantined, limited),
    /// `blocked` (a guardrail) or `error` (the server failed).
    pub decision: String,
    /// The result was a tool error (`isError`).
    #[serde(default)]
    pub is_error: bool,
}

/// The response cache's part in a request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CacheLog {
    /// `hit`, `miss`, `refresh` or `bypass`.
    pub status: String,
    /// On a hit: what the answer cost when it was first paid for, in nano-dollars.
    #[serde(default)]
    pub saved_nanos: u64,
    /// On a hit found by semantic matching: the cosine similarity of the
    /// last user turns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub similarity: Option<f32>,
}

/// The agent layer's account of one client request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AgentLog {
    /// Model calls made (the loop's steps).
    pub steps: u32,
    /// Tool calls the gateway carried out, as `<server>/<tool>`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<String>,
    /// Whether the context held an untrusted tool result, and whose.
    pub tainted: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tainted_by: Vec<String>,
    /// Tools taken away from the model or refused because of the taint.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub blocked: Vec<String>,
    /// Tool calls returned to the client for approval instead of carried out.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approval_required: Vec<String>,
    /// Results kept from the model, read by the quarantined model only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub quarantined: Vec<String>,
    /// Why the loop stopped early (`max_steps`), if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped: Option<String>,
}

/// An A2A agent call in the request log. Never the messages themselves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct A2aLog {
    pub agent: String,
    /// The JSON-RPC method as the client named it (`message/send`,
    /// `SendMessage`), or `<HTTP method> <path>` on the REST binding.
    pub method: String,
    /// `jsonrpc` or `rest`.
    pub binding: String,
    /// The task the call is about, from the request or the answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_id: Option<String>,
    /// The task's last state the gateway saw (`working`, `completed`,
    /// `input-required`, `canceled`, …), in one vocabulary for both generations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_state: Option<String>,
    /// `allowed`, `refused` (identity, allowlist, limits), `blocked` (a
    /// guardrail) or `error` (the agent could not be reached or failed).
    pub decision: String,
    /// A JSON-RPC error code the agent answered with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpc_error: Option<i64>,
    /// Events relayed on a streamed answer.
    #[serde(default)]
    pub events: u64,
}

/// One guardrail decision in the request log. Never the matched text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GuardrailLog {
    pub name: String,
    /// `llm_input`, `llm_output`, `mcp_tool_pre` or `mcp_tool_post`.
    pub hook: String,
    /// `pass`, `flagged` (audit), `mutated`, `blocked` or `error` (let through).
    pub outcome: String,
    pub duration_us: u64,
    /// What was found (`found EMAIL, PHONE`) or why the guardrail failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}
