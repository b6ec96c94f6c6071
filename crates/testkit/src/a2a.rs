//! A mock A2A (Agent2Agent) agent that speaks the wire formats of the
//! official a2a-sdk 1.3 server: protocol v1.0 and, alongside it, v0.3 —
//! the agent card (both well-known paths, v1.0 `supportedInterfaces` merged
//! with the v0.3 fields), JSON-RPC at `/rpc` (both generations' method
//! names, each answered in its own shapes) and HTTP+JSON at `/rest` (v1.0)
//! and `/rest/v1` (v0.3), with SSE streams that arrive over time.
//!
//! What the agent does depends on the text of the message: `direct` gets a
//! message back and no task; `stream` (streamed) gets three artifact chunks
//! ~20 ms apart; `slow` stays working until it is canceled; anything else
//! completes at once with an `echo` artifact. [`A2aOptions::legacy_only`]
//! turns it into an older v0.3-only agent.

mod agent;
mod card;
mod model;
mod server;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::watch;

use server::A2aState;

/// How an [`A2aMock`] starts.
#[derive(Debug, Clone, Default)]
pub struct A2aOptions {
    /// Require `Authorization: Bearer <token>` on the RPC and REST
    /// endpoints (401 otherwise); the card never needs it.
    pub token: Option<String>,
    /// Behave as an older v0.3-only agent: card only at
    /// `/.well-known/agent.json`, v0.3 card shape, JSON-RPC at `{base}/rpc`
    /// only (v1.0 method names are unknown, no REST).
    pub legacy_only: bool,
}

/// One RPC or REST request as the mock received it.
#[derive(Debug, Clone)]
pub struct A2aReceived {
    /// The HTTP method.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// The request's headers, lower-case names, in order.
    pub headers: Vec<(String, String)>,
    /// The body as JSON; `Null` when empty or not JSON.
    pub body: Value,
}

impl A2aReceived {
    /// The first value of a header (name in lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// The JSON-RPC method (`body.method`).
    pub fn rpc_method(&self) -> Option<&str> {
        self.body.get("method").and_then(Value::as_str)
    }
}

pub struct A2aMock {
    pub addr: SocketAddr,
    /// `http://127.0.0.1:<port>`, no trailing slash.
    pub url: String,
    state: Arc<A2aState>,
    stop: watch::Sender<bool>,
}

impl A2aMock {
    /// Starts on an ephemeral loopback port, v1.0 + v0.3, no token.
    pub async fn start() -> A2aMock {
        Self::start_with(A2aOptions::default()).await
    }

    pub async fn start_with(opts: A2aOptions) -> A2aMock {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("mock a2a: bind");
        let addr = listener.local_addr().expect("mock a2a: local addr");
        let url = format!("http://{addr}");
        let state = Arc::new(A2aState::new(opts, url.clone()));
        let (stop, stop_rx) = watch::channel(false);
        tokio::spawn(server::accept_loop(listener, state.clone(), stop_rx));
        A2aMock { addr, url, state, stop }
    }

    /// Every RPC/REST request, in order — those refused with 401 too; card GETs are not among them.
    pub fn received(&self) -> Vec<A2aReceived> {
        self.state.received.lock().expect("lock").clone()
    }

    /// How many GETs of either card path there were (404s in `legacy_only` too).
    pub fn card_fetches(&self) -> usize {
        self.state.card_fetches.load(Ordering::SeqCst)
    }

    /// Forgets what was received and the card fetch count (tasks stay).
    pub fn clear(&self) {
        self.state.received.lock().expect("lock").clear();
        self.state.card_fetches.store(0, Ordering::SeqCst);
    }
}

impl Drop for A2aMock {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}
