//! Bounds on per-key state. Rate-limit counters and budget accounts are
//! created per distinct `limit_by` value, and those values come from
//! requests (metadata, subjects): a client cycling `project_id` values
//! would otherwise grow memory without limit.
//!
//! Each rule may hold at most `max_keys` keys. When a new key would pass
//! that bound, keys nothing uses any more are swept first (at most once a
//! second per rule, so a flood of new values cannot turn every request
//! into a scan); if the rule is still full, the new value shares one
//! overflow key for the rule. Sharing errs on the safe side: values past
//! the bound are limited together, never let through uncounted.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Keys per rule when `max_keys` is not set.
pub const DEFAULT_MAX_KEYS: u64 = 100_000;
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// The key new values share once a rule is full. Real keys equal the
/// rule's prefix or continue it with `|`, so this one cannot collide.
pub fn overflow_key(prefix: &str) -> String {
    format!("{prefix}#overflow")
}

#[derive(Debug, Default)]
struct Rule {
    keys: u64,
    last_sweep: Option<Instant>,
    warned: bool,
}

/// How many keys each rule holds, by the rule's key prefix.
#[derive(Debug, Default)]
pub struct Keyspace {
    rules: Mutex<HashMap<String, Rule>>,
}

/// What to do with a key not seen before.
#[derive(Debug, PartialEq, Eq)]
pub enum Admit {
    /// Create it (it has been counted).
    New,
    /// The rule is full: use `overflow_key(prefix)` instead.
    Overflow,
}

impl Keyspace {
    /// Called only for keys not in the map yet (the slow path). `sweep`
    /// removes the rule's unused keys and returns how many it removed.
    pub fn admit(&self, prefix: &str, max: u64, sweep: impl FnOnce() -> u64) -> Admit {
        let mut rules = self.rules.lock().unwrap_or_else(|p| p.into_inner());
        if !rules.contains_key(prefix) {
            rules.insert(prefix.to_string(), Rule::default());
        }
        let r = rules.get_mut(prefix).expect("inserted above");
        if r.keys >= max && r.last_sweep.is_none_or(|t| t.elapsed() >= SWEEP_EVERY) {
            r.last_sweep = Some(Instant::now());
            r.keys = r.keys.saturating_sub(sweep());
        }
        if r.keys < max {
            r.keys += 1;
            return Admit::New;
        }
        if !r.warned {
            r.warned = true;
            tracing::warn!(
                rule = prefix,
                max_keys = max,
                "a rule holds its maximum number of keys; new values share one overflow key until keys expire (raise `max_keys` if this is expected)"
            );
        }
        Admit::Overflow
    }

    /// A key counted by `admit` was not made after all (another request
    /// made it first), or was removed outside a sweep.
    pub fn removed(&self, prefix: &str, n: u64) {
        let mut rules = self.rules.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(r) = rules.get_mut(prefix) {
            r.keys = r.keys.saturating_sub(n);
        }
    }

    /// A key created without `admit` (loaded from the store at start).
    pub fn loaded(&self, prefix: &str) {
        let mut rules = self.rules.lock().unwrap_or_else(|p| p.into_inner());
        rules.entry(prefix.to_string()).or_default().keys += 1;
    }

    pub fn keys(&self, prefix: &str) -> u64 {
        self.rules.lock().unwrap_or_else(|p| p.into_inner()).get(prefix).map_or(0, |r| r.keys)
    }
}

/// The rule prefix of a key: what comes before the first unescaped `|`
/// (the rule part itself never contains one).
pub fn prefix_of(key: &str) -> &str {
    key.split_once('|').map_or(key, |(p, _)| p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_rule_sweeps_then_overflows() {
        let ks = Keyspace::default();
        assert_eq!(ks.admit("r@u", 2, || 0), Admit::New);
        assert_eq!(ks.admit("r@u", 2, || 0), Admit::New);
        // Full, nothing to sweep: overflow.
        assert_eq!(ks.admit("r@u", 2, || 0), Admit::Overflow);
        // Within a second no second sweep runs, even if it would free keys.
        assert_eq!(ks.admit("r@u", 2, || panic!("swept twice within a second")), Admit::Overflow);
        // Another rule has its own bound.
        assert_eq!(ks.admit("s@u", 2, || 0), Admit::New);
        ks.removed("r@u", 1);
        assert_eq!(ks.admit("r@u", 2, || 0), Admit::New);
        assert_eq!(ks.keys("r@u"), 2);
    }

    #[test]
    fn the_overflow_key_cannot_be_a_real_key() {
        assert_eq!(prefix_of("r@u|a|b"), "r@u");
        assert_eq!(prefix_of("r@u"), "r@u");
        assert!(!overflow_key("r@u").contains('|'));
        assert_ne!(overflow_key("r@u"), "r@u");
    }
}
