//! Stage 4: resolve the requested name and check the principal may use it.
//! Globs are matched against the canonical `<provider>/<model>` name and the
//! name as requested, so a key scoped to `openai-main/*` cannot reach the
//! same model through a bare alias it was not granted, and vice versa.

use super::RequestCtx;
use crate::config::runtime::Target;
use crate::error::{AuthError, GatewayError, RequestError};

pub fn run(ctx: &RequestCtx) -> Result<Target, GatewayError> {
    let requested = ctx.requested_model.as_str();
    let target = ctx
        .snapshot
        .models
        .resolve(requested)
        .ok_or_else(|| RequestError::UnknownModel(requested.to_string()))?;
    let principal = ctx.principal.as_deref().ok_or(AuthError::Missing)?;
    if !principal.may_use(&target.canonical) {
        return Err(AuthError::ModelNotAllowed(requested.to_string()).into());
    }
    Ok(target)
}
