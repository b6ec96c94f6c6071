//! What a governed call calls — a model, an MCP tool or an A2A agent — as
//! identity, policy and observability see it: a kind and a name. Allowlists,
//! `when` conditions, rate-limit units and the request log read this, never
//! the protocol that carried the call. (The resolved thing — a model's
//! targets, a tool's server — is `admission::Resource`.)

use serde::{Deserialize, Serialize};

/// The three kinds of call; the request log's `kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A model call: chat completions, messages, embeddings.
    #[default]
    Model,
    /// An MCP tool call.
    Mcp,
    /// An A2A agent call.
    A2a,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Model => "model",
            Kind::Mcp => "mcp",
            Kind::A2a => "a2a",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        match s {
            "model" => Some(Kind::Model),
            "mcp" => Some(Kind::Mcp),
            "a2a" => Some(Kind::A2a),
            _ => None,
        }
    }
}

/// The name of what a call calls, as rules match it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Called<'a> {
    /// A model: the name as the client sent it, and the resolved name (a
    /// virtual model's own, or `<provider>/<model>`).
    Model { requested: &'a str, resolved: &'a str },
    /// An MCP tool, `<server>/<tool>`.
    Tool(&'a str),
    /// An A2A agent.
    Agent(&'a str),
}

impl<'a> Called<'a> {
    /// A model by one name (what the client sent is what is checked).
    pub fn model(name: &'a str) -> Called<'a> {
        Called::Model { requested: name, resolved: name }
    }

    pub fn kind(self) -> Kind {
        match self {
            Called::Model { .. } => Kind::Model,
            Called::Tool(_) => Kind::Mcp,
            Called::Agent(_) => Kind::A2a,
        }
    }

    /// The name allowlists are checked against: the resolved model, the
    /// tool's `<server>/<tool>`, the agent's name.
    pub fn name(self) -> &'a str {
        match self {
            Called::Model { resolved, .. } => resolved,
            Called::Tool(n) | Called::Agent(n) => n,
        }
    }
}
