//! Admin-plane routes: config view and reload, usage, virtual keys.
//! Callers need a credential with an admin role (the master key is an
//! admin); `allows` is the whole role table.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::StatusCode;
use serde_json::json;

use super::{App, json_response};
use crate::config::reload::Outcome;
use crate::error::{AdminError, AuthError, GatewayError};
use crate::identity::Principal;
use crate::identity::Role;
use crate::identity::authenticate;

pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/health", get(|| async { json_response(StatusCode::OK, r#"{"status":"ok"}"#) }))
        .route("/admin/config", get(config))
        .route("/admin/openapi.json", get(super::openapi::document))
        .route("/admin/ui/settings", get(super::ui::settings))
        .route("/admin/config/reload", post(reload))
        .route("/admin/usage", get(usage))
        .route("/metrics", get(metrics))
        .route("/admin/logs", get(super::admin_logs::search))
        .route("/admin/logs/{id}", get(super::admin_logs::one))
        .route("/admin/usage/report", get(super::admin_logs::report))
        .route("/admin/keys", get(super::admin_keys::list).post(super::admin_keys::create))
        .route("/admin/keys/{id}", get(super::admin_keys::get_one).delete(super::admin_keys::revoke))
        .route("/admin/keys/{id}/rotate", post(super::admin_keys::rotate))
        .route("/admin/mcp/servers", get(super::admin_mcp::list))
        .route("/admin/mcp/servers/{server}", get(super::admin_mcp::one))
        .route("/admin/mcp/servers/{server}/tools/{tool}/approve", post(super::admin_mcp::approve))
        .route("/admin/a2a/agents", get(super::admin_a2a::list))
        .route("/admin/a2a/agents/{name}", get(super::admin_a2a::one))
        .route("/admin/prompts", get(super::admin_prompts::list))
        .route("/admin/prompts/{id}", get(super::admin_prompts::one))
        .route("/admin/prompts/{id}/versions", post(super::admin_prompts::create_version))
        .route("/admin/prompts/{id}/versions/{version}", get(super::admin_prompts::get_version))
        .route("/admin/prompts/{id}/diff", get(super::admin_prompts::diff))
        .route("/admin/prompts/{id}/labels/{label}", axum::routing::put(super::admin_prompts::set_label))
        .route("/admin/{kind}", get(super::admin_overlays::list))
        .route(
            "/admin/{kind}/{id}",
            axum::routing::put(super::admin_overlays::put).delete(super::admin_overlays::delete),
        )
        .merge(super::ui::routes())
        .fallback(|| async { AdminError::UnknownRoute("no such admin route".to_string()).into_response() })
        .with_state(app)
}

/// What an admin route does, for the role check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    ReadConfig,
    Reload,
    ReadUsage,
    /// List keys (a team admin sees its team's, a member its own).
    ListKeys,
    /// Create, revoke, rotate keys (a team admin: its team's only).
    ManageKeys,
    /// Add, change or remove rate limits, budgets and team allowlists.
    ManageRules,
    /// Create prompt template versions and move their labels.
    ManagePrompts,
}

/// Which roles may do what. Data-plane keys (no role) may do nothing here.
pub fn allows(role: Role, p: Permission) -> bool {
    use Permission::*;
    match role {
        Role::Admin => true,
        Role::TeamAdmin => matches!(p, ReadUsage | ListKeys | ManageKeys),
        Role::Viewer => matches!(p, ReadConfig | ReadUsage | ListKeys),
        Role::Member => matches!(p, ListKeys),
    }
}

/// The caller, if its credential is valid and its role allows `p`.
pub async fn require(app: &App, headers: &http::HeaderMap, p: Permission) -> Result<Arc<Principal>, Response> {
    let snap = app.live.snapshot();
    let shared = app.live.shared();
    let principal = match authenticate::admin(&snap.auth, &shared.keys, headers).await {
        Ok(p) => p,
        Err(e) => {
            shared.audit.record("-", "admin.refused", &format!("{p:?}"), &e.to_string());
            return Err(GatewayError::from(e).into_response());
        }
    };
    match principal.role {
        Some(role) if allows(role, p) => Ok(principal),
        _ => {
            shared.audit.record(&principal.id, "admin.refused", &format!("{p:?}"), "role does not allow it");
            Err(GatewayError::from(AuthError::Forbidden(format!("{p:?}"))).into_response())
        }
    }
}

/// What is running, without a single secret: versions, providers, models.
async fn config(State(app): State<Arc<App>>, req: Request) -> Response {
    if let Err(r) = require(&app, req.headers(), Permission::ReadConfig).await {
        return r;
    }
    let s = app.live.snapshot();
    let providers: Vec<_> = s
        .models
        .providers
        .iter()
        .map(|p| json!({ "name": p.name, "type": p.type_label(), "any_model": p.any_model }))
        .collect();
    let body = json!({
        "version": s.version, "digest": s.digest, "origin": s.origin,
        "listen": s.server.listen.to_string(), "admin_listen": s.server.admin_listen.to_string(),
        "providers": providers, "models": s.models.listed, "keys": s.auth.keys.len(),
        "warnings": s.warnings,
        // Addresses only: the URLs may carry passwords.
        "distributed": s.distributed.as_ref().map(|d| json!({
            "instance_id": d.instance_id, "namespace": d.namespace,
            "redis": d.redis_display(), "nats": d.nats_display(),
            "lease": d.lease, "sync_interval_ms": d.sync_interval.as_millis() as u64, "fail_closed": d.fail_closed,
        })),
    });
    json_response(StatusCode::OK, body.to_string())
}

/// Prometheus text format; needs a credential that may read usage.
async fn metrics(State(app): State<Arc<App>>, req: Request) -> Response {
    if let Err(r) = require(&app, req.headers(), Permission::ReadUsage).await {
        return r;
    }
    let shared = app.live.shared();
    let m = &shared.metrics;
    m.config_version.set(app.live.snapshot().version as i64);
    m.events_dropped.set(shared.events.dropped() as i64);
    m.log_spooled.set(shared.reqlog.spooled.load(std::sync::atomic::Ordering::Relaxed) as i64);
    m.log_dropped.set(shared.reqlog.dropped.load(std::sync::atomic::Ordering::Relaxed) as i64);
    if let Some(c) = &app.cluster {
        use std::sync::atomic::Ordering::Relaxed;
        m.redis_up.set(i64::from(!c.cells.degraded()));
        m.nats_up.set(i64::from(c.bus.connected()));
        m.redis_sync_failures.set(c.cells.failures.load(Relaxed) as i64);
        m.changes_received.set(c.bus.received.load(Relaxed) as i64);
    }
    m.audit_dropped.set(shared.audit.dropped() as i64);
    for (vm, target, state) in shared.health.states() {
        let open = i64::from(state != crate::routing::health::CircuitState::Closed);
        m.circuit_open.get_or_create(&crate::metrics::CircuitLabels { virtual_model: vm, target }).set(open);
    }
    let mut r = Response::new(axum::body::Body::from(m.encode()));
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    r
}

/// Every rate-limit counter and budget account now, and recent budget events.
async fn usage(State(app): State<Arc<App>>, req: Request) -> Response {
    let caller = match require(&app, req.headers(), Permission::ReadUsage).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    // A team admin sees the counters and accounts keyed by its own team only.
    let own_team = (caller.role == Some(Role::TeamAdmin)).then(|| caller.team.clone().unwrap_or_default());
    let visible = |key: &str| own_team.as_ref().is_none_or(|t| !t.is_empty() && key.split('|').skip(1).any(|v| v == t));
    let shared = app.live.shared();
    let snap = app.live.snapshot();
    let counters: Vec<_> = shared
        .counters
        .snapshot()
        .into_iter()
        .filter(|(key, _)| visible(key))
        .map(|(key, used)| {
            // The rule's limit beside the count, so a reader sees the headroom.
            let rule = snap.rate_limits.iter().find(|r| key.split('|').next() == Some(&*r.key_prefix));
            json!({ "key": key, "used": used, "limit": rule.map(|r| r.limit) })
        })
        .collect();
    let accounts: Vec<_> = shared
        .ledger
        .export()
        .into_iter()
        .filter(|a| visible(&a.key))
        .map(|a| {
            let rule = snap.budgets.iter().find(|b| a.key.split('|').next() == Some(&*b.key_prefix));
            let cost = rule.is_none_or(|r| r.measure == crate::budgets::Measure::Cost);
            let (spent, reserved, limit) = if cost {
                (
                    json!(crate::pricing::nanos_to_usd(a.spent)),
                    json!(crate::pricing::nanos_to_usd(a.reserved)),
                    rule.map(|r| json!(crate::pricing::nanos_to_usd(r.limit))),
                )
            } else {
                (json!(a.spent), json!(a.reserved), rule.map(|r| json!(r.limit)))
            };
            json!({
                "key": crate::matching::describe_key(&a.key), "unit": if cost { "usd" } else { "tokens" },
                "spent": spent, "reserved": reserved, "limit": limit, "period": a.period,
            })
        })
        .collect();
    let events: Vec<_> = shared
        .ledger
        .events()
        .into_iter()
        .filter(|e| visible(&e.key))
        .map(|e| json!({ "kind": e.kind, "rule": e.rule, "key": e.key, "threshold": e.threshold, "at": e.unix_secs }))
        .collect();
    json_response(StatusCode::OK, json!({ "rate_limits": counters, "budgets": accounts, "events": events }).to_string())
}

async fn reload(State(app): State<Arc<App>>, req: Request) -> Response {
    let caller = match require(&app, req.headers(), Permission::Reload).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let live = app.live.clone();
    match tokio::task::spawn_blocking(move || live.reload_as(&caller.id, "admin api", false)).await {
        Ok(Ok(Outcome::Applied { version, digest })) => {
            // Every instance reloads its own copy of the file (one ConfigMap).
            super::changes::publish(&app, crate::distributed::bus::Change::ConfigReload).await;
            json_response(
                StatusCode::OK,
                json!({ "status": "applied", "version": version, "digest": digest }).to_string(),
            )
        }
        Ok(Ok(Outcome::Unchanged { version })) => {
            json_response(StatusCode::OK, json!({ "status": "unchanged", "version": version }).to_string())
        }
        Ok(Err(errors)) => {
            let list: Vec<String> = errors.to_string().lines().map(str::to_string).collect();
            let body = json!({
                "error": {
                    "message": format!("the new config was rejected; the previous one keeps serving:\n{errors}"),
                    "type": "invalid_request_error", "param": null, "code": "invalid_config"
                },
                "errors": list,
            });
            json_response(StatusCode::UNPROCESSABLE_ENTITY, body.to_string())
        }
        Err(_) => AdminError::ReloadFailed("reload task failed".to_string()).into_response(),
    }
}
