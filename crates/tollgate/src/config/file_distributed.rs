//! `distributed:` as users write it: several instances behaving as one
//! gateway — counters and budgets shared through Redis, changes pushed over
//! NATS (docs/distributed.md). `distributed/settings.rs` checks it.
//!
//! Doc comments here become descriptions in `config.schema.json`.

use schemars::JsonSchema;
use serde::Deserialize;

use super::loc::{Dur, Loc};

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DistributedSection {
    /// Shared rate-limit counters and budget accounts, e.g.
    /// `redis://10.0.0.5:6379/0`, or `rediss://` for TLS. A password may sit
    /// in the URL (`rediss://:secret@host:6379/0`) or in `redis_password`.
    pub redis_url: Loc<String>,
    /// Redis ACL user, when not in the URL.
    #[serde(default)]
    pub redis_username: Option<String>,
    /// Redis password, when not in the URL (e.g. `${REDIS_PASSWORD}`).
    #[serde(default)]
    pub redis_password: Option<String>,
    /// Where key, overlay, approval and config changes are pushed to every
    /// instance, e.g. `nats://10.0.0.6:4222` or `tls://nats.internal:4222`.
    pub nats_url: Loc<String>,
    /// Require TLS to NATS (also implied by a `tls://` URL).
    #[serde(default)]
    pub nats_tls: bool,
    /// PEM file of the CA that signed the NATS server's certificate, when it
    /// is not a public one.
    #[serde(default)]
    pub nats_ca_file: Option<Loc<String>>,
    /// NATS token authentication.
    #[serde(default)]
    pub nats_token: Option<String>,
    /// NATS user/password authentication (both or neither).
    #[serde(default)]
    pub nats_user: Option<Loc<String>>,
    #[serde(default)]
    pub nats_password: Option<String>,
    /// This instance's name in logs and change messages. Default: the host
    /// name (the pod name on Kubernetes) with a random suffix.
    #[serde(default)]
    pub instance_id: Option<Loc<String>>,
    /// Prefix of every Redis key and NATS subject, so several gateways (or
    /// environments) can share one Redis and one NATS. Default `tollgate`.
    #[serde(default)]
    pub namespace: Option<Loc<String>>,
    /// How often local counts are sent to Redis and leases refilled when
    /// nothing asks sooner. Default `50ms`; between `5ms` and `10s`.
    #[serde(default)]
    pub sync_interval: Option<Loc<Dur>>,
    /// Share of each limit an instance takes from Redis at a time (its
    /// lease), and at most admits ahead of Redis: the overshoot bound is
    /// `limit × (1 + instances × lease)`. Above 0, at most 0.5; default 0.01.
    #[serde(default)]
    pub lease: Option<Loc<f64>>,
    /// While Redis cannot be reached: `false` (default) counts locally, each
    /// instance against the whole limit (fail-open); `true` refuses requests
    /// that a rate limit or an enforced budget applies to (fail-closed).
    #[serde(default)]
    pub fail_closed: bool,
}
