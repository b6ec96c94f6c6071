//! A connection over one ordered pair of message streams — a stdio
//! process's stdin/stdout, or a legacy SSE stream and its POST endpoint.
//! Responses are matched to requests by id; what the server sends on its
//! own is routed: progress by its (re-keyed) token, a server request to the
//! newest request in flight (the one most likely waiting on it), anything
//! else to the connection's events.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc, oneshot};

use super::{Conn, Relay, accept_init, client_hello};
use crate::mcp::rpc;

type Waiter = oneshot::Sender<Result<Value, Value>>;

pub struct Shared {
    pub server: String,
    out: mpsc::UnboundedSender<Value>,
    pending: Mutex<HashMap<String, Waiter>>,
    /// Requests in flight that can take server messages, newest last.
    relays: Mutex<Vec<(String, Relay)>>,
    /// Re-keyed progress tokens: the gateway's token → (the client's, where to send).
    tokens: Mutex<HashMap<String, (Value, Relay)>>,
    alive: AtomicBool,
    pub events: broadcast::Sender<Value>,
}

pub struct PumpConn {
    shared: Arc<Shared>,
    capabilities: Value,
    init: tokio::sync::OnceCell<()>,
    tasks: Vec<tokio::task::AbortHandle>,
    pub events: broadcast::Sender<Value>,
}

impl Drop for PumpConn {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// The channel a transport's writer drains, and the state its reader feeds.
pub fn channel(server: &str) -> (Arc<Shared>, mpsc::UnboundedReceiver<Value>) {
    let (out, rx) = mpsc::unbounded_channel();
    let shared = Arc::new(Shared {
        server: server.to_string(),
        out,
        pending: Mutex::default(),
        relays: Mutex::default(),
        tokens: Mutex::default(),
        alive: AtomicBool::new(true),
        events: broadcast::channel(64).0,
    });
    (shared, rx)
}

impl Shared {
    /// One message from the server.
    pub fn incoming(&self, v: Value) {
        let has_method = v.get("method").is_some();
        match (v.get("id").cloned(), has_method) {
            (Some(id), false) => {
                let waiter = self.pending.lock().unwrap_or_else(|p| p.into_inner()).remove(&id.to_string());
                if let (Some(w), Ok(rpc::Msg::Response { body, .. })) = (waiter, rpc::Msg::parse(v)) {
                    let _ = w.send(body);
                }
            }
            (Some(id), true) => {
                let relay = self.relays.lock().unwrap_or_else(|p| p.into_inner()).last().map(|(_, r)| r.clone());
                match relay {
                    Some(r) => {
                        let _ = r.send(v);
                    }
                    None => {
                        let _ =
                            self.out.send(rpc::error(id, rpc::METHOD_NOT_FOUND, "no client is waiting on this server"));
                    }
                }
            }
            (None, _) => {
                if v["method"] == "notifications/progress"
                    && let Some(token) = v["params"]["progressToken"].as_str()
                {
                    let found = self.tokens.lock().unwrap_or_else(|p| p.into_inner()).get(token).cloned();
                    if let Some((original, relay)) = found {
                        let mut v = v;
                        v["params"]["progressToken"] = original;
                        let _ = relay.send(v);
                        return;
                    }
                }
                let _ = self.events.send(v);
            }
        }
    }

    /// The streams ended: every waiting request fails now, not at its timeout.
    pub fn closed(&self, why: &str) {
        self.alive.store(false, Ordering::Relaxed);
        let waiting: Vec<Waiter> =
            self.pending.lock().unwrap_or_else(|p| p.into_inner()).drain().map(|(_, w)| w).collect();
        for w in waiting {
            let _ = w.send(Err(rpc::error_body(
                rpc::UPSTREAM_ERROR,
                format!("MCP server `{}` is unavailable: {why}", self.server),
            )));
        }
    }
}

impl PumpConn {
    pub fn new(shared: Arc<Shared>, capabilities: Value, tasks: Vec<tokio::task::AbortHandle>) -> PumpConn {
        let events = shared.events.clone();
        PumpConn { shared, capabilities, init: tokio::sync::OnceCell::new(), tasks, events }
    }

    pub fn alive(&self) -> bool {
        self.shared.alive.load(Ordering::Relaxed)
    }

    pub fn send(&self, msg: Value) {
        let _ = self.shared.out.send(msg);
    }

    pub async fn call(
        &self,
        conn: &Conn,
        id: Value,
        method: &str,
        params: Value,
        relay: Option<&Relay>,
    ) -> Result<Value, Value> {
        self.init
            .get_or_try_init(|| async {
                let id = conn.next_id();
                let result = self.raw(conn, id, "initialize", client_hello(&self.capabilities), None).await?;
                accept_init(conn, &result)?;
                self.send(rpc::notification("notifications/initialized", Value::Null));
                Ok::<(), Value>(())
            })
            .await?;
        self.raw(conn, id, method, params, relay).await
    }

    async fn raw(
        &self,
        conn: &Conn,
        id: Value,
        method: &str,
        mut params: Value,
        relay: Option<&Relay>,
    ) -> Result<Value, Value> {
        if !self.alive() {
            return Err(conn.unavailable("its connection ended"));
        }
        let key = id.to_string();
        let (tx, rx) = oneshot::channel();
        self.shared.pending.lock().unwrap_or_else(|p| p.into_inner()).insert(key.clone(), tx);
        // The streams may have ended between the check above and the insert
        // (`closed` drains only what it finds); look again rather than wait
        // for the timeout.
        if !self.alive() {
            self.shared.pending.lock().unwrap_or_else(|p| p.into_inner()).remove(&key);
            return Err(conn.unavailable("its connection ended"));
        }
        let mut token_key = None;
        if let Some(r) = relay {
            self.shared.relays.lock().unwrap_or_else(|p| p.into_inner()).push((key.clone(), r.clone()));
            // Progress tokens are the client's; on a shared process two
            // clients could pick the same one, so the gateway's goes up.
            if let Some(original) = params.pointer("/_meta/progressToken").cloned() {
                let mine = format!("tg-{key}");
                params["_meta"]["progressToken"] = json!(mine);
                self.shared
                    .tokens
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(mine.clone(), (original, r.clone()));
                token_key = Some(mine);
            }
        }
        self.send(rpc::request(id, method, params));
        let answer = rx.await.unwrap_or_else(|_| Err(conn.unavailable("its connection ended")));
        self.shared.relays.lock().unwrap_or_else(|p| p.into_inner()).retain(|(k, _)| k != &key);
        if let Some(t) = token_key {
            self.shared.tokens.lock().unwrap_or_else(|p| p.into_inner()).remove(&t);
        }
        self.shared.pending.lock().unwrap_or_else(|p| p.into_inner()).remove(&key);
        answer
    }
}
