//! A mock MCP server (JSON-RPC 2.0, revisions 2025-06-18 / 2025-11-25) with
//! tools that echo, add, leak a credential, inject a prompt, fail, report
//! progress, ask the client to sample and report the credentials they were
//! called with. [`McpMock`] serves it over Streamable HTTP (`/mcp`) and the
//! legacy HTTP+SSE transport (`/sse` + `/messages`) at once, records every
//! message with its headers, and can fail requests, expire sessions and
//! change its tools under a client. The `mock-mcp` binary serves the same
//! tools over stdio.

mod server;
mod tools;

pub use tools::{
    BUILTIN_TOOLS, Exchange, INJECT_TEXT, LEAK_TEXT, McpTools, RUG_PULL_DESCRIPTION, is_request, list_changed,
};

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::watch;

use server::McpState;

/// One JSON-RPC message as the mock received it.
#[derive(Debug, Clone)]
pub struct Received {
    /// The transport session: `Mcp-Session-Id` (the new one for
    /// `initialize`), or the legacy transport's `sessionId`.
    pub session: Option<String>,
    /// The HTTP request's headers, lower-cased names, in order.
    pub headers: Vec<(String, String)>,
    pub message: Value,
}

impl Received {
    /// The first value of a header (name in lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    pub fn method(&self) -> Option<&str> {
        self.message.get("method").and_then(Value::as_str)
    }
}

/// How an [`McpMock`] starts.
#[derive(Debug, Clone)]
pub struct McpOptions {
    /// The tools to expose, in order; names not built in answer with their name.
    pub tools: Vec<String>,
    /// Tools per `tools/list` page; 0 lists all at once.
    pub page_size: usize,
    /// Answer the Streamable HTTP GET stream with 405, as servers may.
    pub disable_get_stream: bool,
}

impl Default for McpOptions {
    fn default() -> Self {
        McpOptions { tools: BUILTIN_TOOLS.map(String::from).to_vec(), page_size: 3, disable_get_stream: false }
    }
}

pub struct McpMock {
    pub addr: SocketAddr,
    state: Arc<McpState>,
    stop: watch::Sender<bool>,
}

impl McpMock {
    /// Starts on an ephemeral loopback port with every built-in tool.
    pub async fn start() -> McpMock {
        Self::start_with(McpOptions::default()).await
    }

    pub async fn start_with(opts: McpOptions) -> McpMock {
        Self::start_on("127.0.0.1:0", opts).await
    }

    /// On a given address (the load benchmark needs a fixed port).
    pub async fn start_on(addr: &str, opts: McpOptions) -> McpMock {
        let listener = TcpListener::bind(addr).await.expect("mock mcp: bind");
        let addr = listener.local_addr().expect("mock mcp: local addr");
        let tools = McpTools::new(&opts.tools).with_page_size(opts.page_size);
        let state = Arc::new(McpState::new(tools, opts.disable_get_stream));
        let (stop, stop_rx) = watch::channel(false);
        tokio::spawn(server::accept_loop(listener, state.clone(), stop_rx));
        McpMock { addr, state, stop }
    }

    /// `http://127.0.0.1:<port>/mcp`, the Streamable HTTP endpoint.
    pub fn mcp_url(&self) -> String {
        format!("http://{}/mcp", self.addr)
    }

    /// `http://127.0.0.1:<port>/sse`, the legacy HTTP+SSE endpoint.
    pub fn sse_url(&self) -> String {
        format!("http://{}/sse", self.addr)
    }

    /// Every message received, in order (requests the mock rejected with
    /// 400/404 or a `fail_next` status are not among them).
    pub fn received(&self) -> Vec<Received> {
        self.state.received.lock().expect("lock").clone()
    }

    /// The `arguments` of every `tools/call` of `tool` (`null` when absent).
    pub fn calls(&self, tool: &str) -> Vec<Value> {
        self.received()
            .into_iter()
            .filter(|r| r.method() == Some("tools/call") && r.message["params"]["name"] == tool)
            .map(|r| r.message["params"]["arguments"].clone())
            .collect()
    }

    /// How many messages of this method were received.
    pub fn count(&self, method: &str) -> usize {
        self.received().iter().filter(|r| r.method() == Some(method)).count()
    }

    pub fn clear(&self) {
        self.state.received.lock().expect("lock").clear();
    }

    /// Changes one tool's description (a rug pull) and tells every open
    /// server stream; false if there is no such tool.
    pub fn set_description(&self, tool: &str, description: &str) -> bool {
        let found = self.state.tools.set_description(tool, description);
        if found {
            self.state.broadcast(&list_changed());
        }
        found
    }

    /// Adds a tool that answers with its own name, and tells every open server stream.
    pub fn add_tool(&self, name: &str, description: &str) {
        self.state.tools.add_tool(name, description);
        self.state.broadcast(&list_changed());
    }

    /// Adds a tool that answers `answer` to every call.
    pub fn add_tool_answering(&self, name: &str, description: &str, answer: &str) {
        self.state.tools.set_answer(name, answer);
        self.add_tool(name, description);
    }

    /// Forgets every session: the next request with an old id gets 404
    /// (and open streams of those sessions end).
    pub fn expire_sessions(&self) {
        self.state.sessions.lock().expect("lock").clear();
        self.state.legacy.lock().expect("lock").clear();
    }

    /// The Streamable HTTP session ids alive now.
    pub fn sessions(&self) -> Vec<String> {
        self.state.sessions.lock().expect("lock").keys().cloned().collect()
    }

    /// The next `n` HTTP requests, of any kind, get `status` and nothing else.
    pub fn fail_next(&self, n: usize, status: u16) {
        *self.state.fail.lock().expect("lock") = (n, status);
    }

    /// Every HTTP request waits this long before it is handled.
    pub fn set_latency(&self, d: Duration) {
        *self.state.latency.lock().expect("lock") = d;
    }
}

impl Drop for McpMock {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}
