//! The A2A proxy: agent-to-agent calls through the gateway under the same
//! identity, allowlists, rate limits, guardrails and request log as model
//! and tool calls.
//!
//! Each configured agent is served at `/a2a/<name>`: its card (rewritten so
//! every endpoint is the gateway's), the JSON-RPC binding on `POST
//! /a2a/<name>` with v0.3 and v1.0 method names, and the REST binding
//! below `/a2a/<name>/rest` where the agent offers it. A call is admitted
//! on the shared path as `Requested::Agent`; the agent's credential is
//! injected and the client's never forwarded.
//!
//! - `registry` — agents from the config, checked at load.
//! - `card` — reading upstream cards (with health) and rewriting them.
//! - `rpc` — what the gateway reads of the protocol: method names, REST
//!   paths, task ids and states in both generations.
//! - `front` — the HTTP endpoints.
//! - `call` — one governed call: admission, guardrails, the relay, the log.

pub mod call;
pub mod card;
pub mod front;
pub mod registry;
pub mod rpc;

use std::time::Duration;

use crate::providers::http::HttpClient;
use crate::state::Shared;

/// What outlives config snapshots: the cards read so far.
#[derive(Default)]
pub struct Agents {
    pub cards: std::sync::Arc<card::Directory>,
}

impl Agents {
    /// Reads every configured agent's card in the background, so the first
    /// call to an agent does not wait for it.
    pub fn prefetch(&self, shared: &Shared, snap: &crate::config::snapshot::Snapshot) {
        let client = Self::client(shared);
        for def in snap.a2a.agents.values() {
            self.cards.read_later(&client, def);
        }
    }

    /// The client calls to agents go out on (pooled, shared with the providers').
    pub fn client(shared: &Shared) -> HttpClient {
        shared.upstreams.client(Duration::from_secs(10))
    }
}
