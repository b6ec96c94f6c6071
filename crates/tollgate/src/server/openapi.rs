//! `GET /admin/openapi.json`: an OpenAPI 3.1 description of the admin API.
//!
//! Kept from drifting three ways: request bodies and query parameters are
//! the JSON Schemas of the very types the handlers deserialize (schemars,
//! as for `config.schema.json`); each operation names the `Permission` its
//! handler checks; and a test reads the admin router and fails when a route
//! or a method is missing here, or listed here and not routed. The answers'
//! shapes are written out below, because the handlers build them with
//! `json!`; the SDK suite validates the document and checks live answers
//! against them. Another test checks each operation's permission against
//! the one its handler asks `require` for.

use std::sync::{Arc, OnceLock};

use axum::extract::State;
use axum::response::Response;
use http::StatusCode;
use schemars::JsonSchema;
use schemars::generate::{SchemaGenerator, SchemaSettings};
use serde_json::{Map, Value, json};

use super::admin::Permission;
use super::{App, json_response};
use crate::config::file::{AccessSection, BudgetSection, RateLimitSection, UserSection};
use crate::config::file_prompts::PromptVersionSection;

/// Makes a JSON Schema, registering the definitions it refers to.
type MakeSchema = fn(&mut SchemaGenerator) -> Value;

/// One admin operation.
struct Op {
    method: &'static str,
    path: &'static str,
    summary: &'static str,
    tag: &'static str,
    /// `None`: no credential needed.
    permission: Option<Permission>,
    /// The query parameters: a type's fields, less those that do not apply.
    query: Option<(MakeSchema, &'static [&'static str])>,
    body: Option<MakeSchema>,
    /// The success status, its media types and the answer's JSON shape
    /// (any other media type is text).
    ok: (u16, &'static [&'static str], fn() -> Value),
}

fn schema<T: JsonSchema>(g: &mut SchemaGenerator) -> Value {
    g.subschema_for::<T>().to_value()
}

const JSON: &str = "application/json";

/// Every admin route. A new route is added here too; the test says so.
const OPS: &[Op] = &[
    Op {
        method: "get",
        path: "/health",
        summary: "Liveness of the admin listener.",
        tag: "meta",
        permission: None,
        query: None,
        body: None,
        ok: (200, &[JSON], status_ok),
    },
    Op {
        method: "get",
        path: "/admin/openapi.json",
        summary: "This document.",
        tag: "meta",
        permission: None,
        query: None,
        body: None,
        ok: (200, &[JSON], any_object),
    },
    Op {
        method: "get",
        path: "/admin/ui/settings",
        summary: "The caller (subject, role, team) and the data plane's URL as the browser reaches it; for the console.",
        tag: "meta",
        permission: Some(Permission::ListKeys),
        query: None,
        body: None,
        ok: (200, &[JSON], ui_settings),
    },
    Op {
        method: "get",
        path: "/admin/config",
        summary: "The running config without secrets: version, digest, providers, models, warnings.",
        tag: "config",
        permission: Some(Permission::ReadConfig),
        query: None,
        body: None,
        ok: (200, &[JSON], config),
    },
    Op {
        method: "post",
        path: "/admin/config/reload",
        summary: "Reload the config file now; 422 with `errors` when it does not load.",
        tag: "config",
        permission: Some(Permission::Reload),
        query: None,
        body: None,
        ok: (200, &[JSON], reload),
    },
    Op {
        method: "get",
        path: "/admin/usage",
        summary: "Rate-limit counters, budget accounts and recent budget events (a team admin: its team's).",
        tag: "usage",
        permission: Some(Permission::ReadUsage),
        query: None,
        body: None,
        ok: (200, &[JSON], usage),
    },
    Op {
        method: "get",
        path: "/metrics",
        summary: "Prometheus metrics (OpenMetrics text).",
        tag: "usage",
        permission: Some(Permission::ReadUsage),
        query: None,
        body: None,
        ok: (200, &["application/openmetrics-text"], text),
    },
    Op {
        method: "get",
        path: "/admin/logs",
        summary: "Search the request log, newest first.",
        tag: "logs",
        permission: Some(Permission::ReadUsage),
        query: Some((schema::<super::admin_logs::Params>, &["group_by", "format"])),
        body: None,
        ok: (200, &[JSON], log_list),
    },
    Op {
        method: "get",
        path: "/admin/logs/{id}",
        summary: "One logged request in full.",
        tag: "logs",
        permission: Some(Permission::ReadUsage),
        query: None,
        body: None,
        ok: (200, &[JSON], log_entry),
    },
    Op {
        method: "get",
        path: "/admin/usage/report",
        summary: "Requests, tokens and cost from the request log, grouped; JSON or CSV (`format=csv`).",
        tag: "usage",
        permission: Some(Permission::ReadUsage),
        query: Some((schema::<super::admin_logs::Params>, &["limit", "parent"])),
        body: None,
        ok: (200, &[JSON, "text/csv"], report),
    },
    Op {
        method: "get",
        path: "/admin/keys",
        summary: "Virtual keys the caller may see, oldest first.",
        tag: "keys",
        permission: Some(Permission::ListKeys),
        query: None,
        body: None,
        ok: (200, &[JSON], key_list),
    },
    Op {
        method: "post",
        path: "/admin/keys",
        summary: "Create a virtual key; its secret (`key`) is in this answer only.",
        tag: "keys",
        permission: Some(Permission::ManageKeys),
        query: None,
        body: Some(schema::<super::admin_keys::CreateKey>),
        ok: (201, &[JSON], key_with_secret),
    },
    Op {
        method: "get",
        path: "/admin/keys/{id}",
        summary: "One virtual key.",
        tag: "keys",
        permission: Some(Permission::ListKeys),
        query: None,
        body: None,
        ok: (200, &[JSON], key_record),
    },
    Op {
        method: "delete",
        path: "/admin/keys/{id}",
        summary: "Revoke a virtual key.",
        tag: "keys",
        permission: Some(Permission::ManageKeys),
        query: None,
        body: None,
        ok: (200, &[JSON], key_record),
    },
    Op {
        method: "post",
        path: "/admin/keys/{id}/rotate",
        summary: "A new key with a new secret; the old one works for `overlap`.",
        tag: "keys",
        permission: Some(Permission::ManageKeys),
        query: None,
        body: Some(schema::<super::admin_keys::RotateKey>),
        ok: (201, &[JSON], key_with_secret),
    },
    Op {
        method: "get",
        path: "/admin/mcp/servers",
        summary: "MCP servers: transport, health, tools and their pin standing; virtual servers; sessions.",
        tag: "mcp",
        permission: Some(Permission::ReadConfig),
        query: Some((schema::<super::admin_mcp::ListParams>, &[])),
        body: None,
        ok: (200, &[JSON], mcp_servers),
    },
    Op {
        method: "get",
        path: "/admin/mcp/servers/{server}",
        summary: "One MCP server, its tools read now.",
        tag: "mcp",
        permission: Some(Permission::ReadConfig),
        query: None,
        body: None,
        ok: (200, &[JSON], any_object),
    },
    Op {
        method: "post",
        path: "/admin/mcp/servers/{server}/tools/{tool}/approve",
        summary: "Pin a tool's current definition (release it from quarantine).",
        tag: "mcp",
        permission: Some(Permission::ManageRules),
        query: None,
        body: None,
        ok: (200, &[JSON], approved),
    },
    Op {
        method: "get",
        path: "/admin/a2a/agents",
        summary: "A2A agents: card health and summary, interfaces, skills, guardrails.",
        tag: "a2a",
        permission: Some(Permission::ReadConfig),
        query: Some((schema::<super::admin_mcp::ListParams>, &[])),
        body: None,
        ok: (200, &[JSON], a2a_agents),
    },
    Op {
        method: "get",
        path: "/admin/a2a/agents/{name}",
        summary: "One A2A agent, its card read now.",
        tag: "a2a",
        permission: Some(Permission::ReadConfig),
        query: None,
        body: None,
        ok: (200, &[JSON], any_object),
    },
    Op {
        method: "get",
        path: "/admin/prompts",
        summary: "Prompt templates: ids, versions, labels.",
        tag: "prompts",
        permission: Some(Permission::ReadConfig),
        query: None,
        body: None,
        ok: (200, &[JSON], any_object),
    },
    Op {
        method: "get",
        path: "/admin/prompts/{id}",
        summary: "One prompt template and its versions.",
        tag: "prompts",
        permission: Some(Permission::ReadConfig),
        query: None,
        body: None,
        ok: (200, &[JSON], any_object),
    },
    Op {
        method: "post",
        path: "/admin/prompts/{id}/versions",
        summary: "Add the next version of a prompt template.",
        tag: "prompts",
        permission: Some(Permission::ManagePrompts),
        query: None,
        body: Some(prompt_version),
        ok: (201, &[JSON], any_object),
    },
    Op {
        method: "get",
        path: "/admin/prompts/{id}/versions/{version}",
        summary: "One version of a prompt template, by number or label.",
        tag: "prompts",
        permission: Some(Permission::ReadConfig),
        query: None,
        body: None,
        ok: (200, &[JSON], any_object),
    },
    Op {
        method: "get",
        path: "/admin/prompts/{id}/diff",
        summary: "The line diff between two versions: `?from=2&to=3` (numbers or labels).",
        tag: "prompts",
        permission: Some(Permission::ReadConfig),
        query: None,
        body: None,
        ok: (200, &[JSON], any_object),
    },
    Op {
        method: "put",
        path: "/admin/prompts/{id}/labels/{label}",
        summary: "Point a label at a version: `{\"version\": 3}`.",
        tag: "prompts",
        permission: Some(Permission::ManagePrompts),
        query: None,
        body: Some(
            |_| json!({ "type": "object", "required": ["version"], "properties": { "version": { "type": "integer", "minimum": 1 } } }),
        ),
        ok: (200, &[JSON], any_object),
    },
    Op {
        method: "get",
        path: "/admin/{kind}",
        summary: "Ids in force and the entries added through the API; `kind`: rate_limits, budgets, teams, users.",
        tag: "overlays",
        permission: Some(Permission::ReadConfig),
        query: None,
        body: None,
        ok: (200, &[JSON], overlay_list),
    },
    Op {
        method: "put",
        path: "/admin/{kind}/{id}",
        summary: "Add or replace an entry, checked as the config file is; 422 with `errors` when it would not load.",
        tag: "overlays",
        permission: Some(Permission::ManageRules),
        query: None,
        body: Some(overlay_body),
        ok: (200, &[JSON], overlay_change),
    },
    Op {
        method: "delete",
        path: "/admin/{kind}/{id}",
        summary: "Remove an entry added through the API.",
        tag: "overlays",
        permission: Some(Permission::ManageRules),
        query: None,
        body: None,
        ok: (200, &[JSON], overlay_change),
    },
];

// === answer shapes ===

fn any_object() -> Value {
    json!({ "type": "object" })
}

fn text() -> Value {
    json!({ "type": "string" })
}

fn status_ok() -> Value {
    json!({ "type": "object", "required": ["status"], "properties": { "status": { "const": "ok" } } })
}

fn strings() -> Value {
    json!({ "type": "array", "items": { "type": "string" } })
}

fn ui_settings() -> Value {
    json!({
        "type": "object",
        "required": ["subject", "role", "data_url", "config_version", "version"],
        "properties": {
            "subject": { "type": "string", "description": "The caller's principal id." },
            "role": { "enum": ["admin", "team_admin", "viewer", "member"] },
            "team": { "type": ["string", "null"] },
            "data_url": { "type": "string", "description": "The data plane's base URL, e.g. http://127.0.0.1:4000." },
            "config_version": { "type": "integer" },
            "version": { "type": "string", "description": "tollgate's version." }
        }
    })
}

fn config() -> Value {
    json!({
        "type": "object",
        "required": ["version", "digest", "origin", "listen", "admin_listen", "providers", "models", "keys", "warnings"],
        "properties": {
            "version": { "type": "integer" }, "digest": { "type": "string" }, "origin": { "type": "string" },
            "listen": { "type": "string" }, "admin_listen": { "type": "string" },
            "providers": { "type": "array", "items": { "type": "object", "required": ["name", "type", "any_model"],
                "properties": { "name": { "type": "string" }, "type": { "type": "string" }, "any_model": { "type": "boolean" } } } },
            "models": strings(), "keys": { "type": "integer" }, "warnings": strings(),
            "distributed": { "type": ["object", "null"], "description": "Distributed mode's settings (addresses without passwords), when on." }
        }
    })
}

fn reload() -> Value {
    json!({
        "type": "object", "required": ["status", "version"],
        "properties": { "status": { "enum": ["applied", "unchanged"] }, "version": { "type": "integer" }, "digest": { "type": "string" } }
    })
}

fn usage() -> Value {
    json!({
        "type": "object", "required": ["rate_limits", "budgets", "events"],
        "properties": {
            "rate_limits": { "type": "array", "items": { "type": "object", "required": ["key", "used"],
                "properties": { "key": { "type": "string" }, "used": { "type": "integer" }, "limit": { "type": ["integer", "null"] } } } },
            "budgets": { "type": "array", "items": { "type": "object", "required": ["key", "unit", "spent", "reserved", "period"],
                "properties": { "key": { "type": "string" }, "unit": { "enum": ["usd", "tokens"] }, "spent": { "type": "number" },
                    "reserved": { "type": "number" }, "limit": { "type": ["number", "null"] }, "period": { "type": "integer" } } } },
            "events": { "type": "array", "items": { "type": "object" } }
        }
    })
}

fn log_entry() -> Value {
    json!({
        "type": "object",
        "description": "One request log entry; every field is described in docs/observability.md.",
        "required": ["id", "kind", "time", "subject", "status", "total_ms", "attempts", "config_version"],
        "properties": {
            "id": { "type": "string" }, "kind": { "enum": ["model", "mcp", "a2a"] },
            "time": { "type": "integer", "description": "Unix milliseconds." }, "subject": { "type": "string" },
            "metadata": { "type": "object", "additionalProperties": { "type": "string" } },
            "requested_model": { "type": "string" }, "resolved_model": { "type": ["string", "null"] },
            "provider": { "type": ["string", "null"] }, "status": { "type": "integer" }, "error": { "type": ["string", "null"] },
            "prompt_tokens": { "type": "integer" }, "completion_tokens": { "type": "integer" },
            "cost_nanos": { "type": "integer" }, "total_ms": { "type": "number" }, "upstream_ms": { "type": "number" },
            "attempts": { "type": "array", "items": { "type": "object", "required": ["target", "outcome"] } },
            "config_version": { "type": "integer" }
        }
    })
}

fn log_list() -> Value {
    json!({ "type": "object", "required": ["data"], "properties": { "data": { "type": "array", "items": log_entry() } } })
}

fn report() -> Value {
    json!({
        "type": "object", "required": ["from", "to", "group_by", "rows"],
        "properties": {
            "from": { "type": "integer" }, "to": { "type": "integer" }, "group_by": strings(),
            "rows": { "type": "array", "items": { "type": "object", "required": ["group", "requests", "prompt_tokens", "completion_tokens", "cost_usd"],
                "properties": { "group": { "type": "object", "additionalProperties": { "type": "string" } }, "requests": { "type": "integer" },
                    "prompt_tokens": { "type": "integer" }, "completion_tokens": { "type": "integer" }, "cost_usd": { "type": "number" } } } }
        }
    })
}

fn key_record() -> Value {
    json!({
        "type": "object",
        "required": ["id", "name", "prefix", "active", "created_at"],
        "not": { "required": ["key"] },
        "properties": {
            "id": { "type": "string" }, "name": { "type": "string" }, "prefix": { "type": "string" },
            "active": { "type": "boolean" }, "created_at": { "type": "integer" },
            "expires_at": { "type": ["integer", "null"] }, "revoked_at": { "type": ["integer", "null"] },
            "team": { "type": ["string", "null"] }, "owner": { "type": ["string", "null"] },
            "role": { "type": ["string", "null"] }, "rotated_from": { "type": ["string", "null"] },
            "metadata": { "type": "object" }, "models": { "type": ["array", "null"] }
        }
    })
}

fn key_with_secret() -> Value {
    let mut v = key_record();
    if let Some(o) = v.as_object_mut() {
        o.remove("not");
    }
    v["required"] = json!(["id", "name", "prefix", "active", "created_at", "key"]);
    v["properties"]["key"] = json!({ "type": "string", "description": "The secret, shown in this answer only." });
    v
}

fn key_list() -> Value {
    json!({ "type": "object", "required": ["data"], "properties": { "data": { "type": "array", "items": key_record() } } })
}

fn mcp_servers() -> Value {
    json!({
        "type": "object", "required": ["servers"],
        "properties": {
            "servers": { "type": "array", "items": { "type": "object", "required": ["name", "health", "tools"],
                "properties": { "name": { "type": "string" }, "health": { "type": "object" },
                    "tools": { "type": "array", "items": { "type": "object", "required": ["name", "standing"],
                        "properties": { "name": { "type": "string" }, "standing": { "enum": ["approved", "changed", "pending"] } } } } } } },
            "virtual_servers": { "type": "array" }, "sessions": { "type": "integer" }
        }
    })
}

fn approved() -> Value {
    json!({ "type": "object", "required": ["server", "tool", "sha256", "standing"], "properties": { "standing": { "const": "approved" } } })
}

fn a2a_agents() -> Value {
    json!({ "type": "object", "required": ["agents"], "properties": { "agents": { "type": "array", "items": { "type": "object" } } } })
}

fn overlay_list() -> Value {
    json!({ "type": "object", "required": ["active", "overlays"], "properties": { "active": strings(), "overlays": { "type": "array" } } })
}

fn overlay_change() -> Value {
    json!({ "type": "object", "required": ["status", "config_version"],
        "properties": { "status": { "enum": ["applied", "removed"] }, "config_version": { "type": "integer" } } })
}

/// The body of `POST /admin/prompts/{id}/versions`: a version as the config
/// file writes it, where `version` may be left out (the next number is taken).
fn prompt_version(g: &mut SchemaGenerator) -> Value {
    let mut s = resolve(&schema::<PromptVersionSection>(g), g);
    if let Some(required) = s.get_mut("required").and_then(Value::as_array_mut) {
        required.retain(|r| r != "version");
    }
    s
}

/// The body of `PUT /admin/{kind}/{id}`: the config file's entry of that kind.
fn overlay_body(g: &mut SchemaGenerator) -> Value {
    json!({ "oneOf": [
        { "title": "rate_limits", "allOf": [schema::<RateLimitSection>(g)] },
        { "title": "budgets", "allOf": [schema::<BudgetSection>(g)] },
        { "title": "teams", "allOf": [schema::<AccessSection>(g)] },
        { "title": "users", "allOf": [schema::<UserSection>(g)] },
    ] })
}

// === the document ===

fn error_schema() -> Value {
    json!({
        "type": "object", "required": ["error"],
        "properties": { "error": { "type": "object", "required": ["message", "type", "code"], "properties": {
            "message": { "type": "string" }, "type": { "type": "string" }, "param": { "type": ["string", "null"] },
            "code": { "type": ["string", "null"] } } },
            "errors": strings() }
    })
}

fn operation(op: &Op, g: &mut SchemaGenerator) -> Value {
    let mut params: Vec<Value> = path_params(op.path)
        .map(|name| {
            let s = if name == "kind" {
                json!({ "enum": ["rate_limits", "budgets", "teams", "users"] })
            } else {
                json!({ "type": "string" })
            };
            json!({ "name": name, "in": "path", "required": true, "schema": s })
        })
        .collect();
    if let Some((query, skip)) = op.query {
        let s = query(g);
        let resolved = resolve(&s, g);
        if let Some(props) = resolved.get("properties").and_then(Value::as_object) {
            for (name, p) in props.iter().filter(|(n, _)| !skip.contains(&n.as_str())) {
                let mut p = p.clone();
                let description = p.as_object_mut().and_then(|o| o.remove("description"));
                let mut param = json!({ "name": name, "in": "query", "required": false, "schema": p });
                if let Some(d) = description {
                    param["description"] = d;
                }
                params.push(param);
            }
        }
    }
    let (status, media, shape) = op.ok;
    let content: Map<String, Value> =
        media.iter().map(|m| (m.to_string(), json!({ "schema": if *m == JSON { shape() } else { text() } }))).collect();
    let mut responses = Map::new();
    responses.insert(status.to_string(), json!({ "description": "Success.", "content": content }));
    let error = |d: &str| json!({ "description": d, "content": { JSON: { "schema": { "$ref": "#/components/schemas/Error" } } } });
    responses.insert("4XX".into(), error("Refused: bad input (400), no or unknown credential (401), role (403), not found (404), conflict (409), config does not load (422)."));
    responses.insert("5XX".into(), error("The store or the reload failed (500, 503)."));
    let mut o = json!({
        "operationId": operation_id(op),
        "summary": op.summary,
        "tags": [op.tag],
        "parameters": params,
        "responses": responses,
    });
    match op.permission {
        Some(p) => {
            o["security"] = json!([{ "bearer": [] }, { "apiKey": [] }]);
            o["x-permission"] = json!(format!("{p:?}"));
        }
        None => o["security"] = json!([]),
    }
    if let Some(body) = op.body {
        o["requestBody"] = json!({ "required": op.method == "put", "content": { JSON: { "schema": body(g) } } });
    }
    o
}

/// A schema that may be a `$ref` into the generator's definitions.
fn resolve(s: &Value, g: &mut SchemaGenerator) -> Value {
    match s.get("$ref").and_then(Value::as_str).and_then(|r| r.rsplit('/').next()) {
        Some(name) => g.definitions().get(name).cloned().unwrap_or(Value::Null),
        None => s.clone(),
    }
}

fn path_params(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
}

/// `post /admin/keys/{id}/rotate` → `post_admin_keys_id_rotate`.
fn operation_id(op: &Op) -> String {
    let segs: Vec<String> = op
        .path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| {
            let s: String = s.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
            s.trim_matches('_').to_string()
        })
        .collect();
    format!("{}_{}", op.method, segs.join("_"))
}

/// The whole document.
pub fn build() -> Value {
    let mut g = SchemaSettings::draft2020_12()
        .with(|s| {
            s.definitions_path = "/components/schemas".into();
        })
        .into_generator();
    let mut paths = Map::new();
    for op in OPS {
        let item = paths.entry(op.path).or_insert_with(|| json!({}));
        item[op.method] = operation(op, &mut g);
    }
    let mut schemas = g.take_definitions(true);
    let tags: Vec<Value> = ["meta", "config", "usage", "logs", "keys", "mcp", "a2a", "prompts", "overlays"]
        .into_iter()
        .map(|t| json!({ "name": t }))
        .collect();
    schemas.insert("Error".into(), error_schema());
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "tollgate admin API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The admin plane of tollgate (docs/admin-api.md). Every route but /health, /admin/openapi.json and the console's files needs a credential with an admin role; `x-permission` names what the caller's role must allow.",
        },
        "servers": [{ "url": "/" }],
        "tags": tags,
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": { "type": "http", "scheme": "bearer", "description": "The master key, a virtual key with a role, or a JWT." },
                "apiKey": { "type": "apiKey", "in": "header", "name": "x-api-key" }
            }
        }
    })
}

/// Built once: it depends on nothing but the code.
pub async fn document(State(_app): State<Arc<App>>) -> Response {
    static DOC: OnceLock<String> = OnceLock::new();
    json_response(StatusCode::OK, DOC.get_or_init(|| build().to_string()).clone())
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use super::*;

    /// Where the text opened by an already-consumed `(` closes.
    fn closing(s: &str) -> usize {
        let mut depth = 1;
        s.char_indices()
            .find(|&(_, c)| {
                depth += match c {
                    '(' => 1,
                    ')' => -1,
                    _ => 0,
                };
                depth == 0
            })
            .map_or(s.len(), |(i, _)| i)
    }

    /// `(method, path)` → handler of every route the admin router declares,
    /// read from its source: `.route("<path>", get(handler).post(handler))`.
    fn routed(src: &str) -> BTreeMap<(String, String), String> {
        let start = src.find("pub fn router(").expect("admin::router");
        let end = start + src[start..].find(".fallback(").expect("the router's fallback");
        let body = &src[start..end];
        for (i, _) in body.match_indices(".merge(") {
            assert!(
                body[i..].starts_with(".merge(super::ui::routes())"),
                "the admin router merges a router the OpenAPI test cannot read: list its routes in server/openapi.rs \
                 and teach this test about it"
            );
        }
        let mut out = BTreeMap::new();
        let mut rest = body;
        while let Some(i) = rest.find(".route(") {
            rest = &rest[i + ".route(".len()..];
            let call = &rest[..closing(rest)];
            let path = call.split('"').nth(1).expect("a route's path literal");
            let mut found = false;
            for m in ["get", "post", "put", "delete", "patch"] {
                // `get(`, `.post(`, `axum::routing::put(`: a method name not
                // preceded by part of another identifier (`json_response(`).
                for (j, _) in call.match_indices(&format!("{m}(")) {
                    let before = call.as_bytes()[j - 1];
                    if before.is_ascii_alphanumeric() || before == b'_' {
                        continue;
                    }
                    let arg = &call[j + m.len() + 1..];
                    out.insert((m.to_string(), path.to_string()), arg[..closing(arg)].trim().to_string());
                    found = true;
                }
            }
            assert!(found, "no method found for route {path}");
        }
        out
    }

    /// The files the admin handlers live in, by module name.
    const HANDLER_SOURCES: &[(&str, &str)] = &[
        ("admin", include_str!("admin.rs")),
        ("admin_keys", include_str!("admin_keys.rs")),
        ("admin_logs", include_str!("admin_logs.rs")),
        ("admin_mcp", include_str!("admin_mcp.rs")),
        ("admin_a2a", include_str!("admin_a2a.rs")),
        ("admin_overlays", include_str!("admin_overlays.rs")),
        ("admin_prompts", include_str!("admin_prompts.rs")),
        ("openapi", include_str!("openapi.rs")),
        ("ui", include_str!("ui.rs")),
    ];

    /// The permission a handler checks first (`Permission::X` in its body),
    /// or `None` for one that checks none.
    fn checked_permission(handler: &str) -> Option<String> {
        if handler.contains("||") {
            return None; // an inline closure: `/health`
        }
        let (module, name) = match handler.rsplit_once("::") {
            Some((m, n)) => (m.rsplit("::").next().unwrap_or(m), n),
            None => ("admin", handler),
        };
        let src = HANDLER_SOURCES.iter().find(|(m, _)| *m == module).map(|(_, s)| *s).unwrap_or_else(|| {
            panic!("handler {handler}: add server/{module}.rs to HANDLER_SOURCES in server/openapi.rs's tests")
        });
        permission_in(src, name, 2)
    }

    /// `Permission::X` in the body of `fn name`, or in a helper of the same
    /// file it calls (`search` → `scoped`), `depth` calls deep.
    fn permission_in(src: &str, name: &str, depth: usize) -> Option<String> {
        let at = src.find(&format!("fn {name}(")).unwrap_or_else(|| panic!("no fn {name} in the handler's file"));
        let body = &src[at..];
        let body = &body[..body.find("\n}\n").unwrap_or(body.len())];
        if let Some(rest) = body.split("Permission::").nth(1) {
            return Some(rest.chars().take_while(|c| c.is_ascii_alphanumeric()).collect());
        }
        if depth == 0 {
            return None;
        }
        let body = &body[format!("fn {name}(").len()..];
        body.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '('))
            .filter_map(|w| w.strip_suffix('('))
            .filter(|w| !w.is_empty() && *w != name && src.contains(&format!("fn {w}(")))
            .find_map(|w| permission_in(src, w, depth - 1))
    }

    #[test]
    fn every_admin_route_is_documented_and_nothing_else() {
        let routed: BTreeSet<(String, String)> = routed(include_str!("admin.rs")).into_keys().collect();
        assert!(routed.len() > 20, "the router's source was not read: {routed:?}");
        let documented: BTreeSet<(String, String)> =
            OPS.iter().map(|o| (o.method.to_string(), o.path.to_string())).collect();
        let missing: Vec<_> = routed.difference(&documented).collect();
        let stale: Vec<_> = documented.difference(&routed).collect();
        assert!(missing.is_empty(), "admin routes missing from server/openapi.rs OPS: {missing:?}");
        assert!(stale.is_empty(), "server/openapi.rs OPS lists routes the admin router does not have: {stale:?}");
    }

    /// Each operation's `x-permission` is the one its handler checks.
    #[test]
    fn documented_permissions_are_the_handlers_own() {
        for ((method, path), handler) in routed(include_str!("admin.rs")) {
            let Some(op) = OPS.iter().find(|o| o.method == method && o.path == path) else { continue };
            let documented = op.permission.map(|p| format!("{p:?}"));
            assert_eq!(checked_permission(&handler), documented, "{method} {path} ({handler})");
        }
    }

    /// The reader sees every shape of route the router uses, and a route
    /// added without a document entry fails the test above.
    #[test]
    fn the_router_reader_finds_methods_and_new_routes() {
        let src = r#"pub fn router(app: Arc<App>) -> Router {
            Router::new()
                .route("/health", get(|| async { json_response(StatusCode::OK, r"{}") }))
                .route("/admin/keys", get(super::admin_keys::list).post(super::admin_keys::create))
                .route(
                    "/admin/{kind}/{id}",
                    axum::routing::put(super::admin_overlays::put).delete(super::admin_overlays::delete),
                )
                .route("/admin/new", post(new_thing))
                .merge(super::ui::routes())
                .fallback(|| async { 404 })
        }"#;
        let found: BTreeSet<(String, String)> = routed(src).into_keys().collect();
        let want: BTreeSet<(String, String)> = [
            ("get", "/health"),
            ("get", "/admin/keys"),
            ("post", "/admin/keys"),
            ("put", "/admin/{kind}/{id}"),
            ("delete", "/admin/{kind}/{id}"),
            ("post", "/admin/new"),
        ]
        .into_iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
        assert_eq!(found, want);
        let documented: BTreeSet<(String, String)> =
            OPS.iter().map(|o| (o.method.to_string(), o.path.to_string())).collect();
        assert!(!documented.contains(&("post".to_string(), "/admin/new".to_string())));
    }

    #[test]
    #[should_panic(expected = "merges a router")]
    fn a_merged_router_is_not_overlooked() {
        routed("pub fn router() { Router::new().route(\"/a\", get(a)).merge(other::routes()).fallback(f) }");
    }

    #[test]
    fn the_document_holds_every_operation_with_unique_ids() {
        let doc = build();
        let mut ids = BTreeSet::new();
        for op in OPS {
            let o = &doc["paths"][op.path][op.method];
            assert!(o.is_object(), "{} {} missing", op.method, op.path);
            assert!(ids.insert(o["operationId"].as_str().unwrap().to_string()), "duplicate id for {}", op.path);
            let named: BTreeSet<&str> = path_params(op.path).collect();
            let params: BTreeSet<&str> = o["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|p| p["in"] == "path")
                .map(|p| p["name"].as_str().unwrap())
                .collect();
            assert_eq!(named, params, "{} {}", op.method, op.path);
        }
        // Query parameters come from the handlers' own types.
        let logs = doc["paths"]["/admin/logs"]["get"]["parameters"].as_array().unwrap();
        for name in ["since", "model", "status", "kind", "metadata", "limit"] {
            assert!(logs.iter().any(|p| p["name"] == name), "`{name}` not a parameter of /admin/logs");
        }
        assert!(!logs.iter().any(|p| p["name"] == "group_by"));
        // Every reference resolves.
        let text = doc.to_string();
        let needle = "\"$ref\":\"#/components/schemas/";
        for (i, _) in text.match_indices(needle) {
            let name: String = text[i + needle.len()..].chars().take_while(|c| *c != '"').collect();
            assert!(doc["components"]["schemas"].get(&name).is_some(), "dangling $ref {name}");
        }
    }
}
