//! `/a2a/<name>`: the agent's card at `/.well-known/agent-card.json` (and
//! the older `agent.json`), the JSON-RPC binding on `POST /a2a/<name>`, the
//! REST binding below `/a2a/<name>/rest` (`rest-2`, … for an agent with
//! several REST interfaces).
//!
//! Every request is authenticated first (a tollgate key or JWT; 401 with
//! `WWW-Authenticate` otherwise) — the card too: it names an agent only
//! callers may know of. An agent the caller may not call is 403 naming it.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Request, State};
use axum::response::Response;
use axum::routing::{any, get, post};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use serde_json::{Value, json};

use super::Agents;
use super::call::{self, Binding, Call, Failure};
use super::rpc::{self, Generation, Op};
use crate::admission::Admission;
use crate::config::reload::Live;
use crate::resource::{Called, Kind};

/// What the A2A endpoints run on.
pub struct Door {
    pub live: Arc<Live>,
    pub agents: Arc<Agents>,
    /// Request ids, from the server's one sequence.
    pub ids: Box<dyn Fn() -> String + Send + Sync>,
}

pub fn routes<S: Clone + Send + Sync + 'static>(door: Arc<Door>) -> Router<S> {
    Router::new()
        .route("/a2a/{name}", post(jsonrpc))
        .route("/a2a/{name}/.well-known/agent-card.json", get(card))
        .route("/a2a/{name}/.well-known/agent.json", get(card))
        .route("/a2a/{name}/{binding}/{*path}", any(rest))
        .with_state(door)
}

fn plain_error(status: StatusCode, code: &'static str, message: String) -> Response {
    let body = json!({ "error": { "message": message, "type": "invalid_request_error", "code": code } });
    let mut r = Response::new(axum::body::Body::from(body.to_string()));
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

fn unknown_agent(name: &str) -> Response {
    plain_error(StatusCode::NOT_FOUND, "unknown_agent", format!("no A2A agent `{name}` on this gateway"))
}

/// A call from its first moment: the agent known, the caller authenticated
/// (a failure is answered, logged and audited).
async fn open(door: &Door, name: &str, headers: &HeaderMap, binding: Binding) -> Result<Call, Response> {
    let snap = door.live.snapshot();
    let Some(def) = snap.a2a.agents.get(name).cloned() else { return Err(unknown_agent(name)) };
    let max_response = snap.server.max_response_size;
    let mut adm = Admission::new((door.ids)(), Kind::A2a, snap, door.live.shared(), headers);
    adm.requested = name.to_string();
    let auth = adm.authenticate(headers).await;
    let call = Call {
        adm,
        def,
        op: Op::Other,
        method: String::new(),
        binding,
        rpc_id: Value::Null,
        task_id: None,
        task_state: None,
        rpc_error: None,
        events: 0,
        max_response,
        card_base: None,
    };
    match auth {
        Ok(()) => Ok(call),
        Err(e) => Err(call.refuse(e)),
    }
}

async fn read(call: Call, body: axum::body::Body, headers: &HeaderMap) -> Result<(Call, Bytes), Response> {
    let limit = call.adm.snapshot.server.max_body_size;
    match crate::pipeline::receive::read_body(body, headers, limit).await {
        Ok(b) => Ok((call, b)),
        Err(e) => Err(call.refuse(e.into())),
    }
}

/// `POST /a2a/<name>`: one JSON-RPC request, to the agent's JSON-RPC
/// interface of the method's generation.
async fn jsonrpc(State(door): State<Arc<Door>>, Path(name): Path<String>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let call = match open(&door, &name, &parts.headers, Binding::JsonRpc).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let (mut call, bytes) = match read(call, body, &parts.headers).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let msg: Value = match serde_json::from_slice(&bytes) {
        Ok(v) => v,
        Err(e) => {
            return malformed(call, rpc::PARSE_ERROR, format!("the body is not JSON ({e}); send one JSON-RPC 2.0 request"));
        }
    };
    let Some(method) = msg.get("method").and_then(Value::as_str) else {
        let why = if msg.is_array() {
            "batches are not part of A2A; send one JSON-RPC request per POST"
        } else {
            "a JSON-RPC 2.0 request needs `method` (e.g. `SendMessage` or `message/send`)"
        };
        return malformed(call, rpc::INVALID_REQUEST, why.to_string());
    };
    let (op, generation) = rpc::method(method);
    call.op = op;
    call.method = method.to_string();
    call.rpc_id = msg.get("id").cloned().unwrap_or(Value::Null);
    call.task_id = msg.get("params").and_then(rpc::request_task);
    if op == Op::ExtendedCard {
        call.card_base = Some(gateway_base(&parts.headers, &call.adm.snapshot.server.listen));
    }
    let call = match call::admit(call, &parts.headers) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let client = Agents::client(&call.adm.shared);
    let known = door.agents.cards.get(&client, &call.def).await;
    let url = known.jsonrpc_url(&call.def, generation.map(|g| g == Generation::V03));
    let Ok(uri) = url.parse::<Uri>() else {
        return bad_upstream_url(call, &url);
    };
    call::relay(call, &parts.headers, uri, Method::POST, bytes, client).await
}

fn malformed(call: Call, rpc_code: i64, message: String) -> Response {
    let body = rpc::error(Value::Null, rpc_code, message.clone(), Some(json!({ "code": "invalid_request" })));
    let mut r = Response::new(axum::body::Body::from(body.to_string()));
    *r.status_mut() = StatusCode::BAD_REQUEST;
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    call.refuse_with(r, "invalid_request")
}

fn bad_upstream_url(call: Call, url: &str) -> Response {
    let f = Failure {
        status: StatusCode::BAD_GATEWAY,
        kind: "api_error",
        code: "upstream_error",
        message: format!("agent `{}`'s card names an endpoint that is not a URL: `{url}`", call.def.name),
        data: Default::default(),
        retry_after: None,
    };
    let r = call.fail(&f);
    call.refuse_with(r, "upstream_error")
}

/// `/a2a/<name>/rest[-n]/<path>`: the REST binding, to the agent's `n`th
/// REST interface with the path and query as they came.
async fn rest(
    State(door): State<Arc<Door>>,
    Path((name, binding, _)): Path<(String, String, String)>,
    req: Request,
) -> Response {
    let Some(n) = rest_index(&binding) else { return unknown_path(&name) };
    let (parts, body) = req.into_parts();
    let call = match open(&door, &name, &parts.headers, Binding::Rest).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let (mut call, bytes) = match read(call, body, &parts.headers).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    // The path exactly as sent (still percent-encoded), below the binding's base.
    let prefix = format!("/a2a/{name}/{binding}");
    let tail = parts.uri.path().strip_prefix(prefix.as_str()).unwrap_or("").to_string();
    let (op, task) = rpc::rest(&parts.method, &tail);
    call.op = op;
    call.method = format!("{} {tail}", parts.method);
    call.task_id = task.or_else(|| serde_json::from_slice::<Value>(&bytes).ok().as_ref().and_then(rpc::request_task));
    if op == Op::ExtendedCard {
        call.card_base = Some(gateway_base(&parts.headers, &call.adm.snapshot.server.listen));
    }
    let call = match call::admit(call, &parts.headers) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let client = Agents::client(&call.adm.shared);
    let known = door.agents.cards.get(&client, &call.def).await;
    let Some(base) = known.rest_urls().get(n).map(|s| s.to_string()) else {
        let f = Failure {
            status: StatusCode::NOT_FOUND,
            kind: "invalid_request_error",
            code: "no_rest_interface",
            message: format!("agent `{name}` offers no REST interface `{binding}`; its card lists the ones it has"),
            data: Default::default(),
            retry_after: None,
        };
        let r = call.fail(&f);
        return call.refuse_with(r, "no_rest_interface");
    };
    let query = parts.uri.query().map_or(String::new(), |q| format!("?{q}"));
    let url = format!("{base}{tail}{query}");
    let Ok(uri) = url.parse::<Uri>() else {
        return bad_upstream_url(call, &url);
    };
    call::relay(call, &parts.headers, uri, parts.method.clone(), bytes, client).await
}

fn unknown_path(name: &str) -> Response {
    plain_error(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no such A2A endpoint; agent `{name}` is at /a2a/{name} (JSON-RPC) and /a2a/{name}/rest (REST)"),
    )
}

/// `rest` → 0, `rest-2` → 1, …
fn rest_index(segment: &str) -> Option<usize> {
    if segment == "rest" {
        return Some(0);
    }
    let n: usize = segment.strip_prefix("rest-")?.parse().ok()?;
    (n >= 2).then(|| n - 1)
}

/// `GET /a2a/<name>/.well-known/agent-card.json`: the agent's card with
/// every endpoint the gateway's.
async fn card(State(door): State<Arc<Door>>, Path(name): Path<String>, headers: HeaderMap) -> Response {
    let snap = door.live.snapshot();
    let Some(def) = snap.a2a.agents.get(&name).cloned() else { return unknown_agent(&name) };
    let shared = door.live.shared();
    let principal = match crate::identity::authenticate::run(&snap.auth, &shared.keys, &headers).await {
        Ok(p) => p,
        Err(e) => {
            let mut r = plain_error(StatusCode::UNAUTHORIZED, "invalid_api_key", e.to_string());
            r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"tollgate\""));
            return r;
        }
    };
    if !snap.auth.allows(&principal, Called::Agent(&name)) {
        return plain_error(
            StatusCode::FORBIDDEN,
            "agent_not_allowed",
            format!("this key may not call the agent `{name}`"),
        );
    }
    let known = door.agents.cards.get(&Agents::client(&shared), &def).await;
    let Some(upstream) = known.card.clone() else {
        let why = known.error.unwrap_or_else(|| "no card yet".into());
        return plain_error(
            StatusCode::BAD_GATEWAY,
            "upstream_unavailable",
            format!("cannot read agent `{name}`'s card: {why}"),
        );
    };
    let rewritten = super::card::rewrite(&upstream, &name, &gateway_base(&headers, &snap.server.listen), &def.url);
    let mut r = Response::new(axum::body::Body::from(rewritten.to_string()));
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("private, max-age=60"));
    if let Some(v) = headers.get("a2a-version") {
        r.headers_mut().insert("a2a-version", v.clone());
    }
    r
}

/// The gateway's base URL as this client reached it: a proxy's
/// `X-Forwarded-Proto`/`X-Forwarded-Host`, else `Host`, else the listen
/// address. Only host-shaped values are taken.
pub fn gateway_base(headers: &HeaderMap, listen: &std::net::SocketAddr) -> String {
    let first = |name: &str| {
        headers.get(name).and_then(|v| v.to_str().ok()).and_then(|v| v.split(',').next()).map(str::trim)
    };
    let proto = first("x-forwarded-proto").filter(|p| *p == "http" || *p == "https").unwrap_or("http");
    let host_ok = |h: &&str| {
        !h.is_empty() && h.bytes().all(|b| b.is_ascii_alphanumeric() || b"-.:[]_".contains(&b))
    };
    let host = first("x-forwarded-host").filter(host_ok).or_else(|| first("host").filter(host_ok));
    match host {
        Some(h) => format!("{proto}://{h}"),
        None => format!("{proto}://{listen}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_base_url_is_the_one_the_client_used_and_only_host_shaped() {
        let listen: std::net::SocketAddr = "127.0.0.1:4000".parse().unwrap();
        let mut h = HeaderMap::new();
        assert_eq!(gateway_base(&h, &listen), "http://127.0.0.1:4000");
        h.insert("host", HeaderValue::from_static("gw.local:8080"));
        assert_eq!(gateway_base(&h, &listen), "http://gw.local:8080");
        h.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        h.insert("x-forwarded-host", HeaderValue::from_static("ai.example.com, inner"));
        assert_eq!(gateway_base(&h, &listen), "https://ai.example.com");
        h.insert("x-forwarded-host", HeaderValue::from_static("evil.com/path?"));
        assert_eq!(gateway_base(&h, &listen), "https://gw.local:8080");
    }

    #[test]
    fn rest_segments_number_from_two() {
        assert_eq!(rest_index("rest"), Some(0));
        assert_eq!(rest_index("rest-2"), Some(1));
        assert_eq!(rest_index("rest-1"), None);
        assert_eq!(rest_index("other"), None);
    }
}
