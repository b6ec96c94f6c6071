//! Stage 8: response cache lookup (exact, then semantic). Not enabled in this
//! build: every request goes upstream.

use axum::response::Response;

use super::RequestCtx;
use super::receive::Parsed;

pub fn lookup(_ctx: &mut RequestCtx, _req: &Parsed<'_>) -> Option<Response> {
    None
}
