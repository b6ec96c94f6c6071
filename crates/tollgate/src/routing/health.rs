//! Per-target health: a circuit breaker and a decaying latency average.
//!
//! All state is atomics, updated after each attempt and read when ordering
//! targets, so no request waits on another. Health lives in a registry
//! outside the config snapshot, keyed by virtual model and target, so a
//! reload keeps what the gateway has learned about its upstreams.
//!
//! Breaker: closed → open after `consecutive_failures` failures in a row, or
//! when the decaying failure ratio reaches `error_rate` after `min_requests`
//! samples. Open targets are skipped without an attempt until the cool-down
//! (or the provider's `retry-after`, if longer) passes; then one probe is
//! let through (half-open). A successful probe closes the breaker, a failed
//! one opens it again.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use super::budget::RetryBudget;

/// Weight of the newest sample in the decaying averages.
const ALPHA: f64 = 0.2;

#[derive(Debug, Clone, Copy)]
pub struct BreakerSettings {
    pub consecutive_failures: u32,
    pub error_rate: f64,
    pub min_requests: u32,
    pub cooldown: Duration,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        BreakerSettings {
            consecutive_failures: 5,
            error_rate: 0.5,
            min_requests: 20,
            cooldown: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CircuitState {
    Closed,
    Open,
    HalfOpen,
}

#[derive(Debug, Default)]
pub struct TargetHealth {
    consecutive: AtomicU32,
    samples: AtomicU32,
    /// f64 bits: decaying failure ratio.
    error_ewma: AtomicU64,
    /// f64 bits: decaying latency in microseconds; 0 = no sample yet.
    latency_ewma: AtomicU64,
    /// Micros since `epoch()` until which the breaker is open; 0 = closed.
    open_until: AtomicU64,
    probing: AtomicBool,
}

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn now_us() -> u64 {
    epoch().elapsed().as_micros() as u64
}

fn update_ewma(cell: &AtomicU64, sample: f64) {
    let mut cur = cell.load(Ordering::Relaxed);
    loop {
        let old = f64::from_bits(cur);
        let new = if old == 0.0 { sample } else { old + ALPHA * (sample - old) };
        match cell.compare_exchange_weak(cur, new.to_bits(), Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return,
            Err(c) => cur = c,
        }
    }
}

impl TargetHealth {
    pub fn state(&self) -> CircuitState {
        let until = self.open_until.load(Ordering::Acquire);
        if until == 0 {
            CircuitState::Closed
        } else if now_us() < until {
            CircuitState::Open
        } else {
            CircuitState::HalfOpen
        }
    }

    /// May a request be sent now? In half-open state only one probe at a
    /// time gets `true`; it must report back with `success` or `failure`.
    pub fn admit(&self) -> bool {
        match self.state() {
            CircuitState::Closed => true,
            CircuitState::Open => false,
            CircuitState::HalfOpen => {
                self.probing.compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed).is_ok()
            }
        }
    }

    /// Mean recent latency in microseconds (0 = unknown).
    pub fn latency_us(&self) -> f64 {
        f64::from_bits(self.latency_ewma.load(Ordering::Relaxed))
    }

    /// May a failed request be retried on this target? Not once its circuit
    /// has opened (possibly because of that very failure).
    pub fn admit_retry(&self) -> bool {
        self.state() == CircuitState::Closed
    }

    /// An attempt that says nothing about health (e.g. the provider refused
    /// the request as invalid): frees a half-open probe slot, changes nothing else.
    pub fn neutral(&self) {
        self.probing.store(false, Ordering::Release);
    }

    pub fn success(&self, latency: Duration) {
        update_ewma(&self.latency_ewma, (latency.as_micros() as f64).max(1.0));
        self.record(false);
        self.consecutive.store(0, Ordering::Relaxed);
        if self.open_until.swap(0, Ordering::AcqRel) != 0 {
            tracing::info!("circuit closed after a successful probe");
        }
        self.probing.store(false, Ordering::Release);
    }

    pub fn failure(&self, s: &BreakerSettings, retry_after: Option<Duration>) {
        self.record(true);
        let n = self.consecutive.fetch_add(1, Ordering::Relaxed) + 1;
        let rate = f64::from_bits(self.error_ewma.load(Ordering::Relaxed));
        let samples = self.samples.load(Ordering::Relaxed);
        let was_probe = self.probing.swap(false, Ordering::AcqRel);
        let trip = was_probe || n >= s.consecutive_failures || (samples >= s.min_requests && rate >= s.error_rate);
        if trip {
            let cool = retry_after.map_or(s.cooldown, |ra| ra.max(s.cooldown));
            self.open_until.store(now_us() + cool.as_micros() as u64, Ordering::Release);
        }
    }

    fn record(&self, failed: bool) {
        self.samples.fetch_add(1, Ordering::Relaxed);
        let sample = if failed { 1.0 } else { 0.0 };
        let mut cur = self.error_ewma.load(Ordering::Relaxed);
        loop {
            let old = f64::from_bits(cur);
            let new = old + ALPHA * (sample - old);
            match self.error_ewma.compare_exchange_weak(cur, new.to_bits(), Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return,
                Err(c) => cur = c,
            }
        }
    }
}

/// Health of every target, kept across reloads. Looked up at config load
/// only, never per request.
#[derive(Debug, Clone, Default)]
pub struct HealthRegistry {
    map: Arc<Mutex<HashMap<String, Arc<TargetHealth>>>>,
    budgets: Arc<Mutex<HashMap<String, Arc<RetryBudget>>>>,
}

impl HealthRegistry {
    /// The retry budget of a virtual model; kept across reloads while its
    /// settings stay the same.
    pub fn budget(&self, virtual_model: &str, ratio: f64, min_per_second: u32) -> Arc<RetryBudget> {
        let mut m = self.budgets.lock().unwrap_or_else(|p| p.into_inner());
        m.entry(format!("{virtual_model}\u{0}{ratio}\u{0}{min_per_second}"))
            .or_insert_with(|| Arc::new(RetryBudget::new(ratio, min_per_second)))
            .clone()
    }

    /// (virtual model, target, state) of every target seen so far.
    pub fn states(&self) -> Vec<(String, String, CircuitState)> {
        let m = self.map.lock().unwrap_or_else(|p| p.into_inner());
        m.iter()
            .filter_map(|(k, h)| {
                let (vm, t) = k.split_once('\u{0}')?;
                Some((vm.to_string(), t.to_string(), h.state()))
            })
            .collect()
    }

    pub fn get(&self, virtual_model: &str, target: &str) -> Arc<TargetHealth> {
        let mut m = self.map.lock().unwrap_or_else(|p| p.into_inner());
        m.entry(format!("{virtual_model}\u{0}{target}")).or_default().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn breaker_opens_skips_probes_once_and_recovers() {
        let h = TargetHealth::default();
        let s = BreakerSettings { consecutive_failures: 3, cooldown: Duration::from_millis(30), ..Default::default() };
        for _ in 0..2 {
            h.failure(&s, None);
            assert_eq!(h.state(), CircuitState::Closed);
        }
        h.failure(&s, None);
        assert_eq!(h.state(), CircuitState::Open);
        assert!(!h.admit());
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(h.state(), CircuitState::HalfOpen);
        assert!(h.admit(), "one probe");
        assert!(!h.admit(), "only one probe at a time");
        h.failure(&s, None);
        assert_eq!(h.state(), CircuitState::Open, "a failed probe opens again");
        std::thread::sleep(Duration::from_millis(40));
        assert!(h.admit());
        h.success(Duration::from_millis(5));
        assert_eq!(h.state(), CircuitState::Closed);
        assert!(h.admit() && h.admit());
    }

    #[test]
    fn retry_after_extends_the_cool_down() {
        let h = TargetHealth::default();
        let s = BreakerSettings { consecutive_failures: 1, cooldown: Duration::from_millis(1), ..Default::default() };
        h.failure(&s, Some(Duration::from_secs(60)));
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(h.state(), CircuitState::Open);
    }

    #[test]
    fn error_rate_trips_after_min_requests() {
        let h = TargetHealth::default();
        let s = BreakerSettings { consecutive_failures: 100, error_rate: 0.5, min_requests: 10, ..Default::default() };
        for i in 0..40 {
            if i % 4 == 0 {
                h.success(Duration::from_millis(1))
            } else {
                h.failure(&s, None)
            }
            if h.state() == CircuitState::Open {
                assert!(i >= 9, "not before min_requests");
                return;
            }
        }
        panic!("a 75% failure ratio must open the breaker");
    }

    #[test]
    fn latency_average_decays_toward_recent_samples() {
        let h = TargetHealth::default();
        h.success(Duration::from_micros(1000));
        assert_eq!(h.latency_us(), 1000.0);
        for _ in 0..30 {
            h.success(Duration::from_micros(100));
        }
        assert!(h.latency_us() < 110.0);
    }
}
