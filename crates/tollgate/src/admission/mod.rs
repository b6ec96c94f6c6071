//! The admission path every governed call takes, whatever protocol carried
//! it: a model call on `/v1/chat/completions` or `/v1/messages`, an MCP tool
//! call, an A2A agent call. Each protocol reads its own wire format; the
//! identity, policy, safety and observability decisions are made here, once,
//! on an `Admission` that names what is called (`Resource`) and not how it
//! was asked.
//!
//! In order (SPEC §1):
//! 2. `authenticate` — credential → principal, from headers alone, before
//!    the protocol reads a body.
//! 3. metadata — `x-tollgate-metadata` over the principal's defaults, the contract.
//! 4. authorize — resolve what is called; the principal's, team's and
//!    groups' allowlists for that kind of call.
//! 5. rate limits — every matching rule of a unit that counts this kind.
//! 6. budget reservation — model calls' worst-case cost.
//!
//! Stages 3–6 are `admit`: **the one function a new protocol calls** once
//! it knows what is being called. Then `guardrails::run` on the protocol's
//! hooks (7 and 11), the call itself, `Holds::settle` (12) and the request
//! log entry `entry` starts (13).

pub mod authorize;
pub mod budget;
pub mod guardrails;
pub mod holds;
pub mod limits;
pub mod metadata;
pub mod record;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use http::HeaderMap;

pub use holds::Holds;

use crate::config::snapshot::Snapshot;
use crate::error::GatewayError;
use crate::identity::Principal;
use crate::limits::Estimate;
use crate::matching::Facts;
use crate::resource::{Called, Kind};
use crate::routing::catalog::ModelRef;
use crate::state::Shared;

/// Marks a call the agent layer makes for a client's request (a model
/// call of its loop, a tool call, a question to the quarantined model):
/// `<token>:<parent request id>`. The token is per process, so a client
/// cannot make its own requests look like another's children.
pub const HOP_HEADER: &str = "x-tollgate-internal-agent-hop";

pub fn hop_token() -> &'static str {
    static TOKEN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    TOKEN.get_or_init(|| hex::encode(crate::digest::os_random::<16>()))
}

/// The parent request a hop header names, when its token is this process's.
fn hop_parent(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(HOP_HEADER)?.to_str().ok()?;
    let (token, parent) = v.split_once(':')?;
    let ok = crate::digest::ct_eq(&crate::digest::sha256(token.as_bytes()), &crate::digest::sha256(hop_token().as_bytes()));
    ok.then(|| parent.to_string())
}

/// What a call asks for, as its protocol names it.
#[derive(Debug, Clone, Copy)]
pub enum Requested<'a> {
    /// A model name as the client wrote it (virtual, canonical or bare).
    Model(&'a str),
    /// A tool on a tool server.
    Tool { server: &'a str, tool: &'a str },
    /// An agent by name.
    Agent(&'a str),
}

/// What a call calls, resolved at stage 4.
#[derive(Debug, Clone)]
pub enum Resource {
    /// A physical or a virtual model.
    Model(ModelRef),
    /// An MCP tool, `<server>/<tool>`.
    Tool(String),
    /// An A2A agent.
    Agent(String),
}

impl Resource {
    pub fn kind(&self) -> Kind {
        match self {
            Resource::Model(_) => Kind::Model,
            Resource::Tool(_) => Kind::Mcp,
            Resource::Agent(_) => Kind::A2a,
        }
    }

    /// As rules see it; `requested` is the name the client sent.
    pub fn called<'a>(&'a self, requested: &'a str) -> Called<'a> {
        match self {
            Resource::Model(m) => Called::Model { requested, resolved: m.name() },
            Resource::Tool(name) => Called::Tool(name),
            Resource::Agent(name) => Called::Agent(name),
        }
    }
}

/// Everything admission learns about one call, in the order it learns it.
/// Protocol-specific state (a model call's attempts, a tool call's session)
/// lives beside it in the protocol's own context.
pub struct Admission {
    pub id: String,
    /// Model, MCP or A2A: the request log's `kind`.
    pub kind: Kind,
    pub started: Instant,
    /// The config this call runs under from start to finish.
    pub snapshot: Arc<Snapshot>,
    /// Counters, accounts and pools that outlive snapshots.
    pub shared: Arc<Shared>,
    /// W3C trace context: (trace id, this call's span id, parent span id).
    pub trace: (String, String, Option<String>),
    pub principal: Option<Arc<Principal>>,
    pub metadata: BTreeMap<String, String>,
    /// What the client asked for, as it wrote it (a model name,
    /// `<server>/<tool>`, an agent name); empty until the protocol knows.
    pub requested: String,
    /// What that resolved to (stage 4).
    pub resource: Option<Resource>,
    /// Rate-limit and budget reservations, settled at stage 12.
    pub holds: Holds,
    /// Guardrails the request added, their decisions, PII placeholders.
    pub guard: guardrails::GuardState,
    /// The client request this call was made for, when the agent layer made it.
    pub parent: Option<String>,
}

impl Admission {
    pub fn new(id: String, kind: Kind, snapshot: Arc<Snapshot>, shared: Arc<Shared>, headers: &HeaderMap) -> Admission {
        Admission {
            id,
            kind,
            started: Instant::now(),
            snapshot,
            shared,
            trace: crate::traces::context(headers),
            principal: None,
            metadata: BTreeMap::new(),
            requested: String::new(),
            resource: None,
            holds: Holds::default(),
            guard: guardrails::GuardState {
                judge_call: headers.get(crate::guardrails::llm_judge::JUDGE_HEADER).is_some_and(|v| {
                    let token = crate::guardrails::llm_judge::judge_token().as_bytes();
                    crate::digest::ct_eq(&crate::digest::sha256(v.as_bytes()), &crate::digest::sha256(token))
                }),
                ..Default::default()
            },
            parent: hop_parent(headers),
        }
    }

    /// Stage 2, from headers alone.
    pub async fn authenticate(&mut self, headers: &HeaderMap) -> Result<(), GatewayError> {
        let p = crate::identity::authenticate::run(&self.snapshot.auth, &self.shared.keys, headers).await?;
        self.principal = Some(p);
        Ok(())
    }

    /// Stages 3–6: metadata, authorize, rate limits, budget reservation —
    /// for any kind of call. `est` is what the call may consume in tokens
    /// (zero for tool and agent calls). On success the holds are in
    /// `self.holds`; on a refusal nothing is held.
    pub fn admit(&mut self, headers: &HeaderMap, what: Requested<'_>, est: &Estimate) -> Result<(), GatewayError> {
        self.requested = match what {
            Requested::Model(name) | Requested::Agent(name) => name.to_string(),
            Requested::Tool { server, tool } => format!("{server}/{tool}"),
        };
        // 3. metadata — merged before authorization and limits, which match on it.
        self.metadata = metadata::run(&self.snapshot.metadata, self.principal.as_deref(), headers)?;
        // The request's own guardrails: a bad header is refused before any counter moves.
        self.guard.requested = guardrails::requested(&self.snapshot.guardrails, headers)?;
        // 4. authorize — before any counter moves, so a refused call costs no quota.
        self.resource = Some(authorize::run(self, what)?);
        // 5. rate limits, then 6. budget reservation — after authorization
        //    (only permitted work is counted) and before anything is sent.
        limits::admit(self, est)?;
        budget::reserve(self, est)?;
        Ok(())
    }

    /// The model this call resolved to, when it is a model call.
    pub fn model(&self) -> Option<&ModelRef> {
        match &self.resource {
            Some(Resource::Model(m)) => Some(m),
            _ => None,
        }
    }

    /// What rules match on and count by.
    pub fn facts(&self) -> Facts<'_> {
        let called = match &self.resource {
            Some(r) => r.called(&self.requested),
            None => Called::model(&self.requested),
        };
        Facts { called, principal: self.principal.as_deref(), metadata: &self.metadata }
    }
}
