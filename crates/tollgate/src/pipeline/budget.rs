//! Stage 6: budget reservation. Every matching budget reserves the request's
//! worst-case cost (or tokens); an enforced budget that would be exceeded
//! refuses it. Stage 12 settles the reservation to the real cost; a
//! reservation dropped unsettled (an error, a timeout, a cancelled stream)
//! is released.

use super::RequestCtx;
use crate::budgets;
use crate::config::runtime::ModelRef;
use crate::error::GatewayError;
use crate::limits::Estimate;
use crate::matching::Facts;
use crate::pricing::Price;
use crate::routing::{TargetKind, VirtualModel};

pub fn reserve(ctx: &mut RequestCtx, est: &Estimate) -> Result<(), GatewayError> {
    if ctx.snapshot.budgets.is_empty() {
        return Ok(());
    }
    let model = ctx.model.as_ref().map_or(ctx.requested_model.as_str(), |m| m.name());
    let price = ctx.model.as_ref().and_then(worst_price);
    let facts =
        Facts { requested: &ctx.requested_model, model, principal: ctx.principal.as_deref(), metadata: &ctx.metadata };
    let holds = budgets::admit(&ctx.snapshot.budgets, &ctx.shared.ledger, &facts, est, price)
        .map_err(GatewayError::BudgetExceeded)?;
    ctx.holds.budget = holds;
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
