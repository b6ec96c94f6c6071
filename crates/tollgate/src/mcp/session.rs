//! Client sessions (`Mcp-Session-Id`): who opened it, on which endpoint,
//! at which protocol version, the stream the gateway pushes to (the GET
//! stream or the legacy SSE stream), and the ids in flight — requests the
//! client may cancel, and server requests (sampling, elicitation) waiting
//! for the client's answer.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use serde_json::Value;
use tokio::sync::mpsc;

use super::registry::Registry;
use super::rpc;
use super::upstream::Conn;

pub struct Session {
    pub id: String,
    /// The endpoint (`/mcp/<front>`) it was opened on.
    pub front: String,
    /// The principal that opened it; only it may use it.
    pub subject: String,
    pub legacy_sse: bool,
    version: Mutex<String>,
    capabilities: Mutex<Value>,
    out: Mutex<Option<mpsc::UnboundedSender<Value>>>,
    /// Server requests sent to the client: the gateway's id → (connection, the server's id).
    pending: Mutex<HashMap<String, (Arc<Conn>, Value)>>,
    /// Client requests in flight: the client's id → (connection, the gateway's upstream id).
    inflight: Mutex<HashMap<String, (Arc<Conn>, Value)>>,
    seq: AtomicU64,
    last_seen: Mutex<Instant>,
    me: std::sync::Weak<Session>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Session {
    /// A handle that does not keep the session alive.
    pub fn me(&self) -> std::sync::Weak<Session> {
        self.me.clone()
    }

    pub fn version(&self) -> String {
        lock(&self.version).clone()
    }

    pub fn set_initialized(&self, version: &str, capabilities: Value) {
        *lock(&self.version) = version.to_string();
        *lock(&self.capabilities) = capabilities;
    }

    /// The client's capabilities, offered upstream on its behalf.
    pub fn capabilities(&self) -> Value {
        lock(&self.capabilities).clone()
    }

    /// The stream the gateway pushes to; a new one replaces the old.
    pub fn attach(&self) -> mpsc::UnboundedReceiver<Value> {
        let (tx, rx) = mpsc::unbounded_channel();
        *lock(&self.out) = Some(tx);
        rx
    }

    /// Pushes a message on the session's stream; false when none is open.
    pub fn push(&self, v: Value) -> bool {
        lock(&self.out).as_ref().is_some_and(|tx| tx.send(v).is_ok())
    }

    pub fn detach(&self) {
        *lock(&self.out) = None;
    }

    /// A server request on its way to the client, under a gateway id (two
    /// upstreams may use the same ids).
    pub fn forward_request(&self, conn: &Arc<Conn>, mut msg: Value) -> Value {
        let mine = format!("tg-{}", self.seq.fetch_add(1, Ordering::Relaxed));
        let theirs = msg.get("id").cloned().unwrap_or(Value::Null);
        lock(&self.pending).insert(mine.clone(), (conn.clone(), theirs));
        msg["id"] = Value::String(mine);
        msg
    }

    /// The client's answer to a forwarded server request; false when the id is not one.
    pub async fn answer(&self, id: &Value, body: Result<Value, Value>) -> bool {
        let Some(key) = id.as_str() else { return false };
        let found = lock(&self.pending).remove(key);
        match found {
            Some((conn, theirs)) => {
                conn.answer(theirs, body).await;
                true
            }
            None => false,
        }
    }

    pub fn begin(&self, client_id: &Value, conn: &Arc<Conn>, upstream_id: &Value) {
        lock(&self.inflight).insert(client_id.to_string(), (conn.clone(), upstream_id.clone()));
    }

    pub fn end(&self, client_id: &Value) {
        lock(&self.inflight).remove(&client_id.to_string());
    }

    /// `notifications/cancelled` from the client, passed on under the upstream id.
    pub async fn cancel(&self, params: &Value) {
        let Some(id) = params.get("requestId") else { return };
        let found = lock(&self.inflight).get(&id.to_string()).cloned();
        if let Some((conn, upstream_id)) = found {
            let mut p = params.clone();
            p["requestId"] = upstream_id;
            conn.notify("notifications/cancelled", p).await;
        }
    }
}

#[derive(Default)]
pub struct Sessions {
    map: RwLock<HashMap<String, Arc<Session>>>,
}

impl Sessions {
    pub fn create(&self, front: &str, subject: &str, legacy_sse: bool) -> Arc<Session> {
        let id = hex::encode(crate::digest::os_random::<16>());
        let s = Arc::new_cyclic(|me| Session {
            me: me.clone(),
            id: id.clone(),
            front: front.to_string(),
            subject: subject.to_string(),
            legacy_sse,
            version: Mutex::new(if legacy_sse { "2024-11-05".into() } else { rpc::LATEST_HANDSHAKE.into() }),
            capabilities: Mutex::new(Value::Object(Default::default())),
            out: Mutex::new(None),
            pending: Mutex::default(),
            inflight: Mutex::default(),
            seq: AtomicU64::new(1),
            last_seen: Mutex::new(Instant::now()),
        });
        self.map.write().unwrap_or_else(|p| p.into_inner()).insert(id, s.clone());
        s
    }

    /// The session, if it exists and belongs to this endpoint and subject.
    pub fn get(&self, id: &str, front: &str, subject: &str) -> Option<Arc<Session>> {
        let s = self.map.read().unwrap_or_else(|p| p.into_inner()).get(id).cloned()?;
        if s.front != front || s.subject != subject {
            return None;
        }
        *lock(&s.last_seen) = Instant::now();
        Some(s)
    }

    pub fn remove(&self, id: &str) -> Option<Arc<Session>> {
        self.map.write().unwrap_or_else(|p| p.into_inner()).remove(id)
    }

    pub fn count(&self) -> usize {
        self.map.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Tells every session whose endpoint shows `server`'s tools.
    pub fn notify_servers(&self, reg: &Registry, server: &str, method: &str) {
        let sessions: Vec<Arc<Session>> =
            self.map.read().unwrap_or_else(|p| p.into_inner()).values().cloned().collect();
        for s in sessions {
            if reg.front(&s.front).is_some_and(|f| f.servers().iter().any(|n| n == server)) {
                s.push(rpc::notification(method, Value::Null));
            }
        }
    }

    /// Sessions idle longer than `idle`, removed.
    pub fn sweep(&self, idle: std::time::Duration) -> Vec<Arc<Session>> {
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        let stale: Vec<String> =
            map.iter().filter(|(_, s)| lock(&s.last_seen).elapsed() > idle).map(|(k, _)| k.clone()).collect();
        stale.iter().filter_map(|k| map.remove(k)).collect()
    }
}
