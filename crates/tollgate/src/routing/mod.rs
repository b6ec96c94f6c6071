//! Virtual models: logical names that resolve to provider targets through
//! rules, a strategy, retries, fallbacks and per-target health.
//!
//! - `build.rs`: config → runtime types, with cycle detection.
//! - `strategy.rs`: the order in which a plan's targets are tried.
//! - `execute.rs`: the attempt loop (retries, backoff, fallback, budget).
//! - `health.rs`: circuit breaker and latency average per target.
//! - `budget.rs`: the retry budget.

pub mod budget;
pub mod build;
pub mod catalog;
pub mod execute;
pub mod health;
pub mod strategy;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::config::file::Strategy;
use crate::identity::Principal;
use crate::providers::Timeouts;
use crate::routing::catalog::Target;
use budget::RetryBudget;
use health::{BreakerSettings, TargetHealth};

#[derive(Debug)]
pub struct VirtualModel {
    pub name: String,
    pub routes: Vec<Route>,
    pub default: Plan,
    pub breaker: BreakerSettings,
    /// Shared across reloads (see `HealthRegistry::budget`).
    pub budget: Arc<RetryBudget>,
}

#[derive(Debug)]
pub struct Route {
    pub when: When,
    pub plan: Plan,
}

#[derive(Debug)]
pub struct Plan {
    pub strategy: Strategy,
    pub targets: Vec<PlanTarget>,
}

#[derive(Debug)]
pub enum TargetKind {
    Physical(Target),
    Virtual(Arc<VirtualModel>),
}

#[derive(Debug)]
pub struct PlanTarget {
    pub kind: TargetKind,
    /// `<provider>/<model>` or the nested virtual model's name.
    pub label: Arc<str>,
    pub priority: i32,
    pub weight: u32,
    pub retry: RetryPolicy,
    pub fallback: FallbackPolicy,
    /// Time limits for this target (provider defaults with the target's overrides).
    pub timeouts: Option<Timeouts>,
    /// Forced request fields: (name, raw JSON).
    pub overrides: Vec<(String, String)>,
    pub health: Arc<TargetHealth>,
    /// USD per million tokens, input + output, when known (for `cost`).
    pub price: Option<f64>,
}

#[derive(Debug, Clone)]
pub struct RetryPolicy {
    pub attempts: u32,
    pub backoff: Duration,
    pub on_status: Vec<u16>,
    pub on_timeout: bool,
    pub on_connect: bool,
}

#[derive(Debug, Clone)]
pub struct FallbackPolicy {
    pub statuses: Vec<u16>,
    pub timeout: bool,
    pub connect: bool,
}

pub const DEFAULT_RETRY_STATUSES: &[u16] = &[429, 500, 502, 503, 504, 529];

impl Default for FallbackPolicy {
    fn default() -> Self {
        FallbackPolicy { statuses: DEFAULT_RETRY_STATUSES.to_vec(), timeout: true, connect: true }
    }
}

pub use crate::matching::When;

impl VirtualModel {
    /// The plan for this request: the first matching route, else the default.
    pub fn plan_for(
        &self,
        requested: &str,
        principal: Option<&Principal>,
        metadata: &BTreeMap<String, String>,
    ) -> &Plan {
        self.routes.iter().find(|r| r.when.matches(requested, principal, metadata)).map_or(&self.default, |r| &r.plan)
    }
}
