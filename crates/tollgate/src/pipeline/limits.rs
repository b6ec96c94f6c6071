//! Stage 5: rate limits. Every matching rule takes from its counter (one
//! request, or a token estimate that stage 12 settles); the first rule that
//! would be exceeded refuses the request with 429, its id and `retry-after`.

use super::RequestCtx;
use super::receive::Parsed;
use crate::error::GatewayError;
use crate::limits::{self, Estimate};
use crate::matching::Facts;
use crate::providers::Operation;

/// Output allowance assumed when a chat request sets no `max_tokens`.
pub const DEFAULT_MAX_OUTPUT: u64 = 4096;

/// Token counts known before the call: the prompt estimated from its bytes
/// (about four per token), the output allowance from `max_completion_tokens`
/// or `max_tokens`.
pub fn estimate(op: Operation, req: &Parsed<'_>) -> Estimate {
    let field = |k: &str| req.obj.get(k).map_or(0, |v| v.get().len() as u64);
    match op {
        Operation::ChatCompletions => {
            let max = req.obj.field::<u64>("max_completion_tokens").ok().flatten();
            let max = max.or_else(|| req.obj.field::<u64>("max_tokens").ok().flatten());
            let n = req.obj.field::<u64>("n").ok().flatten().unwrap_or(1).max(1);
            let prompt = (field("messages") + field("tools")).div_ceil(4);
            Estimate { prompt, max_output: max.unwrap_or(DEFAULT_MAX_OUTPUT).saturating_mul(n) }
        }
        Operation::Embeddings => Estimate { prompt: field("input").div_ceil(4), max_output: 0 },
    }
}

pub fn admit(ctx: &mut RequestCtx, est: &Estimate) -> Result<(), GatewayError> {
    if ctx.snapshot.rate_limits.is_empty() {
        return Ok(());
    }
    let model = ctx.model.as_ref().map_or(ctx.requested_model.as_str(), |m| m.name());
    let facts =
        Facts { requested: &ctx.requested_model, model, principal: ctx.principal.as_deref(), metadata: &ctx.metadata };
    let holds = limits::admit(&ctx.snapshot.rate_limits, &ctx.shared.counters, &facts, est)
        .map_err(GatewayError::RateLimited)?;
    ctx.holds.rate = holds;
    Ok(())
}
