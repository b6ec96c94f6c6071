//! Stage 9: pick the concrete target. A physical model is its own target;
//! virtual models (strategies, health, fallbacks) will choose here.

use super::RequestCtx;
use crate::error::{GatewayError, RequestError};

pub fn pick(ctx: &mut RequestCtx) -> Result<(), GatewayError> {
    if ctx.target.is_none() {
        return Err(RequestError::UnknownModel(ctx.requested_model.clone()).into());
    }
    Ok(())
}
