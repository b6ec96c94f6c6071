//! `/admin/mcp/servers`: every MCP server with its health and tool
//! inventory (definitions, hashes, pin standing), the virtual servers and
//! what they expose; and the approval that releases a quarantined tool.

use std::sync::Arc;

use axum::extract::{Path, Query, Request, State};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::admin::{Permission, require};
use super::{App, json_response};
use crate::error::AdminError;
use crate::mcp::registry::{Front, ServerDef};

#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
pub struct ListParams {
    /// Read every server's tools now instead of showing the last read.
    #[serde(default)]
    pub refresh: bool,
}

/// A URL as shown: without any userinfo it may carry.
pub(super) fn shown(target: &str) -> String {
    let Some((scheme, rest)) = target.split_once("://") else { return target.to_string() };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://{}", &rest[at + 1..]),
        None => target.to_string(),
    }
}

async fn server_json(app: &App, def: &Arc<ServerDef>, refresh: bool) -> Value {
    let shared = app.live.shared();
    let inv = if refresh { Some(app.mcp.refresh(&shared, def).await) } else { app.mcp.cached(&def.name) };
    let (transport, target) = def.describe();
    let tools: Vec<Value> = inv
        .iter()
        .flat_map(|i| i.tools.iter())
        .map(|t| {
            json!({
                "name": t.name,
                "sha256": t.hash,
                "standing": app.mcp.standing(def, t),
                "definition": t.definition,
            })
        })
        .collect();
    json!({
        "name": def.name,
        "transport": transport,
        "target": shown(&target),
        "pin_tools": def.pin_tools,
        "health": match &inv {
            None => json!({ "status": "unknown" }),
            Some(i) => match &i.error {
                None => json!({ "status": "ok", "checked_ms": i.checked_ms }),
                Some(e) => json!({ "status": "error", "error": e, "checked_ms": i.checked_ms }),
            },
        },
        "tools": tools,
    })
}

pub async fn list(State(app): State<Arc<App>>, Query(q): Query<ListParams>, req: Request) -> Response {
    if let Err(r) = require(&app, req.headers(), Permission::ReadConfig).await {
        return r;
    }
    let snap = app.live.snapshot();
    let mut servers = Vec::new();
    for def in snap.mcp.servers.values() {
        servers.push(server_json(&app, def, q.refresh).await);
    }
    let shared = app.live.shared();
    let mut virtuals = Vec::new();
    for v in snap.mcp.virtuals.values() {
        let tools = crate::mcp::catalog::tools(&app.mcp, &shared, &snap, Front::Virtual(v), q.refresh).await;
        let exposed: Vec<Value> =
            tools.iter().map(|e| json!({ "name": e.name, "tool": e.qualified(), "standing": e.standing })).collect();
        virtuals.push(json!({ "name": v.name, "servers": v.servers, "tools": exposed }));
    }
    let body = json!({ "servers": servers, "virtual_servers": virtuals, "sessions": app.mcp.sessions.count() });
    json_response(StatusCode::OK, body.to_string())
}

pub async fn one(State(app): State<Arc<App>>, Path(server): Path<String>, req: Request) -> Response {
    if let Err(r) = require(&app, req.headers(), Permission::ReadConfig).await {
        return r;
    }
    let snap = app.live.snapshot();
    let Some(def) = snap.mcp.servers.get(&server) else {
        return AdminError::UnknownRoute(format!("no MCP server `{server}`")).into_response();
    };
    json_response(StatusCode::OK, server_json(&app, def, true).await.to_string())
}

/// Pins the tool's current definition, releasing it from quarantine.
pub async fn approve(
    State(app): State<Arc<App>>,
    Path((server, tool)): Path<(String, String)>,
    req: Request,
) -> Response {
    let caller = match require(&app, req.headers(), Permission::ManageRules).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let snap = app.live.snapshot();
    let Some(def) = snap.mcp.servers.get(&server) else {
        return AdminError::UnknownRoute(format!("no MCP server `{server}`")).into_response();
    };
    let shared = app.live.shared();
    match app.mcp.approve(&shared, def, &tool, &caller.id).await {
        Ok(hash) => {
            app.mcp.sessions.notify_servers(&snap.mcp, &server, "notifications/tools/list_changed");
            super::changes::publish(&app, crate::distributed::bus::Change::McpApprovals).await;
            json_response(
                StatusCode::OK,
                json!({ "server": server, "tool": tool, "sha256": hash, "standing": "approved" }).to_string(),
            )
        }
        Err(e) => {
            let body = json!({ "error": { "message": e, "type": "invalid_request_error", "code": "not_found" } });
            json_response(StatusCode::NOT_FOUND, body.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn urls_are_shown_without_credentials() {
        assert_eq!(super::shown("https://user:pw@mcp.example.com/mcp"), "https://mcp.example.com/mcp");
        assert_eq!(super::shown("https://mcp.example.com/mcp?x=a@b"), "https://mcp.example.com/mcp?x=a@b");
        assert_eq!(super::shown("npx"), "npx");
    }
}
