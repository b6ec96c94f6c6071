//! One governed agent call, on either binding: admitted on the shared path
//! (allowlists, `agent_calls_per_*` limits), the message's parts through
//! the agent's input guardrails, the request relayed with the agent's
//! credential (never the client's), the answer — one JSON body or a stream
//! relayed event by event — through its output guardrails, and the call,
//! allowed or refused, a request-log entry of kind `a2a`, a metric and a span.

#![expect(
    clippy::result_large_err,
    reason = "a refusal is a finished response, made once per call, not on a hot loop"
)]

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use futures_util::StreamExt;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode, Uri, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use serde_json::{Value, json};

use super::registry::AgentDef;
use super::rpc::{self, Op};
use crate::admission::{Admission, Requested, guardrails, record};
use crate::error::GatewayError;
use crate::guardrails::content::Shape;
use crate::guardrails::{Guardrail, Hook};
use crate::providers::http::HttpClient;
use crate::reqlog::entry::A2aLog;

/// Headers of the protocol that pass through in both directions (the
/// `X-` form is v0.3's). Everything else stays on its side of the gateway:
/// the client's credential, cookies, hop-by-hop headers.
const PROTOCOL_HEADERS: [&str; 3] = ["a2a-version", "a2a-extensions", "x-a2a-extensions"];

/// How the call arrived: what the gateway's own answers must look like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Binding {
    /// JSON-RPC 2.0: errors are JSON-RPC error objects with the request's id.
    JsonRpc,
    /// HTTP+JSON: errors are the gateway's usual JSON error body.
    Rest,
}

impl Binding {
    fn as_str(self) -> &'static str {
        match self {
            Binding::JsonRpc => "jsonrpc",
            Binding::Rest => "rest",
        }
    }
}

/// One call, from the moment its agent is known.
pub struct Call {
    pub adm: Admission,
    pub def: Arc<AgentDef>,
    pub op: Op,
    /// As the log shows it: the JSON-RPC method, or `<HTTP method> <path>`.
    pub method: String,
    pub binding: Binding,
    /// The JSON-RPC request's id, echoed in the gateway's own errors.
    pub rpc_id: Value,
    pub task_id: Option<String>,
    pub task_state: Option<String>,
    pub rpc_error: Option<i64>,
    pub events: u64,
    pub max_response: usize,
    /// For an extended-card request: the gateway's base URL, to rewrite the card with.
    pub card_base: Option<String>,
}

/// The outcome as the log and metrics name it.
struct Done {
    status: u16,
    error: Option<&'static str>,
    decision: &'static str,
}

/// An answer the gateway gives itself: a refusal, or an agent that failed.
pub struct Failure {
    pub status: StatusCode,
    /// The error body's `type` on the REST binding.
    pub kind: &'static str,
    /// `error.code` (REST) or `error.data.code` (JSON-RPC).
    pub code: &'static str,
    pub message: String,
    /// More for `error.data`: the guardrail, the rate-limit rule.
    pub data: serde_json::Map<String, Value>,
    pub retry_after: Option<u64>,
}

impl From<&GatewayError> for Failure {
    fn from(e: &GatewayError) -> Failure {
        let (status, kind, code, _) = e.parts();
        let mut data = serde_json::Map::new();
        let mut retry_after = None;
        match e {
            GatewayError::GuardrailBlocked { guardrail, hook } => {
                data.insert("guardrail".into(), json!(guardrail));
                data.insert("hook".into(), json!(hook));
            }
            GatewayError::RateLimited(r) => {
                data.insert("rule".into(), json!(r.rule.to_string()));
                retry_after = r.retry_after.map(|d| d.as_secs().max(1));
            }
            GatewayError::BudgetExceeded(b) => {
                data.insert("rule".into(), json!(b.rule.to_string()));
            }
            _ => {}
        }
        Failure { status, kind, code: code.unwrap_or("refused"), message: e.to_string(), data, retry_after }
    }
}

impl Failure {
    fn upstream(status: StatusCode, code: &'static str, message: String) -> Failure {
        Failure { status, kind: "api_error", code, message, data: serde_json::Map::new(), retry_after: None }
    }
}

impl Call {
    /// The gateway's own answer, in the binding's error shape.
    pub fn fail(&self, f: &Failure) -> Response {
        let body = match self.binding {
            Binding::Rest => json!({ "error": { "message": f.message, "type": f.kind, "code": f.code } }),
            Binding::JsonRpc => {
                let mut data = f.data.clone();
                data.insert("code".into(), json!(f.code));
                let rpc_code = if f.status.is_client_error() { rpc::REFUSED } else { rpc::UPSTREAM_ERROR };
                rpc::error(self.rpc_id.clone(), rpc_code, f.message.clone(), Some(Value::Object(data)))
            }
        };
        let mut resp = json_response(f.status, &body);
        if let Some(s) = f.retry_after {
            resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        if f.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"tollgate\""));
        }
        self.stamp(&mut resp);
        resp
    }

    fn stamp(&self, resp: &mut Response) {
        if let Ok(v) = HeaderValue::from_str(&self.adm.id) {
            resp.headers_mut().insert("x-tollgate-request-id", v);
        }
        if let Some(g) = self.adm.guard.header()
            && let Ok(v) = HeaderValue::from_str(&g)
        {
            resp.headers_mut().insert(guardrails::HEADER, v);
        }
    }

    /// A refusal before the call went anywhere: answered and logged.
    pub fn refuse(self, e: GatewayError) -> Response {
        record::refused(&self.adm, &e);
        let f = Failure::from(&e);
        let resp = self.fail(&f);
        let decision = if matches!(e, GatewayError::GuardrailBlocked { .. }) { "blocked" } else { "refused" };
        self.finish(Done { status: f.status.as_u16(), error: Some(f.code), decision });
        resp
    }

    /// A refusal the endpoint answered itself (a malformed request): logged.
    pub fn refuse_with(self, mut resp: Response, code: &'static str) -> Response {
        self.stamp(&mut resp);
        let status = resp.status().as_u16();
        let decision = if status >= 500 { "error" } else { "refused" };
        self.finish(Done { status, error: Some(code), decision });
        resp
    }

    fn finish(mut self, d: Done) {
        self.adm.holds.settle(None, None);
        let took = self.adm.started.elapsed();
        let shared = &self.adm.shared;
        shared
            .metrics
            .a2a_calls
            .get_or_create(&crate::metrics::A2aLabels {
                agent: self.def.name.clone(),
                operation: self.op.as_str(),
                decision: d.decision,
            })
            .inc();
        if d.decision != "refused" {
            shared
                .metrics
                .a2a_duration
                .get_or_create(&crate::metrics::A2aAgentLabels { agent: self.def.name.clone() })
                .observe(took.as_secs_f64());
        }
        let mut entry = record::entry(&self.adm, d.status, d.error, took);
        entry.provider = Some(self.def.name.clone());
        entry.resolved_model = Some(self.def.name.clone());
        entry.route = format!("/a2a/{}", self.def.name);
        entry.stream = self.op.streams();
        entry.a2a = Some(A2aLog {
            agent: self.def.name.clone(),
            method: std::mem::take(&mut self.method),
            binding: self.binding.as_str().to_string(),
            task_id: self.task_id.take(),
            task_state: self.task_state.take(),
            decision: d.decision.to_string(),
            rpc_error: self.rpc_error,
            events: self.events,
        });
        shared.reqlog.submit(entry);
    }

    /// Reads what an answer (or one stream event) says about its task.
    fn observe(&mut self, doc: &Value) {
        let body = match self.binding {
            Binding::JsonRpc => {
                if let Some(code) = doc.get("error").and_then(|e| e.get("code")).and_then(Value::as_i64) {
                    self.rpc_error = Some(code);
                }
                doc.get("result").unwrap_or(&Value::Null)
            }
            Binding::Rest => doc,
        };
        let (id, state) = rpc::result_task(body);
        if id.is_some() {
            self.task_id = id;
        }
        if state.is_some() {
            self.task_state = state;
        }
    }

    fn active(&self, hook: Hook) -> Vec<Arc<Guardrail>> {
        let own = if hook == Hook::LlmInput { &self.def.input } else { &self.def.output };
        let mut out: Vec<Arc<Guardrail>> = Vec::new();
        for g in own.iter().chain(&self.adm.guard.requested[hook.index()]) {
            if !out.iter().any(|x| x.name == g.name) {
                out.push(g.clone());
            }
        }
        out
    }
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    let mut r = Response::new(Body::from(body.to_string()));
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

/// Stages 3–6 on the shared path: metadata, the allowlists, the
/// `agent_calls_per_*` limits. A refused call is answered and logged here.
pub fn admit(mut call: Call, headers: &HeaderMap) -> Result<Call, Response> {
    let name = call.def.name.clone();
    match call.adm.admit(headers, Requested::Agent(&name), &Default::default()) {
        Ok(()) => Ok(call),
        Err(e) => Err(call.refuse(e)),
    }
}

/// Input guardrails, then the relay to `upstream`.
pub async fn relay(
    mut call: Call,
    headers: &HeaderMap,
    upstream: Uri,
    method: Method,
    mut body: Bytes,
    client: HttpClient,
) -> Response {
    if call.op.sends() {
        let active = call.active(Hook::LlmInput);
        if !active.is_empty()
            && let Ok(mut doc) = serde_json::from_slice::<Value>(&body)
        {
            match guardrails::check(&mut call.adm, Hook::LlmInput, Shape::A2aRequest, &mut doc, &active).await {
                Ok(true) => body = Bytes::from(serde_json::to_vec(&doc).unwrap_or_default()),
                Ok(false) => {}
                Err(e) => return call.refuse(e),
            }
        }
    }
    let mut req = Request::builder().method(method).uri(upstream);
    for (k, v) in headers {
        let k = k.as_str();
        if PROTOCOL_HEADERS.contains(&k) || k == "content-type" || k == "accept" {
            req = req.header(k, v);
        }
    }
    for (k, v) in &call.def.headers {
        req = req.header(k, v);
    }
    let tp = format!("00-{}-{}-01", call.adm.trace.0, call.adm.trace.1);
    req = req.header("traceparent", tp);
    let req = match req.body(Full::new(body)) {
        Ok(r) => r,
        Err(e) => return upstream_failed(call, format!("cannot build the request: {e}"), "upstream_error"),
    };
    let timeout = call.def.timeout;
    let resp = match tokio::time::timeout(timeout, client.request(req)).await {
        Err(_) => {
            return upstream_failed(call, format!("did not answer within {}s", timeout.as_secs()), "upstream_timeout");
        }
        Ok(Err(e)) => return upstream_failed(call, format!("cannot be reached: {e}"), "upstream_unavailable"),
        Ok(Ok(r)) => r,
    };
    let status = resp.status();
    if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
        // Passing this on would tell the client its own key is wrong.
        let why = format!(
            "refused the gateway's credential (HTTP {}); check a2a_agents[{}].auth",
            status.as_u16(),
            call.def.name
        );
        return upstream_failed(call, why, "upstream_auth");
    }
    let streamed = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    if streamed && status.is_success() {
        return stream(call, resp);
    }
    whole(call, resp, timeout).await
}

fn upstream_failed(call: Call, why: String, code: &'static str) -> Response {
    let status = if code == "upstream_timeout" { StatusCode::GATEWAY_TIMEOUT } else { StatusCode::BAD_GATEWAY };
    let f = Failure::upstream(status, code, format!("agent `{}` {why}", call.def.name));
    tracing::warn!(agent = %call.def.name, error = %f.message, "agent call failed");
    let resp = call.fail(&f);
    call.finish(Done { status: status.as_u16(), error: Some(code), decision: "error" });
    resp
}

/// Response headers that pass back: the body's type and the protocol's.
fn pass_back(from: &HeaderMap, to: &mut HeaderMap) {
    for (k, v) in from {
        let name = k.as_str();
        if name == "content-type" || name == "cache-control" || PROTOCOL_HEADERS.contains(&name) {
            to.insert(HeaderName::from_bytes(name.as_bytes()).unwrap_or(header::CONTENT_TYPE), v.clone());
        }
    }
}

/// A JSON (or other) answer, read whole: its task noted, its parts through
/// the output guardrails.
async fn whole(mut call: Call, resp: hyper::Response<Incoming>, timeout: Duration) -> Response {
    let (parts, body) = resp.into_parts();
    let read = tokio::time::timeout(timeout, Limited::new(body, call.max_response).collect()).await;
    let bytes = match read {
        Err(_) => return upstream_failed(call, "stopped sending its answer".into(), "upstream_timeout"),
        Ok(Err(_)) => {
            let why = format!("sent an answer larger than {} bytes or cut it off", call.max_response);
            return upstream_failed(call, why, "upstream_error");
        }
        Ok(Ok(c)) => c.to_bytes(),
    };
    let mut out_bytes = bytes.clone();
    if let Ok(mut doc) = serde_json::from_slice::<Value>(&bytes) {
        call.observe(&doc);
        if let Some(base) = call.card_base.take().filter(|_| parts.status.is_success()) {
            // An extended card names endpoints too: they must be the gateway's.
            let slot = if call.binding == Binding::JsonRpc { doc.get_mut("result") } else { Some(&mut doc) };
            if let Some(card) = slot.filter(|c| c.is_object()) {
                *card = super::card::rewrite(card, &call.def.name, &base, &call.def.url);
                out_bytes = Bytes::from(serde_json::to_vec(&doc).unwrap_or_default());
            }
        }
        let active = call.active(Hook::LlmOutput);
        if !active.is_empty() && parts.status.is_success() {
            match guardrails::check(&mut call.adm, Hook::LlmOutput, Shape::A2aResponse, &mut doc, &active).await {
                Ok(true) => out_bytes = Bytes::from(serde_json::to_vec(&doc).unwrap_or_default()),
                Ok(false) => {}
                Err(e) => return call.refuse(e),
            }
        }
    }
    let mut r = Response::new(Body::from(out_bytes));
    *r.status_mut() = parts.status;
    pass_back(&parts.headers, r.headers_mut());
    call.stamp(&mut r);
    let (status, error, decision) = if parts.status.is_success() {
        (parts.status.as_u16(), None, "allowed")
    } else {
        (parts.status.as_u16(), Some("upstream_error"), "error")
    };
    call.finish(Done { status, error, decision });
    r
}

/// What a relayed stream carries with it, so the call is logged however
/// the stream ends — the agent finishing, failing, or the client leaving.
struct Tail {
    call: Option<Call>,
    buf: Vec<u8>,
    output: Vec<Arc<Guardrail>>,
    /// Set once the agent's stream has ended (cleanly or not).
    ended: Option<Done>,
}

impl Drop for Tail {
    fn drop(&mut self) {
        if let Some(call) = self.call.take() {
            let done = self.ended.take().unwrap_or(Done { status: 200, error: Some("client_closed"), decision: "allowed" });
            call.finish(done);
        }
    }
}

impl Tail {
    /// Logs the call now, as `d` says it ended (unless a blocked event already ended it).
    fn end(&mut self, d: Done) {
        if let Some(call) = self.call.take() {
            call.finish(self.ended.take().unwrap_or(d));
        }
    }

    /// The whole events in `chunk` (with what was held back), each noted
    /// and, when the agent has output guardrails, checked; a blocked event
    /// is replaced by an error and ends the stream.
    async fn events(&mut self, chunk: &[u8]) -> (Bytes, bool) {
        self.buf.extend_from_slice(chunk);
        let Some(end) = crate::wire::sse::last_boundary(&self.buf) else { return (Bytes::new(), false) };
        let whole: Vec<u8> = self.buf.drain(..end).collect();
        let call = self.call.as_mut().expect("the call lives as long as its stream");
        if self.output.is_empty() {
            for (_, data) in crate::wire::sse::sse_events(&whole) {
                if let Ok(doc) = serde_json::from_slice::<Value>(&data) {
                    call.events += 1;
                    call.observe(&doc);
                }
            }
            return (Bytes::from(whole), false);
        }
        let mut out = Vec::with_capacity(whole.len());
        for (name, data) in crate::wire::sse::sse_events(&whole) {
            let Ok(mut doc) = serde_json::from_slice::<Value>(&data) else { continue };
            call.events += 1;
            call.observe(&doc);
            if let Err(e) =
                guardrails::check(&mut call.adm, Hook::LlmOutput, Shape::A2aResponse, &mut doc, &self.output).await
            {
                let err = match call.binding {
                    Binding::JsonRpc => rpc::error(
                        call.rpc_id.clone(),
                        rpc::REFUSED,
                        e.to_string(),
                        Some(json!({ "code": "guardrail_blocked" })),
                    ),
                    Binding::Rest => json!({ "error": { "message": e.to_string(), "code": "guardrail_blocked" } }),
                };
                out.extend_from_slice(format!("data: {err}\n\n").as_bytes());
                self.ended = Some(Done { status: 200, error: Some("guardrail_blocked"), decision: "blocked" });
                return (Bytes::from(out), true);
            }
            if let Some(n) = name {
                out.extend_from_slice(format!("event: {n}\n").as_bytes());
            }
            out.extend_from_slice(format!("data: {doc}\n\n").as_bytes());
        }
        (Bytes::from(out), false)
    }
}

/// A stream relayed event by event, never half an event.
fn stream(call: Call, resp: hyper::Response<Incoming>) -> Response {
    let (parts, body) = resp.into_parts();
    let output = call.active(Hook::LlmOutput);
    let mut r = Response::new(Body::empty());
    *r.status_mut() = parts.status;
    pass_back(&parts.headers, r.headers_mut());
    call.stamp(&mut r);
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    let tail = Tail { call: Some(call), buf: Vec::new(), output, ended: None };
    let frames = body.into_data_stream();
    let s = futures_util::stream::unfold((frames, tail, false), |(mut frames, mut tail, stop)| async move {
        if stop {
            return None;
        }
        loop {
            match frames.next().await {
                Some(Ok(chunk)) => {
                    let (out, stop) = tail.events(&chunk).await;
                    if out.is_empty() && !stop {
                        continue;
                    }
                    return Some((Ok::<Bytes, std::io::Error>(out), (frames, tail, stop)));
                }
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "an agent's stream broke off");
                    tail.end(Done { status: 200, error: Some("upstream_stream_broken"), decision: "error" });
                    return None;
                }
                None => {
                    tail.end(Done { status: 200, error: None, decision: "allowed" });
                    return None;
                }
            }
        }
    });
    *r.body_mut() = Body::from_stream(s);
    r
}
