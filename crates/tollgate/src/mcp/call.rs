//! One governed `tools/call`: the tool is found among those the endpoint
//! shows this caller (unknown and forbidden tools get the same answer),
//! admitted on the shared path (allowlists, `tool_calls_per_*` limits),
//! its arguments pass the `mcp_tool_pre` guardrails, the server is called,
//! its result passes `mcp_tool_post`, and the call — allowed or refused —
//! is a request-log entry of kind `mcp`, a metric and a span.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use http::HeaderMap;
use serde_json::{Value, json};

use super::Hub;
use super::catalog::{self, Exposed};
use super::inventory::Standing;
use super::registry::Front;
use super::rpc;
use super::session::Session;
use super::upstream::{Conn, Relay};
use crate::admission::{Admission, Requested, guardrails, record};
use crate::config::snapshot::Snapshot;
use crate::error::{AuthError, GatewayError};
use crate::guardrails::Hook;
use crate::guardrails::content::Shape;
use crate::identity::Principal;
use crate::reqlog::entry::McpLog;
use crate::resource::Kind;
use crate::state::Shared;

/// What a request to one endpoint carries; owned, so its handling can
/// outlive the HTTP request that started it (a streamed answer).
pub struct Ctx {
    pub hub: Arc<Hub>,
    pub shared: Arc<Shared>,
    pub snap: Arc<Snapshot>,
    pub principal: Arc<Principal>,
    pub headers: HeaderMap,
    pub session: Option<Arc<Session>>,
    /// The endpoint's name (a server or a virtual server in `snap`).
    pub endpoint: String,
    pub request_id: String,
    /// The connection the request went to, once known: a server request
    /// relayed to the client is answered on it.
    pub conn: Mutex<Option<Arc<Conn>>>,
    /// A stateless 2026-07-28 request (no session, the envelope in `_meta`).
    pub modern: bool,
}

impl Ctx {
    pub fn front(&self) -> Front<'_> {
        self.snap.mcp.front(&self.endpoint).expect("the endpoint was resolved before the context was made")
    }
}

/// The outcome as the log and metrics name it.
struct Done {
    status: u16,
    error: Option<&'static str>,
    decision: &'static str,
    result_bytes: u64,
    is_error: bool,
}

pub async fn tools_call(ctx: &Ctx, client_id: &Value, params: Value, relay: &Relay) -> Result<Value, Value> {
    let started = Instant::now();
    let Some(name) = params.get("name").and_then(Value::as_str).map(str::to_string) else {
        return Err(rpc::error_body(rpc::INVALID_PARAMS, "tools/call needs `name`, the tool to call"));
    };
    let args = params.get("arguments").cloned().unwrap_or_else(|| json!({}));
    let mut adm = Admission::new(ctx.request_id.clone(), Kind::Mcp, ctx.snap.clone(), ctx.shared.clone(), &ctx.headers);
    adm.principal = Some(ctx.principal.clone());
    let found = catalog::find(&ctx.hub, &ctx.shared, &ctx.snap, ctx.front(), &name)
        .await
        .filter(|e| catalog::allowed(&ctx.snap, &ctx.principal, e));
    let Some(exposed) = found.or_else(|| catalog::unlisted(&ctx.snap, &ctx.principal, ctx.front(), &name)) else {
        // Not there, or not for this caller: the same answer either way.
        adm.requested = format!("{}/{name}", ctx.endpoint.as_str());
        let e = rpc::error_body(rpc::INVALID_PARAMS, format!("Unknown tool: {name}"));
        finish(ctx, &adm, None, &args, started, refused(404, "unknown_tool"));
        return Err(e);
    };
    if exposed.standing != Standing::Approved {
        adm.requested = exposed.qualified();
        let why = match exposed.standing {
            Standing::Changed => "its definition changed since it was approved",
            _ => "it has not been approved yet",
        };
        finish(ctx, &adm, Some(&exposed), &args, started, refused(403, "tool_quarantined"));
        return Err(rpc::error_body(
            rpc::REFUSED,
            format!("Tool {name} is quarantined: {why}; an administrator must approve it"),
        ));
    }
    let what = Requested::Tool { server: &exposed.server.name, tool: &exposed.tool };
    if let Err(e) = adm.admit(&ctx.headers, what, &Default::default()) {
        record::refused(&adm, &e);
        let (status, _, code, _) = e.parts();
        finish(ctx, &adm, Some(&exposed), &args, started, refused(status.as_u16(), code.unwrap_or("refused")));
        return Err(refusal(&e, &name));
    }
    let outcome = governed(ctx, &mut adm, &exposed, client_id, params, args.clone(), relay).await;
    adm.holds.settle(None, None);
    let (answer, done) = outcome;
    finish(ctx, &adm, Some(&exposed), &args, started, done);
    answer
}

fn refused(status: u16, error: &'static str) -> Done {
    Done { status, error: Some(error), decision: "refused", result_bytes: 0, is_error: false }
}

impl Done {
    /// A guardrail stopped the call or its result.
    fn blocked() -> Done {
        Done { status: 400, error: Some("guardrail_blocked"), decision: "blocked", result_bytes: 0, is_error: true }
    }

    /// The server could not be reached or answered with an error.
    fn failed(error: &'static str) -> Done {
        Done { status: 502, error: Some(error), decision: "error", result_bytes: 0, is_error: false }
    }
}

/// Guardrails around the upstream call.
async fn governed(
    ctx: &Ctx,
    adm: &mut Admission,
    exposed: &Exposed,
    client_id: &Value,
    mut params: Value,
    mut args: Value,
    relay: &Relay,
) -> (Result<Value, Value>, Done) {
    let pre = guardrails::active(adm, Hook::McpToolPre);
    if !pre.is_empty()
        && let Err(e) = guardrails::check(adm, Hook::McpToolPre, Shape::ToolArgs, &mut args, &pre).await
    {
        return (Ok(blocked_result(&e)), Done::blocked());
    }
    params["name"] = Value::String(exposed.tool.clone());
    params["arguments"] = args;
    let conn = match ctx.hub.conn(&ctx.shared, &exposed.server, ctx.session.as_deref()).await {
        Ok(c) => c,
        Err(e) => {
            return (Err(e), Done::failed("upstream_unavailable"));
        }
    };
    let started = Instant::now();
    let answer = forward(ctx, &conn, client_id, "tools/call", params, relay).await;
    ctx.shared
        .metrics
        .mcp_duration
        .get_or_create(&crate::metrics::McpServerLabels { server: exposed.server.name.clone() })
        .observe(started.elapsed().as_secs_f64());
    let mut result = match answer {
        Ok(r) => r,
        Err(e) => {
            let code = e.get("code").and_then(Value::as_i64).unwrap_or(0);
            let error = if code == rpc::UPSTREAM_ERROR { "upstream_unavailable" } else { "upstream_error" };
            return (Err(e), Done::failed(error));
        }
    };
    let post = guardrails::active(adm, Hook::McpToolPost);
    if !post.is_empty() {
        match guardrails::check(adm, Hook::McpToolPost, Shape::ToolResult, &mut result, &post).await {
            Ok(_) => mark(adm, &mut result),
            Err(e) => {
                return (Ok(blocked_result(&e)), Done::blocked());
            }
        }
    }
    let is_error = result.get("isError").and_then(Value::as_bool).unwrap_or(false);
    let bytes = serde_json::to_vec(&result).map_or(0, |b| b.len() as u64);
    (Ok(result), Done { status: 200, error: None, decision: "allowed", result_bytes: bytes, is_error })
}

/// One request to `conn` on the client's behalf, cancellable by the client.
pub async fn forward(
    ctx: &Ctx,
    conn: &Arc<Conn>,
    client_id: &Value,
    method: &str,
    params: Value,
    relay: &Relay,
) -> Result<Value, Value> {
    *ctx.conn.lock().unwrap_or_else(|p| p.into_inner()) = Some(conn.clone());
    let upstream_id = conn.next_id();
    if let Some(s) = &ctx.session {
        s.begin(client_id, conn, &upstream_id);
    }
    let answer = conn.call(upstream_id, method, params, Some(relay)).await;
    if let Some(s) = &ctx.session {
        s.end(client_id);
    }
    answer
}

/// A result a guardrail stopped: a tool error the model can read, naming
/// the guardrail (never what it matched).
fn blocked_result(e: &GatewayError) -> Value {
    let text = match e {
        GatewayError::GuardrailBlocked { guardrail, hook } => {
            format!("Blocked by guardrail `{guardrail}` ({hook}); the call was not carried out as asked.")
        }
        other => format!("Blocked: {other}"),
    };
    json!({ "content": [{ "type": "text", "text": text }], "isError": true })
}

/// Flags and rewrites on a result are told to the client in `_meta`, so an
/// agent can treat a result marked as a likely injection with suspicion.
fn mark(adm: &Admission, result: &mut Value) {
    let marks: Vec<Value> = adm
        .guard
        .decisions
        .lock()
        .map(|d| {
            d.iter()
                .filter(|g| g.hook == "mcp_tool_post" && (g.outcome == "flagged" || g.outcome == "mutated"))
                .map(|g| json!({ "guardrail": g.name, "outcome": g.outcome, "reason": g.reason }))
                .collect()
        })
        .unwrap_or_default();
    if !marks.is_empty() && result.is_object() {
        result["_meta"]["io.tollgate/guardrails"] = Value::Array(marks);
    }
}

/// A refusal from admission as a JSON-RPC error.
fn refusal(e: &GatewayError, name: &str) -> Value {
    match e {
        GatewayError::Auth(AuthError::ToolNotAllowed(_)) => {
            rpc::error_body(rpc::INVALID_PARAMS, format!("Unknown tool: {name}"))
        }
        GatewayError::RateLimited(r) => json!({
            "code": rpc::REFUSED,
            "message": e.to_string(),
            "data": { "code": "rate_limit_exceeded", "rule": r.rule, "retry_after_ms": r.retry_after.map(|d| d.as_millis() as u64) },
        }),
        GatewayError::BudgetExceeded(b) => json!({
            "code": rpc::REFUSED,
            "message": e.to_string(),
            "data": { "code": "budget_exceeded", "rule": b.rule },
        }),
        other => {
            let (status, _, code, _) = other.parts();
            json!({
                "code": if status.is_client_error() { rpc::INVALID_PARAMS } else { rpc::INTERNAL_ERROR },
                "message": other.to_string(),
                "data": { "code": code },
            })
        }
    }
}

fn finish(ctx: &Ctx, adm: &Admission, exposed: Option<&Exposed>, args: &Value, started: Instant, d: Done) {
    let (server, tool) =
        exposed.map_or(("-".to_string(), "-".to_string()), |e| (e.server.name.clone(), e.tool.clone()));
    ctx.shared
        .metrics
        .mcp_calls
        .get_or_create(&crate::metrics::McpLabels { server: server.clone(), tool: tool.clone(), decision: d.decision })
        .inc();
    let mut entry = record::entry(adm, d.status, d.error, started.elapsed());
    entry.resolved_model = exposed.map(Exposed::qualified);
    entry.provider = exposed.map(|e| e.server.name.clone());
    entry.route = ctx.endpoint.as_str().to_string();
    entry.mcp = Some(McpLog {
        endpoint: ctx.endpoint.as_str().to_string(),
        server,
        tool,
        arguments_sha256: super::inventory::canonical_sha256(args),
        result_bytes: d.result_bytes,
        decision: d.decision.to_string(),
        is_error: d.is_error,
    });
    ctx.shared.reqlog.submit(entry);
}
