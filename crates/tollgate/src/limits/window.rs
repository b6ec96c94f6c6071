//! A sliding-window counter: the current fixed window plus the previous
//! one weighted by how much of it still overlaps the sliding window
//! (the approximation Cloudflare describes in "How we built rate limiting
//! capable of scaling to millions of domains"). Two integers per key, exact
//! within a window, and no burst of 2× at window edges.
//!
//! Each counter has its own small lock held for a few arithmetic steps;
//! requests contend only when they share a counter key.

use std::sync::Mutex;
use std::time::Duration;

#[derive(Debug)]
pub struct Window {
    span_ms: u64,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    index: u64,
    cur: u64,
    prev: u64,
}

impl State {
    fn roll(&mut self, index: u64) {
        if index == self.index {
            return;
        }
        self.prev = if index == self.index + 1 { self.cur } else { 0 };
        self.cur = 0;
        self.index = index;
    }
}

impl Window {
    pub fn new(span: Duration) -> Window {
        Window { span_ms: (span.as_millis() as u64).max(1), state: Mutex::new(State::default()) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes `amount` if the sliding total stays within `limit`. On refusal
    /// returns how long until it would fit (`None`: it never will).
    pub fn try_take(&self, amount: u64, limit: u64, now_ms: u64) -> Result<u64, Option<Duration>> {
        let index = now_ms / self.span_ms;
        let elapsed = now_ms % self.span_ms;
        let mut s = self.lock();
        s.roll(index);
        let weighted_prev = self.weighted(s.prev, elapsed);
        if weighted_prev + s.cur + amount <= limit {
            s.cur += amount;
            return Ok(index);
        }
        if amount > limit {
            return Err(None);
        }
        // When would it fit? Still in this window, once enough of `prev` has slid out…
        let room = limit - amount;
        let wait_ms = if s.cur <= room && s.prev > 0 {
            // prev * (span - e') / span + cur <= room  →  e' >= span * (1 - (room - cur) / prev)
            let need = self.span_ms - (room - s.cur) * self.span_ms / s.prev;
            need.saturating_sub(elapsed).max(1)
        } else {
            // …or in the next window, when this window's count becomes `prev`.
            let rest = self.span_ms - elapsed;
            let need = (room * self.span_ms).checked_div(s.cur).map_or(0, |fits| self.span_ms.saturating_sub(fits));
            rest + need
        };
        Err(Some(Duration::from_millis(wait_ms)))
    }

    /// Adjusts an earlier take made in window `index` by `delta`: gives
    /// tokens back (negative) or charges more (positive). Amounts taken in a
    /// window that has slid out are no longer counted and are not adjusted.
    pub fn adjust(&self, index: u64, delta: i64, now_ms: u64) {
        let mut s = self.lock();
        s.roll(now_ms / self.span_ms);
        let slot = if index == s.index {
            &mut s.cur
        } else if index + 1 == s.index {
            &mut s.prev
        } else {
            return;
        };
        *slot = if delta < 0 { slot.saturating_sub(delta.unsigned_abs()) } else { slot.saturating_add(delta as u64) };
    }

    /// The sliding total now.
    pub fn used(&self, now_ms: u64) -> u64 {
        let mut s = self.lock();
        s.roll(now_ms / self.span_ms);
        self.weighted(s.prev, now_ms % self.span_ms) + s.cur
    }

    /// The part of the previous window still inside the sliding window,
    /// rounded up: the limit is never exceeded by rounding.
    fn weighted(&self, prev: u64, elapsed: u64) -> u64 {
        (prev * (self.span_ms - elapsed)).div_ceil(self.span_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_within_a_window() {
        let w = Window::new(Duration::from_secs(60));
        for _ in 0..10 {
            assert!(w.try_take(1, 10, 1_000).is_ok());
        }
        let wait = w.try_take(1, 10, 1_000).unwrap_err().unwrap();
        assert!(wait > Duration::from_secs(50), "{wait:?}");
    }

    #[test]
    fn the_previous_window_slides_out() {
        let w = Window::new(Duration::from_secs(60));
        for _ in 0..10 {
            w.try_take(1, 10, 59_000).unwrap();
        }
        // Just into the next window almost all of the previous one still counts.
        assert!(w.try_take(1, 10, 61_000).is_err());
        // Halfway through, half of it does.
        assert_eq!(w.used(90_000), 5);
        for _ in 0..5 {
            w.try_take(1, 10, 90_000).unwrap();
        }
        assert!(w.try_take(1, 10, 90_000).is_err());
    }

    #[test]
    fn the_retry_after_is_when_it_fits() {
        let w = Window::new(Duration::from_secs(10));
        for _ in 0..10 {
            w.try_take(1, 10, 0).unwrap();
        }
        let wait = w.try_take(1, 10, 0).unwrap_err().unwrap().as_millis() as u64;
        assert!(w.try_take(1, 10, wait - 200).is_err());
        assert!(w.try_take(1, 10, wait + 10).is_ok(), "fits after {wait}ms");
    }

    #[test]
    fn adjustments_give_back_and_charge() {
        let w = Window::new(Duration::from_secs(60));
        let i = w.try_take(100, 150, 0).unwrap();
        w.adjust(i, -70, 10);
        assert_eq!(w.used(10), 30);
        w.adjust(i, 20, 10);
        assert_eq!(w.used(10), 50);
        assert!(w.try_take(200, 150, 10).unwrap_err().is_none(), "never fits");
    }
}
