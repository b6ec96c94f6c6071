//! Distributed mode: several instances behind a load balancer behave as one
//! gateway (docs/distributed.md).
//!
//! - `cell.rs`, `cells.rs`: shared rate-limit counters and budget accounts
//!   as this instance sees them — leases of headroom from Redis, decided in
//!   memory on the request path;
//! - `sync.rs`: the task that sends local counts to Redis in batches (one
//!   Lua call per tick) and refills leases; it notices Redis going away and
//!   coming back;
//! - `bus.rs`: changes (keys, overlays, approvals, config reloads) published
//!   on NATS and received from it; the server applies them
//!   (`server/changes.rs`), and PostgreSQL stays the source of truth that a
//!   missed message is caught up from;
//! - `settings.rs`: the `distributed:` section, checked.

pub mod bus;
pub mod cell;
pub mod cells;
pub mod settings;
pub mod sync;

pub use cells::Cells;
