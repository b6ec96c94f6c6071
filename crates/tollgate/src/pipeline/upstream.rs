//! Stage 10: the upstream call, and the reply turned into a response.

use std::time::Instant;

use axum::body::Body;
use axum::response::Response;
use http::{HeaderValue, header};

use super::RequestCtx;
use super::receive::Parsed;
use crate::error::{GatewayError, RequestError};
use crate::providers::{Call, UpstreamReply};

pub async fn call(ctx: &mut RequestCtx, req: &Parsed<'_>) -> Result<UpstreamReply, GatewayError> {
    let target = ctx.target.clone().ok_or_else(|| RequestError::UnknownModel(ctx.requested_model.clone()))?;
    let sent = Instant::now();
    let result = target
        .provider
        .call(Call {
            op: ctx.op,
            upstream_model: &target.upstream_model,
            request: &req.obj,
            stream: req.stream,
            max_response_size: ctx.snapshot.server.max_response_size,
        })
        .await;
    ctx.upstream_time = Some(sent.elapsed());
    let reply = result?;
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
        UpstreamReply::Stream(body) => {
            let mut r = Response::new(body);
            let h = r.headers_mut();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            h.insert("x-accel-buffering", HeaderValue::from_static("no"));
            r
        }
    }
}
