//! Stage 10: the upstream call — one attempt for a physical model, the
//! routing loop (retries, fallbacks, breakers) for a virtual one — and the
//! reply turned into a response.

use axum::body::Body;
use axum::response::Response;
use http::{HeaderValue, header};

use super::RequestCtx;
use super::receive::Parsed;
use crate::error::{GatewayError, RequestError};
use crate::providers::UpstreamReply;
use crate::routing::catalog::ModelRef;
use crate::routing::execute::{self, Exec};

pub async fn call(
    ctx: &mut RequestCtx,
    req: &Parsed<'_>,
    native: Option<&crate::providers::Native<'_>>,
    want_usage: bool,
) -> Result<UpstreamReply, GatewayError> {
    let model = ctx.adm.model().cloned().ok_or_else(|| RequestError::UnknownModel(ctx.adm.requested.clone()))?;
    let plan = match &model {
        ModelRef::Virtual(vm) => Some(ctx.route.and_then(|i| vm.routes.get(i)).map_or(&vm.default, |r| &r.plan)),
        ModelRef::Physical(_) => None,
    };
    let mut x = Exec {
        op: ctx.op,
        requested: &ctx.adm.requested,
        principal: ctx.adm.principal.as_deref(),
        metadata: &ctx.adm.metadata,
        request: &req.obj,
        native,
        stream: req.stream,
        want_usage,
        max_response_size: ctx.adm.snapshot.server.max_response_size,
        trail: &mut ctx.trail,
        prompt: ctx.prompt.as_ref(),
    };
    let (reply, target) = execute::run(&model, plan, &mut x).await?;
    ctx.target = Some(target);
    if let UpstreamReply::Complete { usage, .. } = &reply {
        ctx.usage = usage.clone();
    }
    Ok(reply)
}

/// The reply as a response; its dialect rides along as an extension, so a
/// front can tell an answer it must translate from one it passes on.
pub fn into_response(reply: UpstreamReply) -> Response {
    let dialect = reply.dialect();
    let mut r = into_response_inner(reply);
    r.extensions_mut().insert(dialect);
    r
}

fn into_response_inner(reply: UpstreamReply) -> Response {
    match reply {
        UpstreamReply::Complete { body, .. } => {
            let mut r = Response::new(Body::from(body));
            r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            r
        }
        UpstreamReply::Stream(body, _) => {
            let mut r = Response::new(body);
            let h = r.headers_mut();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            h.insert("x-accel-buffering", HeaderValue::from_static("no"));
            r
        }
    }
}
