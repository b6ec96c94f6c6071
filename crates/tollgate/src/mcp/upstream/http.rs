//! Streamable HTTP to an upstream: each request is a POST answered with
//! JSON or with an SSE stream that carries the server's progress and its
//! own requests before the response; a GET stream carries what the server
//! says outside any request (`list_changed`). A 404 on a session the
//! server has forgotten re-initialises and retries once, invisibly to the
//! client.

use std::sync::Mutex;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use serde_json::Value;
use tokio::sync::broadcast;

use super::{Conn, Relay, accept_init, client_hello};
use crate::mcp::rpc::{self, Msg};
use crate::providers::http::HttpClient;

/// An upstream body larger than this is refused rather than buffered.
const MAX_BODY: usize = 32 << 20;

#[derive(Clone, PartialEq, Eq)]
struct Session {
    id: Option<String>,
    version: String,
}

pub struct HttpConn {
    url: Uri,
    client: HttpClient,
    headers: Vec<(HeaderName, HeaderValue)>,
    capabilities: Value,
    session: tokio::sync::Mutex<Option<Session>>,
    pub events: broadcast::Sender<Value>,
    listener: Mutex<Option<tokio::task::AbortHandle>>,
}

impl Drop for HttpConn {
    fn drop(&mut self) {
        if let Some(h) = self.listener.lock().unwrap_or_else(|p| p.into_inner()).take() {
            h.abort();
        }
    }
}

impl HttpConn {
    pub fn new(url: Uri, client: HttpClient, headers: Vec<(HeaderName, HeaderValue)>, capabilities: Value) -> HttpConn {
        HttpConn {
            url,
            client,
            headers,
            capabilities,
            session: tokio::sync::Mutex::new(None),
            events: broadcast::channel(64).0,
            listener: Mutex::new(None),
        }
    }

    pub async fn call(
        &self,
        conn: &Conn,
        id: Value,
        method: &str,
        params: Value,
        relay: Option<&Relay>,
    ) -> Result<Value, Value> {
        let msg = rpc::request(id.clone(), method, params);
        let mut retried = false;
        loop {
            let s = self.ensure(conn).await?;
            let resp = self.post(Some(&s), &msg).await.map_err(|e| conn.unavailable(e))?;
            if resp.status() == http::StatusCode::NOT_FOUND && s.id.is_some() && !retried {
                // The server ended or forgot the session: start a new one.
                tracing::info!(server = %conn.server, "upstream MCP session expired; re-initialising");
                self.forget(&s).await;
                retried = true;
                continue;
            }
            return self.read(conn, resp, &id, relay).await;
        }
    }

    /// A notification or an answer: no response is expected.
    pub async fn send(&self, conn: &Conn, msg: Value) {
        let s = match self.ensure(conn).await {
            Ok(s) => s,
            Err(_) => return,
        };
        match self.post(Some(&s), &msg).await {
            Ok(r) if r.status().is_success() => {}
            Ok(r) => tracing::debug!(server = %conn.server, status = %r.status(), "upstream refused a message"),
            Err(e) => tracing::debug!(server = %conn.server, error = %e, "cannot send to the upstream"),
        }
    }

    pub async fn close(&self) {
        let s = self.session.lock().await.take();
        if let Some(Session { id: Some(id), version }) = s {
            let mut req = self.base(Method::DELETE, Some(&id), &version);
            *req.body_mut() = Full::new(Bytes::new());
            let _ = self.client.request(req).await;
        }
    }

    async fn forget(&self, stale: &Session) {
        let mut guard = self.session.lock().await;
        if guard.as_ref() == Some(stale) {
            *guard = None;
        }
    }

    /// The current session, initialising one first if there is none.
    async fn ensure(&self, conn: &Conn) -> Result<Session, Value> {
        let mut guard = self.session.lock().await;
        if let Some(s) = guard.as_ref() {
            return Ok(s.clone());
        }
        let id = conn.next_id();
        let hello = rpc::request(id.clone(), "initialize", client_hello(&self.capabilities));
        let resp = self.post(None, &hello).await.map_err(|e| conn.unavailable(e))?;
        let session_id = resp.headers().get("mcp-session-id").and_then(|v| v.to_str().ok()).map(str::to_string);
        let result = self.read(conn, resp, &id, None).await?;
        accept_init(conn, &result)?;
        let version = result["protocolVersion"].as_str().unwrap_or(rpc::LATEST_HANDSHAKE).to_string();
        let s = Session { id: session_id, version };
        let _ = self.post(Some(&s), &rpc::notification("notifications/initialized", Value::Null)).await;
        if let Some(sid) = &s.id {
            self.listen(sid.clone(), s.version.clone());
        }
        *guard = Some(s.clone());
        Ok(s)
    }

    fn base(&self, method: Method, session: Option<&str>, version: &str) -> Request<Full<Bytes>> {
        let mut b = Request::builder().method(method).uri(self.url.clone());
        for (k, v) in &self.headers {
            b = b.header(k, v);
        }
        if let Some(id) = session {
            b = b.header("mcp-session-id", id);
        }
        if !version.is_empty() {
            b = b.header("mcp-protocol-version", version);
        }
        b.body(Full::new(Bytes::new())).unwrap_or_default()
    }

    async fn post(&self, s: Option<&Session>, msg: &Value) -> Result<http::Response<Incoming>, String> {
        let (sid, version) = s.map_or((None, ""), |s| (s.id.as_deref(), s.version.as_str()));
        let mut req = self.base(Method::POST, sid, version);
        let h = req.headers_mut();
        h.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        h.insert(http::header::ACCEPT, HeaderValue::from_static("application/json, text/event-stream"));
        *req.body_mut() = Full::new(Bytes::from(serde_json::to_vec(msg).unwrap_or_default()));
        self.client.request(req).await.map_err(|e| format!("cannot connect: {e}"))
    }

    /// Reads the answer to request `id`: a JSON body, or an SSE stream whose
    /// other messages go to `relay` (or to the connection's events).
    async fn read(
        &self,
        conn: &Conn,
        resp: http::Response<Incoming>,
        id: &Value,
        relay: Option<&Relay>,
    ) -> Result<Value, Value> {
        let status = resp.status();
        let sse = resp
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        let mut body = resp.into_body();
        if sse && status.is_success() {
            let mut buf: Vec<u8> = Vec::new();
            while let Some(frame) = body.frame().await {
                let frame = frame.map_err(|e| conn.unavailable(format!("the stream broke: {e}")))?;
                let Ok(data) = frame.into_data() else { continue };
                buf.extend_from_slice(&data);
                if buf.len() > MAX_BODY {
                    return Err(conn.unavailable("an event larger than 32 MiB"));
                }
                let Some(end) = crate::wire::sse::last_boundary(&buf) else { continue };
                let events: Vec<Value> = crate::wire::sse::sse_events(&buf[..end])
                    .into_iter()
                    .filter_map(|(_, d)| serde_json::from_slice(&d).ok())
                    .collect();
                buf.drain(..end);
                for v in events {
                    if let Some(answer) = self.route(v, id, relay) {
                        return answer;
                    }
                }
            }
            return Err(conn.unavailable("the stream ended before the response"));
        }
        let bytes = match http_body_util::Limited::new(body, MAX_BODY).collect().await {
            Ok(c) => c.to_bytes(),
            Err(e) => return Err(conn.unavailable(format!("cannot read the response: {e}"))),
        };
        match serde_json::from_slice::<Value>(&bytes).ok().map(Msg::parse) {
            Some(Ok(Msg::Response { id: got, body })) if &got == id => body,
            _ if !status.is_success() => Err(conn.unavailable(format!("HTTP {}", status.as_u16()))),
            _ => Err(conn.unavailable("the answer is not a JSON-RPC response")),
        }
    }

    /// The answer when `v` is the response to `id`; anything else is relayed.
    fn route(&self, v: Value, id: &Value, relay: Option<&Relay>) -> Option<Result<Value, Value>> {
        if v.get("id") == Some(id) && v.get("method").is_none() {
            return match Msg::parse(v) {
                Ok(Msg::Response { body, .. }) => Some(body),
                _ => None,
            };
        }
        match relay {
            Some(r) => {
                let _ = r.send(v);
            }
            None => {
                let _ = self.events.send(v);
            }
        }
        None
    }

    /// The server's own stream (GET), for messages outside any request.
    /// A server without one answers 405, which ends the listener.
    fn listen(&self, session: String, version: String) {
        let mut req = self.base(Method::GET, Some(&session), &version);
        req.headers_mut().insert(http::header::ACCEPT, HeaderValue::from_static("text/event-stream"));
        let (client, events) = (self.client.clone(), self.events.clone());
        let task = crate::task::spawn("mcp-upstream-stream", async move {
            let Ok(resp) = client.request(req).await else { return };
            if !resp.status().is_success() {
                return;
            }
            let mut body = resp.into_body();
            let mut buf: Vec<u8> = Vec::new();
            while let Some(Ok(frame)) = body.frame().await {
                let Ok(data) = frame.into_data() else { continue };
                buf.extend_from_slice(&data);
                if buf.len() > MAX_BODY {
                    return;
                }
                let Some(end) = crate::wire::sse::last_boundary(&buf) else { continue };
                for (_, d) in crate::wire::sse::sse_events(&buf[..end]) {
                    if let Ok(v) = serde_json::from_slice::<Value>(&d) {
                        let _ = events.send(v);
                    }
                }
                buf.drain(..end);
            }
        });
        *self.listener.lock().unwrap_or_else(|p| p.into_inner()) = Some(task.abort_handle());
    }
}
