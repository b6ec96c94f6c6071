//! Stage 9: for a virtual model, the first route whose `when` matches the
//! requested name, metadata and subject (none matching = the default
//! targets). A physical model is its own only target.

use super::RequestCtx;
use crate::config::runtime::ModelRef;
use crate::error::{GatewayError, RequestError};

pub fn pick(ctx: &mut RequestCtx) -> Result<(), GatewayError> {
    match &ctx.model {
        None => Err(RequestError::UnknownModel(ctx.requested_model.clone()).into()),
        Some(ModelRef::Physical(_)) => Ok(()),
        Some(ModelRef::Virtual(vm)) => {
            let principal = ctx.principal.as_deref();
            ctx.route = vm.routes.iter().position(|r| r.when.matches(&ctx.requested_model, principal, &ctx.metadata));
            Ok(())
        }
    }
}
