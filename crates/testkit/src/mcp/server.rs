//! The HTTP transports over the shared [`McpTools`]: Streamable HTTP at
//! `/mcp` (POST answered as JSON or as an SSE stream, GET stream, DELETE)
//! and the legacy HTTP+SSE transport (GET `/sse`, POST `/messages`).

use std::collections::HashMap;
use std::convert::Infallible;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, StreamExt, stream};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Empty, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

use super::Received;
use super::tools::{Exchange, McpTools, is_request};
use crate::Body;
use crate::openai::full;
use crate::wire::sse_event;

type Sender = mpsc::UnboundedSender<Value>;

pub(crate) struct McpState {
    pub(crate) tools: McpTools,
    disable_get_stream: bool,
    pub(crate) received: Mutex<Vec<Received>>,
    /// Streamable HTTP sessions, each with its open GET streams.
    pub(crate) sessions: Mutex<HashMap<String, Vec<Sender>>>,
    /// Legacy sessions, each with its one event stream.
    pub(crate) legacy: Mutex<HashMap<String, Sender>>,
    /// How many requests are still to fail, and with what status.
    pub(crate) fail: Mutex<(usize, u16)>,
    pub(crate) latency: Mutex<Duration>,
}

impl McpState {
    pub(crate) fn new(tools: McpTools, disable_get_stream: bool) -> McpState {
        McpState {
            tools,
            disable_get_stream,
            received: Mutex::default(),
            sessions: Mutex::default(),
            legacy: Mutex::default(),
            fail: Mutex::default(),
            latency: Mutex::default(),
        }
    }

    /// Sends a message on every open server stream of every session.
    pub(crate) fn broadcast(&self, msg: &Value) {
        for streams in self.sessions.lock().expect("lock").values_mut() {
            streams.retain(|s| s.send(msg.clone()).is_ok());
        }
        for s in self.legacy.lock().expect("lock").values() {
            let _ = s.send(msg.clone());
        }
    }

    fn record(&self, session: &str, headers: &[(String, String)], message: &Value) {
        let r = Received { session: Some(session.to_string()), headers: headers.to_vec(), message: message.clone() };
        self.received.lock().expect("lock").push(r);
    }

    fn take_fault(&self) -> Option<u16> {
        let mut f = self.fail.lock().expect("lock");
        f.0 = f.0.checked_sub(1)?;
        Some(f.1)
    }
}

pub(crate) async fn accept_loop(listener: TcpListener, state: Arc<McpState>, mut stop: watch::Receiver<bool>) {
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
            // Open streams end with the mock, so a client sees its server go away.
            tokio::select! {
                _ = conn => {}
                _ = stop.changed() => {}
            }
        });
    }
}

async fn route(req: Request<Incoming>, st: Arc<McpState>) -> Result<Response<Body>, Infallible> {
    let latency = *st.latency.lock().expect("lock");
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    if let Some(code) = st.take_fault() {
        return Ok(full(code, "text/plain", "mock-mcp fault"));
    }
    let (method, path) = (req.method().clone(), req.uri().path().to_string());
    Ok(match (method, path.as_str()) {
        (Method::POST, "/mcp") => post(req, st).await,
        (Method::GET, "/mcp") => get_stream(req.headers(), &st),
        (Method::DELETE, "/mcp") => match session_of(req.headers(), &st) {
            Ok(id) => {
                st.sessions.lock().expect("lock").remove(&id);
                status(200)
            }
            Err(code) => status(code),
        },
        (Method::GET, "/sse") => open_legacy(st),
        (Method::POST, "/messages") => post_legacy(req, st).await,
        _ => status(404),
    })
}

/// Streamable HTTP POST: one message. Notifications and responses get 202;
/// a request gets its answer as JSON, or as an SSE stream when the server
/// sends messages before it (progress, sampling).
async fn post(req: Request<Incoming>, st: Arc<McpState>) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let msg = match read_message(body).await {
        Ok(m) => m,
        Err(r) => return r,
    };
    let initialize = msg["method"] == "initialize";
    let session = if initialize {
        let id = random_hex();
        st.sessions.lock().expect("lock").insert(id.clone(), Vec::new());
        id
    } else {
        match session_of(&parts.headers, &st) {
            Ok(id) => id,
            Err(code) => return status(code),
        }
    };
    let headers = header_list(&parts.headers);
    st.record(&session, &headers, &msg);
    if !is_request(&msg) {
        st.tools.handle(msg, &Exchange::detached(headers)).await;
        return status(202);
    }
    // Handled on its own task so what it sends first can be streamed while
    // it still waits (for its sleep, or for the client's sampling answer).
    let (out, mut rx) = mpsc::unbounded_channel();
    tokio::spawn(answer(st, msg, Exchange { headers, out }));
    let mut resp = match rx.recv().await {
        None => status(202),
        Some(only) if only.get("method").is_none() => full(200, "application/json", only.to_string()),
        Some(first) => {
            sse(stream::once(async { first }).chain(messages(rx, ())).map(|m| sse_event(Some("message"), &m)))
        }
    };
    if initialize && let Ok(v) = HeaderValue::from_str(&session) {
        resp.headers_mut().insert("mcp-session-id", v);
    }
    resp
}

/// Handles one message and sends its answer, if any, after whatever the
/// handling sent on the way.
async fn answer(st: Arc<McpState>, msg: Value, ex: Exchange) {
    if let Some(a) = st.tools.handle(msg, &ex).await {
        let _ = ex.out.send(a);
    }
}

/// Streamable HTTP GET: a stream of server messages for the session.
fn get_stream(headers: &HeaderMap, st: &McpState) -> Response<Body> {
    if st.disable_get_stream {
        return status(405);
    }
    let (tx, rx) = mpsc::unbounded_channel();
    let id = match session_of(headers, st) {
        Ok(id) => id,
        Err(code) => return status(code),
    };
    match st.sessions.lock().expect("lock").get_mut(&id) {
        Some(streams) => streams.push(tx),
        None => return status(404),
    }
    sse(messages(rx, ()).map(|m| sse_event(Some("message"), &m)))
}

/// Legacy GET `/sse`: a new session whose stream carries every message the
/// server sends, after an `endpoint` event naming where to POST.
fn open_legacy(st: Arc<McpState>) -> Response<Body> {
    let id = random_hex();
    let (tx, rx) = mpsc::unbounded_channel();
    st.legacy.lock().expect("lock").insert(id.clone(), tx);
    let endpoint = Bytes::from(format!("event: endpoint\ndata: /messages?sessionId={id}\n\n"));
    // The session lives as long as its stream: once the client hangs up, its POSTs get 404.
    let guard = LegacyGuard { st, id };
    sse(stream::once(async { endpoint }).chain(messages(rx, guard).map(|m| sse_event(Some("message"), &m))))
}

struct LegacyGuard {
    st: Arc<McpState>,
    id: String,
}

impl Drop for LegacyGuard {
    fn drop(&mut self) {
        if let Ok(mut legacy) = self.st.legacy.lock() {
            legacy.remove(&self.id);
        }
    }
}

/// Legacy POST `/messages?sessionId=…`: accepted at once; any answer goes on the stream.
async fn post_legacy(req: Request<Incoming>, st: Arc<McpState>) -> Response<Body> {
    let id = req.uri().query().and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("sessionId=")));
    let Some(id) = id.map(str::to_string) else { return status(400) };
    let Some(out) = st.legacy.lock().expect("lock").get(&id).cloned() else { return status(404) };
    let (parts, body) = req.into_parts();
    let msg = match read_message(body).await {
        Ok(m) => m,
        Err(r) => return r,
    };
    let headers = header_list(&parts.headers);
    st.record(&id, &headers, &msg);
    tokio::spawn(answer(st, msg, Exchange { headers, out }));
    status(202)
}

/// The session a request names: 400 when it names none, 404 when it is not alive.
fn session_of(headers: &HeaderMap, st: &McpState) -> Result<String, u16> {
    let id = headers.get("mcp-session-id").and_then(|v| v.to_str().ok()).ok_or(400u16)?;
    if st.sessions.lock().expect("lock").contains_key(id) { Ok(id.to_string()) } else { Err(404) }
}

async fn read_message(body: Incoming) -> Result<Value, Response<Body>> {
    let bytes = body.collect().await.map(|c| c.to_bytes()).unwrap_or_default();
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(v) if v.is_object() => Ok(v),
        _ => Err(full(
            400,
            "application/json",
            json!({ "jsonrpc": "2.0", "id": null,
                "error": { "code": -32700, "message": "Parse error: one JSON-RPC object expected" } })
            .to_string(),
        )),
    }
}

/// The messages of a channel until every sender is gone; `keep` lives as long as the stream.
fn messages<K: Send + Sync + 'static>(
    rx: mpsc::UnboundedReceiver<Value>,
    keep: K,
) -> impl Stream<Item = Value> + Send + Sync + 'static {
    stream::unfold((rx, keep), |(mut rx, keep)| async move { rx.recv().await.map(|m| (m, (rx, keep))) })
}

fn sse(events: impl Stream<Item = Bytes> + Send + Sync + 'static) -> Response<Body> {
    let body = StreamBody::new(events.map(|e| Ok::<_, std::io::Error>(Frame::data(e))));
    let mut r = Response::new(BodyExt::boxed(body));
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

fn status(code: u16) -> Response<Body> {
    let mut r = Response::new(Empty::new().map_err(|never| match never {}).boxed());
    *r.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r
}

fn header_list(h: &HeaderMap) -> Vec<(String, String)> {
    h.iter().map(|(n, v)| (n.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned())).collect()
}

/// 32 hex digits from std's randomly keyed hasher: ids no client guesses.
fn random_hex() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let s = RandomState::new();
    format!("{:016x}{:016x}", s.hash_one(n), s.hash_one(!n))
}
