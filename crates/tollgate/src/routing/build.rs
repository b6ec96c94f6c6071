//! Virtual models from config: names checked, nested virtual models built
//! dependencies-first, cycles refused with the path that closes them.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use super::health::{BreakerSettings, HealthRegistry};
use super::{
    DEFAULT_RETRY_STATUSES, FallbackPolicy, Plan, PlanTarget, RetryPolicy, Route, TargetKind, VirtualModel, When,
};
use crate::config::diag::Diags;
use crate::config::file::{ConfigFile, FallbackCondition, Strategy, TargetSection, VirtualModelSection};
use crate::providers::Timeouts;
use crate::routing::catalog::ModelCatalog;

pub fn build(
    file: &ConfigFile,
    catalog: &ModelCatalog,
    health: &HealthRegistry,
    d: &mut Diags,
) -> HashMap<String, Arc<VirtualModel>> {
    let mut index: HashMap<&str, &VirtualModelSection> = HashMap::new();
    for vm in &file.virtual_models {
        let name = vm.name.value.as_str();
        if name.is_empty() {
            d.at(&vm.name, "a virtual model needs a name", "e.g. prod/engineering-assistant");
        } else if index.insert(name, vm).is_some() {
            d.at(&vm.name, format!("duplicate virtual model `{name}`"), "give each virtual model its own name");
        } else if catalog.by_name.contains_key(name) {
            d.at(
                &vm.name,
                format!("virtual model `{name}` has the name of a provider model"),
                "pick a name no provider model has",
            );
        }
    }
    let mut order = Vec::new();
    let mut state: HashMap<&str, u8> = HashMap::new(); // 1 = visiting, 2 = done
    for vm in &file.virtual_models {
        visit(vm.name.value.as_str(), &index, &mut state, &mut Vec::new(), &mut order, d);
    }
    let mut built: HashMap<String, Arc<VirtualModel>> = HashMap::new();
    let names: Vec<&str> = index.keys().copied().collect();
    for name in order {
        let Some(sec) = index.get(name) else { continue };
        if let Some(vm) = build_one(sec, catalog, &built, &names, health, d) {
            built.insert(name.to_string(), Arc::new(vm));
        }
    }
    built
}

fn targets_of(vm: &VirtualModelSection) -> impl Iterator<Item = &TargetSection> {
    vm.targets.iter().chain(vm.routes.iter().flat_map(|r| r.targets.iter()))
}

/// Depth-first walk over nested virtual models; reports each cycle once.
fn visit<'a>(
    name: &'a str,
    index: &HashMap<&'a str, &'a VirtualModelSection>,
    state: &mut HashMap<&'a str, u8>,
    path: &mut Vec<&'a str>,
    order: &mut Vec<&'a str>,
    d: &mut Diags,
) {
    match state.get(name) {
        Some(2) => return,
        Some(_) => return, // a cycle; reported by the caller that closed it
        None => {}
    }
    let Some(&sec) = index.get(name) else { return };
    state.insert(name, 1);
    path.push(name);
    for t in targets_of(sec) {
        let dep = t.model.value.as_str();
        if !index.contains_key(dep) {
            continue;
        }
        if state.get(dep) == Some(&1) {
            let start = path.iter().position(|p| *p == dep).unwrap_or(0);
            let mut cycle: Vec<&str> = path[start..].to_vec();
            cycle.push(dep);
            d.at(
                &t.model,
                format!("virtual models form a cycle: {}", cycle.join(" → ")),
                "a virtual model may not reach itself",
            );
            continue;
        }
        visit(dep, index, state, path, order, d);
    }
    path.pop();
    state.insert(name, 2);
    order.push(name);
}

fn build_one(
    sec: &VirtualModelSection,
    catalog: &ModelCatalog,
    built: &HashMap<String, Arc<VirtualModel>>,
    names: &[&str],
    health: &HealthRegistry,
    d: &mut Diags,
) -> Option<VirtualModel> {
    let errors_before = d.0.len();
    let name = sec.name.value.as_str();
    let cb = &sec.circuit_breaker;
    let defaults = BreakerSettings::default();
    let breaker = BreakerSettings {
        consecutive_failures: cb.consecutive_failures.unwrap_or(defaults.consecutive_failures).max(1),
        error_rate: cb.error_rate.unwrap_or(defaults.error_rate),
        min_requests: cb.min_requests.unwrap_or(defaults.min_requests),
        cooldown: cb.cooldown.map_or(defaults.cooldown, |c| c.0),
    };
    if !(breaker.error_rate > 0.0 && breaker.error_rate <= 1.0) {
        d.at(&sec.name, "circuit_breaker.error_rate must be above 0 and at most 1", "e.g. error_rate: 0.5");
    }
    let ratio = sec.retry_budget.ratio.unwrap_or(0.2);
    if !ratio.is_finite() || ratio < 0.0 {
        d.at(&sec.name, "retry_budget.ratio must be zero or more", "e.g. ratio: 0.2");
    }
    let budget = health.budget(name, ratio.max(0.0), sec.retry_budget.min_per_second.unwrap_or(10));

    let mut plan = |strategy: Option<Strategy>, targets: &[TargetSection]| -> Plan {
        let strategy = strategy.unwrap_or_default();
        if targets.is_empty() {
            d.at(
                &sec.name,
                format!("virtual model `{name}` has a target list with no targets"),
                "list at least one target",
            );
        }
        let targets: Vec<PlanTarget> =
            targets.iter().filter_map(|t| target(name, t, catalog, built, names, health, d)).collect();
        if strategy == Strategy::Weight && !targets.is_empty() && targets.iter().all(|t| t.weight == 0) {
            d.at(
                &sec.name,
                format!("every target of `{name}` has weight 0"),
                "give at least one target a weight above 0",
            );
        }
        Plan { strategy, targets }
    };
    let default = plan(sec.strategy, &sec.targets);
    let routes = sec
        .routes
        .iter()
        .map(|r| Route {
            when: When::from_section(&r.when),
            // A route without its own strategy uses the virtual model's.
            plan: plan(r.strategy.or(sec.strategy), &r.targets),
        })
        .collect();
    (d.0.len() == errors_before).then(|| VirtualModel { name: name.to_string(), routes, default, breaker, budget })
}

fn target(
    vm: &str,
    t: &TargetSection,
    catalog: &ModelCatalog,
    built: &HashMap<String, Arc<VirtualModel>>,
    names: &[&str],
    health: &HealthRegistry,
    d: &mut Diags,
) -> Option<PlanTarget> {
    let model = t.model.value.as_str();
    let (kind, label, price, provider_timeouts) = if let Some(v) = built.get(model) {
        (TargetKind::Virtual(v.clone()), Arc::<str>::from(model), None, None)
    } else if let Some(p) = catalog.resolve(model) {
        let label = p.canonical.clone();
        let price = p.price.map(|p| p.usd_per_mtok());
        let timeouts = p.provider.timeouts;
        (TargetKind::Physical(p), label, price, Some(timeouts))
    } else if names.contains(&model) {
        // A nested virtual model that could not be built (a cycle, or its own
        // errors) was already reported, and the config is refused for it.
        return None;
    } else {
        d.at(
            &t.model,
            format!("target `{model}` is neither a provider model nor a virtual model"),
            "write <provider>/<model> as listed under providers, or the name of another virtual model",
        );
        return None;
    };
    let timeouts = match (&t.timeout, provider_timeouts) {
        (Some(ts), Some(base)) => Some(Timeouts {
            connect: ts.connect.map_or(base.connect, |x| x.0),
            first_token: ts.first_token.map_or(base.first_token, |x| x.0),
            idle: ts.idle.map_or(base.idle, |x| x.0),
            total: ts.total.map_or(base.total, |x| x.0),
        }),
        (Some(_), None) => {
            d.at(
                &t.model,
                "`timeout` applies to provider targets, not to a nested virtual model",
                "set timeouts on the nested model's targets",
            );
            None
        }
        (None, _) => None,
    };
    let retry = match &t.retry {
        None => {
            RetryPolicy {
                attempts: 1,
                backoff: Duration::from_millis(100),
                on_status: DEFAULT_RETRY_STATUSES.to_vec(),
                on_timeout: false,
                on_connect: false,
            }
        }
        Some(r) => {
            if r.attempts == 0 || r.attempts > 10 {
                d.at(
                    &t.model,
                    "retry.attempts must be between 1 and 10",
                    "attempts counts the first try: 2 = one retry",
                );
            }
            RetryPolicy {
                attempts: r.attempts.clamp(1, 10),
                backoff: r.backoff.map_or(Duration::from_millis(100), |b| b.0),
                on_status: if r.on_status.is_empty() { DEFAULT_RETRY_STATUSES.to_vec() } else { r.on_status.clone() },
                on_timeout: r.on_timeout,
                on_connect: r.on_connect,
            }
        }
    };
    let fallback = match &t.fallback_on {
        None => FallbackPolicy::default(),
        Some(list) => FallbackPolicy {
            statuses: list
                .iter()
                .filter_map(|c| if let FallbackCondition::Status(s) = c { Some(*s) } else { None })
                .collect(),
            timeout: list.contains(&FallbackCondition::Timeout),
            connect: list.contains(&FallbackCondition::Connect),
        },
    };
    let mut overrides = Vec::new();
    for (k, v) in &t.overrides {
        if matches!(k.as_str(), "model" | "stream") {
            d.at(
                &t.model,
                format!("`{k}` cannot be overridden"),
                "overrides are for generation parameters such as temperature",
            );
            continue;
        }
        overrides.push((k.clone(), v.to_string()));
    }
    Some(PlanTarget {
        health: health.get(vm, &label),
        kind,
        label,
        priority: t.priority.unwrap_or(0),
        weight: t.weight.unwrap_or(1),
        retry,
        fallback,
        timeouts,
        overrides,
        price,
    })
}
