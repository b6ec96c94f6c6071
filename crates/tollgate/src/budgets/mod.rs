//! Budgets (stage 6 reserve, stage 12 settle). Every matching rule reserves
//! the worst case of the request at admission — the prompt estimate at the
//! input price plus the whole output allowance at the output price — and
//! refuses it if spent + reserved + worst case would pass the limit. The
//! reservation settles to the real cost when usage is known. So however
//! many requests run at once, spend cannot pass the limit unless requests
//! cost more than their worst case: when a provider reports more output
//! than the allowance, or more prompt tokens than the estimate (four bytes
//! a token; images referenced by URL are not counted). The overshoot is at
//! most that excess summed over the requests in flight.
//!
//! Money is integer nano-dollars. Accounts live in memory outside the config
//! snapshot (`Ledger`); `export`/`import` let a store persist them.

pub mod period;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use dashmap::DashMap;

use crate::config::diag::Diags;
use crate::config::file::{BudgetMode, BudgetSection, BudgetUnit};
use crate::distributed::Cells;
use crate::distributed::cell::{Cell, Scope};
use crate::limits::Estimate;
use crate::matching::{Facts, KeyPart, When, counter_key, describe_key};
use crate::pricing::{Price, nanos_to_usd, usd_to_nanos};
use crate::wire::openai::Usage;
use period::Period;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measure {
    /// Nano-dollars.
    Cost,
    Tokens,
}

#[derive(Debug)]
pub struct BudgetRule {
    pub id: Arc<str>,
    pub when: When,
    pub key: Vec<KeyPart>,
    pub measure: Measure,
    pub period: Period,
    /// Nano-dollars or tokens.
    pub limit: u64,
    pub mode: BudgetMode,
    pub alert_at: Vec<f64>,
    /// `id@unit`: the account key prefix, so changing a budget's unit starts a new account.
    pub key_prefix: Arc<str>,
    /// Most accounts the budget keeps (`keyspace.rs`).
    pub max_keys: u64,
}

pub fn build(sections: &[BudgetSection], d: &mut Diags) -> Vec<Arc<BudgetRule>> {
    let mut seen = std::collections::HashSet::new();
    sections
        .iter()
        .map(|s| {
            crate::matching::check_rule_id(&s.id, d);
            if !seen.insert(s.id.value.as_str()) {
                d.at(&s.id, format!("duplicate budget id `{}`", s.id.value), "give every budget its own id");
            }
            if !s.limit.is_finite() || s.limit < 0.0 {
                d.at(&s.id, "a budget limit must be zero or more", "USD for cost units, tokens for token units");
            }
            if s.alert_at.len() > 16 || s.alert_at.iter().any(|a| !(a.is_finite() && *a > 0.0 && *a <= 10.0)) {
                d.at(
                    &s.id,
                    "alert_at takes up to 16 fractions of the limit, each above 0 and at most 10",
                    "e.g. alert_at: [0.5, 0.8, 1.0]",
                );
            }
            use BudgetUnit::*;
            let (measure, period) = match s.unit {
                CostPerDay => (Measure::Cost, Period::Day),
                CostPerWeek => (Measure::Cost, Period::Week),
                CostPerMonth => (Measure::Cost, Period::Month),
                CostTotal => (Measure::Cost, Period::Total),
                TokensPerDay => (Measure::Tokens, Period::Day),
                TokensPerWeek => (Measure::Tokens, Period::Week),
                TokensPerMonth => (Measure::Tokens, Period::Month),
                TokensTotal => (Measure::Tokens, Period::Total),
            };
            let limit = match measure {
                Measure::Cost => usd_to_nanos(s.limit),
                Measure::Tokens => s.limit.max(0.0).round() as u64,
            };
            let mut alert_at = s.alert_at.clone();
            alert_at.truncate(16);
            let unit_name =
                serde_json::to_value(s.unit).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
            Arc::new(BudgetRule {
                key_prefix: format!("{}@{unit_name}", s.id.value).into(),
                id: s.id.value.as_str().into(),
                when: When::from_section(&s.when),
                key: KeyPart::parse_all(&s.limit_by, d),
                measure,
                period,
                limit,
                mode: s.mode,
                alert_at,
                max_keys: s.max_keys.unwrap_or(crate::keyspace::DEFAULT_MAX_KEYS),
            })
        })
        .collect()
}

#[derive(Debug, Default)]
struct AccountState {
    period: u64,
    spent: u64,
    reserved: u64,
    /// Bit i set: `alert_at[i]` has fired this period.
    /// Bit 31: "spend passed the limit" was reported (warn mode).
    alerted: u32,
}

#[derive(Debug, Default)]
pub struct Account {
    state: Mutex<AccountState>,
}

impl Account {
    fn lock(&self) -> std::sync::MutexGuard<'_, AccountState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// An alert or warning raised by a budget.
#[derive(Debug, Clone, PartialEq)]
pub struct BudgetEvent {
    pub kind: &'static str,
    pub rule: String,
    pub key: String,
    pub threshold: f64,
    pub spent: u64,
    pub limit: u64,
    pub unix_secs: u64,
}

/// Every account, by rule id and key, plus recent events. Kept across reloads.
#[derive(Debug, Clone, Default)]
pub struct Ledger {
    accounts: Arc<DashMap<String, Arc<Account>>>,
    /// How many accounts each budget holds (values come from requests).
    keys: Arc<crate::keyspace::Keyspace>,
    events: Arc<Mutex<VecDeque<BudgetEvent>>>,
    bus: crate::events::EventBus,
    /// Distributed mode: accounts shared through Redis (`distributed/`).
    shared: Arc<std::sync::OnceLock<Arc<Cells>>>,
}

/// One account's persisted state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountRow {
    pub key: String,
    pub period: u64,
    pub spent: u64,
    /// Which alerts have fired this period (so a restart does not repeat them).
    pub alerted: u32,
    /// Reserved by requests in flight (not persisted).
    pub reserved: u64,
}

impl Ledger {
    /// A ledger whose events also go to `bus` (webhooks).
    pub fn with_events(bus: crate::events::EventBus) -> Ledger {
        Ledger { bus, ..Default::default() }
    }

    /// An account loaded from the store or looked up by key, not bounded.
    fn account(&self, key: &str) -> Arc<Account> {
        if let Some(a) = self.accounts.get(key) {
            return a.clone();
        }
        let mut fresh = false;
        // The entry's shard lock ends with this statement, before the
        // keyspace lock is taken (admission takes them the other way round).
        let a = self
            .accounts
            .entry(key.to_string())
            .or_insert_with(|| {
                fresh = true;
                Arc::default()
            })
            .clone();
        if fresh {
            self.keys.loaded(crate::keyspace::prefix_of(key));
        }
        a
    }

    /// The account for `key` at admission: a new one only while the
    /// budget holds fewer than `max_keys`, else its overflow account.
    fn account_for(&self, key: String, rule: &BudgetRule, period: u64) -> (String, Arc<Account>) {
        if let Some(a) = self.accounts.get(&key) {
            return (key, a.clone());
        }
        use crate::keyspace::{Admit, overflow_key};
        let (key, counted) = match self.keys.admit(&rule.key_prefix, rule.max_keys, || self.sweep(&rule.key_prefix, period)) {
            Admit::New => (key, true),
            Admit::Overflow => (overflow_key(&rule.key_prefix), false),
        };
        let mut made = false;
        let a = self
            .accounts
            .entry(key.clone())
            .or_insert_with(|| {
                made = true;
                Arc::default()
            })
            .clone();
        if counted && !made {
            // Another request made the same new account first; it counted it.
            self.keys.removed(&rule.key_prefix, 1);
        }
        (key, a)
    }

    /// Removes the budget's accounts that hold nothing for the current
    /// period (an earlier period's spend, or none) and that no request
    /// holds; returns how many. Spend of the current period is never
    /// forgotten: that would let it be spent again.
    fn sweep(&self, prefix: &str, period: u64) -> u64 {
        let (mut removed, mut gone) = (0, Vec::new());
        self.accounts.retain(|k, a| {
            let idle = crate::keyspace::prefix_of(k) == prefix && Arc::strong_count(a) == 1 && {
                let s = a.lock();
                s.reserved == 0 && (s.period != period || s.spent == 0)
            };
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

    /// How many accounts a budget holds (its overflow account not included).
    pub fn keys(&self, rule: &BudgetRule) -> u64 {
        self.keys.keys(&rule.key_prefix)
    }

    /// Shares every account through `cells` from now on (at start-up,
    /// after the store's spend was imported).
    pub fn attach(&self, cells: Arc<Cells>) {
        let _ = self.shared.set(cells);
    }

    /// The spend every instance together has settled, as last synced.
    fn shared_spent(&self, key: &str, period: u64) -> Option<u64> {
        self.shared.get()?.get(key)?.shared_spent(period)
    }

    /// Every account's spend, for persistence and the admin API. In
    /// distributed mode, the spend of all instances.
    pub fn export(&self) -> Vec<AccountRow> {
        let mut rows: Vec<AccountRow> = self
            .accounts
            .iter()
            .map(|e| {
                let mut row = {
                    let s = e.value().lock();
                    AccountRow {
                        key: e.key().clone(),
                        period: s.period,
                        spent: s.spent,
                        alerted: s.alerted,
                        reserved: s.reserved,
                    }
                };
                // After the account's lock is released: locks are never nested.
                row.spent = row.spent.max(self.shared_spent(e.key(), row.period).unwrap_or(0));
                row
            })
            .collect();
        rows.sort_by(|a, b| a.key.cmp(&b.key));
        rows
    }

    /// Restores persisted spend (at start-up, before serving).
    pub fn import(&self, rows: impl IntoIterator<Item = AccountRow>) {
        for r in rows {
            let a = self.account(&r.key);
            let mut s = a.lock();
            s.period = r.period;
            s.spent = r.spent;
            s.alerted = r.alerted;
        }
    }

    pub fn events(&self) -> Vec<BudgetEvent> {
        self.events.lock().unwrap_or_else(|p| p.into_inner()).iter().cloned().collect()
    }

    fn emit(&self, e: BudgetEvent) {
        tracing::warn!(
            event = e.kind, rule = %e.rule, key = %e.key, threshold = e.threshold,
            spent = e.spent, limit = e.limit, "budget"
        );
        self.bus.publish(crate::events::Event {
            kind: e.kind,
            id: crate::events::new_id(),
            time: period::format_utc(e.unix_secs),
            data: serde_json::json!({
                "rule": e.rule, "key": e.key, "threshold": e.threshold, "spent": e.spent, "limit": e.limit,
            }),
        });
        let mut q = self.events.lock().unwrap_or_else(|p| p.into_inner());
        if q.len() >= 1000 {
            q.pop_front();
        }
        q.push_back(e);
    }
}

/// Why a budget refused a request.
#[derive(Debug)]
pub struct Refusal {
    pub rule: Arc<str>,
    pub key: String,
    pub spent: u64,
    /// Held by requests in flight.
    pub reserved: u64,
    /// This request's worst case.
    pub request: u64,
    pub limit: u64,
    pub measure: Measure,
    /// Unix seconds at which the period resets (`None`: a total budget).
    pub resets_at: Option<u64>,
}

impl Refusal {
    pub fn describe(&self) -> String {
        let fmt = |n: u64| match self.measure {
            Measure::Cost => format!("${:.6}", nanos_to_usd(n)),
            Measure::Tokens => format!("{n} tokens"),
        };
        if self.request > self.limit {
            return format!(
                "budget `{}` ({}) is {}, less than this request may cost ({}); lower max_tokens or raise the budget",
                self.rule,
                self.key,
                fmt(self.limit),
                fmt(self.request)
            );
        }
        format!(
            "budget `{}` ({}) would be exceeded: {} spent + {} held by requests in flight + up to {} for this request > {}",
            self.rule,
            self.key,
            fmt(self.spent),
            fmt(self.reserved),
            fmt(self.request),
            fmt(self.limit)
        )
    }

    /// Whether waiting for the period to reset can help.
    pub fn can_fit(&self) -> bool {
        self.request <= self.limit
    }
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// One rule's reservation for one request. Settles to the real usage;
/// dropped unsettled, it releases the reservation (charging only what
/// `deliver` recorded), so a reservation can never leak.
pub struct BudgetHold {
    ledger: Ledger,
    account: Arc<Account>,
    rule: Arc<BudgetRule>,
    key: String,
    period: u64,
    reserved: u64,
    price: Option<Price>,
    settled: bool,
    /// The shared account taken from too (distributed mode).
    shared: Option<Arc<Cell>>,
}

impl BudgetHold {
    fn amount(&self, usage: &Usage) -> u64 {
        match self.rule.measure {
            Measure::Cost => self.price.map_or(0, |p| p.cost(usage)),
            Measure::Tokens => usage.prompt_tokens + usage.completion_tokens,
        }
    }

    /// Charges `usage` (or nothing) at `price` — the price of the model that
    /// answered, when known — and releases the reservation.
    pub fn settle_at(&mut self, usage: Option<&Usage>, price: Option<Price>) {
        if price.is_some() {
            self.price = price;
        }
        self.settle(usage);
    }

    /// Charges `usage` (or nothing) and releases the reservation.
    pub fn settle(&mut self, usage: Option<&Usage>) {
        if std::mem::replace(&mut self.settled, true) {
            return;
        }
        let actual = usage.map_or(0, |u| self.amount(u));
        let current = self.rule.period.id(now_secs());
        if let Some(c) = &self.shared {
            if actual < self.reserved {
                c.give(self.period, self.reserved - actual);
            } else {
                c.charge(current, actual - self.reserved);
            }
            c.spend(actual);
        }
        let global = self.ledger.shared_spent(&self.key, current);
        let (spent, fire) = {
            let mut s = self.account.lock();
            if s.period == self.period {
                s.reserved = s.reserved.saturating_sub(self.reserved);
            }
            if s.period != current {
                *s = AccountState { period: current, ..Default::default() };
            }
            s.spent = s.spent.saturating_add(actual).max(global.unwrap_or(0));
            let fire = crossed(&self.rule, &mut s);
            (s.spent, fire)
        };
        for threshold in fire {
            self.ledger.emit(BudgetEvent {
                kind: "budget_threshold",
                rule: self.rule.id.to_string(),
                key: describe_key(&self.key),
                threshold,
                spent,
                limit: self.rule.limit,
                unix_secs: now_secs(),
            });
        }
    }
}

impl Drop for BudgetHold {
    fn drop(&mut self) {
        self.settle(None);
    }
}

/// Thresholds newly crossed by the current spend (each fires once a period).
fn crossed(rule: &BudgetRule, s: &mut AccountState) -> Vec<f64> {
    let mut out = Vec::new();
    if rule.limit == 0 {
        return out;
    }
    let frac = s.spent as f64 / rule.limit as f64;
    for (i, t) in rule.alert_at.iter().enumerate() {
        if frac >= *t && s.alerted & (1 << i) == 0 {
            s.alerted |= 1 << i;
            out.push(*t);
        }
    }
    out
}

/// Reserves the worst case of a request against every matching budget, or
/// refuses it with the first enforced budget it would exceed. Budgets count
/// model spend (cost and tokens): tool and agent calls carry neither and
/// are never held by one.
pub fn admit(
    rules: &[Arc<BudgetRule>],
    ledger: &Ledger,
    facts: &Facts<'_>,
    est: &Estimate,
    price: Option<Price>,
) -> Result<Vec<BudgetHold>, Refusal> {
    let mut holds = Vec::new();
    if facts.called.kind() != crate::resource::Kind::Model {
        return Ok(holds);
    }
    let now = now_secs();
    for rule in rules.iter().filter(|r| r.when.matches_facts(facts)) {
        let period = rule.period.id(now);
        let (key, account) = ledger.account_for(counter_key(&rule.key_prefix, &rule.key, facts), rule, period);
        let worst = match rule.measure {
            Measure::Cost => price.map_or(0, |p| p.worst_case(est.prompt, est.max_output)),
            Measure::Tokens => est.prompt + est.max_output,
        };
        let global = ledger.shared_spent(&key, period);
        let mut warn = None;
        {
            let mut s = account.lock();
            if s.period != period {
                *s = AccountState { period, ..Default::default() };
            }
            // What other instances spent counts here too (distributed mode).
            s.spent = s.spent.max(global.unwrap_or(0));
            let would = s.spent.saturating_add(s.reserved).saturating_add(worst);
            if would > rule.limit {
                match rule.mode {
                    BudgetMode::Enforce => {
                        return Err(Refusal {
                            rule: rule.id.clone(),
                            key: describe_key(&key),
                            spent: s.spent,
                            reserved: s.reserved,
                            request: worst,
                            limit: rule.limit,
                            measure: rule.measure,
                            resets_at: rule.period.end(period),
                        });
                    }
                    BudgetMode::Warn if s.alerted & (1 << 31) == 0 => {
                        s.alerted |= 1 << 31;
                        warn = Some(s.spent);
                    }
                    BudgetMode::Warn => {}
                }
            }
            s.reserved += worst;
        }
        let shared = take_shared(ledger, rule, &key, &account, period, worst)?;
        if let Some(spent) = warn {
            ledger.emit(BudgetEvent {
                kind: "budget_exceeded_warn",
                rule: rule.id.to_string(),
                key: describe_key(&key),
                threshold: 1.0,
                spent,
                limit: rule.limit,
                unix_secs: now,
            });
        }
        holds.push(BudgetHold {
            ledger: ledger.clone(),
            account,
            rule: rule.clone(),
            key,
            period,
            reserved: worst,
            price,
            settled: false,
            shared,
        });
    }
    Ok(holds)
}

/// In distributed mode, takes the worst case from the shared account too:
/// an enforced budget refuses when the shared account has no room (the
/// local reservation is given back); a warning budget only counts.
fn take_shared(
    ledger: &Ledger,
    rule: &Arc<BudgetRule>,
    key: &str,
    account: &Account,
    period: u64,
    worst: u64,
) -> Result<Option<Arc<Cell>>, Refusal> {
    let Some(cells) = ledger.shared.get() else { return Ok(None) };
    const DAY_MS: u64 = 86_400_000;
    let ttl_ms = match rule.period {
        period::Period::Day => 3 * DAY_MS,
        period::Period::Week => 15 * DAY_MS,
        period::Period::Month => 63 * DAY_MS,
        period::Period::Total => 0,
    };
    // Redis starts from the spend the store had if it has no count (first
    // use, or a Redis that lost its data).
    // Read before: no account lock is taken while the cell map is locked.
    let spent = account.lock().spent;
    let cell = cells.cell_made(key, Scope::Period { ttl_ms }, rule.limit, |c| c.seed(period, spent));
    if rule.mode == BudgetMode::Warn {
        cell.charge(period, worst);
        return Ok(Some(cell));
    }
    match cells.take(&cell, period, worst, rule.limit) {
        Ok(()) => Ok(Some(cell)),
        Err(r) => {
            let mut s = account.lock();
            if s.period == period {
                s.reserved = s.reserved.saturating_sub(worst);
            }
            Err(Refusal {
                rule: rule.id.clone(),
                key: describe_key(key),
                spent: s.spent,
                reserved: r.known.saturating_sub(s.spent),
                request: worst,
                limit: rule.limit,
                measure: rule.measure,
                resets_at: rule.period.end(period),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn rule(limit_usd: f64, mode: BudgetMode) -> Arc<BudgetRule> {
        Arc::new(BudgetRule {
            id: "b".into(),
            when: When::default(),
            key: vec![KeyPart::Team],
            measure: Measure::Cost,
            period: Period::Day,
            limit: usd_to_nanos(limit_usd),
            mode,
            alert_at: vec![0.5, 1.0],
            key_prefix: "b@cost_per_day".into(),
            max_keys: 2,
        })
    }

    fn facts(md: &BTreeMap<String, String>) -> Facts<'_> {
        Facts {
            called: crate::resource::Called::Model { requested: "m", resolved: "p/m" },
            principal: None,
            metadata: md,
        }
    }

    #[test]
    fn reservations_bound_concurrent_spend_and_settle_to_real_cost() {
        let ledger = Ledger::default();
        let rules = vec![rule(1.0, BudgetMode::Enforce)];
        let md = BTreeMap::from([("team".to_string(), "a".to_string())]);
        let price = Some(Price::from_usd_per_mtok(1.0, 1.0)); // 1000 nanos per token
        let est = Estimate { prompt: 100_000, max_output: 100_000 }; // worst case $0.20
        let held: Vec<_> = (0..5).map(|_| admit(&rules, &ledger, &facts(&md), &est, price).unwrap()).collect();
        let Err(refused) = admit(&rules, &ledger, &facts(&md), &est, price) else {
            panic!("a sixth $0.20 must not fit in $1")
        };
        assert!(refused.describe().contains("budget `b`"));
        // Settling at half the worst case frees room.
        for mut hs in held {
            for h in &mut hs {
                h.settle(Some(&Usage { prompt_tokens: 50_000, completion_tokens: 50_000, ..Default::default() }));
            }
        }
        assert_eq!(ledger.export()[0].spent, usd_to_nanos(0.5));
        let events = ledger.events();
        assert_eq!(events.len(), 1, "the 50% alert fired once: {events:?}");
        let more = admit(&rules, &ledger, &facts(&md), &est, price).unwrap();
        drop(more); // released unsettled: nothing charged, nothing leaked
        assert_eq!(ledger.export()[0].spent, usd_to_nanos(0.5));
        for _ in 0..2 {
            let _ = admit(&rules, &ledger, &facts(&md), &est, price).unwrap();
        }
    }

    #[test]
    fn warn_mode_lets_through_and_reports_once() {
        let ledger = Ledger::default();
        let rules = vec![rule(0.0, BudgetMode::Warn)];
        let md = BTreeMap::new();
        let price = Some(Price::from_usd_per_mtok(1.0, 1.0));
        let est = Estimate { prompt: 10, max_output: 10 };
        for _ in 0..3 {
            admit(&rules, &ledger, &facts(&md), &est, price).unwrap();
        }
        assert_eq!(ledger.events().iter().filter(|e| e.kind == "budget_exceeded_warn").count(), 1);
    }

    #[test]
    fn a_full_budget_forgets_only_accounts_with_nothing_spent_this_period() {
        let ledger = Ledger::default();
        let r = rule(1.0, BudgetMode::Enforce);
        let today = r.period.id(now_secs());
        let spend = |ledger: &Ledger, team: &str| {
            let md = BTreeMap::from([("team".to_string(), team.to_string())]);
            let est = Estimate { prompt: 10, max_output: 10 };
            let mut hs = admit(std::slice::from_ref(&r), ledger, &facts(&md), &est, Some(Price::from_usd_per_mtok(1.0, 1.0))).unwrap();
            hs[0].settle(Some(&Usage { prompt_tokens: 10, completion_tokens: 10, ..Default::default() }));
            hs[0].key.clone()
        };
        assert_eq!(spend(&ledger, "a"), "b@cost_per_day|a");
        assert_eq!(spend(&ledger, "b"), "b@cost_per_day|b");
        // Both spent today: the third team shares the overflow account.
        assert_eq!(spend(&ledger, "c"), "b@cost_per_day#overflow");
        // An account from an earlier period holds nothing that still counts.
        ledger.accounts.get("b@cost_per_day|a").unwrap().lock().period = today - 1;
        std::thread::sleep(std::time::Duration::from_millis(1_050)); // one sweep a second
        assert_eq!(spend(&ledger, "d"), "b@cost_per_day|d");
        let keys: Vec<String> = ledger.export().into_iter().map(|a| a.key).collect();
        assert_eq!(keys, vec!["b@cost_per_day#overflow", "b@cost_per_day|b", "b@cost_per_day|d"]);
    }
}
