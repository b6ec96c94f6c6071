//! Stage 6: budget reservation. Matching `budgets` rules will reserve the
//! worst-case cost here and settle in stage 12; this build reserves nothing.

use super::RequestCtx;
use crate::error::GatewayError;

pub fn reserve(_ctx: &mut RequestCtx) -> Result<(), GatewayError> {
    Ok(())
}
