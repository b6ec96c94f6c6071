//! Test kit: in-process mock upstreams that speak real provider wire formats.
//!
//! [`MockUpstream`] is one server that speaks every provider wire format
//! the gateway translates to, chosen by the request path: OpenAI (chat
//! completions with streaming and tool calls, embeddings, models; Azure
//! deployment paths too), Anthropic Messages (also as Vertex `rawPredict`),
//! Gemini `generateContent` (AI Studio and Vertex paths, plus a service
//! account token endpoint), Bedrock Converse with the binary AWS
//! event-stream and SigV4 verification, and Cohere v2. Fault injection —
//! statuses with `retry-after` in each provider's error shape, latency, cut
//! or stalled streams, in-stream errors, connection resets — and a record of
//! every request it received, so a test can assert on exactly what the
//! gateway sent.
//!
//! [`McpMock`] is a mock MCP server (Streamable HTTP and legacy SSE); the
//! `mock-mcp` binary serves the same tools over stdio.
//!
//! [`A2aMock`] is a mock A2A agent (protocol v1.0 and v0.3; JSON-RPC and
//! HTTP+JSON, with SSE streams).
#![expect(clippy::disallowed_methods, reason = "mock servers spawn a task per connection, as any test server does")]

mod a2a;
mod anthropic;
mod bedrock;
mod cohere;
mod gemini;
mod json_server;
mod mcp;
mod openai;
mod openai_responses;
pub mod wire;

pub use a2a::{A2aMock, A2aOptions, A2aReceived};
pub use json_server::JsonServer;
pub use openai::{CONCEPTS_MODEL, concepts};
pub use mcp::{
    BUILTIN_TOOLS, Exchange, INJECT_TEXT, LEAK_TEXT, McpMock, McpOptions, McpTools, RUG_PULL_DESCRIPTION, Received,
    is_request, list_changed,
};

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response};
use http_body_util::BodyExt;
use http_body_util::combinators::BoxBody;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};

pub type Body = BoxBody<Bytes, std::io::Error>;

/// What the next request (or every request) should suffer.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer with this status and an OpenAI-shaped error (or `body` as given).
    Status { status: u16, body: Option<String>, retry_after: Option<String> },
    /// Wait before answering normally.
    Latency(Duration),
    /// Stream this many events, then end: cleanly without `[DONE]`
    /// (`abort: false`) or by breaking the connection (`abort: true`).
    CutStream { after_events: usize, abort: bool },
    /// Stream this many events, then go silent for `pause` before going on.
    StallStream { after_events: usize, pause: Duration },
    /// Answer 200 and stream this many events, then an in-stream error event
    /// (`{"error":{"code":status,…}}`) and end without `[DONE]`;
    /// `after_events: 0` fails before the first content byte.
    StreamError { after_events: usize, status: u16 },
    /// Close the connection without any response.
    Reset,
}

/// One request as the mock received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Recorded {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

#[derive(Default)]
pub(crate) struct State {
    faults: Mutex<VecDeque<Fault>>,
    always: Mutex<Option<Fault>>,
    requests: Mutex<Vec<Recorded>>,
    pub(crate) chunk_delay: Mutex<Duration>,
    record: bool,
    /// Streams whose body was dropped (client gone) before it was fully sent.
    pub(crate) aborted_streams: std::sync::atomic::AtomicUsize,
    /// Requests whose caller went away while they waited (a `Latency` fault).
    abandoned: std::sync::atomic::AtomicUsize,
    /// When the last one was abandoned.
    abandoned_at: Mutex<Option<std::time::Instant>>,
}

/// Counts a request as abandoned if it is dropped before `done`.
struct Waiting<'a>(&'a State, bool);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if !self.1 {
            self.0.abandoned.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            *self.0.abandoned_at.lock().expect("lock") = Some(std::time::Instant::now());
        }
    }
}

pub struct MockUpstream {
    pub addr: SocketAddr,
    state: Arc<State>,
    stop: watch::Sender<bool>,
}

impl MockUpstream {
    /// Starts on an ephemeral loopback port, recording every request.
    pub async fn start() -> MockUpstream {
        Self::start_on("127.0.0.1:0".parse().expect("literal address"), true).await
    }

    /// Starts on `addr`; `record: false` keeps no history (for load tests).
    pub async fn start_on(addr: SocketAddr, record: bool) -> MockUpstream {
        let listener = TcpListener::bind(addr).await.expect("mock upstream: bind");
        let addr = listener.local_addr().expect("mock upstream: local addr");
        let state = Arc::new(State { record, ..State::default() });
        let (stop, stop_rx) = watch::channel(false);
        tokio::spawn(accept_loop(listener, state.clone(), stop_rx));
        MockUpstream { addr, state, stop }
    }

    /// `http://127.0.0.1:port/v1`, the base_url to configure.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Queues a fault for the next request (faults apply in order, one each).
    pub fn push_fault(&self, f: Fault) {
        self.state.faults.lock().expect("lock").push_back(f);
    }

    /// A fault for every request once the queue is empty; `None` clears it.
    pub fn set_fault(&self, f: Option<Fault>) {
        *self.state.always.lock().expect("lock") = f;
    }

    pub fn set_chunk_delay(&self, d: Duration) {
        *self.state.chunk_delay.lock().expect("lock") = d;
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.state.requests.lock().expect("lock").clone()
    }

    pub fn request_count(&self) -> usize {
        self.state.requests.lock().expect("lock").len()
    }

    /// How many streamed responses were abandoned by the reader before
    /// their end — the gateway cancelling an upstream call.
    pub fn aborted_streams(&self) -> usize {
        self.state.aborted_streams.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Requests dropped while they waited out a `Latency` fault — the
    /// gateway cancelling an upstream call its client gave up on — and when
    /// the last one was.
    pub fn abandoned(&self) -> (usize, Option<std::time::Instant>) {
        (self.state.abandoned.load(std::sync::atomic::Ordering::SeqCst), *self.state.abandoned_at.lock().expect("lock"))
    }

    pub fn clear(&self) {
        self.state.requests.lock().expect("lock").clear();
        self.state.faults.lock().expect("lock").clear();
        *self.state.always.lock().expect("lock") = None;
    }
}

impl Drop for MockUpstream {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

impl State {
    fn next_fault(&self) -> Option<Fault> {
        if let Some(f) = self.faults.lock().expect("lock").pop_front() {
            return Some(f);
        }
        self.always.lock().expect("lock").clone()
    }
}

async fn accept_loop(listener: TcpListener, state: Arc<State>, mut stop: watch::Receiver<bool>) {
    loop {
        let (tcp, _) = tokio::select! {
            r = listener.accept() => match r { Ok(c) => c, Err(_) => continue },
            _ = stop.changed() => return,
        };
        let _ = tcp.set_nodelay(true);
        let state = state.clone();
        // A `Reset` fault fires this to drop the connection with no response.
        let kill = Arc::new(Notify::new());
        tokio::spawn(async move {
            let k = kill.clone();
            let svc = service_fn(move |req| handle(req, state.clone(), k.clone()));
            let conn = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tcp), svc);
            tokio::select! {
                _ = conn => {}
                _ = kill.notified() => {}
            }
        });
    }
}

async fn handle(req: Request<Incoming>, state: Arc<State>, kill: Arc<Notify>) -> Result<Response<Body>, Infallible> {
    let (parts, body) = req.into_parts();
    let body = body.collect().await.map(|c| c.to_bytes()).unwrap_or_default();
    let rec = Recorded {
        method: parts.method.to_string(),
        path: parts.uri.path().to_string(),
        query: parts.uri.query().map(str::to_string),
        headers: parts.headers,
        body,
    };
    if state.record {
        state.requests.lock().expect("lock").push(rec.clone());
    }
    // The token endpoint is infrastructure, not the provider under test: faults skip it.
    let fault = if rec.path == "/token" { None } else { state.next_fault() };
    match &fault {
        Some(Fault::Reset) => {
            kill.notify_one();
            std::future::pending::<()>().await;
        }
        Some(Fault::Latency(d)) => {
            let mut waiting = Waiting(&state, false);
            tokio::time::sleep(*d).await;
            waiting.1 = true;
        }
        _ => {}
    }
    let wire = Wire::of(&rec.path);
    if let Some(Fault::Status { status, body, retry_after }) = &fault {
        return Ok(match wire {
            Wire::OpenAi => openai::error_response(*status, body.as_deref(), retry_after.as_deref()),
            Wire::Anthropic => anthropic::error_response(*status, body.as_deref(), retry_after.as_deref()),
            Wire::Gemini => gemini::error_response(*status, body.as_deref(), retry_after.as_deref()),
            Wire::Bedrock => bedrock::error_response(*status, body.as_deref(), retry_after.as_deref()),
            Wire::Cohere => cohere::error_response(*status, body.as_deref(), retry_after.as_deref()),
        });
    }
    Ok(match wire {
        Wire::OpenAi => openai::respond(&rec, fault, state),
        Wire::Anthropic => anthropic::respond(&rec, fault, state),
        Wire::Gemini => gemini::respond(&rec, fault, state),
        Wire::Bedrock => bedrock::respond(&rec, fault, state),
        Wire::Cohere => cohere::respond(&rec, fault, state),
    })
}

/// Which provider's wire format a request path belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    OpenAi,
    Anthropic,
    Gemini,
    Bedrock,
    Cohere,
}

impl Wire {
    pub fn of(path: &str) -> Wire {
        if path.starts_with("/v1/messages") || path.contains("/publishers/anthropic/") {
            Wire::Anthropic
        } else if path.contains(":generateContent")
            || path.contains(":streamGenerateContent")
            || path.contains(":embedContent")
            || path.contains(":batchEmbedContents")
            || (path.contains("/publishers/google/") && path.ends_with(":predict"))
            || path == "/token"
        {
            Wire::Gemini
        } else if path.starts_with("/model/") {
            Wire::Bedrock
        } else if path.starts_with("/v2/") {
            Wire::Cohere
        } else {
            Wire::OpenAi
        }
    }
}
pub use bedrock::{AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY};
