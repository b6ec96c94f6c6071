//! Connections to upstream MCP servers, one per (server, downstream
//! session) for Streamable HTTP and legacy SSE — each client gets its own
//! upstream session, as it would talking to the server directly — and one
//! per server for a stdio process unless `process: per_session`.
//!
//! The MCP SDK for Rust (`rmcp`) is built around typed handlers that parse
//! every message into its own structs; a gateway relays messages it mostly
//! does not read (unknown methods, fields of newer revisions, `_meta`) and
//! must re-key ids, sessions and progress tokens between two hops, so the
//! connections here speak the wire format directly over the gateway's own
//! HTTP client and `tokio::process`, and are tested against the official
//! SDKs on both sides.

pub mod http;
pub mod pump;
pub mod sse;
pub mod stdio;

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};

use super::rpc;

/// How long one upstream request may take before the client gets an error.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(120);

/// Where messages an upstream sends while answering a request go: progress
/// notifications and its own requests to the client (sampling, elicitation,
/// roots), still carrying the upstream's ids.
pub type Relay = mpsc::UnboundedSender<Value>;

/// What the upstream said about itself at initialisation.
#[derive(Debug, Clone, Default)]
pub struct ServerInfo {
    pub protocol_version: String,
    pub capabilities: Value,
    pub server_info: Value,
    pub instructions: Option<String>,
}

enum Transport {
    Http(Box<http::HttpConn>),
    Pump(pump::PumpConn),
}

/// One upstream MCP session.
pub struct Conn {
    pub server: String,
    /// The server definition this connection was made from; a changed
    /// definition (new URL, new credential) replaces the connection.
    pub fingerprint: String,
    transport: Transport,
    ids: AtomicU64,
    info: Mutex<Option<ServerInfo>>,
    /// Server messages outside any request: `list_changed`, log messages.
    pub events: broadcast::Sender<Value>,
    /// Whether the hub listens to `events` for `list_changed`.
    pub watched: std::sync::atomic::AtomicBool,
}

/// The client identity and capabilities the gateway offers upstream.
pub fn client_hello(capabilities: &Value) -> Value {
    json!({
        "protocolVersion": rpc::LATEST_HANDSHAKE,
        "capabilities": capabilities,
        "clientInfo": { "name": "tollgate", "version": env!("CARGO_PKG_VERSION") },
    })
}

impl Conn {
    pub fn http(server: &str, fingerprint: String, conn: http::HttpConn) -> Conn {
        Conn::new(server, fingerprint, Transport::Http(Box::new(conn)))
    }

    pub fn pump(server: &str, fingerprint: String, conn: pump::PumpConn) -> Conn {
        Conn::new(server, fingerprint, Transport::Pump(conn))
    }

    fn new(server: &str, fingerprint: String, transport: Transport) -> Conn {
        let events = match &transport {
            Transport::Http(h) => h.events.clone(),
            Transport::Pump(p) => p.events.clone(),
        };
        Conn {
            server: server.to_string(),
            fingerprint,
            transport,
            ids: AtomicU64::new(1),
            info: Mutex::new(None),
            events,
            watched: Default::default(),
        }
    }

    /// A fresh upstream request id (ids are the gateway's on this hop, so
    /// concurrent clients sharing a connection never collide).
    pub fn next_id(&self) -> Value {
        Value::from(self.ids.fetch_add(1, Ordering::Relaxed))
    }

    /// Whether the connection can still carry requests (a stdio process
    /// that exited, an SSE stream that ended cannot).
    pub fn alive(&self) -> bool {
        match &self.transport {
            Transport::Http(_) => true,
            Transport::Pump(p) => p.alive(),
        }
    }

    /// What the server said at initialisation (initialising if needed).
    pub async fn info(&self) -> Result<ServerInfo, Value> {
        if let Some(i) = self.info.lock().unwrap_or_else(|p| p.into_inner()).clone() {
            return Ok(i);
        }
        // The first request initialises; `ping` is the cheapest.
        let id = self.next_id();
        self.call(id, "ping", Value::Null, None).await.map(|_| ())?;
        Ok(self.info.lock().unwrap_or_else(|p| p.into_inner()).clone().unwrap_or_default())
    }

    pub(crate) fn set_info(&self, i: ServerInfo) {
        *self.info.lock().unwrap_or_else(|p| p.into_inner()) = Some(i);
    }

    /// One request; `Err` is a JSON-RPC error object (the upstream's own, or
    /// the gateway's when the server could not be reached).
    pub async fn call(&self, id: Value, method: &str, params: Value, relay: Option<&Relay>) -> Result<Value, Value> {
        let fut = async {
            match &self.transport {
                Transport::Http(h) => h.call(self, id, method, params, relay).await,
                Transport::Pump(p) => p.call(self, id, method, params, relay).await,
            }
        };
        match tokio::time::timeout(CALL_TIMEOUT, fut).await {
            Ok(r) => r,
            Err(_) => Err(rpc::error_body(
                rpc::UPSTREAM_ERROR,
                format!("MCP server `{}` did not answer within {}s", self.server, CALL_TIMEOUT.as_secs()),
            )),
        }
    }

    /// A notification to the server (cancellation, `roots/list_changed`).
    pub async fn notify(&self, method: &str, params: Value) {
        match &self.transport {
            Transport::Http(h) => h.send(self, rpc::notification(method, params)).await,
            Transport::Pump(p) => p.send(rpc::notification(method, params)),
        }
    }

    /// The client's answer to a request the server made.
    pub async fn answer(&self, id: Value, body: Result<Value, Value>) {
        match &self.transport {
            Transport::Http(h) => h.send(self, rpc::respond(id, body)).await,
            Transport::Pump(p) => p.send(rpc::respond(id, body)),
        }
    }

    /// Ends the upstream session (HTTP DELETE; a per-session process is killed on drop).
    pub async fn close(&self) {
        if let Transport::Http(h) = &self.transport {
            h.close().await;
        }
    }

    pub(crate) fn unavailable(&self, why: impl std::fmt::Display) -> Value {
        rpc::error_body(rpc::UPSTREAM_ERROR, format!("MCP server `{}` is unavailable: {why}", self.server))
    }
}

/// Checks an `initialize` result and records it.
pub(crate) fn accept_init(conn: &Conn, result: &Value) -> Result<(), Value> {
    let version = result.get("protocolVersion").and_then(Value::as_str).unwrap_or("");
    if !rpc::HANDSHAKE_VERSIONS.contains(&version) {
        return Err(
            conn.unavailable(format!("it answered with protocol version `{version}`, which tollgate does not speak"))
        );
    }
    conn.set_info(ServerInfo {
        protocol_version: version.to_string(),
        capabilities: result.get("capabilities").cloned().unwrap_or_else(|| json!({})),
        server_info: result.get("serverInfo").cloned().unwrap_or(Value::Null),
        instructions: result.get("instructions").and_then(Value::as_str).map(str::to_string),
    });
    Ok(())
}
