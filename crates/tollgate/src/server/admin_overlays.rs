//! `/admin/rate_limits`, `/admin/budgets`, `/admin/teams`: rules and team
//! allowlists added at run time on top of the config file. A change is
//! applied by reloading through the same validation as the file — if the
//! result would not load, nothing changes and the errors are returned —
//! and then kept in the store, so it survives restarts.

use std::sync::Arc;

use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use http_body_util::BodyExt;
use serde_json::{Value, json};

use super::admin::{Permission, require};
use super::{App, json_response};
use crate::config::file::{AccessSection, BudgetSection, RateLimitSection};
use crate::config::overlay::{self, Entry, Kind};
use crate::config::reload::Outcome;
use crate::error::AdminError;

#[expect(clippy::result_large_err, reason = "the error is the response itself, returned at once")]
fn kind_or_404(kind: &str) -> Result<Kind, Response> {
    Kind::parse(kind).ok_or_else(|| AdminError::UnknownRoute(format!("no admin route `/admin/{kind}`")).into_response())
}

/// The ids the config file itself defines, and the overlays.
pub async fn list(State(app): State<Arc<App>>, Path(kind): Path<String>, req: Request) -> Response {
    let kind = match kind_or_404(&kind) {
        Ok(k) => k,
        Err(r) => return r,
    };
    if let Err(r) = require(&app, req.headers(), Permission::ReadConfig).await {
        return r;
    }
    let snap = app.live.snapshot();
    let overlays = app.live.shared().overlays.get();
    let mine: Vec<Value> = overlays
        .iter()
        .filter(|e| e.kind == kind)
        .map(|e| json!({ "id": e.id, "source": "admin", "rule": serde_json::from_str::<Value>(&e.body).unwrap_or(Value::Null) }))
        .collect();
    let active: Vec<String> = match kind {
        Kind::RateLimits => snap.rate_limits.iter().map(|r| r.id.to_string()).collect(),
        Kind::Budgets => snap.budgets.iter().map(|b| b.id.to_string()).collect(),
        Kind::Teams => snap.auth.teams.keys().cloned().collect(),
        Kind::Users => snap.auth.users.keys().cloned().collect(),
    };
    json_response(StatusCode::OK, json!({ "active": active, "overlays": mine }).to_string())
}

pub async fn put(State(app): State<Arc<App>>, Path((kind, id)): Path<(String, String)>, req: Request) -> Response {
    let kind = match kind_or_404(&kind) {
        Ok(k) => k,
        Err(r) => return r,
    };
    let caller = match require(&app, req.headers(), Permission::ManageRules).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let bytes = match http_body_util::Limited::new(req.into_body(), 64 << 10).collect().await {
        Ok(c) => c.to_bytes(),
        Err(_) => return bad("the body must be a JSON object under 64KiB"),
    };
    let mut body: Value = match serde_json::from_slice(&bytes) {
        Ok(v @ Value::Object(_)) => v,
        _ => return bad("the body must be a JSON object"),
    };
    // Rules carry their id; the path names it.
    if matches!(kind, Kind::RateLimits | Kind::Budgets) {
        match body.get("id") {
            None => body["id"] = json!(id),
            Some(v) if v == &json!(id) => {}
            Some(_) => return bad("the body's `id` differs from the one in the path"),
        }
    }
    let text = body.to_string();
    let checked = match kind {
        Kind::RateLimits => overlay::parse::<RateLimitSection>(&text).map(|_| ()),
        Kind::Budgets => overlay::parse::<BudgetSection>(&text).map(|_| ()),
        Kind::Teams => overlay::parse::<AccessSection>(&text).map(|_| ()),
        Kind::Users => overlay::parse::<crate::config::file::UserSection>(&text).map(|_| ()),
    };
    if let Err(e) = checked {
        return bad(format!("invalid {}: {e}", kind.as_str()));
    }
    let entry = Entry { kind, id: id.clone(), body: text };
    change(&app, &caller.id, kind, &id, Some(entry)).await
}

pub async fn delete(State(app): State<Arc<App>>, Path((kind, id)): Path<(String, String)>, req: Request) -> Response {
    let kind = match kind_or_404(&kind) {
        Ok(k) => k,
        Err(r) => return r,
    };
    let caller = match require(&app, req.headers(), Permission::ManageRules).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let exists = app.live.shared().overlays.get().iter().any(|e| e.kind == kind && e.id == id);
    if !exists {
        return AdminError::NotFound(format!(
            "no admin {} `{id}`; entries from the config file are changed in the file",
            kind.as_str()
        ))
        .into_response();
    }
    change(&app, &caller.id, kind, &id, None).await
}

/// Applies the new overlay set through a reload; keeps it only if it loads
/// and the store accepted it.
async fn change(app: &Arc<App>, actor: &str, kind: Kind, id: &str, new: Option<Entry>) -> Response {
    let action = if new.is_some() { "overlay.put" } else { "overlay.delete" };
    let target = format!("{}/{id}", kind.as_str());
    let _one = app.overlay_lock.lock().await;
    let shared = app.live.shared();
    let before = shared.overlays.get();
    let mut next: Vec<Entry> = before.iter().filter(|e| !(e.kind == kind && e.id == id)).cloned().collect();
    next.extend(new.clone());
    shared.overlays.set(next);
    let live = app.live.clone();
    let who = actor.to_string();
    let outcome = tokio::task::spawn_blocking(move || live.reload_as(&who, "admin overlay", false)).await;
    let version = match outcome {
        Ok(Ok(Outcome::Applied { version, .. } | Outcome::Unchanged { version })) => version,
        Ok(Err(errors)) => {
            shared.overlays.set(before.to_vec());
            shared.audit.record(actor, action, &target, "refused: the change does not load");
            let list: Vec<String> = errors.to_string().lines().map(str::to_string).collect();
            let body = json!({
                "error": { "message": format!("the change does not load; nothing was applied:\n{errors}"),
                           "type": "invalid_request_error", "param": null, "code": "invalid_config" },
                "errors": list,
            });
            return json_response(StatusCode::UNPROCESSABLE_ENTITY, body.to_string());
        }
        Err(_) => {
            shared.overlays.set(before.to_vec());
            return AdminError::ReloadFailed("reload task failed".to_string()).into_response();
        }
    };
    let stored = match &new {
        Some(e) => app.store.put_overlay(e.clone()).await,
        None => app.store.delete_overlay(kind, id.to_string()).await,
    };
    if let Err(e) = stored {
        tracing::error!(error = %e, "could not store an admin overlay; undoing it");
        shared.overlays.set(before.to_vec());
        let live = app.live.clone();
        let _ = tokio::task::spawn_blocking(move || live.reload("admin overlay undo", false)).await;
        return AdminError::StoreUnavailable("the store is unavailable; nothing was changed".to_string())
            .into_response();
    }
    shared.audit.record(actor, action, &target, &format!("ok (config version {version})"));
    super::changes::publish(app, crate::distributed::bus::Change::Overlays).await;
    json_response(
        StatusCode::OK,
        json!({ "status": if new.is_some() { "applied" } else { "removed" }, "config_version": version }).to_string(),
    )
}

fn bad(message: impl AsRef<str>) -> Response {
    AdminError::Invalid { code: "invalid_overlay", message: message.as_ref().to_string() }.into_response()
}
