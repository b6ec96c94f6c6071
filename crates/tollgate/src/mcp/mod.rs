//! The MCP gateway: one governed endpoint per tool server (`/mcp/<name>`)
//! in front of upstream MCP servers reached over Streamable HTTP, legacy
//! SSE or stdio, and virtual servers composed from several of them.
//!
//! - `front` speaks MCP to clients (Streamable HTTP and legacy SSE) and
//!   keeps their sessions (`session`);
//! - `catalog` decides which tools an endpoint shows a caller — the one
//!   decision `tools/list` and `tools/call` both read;
//! - `call` governs a tool call through the shared admission path
//!   (identity, allowlists, rate limits), the `mcp_tool_pre` and
//!   `mcp_tool_post` guardrails, the request log and metrics;
//! - `upstream` holds the connections to servers; `inventory` what they
//!   offer and the pins that hold a changed tool until it is re-approved.
//!
//! The `Hub` here is the state that outlives config snapshots: connections,
//! inventories, pins and client sessions.

pub mod call;
pub mod catalog;
pub mod front;
pub mod inventory;
pub mod mock_server;
pub mod registry;
pub mod rpc;
pub mod session;
pub mod upstream;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;

use serde_json::{Value, json};

use crate::config::file::{McpTransport, PinOn};
use crate::state::Shared;
use inventory::{Inventory, Pins, Standing};
use registry::ServerDef;
use upstream::Conn;

/// Connections are keyed by server and, for per-session ones, the client session.
type ConnKey = (String, Option<String>);

/// How long a client session may sit idle before it is forgotten.
pub const SESSION_IDLE: Duration = Duration::from_secs(3600);
/// How often servers' tools are re-read when nobody asks (a definition
/// that changes without `list_changed` is still caught).
pub const REREAD_EVERY: Duration = Duration::from_secs(300);

#[derive(Default)]
pub struct Hub {
    conns: Mutex<HashMap<ConnKey, Arc<Conn>>>,
    /// Serialises connecting, so two first requests start one process.
    connecting: tokio::sync::Mutex<()>,
    inventories: RwLock<HashMap<String, Arc<Inventory>>>,
    pins: RwLock<Pins>,
    /// Tools already reported as quarantined (reported once per change).
    quarantined: Mutex<std::collections::HashSet<String>>,
    pub sessions: session::Sessions,
    store: OnceLock<Arc<crate::store::Store>>,
    /// The live config, for work that starts outside a request (a server
    /// saying its tools changed).
    live: OnceLock<std::sync::Weak<crate::config::reload::Live>>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Hub")
    }
}

impl Hub {
    /// Pins persist in the store; the server installs it and the live
    /// config at start-up.
    pub async fn install(
        &self,
        store: Arc<crate::store::Store>,
        live: &Arc<crate::config::reload::Live>,
    ) -> Result<(), String> {
        let _ = self.live.set(Arc::downgrade(live));
        let pins = store.load_mcp_pins().await?;
        self.pins.write().unwrap_or_else(|p| p.into_inner()).0.extend(pins);
        let _ = self.store.set(store);
        Ok(())
    }

    /// Reads the pins again from the store: approvals made on another
    /// instance of a distributed gateway. Returns whether any changed.
    pub async fn reload_pins(&self) -> Result<bool, String> {
        let Some(store) = self.store.get() else { return Ok(false) };
        let stored: HashMap<String, String> = store.load_mcp_pins().await?.into_iter().collect();
        let mut pins = self.pins.write().unwrap_or_else(|p| p.into_inner());
        if pins.0 == stored {
            return Ok(false);
        }
        let mut quarantined = self.quarantined.lock().unwrap_or_else(|p| p.into_inner());
        for (k, h) in &stored {
            if pins.0.get(k) != Some(h) {
                quarantined.remove(k);
            }
        }
        pins.0 = stored;
        Ok(true)
    }

    /// The connection for `def`, made (or remade, after a process exit or a
    /// changed definition) on demand. `session` is the client session, for
    /// servers that give each client its own upstream session.
    pub async fn conn(
        &self,
        shared: &Shared,
        def: &ServerDef,
        session: Option<&session::Session>,
    ) -> Result<Arc<Conn>, Value> {
        let key: ConnKey = (def.name.clone(), session.filter(|_| def.per_session()).map(|s| s.id.clone()));
        if let Some(c) = self.live_conn(&key, def) {
            return Ok(c);
        }
        let _one = self.connecting.lock().await;
        if let Some(c) = self.live_conn(&key, def) {
            return Ok(c);
        }
        let caps = session.map_or_else(|| json!({}), |s| s.capabilities());
        let client = shared.upstreams.client(Duration::from_secs(10));
        let unavailable =
            |e: String| rpc::error_body(rpc::UPSTREAM_ERROR, format!("MCP server `{}` is unavailable: {e}", def.name));
        let conn = match &def.transport {
            McpTransport::StreamableHttp(u) => {
                let uri = u.parse().map_err(|_| unavailable("bad URL".into()))?;
                let h = upstream::http::HttpConn::new(uri, client, def.headers.clone(), caps);
                Conn::http(&def.name, def.fingerprint.clone(), h)
            }
            McpTransport::Sse(u) => {
                let uri = u.parse().map_err(|_| unavailable("bad URL".into()))?;
                let p = upstream::sse::connect(&def.name, uri, client, def.headers.clone(), caps)
                    .await
                    .map_err(unavailable)?;
                Conn::pump(&def.name, def.fingerprint.clone(), p)
            }
            McpTransport::Stdio { command, args, env } => {
                let p = upstream::stdio::spawn(&def.name, command, args, env, caps).map_err(unavailable)?;
                Conn::pump(&def.name, def.fingerprint.clone(), p)
            }
        };
        let conn = Arc::new(conn);
        if let (Some(s), true) = (session, def.per_session()) {
            forward_events(&conn, s);
        }
        self.conns.lock().unwrap_or_else(|p| p.into_inner()).insert(key, conn.clone());
        Ok(conn)
    }

    fn live_conn(&self, key: &ConnKey, def: &ServerDef) -> Option<Arc<Conn>> {
        let conns = self.conns.lock().unwrap_or_else(|p| p.into_inner());
        conns.get(key).filter(|c| c.alive() && c.fingerprint == def.fingerprint).cloned()
    }

    /// Ends the upstream connections of a client session.
    pub async fn close_session(&self, session_id: &str) {
        let gone: Vec<Arc<Conn>> = {
            let mut conns = self.conns.lock().unwrap_or_else(|p| p.into_inner());
            let keys: Vec<ConnKey> = conns.keys().filter(|(_, s)| s.as_deref() == Some(session_id)).cloned().collect();
            keys.iter().filter_map(|k| conns.remove(k)).collect()
        };
        for c in gone {
            c.close().await;
        }
    }

    /// The upstream connections a client session has of its own.
    pub fn session_conns(&self, session_id: &str) -> Vec<Arc<Conn>> {
        let conns = self.conns.lock().unwrap_or_else(|p| p.into_inner());
        conns.iter().filter(|((_, s), _)| s.as_deref() == Some(session_id)).map(|(_, c)| c.clone()).collect()
    }

    /// The server's tools as last read, reading them first if never read.
    pub async fn inventory(self: &Arc<Self>, shared: &Arc<Shared>, def: &ServerDef) -> Arc<Inventory> {
        let known = self.inventories.read().unwrap_or_else(|p| p.into_inner()).get(&def.name).cloned();
        match known {
            Some(i) if i.error.is_none() => i,
            _ => self.refresh(shared, def).await,
        }
    }

    /// Reads the server's tools again (every page), records first-sight
    /// pins and reports newly quarantined tools.
    pub async fn refresh(self: &Arc<Self>, shared: &Arc<Shared>, def: &ServerDef) -> Arc<Inventory> {
        let inv = match self.read_tools(shared, def).await {
            Ok(pages) => Inventory { tools: inventory::tools_of(&pages), checked_ms: inventory::now_ms(), error: None },
            Err(e) => {
                let old = self.inventories.read().unwrap_or_else(|p| p.into_inner()).get(&def.name).cloned();
                let msg = e.get("message").and_then(Value::as_str).unwrap_or("unavailable").to_string();
                // Keep serving the last known tools; the error is the health.
                let tools = old.map(|o| o.tools.clone()).unwrap_or_default();
                Inventory { tools, checked_ms: inventory::now_ms(), error: Some(msg) }
            }
        };
        if def.pin_tools && inv.error.is_none() {
            self.pin(shared, def, &inv).await;
        }
        let inv = Arc::new(inv);
        self.inventories.write().unwrap_or_else(|p| p.into_inner()).insert(def.name.clone(), inv.clone());
        inv
    }

    async fn read_tools(self: &Arc<Self>, shared: &Arc<Shared>, def: &ServerDef) -> Result<Vec<Value>, Value> {
        let conn = self.conn(shared, def, None).await?;
        self.watch(shared, &conn, def);
        let mut pages = Vec::new();
        let mut cursor: Option<Value> = None;
        // A server that pages forever is cut off rather than followed.
        for _ in 0..100 {
            let params = cursor.take().map_or(Value::Null, |c| json!({ "cursor": c }));
            let page = conn.call(conn.next_id(), "tools/list", params, None).await?;
            cursor = page.get("nextCursor").filter(|c| !c.is_null()).cloned();
            pages.push(page);
            if cursor.is_none() {
                break;
            }
        }
        Ok(pages)
    }

    /// Re-reads a server's tools when it says they changed, and tells the
    /// clients of every endpoint that shows them.
    fn watch(self: &Arc<Self>, shared: &Arc<Shared>, conn: &Arc<Conn>, def: &ServerDef) {
        if conn.watched.swap(true, std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        let mut rx = conn.events.subscribe();
        let (hub, shared, server) = (Arc::downgrade(self), Arc::downgrade(shared), def.name.clone());
        crate::task::spawn("mcp-list-changed", async move {
            loop {
                let v = match rx.recv().await {
                    Ok(v) => v,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(_) => break,
                };
                if v["method"] != "notifications/tools/list_changed" {
                    continue;
                }
                let (Some(hub), Some(shared)) = (hub.upgrade(), shared.upgrade()) else { break };
                let Some(live) = hub.snapshot() else { continue };
                let Some(def) = live.mcp.servers.get(&server).cloned() else { continue };
                hub.refresh(&shared, &def).await;
                hub.sessions.notify_servers(&live.mcp, &server, "notifications/tools/list_changed");
            }
        });
    }

    async fn pin(&self, shared: &Shared, def: &ServerDef, inv: &Inventory) {
        let mut first_sight = Vec::new();
        let mut held = Vec::new();
        {
            let mut pins = self.pins.write().unwrap_or_else(|p| p.into_inner());
            for t in &inv.tools {
                let key = format!("{}/{}", def.name, t.name);
                match pins.standing(true, &key, &t.hash) {
                    None if def.pin_on == PinOn::FirstSight => {
                        pins.0.insert(key.clone(), t.hash.clone());
                        first_sight.push((key, t.hash.clone()));
                    }
                    None => held.push((key, "pending approval")),
                    Some(Standing::Changed) => held.push((key, "definition changed")),
                    _ => {}
                }
            }
        }
        if let Some(store) = self.store.get() {
            for (k, h) in first_sight {
                if let Err(e) = store.put_mcp_pin(k, h).await {
                    tracing::error!(error = %e, "cannot store an MCP tool pin");
                }
            }
        }
        let mut reported = self.quarantined.lock().unwrap_or_else(|p| p.into_inner());
        for (key, why) in held {
            if reported.insert(key.clone()) {
                tracing::warn!(tool = %key, why, "MCP tool quarantined until approved");
                shared.audit.record("-", "mcp.tool.quarantined", &key, why);
                shared.events.publish(crate::events::Event {
                    kind: "mcp_tool_quarantined",
                    id: crate::events::new_id(),
                    time: crate::budgets::period::format_utc(inventory::now_ms() / 1000),
                    data: json!({ "tool": key, "reason": why }),
                });
            }
        }
    }

    /// A tool's standing now (tools never seen count as approved only on
    /// unpinned servers).
    pub fn standing(&self, def: &ServerDef, tool: &inventory::Tool) -> Standing {
        let key = format!("{}/{}", def.name, tool.name);
        let pins = self.pins.read().unwrap_or_else(|p| p.into_inner());
        pins.standing(def.pin_tools, &key, &tool.hash).unwrap_or(Standing::Pending)
    }

    /// Pins the tool's current definition; `Err` says why not.
    pub async fn approve(
        self: &Arc<Self>,
        shared: &Arc<Shared>,
        def: &ServerDef,
        tool: &str,
        actor: &str,
    ) -> Result<String, String> {
        let inv = self.refresh(shared, def).await;
        if let Some(e) = &inv.error {
            return Err(format!("cannot read the tools of `{}`: {e}", def.name));
        }
        let t =
            inv.tools.iter().find(|t| t.name == tool).ok_or_else(|| format!("`{}` has no tool `{tool}`", def.name))?;
        let key = format!("{}/{tool}", def.name);
        if let Some(store) = self.store.get() {
            store.put_mcp_pin(key.clone(), t.hash.clone()).await?;
        }
        self.pins.write().unwrap_or_else(|p| p.into_inner()).0.insert(key.clone(), t.hash.clone());
        self.quarantined.lock().unwrap_or_else(|p| p.into_inner()).remove(&key);
        shared.audit.record(actor, "mcp.tool.approved", &key, &format!("sha256 {}", t.hash));
        Ok(t.hash.clone())
    }

    /// Forgets idle sessions (closing their upstream sessions) every
    /// minute, and re-reads every server's tools every `REREAD_EVERY`.
    pub fn spawn_maintenance(self: &Arc<Self>, shared: &Arc<Shared>) {
        let (hub, weak) = (Arc::downgrade(self), Arc::downgrade(shared));
        crate::task::spawn("mcp-maintenance", async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut last_reread = std::time::Instant::now();
            loop {
                tick.tick().await;
                let (Some(hub), Some(shared)) = (hub.upgrade(), weak.upgrade()) else { return };
                for s in hub.sessions.sweep(SESSION_IDLE) {
                    s.detach();
                    hub.close_session(&s.id).await;
                }
                if last_reread.elapsed() >= REREAD_EVERY {
                    last_reread = std::time::Instant::now();
                    let Some(snap) = hub.snapshot() else { continue };
                    for def in snap.mcp.servers.values() {
                        let before =
                            hub.cached(&def.name).map(|i| i.tools.iter().map(|t| t.hash.clone()).collect::<Vec<_>>());
                        let after = hub.refresh(&shared, def).await;
                        let now: Vec<String> = after.tools.iter().map(|t| t.hash.clone()).collect();
                        if after.error.is_none() && before.is_some_and(|b| b != now) {
                            hub.sessions.notify_servers(&snap.mcp, &def.name, "notifications/tools/list_changed");
                        }
                    }
                }
            }
        });
    }

    pub fn snapshot(&self) -> Option<Arc<crate::config::snapshot::Snapshot>> {
        self.live.get()?.upgrade().map(|l| l.snapshot())
    }

    pub fn cached(&self, server: &str) -> Option<Arc<Inventory>> {
        self.inventories.read().unwrap_or_else(|p| p.into_inner()).get(server).cloned()
    }
}

/// What a client's own upstream session says outside any request (log
/// messages, resource updates) goes to that client's stream; tool-list
/// changes are announced by the hub once it has re-read the tools.
fn forward_events(conn: &Arc<Conn>, session: &session::Session) {
    let mut rx = conn.events.subscribe();
    let session = session.me();
    crate::task::spawn("mcp-session-events", async move {
        loop {
            match rx.recv().await {
                Ok(v) if v["method"] == "notifications/tools/list_changed" => {}
                Ok(v) => {
                    let Some(s) = session.upgrade() else { return };
                    s.push(v);
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(_) => return,
            }
        }
    });
}
