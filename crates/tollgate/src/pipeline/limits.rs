//! Stage 5: rate limits. Rules from `rate_limits` will be admitted here
//! against in-memory counters; this build checks the rules at load and
//! admits every request.

use super::RequestCtx;
use crate::error::GatewayError;

pub fn admit(_ctx: &mut RequestCtx) -> Result<(), GatewayError> {
    Ok(())
}
