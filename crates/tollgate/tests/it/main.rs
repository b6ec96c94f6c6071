#![expect(clippy::unwrap_used, reason = "tests fail loudly by design")]
#![expect(clippy::disallowed_methods, reason = "tests spawn their own concurrent clients")]
//! Integration tests: the real router (or the real binary) against the test
//! kit's in-process mock upstreams. One test binary, one module per area.

mod a2a;
mod admission;
mod agent;
mod audit;
mod auth;
mod batches;
mod binary;
mod cache;
mod chat;
mod common;
mod console;
mod deploy;
mod distributed;
mod errors;
mod examples;
mod faults;
mod fuzz;
mod golden;
mod guardrails;
mod hostile;
mod jwt;
mod keys;
mod layers;
mod logs;
mod mcp;
mod mcp_governance;
mod mcp_upstreams;
mod messages;
mod prompts;
mod providers;
mod real;
mod reload;
mod responses;
mod responses_native;
mod routing;
mod spend;
mod upstream_faults;
