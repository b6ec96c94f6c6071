//! `/admin/keys`: create (the secret is in this one response only), list,
//! show, revoke (in force for the next request) and rotate (a new secret;
//! the old one keeps working for the overlap window).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use http_body_util::BodyExt;
use serde::Deserialize;
use serde_json::json;

use super::admin::{Permission, require};
use super::{App, json_response};
use crate::config::loc::Dur;
use crate::error::AdminError;
use crate::identity::Principal;
use crate::identity::Role;
use crate::identity::keys::{KeyRecord, generate_secret, now_secs};

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[derive(Default)]
pub struct CreateKey {
    name: String,
    #[serde(default)]
    owner: Option<String>,
    #[serde(default)]
    team: Option<String>,
    #[serde(default)]
    models: Option<Vec<String>>,
    #[serde(default)]
    tools: Option<Vec<String>>,
    #[serde(default)]
    agents: Option<Vec<String>>,
    #[serde(default)]
    metadata: BTreeMap<String, String>,
    #[serde(default)]
    role: Option<Role>,
    /// e.g. `30d` is not a unit; use hours: `720h`.
    #[serde(default)]
    expires_in: Option<String>,
}

#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateKey {
    /// How long the old secret keeps working, e.g. `1h`. Default: it stops at once.
    #[serde(default)]
    overlap: Option<String>,
}

fn bad(message: impl AsRef<str>) -> Response {
    AdminError::Invalid { code: "invalid_key_request", message: message.as_ref().to_string() }.into_response()
}

async fn body<T: for<'de> Deserialize<'de> + Default>(req: Request, allow_empty: bool) -> Result<T, Response> {
    let bytes = http_body_util::Limited::new(req.into_body(), 64 << 10)
        .collect()
        .await
        .map_err(|_| bad("the body must be a JSON object under 64KiB"))?
        .to_bytes();
    if allow_empty && bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(&bytes).map_err(|e| bad(format!("invalid body: {e}")))
}

/// May `caller` see or manage `rec`?
fn may_touch(caller: &Principal, rec: &KeyRecord, manage: bool) -> bool {
    match caller.role {
        Some(Role::Admin) => true,
        Some(Role::Viewer) => !manage,
        Some(Role::TeamAdmin) => caller.team.is_some() && caller.team == rec.team,
        Some(Role::Member) => !manage && caller.owner.is_some() && caller.owner == rec.owner,
        None => false,
    }
}

fn view(rec: &KeyRecord) -> serde_json::Value {
    let mut v = serde_json::to_value(rec).unwrap_or_default();
    v["active"] = json!(rec.active(now_secs()));
    v
}

fn store_error(e: String) -> Response {
    tracing::error!(error = %e, "key store write failed");
    AdminError::StoreUnavailable("the key store is unavailable; nothing was changed".to_string()).into_response()
}

async fn persist(app: &Arc<App>, hash: Vec<u8>, rec: KeyRecord) -> Result<(), Response> {
    app.store.put_key(hash, rec).await.map_err(store_error)?;
    // Install the whole set from the store: the store is the truth.
    let keys = app.store.load_keys().await.map_err(store_error)?;
    app.live.shared().keys.install(keys);
    super::changes::publish(app, crate::distributed::bus::Change::Keys).await;
    Ok(())
}

fn valid_name(n: &str) -> bool {
    !n.is_empty() && n.len() <= 64 && n.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

pub async fn create(State(app): State<Arc<App>>, req: Request) -> Response {
    let caller = match require(&app, req.headers(), Permission::ManageKeys).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let mut c: CreateKey = match body(req, false).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    if !valid_name(&c.name) {
        return bad("`name` must be 1–64 characters of letters, digits, `-`, `_` or `.`");
    }
    if caller.role == Some(Role::TeamAdmin) {
        if caller.team.is_none() {
            return AdminError::Forbidden("a team admin without a team cannot create keys".to_string()).into_response();
        }
        // A team admin creates keys for its own team, without admin powers beyond its own.
        if c.team.is_some() && c.team != caller.team {
            return AdminError::Forbidden("a team admin can create keys only for its own team".to_string())
                .into_response();
        }
        c.team = caller.team.clone();
        if matches!(c.role, Some(Role::Admin | Role::Viewer)) {
            return AdminError::Forbidden("a team admin cannot grant this role".to_string()).into_response();
        }
    }
    let snap = app.live.snapshot();
    let name_taken = snap.auth.keys.values().any(|p| p.id == format!("key:{}", c.name))
        || app
            .store
            .load_keys()
            .await
            .unwrap_or_default()
            .iter()
            .any(|(_, r)| r.name == c.name && r.active(now_secs()));
    if name_taken {
        return AdminError::Conflict {
            code: "key_exists",
            message: format!("a key named `{}` already exists", c.name),
        }
        .into_response();
    }
    let expires_at = match c.expires_in.as_deref().map(Dur::parse).transpose() {
        Ok(d) => d.map(|d| now_secs() + d.as_secs()),
        Err(e) => return bad(format!("`expires_in`: {e}")),
    };
    let secret = generate_secret();
    let now = now_secs();
    let rec = KeyRecord {
        id: format!("vk_{}", hex::encode(crate::digest::os_random::<8>())),
        name: c.name,
        prefix: secret[..9].to_string(),
        owner: c.owner,
        team: c.team,
        models: c.models,
        tools: c.tools,
        agents: c.agents,
        metadata: c.metadata,
        role: c.role,
        created_at: now,
        expires_at,
        revoked_at: None,
        rotated_from: None,
    };
    let hash = app.live.shared().keys.hash(secret.as_bytes()).to_vec();
    if let Err(r) = persist(&app, hash, rec.clone()).await {
        return r;
    }
    app.live.shared().audit.record(&caller.id, "key.create", &rec.id, &format!("ok ({})", rec.name));
    let mut v = view(&rec);
    v["key"] = json!(secret);
    json_response(StatusCode::CREATED, v.to_string())
}

pub async fn list(State(app): State<Arc<App>>, req: Request) -> Response {
    let caller = match require(&app, req.headers(), Permission::ListKeys).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    match app.store.load_keys().await {
        Ok(keys) => {
            let mut data: Vec<_> = keys.iter().map(|(_, r)| r).filter(|r| may_touch(&caller, r, false)).collect();
            data.sort_by_key(|r| r.created_at);
            json_response(StatusCode::OK, json!({ "data": data.into_iter().map(view).collect::<Vec<_>>() }).to_string())
        }
        Err(e) => store_error(e),
    }
}

/// The key `id` if `caller` may see it (or, with `manage`, change it); a
/// key it may not touch is reported as missing, not as forbidden.
async fn find(app: &App, caller: &Principal, id: &str, manage: bool) -> Result<(Vec<u8>, KeyRecord), Response> {
    let keys = app.store.load_keys().await.map_err(store_error)?;
    keys.into_iter()
        .find(|(_, r)| r.id == id && may_touch(caller, r, manage))
        .ok_or_else(|| AdminError::NotFound(format!("no key with id `{id}`")).into_response())
}

pub async fn get_one(State(app): State<Arc<App>>, Path(id): Path<String>, req: Request) -> Response {
    let caller = match require(&app, req.headers(), Permission::ListKeys).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    match find(&app, &caller, &id, false).await {
        Ok((_, rec)) => json_response(StatusCode::OK, view(&rec).to_string()),
        Err(r) => r,
    }
}

pub async fn revoke(State(app): State<Arc<App>>, Path(id): Path<String>, req: Request) -> Response {
    let caller = match require(&app, req.headers(), Permission::ManageKeys).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let (hash, mut rec) = match find(&app, &caller, &id, true).await {
        Ok(found) => found,
        Err(r) => return r,
    };
    if rec.revoked_at.is_none() {
        rec.revoked_at = Some(now_secs());
        if let Err(r) = persist(&app, hash, rec.clone()).await {
            return r;
        }
        app.live.shared().audit.record(&caller.id, "key.revoke", &rec.id, &format!("ok ({})", rec.name));
    }
    json_response(StatusCode::OK, view(&rec).to_string())
}

pub async fn rotate(State(app): State<Arc<App>>, Path(id): Path<String>, req: Request) -> Response {
    let caller = match require(&app, req.headers(), Permission::ManageKeys).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let r: RotateKey = match body(req, true).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    let overlap = match r.overlap.as_deref().map(Dur::parse).transpose() {
        Ok(d) => d.unwrap_or_default(),
        Err(e) => return bad(format!("`overlap`: {e}")),
    };
    let (old_hash, mut old) = match find(&app, &caller, &id, true).await {
        Ok(found) => found,
        Err(r) => return r,
    };
    if !old.active(now_secs()) {
        return AdminError::Conflict {
            code: "key_inactive",
            message: "the key is revoked or expired; create a new one".to_string(),
        }
        .into_response();
    }
    let now = now_secs();
    let secret = generate_secret();
    let new = KeyRecord {
        id: format!("vk_{}", hex::encode(crate::digest::os_random::<8>())),
        prefix: secret[..9].to_string(),
        created_at: now,
        rotated_from: Some(old.id.clone()),
        ..old.clone()
    };
    // Key times are whole seconds: the end of the overlap is rounded up, so
    // the old secret never stops working before the overlap asked for.
    let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let until = (since_epoch + overlap).as_millis().div_ceil(1000) as u64;
    let overlap = overlap.as_secs();
    old.expires_at = Some(old.expires_at.map_or(until, |e| e.min(until)));
    let new_hash = app.live.shared().keys.hash(secret.as_bytes()).to_vec();
    if let Err(r) = persist(&app, new_hash, new.clone()).await {
        return r;
    }
    if let Err(r) = persist(&app, old_hash, old.clone()).await {
        return r;
    }
    app.live.shared().audit.record(
        &caller.id,
        "key.rotate",
        &old.id,
        &format!("ok (new {}, overlap {overlap}s)", new.id),
    );
    let mut v = view(&new);
    v["key"] = json!(secret);
    json_response(StatusCode::CREATED, v.to_string())
}
