//! Stage 8: response cache lookup (exact, then semantic). A hit is an
//! `UpstreamReply` like an upstream's answer, so output guardrails,
//! settlement, the request log and the `/v1/messages` translation run on it
//! exactly as on a fresh answer. Not enabled in this build: every request
//! goes upstream.

use super::RequestCtx;
use super::receive::Parsed;
use crate::providers::UpstreamReply;

pub fn lookup(_ctx: &mut RequestCtx, _req: &Parsed<'_>) -> Option<UpstreamReply> {
    None
}
