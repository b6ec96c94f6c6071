//! `/mcp/<name>`: MCP Streamable HTTP for clients — POST one message, GET
//! the session's stream, DELETE to end the session — and the legacy
//! HTTP+SSE transport at `/mcp/<name>/sse` with its `/message` endpoint.
//!
//! Every request is authenticated (a tollgate key or JWT as
//! `Authorization: Bearer`; 401 with `WWW-Authenticate` otherwise), its
//! `Origin` checked (a browser page from another origin gets 403), and a
//! session is usable only on the endpoint and by the subject that opened
//! it (anything else is 404, as for an unknown session).

#![expect(
    clippy::result_large_err,
    reason = "the checks before a body is read end in a finished response; they are not on a hot loop"
)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::response::Response;
use axum::routing::{get, post};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::Hub;
use super::call::{self, Ctx};
use super::registry::Front;
use super::rpc::{self, Msg};
use super::session::Session;
use crate::config::reload::Live;

/// Methods a real server's endpoint relays as they are (a virtual server
/// composes tools only).
const RELAYED: [&str; 9] = [
    "resources/list",
    "resources/templates/list",
    "resources/read",
    "resources/subscribe",
    "resources/unsubscribe",
    "prompts/list",
    "prompts/get",
    "completion/complete",
    "logging/setLevel",
];

/// SSE comment sent on idle streams so proxies keep them open.
const KEEPALIVE: Duration = Duration::from_secs(15);

/// What the MCP endpoints run on.
pub struct Door {
    pub live: Arc<Live>,
    pub hub: Arc<Hub>,
    /// Request ids, from the server's one sequence.
    pub ids: Box<dyn Fn() -> String + Send + Sync>,
}

type App = Door;

pub fn routes<S: Clone + Send + Sync + 'static>(door: Arc<Door>) -> Router<S> {
    Router::new()
        .route("/mcp/{name}", post(post_message).get(open_stream).delete(end_session))
        .route("/mcp/{name}/sse", get(legacy_open))
        .route("/mcp/{name}/message", post(legacy_message))
        .with_state(door)
}

fn rpc_response(status: StatusCode, body: &Value) -> Response {
    let mut r = Response::new(Body::from(body.to_string()));
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

fn refuse(status: StatusCode, code: i64, message: impl Into<String>) -> Response {
    rpc_response(status, &rpc::error(Value::Null, code, message))
}

/// The checks every request passes before its body is read.
async fn enter(app: &App, name: &str, headers: &HeaderMap) -> Result<Ctx, Response> {
    let snap = app.live.snapshot();
    if snap.mcp.front(name).is_none() {
        return Err(refuse(
            StatusCode::NOT_FOUND,
            rpc::INVALID_REQUEST,
            format!("no MCP server `{name}` on this gateway"),
        ));
    }
    if !origin_ok(headers, &snap.server.allowed_origins) {
        return Err(refuse(
            StatusCode::FORBIDDEN,
            rpc::INVALID_REQUEST,
            "this Origin may not call the MCP gateway; add it to server.allowed_origins",
        ));
    }
    let shared = app.live.shared();
    let principal = match crate::identity::authenticate::run(&snap.auth, &shared.keys, headers).await {
        Ok(p) => p,
        Err(e) => {
            let mut r = refuse(StatusCode::UNAUTHORIZED, rpc::INVALID_REQUEST, e.to_string());
            r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"tollgate\""));
            return Err(r);
        }
    };
    if let Some(v) = headers.get("mcp-protocol-version") {
        let v = v.to_str().unwrap_or("");
        if !rpc::ALL_VERSIONS.contains(&v) {
            return Err(refuse(
                StatusCode::BAD_REQUEST,
                rpc::INVALID_REQUEST,
                format!("unsupported MCP-Protocol-Version `{v}`; this gateway speaks {}", rpc::ALL_VERSIONS.join(", ")),
            ));
        }
    }
    Ok(Ctx {
        hub: app.hub.clone(),
        shared,
        snap,
        principal,
        headers: headers.clone(),
        session: None,
        endpoint: name.to_string(),
        request_id: (app.ids)(),
        conn: Mutex::new(None),
        modern: false,
    })
}

/// A browser sends `Origin`; it must be the gateway's own or one allowed.
/// Clients that are not browsers send none.
fn origin_ok(headers: &HeaderMap, allowed: &[String]) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else { return true };
    let origin = origin.to_str().unwrap_or("").trim_end_matches('/').to_ascii_lowercase();
    if allowed.iter().any(|a| a == &origin) {
        return true;
    }
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("").to_ascii_lowercase();
    let authority = origin.split_once("://").map_or("", |(_, a)| a);
    !host.is_empty() && authority == host
}

fn session_of(ctx: &Ctx, headers: &HeaderMap) -> Result<Option<Arc<Session>>, Response> {
    let Some(id) = headers.get("mcp-session-id") else { return Ok(None) };
    let id = id.to_str().unwrap_or("");
    match ctx.hub.sessions.get(id, &ctx.endpoint, &ctx.principal.id) {
        Some(s) => Ok(Some(s)),
        None => {
            Err(refuse(StatusCode::NOT_FOUND, rpc::INVALID_REQUEST, "unknown or ended MCP session; initialize again"))
        }
    }
}

async fn read_message(ctx: &Ctx, body: Body, headers: &HeaderMap) -> Result<Msg, Response> {
    let bytes =
        crate::pipeline::receive::read_body(body, headers, ctx.snap.server.max_body_size).await.map_err(|e| {
            let status = if e.to_string().contains("too large") {
                StatusCode::PAYLOAD_TOO_LARGE
            } else {
                StatusCode::BAD_REQUEST
            };
            refuse(status, rpc::INVALID_REQUEST, e.to_string())
        })?;
    let v: Value = serde_json::from_slice(&bytes)
        .map_err(|e| refuse(StatusCode::BAD_REQUEST, rpc::PARSE_ERROR, format!("the body is not JSON: {e}")))?;
    Msg::parse(v).map_err(|e| rpc_response(StatusCode::BAD_REQUEST, &e))
}

async fn post_message(State(app): State<Arc<App>>, Path(name): Path<String>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let mut ctx = match enter(&app, &name, &parts.headers).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let msg = match read_message(&ctx, body, &parts.headers).await {
        Ok(m) => m,
        Err(r) => return r,
    };
    if let Msg::Request { id, method, params } = &msg
        && method == "initialize"
    {
        return initialize(&ctx, id.clone(), params, false).await;
    }
    if is_modern(&msg, &parts.headers) && !parts.headers.contains_key("mcp-session-id") {
        return stateless(ctx, msg, accepts_sse(&parts.headers)).await;
    }
    ctx.session = match session_of(&ctx, &parts.headers) {
        Ok(Some(s)) => Some(s),
        Ok(None) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                rpc::INVALID_REQUEST,
                "missing Mcp-Session-Id: send `initialize` first and then the session id it returns",
            );
        }
        Err(r) => return r,
    };
    match msg {
        Msg::Request { id, method, params } => {
            let sse = accepts_sse(&parts.headers);
            answer(Arc::new(ctx), id, method, params, sse).await
        }
        Msg::Notification { method, params } => {
            notification(&ctx, &method, &params).await;
            accepted()
        }
        Msg::Response { id, body } => {
            if let Some(s) = &ctx.session {
                s.answer(&id, body).await;
            }
            accepted()
        }
    }
}

/// A 2026-07-28 message: the version in the header or the envelope, or
/// the revision's own entry point.
fn is_modern(msg: &Msg, headers: &HeaderMap) -> bool {
    let header = headers.get("mcp-protocol-version").and_then(|v| v.to_str().ok());
    match msg {
        Msg::Request { method, params, .. } => {
            method == "server/discover"
                || header == Some(rpc::MODERN_VERSION)
                || rpc::envelope_version(params) == Some(rpc::MODERN_VERSION)
        }
        _ => header == Some(rpc::MODERN_VERSION),
    }
}

/// Protocol 2026-07-28: one request, one response, no session. The client's
/// version and capabilities ride in each request's `_meta`; upstream, the
/// gateway's own session with the server carries the call, at whatever
/// version that hop negotiated.
async fn stateless(mut ctx: Ctx, msg: Msg, sse: bool) -> Response {
    let Msg::Request { id, method, mut params } = msg else {
        // No client-to-server notifications on this wire; nothing to answer.
        return accepted();
    };
    let asked = rpc::envelope_version(&params).unwrap_or(rpc::MODERN_VERSION);
    if asked != rpc::MODERN_VERSION {
        let e = json!({ "code": rpc::UNSUPPORTED_PROTOCOL_VERSION,
            "message": format!("protocol version `{asked}` is not supported"),
            "data": { "supported": rpc::ALL_VERSIONS, "requested": asked } });
        return rpc_response(StatusCode::BAD_REQUEST, &rpc::respond(id, Err(e)));
    }
    if method == "server/discover" {
        let mut result = init_result(&ctx, rpc::MODERN_VERSION).await;
        if let Some(o) = result.as_object_mut() {
            o.remove("protocolVersion");
            o.insert("supportedVersions".into(), json!(rpc::ALL_VERSIONS));
            modern_result(&method, o);
        }
        return rpc_response(StatusCode::OK, &rpc::result(id, result));
    }
    rpc::strip_envelope(&mut params);
    ctx.modern = true;
    answer(Arc::new(ctx), id, method, params, sse).await
}

fn accepted() -> Response {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = StatusCode::ACCEPTED;
    r
}

fn accepts_sse(headers: &HeaderMap) -> bool {
    headers.get_all(header::ACCEPT).iter().any(|v| v.to_str().is_ok_and(|v| v.contains("text/event-stream")))
}

/// `initialize`: a new session at the negotiated version, and what this
/// endpoint can do (a real server's resources and prompts too).
async fn initialize(ctx: &Ctx, id: Value, params: &Value, legacy: bool) -> Response {
    let asked = params.get("protocolVersion").and_then(Value::as_str);
    let version = rpc::negotiate(asked);
    let caps = params.get("capabilities").cloned().unwrap_or_else(|| json!({}));
    let session = match (&ctx.session, legacy) {
        (Some(s), true) => s.clone(),
        _ => ctx.hub.sessions.create(&ctx.endpoint, &ctx.principal.id, false),
    };
    session.set_initialized(version, caps);
    let result = init_result(ctx, version).await;
    let msg = rpc::result(id, result);
    if legacy {
        session.push(msg);
        return accepted();
    }
    let mut r = rpc_response(StatusCode::OK, &msg);
    if let Ok(v) = HeaderValue::from_str(&session.id) {
        r.headers_mut().insert("mcp-session-id", v);
    }
    r
}

async fn init_result(ctx: &Ctx, version: &str) -> Value {
    let mut caps = json!({ "tools": { "listChanged": true } });
    let mut instructions = None;
    if let Front::Server(def) = ctx.front() {
        // The server's own features, as it declared them; a server that is
        // down now still gets its endpoint initialised with tools.
        let info = async {
            let conn = ctx.hub.conn(&ctx.shared, def, None).await?;
            conn.info().await
        };
        if let Ok(Ok(info)) = tokio::time::timeout(Duration::from_secs(10), info).await {
            for k in ["resources", "prompts", "logging", "completions"] {
                if let Some(v) = info.capabilities.get(k) {
                    caps[k] = v.clone();
                }
            }
            instructions = info.instructions;
        }
    }
    let mut r = json!({
        "protocolVersion": version,
        "capabilities": caps,
        "serverInfo": { "name": format!("tollgate/{}", ctx.endpoint), "version": env!("CARGO_PKG_VERSION") },
    });
    if let Some(i) = instructions {
        r["instructions"] = Value::String(i);
    }
    r
}

async fn notification(ctx: &Ctx, method: &str, params: &Value) {
    let Some(s) = &ctx.session else { return };
    match method {
        "notifications/cancelled" => s.cancel(params).await,
        "notifications/roots/list_changed" => {
            for conn in ctx.hub.session_conns(&s.id) {
                conn.notify(method, params.clone()).await;
            }
        }
        _ => {}
    }
}

/// Answers a request: as JSON when nothing comes before the response, or
/// as an SSE stream once the server sends progress or a request of its own
/// first (when the client accepts one; otherwise those go to the session's
/// stream).
async fn answer(ctx: Arc<Ctx>, id: Value, method: String, params: Value, sse: bool) -> Response {
    let (tx, mut rx) = mpsc::unbounded_channel::<Value>();
    let c = ctx.clone();
    let mut task = crate::task::spawn("mcp-request", async move { dispatch(&c, id, &method, params, &tx).await });
    let first = tokio::select! {
        // Messages first: a task that finished with progress still queued
        // must not have its answer sent as JSON and the progress dropped
        // (an unbiased `select!` picks at random among ready branches).
        biased;
        m = rx.recv() => match m {
            Some(m) => Some(m),
            // The sender went with the finished task and nothing came
            // before the answer: JSON, as documented.
            None => return rpc_response(StatusCode::OK, &task.await.unwrap_or_else(|_| internal())),
        },
        done = &mut task => return rpc_response(StatusCode::OK, &done.unwrap_or_else(|_| internal())),
    };
    if !sse {
        // Nowhere to stream: relay on the session's stream, then answer.
        let ctx2 = ctx.clone();
        let drain = async move {
            let mut next = first;
            while let Some(m) = next {
                relay_to_session(&ctx2, m).await;
                next = rx.recv().await;
            }
        };
        let (done, _) = tokio::join!(task, drain);
        return rpc_response(StatusCode::OK, &done.unwrap_or_else(|_| internal()));
    }
    let (out, body_rx) = mpsc::unbounded_channel::<Bytes>();
    crate::task::spawn("mcp-answer-stream", async move {
        let mut next = first;
        loop {
            let m = match next.take() {
                Some(m) => outgoing(&ctx, m).await,
                None => None,
            };
            if let Some(m) = m
                && out.send(sse_event(&m)).is_err()
            {
                task.abort();
                return;
            }
            tokio::select! {
                m = rx.recv() => match m {
                    Some(m) => next = Some(m),
                    None => break,
                },
                done = &mut task => {
                    while let Ok(m) = rx.try_recv() {
                        if let Some(m) = outgoing(&ctx, m).await {
                            let _ = out.send(sse_event(&m));
                        }
                    }
                    let _ = out.send(sse_event(&done.unwrap_or_else(|_| internal())));
                    return;
                }
            }
        }
        let done = task.await.unwrap_or_else(|_| internal());
        let _ = out.send(sse_event(&done));
    });
    sse_response(body_rx, None)
}

fn internal() -> Value {
    rpc::error(Value::Null, rpc::INTERNAL_ERROR, "the gateway failed to answer")
}

/// A message from upstream as the client may see it: a server request gets
/// a session id of its own (answered later on the connection it came from);
/// without a session it cannot be answered and is refused upstream.
async fn outgoing(ctx: &Ctx, m: Value) -> Option<Value> {
    if m.get("id").is_none() {
        return Some(m);
    }
    let conn = ctx.conn.lock().unwrap_or_else(|p| p.into_inner()).clone()?;
    match &ctx.session {
        Some(s) => Some(s.forward_request(&conn, m)),
        None => {
            let id = m.get("id").cloned().unwrap_or(Value::Null);
            conn.answer(id, Err(rpc::error_body(rpc::METHOD_NOT_FOUND, "the client has no session to answer on")))
                .await;
            None
        }
    }
}

async fn relay_to_session(ctx: &Ctx, m: Value) {
    let is_request = m.get("id").is_some();
    let Some(out) = outgoing(ctx, m.clone()).await else { return };
    let pushed = ctx.session.as_ref().is_some_and(|s| s.push(out.clone()));
    if !pushed && is_request {
        // Nobody can answer: say so upstream rather than let it wait.
        if let (Some(s), Some(id)) = (&ctx.session, out.get("id")) {
            s.answer(id, Err(rpc::error_body(rpc::METHOD_NOT_FOUND, "the client has no open stream"))).await;
        }
    }
}

/// The request's answer as a whole JSON-RPC response message.
async fn dispatch(ctx: &Ctx, id: Value, method: &str, params: Value, relay: &mpsc::UnboundedSender<Value>) -> Value {
    let body = match method {
        "ping" => Ok(json!({})),
        "tools/list" => Ok(tools_list(ctx).await),
        "tools/call" => call::tools_call(ctx, &id, params, relay).await,
        m if RELAYED.contains(&m) => relayed(ctx, &id, m, params, relay).await,
        m => Err(rpc::error_body(rpc::METHOD_NOT_FOUND, format!("Method not found: {m}"))),
    };
    let body = match body {
        Ok(Value::Object(mut o)) if ctx.modern => {
            modern_result(method, &mut o);
            Ok(Value::Object(o))
        }
        other => other,
    };
    rpc::respond(id, body)
}

/// What 2026-07-28 requires of a result that a handshake-era server (or the
/// gateway) did not write: that it is complete (not asking for input), and,
/// for lists and reads, how long it may be cached — not at all, and never
/// shared: what a caller sees depends on who it is.
fn modern_result(method: &str, o: &mut serde_json::Map<String, Value>) {
    o.entry("resultType").or_insert_with(|| json!("complete"));
    if CACHEABLE.contains(&method) {
        o.entry("ttlMs").or_insert_with(|| json!(0));
        o.insert("cacheScope".into(), json!("private"));
    }
}

/// Results 2026-07-28 lets clients cache.
const CACHEABLE: [&str; 6] =
    ["server/discover", "tools/list", "resources/list", "resources/templates/list", "resources/read", "prompts/list"];

/// Exactly the tools this caller may call (read fresh from the servers).
async fn tools_list(ctx: &Ctx) -> Value {
    let tools = super::catalog::tools(&ctx.hub, &ctx.shared, &ctx.snap, ctx.front(), true).await;
    let shown: Vec<Value> = tools
        .into_iter()
        .filter(|e| super::catalog::visible(&ctx.snap, &ctx.principal, e))
        .map(|e| e.definition)
        .collect();
    json!({ "tools": shown })
}

/// Resources, prompts, completion and logging on a real server's endpoint,
/// for callers that may call at least one of its tools.
async fn relayed(
    ctx: &Ctx,
    id: &Value,
    method: &str,
    params: Value,
    relay: &mpsc::UnboundedSender<Value>,
) -> Result<Value, Value> {
    let Front::Server(def) = ctx.front() else {
        return Err(rpc::error_body(
            rpc::METHOD_NOT_FOUND,
            format!("Method not found: {method} (a virtual server has tools only)"),
        ));
    };
    let tools = super::catalog::tools(&ctx.hub, &ctx.shared, &ctx.snap, ctx.front(), false).await;
    if !tools.iter().any(|e| super::catalog::allowed(&ctx.snap, &ctx.principal, e)) {
        return Err(rpc::error_body(rpc::METHOD_NOT_FOUND, format!("Method not found: {method}")));
    }
    let conn = ctx.hub.conn(&ctx.shared, def, ctx.session.as_deref()).await?;
    call::forward(ctx, &conn, id, method, params, relay).await
}

fn sse_event(v: &Value) -> Bytes {
    Bytes::from(format!("event: message\ndata: {v}\n\n"))
}

/// An SSE response from a channel of ready events, with keep-alives.
fn sse_response(rx: mpsc::UnboundedReceiver<Bytes>, on_end: Option<Box<dyn FnOnce() + Send>>) -> Response {
    struct Guard(Option<Box<dyn FnOnce() + Send>>);
    impl Drop for Guard {
        fn drop(&mut self) {
            if let Some(f) = self.0.take() {
                f();
            }
        }
    }
    let stream = futures_util::stream::unfold((rx, Guard(on_end)), |(mut rx, g)| async move {
        match tokio::time::timeout(KEEPALIVE, rx.recv()).await {
            Ok(Some(b)) => Some((Ok::<Bytes, std::io::Error>(b), (rx, g))),
            Ok(None) => None,
            Err(_) => Some((Ok(Bytes::from_static(b": keep-alive\n\n")), (rx, g))),
        }
    });
    let mut r = Response::new(Body::from_stream(stream));
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

/// GET: the session's own stream (tool-list changes, server messages
/// outside a request). One per session; a new one replaces the old.
async fn open_stream(State(app): State<Arc<App>>, Path(name): Path<String>, headers: HeaderMap) -> Response {
    let ctx = match enter(&app, &name, &headers).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    if !accepts_sse(&headers) {
        return refuse(StatusCode::NOT_ACCEPTABLE, rpc::INVALID_REQUEST, "the session stream is text/event-stream");
    }
    let session = match session_of(&ctx, &headers) {
        Ok(Some(s)) => s,
        Ok(None) => return refuse(StatusCode::BAD_REQUEST, rpc::INVALID_REQUEST, "missing Mcp-Session-Id"),
        Err(r) => return r,
    };
    let mut rx = session.attach();
    let (out, body_rx) = mpsc::unbounded_channel::<Bytes>();
    crate::task::spawn("mcp-session-stream", async move {
        while let Some(m) = rx.recv().await {
            if out.send(sse_event(&m)).is_err() {
                return;
            }
        }
    });
    sse_response(body_rx, None)
}

async fn end_session(State(app): State<Arc<App>>, Path(name): Path<String>, headers: HeaderMap) -> Response {
    let ctx = match enter(&app, &name, &headers).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    match session_of(&ctx, &headers) {
        Ok(Some(s)) => {
            ctx.hub.sessions.remove(&s.id);
            s.detach();
            ctx.hub.close_session(&s.id).await;
            let mut r = Response::new(Body::empty());
            *r.status_mut() = StatusCode::OK;
            r
        }
        Ok(None) => refuse(StatusCode::BAD_REQUEST, rpc::INVALID_REQUEST, "missing Mcp-Session-Id"),
        Err(r) => r,
    }
}

/// Legacy HTTP+SSE: the stream opens the session and names the endpoint
/// messages are posted to; every answer comes back on the stream.
async fn legacy_open(State(app): State<Arc<App>>, Path(name): Path<String>, headers: HeaderMap) -> Response {
    let ctx = match enter(&app, &name, &headers).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let session = ctx.hub.sessions.create(&ctx.endpoint, &ctx.principal.id, true);
    let mut rx = session.attach();
    let (out, body_rx) = mpsc::unbounded_channel::<Bytes>();
    let _ = out.send(Bytes::from(format!("event: endpoint\ndata: /mcp/{name}/message?sessionId={}\n\n", session.id)));
    crate::task::spawn("mcp-legacy-stream", async move {
        while let Some(m) = rx.recv().await {
            if out.send(sse_event(&m)).is_err() {
                return;
            }
        }
    });
    // The stream is the session: when the client goes, so does the session.
    let (hub, id) = (ctx.hub.clone(), session.id.clone());
    let end: Box<dyn FnOnce() + Send> = Box::new(move || {
        if let Some(s) = hub.sessions.remove(&id) {
            s.detach();
            crate::task::spawn("mcp-legacy-close", async move { hub.close_session(&s.id).await });
        }
    });
    sse_response(body_rx, Some(end))
}

#[derive(serde::Deserialize)]
struct LegacyQuery {
    #[serde(rename = "sessionId")]
    session_id: String,
}

async fn legacy_message(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    Query(q): Query<LegacyQuery>,
    req: Request,
) -> Response {
    let (parts, body) = req.into_parts();
    let mut ctx = match enter(&app, &name, &parts.headers).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let Some(session) = ctx.hub.sessions.get(&q.session_id, &ctx.endpoint, &ctx.principal.id) else {
        return refuse(StatusCode::NOT_FOUND, rpc::INVALID_REQUEST, "unknown or ended MCP session");
    };
    ctx.session = Some(session.clone());
    let msg = match read_message(&ctx, body, &parts.headers).await {
        Ok(m) => m,
        Err(r) => return r,
    };
    match msg {
        Msg::Request { id, method, params } if method == "initialize" => initialize(&ctx, id, &params, true).await,
        Msg::Request { id, method, params } => {
            let ctx = Arc::new(ctx);
            crate::task::spawn("mcp-legacy-request", async move {
                let (tx, mut rx) = mpsc::unbounded_channel::<Value>();
                let c = ctx.clone();
                let work = async move { dispatch(&c, id, &method, params, &tx).await };
                let relay = async {
                    while let Some(m) = rx.recv().await {
                        relay_to_session(&ctx, m).await;
                    }
                };
                let (done, _) = tokio::join!(work, relay);
                session.push(done);
            });
            accepted()
        }
        Msg::Notification { method, params } => {
            notification(&ctx, &method, &params).await;
            accepted()
        }
        Msg::Response { id, body } => {
            session.answer(&id, body).await;
            accepted()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.insert(http::HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
        }
        m
    }

    #[test]
    fn origins_are_the_gateways_own_or_allowed() {
        assert!(origin_ok(&h(&[("host", "gw:4000")]), &[]), "no Origin: not a browser");
        assert!(origin_ok(&h(&[("host", "gw:4000"), ("origin", "http://gw:4000")]), &[]));
        assert!(!origin_ok(&h(&[("host", "gw:4000"), ("origin", "http://evil.example")]), &[]));
        assert!(!origin_ok(&h(&[("host", "gw:4000"), ("origin", "null")]), &[]));
        let allowed = vec!["https://inspector.example".to_string()];
        assert!(origin_ok(&h(&[("host", "gw:4000"), ("origin", "https://Inspector.example/")]), &allowed));
    }
}
