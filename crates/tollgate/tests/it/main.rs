#![allow(clippy::unwrap_used)] // tests fail loudly by design
//! Integration tests: the real router (or the real binary) against the test
//! kit's in-process mock upstreams. One test binary, one module per area.

mod audit;
mod auth;
mod binary;
mod chat;
mod common;
mod errors;
mod examples;
mod golden;
mod jwt;
mod keys;
mod layers;
mod logs;
mod messages;
mod providers;
mod reload;
mod routing;
mod spend;
mod upstream_faults;
