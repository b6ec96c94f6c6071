//! The OpenAI Responses API on the data plane: `POST /v1/responses`
//! (whole and streamed), `GET`/`DELETE /v1/responses/{id}` and
//! `GET /v1/responses/{id}/input_items`.
//!
//! A Responses request becomes a hub (chat) request at this door, with the
//! conversation a `previous_response_id` names put in front of its input,
//! and runs through the model pipeline like any chat request — identity,
//! limits, budgets, guardrails, cache, routing, logging — whatever provider
//! answers. The answer is turned back into a Responses object (or event
//! stream) here, and kept for later turns when `store` is not false.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::response::Response;
use bytes::Bytes;
use http::{HeaderMap, StatusCode, header};
use serde_json::{Value, json};

use super::App;
use crate::error::{GatewayError, RequestError};
use crate::identity::authenticate;
use crate::pipeline::front::{self, FromHubStream};
use crate::responses::{Entry, Settings, Stored};
use crate::translate::responses::{self as tr, Echo, stream::FromHub};
use crate::wire::Dialect;

use super::responses_native as native;

fn fail(e: impl Into<GatewayError>) -> Response {
    crate::error::render(e.into(), Dialect::OpenAi)
}

/// An id in OpenAI's style: a prefix and 32 random hex digits.
fn new_id(prefix: &str) -> String {
    format!("{prefix}_{:032x}", fastrand::u128(..))
}

pub async fn create(State(app): State<Arc<App>>, req: Request) -> Response {
    let snap = app.live.snapshot();
    let shared = app.live.shared();
    let (parts, body) = req.into_parts();
    let mut headers = parts.headers;
    let pipeline = |headers: HeaderMap, body: Body, native: Option<Bytes>| {
        crate::pipeline::handle_responses(app.ids.next(), snap.clone(), shared.clone(), headers, body, native)
    };
    // Who is asking decides which stored conversations it may continue; a
    // caller who cannot be identified gets the pipeline's own refusal
    // (logged as every refusal is), before any of its body is read.
    let principal = match authenticate::run(&snap.auth, &shared.keys, &headers).await {
        Ok(p) => p,
        Err(_) => return pipeline(headers, Body::empty(), None).await,
    };
    let refuse = |headers: HeaderMap, e: GatewayError| {
        crate::pipeline::refused_as(app.ids.next(), Some("responses"), snap.clone(), shared.clone(), headers, e)
    };
    let bytes = match crate::pipeline::receive::read_body(body, &headers, snap.server.max_body_size).await {
        Ok(b) => b,
        Err(e) => return refuse(headers, e.into()).await,
    };
    if bytes.is_empty() {
        return refuse(headers, RequestError::InvalidJson("the request body is empty; send a JSON object".into()).into()).await;
    }
    let req: Value = match serde_json::from_slice(&bytes) {
        Ok(v @ Value::Object(_)) => v,
        Ok(_) => return refuse(headers, RequestError::InvalidJson("the request body must be a JSON object".into()).into()).await,
        Err(e) => {
            let e = RequestError::InvalidJson(format!("the request body is not valid JSON: {e}; send a JSON object"));
            return refuse(headers, e.into()).await;
        }
    };
    let limits = snap.responses;
    let previous = match req.get("previous_response_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(id)) => Some(id.clone()),
        Some(_) => {
            return refuse(headers, RequestError::InvalidBody("`previous_response_id` must be a string".into()).into())
                .await;
        }
    };
    let history = match &previous {
        None => Vec::new(),
        Some(id) => match app.responses.history(&principal.id, id, limits) {
            Ok(h) => h,
            Err(e) => return refuse(headers, RequestError::InvalidBody(e.0).into()).await,
        },
    };
    let lookup = |item: &str| app.responses.item(&principal.id, item, limits);
    let converted = match tr::to_hub(&req, &history, &lookup) {
        Ok(c) => c,
        Err(e) => return refuse(headers, RequestError::InvalidBody(e.0).into()).await,
    };
    // The same request for OpenAI's own Responses API, should the model be
    // served by it: the history written out, so no state there is needed.
    let turn_input = native::turn_input(&req, &lookup);
    let history_items = match &previous {
        Some(id) => app.responses.history_items(&principal.id, id, limits).unwrap_or_default(),
        None => Vec::new(),
    };
    let native_body = native::body(&req, history_items, &turn_input);
    // The hub body has its own length; the client's no longer applies.
    headers.remove(header::CONTENT_LENGTH);
    let resp = pipeline(headers, Body::from(converted.hub.to_string()), Some(native_body)).await;
    if resp.status() != StatusCode::OK {
        return resp; // an OpenAI-shaped error, as the Responses API sends them
    }
    let store = req.get("store").and_then(Value::as_bool).unwrap_or(true);
    if resp.extensions().get::<Dialect>() == Some(&Dialect::Responses) {
        let keep = store.then(|| Keep {
            store: app.responses.clone(),
            tenant: principal.id.clone(),
            id: String::new(),
            request: req.clone(),
            input: converted.input.clone(),
            items: turn_input.clone(),
            previous: previous.clone(),
            limits,
        });
        return passed_on(resp, keep).await;
    }
    let id = resp
        .headers()
        .get("x-tollgate-request-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|r| r.strip_prefix("req_"))
        .map_or_else(|| new_id("resp"), |r| format!("resp_{r}"));
    let keep = store.then(|| Keep {
        store: app.responses.clone(),
        tenant: principal.id.clone(),
        id: id.clone(),
        request: req.clone(),
        input: converted.input,
        items: turn_input,
        previous,
        limits,
    });
    let created_at = crate::translate::now_secs();
    let streamed = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    let (mut parts, body) = resp.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    if streamed {
        let tr = FromHub::new(id, created_at, req, Box::new(|p| new_id(p)));
        return Response::from_parts(parts, front::translated(body, Storing { tr, keep }));
    }
    let hub = match http_body_util::BodyExt::collect(body).await {
        Ok(c) => serde_json::from_slice::<Value>(&c.to_bytes()).unwrap_or(Value::Null),
        Err(_) => Value::Null,
    };
    let echo = Echo { id: &id, created_at, req: &req };
    let (response, message) = tr::from_hub(&hub, &echo, &mut new_id);
    let out = Bytes::from(response.to_string());
    if let Some(k) = keep {
        k.put(response, message);
    }
    parts.headers.insert(header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    Response::from_parts(parts, Body::from(out))
}

/// An answer from OpenAI's own Responses API, passed on as it came and
/// kept under OpenAI's id (whole: now; streamed: once it completes).
async fn passed_on(resp: Response, keep: Option<Keep>) -> Response {
    let (mut parts, body) = resp.into_parts();
    let Some(keep) = keep else { return Response::from_parts(parts, body) };
    let streamed =
        parts.headers.get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    if streamed {
        return Response::from_parts(parts, native::tap(body, Box::new(move |r| keep.put_native(r))));
    }
    let bytes = match http_body_util::BodyExt::collect(body).await {
        Ok(c) => c.to_bytes(),
        Err(_) => Bytes::new(),
    };
    if let Ok(v) = serde_json::from_slice::<Value>(&bytes) {
        keep.put_native(v);
    }
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(bytes))
}

/// What keeping one response needs, until its answer is complete.
struct Keep {
    store: Arc<Stored>,
    tenant: String,
    id: String,
    request: Value,
    input: Vec<Value>,
    /// This turn's input as Responses items.
    items: Vec<Value>,
    previous: Option<String>,
    limits: Settings,
}

impl Keep {
    fn put(self, response: Value, message: Value) {
        // A failed answer is not a turn a conversation can continue from.
        if response.get("status").and_then(Value::as_str) == Some("failed") {
            return;
        }
        let mut turn = self.input;
        turn.push(message);
        let mut items = self.items;
        items.extend(response.get("output").and_then(Value::as_array).into_iter().flatten().cloned());
        let entry = Entry::new(self.tenant, response, self.request, turn, self.previous).with_items(items, false);
        self.store.put(self.id, entry, self.limits);
    }

    /// OpenAI's own answer: its id, and the hub shape of its output for a
    /// later turn that goes to another provider.
    fn put_native(mut self, response: Value) {
        let Some(id) = response.get("id").and_then(Value::as_str).map(str::to_string) else { return };
        // A turn that names itself as its own past would make a loop.
        if self.previous.as_deref() == Some(&id) {
            return;
        }
        if response.get("status").and_then(Value::as_str) == Some("failed") {
            return;
        }
        let output = response.get("output").and_then(Value::as_array).cloned().unwrap_or_default();
        // What other providers can be given of it: built-in tool calls
        // (web search and the like) ran at OpenAI and have no chat shape.
        let carried: Vec<Value> = output
            .iter()
            .filter(|i| matches!(i.get("type").and_then(Value::as_str), Some("message" | "function_call" | "reasoning")))
            .cloned()
            .collect();
        let mut turn = std::mem::take(&mut self.input);
        if let Ok(c) = tr::to_hub(&json!({ "model": "-", "input": carried }), &[], &|_| None) {
            turn.extend(c.input);
        }
        let mut items = std::mem::take(&mut self.items);
        items.extend(output);
        let entry = Entry::new(self.tenant, response, self.request, turn, self.previous).with_items(items, true);
        self.store.put(id, entry, self.limits);
    }
}

/// The stream translator, keeping the response once it has completed.
struct Storing {
    tr: FromHub,
    keep: Option<Keep>,
}

impl FromHubStream for Storing {
    fn event(&mut self, data: &[u8], out: &mut Vec<u8>) {
        self.tr.event(data, out);
        self.store();
    }
    fn end(&mut self, out: &mut Vec<u8>) {
        self.tr.end(out);
        self.store();
    }
    fn finished(&self) -> bool {
        self.tr.ended()
    }
}

impl Storing {
    fn store(&mut self) {
        if let Some(done) = self.tr.take_finished()
            && let Some(k) = self.keep.take()
        {
            k.put(done.response, done.message);
        }
    }
}

/// The stored response `id`, if the caller owns it.
async fn owned(app: &App, headers: &HeaderMap, id: &str) -> Result<(String, Arc<Entry>), Response> {
    let snap = app.live.snapshot();
    let principal = authenticate::run(&snap.auth, &app.live.shared().keys, headers).await.map_err(fail)?;
    match app.responses.get(&principal.id, id, snap.responses) {
        Some(e) => Ok((principal.id.clone(), e)),
        None => Err(not_found(id)),
    }
}

fn not_found(id: &str) -> Response {
    fail(GatewayError::NotFound(format!(
        "no response with id `{id}`: it was not stored (`store: false`), has expired, or belongs to another caller"
    )))
}

pub async fn get_one(State(app): State<Arc<App>>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    match owned(&app, &headers, &id).await {
        Ok((_, e)) => front::json(Bytes::from(e.response.to_string())),
        Err(r) => r,
    }
}

pub async fn delete(State(app): State<Arc<App>>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    match owned(&app, &headers, &id).await {
        Ok((tenant, _)) => {
            app.responses.delete(&tenant, &id);
            front::json(Bytes::from(json!({ "id": id, "object": "response.deleted", "deleted": true }).to_string()))
        }
        Err(r) => r,
    }
}

#[derive(serde::Deserialize)]
pub struct ListQuery {
    limit: Option<usize>,
    order: Option<String>,
}

pub async fn input_items(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    Query(q): Query<ListQuery>,
    headers: HeaderMap,
) -> Response {
    let e = match owned(&app, &headers, &id).await {
        Ok((_, e)) => e,
        Err(r) => return r,
    };
    let mut items = tr::input_items(&e.request, &mut new_id);
    // OpenAI lists input items newest first unless asked otherwise.
    if q.order.as_deref() != Some("asc") {
        items.reverse();
    }
    let limit = q.limit.unwrap_or(20).clamp(1, 100);
    let has_more = items.len() > limit;
    items.truncate(limit);
    let first = items.first().and_then(|i| i.get("id").cloned()).unwrap_or(Value::Null);
    let last = items.last().and_then(|i| i.get("id").cloned()).unwrap_or(Value::Null);
    front::json(Bytes::from(
        json!({ "object": "list", "data": items, "first_id": first, "last_id": last, "has_more": has_more }).to_string(),
    ))
}
