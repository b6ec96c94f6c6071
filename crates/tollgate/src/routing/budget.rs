//! The retry budget: retries may add at most `ratio` extra requests per
//! request served, plus `min_per_second` at any time, so a failing provider
//! cannot have its load multiplied by retries. Tokens are milli-retries in
//! one atomic; no request waits on another.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Instant;

#[derive(Debug)]
pub struct RetryBudget {
    per_request: i64,
    per_second: i64,
    cap: i64,
    tokens: AtomicI64,
    last_second: AtomicU64,
}

fn now_sec() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_secs()
}

impl RetryBudget {
    pub fn new(ratio: f64, min_per_second: u32) -> RetryBudget {
        let per_second = i64::from(min_per_second) * 1000;
        RetryBudget {
            per_request: (ratio * 1000.0) as i64,
            per_second,
            // The budget holds at most ten seconds' floor, or ten retries.
            cap: (per_second * 10).max(10_000),
            tokens: AtomicI64::new(per_second),
            last_second: AtomicU64::new(now_sec()),
        }
    }

    /// Called once per request that enters a virtual model.
    pub fn deposit(&self) {
        self.add(self.per_request);
    }

    /// Takes one retry from the budget; false when it is spent.
    pub fn try_withdraw(&self) -> bool {
        let now = now_sec();
        let last = self.last_second.load(Ordering::Relaxed);
        if now > last && self.last_second.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_ok() {
            let secs = i64::try_from(now - last).unwrap_or(i64::MAX / 2).min(10);
            self.add(self.per_second * secs);
        }
        let mut cur = self.tokens.load(Ordering::Relaxed);
        loop {
            if cur < 1000 {
                return false;
            }
            match self.tokens.compare_exchange_weak(cur, cur - 1000, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return true,
                Err(c) => cur = c,
            }
        }
    }

    fn add(&self, milli: i64) {
        let mut cur = self.tokens.load(Ordering::Relaxed);
        loop {
            let new = (cur + milli).min(self.cap);
            match self.tokens.compare_exchange_weak(cur, new, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return,
                Err(c) => cur = c,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_are_bounded_by_ratio_and_floor() {
        let b = RetryBudget::new(0.2, 2);
        assert!(b.try_withdraw() && b.try_withdraw(), "the floor is available at once");
        assert!(!b.try_withdraw());
        for _ in 0..10 {
            b.deposit();
        }
        assert!(b.try_withdraw() && b.try_withdraw(), "ten requests at 0.2 earn two retries");
        assert!(!b.try_withdraw());
    }
}
