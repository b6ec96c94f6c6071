//! Stage 4: resolve the requested name and check the principal may use it.
//! A virtual model is authorized by its own name. A physical model is
//! authorized by its canonical `<provider>/<model>` name, so a key scoped to
//! `openai-main/*` reaches the same models whether it writes the canonical
//! or a bare alias, and nothing else.

use super::RequestCtx;
use crate::config::runtime::ModelRef;
use crate::error::{AuthError, GatewayError, RequestError};

pub fn run(ctx: &RequestCtx) -> Result<ModelRef, GatewayError> {
    let requested = ctx.requested_model.as_str();
    let model =
        ctx.snapshot.models.resolve_ref(requested).ok_or_else(|| RequestError::UnknownModel(requested.to_string()))?;
    let principal = ctx.principal.as_deref().ok_or(AuthError::Missing)?;
    if !ctx.snapshot.auth.allows(principal, model.name()) {
        return Err(AuthError::ModelNotAllowed(requested.to_string()).into());
    }
    Ok(model)
}
