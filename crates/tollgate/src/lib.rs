//! tollgate: one governed gateway for every AI call.
//!
//! Module map, bottom layer first (see ARCHITECTURE.md for the pipeline,
//! the layering rules and the invariants):
//! - leaves: [`glob`], [`digest`], [`netguard`] (SSRF rules), [`redact`], [`resource`] (what a
//!   call calls: `Kind`, `Called`), [`wire`] (wire formats), [`translate`]
//!   (hub ⇄ provider formats), [`pricing`].
//! - [`identity`]: principals, virtual keys, JWT issuers, authentication,
//!   allowlists for models, tools and agents.
//! - policy domains: [`matching`] (`when`, `limit_by`), [`limits`],
//!   [`budgets`], [`guardrails`], [`events`], [`prompts`] (versioned prompt templates),
//!   [`providers`] (upstream wire families and the
//!   one HTTP exchange), [`routing`] (model catalog, virtual models,
//!   strategies, retries, breakers); [`error`] maps them all to HTTP.
//! - durable state and writers: [`store`], [`audit`], [`reqlog`], [`traces`],
//!   [`metrics`]; [`task`] spawns every background task.
//! - [`distributed`]: shared counters and budgets (Redis), the change bus (NATS).
//! - [`state`]: process state that outlives config snapshots.
//! - [`config`]: the YAML users write, its validation into an immutable
//!   snapshot, and atomic hot reload.
//! - [`admission`]: the one admission path of every model, tool and agent
//!   call (authenticate, metadata, authorize, limits, budgets, guardrail
//!   hooks, record); [`pipeline`]: the model-call stages around it.
//! - [`batches`]: the Batches API's files, batches and executor (lines run
//!   in-process through the data plane).
//! - surfaces: [`server`] (data and admin planes), [`cli_keys`],
//!   [`cli_logs`], [`cli_guardrails`], [`demo`].

pub mod a2a;
pub mod admission;
pub mod agent;
pub mod audit;
pub mod batches;
pub mod budgets;
pub mod cache;
pub mod cli_guardrails;
pub mod cli_keys;
pub mod cli_logs;
pub mod cli_mcp;
pub mod cli_probe;
pub mod config;
pub mod demo;
pub mod digest;
pub mod distributed;
pub mod error;
pub mod events;
pub mod glob;
pub mod guardrails;
pub mod identity;
pub mod keyspace;
pub mod limits;
pub mod matching;
pub mod mcp;
pub mod metrics;
pub mod netguard;
pub mod pipeline;
pub mod pricing;
pub mod prompts;
pub mod providers;
pub mod redact;
pub mod reqlog;
pub mod resource;
pub mod responses;
pub mod routing;
pub mod server;
pub mod state;
pub mod store;
pub mod task;
pub mod traces;
pub mod translate;
pub mod wire;
