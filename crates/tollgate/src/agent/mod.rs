//! The agent layer, on `/v1/chat/completions` and `/v1/messages` (read in
//! the chat form, answered in the client's):
//!
//! - the gateway-run tool loop: `{"type": "mcp", "server": …}` entries in
//!   `tools` are offered to the model as function tools, and the gateway
//!   carries out the model's calls to them through its MCP gateway, under
//!   the caller's identity, until the model answers (or `agent.max_steps`);
//! - the dynamic tool engine: tool results are untrusted unless a
//!   `tool_trust` rule trusts them; once one is in the context, tools whose
//!   `tool_policies` say `block` are taken away (and refused if called
//!   anyway), and `require_approval` ones are handed back to the client
//!   instead of carried out — in client-run loops (read from the request's
//!   messages) and gateway-run ones alike;
//! - dual-LLM quarantine (`quarantine.rs`).
//!
//! Every model call of the loop is an ordinary request through the
//! pipeline (limits, budgets, guardrails, routing, its own log entry) and
//! every tool call an ordinary governed MCP call; each names the client's
//! request as its parent and shares its trace.
//!
//! - `trust` — the rules, compiled at load.
//! - `tools` — what the model is offered.
//! - `run` — the loop.

pub mod quarantine;
pub mod run;
pub mod tools;
pub mod trust;

use std::sync::Arc;

use crate::config::reload::Live;
use crate::config::snapshot::Snapshot;

/// What the agent layer runs on.
pub struct Door {
    pub live: Arc<Live>,
    pub hub: Arc<crate::mcp::Hub>,
    /// Request ids, from the server's one sequence.
    pub ids: Box<dyn Fn() -> String + Send + Sync>,
}

/// Whether a request may need the agent layer: it offers MCP tools, or
/// the engine has rules that could change what the model sees. Read from
/// the raw bytes, so every other request goes straight to the pipeline.
pub fn may_engage(snap: &Snapshot, body: &[u8]) -> bool {
    snap.agent.engine_on() || body.windows(5).any(|w| w == b"\"mcp\"")
}
