//! The MCP gateway over its own wire: `/mcp/<name>` spoken as an MCP client
//! would (Streamable HTTP: POST JSON-RPC, `Mcp-Session-Id`, answers as JSON
//! or SSE) against the test kit's mock MCP server. This file holds the
//! client helper and the protocol tests (listing, allowlists, sessions,
//! upstream re-initialisation, id rewriting, progress and sampling);
//! `mcp_governance.rs` covers guardrails, limits and pins, and
//! `mcp_upstreams.rs` stdio and SSE upstreams, virtual servers and
//! observability.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};
use testkit::{BUILTIN_TOOLS, McpMock};

use crate::common::{Harness, MASTER, Resp, sse_data};

/// A key that may call `m/echo` and `m/add` only.
pub const NARROW: &str = "narrow-tools-key-1";
/// A key limited by its team (`support`: `m/echo` only), not by itself.
pub const TEAMED: &str = "teamed-tools-key-2";
/// A key with no limits of its own.
pub const OTHER: &str = "other-tools-key-3";
/// The gateway's own credential for the upstream server.
pub const UPSTREAM_SECRET: &str = "Bearer up-secret";

/// A gateway config: the keys above, a mock model provider, `allowed_origins`,
/// then `rest` (`mcp_servers:` and whatever else a test needs).
pub fn yaml(rest: &str) -> String {
    format!(
        r#"
server: {{ listen: "127.0.0.1:0", admin_listen: "127.0.0.1:0", allowed_origins: ["http://ok.example"] }}
auth:
  master_key: "{MASTER}"
  keys:
    - {{ name: narrow, key: "{NARROW}", tools: ["m/echo", "m/add"] }}
    - {{ name: teamed, key: "{TEAMED}", metadata: {{ team: support }} }}
    - {{ name: other, key: "{OTHER}" }}
  teams:
    support: {{ tools: ["m/echo"] }}
providers:
  - {{ name: mock, type: mock, models: [{{ name: echo }}] }}
{rest}
"#
    )
}

/// One `mcp_servers` entry: a Streamable HTTP server at `url` with the
/// gateway's own credential; `more` adds keys (`, pin_tools: true`).
pub fn http_server(name: &str, url: &str, more: &str) -> String {
    format!(
        "  - {{ name: {name}, url: \"{url}\", auth: {{ type: static_header, header: authorization, value: \"{UPSTREAM_SECRET}\" }}{more} }}\n"
    )
}

/// POSTs one JSON-RPC message to `/mcp/<endpoint>` as an MCP client does.
pub async fn post_raw(h: &Harness, endpoint: &str, key: Option<&str>, headers: &[(&str, &str)], msg: &Value) -> Resp {
    let mut all = vec![("accept", "application/json, text/event-stream")];
    all.extend_from_slice(headers);
    h.send(Method::POST, &h.url(&format!("/mcp/{endpoint}")), key, &all, msg.to_string()).await
}

/// The JSON-RPC message an answer carries: a JSON body, or the last
/// `data:` event of an SSE body.
pub fn message(r: &Resp) -> Value {
    let sse = r.header("content-type").is_some_and(|c| c.starts_with("text/event-stream"));
    if !sse {
        return r.json();
    }
    let last = sse_data(&r.text()).pop().unwrap_or_else(|| panic!("an SSE answer without events: {}", r.text()));
    serde_json::from_str(&last).unwrap_or_else(|e| panic!("not JSON ({e}): {last}"))
}

/// The first text of a `tools/call` response's result.
pub fn text_of(msg: &Value) -> String {
    msg["result"]["content"][0]["text"].as_str().unwrap_or_else(|| panic!("no text result in {msg}")).to_string()
}

pub fn initialize_msg(version: &str) -> Value {
    json!({ "jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": version,
        "capabilities": { "sampling": {} },
        "clientInfo": { "name": "tollgate-it", "version": "1" } } })
}

/// An MCP client session on one endpoint.
pub struct Client<'h> {
    pub h: &'h Harness,
    pub endpoint: String,
    pub key: String,
    pub session: String,
    /// What `initialize` answered.
    pub init: Value,
    ids: AtomicU64,
}

impl<'h> Client<'h> {
    /// `initialize` (latest revision) and `notifications/initialized`.
    pub async fn connect(h: &'h Harness, endpoint: &str, key: &str) -> Client<'h> {
        Self::connect_at(h, endpoint, key, "2025-11-25").await
    }

    pub async fn connect_at(h: &'h Harness, endpoint: &str, key: &str, version: &str) -> Client<'h> {
        let r = post_raw(h, endpoint, Some(key), &[], &initialize_msg(version)).await;
        assert_eq!(r.status, 200, "initialize on /mcp/{endpoint}: {}", r.text());
        let session = r.header("mcp-session-id").expect("initialize returns Mcp-Session-Id").to_string();
        let init = message(&r);
        let c = Client { h, endpoint: endpoint.into(), key: key.into(), session, init, ids: AtomicU64::new(1) };
        let r = c.post(&json!({ "jsonrpc": "2.0", "method": "notifications/initialized" }), &[]).await;
        assert_eq!(r.status, 202, "{}", r.text());
        c
    }

    /// One message on this session.
    pub async fn post(&self, msg: &Value, headers: &[(&str, &str)]) -> Resp {
        let mut all = vec![("mcp-session-id", self.session.as_str()), ("mcp-protocol-version", "2025-11-25")];
        all.extend_from_slice(headers);
        post_raw(self.h, &self.endpoint, Some(&self.key), &all, msg).await
    }

    /// A request under this id; the response message (HTTP 200 asserted).
    pub async fn request_id(&self, id: Value, method: &str, params: Value) -> Value {
        let msg = json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params });
        let r = self.post(&msg, &[]).await;
        assert_eq!(r.status, 200, "{method}: {}", r.text());
        let m = message(&r);
        assert_eq!(m["id"], id, "the answer carries the client's own id: {m}");
        m
    }

    pub async fn request(&self, method: &str, params: Value) -> Value {
        let id = json!(self.ids.fetch_add(1, Ordering::Relaxed));
        self.request_id(id, method, params).await
    }

    /// `tools/call`; the response message (a result or an error).
    pub async fn call(&self, tool: &str, arguments: Value) -> Value {
        self.request("tools/call", json!({ "name": tool, "arguments": arguments })).await
    }

    /// `tools/call` that must succeed; its first text.
    pub async fn call_ok(&self, tool: &str, arguments: Value) -> String {
        let m = self.call(tool, arguments).await;
        assert!(m.get("error").is_none() && m["result"]["isError"] != true, "{tool} failed: {m}");
        text_of(&m)
    }

    /// `tools/list` (the whole answer).
    pub async fn list(&self) -> Value {
        let m = self.request("tools/list", json!({})).await;
        assert!(m.get("error").is_none(), "{m}");
        m["result"].clone()
    }

    pub async fn tool_names(&self) -> Vec<String> {
        names(&self.list().await)
    }

    /// The session's GET stream.
    pub async fn stream(&self) -> Events {
        let url = self.h.url(&format!("/mcp/{}", self.endpoint));
        let req = Request::builder()
            .method(Method::GET)
            .uri(url)
            .header("authorization", format!("Bearer {}", self.key))
            .header("accept", "text/event-stream")
            .header("mcp-session-id", &self.session)
            .body(Full::new(Bytes::new()))
            .unwrap();
        let (status, _, events) = open(self.h, req).await;
        assert_eq!(status, 200);
        events
    }

    /// A request whose answer is read event by event as it streams.
    pub async fn streaming(&self, msg: &Value) -> (StatusCode, HeaderMap, Events) {
        let url = self.h.url(&format!("/mcp/{}", self.endpoint));
        let req = Request::builder()
            .method(Method::POST)
            .uri(url)
            .header("authorization", format!("Bearer {}", self.key))
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-session-id", &self.session)
            .body(Full::new(Bytes::from(msg.to_string())))
            .unwrap();
        open(self.h, req).await
    }
}

pub fn names(list: &Value) -> Vec<String> {
    list["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("no tools in {list}"))
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect()
}

/// An SSE body read as it arrives.
pub struct Events {
    body: hyper::body::Incoming,
    buf: String,
}

async fn open(h: &Harness, req: Request<Full<Bytes>>) -> (StatusCode, HeaderMap, Events) {
    let resp = h.client.request(req).await.expect("send");
    let (parts, body) = resp.into_parts();
    (parts.status, parts.headers, Events { body, buf: String::new() })
}

impl Events {
    /// The next JSON-RPC message; panics after 10 s or when the stream ends.
    pub async fn next(&mut self) -> Value {
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let event: String = self.buf.drain(..end + 2).collect();
                if let Some(d) = event.lines().find_map(|l| l.strip_prefix("data: ")) {
                    return serde_json::from_str(d).unwrap_or_else(|e| panic!("not JSON ({e}): {d}"));
                }
                continue; // a comment (keep-alive)
            }
            let frame = tokio::time::timeout(Duration::from_secs(10), self.body.frame())
                .await
                .unwrap_or_else(|_| panic!("no event within 10s; so far: {:?}", self.buf))
                .expect("the stream ended")
                .expect("the stream broke");
            if let Ok(data) = frame.into_data() {
                self.buf.push_str(&String::from_utf8_lossy(&data));
            }
        }
    }

    /// The next message with this method, skipping others.
    pub async fn next_method(&mut self, method: &str) -> Value {
        loop {
            let m = self.next().await;
            if m["method"] == method {
                return m;
            }
        }
    }
}

async fn one_server(mock: &McpMock) -> Harness {
    Harness::start(&yaml(&format!("mcp_servers:\n{}", http_server("m", &mock.mcp_url(), "")))).await
}

#[tokio::test]
async fn tools_are_listed_across_pages_and_called_with_the_gateways_own_credential() {
    let mock = McpMock::start().await; // 8 tools, 3 a page
    let h = one_server(&mock).await;
    let c = Client::connect(&h, "m", MASTER).await;
    assert!(!c.session.is_empty());
    assert_eq!(c.init["result"]["protocolVersion"], "2025-11-25");
    assert_eq!(c.init["result"]["serverInfo"]["name"], "tollgate/m");

    let list = c.list().await;
    assert_eq!(names(&list), BUILTIN_TOOLS.to_vec(), "every page, in order");
    assert!(list.get("nextCursor").is_none(), "upstream cursors never reach the client: {list}");
    let cursors: Vec<Value> = mock
        .received()
        .iter()
        .filter(|r| r.method() == Some("tools/list"))
        .map(|r| r.message["params"]["cursor"].clone())
        .collect();
    assert!(cursors.contains(&json!("page-2")) && cursors.contains(&json!("page-3")), "{cursors:?}");

    assert_eq!(c.call_ok("echo", json!({ "text": "hello" })).await, "hello");
    assert_eq!(mock.calls("echo"), vec![json!({ "text": "hello" })]);
    // Nothing comes before these answers, so each is plain JSON (never a
    // one-event SSE stream, which the gateway once chose at random).
    for i in 0..10 {
        let msg = json!({ "jsonrpc": "2.0", "id": i, "method": "tools/call", "params": { "name": "add", "arguments": { "a": i, "b": 1 } } });
        let r = c.post(&msg, &[]).await;
        assert_eq!(r.header("content-type"), Some("application/json"), "{}", r.text());
        assert_eq!(r.json()["result"]["structuredContent"]["sum"], i + 1);
    }
    let received = mock.received();
    assert!(!received.is_empty());
    for r in &received {
        assert_eq!(r.header("authorization"), Some(UPSTREAM_SECRET), "{:?}", r.message);
        assert!(
            r.headers.iter().all(|(_, v)| !v.contains(MASTER)),
            "the client's key reached the server: {:?}",
            r.headers
        );
    }

    // Version negotiation: a spoken revision is echoed, an unknown one gets the newest.
    let old = Client::connect_at(&h, "m", MASTER, "2025-06-18").await;
    assert_eq!(old.init["result"]["protocolVersion"], "2025-06-18");
    let r = post_raw(&h, "m", Some(MASTER), &[], &initialize_msg("2099-12-31")).await;
    assert_eq!(r.status, 200);
    assert_eq!(message(&r)["result"]["protocolVersion"], "2025-11-25");
    // A protocol version header the gateway does not speak.
    let list = json!({ "jsonrpc": "2.0", "id": 5, "method": "tools/list" });
    let r = post_raw(
        &h,
        "m",
        Some(MASTER),
        &[("mcp-session-id", &c.session), ("mcp-protocol-version", "1999-01-01")],
        &list,
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("1999-01-01"), "{}", r.text());
}

#[tokio::test]
async fn a_key_sees_and_calls_only_its_tools_and_a_forbidden_tool_looks_unknown() {
    let mock = McpMock::start().await;
    let h = one_server(&mock).await;
    let c = Client::connect(&h, "m", NARROW).await;
    assert_eq!(c.tool_names().await, ["echo", "add"]);
    assert_eq!(c.call_ok("add", json!({ "a": 2, "b": 3 })).await, "5");

    let call = |name: &str| json!({ "jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": { "name": name, "arguments": {} } });
    let forbidden = c.post(&call("leak"), &[]).await;
    let unknown = c.post(&call("does_not_exist"), &[]).await;
    assert_eq!(forbidden.status, unknown.status);
    assert_eq!(forbidden.header("content-type"), unknown.header("content-type"));
    assert_eq!(message(&forbidden)["error"]["code"], -32602, "{}", forbidden.text());
    assert_eq!(
        forbidden.text().replace("leak", "<tool>"),
        unknown.text().replace("does_not_exist", "<tool>"),
        "a forbidden tool and a missing one are answered alike"
    );
    assert!(mock.calls("leak").is_empty(), "the forbidden call never reached the server");
    assert!(mock.calls("does_not_exist").is_empty());

    // The same through a team allowlist: the key has no list of its own,
    // its team `support` may call `m/echo` only.
    let t = Client::connect(&h, "m", TEAMED).await;
    assert_eq!(t.tool_names().await, ["echo"]);
    assert_eq!(t.call_ok("echo", json!({ "text": "team" })).await, "team");
    let refused = t.call("add", json!({ "a": 1, "b": 1 })).await;
    assert_eq!(refused["error"], json!({ "code": -32602, "message": "Unknown tool: add" }));
    assert_eq!(mock.calls("add"), vec![json!({ "a": 2, "b": 3 })], "only the narrow key's own call");
    // A key without limits sees everything.
    assert_eq!(Client::connect(&h, "m", OTHER).await.tool_names().await.len(), BUILTIN_TOOLS.len());
}

#[tokio::test]
async fn sessions_belong_to_their_key_end_on_delete_and_need_a_credential_and_a_good_origin() {
    let mock = McpMock::start().await;
    let h = one_server(&mock).await;
    let list = json!({ "jsonrpc": "2.0", "id": 1, "method": "tools/list" });

    let r = post_raw(&h, "m", Some(MASTER), &[], &list).await;
    assert_eq!(r.status, 400, "no session: {}", r.text());
    let r = post_raw(&h, "m", Some(MASTER), &[("mcp-session-id", "0123456789abcdef")], &list).await;
    assert_eq!(r.status, 404, "unknown session: {}", r.text());

    let c = Client::connect(&h, "m", MASTER).await;
    assert_eq!(c.call_ok("echo", json!({ "text": "x" })).await, "x"); // opens its own upstream session
    let upstream_sessions = mock.sessions().len();
    // Another key cannot use it, and gets what an unknown session gets.
    let r = post_raw(&h, "m", Some(OTHER), &[("mcp-session-id", &c.session)], &list).await;
    assert_eq!(r.status, 404, "a session of another key: {}", r.text());
    // Its own key can, until DELETE.
    assert_eq!(c.post(&list, &[]).await.status, 200);
    let r =
        h.send(Method::DELETE, &h.url("/mcp/m"), Some(MASTER), &[("mcp-session-id", &c.session)], Bytes::new()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = c.post(&list, &[]).await;
    assert_eq!(r.status, 404, "an ended session: {}", r.text());
    crate::common::eventually("the upstream session ends with the client's", async || {
        mock.sessions().len() < upstream_sessions
    })
    .await;

    let r = post_raw(&h, "m", None, &[], &initialize_msg("2025-11-25")).await;
    assert_eq!(r.status, 401);
    assert!(r.header("www-authenticate").is_some_and(|v| v.starts_with("Bearer")), "{:?}", r.headers);
    let r = post_raw(&h, "m", Some("not-a-key"), &[], &initialize_msg("2025-11-25")).await;
    assert_eq!(r.status, 401);

    let r = post_raw(&h, "m", Some(MASTER), &[("origin", "http://evil.example")], &initialize_msg("2025-11-25")).await;
    assert_eq!(r.status, 403, "{}", r.text());
    let r = post_raw(&h, "m", Some(MASTER), &[("origin", "http://ok.example")], &initialize_msg("2025-11-25")).await;
    assert_eq!(r.status, 200, "an allowed origin: {}", r.text());
    let own = format!("http://{}", h.gw.data_addr);
    let r = post_raw(&h, "m", Some(MASTER), &[("origin", &own)], &initialize_msg("2025-11-25")).await;
    assert_eq!(r.status, 200, "the gateway's own origin: {}", r.text());
    let r = post_raw(&h, "nope", Some(MASTER), &[], &initialize_msg("2025-11-25")).await;
    assert_eq!(r.status, 404, "no such endpoint");
}

#[tokio::test]
async fn an_expired_upstream_session_is_initialised_again_without_the_client_noticing() {
    let mock = McpMock::start().await;
    let h = one_server(&mock).await;
    let c = Client::connect(&h, "m", MASTER).await;
    assert_eq!(c.call_ok("echo", json!({ "text": "before" })).await, "before");
    mock.clear();
    mock.expire_sessions();
    assert_eq!(c.call_ok("echo", json!({ "text": "after" })).await, "after");
    assert!(mock.count("initialize") >= 1, "the gateway initialised again: {:?}", mock.received());
    assert_eq!(mock.calls("echo"), vec![json!({ "text": "after" })], "the call went through once");
}

#[tokio::test]
async fn concurrent_calls_with_the_same_ids_from_two_sessions_get_their_own_answers() {
    let mock = McpMock::start().await;
    let h = one_server(&mock).await;
    let a = Client::connect(&h, "m", MASTER).await;
    let b = Client::connect(&h, "m", OTHER).await;
    let calls = (0..20).map(|i| {
        let (c, text) = if i % 2 == 0 { (&a, format!("a-{i}")) } else { (&b, format!("b-{i}")) };
        async move {
            // Every request is id 1: the gateway's own ids keep them apart upstream.
            let m =
                c.request_id(json!(1), "tools/call", json!({ "name": "echo", "arguments": { "text": text } })).await;
            (text, m)
        }
    });
    for (text, m) in futures_util::future::join_all(calls).await {
        assert_eq!(m["id"], 1);
        assert_eq!(text_of(&m), text, "{m}");
    }
    assert_eq!(mock.calls("echo").len(), 20);
    let ids: std::collections::HashSet<(Option<String>, String)> = mock
        .received()
        .iter()
        .filter(|r| r.method() == Some("tools/call"))
        .map(|r| (r.session.clone(), r.message["id"].to_string()))
        .collect();
    assert_eq!(ids.len(), 20, "distinct upstream ids on each upstream session");
}

#[tokio::test]
async fn progress_streams_with_the_clients_token_and_sampling_is_answered_on_the_session() {
    let mock = McpMock::start().await;
    let h = one_server(&mock).await;
    let c = Client::connect(&h, "m", MASTER).await;

    let slow = json!({ "jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {
        "name": "slow", "arguments": { "ms": 50 }, "_meta": { "progressToken": "my-token" } } });
    let r = c.post(&slow, &[]).await;
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").is_some_and(|v| v.starts_with("text/event-stream")), "{:?}", r.headers);
    let events: Vec<Value> = sse_data(&r.text()).iter().map(|d| serde_json::from_str(d).unwrap()).collect();
    assert_eq!(events.len(), 3, "{events:#?}");
    for (n, e) in events[..2].iter().enumerate() {
        assert_eq!(e["method"], "notifications/progress");
        assert_eq!(e["params"]["progressToken"], "my-token", "the client's own token");
        assert_eq!(e["params"]["progress"], n + 1);
    }
    assert_eq!(events[2]["id"], 3);
    assert_eq!(text_of(&events[2]), "done");

    // Sampling: the server's request reaches the client under a gateway id;
    // the client answers it on the same session.
    let sample = json!({ "jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": {
        "name": "sample", "arguments": { "prompt": "say hello" } } });
    let (status, headers, mut events) = c.streaming(&sample).await;
    assert_eq!(status, 200);
    assert!(headers.get("content-type").is_some_and(|v| v.to_str().unwrap().starts_with("text/event-stream")));
    let asked = events.next().await;
    assert_eq!(asked["method"], "sampling/createMessage", "{asked}");
    assert_eq!(asked["params"]["messages"][0]["content"]["text"], "say hello");
    let gateway_id = asked["id"].clone();
    assert!(gateway_id.as_str().is_some_and(|i| !i.starts_with("mock-mcp")), "a gateway id: {gateway_id}");
    let reply = json!({ "jsonrpc": "2.0", "id": gateway_id, "result": {
        "role": "assistant", "content": { "type": "text", "text": "hello there" }, "model": "test-model" } });
    let r = c.post(&reply, &[]).await;
    assert_eq!(r.status, 202, "{}", r.text());
    let done = events.next().await;
    assert_eq!(done["id"], 4, "{done}");
    assert_eq!(text_of(&done), "sampled: hello there");
    // The server got the answer under its own id.
    let answered: Vec<Value> =
        mock.received().into_iter().filter(|r| r.method().is_none()).map(|r| r.message["id"].clone()).collect();
    assert!(answered.iter().any(|id| id.as_str().is_some_and(|i| i.starts_with("mock-mcp"))), "{answered:?}");
}
