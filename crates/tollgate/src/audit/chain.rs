//! The chain itself: what one audited action records and how each entry's
//! hash covers the one before it. No I/O, so the store can compute the same
//! chain the writer does.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// One audited action, before it is chained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Unix milliseconds.
    pub time: u64,
    /// Who: a principal id (`master`, `key:ci`, `jwt:alice`) or `-`.
    pub actor: String,
    /// What: `key.create`, `key.revoke`, `key.rotate`, `overlay.put`,
    /// `overlay.delete`, `config.reload`, `auth.refused`, `admin.refused`.
    pub action: String,
    /// On what: a key id, an overlay `kind/id`, a config version, a route.
    pub target: String,
    /// `ok` or `refused`, with details.
    pub outcome: String,
}

/// A stored entry: the record, its place in the chain and its hash.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub seq: u64,
    pub record: Record,
    pub prev_hash: String,
    pub hash: String,
}

/// The hash of an entry: SHA-256 over the previous hash and the record's
/// fields, each length-prefixed so no two records can collide by shifting
/// bytes between fields.
pub fn entry_hash(seq: u64, prev_hash: &str, r: &Record) -> String {
    let mut h = Sha256::new();
    for part in [
        seq.to_string().as_bytes(),
        prev_hash.as_bytes(),
        r.time.to_string().as_bytes(),
        r.actor.as_bytes(),
        r.action.as_bytes(),
        r.target.as_bytes(),
        r.outcome.as_bytes(),
    ] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part);
    }
    hex::encode(h.finalize())
}

/// The hash the first entry chains from.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";
