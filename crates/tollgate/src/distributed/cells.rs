//! Every shared counter this instance has touched, by key, and whether
//! Redis is reachable. Limits and budgets reach it through `Counters` and
//! `Ledger` once distributed mode is on; without it they never look here.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use dashmap::DashMap;

use super::cell::{Cell, Mode, Scope};

#[derive(Debug)]
pub struct Cells {
    map: DashMap<String, Arc<Cell>>,
    lease: f64,
    fail_closed: bool,
    /// Set while Redis cannot be reached (the last sync failed).
    degraded: AtomicBool,
    /// Syncs that failed since start.
    pub failures: AtomicU64,
    /// Wakes the sync task when a lease runs low, before its next tick.
    pub wake: tokio::sync::Notify,
}

impl Cells {
    pub fn new(lease: f64, fail_closed: bool) -> Cells {
        Cells {
            map: DashMap::new(),
            lease,
            fail_closed,
            degraded: AtomicBool::new(false),
            failures: AtomicU64::new(0),
            wake: tokio::sync::Notify::new(),
        }
    }

    /// The cell for `key`, made on first use.
    pub fn cell(&self, key: &str, scope: Scope, limit: u64) -> Arc<Cell> {
        self.cell_made(key, scope, limit, |_| {})
    }

    /// The cell for `key`; `made` runs once, on the cell just made, before
    /// anyone else can use it.
    pub fn cell_made(&self, key: &str, scope: Scope, limit: u64, made: impl FnOnce(&Cell)) -> Arc<Cell> {
        if let Some(c) = self.map.get(key) {
            return c.clone();
        }
        self.map
            .entry(key.to_string())
            .or_insert_with(|| {
                let c = Cell::new(key.to_string(), scope, limit, self.lease);
                made(&c);
                Arc::new(c)
            })
            .clone()
    }

    /// Takes `amount` from `cell`, waking the sync task when a lease is wanted.
    pub fn take(&self, cell: &Cell, index: u64, amount: u64, limit: u64) -> Result<(), super::cell::Refused> {
        let taken = cell.take(index, amount, limit, self.mode());
        if matches!(taken, Ok(true) | Err(super::cell::Refused { wake: true, .. })) {
            self.wake.notify_one();
        }
        taken.map(|_| ())
    }

    pub fn mode(&self) -> Mode {
        match (self.degraded.load(Ordering::Relaxed), self.fail_closed) {
            (false, _) => Mode::Shared,
            (true, false) => Mode::LocalOnly,
            (true, true) => Mode::Closed,
        }
    }

    pub fn degraded(&self) -> bool {
        self.degraded.load(Ordering::Relaxed)
    }

    /// Records whether Redis answered; returns whether that changed.
    pub fn set_degraded(&self, down: bool) -> bool {
        self.degraded.swap(down, Ordering::Relaxed) != down
    }

    pub fn fail_closed(&self) -> bool {
        self.fail_closed
    }

    /// The cell for `key`, if this instance has used it.
    pub fn get(&self, key: &str) -> Option<Arc<Cell>> {
        self.map.get(key).map(|c| c.clone())
    }

    /// Forgets `key`'s cell when nothing holds it and nothing in it waits
    /// to be sent (its counter or account was swept, `keyspace.rs`).
    pub fn forget(&self, key: &str) {
        self.map.remove_if(key, |_, c| Arc::strong_count(c) == 1 && c.settled());
    }

    pub fn all(&self) -> Vec<Arc<Cell>> {
        self.map.iter().map(|e| e.value().clone()).collect()
    }
}
