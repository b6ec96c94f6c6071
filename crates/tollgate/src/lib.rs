//! tollgate: one governed gateway for every AI call.
//!
//! Module map (see ARCHITECTURE.md for the bird's-eye view):
//! - [`config`]: the YAML users write, its validation into an immutable
//!   runtime snapshot, and atomic hot reload.
//! - [`pipeline`]: the ordered request stages of SPEC §1, one file each.
//! - [`limits`], [`budgets`], [`pricing`]: rate limits, budgets and the
//!   price catalog; counters and accounts in memory, money in nano-dollars.
//! - [`matching`]: the `when` conditions and `limit_by` keys rules share.
//! - [`routing`]: virtual models — rules, strategies, retries, fallbacks,
//!   circuit breakers and the retry budget.
//! - [`providers`]: upstream wire families (OpenAI-compatible, mock), the
//!   pooled HTTP clients and the stream relay.
//! - [`wire`]: I/O-free wire formats: passthrough JSON, SSE framing, OpenAI shapes.
//! - [`server`]: the data-plane and admin-plane routers and listeners.
//! - [`store`]: durable state (SQLite), loaded at start and written behind.
//! - [`error`]: request-path errors and their single mapping to HTTP.
//! - [`demo`]: `tollgate demo`, a guided tour against the mock provider.

pub mod admission;
pub mod audit;
pub mod budgets;
pub mod cli_keys;
pub mod cli_logs;
pub mod config;
pub mod demo;
pub mod digest;
pub mod error;
pub mod events;
pub mod glob;
pub mod identity;
pub mod limits;
pub mod matching;
pub mod metrics;
pub mod pipeline;
pub mod pricing;
pub mod providers;
pub mod redact;
pub mod reqlog;
pub mod resource;
pub mod routing;
pub mod server;
pub mod state;
pub mod store;
pub mod task;
pub mod traces;
pub mod translate;
pub mod wire;
