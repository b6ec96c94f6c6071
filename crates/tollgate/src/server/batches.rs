//! `/v1/files` and `/v1/batches`: OpenAI's Files and Batches APIs on the
//! data plane. Every caller sees only its own files and batches (the
//! master key and admins see all); another caller's id is a 404, so ids
//! say nothing about who else uses the gateway. The executor is
//! `batches::run`; these routes only read and write the store.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Path, Query, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde::Deserialize;
use serde_json::{Value, json};

use super::data::stamp;
use super::{App, json_response};
use crate::batches::input::{self, ENDPOINTS};
use crate::batches::record::{BatchRecord, FileRecord, Status};
use crate::batches::{new_id, now_secs, scope, sees};
use crate::error::{AdminError, GatewayError};
use crate::identity::{Principal, authenticate};

/// The only completion window OpenAI offers, and so the only one accepted.
const WINDOW: &str = "24h";
const WINDOW_SECS: u64 = 24 * 3600;

pub fn routes() -> Router<Arc<App>> {
    Router::new()
        // The upload enforces `batches.max_file_size` itself, as it streams.
        .route("/v1/files", post(upload).get(list_files).layer(DefaultBodyLimit::disable()))
        .route("/v1/files/{id}", get(get_file).delete(delete_file))
        .route("/v1/files/{id}/content", get(file_content))
        .route("/v1/batches", post(create).get(list_batches))
        .route("/v1/batches/{id}", get(get_batch))
        .route("/v1/batches/{id}/cancel", post(cancel))
}

type Result<T> = std::result::Result<T, GatewayError>;

/// Runs a route body and stamps its response, error or not.
async fn answer(app: &App, f: impl Future<Output = Result<Response>>) -> Response {
    let started = Instant::now();
    let r = f.await.unwrap_or_else(IntoResponse::into_response);
    stamp(app, started, r)
}

async fn caller(app: &App, headers: &HeaderMap) -> Result<Arc<Principal>> {
    let snap = app.live.snapshot();
    Ok(authenticate::run(&snap.auth, &app.live.shared().keys, headers).await?)
}

fn invalid(code: &'static str, message: impl Into<String>) -> GatewayError {
    AdminError::Invalid { code, message: message.into() }.into()
}

fn store_down(e: String) -> GatewayError {
    AdminError::StoreUnavailable(format!("the store could not be reached, nothing was changed; retry shortly ({e})"))
        .into()
}

fn ok(v: Value) -> Result<Response> {
    Ok(json_response(StatusCode::OK, v.to_string()))
}

// === files ===

async fn upload(State(app): State<Arc<App>>, req: Request) -> Response {
    answer(&app.clone(), async move {
        let p = caller(&app, req.headers()).await?;
        let limit = app.live.snapshot().batches.max_file_size;
        let bad_form = |e: axum::extract::multipart::MultipartError| {
            invalid("invalid_multipart", format!("could not read the upload ({e}); send multipart/form-data with a `file` field and `purpose`"))
        };
        let mut form = Multipart::from_request(req, &()).await.map_err(|e| {
            invalid("invalid_multipart", format!("{e}; send multipart/form-data with a `file` field and `purpose`"))
        })?;
        let (mut file, mut purpose) = (None, None);
        while let Some(mut field) = form.next_field().await.map_err(bad_form)? {
            match field.name() {
                Some("file") => {
                    let name = field.file_name().filter(|n| !n.is_empty()).unwrap_or("upload.jsonl").to_string();
                    let mut content = Vec::new();
                    while let Some(chunk) = field.chunk().await.map_err(bad_form)? {
                        if (content.len() + chunk.len()) as u64 > limit {
                            return Err(invalid(
                                "file_too_large",
                                format!("the file is larger than {limit} bytes (batches.max_file_size); split it into smaller batches"),
                            ));
                        }
                        content.extend_from_slice(&chunk);
                    }
                    file = Some((name, content));
                }
                Some("purpose") => {
                    // A purpose is a short word: a longer field is not read into memory.
                    let mut text = Vec::new();
                    while let Some(chunk) = field.chunk().await.map_err(bad_form)? {
                        text.extend_from_slice(&chunk);
                        if text.len() > 64 {
                            return Err(invalid("invalid_purpose", "the `purpose` field is too long; send purpose \"batch\""));
                        }
                    }
                    purpose = Some(String::from_utf8_lossy(&text).into_owned());
                }
                // Fields this gateway does not use (e.g. `expires_after`) are read past.
                _ => {}
            }
        }
        match purpose.as_deref() {
            Some("batch") => {}
            Some(other) => {
                return Err(invalid(
                    "invalid_purpose",
                    format!("purpose `{other}` is not supported: tollgate keeps files for the Batches API only; upload with purpose \"batch\""),
                ));
            }
            None => return Err(invalid("missing_purpose", "the `purpose` field is missing; send purpose \"batch\"")),
        }
        let Some((filename, content)) = file else {
            return Err(invalid("missing_file", "the `file` field is missing; attach the JSONL file as `file`"));
        };
        input::parse(&content).map_err(|e| invalid("invalid_batch_file", format!("{filename}: {e}")))?;
        let rec = FileRecord {
            id: new_id("file-"),
            owner: p.id.clone(),
            created_at: now_secs(),
            filename,
            purpose: "batch".into(),
            bytes: content.len() as u64,
        };
        app.batches.store.put_file(rec.clone(), content).await.map_err(store_down)?;
        ok(rec.object())
    })
    .await
}

/// A file this caller may see, or a 404 that does not say whether it exists.
async fn visible_file(app: &App, p: &Principal, id: String) -> Result<FileRecord> {
    match app.batches.store.get_file(id.clone()).await.map_err(store_down)? {
        Some(f) if sees(p, &f.owner) => Ok(f),
        _ => Err(AdminError::NotFound(format!("no file `{id}`; GET /v1/files lists yours")).into()),
    }
}

#[derive(Debug, Deserialize)]
struct ListParams {
    limit: Option<String>,
    after: Option<String>,
    order: Option<String>,
    purpose: Option<String>,
}

/// One page, OpenAI's cursor list: `after` is the last id of the page before.
fn page<T>(
    items: Vec<T>,
    id: impl Fn(&T) -> &str,
    show: impl Fn(&T) -> Value,
    q: &ListParams,
    max: usize,
    default: usize,
) -> Result<Value> {
    let limit =
        match q.limit.as_deref() {
            None => default,
            Some(s) => s.parse::<usize>().ok().filter(|n| (1..=max).contains(n)).ok_or_else(|| {
                invalid("invalid_limit", format!("limit `{s}` must be a whole number from 1 to {max}"))
            })?,
        };
    let start = match &q.after {
        None => 0,
        Some(after) => items.iter().position(|x| id(x) == after).map(|i| i + 1).ok_or_else(|| {
            invalid(
                "invalid_after",
                format!("after `{after}` is not an id in this list; pass the last id of the previous page"),
            )
        })?,
    };
    let data: Vec<Value> = items.iter().skip(start).take(limit).map(&show).collect();
    let has_more = items.len() > start + limit;
    let first = data.first().and_then(|v| v["id"].as_str()).map(str::to_string);
    let last = data.last().and_then(|v| v["id"].as_str()).map(str::to_string);
    Ok(json!({ "object": "list", "data": data, "first_id": first, "last_id": last, "has_more": has_more }))
}

async fn list_files(
    State(app): State<Arc<App>>,
    q: std::result::Result<Query<ListParams>, QueryRejection>,
    headers: HeaderMap,
) -> Response {
    answer(&app.clone(), async move {
        let p = caller(&app, &headers).await?;
        let Query(q) =
            q.map_err(|e| invalid("invalid_query", format!("{e}; the list takes limit, after, order and purpose")))?;
        let mut files = app.batches.store.list_files(scope(&p)).await.map_err(store_down)?;
        if let Some(purpose) = &q.purpose {
            files.retain(|f| &f.purpose == purpose);
        }
        match q.order.as_deref() {
            None | Some("desc") => {}
            Some("asc") => files.reverse(),
            Some(o) => return Err(invalid("invalid_order", format!("order `{o}` must be `asc` or `desc`"))),
        }
        ok(page(files, |f| &f.id, FileRecord::object, &q, 10_000, 10_000)?)
    })
    .await
}

async fn get_file(State(app): State<Arc<App>>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    answer(&app.clone(), async move {
        let p = caller(&app, &headers).await?;
        ok(visible_file(&app, &p, id).await?.object())
    })
    .await
}

async fn file_content(State(app): State<Arc<App>>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    answer(&app.clone(), async move {
        let p = caller(&app, &headers).await?;
        let f = visible_file(&app, &p, id.clone()).await?;
        let content = app.batches.store.file_content(f.id).await.map_err(store_down)?;
        let content =
            content.ok_or_else(|| AdminError::NotFound(format!("no file `{id}`; GET /v1/files lists yours")))?;
        let mut r = Response::new(axum::body::Body::from(content));
        r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
        Ok(r)
    })
    .await
}

async fn delete_file(State(app): State<Arc<App>>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    answer(&app.clone(), async move {
        let p = caller(&app, &headers).await?;
        let f = visible_file(&app, &p, id).await?;
        let store = &app.batches.store;
        let unfinished = store.unfinished_batches().await.map_err(store_down)?;
        if let Some(b) = unfinished.iter().find(|b| b.input_file_id == f.id) {
            return Err(AdminError::Conflict {
                code: "file_in_use",
                message: format!(
                    "file `{}` is the input of batch `{}`, which has not finished; cancel it or wait",
                    f.id, b.id
                ),
            }
            .into());
        }
        store.delete_file(f.id.clone()).await.map_err(store_down)?;
        ok(json!({ "id": f.id, "object": "file", "deleted": true }))
    })
    .await
}

// === batches ===

async fn create(State(app): State<Arc<App>>, req: Request) -> Response {
    answer(&app.clone(), async move {
        let (parts, body) = req.into_parts();
        let p = caller(&app, &parts.headers).await?;
        let snap = app.live.snapshot();
        // Every line will be held to the metadata contract: a batch that
        // would fail on it is refused now, not line by line.
        crate::admission::metadata::run(&snap.metadata, Some(&p), &parts.headers)?;
        let bytes = crate::pipeline::receive::read_body(body, &parts.headers, snap.server.max_body_size).await?;
        let v: Value = serde_json::from_slice(&bytes)
            .map_err(|e| invalid("invalid_json", format!("the request body is not valid JSON: {e}")))?;
        let text = |k: &str| v.get(k).and_then(Value::as_str);
        let file_id = text("input_file_id")
            .ok_or_else(|| invalid("missing_input_file_id", "`input_file_id` is required: the id POST /v1/files returned"))?;
        let endpoint = text("endpoint").ok_or_else(|| {
            invalid("missing_endpoint", format!("`endpoint` is required; one of {}", ENDPOINTS.join(", ")))
        })?;
        if !ENDPOINTS.contains(&endpoint) {
            return Err(invalid("invalid_endpoint", format!("endpoint `{endpoint}` is not supported; use one of {}", ENDPOINTS.join(", "))));
        }
        match text("completion_window") {
            Some(WINDOW) => {}
            Some(w) => return Err(invalid("invalid_completion_window", format!("completion_window `{w}` is not supported; use \"24h\""))),
            None => return Err(invalid("missing_completion_window", "`completion_window` is required; use \"24h\"")),
        }
        let metadata = metadata(v.get("metadata"))?;
        let file = visible_file(&app, &p, file_id.to_string()).await.map_err(|_| {
            invalid("invalid_input_file_id", format!("input_file_id `{file_id}` is not a file of yours; upload one with POST /v1/files"))
        })?;
        if file.purpose != "batch" {
            return Err(invalid(
                "invalid_input_file_id",
                format!("file `{file_id}` has purpose `{}`; a batch reads a file uploaded with purpose \"batch\"", file.purpose),
            ));
        }
        let content = app.batches.store.file_content(file.id.clone()).await.map_err(store_down)?.unwrap_or_default();
        let lines = input::parse(&content).map_err(|e| invalid("invalid_batch_file", format!("{}: {e}", file.filename)))?;
        if let Some(l) = lines.iter().find(|l| l.url != endpoint) {
            return Err(invalid(
                "mismatched_endpoint",
                format!(
                    "request {} of the file (custom_id `{}`) calls {} but the batch endpoint is {endpoint}; a batch calls one endpoint",
                    l.index + 1,
                    l.custom_id,
                    l.url
                ),
            ));
        }
        let now = now_secs();
        let rec = BatchRecord {
            id: new_id("batch_"),
            owner: p.id.clone(),
            endpoint: endpoint.to_string(),
            input_file_id: file.id,
            completion_window: WINDOW.into(),
            status: Status::Validating,
            output_file_id: None,
            error_file_id: None,
            errors: Vec::new(),
            metadata,
            created_at: now,
            expires_at: now + WINDOW_SECS,
            in_progress_at: None,
            finalizing_at: None,
            completed_at: None,
            failed_at: None,
            expired_at: None,
            cancelling_at: None,
            cancelled_at: None,
            total: lines.len() as u64,
            completed: 0,
            failed: 0,
        };
        let sealed = app.batches.seal(&parts.headers);
        app.batches.store.insert_batch(rec.clone(), sealed).await.map_err(store_down)?;
        app.batches.wake();
        ok(rec.object())
    })
    .await
}

/// OpenAI's limits: at most 16 pairs, keys up to 64 characters, string
/// values up to 512.
fn metadata(v: Option<&Value>) -> Result<Option<std::collections::BTreeMap<String, String>>> {
    let bad = |m: String| invalid("invalid_metadata", m);
    let Some(Value::Object(o)) = v.filter(|v| !v.is_null()) else {
        return match v.filter(|v| !v.is_null()) {
            None => Ok(None),
            Some(_) => Err(bad("`metadata` must be an object of string values".into())),
        };
    };
    if o.len() > 16 {
        return Err(bad(format!("`metadata` has {} keys; at most 16 are allowed", o.len())));
    }
    o.iter()
        .map(|(k, v)| match v {
            _ if k.chars().count() > 64 => Err(bad(format!("metadata key `{k}` is longer than 64 characters"))),
            Value::String(s) if s.chars().count() > 512 => {
                Err(bad(format!("metadata `{k}` is longer than 512 characters")))
            }
            Value::String(s) => Ok((k.clone(), s.clone())),
            _ => Err(bad(format!("metadata `{k}` must be a string"))),
        })
        .collect::<Result<_>>()
        .map(Some)
}

async fn visible_batch(app: &App, p: &Principal, id: String) -> Result<BatchRecord> {
    match app.batches.store.get_batch(id.clone()).await.map_err(store_down)? {
        Some(b) if sees(p, &b.owner) => Ok(b),
        _ => Err(AdminError::NotFound(format!("no batch `{id}`; GET /v1/batches lists yours")).into()),
    }
}

async fn get_batch(State(app): State<Arc<App>>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    answer(&app.clone(), async move {
        let p = caller(&app, &headers).await?;
        ok(visible_batch(&app, &p, id).await?.object())
    })
    .await
}

async fn list_batches(
    State(app): State<Arc<App>>,
    q: std::result::Result<Query<ListParams>, QueryRejection>,
    headers: HeaderMap,
) -> Response {
    answer(&app.clone(), async move {
        let p = caller(&app, &headers).await?;
        let Query(q) =
            q.map_err(|e| invalid("invalid_query", format!("{e}; the list takes limit, after, order and purpose")))?;
        let batches = app.batches.store.list_batches(scope(&p)).await.map_err(store_down)?;
        ok(page(batches, |b| &b.id, BatchRecord::object, &q, 100, 20)?)
    })
    .await
}

async fn cancel(State(app): State<Arc<App>>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    answer(&app.clone(), async move {
        let p = caller(&app, &headers).await?;
        let b = visible_batch(&app, &p, id).await?;
        if matches!(b.status, Status::Cancelling | Status::Cancelled) {
            return ok(b.object());
        }
        let mut next = b.clone();
        next.status = Status::Cancelling;
        next.cancelling_at = Some(now_secs());
        let from = [Status::Validating, Status::InProgress];
        if !from.contains(&b.status)
            || !app.batches.store.update_batch(next.clone(), &from).await.map_err(store_down)?
        {
            let now = app.batches.store.get_batch(b.id.clone()).await.map_err(store_down)?.unwrap_or(b);
            return Err(AdminError::Conflict {
                code: "batch_not_cancellable",
                message: format!(
                    "batch `{}` is {}; only a validating or in_progress batch can be cancelled",
                    now.id,
                    now.status.as_str()
                ),
            }
            .into());
        }
        app.batches.cancel(&next.id);
        ok(next.object())
    })
    .await
}
