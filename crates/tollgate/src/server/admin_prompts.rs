//! `/admin/prompts`: prompt templates — list, read a version, diff two,
//! create a version, point a label at one (docs/prompts.md).
//!
//! A created version is checked like the file's, written to the store once
//! (its number is the primary key, so two instances cannot both take it)
//! and applied through a reload, so every snapshot after it has it and a
//! restart loads it again. Versions are immutable: there is no route that
//! changes or deletes one. Creating and promoting are audited.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, Query, Request, State};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use http_body_util::BodyExt;
use serde_json::{Value, json};

use super::admin::{Permission, require};
use super::{App, json_response};
use crate::config::file_prompts::PromptVersionSection;
use crate::config::reload::Outcome;
use crate::error::AdminError;
use crate::prompts::{Source, StoredLabel, StoredVersion, Template, Version, diff, is_id, is_label};

/// Largest version body accepted.
const MAX_BODY: usize = 256 << 10;

fn bad(message: impl Into<String>) -> Response {
    AdminError::Invalid { code: "invalid_prompt", message: message.into() }.into_response()
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

fn source(s: &Source) -> Value {
    match s {
        Source::Config => json!({ "source": "config" }),
        Source::Admin { at, by } => json!({ "source": "admin", "at": at, "by": by }),
    }
}

fn labels_of(t: &Template, n: u32) -> Vec<&str> {
    t.labels.iter().filter(|(_, l)| l.version == n).map(|(name, _)| name.as_str()).collect()
}

/// The version in the shape `POST …/versions` takes, so a client can read
/// one, edit it and post it back as the next.
fn template_json(v: &Version) -> Value {
    let body = |b: &crate::prompts::Body| -> Vec<Value> {
        b.messages.iter().map(|(r, t)| json!({ "role": r.as_str(), "content": t.source })).collect()
    };
    let mut out = serde_json::Map::new();
    if let Some(d) = &v.description {
        out.insert("description".into(), json!(d));
    }
    if !v.variables.is_empty() {
        let vars: serde_json::Map<String, Value> = v
            .variables
            .iter()
            .map(|(k, var)| {
                let mut m = serde_json::Map::new();
                if let Some(d) = &var.default {
                    m.insert("default".into(), json!(d));
                }
                if let Some(d) = &var.description {
                    m.insert("description".into(), json!(d));
                }
                (k.clone(), Value::Object(m))
            })
            .collect();
        out.insert("variables".into(), Value::Object(vars));
    }
    if let Some(i) = &v.body.instructions {
        out.insert("instructions".into(), json!(i.source));
    }
    if !v.body.messages.is_empty() {
        out.insert("messages".into(), json!(body(&v.body)));
    }
    if !v.variants.is_empty() {
        let overrides: Vec<Value> = v
            .variants
            .iter()
            .map(|o| {
                let mut m = serde_json::Map::new();
                if let Some(p) = &o.provider {
                    m.insert("provider".into(), json!(p));
                }
                if let Some(t) = &o.provider_type {
                    m.insert("provider_type".into(), json!(t));
                }
                if let (true, Some(i)) = (o.sets_instructions, &o.own.instructions) {
                    m.insert("instructions".into(), json!(i.source));
                }
                if o.sets_messages {
                    m.insert("messages".into(), json!(body(&o.own)));
                }
                Value::Object(m)
            })
            .collect();
        out.insert("overrides".into(), json!(overrides));
    }
    Value::Object(out)
}

fn version_json(t: &Template, v: &Version) -> Value {
    json!({
        "id": t.id,
        "version": v.number,
        "labels": labels_of(t, v.number),
        "created": source(&v.source),
        "template": template_json(v),
    })
}

fn summary(t: &Template) -> Value {
    let labels: BTreeMap<&str, Value> = t
        .labels
        .iter()
        .map(|(name, l)| (name.as_str(), json!({ "version": l.version, "set": source(&l.source) })))
        .collect();
    json!({
        "id": t.id,
        "description": t.description,
        "latest": t.latest().map(|v| v.number),
        "labels": labels,
    })
}

#[expect(clippy::result_large_err, reason = "the error is the response itself, returned at once")]
fn template<'a>(snap: &'a crate::config::snapshot::Snapshot, id: &str) -> Result<&'a Template, Response> {
    snap.prompts.templates.get(id).ok_or_else(|| {
        let known: Vec<&str> = snap.prompts.templates.keys().map(String::as_str).collect();
        AdminError::NotFound(format!("no prompt template `{id}`; templates: {}", known.join(", "))).into_response()
    })
}

/// A version named by number or by label.
#[expect(clippy::result_large_err, reason = "the error is the response itself, returned at once")]
fn version<'a>(t: &'a Template, which: &str) -> Result<&'a Arc<Version>, Response> {
    let picked = match which.parse::<u32>() {
        Ok(n) => t.pick(Some(n), None),
        Err(_) => t.pick(None, Some(which)),
    };
    picked.map_err(|e| AdminError::NotFound(e.to_string()).into_response())
}

pub async fn list(State(app): State<Arc<App>>, req: Request) -> Response {
    if let Err(r) = require(&app, req.headers(), Permission::ReadConfig).await {
        return r;
    }
    let snap = app.live.snapshot();
    let data: Vec<Value> = snap.prompts.templates.values().map(summary).collect();
    json_response(StatusCode::OK, json!({ "data": data }).to_string())
}

pub async fn one(State(app): State<Arc<App>>, Path(id): Path<String>, req: Request) -> Response {
    if let Err(r) = require(&app, req.headers(), Permission::ReadConfig).await {
        return r;
    }
    let snap = app.live.snapshot();
    let t = match template(&snap, &id) {
        Ok(t) => t,
        Err(r) => return r,
    };
    let versions: Vec<Value> = t
        .versions
        .values()
        .map(|v| {
            json!({
                "version": v.number,
                "description": v.description,
                "labels": labels_of(t, v.number),
                "variables": v.variables.keys().collect::<Vec<_>>(),
                "overrides": v.variants.len(),
                "created": source(&v.source),
            })
        })
        .collect();
    let mut body = summary(t);
    body["versions"] = json!(versions);
    json_response(StatusCode::OK, body.to_string())
}

pub async fn get_version(
    State(app): State<Arc<App>>,
    Path((id, which)): Path<(String, String)>,
    req: Request,
) -> Response {
    if let Err(r) = require(&app, req.headers(), Permission::ReadConfig).await {
        return r;
    }
    let snap = app.live.snapshot();
    let t = match template(&snap, &id) {
        Ok(t) => t,
        Err(r) => return r,
    };
    match version(t, &which) {
        Ok(v) => json_response(StatusCode::OK, version_json(t, v).to_string()),
        Err(r) => r,
    }
}

/// `?from=2&to=3` (numbers or labels).
pub async fn diff(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    Query(q): Query<BTreeMap<String, String>>,
    req: Request,
) -> Response {
    if let Err(r) = require(&app, req.headers(), Permission::ReadConfig).await {
        return r;
    }
    let (Some(from), Some(to)) = (q.get("from"), q.get("to")) else {
        return bad("name both versions: `?from=2&to=3` (numbers or labels)");
    };
    let snap = app.live.snapshot();
    let t = match template(&snap, &id) {
        Ok(t) => t,
        Err(r) => return r,
    };
    let (a, b) = match (version(t, from), version(t, to)) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(r), _) | (_, Err(r)) => return r,
    };
    let (ta, tb) = (diff::describe(a), diff::describe(b));
    let ops = diff::lines(&ta, &tb);
    let unified = diff::unified(&format!("{id}@{}", a.number), &format!("{id}@{}", b.number), &ops);
    let lines: Vec<Value> = ops.iter().map(|(op, text)| json!({ "op": op.as_str(), "text": text })).collect();
    let changed = ops.iter().any(|(op, _)| *op != diff::Op::Equal);
    let body = json!({
        "id": id, "from": a.number, "to": b.number, "changed": changed, "unified": unified, "lines": lines,
    });
    json_response(StatusCode::OK, body.to_string())
}

pub async fn create_version(State(app): State<Arc<App>>, Path(id): Path<String>, req: Request) -> Response {
    let caller = match require(&app, req.headers(), Permission::ManagePrompts).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    if !is_id(&id) {
        return bad(format!("`{id}` is not a usable template id; use letters, digits, `-`, `_` and `.`"));
    }
    let bytes = match http_body_util::Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(c) => c.to_bytes(),
        Err(_) => return bad("the body must be a JSON object under 256KiB"),
    };
    let mut body = match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(m)) => m,
        _ => {
            return bad(
                "the body must be a JSON object: {\"instructions\"?, \"messages\"?, \"variables\"?, \"overrides\"?}",
            );
        }
    };
    let _one = app.overlay_lock.lock().await;
    let snap = app.live.snapshot();
    let next = snap.prompts.templates.get(&id).and_then(Template::latest).map_or(1, |v| v.number + 1);
    match body.get("version") {
        None => {}
        Some(v) if v.as_u64() == Some(u64::from(next)) => {}
        Some(v) if v.as_u64().is_some_and(|n| n < u64::from(next)) => {
            return AdminError::Conflict {
                code: "prompt_version_exists",
                message: format!("`{id}` version {v} exists and versions are immutable; the next version is {next}"),
            }
            .into_response();
        }
        Some(_) => return bad(format!("the next version of `{id}` is {next}; leave `version` out to get it")),
    }
    body.insert("version".into(), json!(next));
    let text = Value::Object(body).to_string();
    let section = match serde_saphyr::from_str::<PromptVersionSection>(&text) {
        Ok(s) => s,
        Err(e) => return bad(format!("invalid prompt version: {}", e.without_snippet())),
    };
    let providers: Vec<(&str, &str)> =
        snap.models.providers.iter().map(|p| (p.name.as_str(), p.type_label())).collect();
    if let Err(problems) = crate::prompts::build::check(&id, &section, &providers) {
        return bad(problems.join("; "));
    }
    let stored = StoredVersion {
        prompt_id: id.clone(),
        version: next,
        body: text,
        created_at: now_ms(),
        created_by: caller.id.clone(),
    };
    let shared = app.live.shared();
    let target = format!("prompt/{id}@{next}");
    match app.store.insert_prompt_version(stored.clone()).await {
        Ok(true) => {}
        Ok(false) => {
            return AdminError::Conflict {
                code: "prompt_version_exists",
                message: format!("`{id}` version {next} was just created elsewhere; read the template and try again"),
            }
            .into_response();
        }
        Err(e) => {
            tracing::error!(error = %e, "could not store a prompt version");
            return AdminError::StoreUnavailable("the store is unavailable; nothing was created".into())
                .into_response();
        }
    }
    let mut all = (*shared.prompts.get()).clone();
    all.versions.push(stored);
    shared.prompts.set(all);
    let (status, applied) = apply(&app, &caller.id, "admin prompt version").await;
    shared.audit.record(&caller.id, "prompt.version.create", &target, &status);
    let mut out = json!({ "id": id, "version": next });
    match applied {
        Ok(config_version) => out["config_version"] = json!(config_version),
        Err(errors) => {
            out["warning"] = json!(format!(
                "stored, but the config file does not load right now, so requests get it at the next successful \
                 reload: {errors}"
            ));
        }
    }
    json_response(StatusCode::CREATED, out.to_string())
}

/// `PUT /admin/prompts/{id}/labels/{label}` with `{"version": 3}`.
pub async fn set_label(
    State(app): State<Arc<App>>,
    Path((id, label)): Path<(String, String)>,
    req: Request,
) -> Response {
    let caller = match require(&app, req.headers(), Permission::ManagePrompts).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    if !is_label(&label) {
        return bad(format!("`{label}` is not a usable label; use lower-case letters, digits, `-` and `_`"));
    }
    let bytes = match http_body_util::Limited::new(req.into_body(), 4096).collect().await {
        Ok(c) => c.to_bytes(),
        Err(_) => return bad("the body must be {\"version\": <number>}"),
    };
    let Some(n) = serde_json::from_slice::<Value>(&bytes)
        .ok()
        .and_then(|v| v.get("version").and_then(Value::as_u64))
        .and_then(|n| u32::try_from(n).ok())
    else {
        return bad("the body must be {\"version\": <number>}");
    };
    let _one = app.overlay_lock.lock().await;
    let snap = app.live.snapshot();
    let t = match template(&snap, &id) {
        Ok(t) => t,
        Err(r) => return r,
    };
    if let Err(e) = t.pick(Some(n), None) {
        return AdminError::NotFound(e.to_string()).into_response();
    }
    let previous = t.labels.get(&label).map(|l| l.version);
    let stored = StoredLabel {
        prompt_id: id.clone(),
        label: label.clone(),
        version: n,
        updated_at: now_ms(),
        updated_by: caller.id.clone(),
    };
    if let Err(e) = app.store.put_prompt_label(stored.clone()).await {
        tracing::error!(error = %e, "could not store a prompt label");
        return AdminError::StoreUnavailable("the store is unavailable; the label was not moved".into())
            .into_response();
    }
    let shared = app.live.shared();
    let mut all = (*shared.prompts.get()).clone();
    all.labels.retain(|l| !(l.prompt_id == id && l.label == label));
    all.labels.push(stored);
    shared.prompts.set(all);
    let (status, applied) = apply(&app, &caller.id, "admin prompt label").await;
    let was = previous.map_or("unset".to_string(), |p| format!("was {p}"));
    shared.audit.record(
        &caller.id,
        "prompt.label.set",
        &format!("prompt/{id}:{label}"),
        &format!("version {n} ({was}); {status}"),
    );
    let mut out = json!({ "id": id, "label": label, "version": n, "previous": previous });
    match applied {
        Ok(config_version) => out["config_version"] = json!(config_version),
        Err(errors) => {
            out["warning"] = json!(format!(
                "stored, but the config file does not load right now, so requests see it at the next successful \
                 reload: {errors}"
            ));
        }
    }
    json_response(StatusCode::OK, out.to_string())
}

/// Rebuilds the snapshot with the stored prompts; the audit outcome and
/// the new config version (or why the file did not load).
async fn apply(app: &Arc<App>, actor: &str, trigger: &'static str) -> (String, Result<u64, String>) {
    let live = app.live.clone();
    let who = actor.to_string();
    match tokio::task::spawn_blocking(move || live.reload_as(&who, trigger, false)).await {
        Ok(Ok(Outcome::Applied { version, .. } | Outcome::Unchanged { version })) => {
            (format!("ok (config version {version})"), Ok(version))
        }
        Ok(Err(errors)) => ("stored; the config file does not load".into(), Err(errors.to_string())),
        Err(_) => ("stored; the reload task failed".into(), Err("the reload task failed".into())),
    }
}
