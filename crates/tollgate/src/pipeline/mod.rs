//! The request pipeline of SPEC §1 as one ordered sequence over a
//! per-request context. The order is the design; each step says why it sits
//! where it does. Stages later capabilities fill (limits, budgets,
//! guardrails, cache, settlement) already have their place and pass through.
//!
//! Every decision here is made from the snapshot taken at the start of the
//! request and from in-memory state; the only network call is the upstream
//! call in stage 10.

pub mod authenticate;
pub mod authorize;
pub mod budget;
pub mod cache;
pub mod front;
pub mod guardrails;
pub mod limits;
pub mod metadata;
pub mod receive;
pub mod record;
pub mod route;
pub mod settle;
pub mod upstream;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::response::Response;
use http::HeaderMap;

use crate::config::runtime::{ModelRef, Principal, Shared, Snapshot, Target};
use crate::error::GatewayError;
use crate::providers::{Dialect, Native, Operation};
use crate::routing::execute::Attempt;
use crate::wire::openai::Usage;

/// Everything the stages learn about one request, in the order they learn it.
pub struct RequestCtx {
    pub id: String,
    pub op: Operation,
    /// The API shape the client speaks: errors and answers go back in it.
    pub front: Dialect,
    pub started: Instant,
    /// The config this request runs under from start to finish.
    pub snapshot: Arc<Snapshot>,
    /// Counters, accounts and pools that outlive snapshots.
    pub shared: Arc<Shared>,
    /// Rate-limit and budget reservations, settled in stage 12.
    pub holds: settle::Holds,
    /// With `logging.bodies`: the bodies for the request log (cut to the limit).
    pub bodies: (Option<String>, Option<String>),
    /// W3C trace context: (trace id, this request's span id, parent span id).
    pub trace: (String, String, Option<String>),
    /// For a stream: where stage 13 leaves the log entry for the stream to
    /// complete (usage, cost, duration) when it ends.
    pub log_slot: Option<settle::LogSlot>,
    pub principal: Option<Arc<Principal>>,
    pub metadata: BTreeMap<String, String>,
    pub requested_model: String,
    pub stream: bool,
    /// What the requested name stands for (stage 4).
    pub model: Option<ModelRef>,
    /// For a virtual model, the index of the route whose rule matched (stage 9).
    pub route: Option<usize>,
    /// Every upstream attempt, retry, fallback and skip (stage 10).
    pub attempts: Vec<Attempt>,
    /// The physical model that answered (stage 10).
    pub target: Option<Target>,
    /// Time spent in upstream attempts (to the response, or a stream's first event).
    pub upstream_time: Option<Duration>,
    /// Time spent waiting between retries.
    pub backoff_time: Duration,
    pub usage: Option<Usage>,
    /// True when `usage` is the gateway's estimate (the provider reported none).
    pub usage_estimated: bool,
}

impl RequestCtx {
    pub fn new(id: String, op: Operation, snapshot: Arc<Snapshot>, shared: Arc<Shared>) -> RequestCtx {
        RequestCtx {
            id,
            op,
            front: Dialect::OpenAi,
            started: Instant::now(),
            snapshot,
            shared,
            holds: settle::Holds::default(),
            log_slot: None,
            trace: (String::new(), String::new(), None),
            bodies: (None, None),
            principal: None,
            metadata: BTreeMap::new(),
            requested_model: String::new(),
            stream: false,
            model: None,
            route: None,
            attempts: Vec::new(),
            target: None,
            upstream_time: None,
            backoff_time: Duration::ZERO,
            usage: None,
            usage_estimated: false,
        }
    }
}

/// Runs one model request through every stage, in order.
pub async fn run(ctx: &mut RequestCtx, headers: &HeaderMap, body: Body) -> Result<Response, GatewayError> {
    // 2. authenticate — first, before the body is read: it needs only headers,
    //    and refusing anonymous callers before buffering up to max_body_size
    //    keeps unauthenticated traffic cheap.
    ctx.principal = Some(authenticate::run(&ctx.snapshot.auth, &ctx.shared.keys, headers).await?);

    // 1. receive — read the bounded body and parse only the top level; every
    //    field stays as raw bytes so unknown fields pass through untouched.
    let bytes = receive::read_body(body, headers, ctx.snapshot.server.max_body_size).await?;
    if let Some(max) = ctx.snapshot.log_bodies {
        ctx.bodies.0 = Some(cut(&bytes, max));
    }
    // On `/v1/messages` the stages read a hub translation; the original
    // goes along for Anthropic providers.
    let hub_bytes: bytes::Bytes;
    let mut native = None;
    let req = match ctx.front {
        Dialect::OpenAi => receive::parse(ctx.op, &bytes)?,
        Dialect::Anthropic => {
            let (hub, hub_problem) = front::prepare(&bytes)?;
            hub_bytes = hub;
            let raw = crate::wire::json::RawObject::parse(&bytes)
                .map_err(|e| crate::error::RequestError::InvalidJson(e.to_string()))?;
            native = Some(Native { raw, beta: front::beta(headers), hub_problem });
            receive::parse(ctx.op, &hub_bytes)?
        }
    };
    ctx.requested_model = req.model.to_string();
    ctx.stream = req.stream;

    // 3. metadata — merged before authorization and limits, which match on it.
    ctx.metadata = metadata::run(&ctx.snapshot.metadata, ctx.principal.as_deref(), headers)?;

    // 4. authorize — the model must exist and the subject may use it; before
    //    any counter moves, so a refused request costs no quota.
    ctx.model = Some(authorize::run(ctx)?);

    // 5. rate limits, then 6. budget reservation — after authorization (only
    //    permitted work is counted) and before any model sees the prompt.
    let estimate = limits::estimate(ctx.op, &req);
    limits::admit(ctx, &estimate)?;
    budget::reserve(ctx, &estimate)?;

    // 7. input guardrails — after admission so blocked traffic still counts
    //    against limits, before cache and upstream so no model sees unsafe input.
    guardrails::input(ctx, &req).await?;

    // 8. cache lookup — after guardrails: a cached answer must not bypass them.
    if let Some(hit) = cache::lookup(ctx, &req) {
        return Ok(hit);
    }

    // 9. route — pick the virtual model's rule last, when everything that
    //    could refuse the request has had its say; the strategy orders the
    //    targets as stage 10 tries them, so health is read at the last moment.
    route::pick(ctx)?;

    // 10. upstream call — the only network call on the path.
    // Usage is needed to settle token limits and budgets; a stream only
    // reports it when asked, so ask — and keep that chunk from a client
    // that did not.
    let client_wants_usage = req
        .obj
        .field::<serde_json::Value>("stream_options")
        .ok()
        .flatten()
        .and_then(|v| v.get("include_usage").and_then(serde_json::Value::as_bool))
        .unwrap_or(false);
    // Asked for every stream, not only budgeted ones: the request log and
    // the metrics need real usage too.
    let want_usage = req.stream && !client_wants_usage;
    let reply = upstream::call(ctx, &req, native.as_ref(), want_usage).await?;

    // 11. output guardrails, 12. settle — on the reply before it leaves.
    let reply = guardrails::output(ctx, reply).await?;
    let reply = settle::run(ctx, reply, want_usage, &bytes);
    if let (Some(max), crate::providers::UpstreamReply::Complete { body, .. }) = (ctx.snapshot.log_bodies, &reply) {
        ctx.bodies.1 = Some(cut(body, max));
    }

    // 13. record — headers are added by `record::finish` for every outcome.
    Ok(match ctx.front {
        Dialect::OpenAi => upstream::into_response(reply),
        Dialect::Anthropic => front::respond(reply, &ctx.requested_model, estimate.prompt),
    })
}

/// Entry point used by the HTTP handlers: runs the pipeline and records the
/// outcome, success or error, on the response.
pub async fn handle(
    id: String,
    op: Operation,
    front: Dialect,
    snapshot: Arc<Snapshot>,
    shared: Arc<Shared>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let mut ctx = RequestCtx::new(id, op, snapshot, shared);
    ctx.front = front;
    ctx.trace = crate::traces::context(&headers);
    let result = run(&mut ctx, &headers, body).await;
    record::finish(&ctx, result)
}

/// The first `max` bytes as text (cut on a character boundary).
fn cut(bytes: &[u8], max: usize) -> String {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(max)]).into_owned();
    if bytes.len() > max { format!("{text}…[cut at {max} bytes]") } else { text }
}
