//! Stage 5: rate limits. Every matching rule takes from its counter (one
//! call, or a token estimate that settlement trues up); the first rule that
//! would be exceeded refuses the call with 429, its id and `retry-after`.

use super::Admission;
use crate::error::GatewayError;
use crate::limits::{self, Estimate};

pub fn admit(adm: &mut Admission, est: &Estimate) -> Result<(), GatewayError> {
    if adm.snapshot.rate_limits.is_empty() {
        return Ok(());
    }
    let holds = limits::admit(&adm.snapshot.rate_limits, &adm.shared.counters, &adm.facts(), est)
        .map_err(GatewayError::RateLimited)?;
    adm.holds.rate = holds;
    Ok(())
}
