//! Stage 10: the upstream call — one attempt for a physical model, the
//! routing loop (retries, fallbacks, breakers) for a virtual one — and the
//! reply turned into a response.

use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use http::{HeaderValue, header};

use super::RequestCtx;
use super::receive::Parsed;
use crate::config::runtime::ModelRef;
use crate::error::{GatewayError, RequestError};
use crate::providers::UpstreamReply;
use crate::routing::execute::{Attempt, Exec, Outcome, call_physical, run_virtual};

pub async fn call(
    ctx: &mut RequestCtx,
    req: &Parsed<'_>,
    native: Option<&crate::providers::Native<'_>>,
    want_usage: bool,
) -> Result<UpstreamReply, GatewayError> {
    let model = ctx.model.clone().ok_or_else(|| RequestError::UnknownModel(ctx.requested_model.clone()))?;
    let mut x = Exec {
        op: ctx.op,
        requested: &ctx.requested_model,
        principal: ctx.principal.as_deref(),
        metadata: &ctx.metadata,
        request: &req.obj,
        native,
        stream: req.stream,
        want_usage,
        max_response_size: ctx.snapshot.server.max_response_size,
        attempts: Vec::new(),
        upstream_time: Duration::ZERO,
        backoff_time: Duration::ZERO,
    };
    let result = match &model {
        ModelRef::Physical(target) => {
            let started = std::time::Instant::now();
            let r = call_physical(&mut x, target, None).await;
            let (outcome, status, reason) = match &r {
                Ok(_) => (Outcome::Ok, Some(200), String::new()),
                Err(e) => (Outcome::Failed, e.status(), e.to_string()),
            };
            x.attempts.push(Attempt {
                ended: std::time::Instant::now(),
                target: target.canonical.clone(),
                outcome,
                status,
                latency: started.elapsed(),
                reason,
            });
            r.map(|reply| (reply, target.clone())).map_err(GatewayError::from)
        }
        ModelRef::Virtual(vm) => {
            let plan = ctx.route.and_then(|i| vm.routes.get(i)).map_or(&vm.default, |r| &r.plan);
            run_virtual(vm, Some(plan), &mut x).await
        }
    };
    let (attempts, upstream_time, backoff_time) = (x.attempts, x.upstream_time, x.backoff_time);
    ctx.attempts = attempts;
    ctx.upstream_time = Some(upstream_time);
    ctx.backoff_time = backoff_time;
    let (reply, target) = result?;
    ctx.target = Some(target);
    if let UpstreamReply::Complete { usage, .. } = &reply {
        ctx.usage = usage.clone();
    }
    Ok(reply)
}

pub fn into_response(reply: UpstreamReply) -> Response {
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
