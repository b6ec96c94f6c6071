//! Rate limits (stage 5): every rule whose `when` matches applies, each with
//! its own counter per `limit_by` key. Request units take 1 at admission;
//! token units reserve an estimate (prompt estimate + the output allowance)
//! and settle to the real usage when it is known, giving back the rest.
//!
//! Counters live in memory outside the config snapshot (`Counters`), so a
//! reload keeps them, and a rule whose limit changes applies the new limit
//! to the same count.

pub mod window;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dashmap::DashMap;

use crate::config::diag::Diags;
use crate::config::file::{RateLimitSection, RateUnit};
use crate::distributed::Cells;
use crate::distributed::cell::{Cell, Scope};
use crate::matching::{Facts, KeyPart, When, counter_key, describe_key};
use crate::resource::Kind;
use crate::wire::openai::Usage;
use window::Window;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measure {
    /// Model requests.
    Requests,
    Tokens,
    InputTokens,
    OutputTokens,
    ToolCalls,
    AgentCalls,
}

#[derive(Debug)]
pub struct RateRule {
    pub id: Arc<str>,
    pub when: When,
    pub key: Vec<KeyPart>,
    pub measure: Measure,
    pub span: Duration,
    pub limit: u64,
    /// `id@unit`: the counter key prefix, so changing a rule's unit starts a new count.
    pub key_prefix: Arc<str>,
    /// Most counters the rule keeps (`keyspace.rs`).
    pub max_keys: u64,
}

/// Token counts known at admission.
#[derive(Debug, Clone, Copy, Default)]
pub struct Estimate {
    pub prompt: u64,
    /// The most output the request allows (`max_tokens`, or the default allowance).
    pub max_output: u64,
}

/// A refusal: which rule, for which key, and when to come back.
#[derive(Debug)]
pub struct Refusal {
    pub rule: Arc<str>,
    pub key: String,
    pub limit: u64,
    pub unit: &'static str,
    /// `None`: this request alone is larger than the limit.
    pub retry_after: Option<Duration>,
}

pub fn build(sections: &[RateLimitSection], d: &mut Diags) -> Vec<RateRule> {
    let mut seen = std::collections::HashSet::new();
    sections
        .iter()
        .map(|s| {
            crate::matching::check_rule_id(&s.id, d);
            if !seen.insert(s.id.value.as_str()) {
                d.at(&s.id, format!("duplicate rate limit id `{}`", s.id.value), "give every rule its own id");
            }
            if s.limit == 0 {
                d.at(
                    &s.id,
                    "a rate limit of 0 refuses everything",
                    "remove the rule's models from the key instead, or set a positive limit",
                );
            }
            let (measure, span) = unit(s.unit);
            let unit_name =
                serde_json::to_value(s.unit).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
            RateRule {
                key_prefix: format!("{}@{unit_name}", s.id.value).into(),
                id: s.id.value.as_str().into(),
                when: When::from_section(&s.when),
                key: KeyPart::parse_all(&s.limit_by, d),
                measure,
                span,
                limit: s.limit,
                max_keys: s.max_keys.unwrap_or(crate::keyspace::DEFAULT_MAX_KEYS),
            }
        })
        .collect()
}

fn unit(u: RateUnit) -> (Measure, Duration) {
    use RateUnit::*;
    const M: Duration = Duration::from_secs(60);
    const H: Duration = Duration::from_secs(3600);
    const D: Duration = Duration::from_secs(86_400);
    match u {
        RequestsPerMinute => (Measure::Requests, M),
        RequestsPerHour => (Measure::Requests, H),
        RequestsPerDay => (Measure::Requests, D),
        TokensPerMinute => (Measure::Tokens, M),
        TokensPerHour => (Measure::Tokens, H),
        TokensPerDay => (Measure::Tokens, D),
        InputTokensPerMinute => (Measure::InputTokens, M),
        InputTokensPerHour => (Measure::InputTokens, H),
        InputTokensPerDay => (Measure::InputTokens, D),
        OutputTokensPerMinute => (Measure::OutputTokens, M),
        OutputTokensPerHour => (Measure::OutputTokens, H),
        OutputTokensPerDay => (Measure::OutputTokens, D),
        ToolCallsPerMinute => (Measure::ToolCalls, M),
        ToolCallsPerHour => (Measure::ToolCalls, H),
        ToolCallsPerDay => (Measure::ToolCalls, D),
        AgentCallsPerMinute => (Measure::AgentCalls, M),
        AgentCallsPerHour => (Measure::AgentCalls, H),
        AgentCallsPerDay => (Measure::AgentCalls, D),
    }
}

impl Measure {
    fn label(self) -> &'static str {
        match self {
            Measure::Requests => "requests",
            Measure::Tokens => "tokens",
            Measure::InputTokens => "input tokens",
            Measure::OutputTokens => "output tokens",
            Measure::ToolCalls => "tool calls",
            Measure::AgentCalls => "agent calls",
        }
    }

    /// Which kind of call a unit counts: requests and tokens are model
    /// units, tool and agent calls their own; a rule never counts another
    /// kind, whatever its `when` says.
    fn counts(self, kind: Kind) -> bool {
        match self {
            Measure::Requests | Measure::Tokens | Measure::InputTokens | Measure::OutputTokens => kind == Kind::Model,
            Measure::ToolCalls => kind == Kind::Mcp,
            Measure::AgentCalls => kind == Kind::A2a,
        }
    }

    /// Units that count calls, settled at admission (nothing to true up).
    fn per_call(self) -> bool {
        matches!(self, Measure::Requests | Measure::ToolCalls | Measure::AgentCalls)
    }

    fn reserve(self, e: &Estimate) -> u64 {
        match self {
            Measure::Requests | Measure::ToolCalls | Measure::AgentCalls => 1,
            Measure::Tokens => e.prompt + e.max_output,
            Measure::InputTokens => e.prompt,
            Measure::OutputTokens => e.max_output,
        }
    }

    fn actual(self, u: &Usage) -> u64 {
        match self {
            Measure::Requests | Measure::ToolCalls | Measure::AgentCalls => 1,
            Measure::Tokens => u.prompt_tokens + u.completion_tokens,
            Measure::InputTokens => u.prompt_tokens,
            Measure::OutputTokens => u.completion_tokens,
        }
    }
}

/// Every counter, by rule id and key. Kept across reloads.
#[derive(Debug, Clone, Default)]
pub struct Counters {
    map: Arc<DashMap<String, Arc<Window>>>,
    /// How many counters each rule holds, so values from requests cannot
    /// grow the map without bound.
    keys: Arc<crate::keyspace::Keyspace>,
    /// Distributed mode: the counts shared through Redis, checked after
    /// this instance's own window. Unset, nothing here is looked at.
    shared: Arc<std::sync::OnceLock<Arc<Cells>>>,
}

impl Counters {
    /// Shares every counter through `cells` from now on (at start-up).
    pub fn attach(&self, cells: Arc<Cells>) {
        let _ = self.shared.set(cells);
    }

    /// Takes from the shared count too, in distributed mode. On refusal:
    /// when to try again — the lease may be refilled by then.
    fn take_shared(
        &self,
        key: &str,
        rule: &RateRule,
        index: u64,
        amount: u64,
        now: u64,
    ) -> Result<Option<Arc<Cell>>, Option<Duration>> {
        let Some(cells) = self.shared.get() else { return Ok(None) };
        let span_ms = (rule.span.as_millis() as u64).max(1);
        let cell = cells.cell(key, Scope::Window { span_ms }, rule.limit);
        match cells.take(&cell, index, amount, rule.limit) {
            Ok(()) => Ok(Some(cell)),
            Err(_) => Err(Some(Duration::from_millis((span_ms - now % span_ms).clamp(1, 1000)))),
        }
    }

    /// The counter for `key`, created if new — unless the rule holds its
    /// `max_keys` counters, in which case the rule's overflow counter
    /// (returned with its key).
    fn window(&self, key: String, rule: &RateRule, now: u64) -> (String, Arc<Window>) {
        if let Some(w) = self.map.get(&key) {
            return (key, w.clone());
        }
        use crate::keyspace::{Admit, overflow_key};
        let (key, counted) = match self.keys.admit(&rule.key_prefix, rule.max_keys, || self.sweep(&rule.key_prefix, now)) {
            Admit::New => (key, true),
            Admit::Overflow => (overflow_key(&rule.key_prefix), false),
        };
        let mut made = false;
        let w = self
            .map
            .entry(key.clone())
            .or_insert_with(|| {
                made = true;
                Arc::new(Window::new(rule.span))
            })
            .clone();
        if counted && !made {
            // Another request made the same new key first; it counted it.
            self.keys.removed(&rule.key_prefix, 1);
        }
        (key, w)
    }

    /// Removes the rule's counters that count nothing any more and that no
    /// request in flight holds; returns how many.
    fn sweep(&self, prefix: &str, now: u64) -> u64 {
        let (mut removed, mut gone) = (0, Vec::new());
        self.map.retain(|k, w| {
            // The overflow key has no `|`, so its prefix is itself: never swept.
            let idle = crate::keyspace::prefix_of(k) == prefix && Arc::strong_count(w) == 1 && w.used(now) == 0;
            removed += idle as u64;
            if idle && self.shared.get().is_some() {
                gone.push(k.clone());
            }
            !idle
        });
        // The shared cells of removed keys go too, once the map's locks are released.
        if let Some(cells) = self.shared.get() {
            for k in gone {
                cells.forget(&k);
            }
        }
        removed
    }

    /// How many counters a rule holds (its overflow counter not included).
    pub fn keys(&self, rule: &RateRule) -> u64 {
        self.keys.keys(&rule.key_prefix)
    }

    /// Current use of every counter: (key, used), for the admin API.
    pub fn snapshot(&self) -> Vec<(String, u64)> {
        let now = now_ms();
        let mut v: Vec<(String, u64)> = self.map.iter().map(|e| (describe_key(e.key()), e.value().used(now))).collect();
        v.sort();
        v
    }
}

pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// What one rule took from one counter for one request. Settles to the
/// real usage; dropped unsettled (an error, a cancelled call), it gives
/// back any tokens it reserved, so a reservation can never leak.
pub struct RateHold {
    window: Arc<Window>,
    measure: Measure,
    index: u64,
    reserved: u64,
    settled: bool,
    /// The shared count taken from too (distributed mode).
    shared: Option<Arc<Cell>>,
}

impl RateHold {
    pub fn settle(&mut self, usage: Option<&Usage>) {
        if std::mem::replace(&mut self.settled, true) || self.measure.per_call() {
            return;
        }
        let actual = usage.map_or(0, |u| self.measure.actual(u));
        let delta = actual as i64 - self.reserved as i64;
        if delta != 0 {
            self.window.adjust(self.index, delta, now_ms());
            match &self.shared {
                Some(c) if delta < 0 => c.give(self.index, delta.unsigned_abs()),
                Some(c) => c.charge(self.index, delta as u64),
                None => {}
            }
        }
    }

    /// Gives back the whole take: a refused request costs no quota.
    fn undo(mut self, now: u64) {
        self.window.adjust(self.index, -(self.reserved as i64), now);
        if let Some(c) = &self.shared {
            c.give(self.index, self.reserved);
        }
        self.settled = true;
    }
}

impl Drop for RateHold {
    fn drop(&mut self) {
        self.settle(None);
    }
}

/// Admits a request against every matching rule, or refuses it with the
/// first rule it would exceed (undoing what earlier rules took).
pub fn admit(
    rules: &[RateRule],
    counters: &Counters,
    facts: &Facts<'_>,
    est: &Estimate,
) -> Result<Vec<RateHold>, Refusal> {
    let mut holds = Vec::new();
    let now = now_ms();
    let kind = facts.called.kind();
    for rule in rules.iter().filter(|r| r.measure.counts(kind) && r.when.matches_facts(facts)) {
        let key = counter_key(&rule.key_prefix, &rule.key, facts);
        let (key, window) = counters.window(key, rule, now);
        let amount = rule.measure.reserve(est);
        // This instance's own window first; in distributed mode also the
        // shared count (a refusal there gives the local take back).
        let taken = window.try_take(amount, rule.limit, now).and_then(|index| {
            counters.take_shared(&key, rule, index, amount, now).map(|shared| (index, shared)).inspect_err(|_| {
                window.adjust(index, -(amount as i64), now);
            })
        });
        match taken {
            Ok((index, shared)) => holds.push(RateHold {
                window,
                measure: rule.measure,
                index,
                reserved: amount,
                settled: false,
                shared,
            }),
            Err(retry_after) => {
                // Undo earlier takes of this request: a refused request costs no quota.
                for h in holds {
                    h.undo(now);
                }
                return Err(Refusal {
                    rule: rule.id.clone(),
                    key: describe_key(&key),
                    limit: rule.limit,
                    unit: rule.measure.label(),
                    retry_after,
                });
            }
        }
    }
    Ok(holds)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(max_keys: u64) -> RateRule {
        RateRule {
            id: "r".into(),
            when: When::default(),
            key: Vec::new(),
            measure: Measure::Requests,
            span: Duration::from_secs(60),
            limit: 10,
            key_prefix: "r@requests_per_minute".into(),
            max_keys,
        }
    }

    #[test]
    fn a_full_rule_reuses_counters_that_count_nothing_any_more() {
        let (c, r) = (Counters::default(), rule(2));
        let t0 = 1_000_000;
        for k in ["a", "b"] {
            let (key, w) = c.window(format!("r@requests_per_minute|{k}"), &r, t0);
            assert!(!key.contains('#'));
            w.try_take(1, 10, t0).unwrap();
        }
        // Full, and both counters still count: a third value overflows.
        let (key, _) = c.window("r@requests_per_minute|c".into(), &r, t0);
        assert_eq!(key, "r@requests_per_minute#overflow");
        // Two minutes later nothing counts any more: the next sweep (at
        // most one a second per rule) frees both.
        std::thread::sleep(Duration::from_millis(1_050));
        let later = t0 + 120_000;
        let (key, _) = c.window("r@requests_per_minute|d".into(), &r, later);
        assert_eq!(key, "r@requests_per_minute|d");
        assert_eq!(c.keys(&r), 1);
        let keys: Vec<String> = c.snapshot().into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, vec!["r@requests_per_minute#overflow", "r@requests_per_minute|d"]);
    }

    #[test]
    fn requests_racing_to_make_the_same_key_count_it_once() {
        let (c, r) = (Arc::new(Counters::default()), Arc::new(rule(100_000)));
        let start = Arc::new(std::sync::Barrier::new(4));
        std::thread::scope(|s| {
            for _ in 0..4 {
                let (c, r, start) = (c.clone(), r.clone(), start.clone());
                s.spawn(move || {
                    start.wait();
                    for k in 0..5_000 {
                        let (key, _) = c.window(format!("r@requests_per_minute|{k}"), &r, 0);
                        assert!(!key.contains('#'));
                    }
                });
            }
        });
        assert_eq!(c.keys(&r), 5_000);
        assert_eq!(c.snapshot().len(), 5_000);
    }

    #[test]
    fn a_counter_a_request_still_holds_is_never_swept() {
        let (c, r) = (Counters::default(), rule(1));
        let (_, held) = c.window("r@requests_per_minute|a".into(), &r, 0);
        let (key, _) = c.window("r@requests_per_minute|b".into(), &r, 10_000_000);
        assert_eq!(key, "r@requests_per_minute#overflow", "`a` is held, so it stays");
        drop(held);
    }
}
