//! The model-call pipeline of SPEC §1 as one ordered sequence over a
//! per-request context. The order is the design; each step says why it sits
//! where it does. Identity, policy and the guardrail hooks are the shared
//! admission path (`crate::admission`); this module adds what only a model
//! call has: the body's wire format, the cache, routing, the upstream call,
//! usage settlement and the `/v1/messages` front.
//!
//! Every decision here is made from the snapshot taken at the start of the
//! request and from in-memory state; the only network call is the upstream
//! call in stage 10.

pub mod body_timeout;
pub mod cache;
pub mod front;
pub mod prompt;
pub mod receive;
pub mod record;
pub mod route;
pub mod settle;
pub mod stream_guard;
pub mod upstream;

use std::sync::Arc;

use axum::body::Body;
use axum::response::Response;
use http::HeaderMap;

use crate::routing::catalog::Target;

use crate::state::Shared;

use std::borrow::Cow;

use crate::admission::guardrails::{self, Hook};
use crate::admission::{Admission, Requested};
use crate::config::snapshot::Snapshot;
use crate::error::GatewayError;
use crate::guardrails::Shape;
use crate::providers::Native;
use crate::resource::Kind;
use crate::routing::execute::Trail;
use crate::wire::openai::Usage;
use crate::wire::{Dialect, Operation};

/// Everything the stages learn about one model request, in the order they
/// learn it: the shared admission state, then what only a model call has.
pub struct RequestCtx {
    /// Identity, metadata, what is called, holds, trace: shared by every protocol.
    pub adm: Admission,
    pub op: Operation,
    /// The API shape the client speaks: errors and answers go back in it.
    pub front: Dialect,
    /// With `logging.bodies`: the bodies for the request log (cut to the limit).
    pub bodies: (Option<String>, Option<String>),
    /// For a stream: where stage 13 leaves the log entry for the stream to
    /// complete (usage, cost, duration) when it ends.
    pub log_slot: Option<settle::LogSlot>,
    pub stream: bool,
    /// For a virtual model, the index of the route whose rule matched (stage 9).
    pub route: Option<usize>,
    /// Every upstream attempt, retry, fallback and skip, and the time spent
    /// in attempts (to the response, or a stream's first event) and in
    /// backoff (stage 10).
    pub trail: Trail,
    /// The physical model that answered (stage 10).
    pub target: Option<Target>,
    pub usage: Option<Usage>,
    /// True when `usage` is the gateway's estimate (the provider reported none).
    pub usage_estimated: bool,
    /// What the response cache did (stage 8), when it took part.
    pub cache: Option<crate::cache::Decision>,
    /// The prompt template the request named (rendered before stage 1's parse).
    pub prompt: Option<crate::prompts::Applied>,
    /// The API the client called, when it is not the operation's own
    /// (`responses`: a Responses request the front turned into chat).
    pub surface: Option<&'static str>,
    /// A Responses request as the client wrote it (history expanded), for
    /// a provider with the Responses API of its own.
    pub native_responses: Option<bytes::Bytes>,
}

impl RequestCtx {
    pub fn new(adm: Admission, op: Operation) -> RequestCtx {
        RequestCtx {
            adm,
            op,
            front: Dialect::OpenAi,
            log_slot: None,
            bodies: (None, None),
            stream: false,
            route: None,
            trail: Trail::default(),
            target: None,
            usage: None,
            usage_estimated: false,
            cache: None,
            prompt: None,
            surface: None,
            native_responses: None,
        }
    }
}

/// Runs one model request through every stage, in order.
pub async fn run(ctx: &mut RequestCtx, headers: &HeaderMap, body: Body) -> Result<Response, GatewayError> {
    // 2. authenticate — first, before the body is read: it needs only headers,
    //    and refusing anonymous callers before buffering up to max_body_size
    //    keeps unauthenticated traffic cheap.
    ctx.adm.authenticate(headers).await?;

    // 1. receive — read the bounded body and parse only the top level; every
    //    field stays as raw bytes so unknown fields pass through untouched.
    let bytes = receive::read_body(body, headers, ctx.adm.snapshot.server.max_body_size).await?;
    let bytes = prompt::apply(ctx, bytes)?;
    let mut hub = None;
    let native_src = ctx.native_responses.clone();
    let (req, native) = read(ctx, headers, &bytes, &mut hub, native_src.as_ref())?;
    ctx.stream = req.stream;

    // 3–6. metadata, authorize, rate limits, budget reservation: the shared
    //    admission path (see `crate::admission` for why each sits where it does).
    let estimate = receive::estimate(ctx.op, &req);
    ctx.adm.admit(headers, Requested::Model(&req.model), &estimate)?;

    // 7. input guardrails — after admission so blocked traffic still counts
    //    against limits, before cache and upstream so no model sees unsafe
    //    input. They read the body in the client's own dialect; a mutator's
    //    rewrite (PII placeholders) is read again as the request from here on.
    let shape = match ctx.front {
        Dialect::OpenAi | Dialect::Responses => Shape::ChatRequest,
        Dialect::Anthropic => Shape::MessagesRequest,
    };
    match guardrails::run(&mut ctx.adm, Hook::LlmInput, shape, Cow::Borrowed(&bytes[..])).await? {
        Cow::Borrowed(_) => {
            let native = native.as_ref().filter(|n| n.dialect != Dialect::Responses || passes_through(ctx));
            forward(ctx, headers, &bytes, &req, native, &estimate).await
        }
        Cow::Owned(rewritten) => {
            let bytes = bytes::Bytes::from(rewritten);
            let mut hub = None;
            // The rewrite is of the hub; a Responses original would bypass it.
            let (req, native) = read(ctx, headers, &bytes, &mut hub, None)?;
            forward(ctx, headers, &bytes, &req, native.as_ref(), &estimate).await
        }
    }
}

/// Stage 1's parse: the hub view of the body (on `/v1/messages`, its
/// translation; the original goes along for Anthropic providers).
fn read<'a>(
    ctx: &RequestCtx,
    headers: &HeaderMap,
    bytes: &'a bytes::Bytes,
    hub: &'a mut Option<bytes::Bytes>,
    responses: Option<&'a bytes::Bytes>,
) -> Result<(receive::Parsed<'a>, Option<Native<'a>>), GatewayError> {
    Ok(match ctx.front {
        Dialect::OpenAi | Dialect::Responses => {
            // A Responses request: the hub body for the stages, the
            // client's own for a provider that speaks the Responses API.
            let native = match responses {
                Some(b) => Some(Native {
                    dialect: Dialect::Responses,
                    raw: crate::wire::json::RawObject::parse(b)
                        .map_err(|e| crate::error::RequestError::InvalidJson(e.to_string()))?,
                    beta: None,
                    hub_problem: None,
                }),
                None => None,
            };
            (receive::parse(ctx.op, bytes)?, native)
        }
        Dialect::Anthropic => {
            let (hub_bytes, hub_problem) = front::prepare(bytes)?;
            let raw = crate::wire::json::RawObject::parse(bytes)
                .map_err(|e| crate::error::RequestError::InvalidJson(e.to_string()))?;
            let native = Native { dialect: Dialect::Anthropic, raw, beta: front::beta(headers), hub_problem };
            (receive::parse(ctx.op, hub.insert(hub_bytes))?, Some(native))
        }
    })
}

/// Stages 8–13, on the request as the input guardrails let it through.
async fn forward(
    ctx: &mut RequestCtx,
    headers: &HeaderMap,
    bytes: &bytes::Bytes,
    req: &receive::Parsed<'_>,
    native: Option<&Native<'_>>,
    estimate: &crate::limits::Estimate,
) -> Result<Response, GatewayError> {
    // Kept only now: a body a guardrail blocked or rewrote is not logged as sent.
    if let Some(max) = ctx.adm.snapshot.log_bodies {
        ctx.bodies.0 = Some(cut(bytes, max));
    }

    // 8. cache lookup — after guardrails: a cached answer must not bypass
    //    them. A hit is a reply like an upstream's, so output guardrails,
    //    settlement and the front's translation run on it too.
    let cached = cache::lookup(ctx, headers, req, bytes).await?;

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
    let reply = match cached {
        Some(hit) => hit,
        None => {
            let fresh = upstream::call(ctx, req, native, want_usage).await?;
            cache::keep(ctx, fresh)
        }
    };

    // 11. output guardrails, 12. settle — on the reply before it leaves.
    let reply = output_guardrails(ctx, reply).await?;
    let reply = settle::run(ctx, reply, want_usage, bytes);
    if let (Some(max), crate::providers::UpstreamReply::Complete { body, .. }) = (ctx.adm.snapshot.log_bodies, &reply) {
        ctx.bodies.1 = Some(cut(&body[..], max));
    }

    // 13. record — headers are added by `record::finish` for every outcome.
    Ok(match ctx.front {
        Dialect::OpenAi | Dialect::Responses => upstream::into_response(reply),
        Dialect::Anthropic => front::respond(reply, &ctx.adm.requested, estimate.prompt),
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
    let mut ctx = RequestCtx::new(Admission::new(id, Kind::Model, snapshot, shared, &headers), op);
    ctx.front = front;
    let result = run(&mut ctx, &headers, body).await;
    record::finish(&ctx, result)
}

/// A Responses request: `body` is its hub translation, `native` the
/// request itself for OpenAI's own Responses API (see `passes_through`).
pub async fn handle_responses(
    id: String,
    snapshot: Arc<Snapshot>,
    shared: Arc<Shared>,
    headers: HeaderMap,
    body: Body,
    native: Option<bytes::Bytes>,
) -> Response {
    let mut ctx = RequestCtx::new(Admission::new(id, Kind::Model, snapshot, shared, &headers), Operation::ChatCompletions);
    ctx.surface = Some("responses");
    ctx.native_responses = native;
    let result = run(&mut ctx, &headers, body).await;
    record::finish(&ctx, result)
}

/// A request a front refused before the stages ran (a Responses body it
/// could not read or translate): recorded like a refusal inside them —
/// logged under the caller's identity, counted — so the request log keeps
/// one entry per request.
pub async fn refused_as(
    id: String,
    surface: Option<&'static str>,
    snapshot: Arc<Snapshot>,
    shared: Arc<Shared>,
    headers: HeaderMap,
    e: GatewayError,
) -> Response {
    let mut ctx = RequestCtx::new(Admission::new(id, Kind::Model, snapshot, shared, &headers), Operation::ChatCompletions);
    ctx.surface = surface;
    // For the entry's subject and metadata; the front has already let the caller in.
    let _ = ctx.adm.authenticate(&headers).await;
    record::finish(&ctx, Err(e))
}

/// Stage 11. A complete answer is checked (and rewritten) whole; a
/// stream is checked as it passes, held back only as far as a value split
/// across events needs (`guardrails::stream`).
async fn output_guardrails(
    ctx: &mut RequestCtx,
    reply: crate::providers::UpstreamReply,
) -> Result<crate::providers::UpstreamReply, GatewayError> {
    if ctx.op == Operation::Embeddings {
        return Ok(reply); // vectors carry no text to judge
    }
    match reply {
        crate::providers::UpstreamReply::Complete { body, usage, dialect } => {
            let shape = match dialect {
                Dialect::OpenAi => Shape::ChatResponse,
                Dialect::Anthropic => Shape::MessagesResponse,
                // Passed through only when no output guardrail applies (`passes_through`).
                Dialect::Responses => return Ok(crate::providers::UpstreamReply::Complete { body, usage, dialect }),
            };
            let body = match guardrails::run(&mut ctx.adm, Hook::LlmOutput, shape, Cow::Borrowed(&body[..])).await? {
                Cow::Borrowed(_) => body,
                Cow::Owned(rewritten) => bytes::Bytes::from(rewritten),
            };
            Ok(crate::providers::UpstreamReply::Complete { body, usage, dialect })
        }
        crate::providers::UpstreamReply::Stream(body, dialect) => {
            Ok(crate::providers::UpstreamReply::Stream(stream_guard::guard(&mut ctx.adm, body, dialect), dialect))
        }
    }
}

/// Whether a Responses request may go to OpenAI as the client wrote it:
/// only when nothing the gateway does to a chat request would be lost —
/// no prompt template rendered into the hub, no output guardrail (a
/// Responses stream repeats its text in events the guardrails do not
/// read), no placeholders to restore. Otherwise it is translated like any.
fn passes_through(ctx: &RequestCtx) -> bool {
    ctx.prompt.is_none()
        && !(ctx.adm.guard.restore && !ctx.adm.guard.placeholders.is_empty())
        && guardrails::active(&ctx.adm, Hook::LlmOutput).is_empty()
}

/// The first `max` bytes as text (cut on a character boundary).
fn cut(bytes: &[u8], max: usize) -> String {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(max)]).into_owned();
    if bytes.len() > max { format!("{text}…[cut at {max} bytes]") } else { text }
}
