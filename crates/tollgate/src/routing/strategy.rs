//! The order a plan's targets are tried in. The first is the strategy's
//! choice; the rest are the fallback order. Open circuits are skipped by the
//! caller, so a strategy never needs to know about them.

use super::{Plan, PlanTarget};
use crate::config::file::Strategy;

pub fn order(plan: &Plan) -> Vec<&PlanTarget> {
    let mut by_priority: Vec<&PlanTarget> = plan.targets.iter().collect();
    by_priority.sort_by_key(|t| t.priority); // stable: ties keep list order
    match plan.strategy {
        Strategy::Priority => by_priority,
        Strategy::Weight => {
            let mut v = by_priority;
            if let Some(first) = weighted_pick(&plan.targets, fastrand::u64(..)) {
                let chosen = &plan.targets[first];
                v.retain(|t| !std::ptr::eq(*t, chosen));
                v.insert(0, chosen);
            }
            v
        }
        Strategy::Latency => {
            let mut rest = by_priority;
            // Unknown latency (0) sorts first so new targets get measured.
            rest.sort_by(|a, b| a.health.latency_us().total_cmp(&b.health.latency_us()));
            if rest.len() >= 2 {
                // Power of two choices: two random candidates, the faster one
                // wins — the best target is preferred without every request
                // stampeding it on a stale average.
                let i = fastrand::usize(..rest.len());
                let mut j = fastrand::usize(..rest.len() - 1);
                if j >= i {
                    j += 1;
                }
                let pick = if rest[i].health.latency_us() <= rest[j].health.latency_us() { i } else { j };
                let chosen = rest.remove(pick);
                rest.insert(0, chosen);
            }
            rest
        }
        Strategy::Cost => {
            let mut v = by_priority;
            v.sort_by(|a, b| match (a.price, b.price) {
                (Some(x), Some(y)) => x.total_cmp(&y),
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (None, None) => std::cmp::Ordering::Equal,
            });
            v
        }
    }
}

/// Index of the target chosen by weight for a random draw `r`.
fn weighted_pick(targets: &[PlanTarget], r: u64) -> Option<usize> {
    let total: u64 = targets.iter().map(|t| u64::from(t.weight)).sum();
    if total == 0 {
        return None;
    }
    let mut x = r % total;
    for (i, t) in targets.iter().enumerate() {
        let w = u64::from(t.weight);
        if x < w {
            return Some(i);
        }
        x -= w;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::{FallbackPolicy, RetryPolicy, TargetKind, VirtualModel};
    use std::sync::Arc;

    fn plan(strategy: Strategy, spec: &[(i32, u32, Option<f64>)]) -> Plan {
        let targets = spec
            .iter()
            .enumerate()
            .map(|(i, (priority, weight, price))| PlanTarget {
                kind: TargetKind::Virtual(Arc::new(VirtualModel {
                    name: format!("t{i}"),
                    routes: vec![],
                    default: Plan { strategy, targets: vec![] },
                    breaker: Default::default(),
                    budget: Arc::new(crate::routing::budget::RetryBudget::new(0.0, 0)),
                })),
                label: format!("t{i}").into(),
                priority: *priority,
                weight: *weight,
                retry: RetryPolicy { attempts: 1, backoff: Default::default(), on_status: vec![], on_timeout: false, on_connect: false },
                fallback: FallbackPolicy::default(),
                timeouts: None,
                overrides: vec![],
                health: Default::default(),
                price: *price,
            })
            .collect();
        Plan { strategy, targets }
    }

    fn labels(v: Vec<&PlanTarget>) -> Vec<String> {
        v.iter().map(|t| t.label.to_string()).collect()
    }

    #[test]
    fn priority_and_cost_orders() {
        let p = plan(Strategy::Priority, &[(2, 1, None), (0, 1, None), (1, 1, None)]);
        assert_eq!(labels(order(&p)), ["t1", "t2", "t0"]);
        let p = plan(Strategy::Cost, &[(0, 1, None), (0, 1, Some(3.0)), (0, 1, Some(0.5))]);
        assert_eq!(labels(order(&p)), ["t2", "t1", "t0"]);
    }

    #[test]
    fn weighted_pick_follows_the_weights() {
        let p = plan(Strategy::Weight, &[(0, 80, None), (1, 20, None), (2, 0, None)]);
        let picks: Vec<Option<usize>> = (0..100).map(|r| weighted_pick(&p.targets, r)).collect();
        assert_eq!(picks.iter().filter(|x| **x == Some(0)).count(), 80);
        assert_eq!(picks.iter().filter(|x| **x == Some(1)).count(), 20);
        let o = labels(order(&p));
        assert_eq!(o.len(), 3, "every target stays available for fallback: {o:?}");
    }
}
