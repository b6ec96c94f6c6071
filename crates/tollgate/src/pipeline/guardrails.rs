//! Stages 7 and 11: input and output guardrails. Validators will run in
//! parallel and mutators in order here; this build passes content through.

use super::RequestCtx;
use super::receive::Parsed;
use crate::error::GatewayError;
use crate::providers::UpstreamReply;

pub async fn input(_ctx: &mut RequestCtx, _req: &Parsed<'_>) -> Result<(), GatewayError> {
    Ok(())
}

pub async fn output(_ctx: &mut RequestCtx, reply: UpstreamReply) -> Result<UpstreamReply, GatewayError> {
    Ok(reply)
}
