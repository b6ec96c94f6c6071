//! Stage 9: for a virtual model, the first route whose `when` matches the
//! requested name, metadata and subject (none matching = the default
//! targets). A physical model is its own only target.

use super::RequestCtx;
use crate::error::{GatewayError, RequestError};
use crate::routing::catalog::ModelRef;

pub fn pick(ctx: &mut RequestCtx) -> Result<(), GatewayError> {
    match ctx.adm.model() {
        None => Err(RequestError::UnknownModel(ctx.adm.requested.clone()).into()),
        Some(ModelRef::Physical(_)) => Ok(()),
        Some(ModelRef::Virtual(vm)) => {
            let principal = ctx.adm.principal.as_deref();
            ctx.route = vm.routes.iter().position(|r| r.when.matches(&ctx.adm.requested, principal, &ctx.adm.metadata));
            Ok(())
        }
    }
}
