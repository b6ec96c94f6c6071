//! One shared counter as this instance sees it: a lease of headroom taken
//! from Redis, what was used beyond it, and budget spend not yet sent.
//! No I/O: the request path changes a cell under its own short lock; the
//! sync task (`sync.rs`) takes a batch out, sends it, and puts the answer
//! back. So no request ever waits on Redis.
//!
//! The rules that bound overshoot (derived in docs/distributed.md):
//! - a lease is `lease × limit` (at least 1, and at least the largest take
//!   seen in the window, so a request larger than a lease still fits one);
//! - a take comes out of the lease; past it, an instance may *borrow* —
//!   admit without a grant, recording the amount as debt that the next sync
//!   adds to the shared count — while its unsent debt stays within one lease;
//! - once Redis has answered that the shared count is at the limit
//!   (`exhausted`), nothing more is borrowed until a later refill grants
//!   something again.
//!
//! So each instance admits at most one lease beyond what Redis granted it,
//! and the shared count passes the limit by at most that per instance.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// What counts: a sliding window (rate limits: the previous window weighs
/// in by overlap) or a period (budgets: day, week, month, all time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Window {
        span_ms: u64,
    },
    /// Redis keeps a period's counts this long after their last change (0: always).
    Period {
        ttl_ms: u64,
    },
}

#[derive(Debug)]
pub struct Cell {
    /// The counter key as the domain names it (`rule@unit|values`).
    pub key: String,
    pub scope: Scope,
    /// The rule's limit as last seen (a reload may change it).
    limit: AtomicU64,
    lease_fraction_ppm: u64,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Window or period index the fields below belong to.
    index: u64,
    /// Granted by Redis, not used yet.
    lease: u64,
    /// Used beyond the lease, not sent yet.
    debt: u64,
    /// Budget spend settled here, not sent yet.
    spent: u64,
    /// The shared count (sliding total for a window) at the last sync.
    known: u64,
    /// The shared spend at the last sync (budgets).
    known_spent: u64,
    /// Redis said the count is at the limit; no borrowing until a grant.
    exhausted: bool,
    /// A take wants the lease refilled at the next sync.
    want_refill: bool,
    /// A batch sent (or failed) and not yet answered: retried as it was,
    /// under the same token, so Redis applies it exactly once.
    inflight: Option<Batch>,
    /// The store's spend at start-up: where Redis starts when it has no
    /// count (first use, or a Redis that lost its data).
    seed: u64,
    /// The largest take in this window: a lease is never smaller, or a
    /// request larger than a lease could only ever borrow.
    max_take: u64,
    /// Taken since the last batch: a busy instance asks for more (up to
    /// `MAX_LEASES` leases), so a burst is not refused for want of a grant.
    taken: u64,
    /// The last grant: the next is asked for when half of it is used, so
    /// a larger grant is refilled as early, relative to its size.
    last_grant: u64,
}

/// The most leases one refill asks for.
pub const MAX_LEASES: u64 = 4;

/// What one sync sends for one cell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// Unique per batch; Redis remembers it so a retry is not applied twice.
    pub token: u64,
    pub index: u64,
    /// Units to add to the shared count (debt), and to its spend.
    pub debt: u64,
    pub spent: u64,
    /// Lease wanted (0: none).
    pub want: u64,
    pub limit: u64,
    /// Where Redis starts the count and the spend if it has none: what this
    /// instance last knew of them (sent debt and spend included, unsent not).
    pub seed_count: u64,
    pub seed_spent: u64,
}

/// Redis's answer to a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reply {
    pub granted: u64,
    /// The shared count after the batch.
    pub total: u64,
    /// The shared spend after the batch.
    pub spent: u64,
}

/// Why a take was refused: the shared count is (as far as this instance
/// knows) at the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    pub known: u64,
    /// A lease is wanted now (the sync task should not wait for its tick).
    pub wake: bool,
}

/// How a take is decided while Redis cannot be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Shared,
    /// Fail-open: admit (the local counters still hold each instance to
    /// the limit); the amount is sent when Redis is back.
    LocalOnly,
    /// Fail-closed: refuse.
    Closed,
}

impl Cell {
    pub fn new(key: String, scope: Scope, limit: u64, lease_fraction: f64) -> Cell {
        Cell {
            key,
            scope,
            limit: AtomicU64::new(limit),
            lease_fraction_ppm: (lease_fraction * 1e6).round() as u64,
            state: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Nothing here waits to be sent to Redis: the cell can be forgotten.
    pub fn settled(&self) -> bool {
        let s = self.lock();
        s.debt == 0 && s.spent == 0 && s.inflight.is_none()
    }

    /// One lease: the configured share of the limit, at least 1.
    pub fn lease_size(&self) -> u64 {
        let limit = self.limit.load(Ordering::Relaxed);
        (limit.saturating_mul(self.lease_fraction_ppm) / 1_000_000).max(1)
    }

    /// Takes `amount` in window/period `index`. `Ok(true)` asks the caller
    /// to wake the sync task (a lease is wanted now).
    pub fn take(&self, index: u64, amount: u64, limit: u64, mode: Mode) -> Result<bool, Refused> {
        self.limit.store(limit, Ordering::Relaxed);
        let mut s = self.lock();
        s.roll(index);
        s.max_take = s.max_take.max(amount);
        s.taken += amount;
        let lease_size = self.lease_size().max(s.max_take);
        match mode {
            Mode::Closed => return Err(Refused { known: s.known, wake: false }),
            Mode::LocalOnly => {
                s.debt += amount;
                return Ok(false);
            }
            Mode::Shared => {}
        }
        if s.lease >= amount {
            s.lease -= amount;
            let low = s.lease < lease_size.max(s.last_grant).div_ceil(2);
            let wake = low && !s.want_refill && !s.exhausted;
            s.want_refill |= low;
            return Ok(wake);
        }
        let need = amount - s.lease;
        let wake = !s.want_refill && !s.exhausted;
        s.want_refill = true;
        // Debt already on its way to Redis counts too: it is not in the
        // shared count until Redis answers.
        let unanswered = s.debt + s.inflight.as_ref().map_or(0, |b| b.debt);
        if !s.exhausted && unanswered + need <= lease_size {
            s.lease = 0;
            s.debt += need;
            return Ok(wake);
        }
        Err(Refused { known: s.known, wake })
    }

    /// Gives back part of an earlier take in `index` (a refusal by a later
    /// rule, or usage below the estimate): it pays debt first, then returns
    /// to the lease. A take from a window or period that has rolled is
    /// not given back.
    pub fn give(&self, index: u64, amount: u64) {
        let mut s = self.lock();
        if s.index != index {
            return;
        }
        let paid = amount.min(s.debt);
        s.debt -= paid;
        s.lease += amount - paid;
    }

    /// Charges more than was taken (usage above the estimate): out of the
    /// lease, the rest as debt — always admitted, the work is done.
    pub fn charge(&self, index: u64, amount: u64) {
        let mut s = self.lock();
        s.roll(index);
        let from_lease = amount.min(s.lease);
        s.lease -= from_lease;
        s.debt += amount - from_lease;
    }

    /// Records settled budget spend, sent with the next sync.
    pub fn spend(&self, amount: u64) {
        if amount > 0 {
            self.lock().spent += amount;
        }
    }

    /// The shared spend as known here: the last sync's answer plus what
    /// settled since (budgets; for the admin API and the store).
    pub fn shared_spent(&self, index: u64) -> Option<u64> {
        let s = self.lock();
        let unsent = s.spent + s.inflight.as_ref().map_or(0, |b| b.spent);
        (s.index == index).then_some(s.known_spent + unsent)
    }

    /// Where Redis should start if it has no count for `index`: the spend
    /// the store held at start-up. Call it once, when the cell is made —
    /// later, local spend would be counted twice.
    pub fn seed(&self, index: u64, amount: u64) {
        let mut s = self.lock();
        s.roll(index);
        s.seed = s.seed.max(amount);
    }

    /// The batch to send now, if any: a failed one again, or what changed.
    pub fn begin_sync(&self, token: impl FnOnce() -> u64) -> Option<Batch> {
        let limit = self.limit.load(Ordering::Relaxed);
        let mut s = self.lock();
        let lease_size = self.lease_size().max(s.max_take);
        if let Some(b) = &s.inflight {
            return Some(b.clone());
        }
        if s.debt == 0 && s.spent == 0 && !s.want_refill {
            return None;
        }
        let b = Batch {
            token: token(),
            index: s.index,
            debt: std::mem::take(&mut s.debt),
            spent: std::mem::take(&mut s.spent),
            want: if std::mem::take(&mut s.want_refill) {
                s.taken.clamp(lease_size, MAX_LEASES * lease_size)
            } else {
                0
            },
            limit,
            seed_count: s.known.max(s.seed),
            seed_spent: s.known_spent.max(s.seed),
        };
        s.taken = 0;
        s.inflight = Some(b.clone());
        Some(b)
    }

    /// Puts Redis's answer to `batch` back (`None`: it failed; it is sent
    /// again as it was).
    pub fn end_sync(&self, batch: &Batch, reply: Option<Reply>) {
        let mut s = self.lock();
        let Some(r) = reply else {
            // Keep asking for a lease once Redis is back.
            s.want_refill |= batch.want > 0;
            return;
        };
        s.inflight = None;
        if batch.index != s.index {
            return; // a grant for a window that has rolled is of no use
        }
        s.lease += r.granted;
        s.last_grant = r.granted;
        s.known = r.total;
        s.known_spent = r.spent;
        s.exhausted = if batch.want > 0 { r.granted < batch.want } else { s.exhausted || r.total >= batch.limit };
        if s.exhausted {
            // Looked again at each sync while takes keep asking.
            s.want_refill = false;
        }
    }

    /// Debt and lease to hand back at shutdown: the unused lease returns
    /// to the shared count (so it is not lost to the others).
    pub fn unused_lease(&self) -> (u64, u64) {
        let s = self.lock();
        (s.index, s.lease)
    }

    /// Forgets the unused lease after it was returned.
    pub fn drop_lease(&self) {
        self.lock().lease = 0;
    }
}

impl State {
    fn roll(&mut self, index: u64) {
        if index == self.index {
            return;
        }
        // Unsent debt and spend move along (they are charged to the new
        // window, as the local ledger charges a late settlement); a lease
        // belongs to its window and is forfeited.
        self.index = index;
        self.lease = 0;
        self.known = 0;
        self.known_spent = 0;
        self.exhausted = false;
        self.seed = 0;
        self.max_take = 0;
        self.taken = 0;
        self.last_grant = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(granted: u64, total: u64) -> Option<Reply> {
        Some(Reply { granted, total, spent: 0 })
    }

    #[test]
    fn borrows_one_lease_then_waits_for_a_grant() {
        let c = Cell::new("k".into(), Scope::Period { ttl_ms: 0 }, 1000, 0.01); // lease 10
        for _ in 0..10 {
            c.take(1, 1, 1000, Mode::Shared).unwrap();
        }
        assert!(c.take(1, 1, 1000, Mode::Shared).is_err(), "debt is at one lease");
        let b = c.begin_sync(|| 1).unwrap();
        assert_eq!(b.debt, 10);
        assert!(b.want >= 10, "a lease at least, more for a busy instance: {}", b.want);
        c.end_sync(&b, reply(10, 20));
        for _ in 0..10 {
            c.take(1, 1, 1000, Mode::Shared).unwrap();
        }
    }

    #[test]
    fn an_exhausted_count_stops_borrowing() {
        let c = Cell::new("k".into(), Scope::Period { ttl_ms: 0 }, 100, 0.1);
        c.take(1, 5, 100, Mode::Shared).unwrap();
        let b = c.begin_sync(|| 1).unwrap();
        c.end_sync(&b, reply(0, 100));
        assert!(c.take(1, 1, 100, Mode::Shared).is_err());
        // The next window starts afresh.
        c.take(2, 1, 100, Mode::Shared).unwrap();
    }

    #[test]
    fn a_failed_batch_is_sent_again_unchanged() {
        let c = Cell::new("k".into(), Scope::Period { ttl_ms: 0 }, 100, 0.1);
        c.take(1, 3, 100, Mode::Shared).unwrap();
        c.spend(7);
        let b = c.begin_sync(|| 42).unwrap();
        c.end_sync(&b, None);
        c.spend(1);
        let again = c.begin_sync(|| 43).unwrap();
        assert_eq!(again, b, "same token, same amounts");
        c.end_sync(&again, Some(Reply { granted: 10, total: 13, spent: 7 }));
        let next = c.begin_sync(|| 44).unwrap();
        assert_eq!((next.token, next.spent, next.debt), (44, 1, 0));
    }

    #[test]
    fn give_back_pays_debt_first() {
        let c = Cell::new("k".into(), Scope::Period { ttl_ms: 0 }, 100, 0.1);
        c.take(1, 8, 100, Mode::Shared).unwrap();
        c.give(1, 5);
        let b = c.begin_sync(|| 1).unwrap();
        assert_eq!(b.debt, 3);
        c.give(0, 100); // an old window: ignored
        c.end_sync(&b, reply(10, 13));
        assert!(c.take(1, 10, 100, Mode::Shared).is_ok());
    }

    #[test]
    fn local_only_counts_for_later_and_closed_refuses() {
        let c = Cell::new("k".into(), Scope::Period { ttl_ms: 0 }, 10, 0.1);
        for _ in 0..50 {
            c.take(1, 1, 10, Mode::LocalOnly).unwrap();
        }
        assert_eq!(c.begin_sync(|| 1).unwrap().debt, 50, "reconciled when Redis is back");
        assert!(c.take(1, 1, 10, Mode::Closed).is_err());
    }
}
