//! Stage 6: budget reservation. Every matching budget reserves a model call's
//! worst-case cost (or tokens); an enforced budget that would be exceeded
//! refuses it. Stage 12 settles the reservation to the real cost; a
//! reservation dropped unsettled (an error, a timeout, a cancelled stream)
//! is released.

use super::{Admission, Resource};
use crate::budgets;
use crate::error::GatewayError;
use crate::limits::Estimate;
use crate::pricing::Price;
use crate::routing::catalog::ModelRef;
use crate::routing::{TargetKind, VirtualModel};

pub fn reserve(adm: &mut Admission, est: &Estimate) -> Result<(), GatewayError> {
    if adm.snapshot.budgets.is_empty() {
        return Ok(());
    }
    let price = match &adm.resource {
        Some(Resource::Model(m)) => worst_price(m),
        _ => None,
    };
    let holds = budgets::admit(&adm.snapshot.budgets, &adm.shared.ledger, &adm.facts(), est, price)
        .map_err(GatewayError::BudgetExceeded)?;
    adm.holds.budget = holds;
    Ok(())
}

/// The price a reservation must assume: the model's own, or for a virtual
/// model the most expensive of the targets it may end up using.
fn worst_price(m: &ModelRef) -> Option<Price> {
    match m {
        ModelRef::Physical(t) => t.price,
        ModelRef::Virtual(vm) => virtual_worst(vm),
    }
}

fn virtual_worst(vm: &VirtualModel) -> Option<Price> {
    let plans = std::iter::once(&vm.default).chain(vm.routes.iter().map(|r| &r.plan));
    plans
        .flat_map(|p| p.targets.iter())
        .filter_map(|t| match &t.kind {
            TargetKind::Physical(target) => target.price,
            TargetKind::Virtual(inner) => virtual_worst(inner),
        })
        .max_by_key(|p| p.input.saturating_add(p.output))
}
