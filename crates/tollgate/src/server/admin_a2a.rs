//! `/admin/a2a/agents`: every A2A agent with its health (whether its card
//! could be read, when, how fast) and what its card offers — interfaces,
//! skills, capabilities — as the upstream describes itself.

use std::sync::Arc;

use axum::extract::{Path, Query, Request, State};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde_json::{Value, json};

use super::admin::{Permission, require};
use super::admin_mcp::{ListParams, shown};
use super::{App, json_response};
use crate::a2a::Agents;
use crate::a2a::card::{Binding, Known};
use crate::a2a::registry::AgentDef;
use crate::error::AdminError;

fn agent_json(def: &AgentDef, known: Option<&Known>) -> Value {
    let health = match known {
        None => json!({ "status": "unknown" }),
        Some(k) => match &k.error {
            None => json!({ "status": "ok", "checked_ms": k.checked_at_ms, "latency_ms": k.latency_ms }),
            Some(e) => json!({ "status": "error", "error": e, "checked_ms": k.checked_at_ms }),
        },
    };
    let card = known.and_then(|k| k.card.as_deref());
    let interfaces: Vec<Value> = known
        .map(|k| {
            k.interfaces
                .iter()
                .map(|i| {
                    json!({
                        "url": shown(&i.url),
                        "binding": match i.binding {
                            Binding::JsonRpc => "JSONRPC",
                            Binding::Rest => "HTTP+JSON",
                            Binding::Grpc => "GRPC",
                            Binding::Other => "other",
                        },
                        "version": i.version,
                        "relayed": matches!(i.binding, Binding::JsonRpc | Binding::Rest),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let skills: Vec<Value> = card
        .and_then(|c| c.get("skills"))
        .and_then(Value::as_array)
        .map(|s| s.iter().map(|x| json!({ "id": x.get("id"), "name": x.get("name") })).collect())
        .unwrap_or_default();
    json!({
        "name": def.name,
        "url": shown(&def.url),
        "endpoint": format!("/a2a/{}", def.name),
        "auth": if def.headers.is_empty() { "none" } else { "static_header" },
        "guardrails": {
            "input": def.input.iter().map(|g| g.name.clone()).collect::<Vec<_>>(),
            "output": def.output.iter().map(|g| g.name.clone()).collect::<Vec<_>>(),
        },
        "health": health,
        "card": card.map(|c| json!({
            "name": c.get("name"),
            "description": c.get("description"),
            "version": c.get("version"),
            "capabilities": c.get("capabilities"),
        })),
        "interfaces": interfaces,
        "skills": skills,
    })
}

async fn read(app: &App, def: &AgentDef, refresh: bool) -> Option<Known> {
    let shared = app.live.shared();
    if refresh {
        Some(app.a2a.cards.refresh(&Agents::client(&shared), def).await)
    } else {
        app.a2a.cards.cached(def)
    }
}

pub async fn list(State(app): State<Arc<App>>, Query(q): Query<ListParams>, req: Request) -> Response {
    if let Err(r) = require(&app, req.headers(), Permission::ReadConfig).await {
        return r;
    }
    let snap = app.live.snapshot();
    let mut agents = Vec::new();
    for def in snap.a2a.agents.values() {
        let known = read(&app, def, q.refresh).await;
        agents.push(agent_json(def, known.as_ref()));
    }
    json_response(StatusCode::OK, json!({ "agents": agents }).to_string())
}

/// One agent, its card read now.
pub async fn one(State(app): State<Arc<App>>, Path(name): Path<String>, req: Request) -> Response {
    if let Err(r) = require(&app, req.headers(), Permission::ReadConfig).await {
        return r;
    }
    let snap = app.live.snapshot();
    let Some(def) = snap.a2a.agents.get(&name) else {
        return AdminError::UnknownRoute(format!("no A2A agent `{name}`")).into_response();
    };
    let known = read(&app, def, true).await;
    json_response(StatusCode::OK, agent_json(def, known.as_ref()).to_string())
}
