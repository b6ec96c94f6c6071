//! The HTTP side: the card at both well-known paths, JSON-RPC at `/rpc`,
//! HTTP+JSON at `/rest` (v1.0) and `/rest/v1` (v0.3), bearer checks, the
//! echoed `a2a-extensions` / `a2a-version` headers and SSE streams.

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::{StreamExt, stream};
use http::{HeaderMap, HeaderValue, Method, Request, Response, header};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Map, Value, json};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

use super::agent::{A2aError, Agent, Reply, UserMsg};
use super::model::{self, Event, Gen};
use super::{A2aOptions, A2aReceived, card};
use crate::Body;
use crate::openai::full;

const CARD_PATH: &str = "/.well-known/agent-card.json";
const LEGACY_CARD_PATH: &str = "/.well-known/agent.json";

pub(crate) struct A2aState {
    opts: A2aOptions,
    base: String,
    agent: Arc<Agent>,
    pub(crate) received: Mutex<Vec<A2aReceived>>,
    pub(crate) card_fetches: AtomicUsize,
}

impl A2aState {
    pub(crate) fn new(opts: A2aOptions, base: String) -> A2aState {
        A2aState { opts, base, agent: Arc::default(), received: Mutex::default(), card_fetches: AtomicUsize::new(0) }
    }
}

/// One A2A operation, whichever binding and generation named it.
#[derive(Debug, Clone, Copy)]
enum Op {
    Send,
    Stream,
    Get,
    List,
    Cancel,
    Subscribe,
    ExtendedCard,
}

enum Outcome {
    Json(Value),
    Events(mpsc::UnboundedReceiver<Event>),
}

pub(crate) async fn accept_loop(listener: TcpListener, state: Arc<A2aState>, mut stop: watch::Receiver<bool>) {
    loop {
        let (tcp, _) = tokio::select! {
            r = listener.accept() => match r { Ok(c) => c, Err(_) => continue },
            _ = stop.changed() => return,
        };
        let _ = tcp.set_nodelay(true);
        let (state, mut stop) = (state.clone(), stop.clone());
        tokio::spawn(async move {
            let svc = service_fn(move |req| route(req, state.clone()));
            let conn = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tcp), svc);
            // Open streams end with the mock, so a client sees its agent go away.
            tokio::select! {
                _ = conn => {}
                _ = stop.changed() => {}
            }
        });
    }
}

async fn route(req: Request<Incoming>, st: Arc<A2aState>) -> Result<Response<Body>, Infallible> {
    let (parts, body) = req.into_parts();
    let body = body.collect().await.map(|c| c.to_bytes()).unwrap_or_default();
    let mut resp = dispatch(&parts, &body, &st);
    // The SDK answers with the extensions it activated; the mock activates whatever was asked for.
    let h = &parts.headers;
    if let Some(v) = h.get("a2a-extensions").or_else(|| h.get("x-a2a-extensions")) {
        resp.headers_mut().insert("a2a-extensions", v.clone());
    }
    if let Some(v) = h.get("a2a-version") {
        resp.headers_mut().insert("a2a-version", v.clone());
    }
    Ok(resp)
}

fn dispatch(parts: &http::request::Parts, body: &Bytes, st: &A2aState) -> Response<Body> {
    let (method, path) = (&parts.method, parts.uri.path());
    if method == Method::GET && (path == CARD_PATH || path == LEGACY_CARD_PATH) {
        st.card_fetches.fetch_add(1, Ordering::SeqCst);
        if st.opts.legacy_only && path == CARD_PATH {
            return full(404, "text/plain", "not found");
        }
        return json_response(200, "application/json", &card::card(&st.base, st.opts.legacy_only, false));
    }
    st.received.lock().expect("lock").push(A2aReceived {
        method: method.to_string(),
        path: parts.uri.path_and_query().map_or_else(|| path.to_string(), |pq| pq.as_str().to_string()),
        headers: header_list(&parts.headers),
        body: serde_json::from_slice(body).unwrap_or(Value::Null),
    });
    if !authorized(&st.opts, &parts.headers) {
        let mut r = json_response(401, "application/json", &json!({ "error": "missing or wrong bearer token" }));
        r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return r;
    }
    match path.strip_prefix("/rest") {
        _ if path == "/rpc" && method == Method::POST => rpc(st, body),
        _ if path == "/rpc" => full(405, "text/plain", "method not allowed"),
        Some(sub) if !st.opts.legacy_only && (sub.is_empty() || sub.starts_with('/')) => {
            rest(st, method, sub, parts.uri.query(), body)
        }
        _ => full(404, "text/plain", "not found"),
    }
}

fn authorized(opts: &A2aOptions, headers: &HeaderMap) -> bool {
    let Some(token) = &opts.token else { return true };
    let given = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.split_once(' '));
    given.is_some_and(|(scheme, t)| scheme.eq_ignore_ascii_case("bearer") && t == token)
}

/// JSON-RPC 2.0 at `/rpc`: both generations' method names, answered in their own shapes.
fn rpc(st: &A2aState, body: &Bytes) -> Response<Body> {
    let Ok(req) = serde_json::from_slice::<Value>(body) else { return rpc_error(Value::Null, &A2aError::Parse) };
    let id = req.get("id").cloned().unwrap_or(Value::Null);
    let Some(method) = req.get("method").and_then(Value::as_str) else {
        return rpc_error(id, &A2aError::InvalidRequest);
    };
    let (ver, op) = match (method, st.opts.legacy_only) {
        ("SendMessage", false) => (Gen::V1, Op::Send),
        ("SendStreamingMessage", false) => (Gen::V1, Op::Stream),
        ("GetTask", false) => (Gen::V1, Op::Get),
        ("ListTasks", false) => (Gen::V1, Op::List),
        ("CancelTask", false) => (Gen::V1, Op::Cancel),
        ("SubscribeToTask", false) => (Gen::V1, Op::Subscribe),
        ("GetExtendedAgentCard", false) => (Gen::V1, Op::ExtendedCard),
        ("message/send", _) => (Gen::V03, Op::Send),
        ("message/stream", _) => (Gen::V03, Op::Stream),
        ("tasks/get", _) => (Gen::V03, Op::Get),
        ("tasks/cancel", _) => (Gen::V03, Op::Cancel),
        ("tasks/resubscribe", _) => (Gen::V03, Op::Subscribe),
        ("agent/getAuthenticatedExtendedCard", _) => (Gen::V03, Op::ExtendedCard),
        _ => return rpc_error(id, &A2aError::MethodNotFound),
    };
    let params = req.get("params").cloned().unwrap_or_else(|| json!({}));
    match perform(st, op, ver, &params) {
        Ok(Outcome::Json(result)) => {
            json_response(200, "application/json", &json!({ "result": result, "id": id, "jsonrpc": "2.0" }))
        }
        Ok(Outcome::Events(rx)) => {
            sse(rx, move |e| json!({ "result": model::event(ver, e), "id": id, "jsonrpc": "2.0" }))
        }
        Err(e) => rpc_error(id, &e),
    }
}

/// JSON-RPC errors travel with HTTP 200.
fn rpc_error(id: Value, e: &A2aError) -> Response<Body> {
    let body = json!({ "error": { "code": e.code(), "message": e.message() }, "id": id, "jsonrpc": "2.0" });
    json_response(200, "application/json", &body)
}

/// HTTP+JSON: v1.0 under `/rest`, v0.3 under `/rest/v1`; each body is what
/// the JSON-RPC `result` would be.
fn rest(st: &A2aState, method: &Method, sub: &str, query: Option<&str>, body: &Bytes) -> Response<Body> {
    let (ver, route) = match sub.strip_prefix("/v1/") {
        Some(r) => (Gen::V03, r),
        None => (Gen::V1, sub.trim_start_matches('/')),
    };
    let content_type = if ver == Gen::V1 { "application/a2a+json" } else { "application/json" };
    let with_id = |id: &str| {
        let mut p = query_params(query);
        p.insert("id".into(), json!(id));
        Value::Object(p)
    };
    let task_route = route.strip_prefix("tasks/").map(|t| t.split_once(':').unwrap_or((t, "")));
    let call = match (method, route, task_route) {
        (&Method::POST, "message:send" | "message:stream", _) => match serde_json::from_slice::<Value>(body) {
            Ok(p) => Ok((if route == "message:send" { Op::Send } else { Op::Stream }, p)),
            Err(_) => Err(A2aError::Parse),
        },
        (&Method::GET, "tasks", _) => Ok((Op::List, Value::Object(query_params(query)))),
        (&Method::GET, "extendedAgentCard" | "card", _) => Ok((Op::ExtendedCard, json!({}))),
        (&Method::GET, _, Some((id, ""))) => Ok((Op::Get, with_id(id))),
        (&Method::POST, _, Some((id, "cancel"))) => Ok((Op::Cancel, with_id(id))),
        (&Method::GET | &Method::POST, _, Some((id, "subscribe"))) => Ok((Op::Subscribe, with_id(id))),
        _ => Err(A2aError::MethodNotFound),
    };
    match call.and_then(|(op, params)| perform(st, op, ver, &params)) {
        Ok(Outcome::Json(v)) => json_response(200, content_type, &v),
        Ok(Outcome::Events(rx)) => sse(rx, move |e| model::event(ver, e)),
        Err(e) => {
            let (code, status) = e.http();
            let msg = if e == A2aError::MethodNotFound { "Not found" } else { e.message() };
            json_response(code, content_type, &json!({ "error": { "code": code, "status": status, "message": msg } }))
        }
    }
}

/// Query parameters as JSON params; the numeric ones as numbers.
fn query_params(query: Option<&str>) -> Map<String, Value> {
    let pairs = query.into_iter().flat_map(|q| q.split('&')).filter_map(|kv| kv.split_once('='));
    pairs
        .map(|(k, v)| match (k, v.parse::<u64>()) {
            ("historyLength" | "pageSize", Ok(n)) => (k.to_string(), json!(n)),
            _ => (k.to_string(), json!(v)),
        })
        .collect()
}

fn perform(st: &A2aState, op: Op, ver: Gen, params: &Value) -> Result<Outcome, A2aError> {
    let history = params.get("historyLength").and_then(Value::as_u64).and_then(|n| usize::try_from(n).ok());
    match op {
        Op::Send | Op::Stream => Ok(match st.agent.send(user_msg(params)?, matches!(op, Op::Stream)) {
            Reply::Message(m) => Outcome::Json(model::event(ver, &Event::Message(m))),
            Reply::Task(t) => Outcome::Json(model::event(ver, &Event::Task(t))),
            Reply::Stream(rx) => Outcome::Events(rx),
        }),
        Op::Get => Ok(Outcome::Json(model::task(ver, &st.agent.get(task_id(params)?)?, history))),
        Op::Cancel => Ok(Outcome::Json(model::task(ver, &st.agent.cancel(task_id(params)?)?, None))),
        Op::Subscribe => Ok(Outcome::Events(st.agent.subscribe(task_id(params)?)?)),
        Op::List => {
            let mut tasks = st.agent.list(params.get("contextId").and_then(Value::as_str));
            let total = tasks.len();
            let page = params.get("pageSize").and_then(Value::as_u64).and_then(|n| usize::try_from(n).ok());
            tasks.truncate(page.filter(|&n| n > 0).unwrap_or(total));
            let list: Vec<Value> = tasks.iter().map(|t| model::task(ver, t, history)).collect();
            Ok(Outcome::Json(json!({ "tasks": list, "nextPageToken": "", "pageSize": list.len(), "totalSize": total })))
        }
        Op::ExtendedCard => Ok(Outcome::Json(card::card(&st.base, st.opts.legacy_only, true))),
    }
}

/// The caller's message: the text of its first text part (`{"text": …}` in
/// v1.0, `{"kind": "text", "text": …}` in v0.3).
fn user_msg(params: &Value) -> Result<UserMsg, A2aError> {
    let m = params.get("message").filter(|m| m.is_object()).ok_or(A2aError::InvalidParams("message is required"))?;
    let parts = m.get("parts").or_else(|| m.get("content")).and_then(Value::as_array);
    let text = parts.into_iter().flatten().find_map(|p| p.get("text").and_then(Value::as_str));
    let field = |k: &str| m.get(k).and_then(Value::as_str).map(str::to_string);
    Ok(UserMsg { id: field("messageId"), context_id: field("contextId"), text: text.unwrap_or_default().to_string() })
}

fn task_id(params: &Value) -> Result<&str, A2aError> {
    let id = params.get("id").and_then(Value::as_str).ok_or(A2aError::InvalidParams("id is required"))?;
    Ok(id.strip_prefix("tasks/").unwrap_or(id))
}

/// An SSE response whose events are sent as they happen, framed as the SDK frames them.
fn sse(rx: mpsc::UnboundedReceiver<Event>, frame: impl Fn(&Event) -> Value + Send + Sync + 'static) -> Response<Body> {
    let events = stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|e| (e, rx)) });
    let data = events.map(move |e| Ok(Frame::data(Bytes::from(format!("data: {}\r\n\r\n", frame(&e))))));
    let mut r = Response::new(BodyExt::boxed(StreamBody::new(data)));
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream; charset=utf-8"));
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn json_response(status: u16, content_type: &str, v: &Value) -> Response<Body> {
    full(status, content_type, v.to_string())
}

fn header_list(h: &HeaderMap) -> Vec<(String, String)> {
    h.iter().map(|(n, v)| (n.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned())).collect()
}
