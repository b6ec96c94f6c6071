//! Data-plane routes: the OpenAI-compatible API, health and readiness.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use axum::Router;
use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::{HeaderValue, StatusCode};
use serde_json::json;

use super::{App, json_response};
use crate::error::{AdminError, GatewayError, RequestError};
use crate::identity::authenticate;
use crate::pipeline;
use crate::resource::Called;
use crate::routing::catalog::ModelRef;
use crate::wire::{Dialect, Operation};

pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/v1/messages", post(messages))
        .route("/v1/messages/count_tokens", post(count_tokens))
        .route("/v1/embeddings", post(embeddings))
        .route("/v1/responses", post(super::responses::create))
        .route("/v1/responses/{id}", get(super::responses::get_one).delete(super::responses::delete))
        .route("/v1/responses/{id}/input_items", get(super::responses::input_items))
        .route("/v1/models", get(models))
        .route("/v1/models/{*id}", get(model))
        .route("/health", get(health))
        .route("/ready", get(ready))
        .merge(crate::mcp::front::routes(Arc::new(crate::mcp::front::Door {
            live: app.live.clone(),
            hub: app.mcp.clone(),
            ids: Box::new({
                let app = Arc::downgrade(&app);
                move || app.upgrade().map_or_else(|| "req_-".to_string(), |a| a.ids.next())
            }),
        })))
        .merge(crate::a2a::front::routes(Arc::new(crate::a2a::front::Door {
            live: app.live.clone(),
            agents: app.a2a.clone(),
            ids: Box::new({
                let app = Arc::downgrade(&app);
                move || app.upgrade().map_or_else(|| "req_-".to_string(), |a| a.ids.next())
            }),
        })))
        .merge(super::batches::routes())
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(app.clone(), shed))
        // Outermost, so the console's preflight is answered before routing or shedding.
        .layer(axum::middleware::from_fn_with_state(app.clone(), super::ui::cors))
        .with_state(app)
}

/// Load shedding: past `server.max_concurrent_requests` in flight, a new
/// request is answered 503 with `retry-after` at once, before its body is
/// read, so a flood costs a counter bump rather than memory. A request
/// counts until its response body ends (a stream, until its last event).
/// `/health` and `/ready` are never shed: probes must see a busy gateway.
async fn shed(State(app): State<Arc<App>>, req: Request, next: axum::middleware::Next) -> Response {
    if matches!(req.uri().path(), "/health" | "/ready") {
        return next.run(req).await;
    }
    let snap = app.live.snapshot();
    let limit = snap.server.max_concurrent_requests;
    let req = req.map(|b| crate::pipeline::body_timeout::wrap(b, snap.server.body_read_timeout));
    let metrics = app.live.shared().metrics.clone();
    let before = metrics.in_flight.inc();
    let guard = InFlight(metrics);
    if usize::try_from(before).unwrap_or(0) >= limit {
        guard.0.shed.inc();
        return GatewayError::Overloaded(limit).into_response();
    }
    next.run(req).await.map(|inner| axum::body::Body::new(Counted { inner, _guard: guard }))
}

/// One request in flight, until dropped with its response body.
struct InFlight(Arc<crate::metrics::Metrics>);

/// A response body that holds its request's slot. It forwards the size, so
/// a short answer keeps its `content-length` (a client still sending a body
/// the gateway refused reads the whole answer before the connection goes).
struct Counted {
    inner: axum::body::Body,
    _guard: InFlight,
}

impl http_body::Body for Counted {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.dec();
    }
}

async fn chat(State(app): State<Arc<App>>, req: Request) -> Response {
    agent_or_pipeline(app, req, Dialect::OpenAi).await
}

/// A chat request on either front door: through the agent layer when it
/// offers MCP tools or the agent engine has rules, else straight to the pipeline.
async fn agent_or_pipeline(app: Arc<App>, req: Request, front: Dialect) -> Response {
    let snap = app.live.snapshot();
    let (parts, body) = req.into_parts();
    let limit = snap.server.max_body_size;
    // The pipeline refuses a request without a credential, or one declaring
    // an oversized body, before reading any of it: such requests go there
    // unread, so anonymous traffic stays cheap.
    let declared = parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let credential = parts.headers.contains_key(http::header::AUTHORIZATION) || parts.headers.contains_key("x-api-key");
    if !credential || declared.is_some_and(|n| n > limit as u64) {
        let shared = app.live.shared();
        return pipeline::handle(app.ids.next(), Operation::ChatCompletions, front, snap, shared, parts.headers, body)
            .await;
    }
    // Read one byte past the limit at most: an oversized body goes on to
    // the pipeline, which refuses it (and logs the refusal) as it always does.
    let mut bytes = bytes::BytesMut::new();
    let mut body = body.into_data_stream();
    while bytes.len() <= limit {
        match futures_util::StreamExt::next(&mut body).await {
            Some(Ok(chunk)) => bytes.extend_from_slice(&chunk),
            None => break,
            // A body that failed (too slow, cut off) is answered by the
            // pipeline like any other: it reads what came, then the failure.
            Some(Err(e)) => {
                let replay = futures_util::stream::iter([Ok(bytes.freeze()), Err(e)]);
                let shared = app.live.shared();
                let body = axum::body::Body::from_stream(replay);
                return pipeline::handle(app.ids.next(), Operation::ChatCompletions, front, snap, shared, parts.headers, body)
                    .await;
            }
        }
    }
    let bytes = bytes.freeze();
    let id = app.ids.next();
    if bytes.len() <= limit && crate::agent::may_engage(&snap, &bytes) {
        let door = crate::agent::Door {
            live: app.live.clone(),
            hub: app.mcp.clone(),
            ids: Box::new({
                let app = Arc::downgrade(&app);
                move || app.upgrade().map_or_else(|| "req_-".to_string(), |a| a.ids.next())
            }),
        };
        return crate::agent::run::chat(&door, id, front, parts.headers, bytes).await;
    }
    let shared = app.live.shared();
    let body = axum::body::Body::from(bytes);
    pipeline::handle(id, Operation::ChatCompletions, front, snap, shared, parts.headers, body).await
}

async fn embeddings(State(app): State<Arc<App>>, req: Request) -> Response {
    model_call(&app, req, Operation::Embeddings, Dialect::OpenAi).await
}

/// The Anthropic Messages API, answered by whatever model the name resolves to.
async fn messages(State(app): State<Arc<App>>, req: Request) -> Response {
    agent_or_pipeline(app, req, Dialect::Anthropic).await
}

/// One model request through the pipeline, on the current snapshot.
async fn model_call(app: &App, req: Request, op: Operation, front: Dialect) -> Response {
    let (parts, body) = req.into_parts();
    pipeline::handle(app.ids.next(), op, front, app.live.snapshot(), app.live.shared(), parts.headers, body).await
}

/// `/v1/messages/count_tokens`, counted here with the gateway's tokenizer
/// for every model (no upstream call): `{"input_tokens": n}`.
async fn count_tokens(State(app): State<Arc<App>>, req: Request) -> Response {
    let started = Instant::now();
    let snap = app.live.snapshot();
    let (parts, body) = req.into_parts();
    let fail = |e: GatewayError| crate::error::render(e, Dialect::Anthropic);
    let principal = match authenticate::run(&snap.auth, &app.live.shared().keys, &parts.headers).await {
        Ok(p) => p,
        Err(e) => return stamp(&app, started, fail(e.into())),
    };
    let bytes = match pipeline::receive::read_body(body, &parts.headers, snap.server.max_body_size).await {
        Ok(b) => b,
        Err(e) => return stamp(&app, started, fail(e.into())),
    };
    let v: serde_json::Value = match serde_json::from_slice(&bytes) {
        Ok(v) => v,
        Err(e) => {
            let e = RequestError::InvalidJson(format!("the request body is not valid JSON: {e}"));
            return stamp(&app, started, fail(e.into()));
        }
    };
    let model = v.get("model").and_then(serde_json::Value::as_str).unwrap_or("");
    let allowed = match snap.models.resolve_ref(model) {
        Some(ModelRef::Physical(t)) => snap.auth.allows(&principal, Called::model(&t.canonical)),
        Some(ModelRef::Virtual(vm)) => snap.auth.allows(&principal, Called::model(&vm.name)),
        None => return stamp(&app, started, fail(RequestError::UnknownModel(model.to_string()).into())),
    };
    if !allowed {
        let e = crate::error::AuthError::ModelNotAllowed(model.to_string());
        return stamp(&app, started, fail(e.into()));
    }
    let n = crate::translate::messages::count_tokens(&v);
    stamp(&app, started, json_response(StatusCode::OK, json!({ "input_tokens": n }).to_string()))
}

fn model_entry(id: &str, owner: &str) -> serde_json::Value {
    json!({ "id": id, "object": "model", "created": 0, "owned_by": owner })
}

/// Only the models this caller may use.
async fn models(State(app): State<Arc<App>>, req: Request) -> Response {
    let started = Instant::now();
    let snap = app.live.snapshot();
    let principal = match authenticate::run(&snap.auth, &app.live.shared().keys, req.headers()).await {
        Ok(p) => p,
        Err(e) => return stamp(&app, started, GatewayError::from(e).into_response()),
    };
    let data: Vec<_> = snap
        .models
        .listed
        .iter()
        .filter(|m| snap.auth.allows(&principal, Called::model(m)))
        .map(|m| {
            let owner = if snap.models.virtual_models.contains_key(m) {
                "tollgate"
            } else {
                m.split_once('/').map_or("", |(p, _)| p)
            };
            model_entry(m, owner)
        })
        .collect();
    stamp(&app, started, json_response(StatusCode::OK, json!({ "object": "list", "data": data }).to_string()))
}

async fn model(State(app): State<Arc<App>>, Path(id): Path<String>, req: Request) -> Response {
    let started = Instant::now();
    let snap = app.live.snapshot();
    let principal = match authenticate::run(&snap.auth, &app.live.shared().keys, req.headers()).await {
        Ok(p) => p,
        Err(e) => return stamp(&app, started, GatewayError::from(e).into_response()),
    };
    let resp = match snap.models.resolve_ref(&id) {
        Some(ModelRef::Physical(t)) if snap.auth.allows(&principal, Called::model(&t.canonical)) => {
            json_response(StatusCode::OK, model_entry(&t.canonical, &t.provider.name).to_string())
        }
        Some(ModelRef::Virtual(v)) if snap.auth.allows(&principal, Called::model(&v.name)) => {
            json_response(StatusCode::OK, model_entry(&v.name, "tollgate").to_string())
        }
        _ => GatewayError::from(RequestError::UnknownModel(id)).into_response(),
    };
    stamp(&app, started, resp)
}

/// The headers every API response carries, for routes outside the pipeline.
pub(super) fn stamp(app: &App, started: Instant, mut r: Response) -> Response {
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&app.ids.next()) {
        h.insert("x-tollgate-request-id", v);
    }
    let timing = format!("gateway;dur={:.3}", started.elapsed().as_secs_f64() * 1000.0);
    if let Ok(v) = HeaderValue::from_str(&timing) {
        h.insert("server-timing", v);
    }
    r
}

async fn health() -> Response {
    json_response(StatusCode::OK, r#"{"status":"ok"}"#)
}

async fn ready(State(app): State<Arc<App>>) -> Response {
    if app.ready.load(Ordering::Acquire) {
        let snap = app.live.snapshot();
        let log = &app.live.shared().reqlog;
        // Still ready while the log store is down: requests are served and
        // entries wait; these say how many wait and how many were lost.
        let request_log = json!({
            "waiting": log.spooled.load(Ordering::Relaxed),
            "dropped": log.dropped.load(Ordering::Relaxed),
        });
        let mut body = json!({ "status": "ready", "config_version": snap.version, "request_log": request_log });
        // Still ready while Redis or NATS is down (limits count locally,
        // changes arrive by the store poll); this says which is.
        if let Some(c) = &app.cluster {
            body["distributed"] = c.status();
        }
        json_response(StatusCode::OK, body.to_string())
    } else {
        GatewayError::NotReady.into_response()
    }
}

async fn not_found(State(app): State<Arc<App>>, req: Request) -> Response {
    let started = Instant::now();
    let path = req.uri().path();
    if let Some(rest) = path.strip_prefix("/v1/v1/") {
        // The commonest base-URL mistake: `…/v1` given to an SDK that adds
        // `/v1` itself (the Anthropic SDK does). Say so, in the caller's dialect.
        let msg = format!(
            "no route for {} {path}: `/v1` appears twice, because the base URL ends in `/v1` and the client adds \
             another; give the Anthropic SDK the base URL without `/v1` (e.g. http://127.0.0.1:4000), the OpenAI \
             SDK the one with it (http://127.0.0.1:4000/v1), so the request goes to /v1/{rest}",
            req.method()
        );
        let resp = if rest.starts_with("messages") {
            json_response(StatusCode::NOT_FOUND, crate::translate::messages::error_body(404, &msg).to_string())
        } else {
            AdminError::UnknownRoute(msg).into_response()
        };
        return stamp(&app, started, resp);
    }
    let msg = format!("no route for {} {path}; the API is under /v1 (e.g. POST /v1/chat/completions)", req.method());
    stamp(&app, started, AdminError::UnknownRoute(msg).into_response())
}
