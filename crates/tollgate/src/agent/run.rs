//! One chat request through the agent layer: the request's own tool
//! results read for taint (and quarantined), then model calls and the
//! gateway's tool calls in turn until the model answers, hands a call back
//! to the client, or `max_steps` model calls have been made.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use http_body_util::{BodyExt, Limited};
use serde_json::{Value, json};

use super::Door;
use super::quarantine::{self, Vault};
use super::tools::{self, ASK_TOOL, McpTool, Toolbox};
use crate::admission::{Admission, HOP_HEADER, hop_token, record};
use crate::config::file::UntrustedPolicy;
use crate::config::snapshot::Snapshot;
use crate::error::{GatewayError, RequestError};
use crate::identity::Principal;
use crate::reqlog::entry::AgentLog;
use crate::resource::Kind;
use crate::state::Shared;
use crate::wire::{Dialect, Operation};

/// A request the agent layer has nothing to do for: the pipeline as usual.
async fn plain(
    id: String,
    front: Dialect,
    snap: Arc<Snapshot>,
    shared: Arc<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    crate::pipeline::handle(id, Operation::ChatCompletions, front, snap, shared, headers, Body::from(body)).await
}

/// The request as the loop reads it: the hub (OpenAI chat) form. A
/// `/v1/messages` request is translated, its `mcp` tool entries set aside
/// first (they are the gateway's, not an Anthropic tool type).
fn as_hub(front: Dialect, bytes: &[u8]) -> Option<Value> {
    let mut v: Value = serde_json::from_slice(bytes).ok().filter(Value::is_object)?;
    if front == Dialect::OpenAi {
        return Some(v);
    }
    let is_mcp = |t: &Value| t.get("type").and_then(Value::as_str) == Some("mcp");
    let mcp: Vec<Value> = v.get("tools").and_then(Value::as_array).map(|t| t.iter().filter(|x| is_mcp(x)).cloned().collect()).unwrap_or_default();
    if let Some(Value::Array(t)) = v.get_mut("tools") {
        t.retain(|x| !is_mcp(x));
    }
    crate::translate::messages::validate(&v).ok()?;
    let mut hub = crate::translate::messages::to_hub(&v).ok()?;
    if !mcp.is_empty() {
        match hub.get_mut("tools") {
            Some(Value::Array(t)) => t.extend(mcp),
            _ => hub["tools"] = Value::Array(mcp),
        }
    }
    Some(hub)
}

/// How the gateway deals with one tool call of the model.
enum Step {
    Mcp(McpTool),
    Ask,
    /// Taken away by a `block` policy; the model is told, nothing runs.
    Refused(String),
}

struct Run<'a> {
    door: &'a Door,
    snap: Arc<Snapshot>,
    shared: Arc<Shared>,
    principal: Arc<Principal>,
    /// The client's request, for its log entry, trace and id.
    adm: Admission,
    hop_headers: HeaderMap,
    log: AgentLog,
    vault: Vault,
    resolved: Option<HeaderValue>,
    started: Instant,
    /// The API the client speaks: the final answer goes back in it.
    front: Dialect,
}

/// A chat request (`/v1/chat/completions`, or `/v1/messages` with
/// `front: Anthropic`) that may need the agent layer.
pub async fn chat(door: &Door, id: String, front: Dialect, headers: HeaderMap, bytes: Bytes) -> Response {
    let snap = door.live.snapshot();
    let shared = door.live.shared();
    let Some(req) = as_hub(front, &bytes) else { return plain(id, front, snap, shared, headers, bytes).await };
    let Ok(principal) = crate::identity::authenticate::run(&snap.auth, &shared.keys, &headers).await else {
        return plain(id, front, snap, shared, headers, bytes).await; // the pipeline answers the 401
    };
    let requested: Vec<Value> = req.get("tools").and_then(Value::as_array).cloned().unwrap_or_default();
    let toolbox = if requested.iter().any(|t| t.get("type").and_then(Value::as_str) == Some("mcp")) {
        match tools::expand(&door.hub, &shared, &snap, &principal, &requested).await {
            Ok(b) => b,
            Err(m) => {
                let mut r = crate::error::render(GatewayError::Request(RequestError::InvalidBody(m)), front);
                if let Ok(v) = HeaderValue::from_str(&id) {
                    r.headers_mut().insert("x-tollgate-request-id", v);
                }
                return r;
            }
        }
    } else {
        Toolbox { client: requested, mcp: Vec::new() }
    };
    let mut adm = Admission::new(id.clone(), Kind::Model, snap.clone(), shared.clone(), &headers);
    adm.principal = Some(principal.clone());
    adm.requested = req.get("model").and_then(Value::as_str).unwrap_or_default().to_string();
    adm.metadata = crate::admission::metadata::run(&snap.metadata, Some(&principal), &headers).unwrap_or_default();
    let mut hop_headers = headers.clone();
    hop_headers.remove(header::CONTENT_LENGTH);
    if let Ok(v) = HeaderValue::from_str(&format!("{}:{id}", hop_token())) {
        hop_headers.insert(HOP_HEADER, v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!("00-{}-{}-01", adm.trace.0, adm.trace.1)) {
        hop_headers.insert("traceparent", v);
    }
    let mut run = Run {
        door,
        snap: snap.clone(),
        shared: shared.clone(),
        principal,
        adm,
        hop_headers,
        log: AgentLog::default(),
        vault: Vault::default(),
        resolved: None,
        started: Instant::now(),
        front,
    };
    let mut messages: Vec<Value> = req.get("messages").and_then(Value::as_array).cloned().unwrap_or_default();
    run.read_history(&mut messages, &toolbox);
    let gated = run.log.tainted
        && toolbox.client.iter().any(|t| snap.agent.policy(tools::function_name(t).unwrap_or("")) != UntrustedPolicy::Allow);
    if toolbox.mcp.is_empty() && run.vault.is_empty() && !gated {
        return plain(id, front, snap, shared, headers, bytes).await;
    }
    run.run(req, messages, &toolbox).await
}

fn content_text(m: &Value) -> String {
    match m.get("content") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts.iter().filter_map(|p| p.get("text").and_then(Value::as_str)).collect(),
        _ => String::new(),
    }
}

impl Run<'_> {
    fn taint(&mut self, tool: &str) {
        self.log.tainted = true;
        if !self.log.tainted_by.iter().any(|t| t == tool) {
            self.log.tainted_by.push(tool.to_string());
        }
    }

    fn block(&mut self, tool: &str) {
        if !self.log.blocked.iter().any(|t| t == tool) {
            self.log.blocked.push(tool.to_string());
        }
    }

    fn policy(&self, tool: &str) -> UntrustedPolicy {
        if self.log.tainted { self.snap.agent.policy(tool) } else { UntrustedPolicy::Allow }
    }

    /// A result the model would read: held back if quarantined, else
    /// judged for trust. Returns what the model reads.
    fn admit_result(&mut self, tool: &str, text: String, judged: &str) -> String {
        if let Some(q) = &self.snap.agent.quarantine
            && q.covers(tool)
        {
            self.log.quarantined.push(tool.to_string());
            return self.vault.hold(tool, text);
        }
        if !self.snap.agent.trusted(tool, judged) {
            self.taint(tool);
        }
        text
    }

    /// The client-run loop so far: tool messages matched to the assistant
    /// calls that asked for them.
    fn read_history(&mut self, messages: &mut [Value], toolbox: &Toolbox) {
        let mut asked: HashMap<String, String> = HashMap::new();
        for m in messages.iter_mut() {
            match m.get("role").and_then(Value::as_str) {
                Some("assistant") => {
                    for c in m.get("tool_calls").and_then(Value::as_array).into_iter().flatten() {
                        if let (Some(id), Some(name)) =
                            (c.get("id").and_then(Value::as_str), c.pointer("/function/name").and_then(Value::as_str))
                        {
                            asked.insert(id.to_string(), name.to_string());
                        }
                    }
                }
                Some("tool") => {
                    let function = m.get("tool_call_id").and_then(Value::as_str).and_then(|id| asked.get(id));
                    let tool = tools::policy_name(toolbox, function.map_or("", String::as_str)).to_string();
                    let text = content_text(m);
                    let shown = self.admit_result(&tool, text.clone(), &text);
                    if shown != text {
                        m["content"] = Value::String(shown);
                    }
                }
                _ => {}
            }
        }
    }

    /// The tools the model is offered now: blocked ones taken away once the
    /// context is untrusted.
    fn offered(&mut self, toolbox: &Toolbox) -> Vec<Value> {
        let mut out = Vec::new();
        for t in &toolbox.client {
            let name = tools::function_name(t).unwrap_or("").to_string();
            if self.policy(&name) == UntrustedPolicy::Block {
                self.block(&name);
            } else {
                out.push(t.clone());
            }
        }
        for t in &toolbox.mcp {
            if self.policy(&t.qualified) == UntrustedPolicy::Block {
                self.block(&t.qualified);
            } else {
                out.push(tools::as_function(t));
            }
        }
        if !self.vault.is_empty() {
            out.push(tools::ask_function());
        }
        out
    }

    async fn run(mut self, req: Value, mut messages: Vec<Value>, toolbox: &Toolbox) -> Response {
        let stream = req.get("stream").and_then(Value::as_bool).unwrap_or(false);
        let include_usage = req.pointer("/stream_options/include_usage").and_then(Value::as_bool).unwrap_or(false);
        let mut body = req;
        if let Some(o) = body.as_object_mut() {
            o.remove("stream");
            o.remove("stream_options");
        }
        loop {
            let offered = self.offered(toolbox);
            body["messages"] = Value::Array(messages.clone());
            match body.as_object_mut() {
                Some(o) if offered.is_empty() => {
                    o.remove("tools");
                    o.remove("tool_choice");
                    o.remove("parallel_tool_calls");
                }
                Some(o) => {
                    o.insert("tools".into(), Value::Array(offered));
                }
                None => {}
            }
            self.log.steps += 1;
            let (status, headers, bytes) = self.hop(&body).await;
            self.resolved = headers.get("x-tollgate-resolved-model").cloned().or(self.resolved.take());
            let resp = match serde_json::from_slice::<Value>(&bytes) {
                Ok(v) if status == StatusCode::OK && v.is_object() => v,
                // A refused or failed model call ends the request as it is.
                _ => return self.finish_raw(status, &headers, bytes),
            };
            let calls: Vec<Value> =
                resp.pointer("/choices/0/message/tool_calls").and_then(Value::as_array).cloned().unwrap_or_default();
            if calls.is_empty() {
                return self.answer(resp, stream, include_usage);
            }
            let (gateway, back, approvals) = self.sort(calls, toolbox);
            if !back.is_empty() || !approvals.is_empty() {
                return self.hand_back(resp, back, approvals, stream, include_usage);
            }
            if self.log.steps >= self.snap.agent.max_steps {
                return self.stop(resp, &gateway, stream, include_usage);
            }
            let mut assistant = resp
                .pointer("/choices/0/message")
                .filter(|m| m.is_object())
                .cloned()
                .unwrap_or_else(|| json!({ "role": "assistant" }));
            assistant["tool_calls"] = Value::Array(gateway.iter().map(|(c, _)| c.clone()).collect());
            messages.push(assistant);
            for (call, step) in gateway {
                let content = self.carry_out(&call, step).await;
                let id = call.get("id").cloned().unwrap_or(Value::Null);
                messages.push(json!({ "role": "tool", "tool_call_id": id, "content": content }));
            }
        }
    }

    /// Each call: the gateway's to carry out, the client's, or held for approval.
    fn sort(&mut self, calls: Vec<Value>, toolbox: &Toolbox) -> (Vec<(Value, Step)>, Vec<Value>, Vec<Value>) {
        let (mut gateway, mut back, mut approvals) = (Vec::new(), Vec::new(), Vec::new());
        for c in calls {
            let f = c.pointer("/function/name").and_then(Value::as_str).unwrap_or("").to_string();
            let tool = tools::policy_name(toolbox, &f).to_string();
            if f == ASK_TOOL && !self.vault.is_empty() {
                gateway.push((c, Step::Ask));
                continue;
            }
            match self.policy(&tool) {
                UntrustedPolicy::Block => {
                    // Not offered, called anyway: refused, never carried out.
                    self.block(&tool);
                    gateway.push((c, Step::Refused(tool)));
                }
                UntrustedPolicy::RequireApproval => {
                    self.log.approval_required.push(tool);
                    approvals.push(c);
                }
                UntrustedPolicy::Allow => match toolbox.mcp_by_function(&f) {
                    Some(t) => gateway.push((c, Step::Mcp(t.clone()))),
                    None => back.push(c),
                },
            }
        }
        (gateway, back, approvals)
    }

    /// What the model reads as the call's result.
    async fn carry_out(&mut self, call: &Value, step: Step) -> String {
        let args = call.pointer("/function/arguments").and_then(Value::as_str).unwrap_or("{}");
        match step {
            Step::Refused(tool) => format!(
                "Refused by the gateway: `{tool}` is not available once the conversation holds untrusted tool output."
            ),
            Step::Ask => self.ask(args).await,
            Step::Mcp(t) => {
                let (text, judged) = self.call_mcp(&t, call, args).await;
                self.log.tool_calls.push(t.qualified.clone());
                self.admit_result(&t.qualified, text, &judged)
            }
        }
    }

    /// One tool call through the MCP gateway, as the caller: (what the model
    /// reads, what trust conditions read — the structured result if any).
    async fn call_mcp(&self, t: &McpTool, call: &Value, args: &str) -> (String, String) {
        let ctx = crate::mcp::call::Ctx {
            hub: self.door.hub.clone(),
            shared: self.shared.clone(),
            snap: self.snap.clone(),
            principal: self.principal.clone(),
            headers: self.hop_headers.clone(),
            session: None,
            endpoint: t.endpoint.clone(),
            request_id: (self.door.ids)(),
            conn: Mutex::new(None),
            modern: false,
        };
        let arguments: Value = serde_json::from_str(args).unwrap_or_else(|_| json!({}));
        let params = json!({ "name": t.name, "arguments": arguments });
        // The server's own requests (sampling, elicitation) have no client to go to here.
        let (relay, _) = tokio::sync::mpsc::unbounded_channel();
        let id = call.get("id").cloned().unwrap_or(Value::Null);
        match crate::mcp::call::tools_call(&ctx, &id, params, &relay).await {
            Ok(result) => {
                let text: String = result
                    .get("content")
                    .and_then(Value::as_array)
                    .map(|c| c.iter().filter_map(|b| b.get("text").and_then(Value::as_str)).collect::<Vec<_>>().join("\n"))
                    .unwrap_or_default();
                let judged = result.get("structuredContent").map_or_else(|| text.clone(), Value::to_string);
                let error = result.get("isError").and_then(Value::as_bool).unwrap_or(false);
                (if error { format!("Error: {text}") } else { text }, judged)
            }
            Err(e) => {
                let m = e.get("message").and_then(Value::as_str).unwrap_or("the tool call failed");
                (format!("Error: {m}"), String::new())
            }
        }
    }

    /// A question to the quarantined model; only a checked answer comes back.
    async fn ask(&mut self, args: &str) -> String {
        let Some(q) = &self.snap.agent.quarantine else { return "Error: no quarantine is configured".into() };
        let question = match quarantine::parse(args, q.max_answer_chars) {
            Ok(x) => x,
            Err(e) => return format!("Error: {e}"),
        };
        let body = match quarantine::request(&self.vault, &q.model, &question) {
            Ok(b) => b,
            Err(e) => return format!("Error: {e}"),
        };
        let (status, _, bytes) = self.hop(&body).await;
        let reply = serde_json::from_slice::<Value>(&bytes)
            .ok()
            .filter(|_| status == StatusCode::OK)
            .and_then(|v| v.pointer("/choices/0/message/content").and_then(Value::as_str).map(str::to_string));
        match reply.as_deref().map(|r| question.form.check(r)) {
            Some(Some(answer)) => answer,
            Some(None) => "The quarantined model's answer did not fit the form asked for; nothing was returned.".into(),
            None => format!("Error: the quarantined model could not be asked (HTTP {})", status.as_u16()),
        }
    }

    /// One model call through the pipeline, as the client, named as its child.
    async fn hop(&self, body: &Value) -> (StatusCode, HeaderMap, Bytes) {
        let resp = crate::pipeline::handle(
            (self.door.ids)(),
            Operation::ChatCompletions,
            Dialect::OpenAi,
            self.snap.clone(),
            self.shared.clone(),
            self.hop_headers.clone(),
            Body::from(body.to_string()),
        )
        .await;
        let (parts, b) = resp.into_parts();
        let bytes = Limited::new(b, self.snap.server.max_response_size).collect().await.map(|c| c.to_bytes());
        (parts.status, parts.headers, bytes.unwrap_or_default())
    }

    /// Calls for the client: its own tools, and those held for approval
    /// (named in `tollgate.approval_required`).
    fn hand_back(
        self,
        mut resp: Value,
        mut back: Vec<Value>,
        approvals: Vec<Value>,
        stream: bool,
        include_usage: bool,
    ) -> Response {
        if !approvals.is_empty() {
            let marked: Vec<Value> = approvals
                .iter()
                .map(|c| json!({ "id": c.get("id"), "name": c.pointer("/function/name") }))
                .collect();
            resp["tollgate"] = json!({ "approval_required": marked });
        }
        back.extend(approvals);
        if let Some(m) = resp.pointer_mut("/choices/0/message").and_then(Value::as_object_mut) {
            m.insert("tool_calls".into(), Value::Array(back));
        }
        self.answer(resp, stream, include_usage)
    }

    /// `max_steps` model calls made and the model still wants tools: its
    /// calls are not carried out, and the answer says so.
    fn stop(mut self, mut resp: Value, pending: &[(Value, Step)], stream: bool, include_usage: bool) -> Response {
        let names: Vec<&str> =
            pending.iter().filter_map(|(c, _)| c.pointer("/function/name").and_then(Value::as_str)).collect();
        let note = format!(
            "The gateway stopped this agent after {} model calls (agent.max_steps); the model still wanted to call: {}.",
            self.log.steps,
            names.join(", ")
        );
        if let Some(c) = resp.pointer_mut("/choices/0").and_then(Value::as_object_mut) {
            c.insert("message".into(), json!({ "role": "assistant", "content": note }));
            c.insert("finish_reason".into(), json!("length"));
        }
        self.log.stopped = Some("max_steps".into());
        self.answer(resp, stream, include_usage)
    }

    fn answer(self, resp: Value, stream: bool, include_usage: bool) -> Response {
        let mut r = if self.front == Dialect::Anthropic {
            self.anthropic(&resp, stream)
        } else if stream {
            let mut r = Response::new(Body::from(crate::wire::openai::completion_as_sse(&resp, include_usage)));
            r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
            r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            r
        } else {
            let mut r = Response::new(Body::from(resp.to_string()));
            r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            r
        };
        self.stamp(&mut r, 200, None, stream);
        r
    }

    /// The final answer as `/v1/messages` gives it, streamed or whole.
    fn anthropic(&self, resp: &Value, stream: bool) -> Response {
        let model = self.adm.requested.as_str();
        if stream {
            let sse = Body::from(crate::wire::openai::completion_as_sse(resp, true));
            return crate::pipeline::front::respond(crate::providers::UpstreamReply::Stream(sse, Dialect::OpenAi), model, 0);
        }
        let mut out = crate::translate::messages::from_hub(resp, model);
        if let Some(t) = resp.get("tollgate") {
            out["tollgate"] = t.clone();
        }
        let mut r = Response::new(Body::from(out.to_string()));
        r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        r
    }

    fn finish_raw(self, status: StatusCode, headers: &HeaderMap, bytes: Bytes) -> Response {
        let mut r = Response::new(Body::from(bytes));
        *r.status_mut() = status;
        for (k, v) in headers {
            if k != "x-tollgate-request-id" {
                r.headers_mut().insert(k.clone(), v.clone());
            }
        }
        let code = if status.is_success() { None } else { Some("agent_step_failed") };
        self.stamp(&mut r, status.as_u16(), code, false);
        r
    }

    /// The client request's headers and its own log entry (its model and
    /// tool calls have theirs, naming it as their parent).
    fn stamp(self, r: &mut Response, status: u16, error: Option<&'static str>, stream: bool) {
        let h = r.headers_mut();
        if let Ok(v) = HeaderValue::from_str(&self.adm.id) {
            h.insert("x-tollgate-request-id", v);
        }
        h.insert("x-tollgate-agent-steps", HeaderValue::from(self.log.steps));
        if !self.log.blocked.is_empty()
            && let Ok(v) = HeaderValue::from_str(&self.log.blocked.join(", "))
        {
            h.insert("x-tollgate-tools-blocked", v);
        }
        if let Some(v) = &self.resolved {
            h.insert("x-tollgate-resolved-model", v.clone());
        }
        let mut entry = record::entry(&self.adm, status, error, self.started.elapsed());
        entry.route = "chat".into();
        entry.stream = stream;
        entry.resolved_model = self.resolved.as_ref().and_then(|v| v.to_str().ok()).map(str::to_string);
        entry.agent = Some(self.log);
        self.shared.reqlog.submit(entry);
    }
}
