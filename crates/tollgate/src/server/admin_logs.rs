//! `/admin/logs` (search, one request in full) and `/admin/usage/report`
//! (usage and cost grouped by any metadata key, model, provider, subject,
//! status or day; JSON or CSV).

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, Request, State};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde::Deserialize;
use serde_json::json;

use super::admin::{Permission, require};
use super::{App, json_response};
use crate::config::loc::Dur;
use crate::error::AdminError;
use crate::reqlog::{aggregate, valid_group_key};

#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
pub struct Params {
    /// e.g. `1h`, `7d` is not a unit — use `168h`. Default 24h.
    since: Option<String>,
    /// Unix milliseconds; override `since`.
    from: Option<u64>,
    to: Option<u64>,
    subject: Option<String>,
    model: Option<String>,
    status: Option<u16>,
    /// `model`, `mcp` or `a2a`.
    kind: Option<String>,
    /// `key:value`, comma-separated.
    metadata: Option<String>,
    /// Only the calls the agent layer made for this request id.
    parent: Option<String>,
    /// Only requests that used this prompt template: `id` or `id@version`.
    prompt: Option<String>,
    limit: Option<usize>,
    group_by: Option<String>,
    format: Option<String>,
}

fn bad(m: impl AsRef<str>) -> Response {
    AdminError::Invalid { code: "invalid_query", message: m.as_ref().to_string() }.into_response()
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

#[expect(clippy::result_large_err, reason = "the error is the response itself, returned at once")]
fn query(p: &Params) -> Result<crate::reqlog::Query, Response> {
    let to = p.to.unwrap_or_else(now_ms);
    let from = match (p.from, &p.since) {
        (Some(f), _) => f,
        (None, Some(s)) => {
            to.saturating_sub(Dur::parse(s).map_err(|e| bad(format!("`since`: {e}")))?.as_millis() as u64)
        }
        (None, None) => to.saturating_sub(24 * 3600 * 1000),
    };
    let metadata = p
        .metadata
        .as_deref()
        .unwrap_or("")
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|kv| {
            kv.split_once(':')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or_else(|| bad("`metadata` takes key:value pairs"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(crate::reqlog::Query {
        from: Some(from),
        to: Some(to),
        subject: p.subject.clone(),
        model: p.model.clone(),
        status: p.status,
        kind: match p.kind.as_deref() {
            None => None,
            Some(k) => Some(
                crate::resource::Kind::parse(k)
                    .ok_or_else(|| bad(format!("`kind`: `{k}` is not a kind of call; use model, mcp or a2a")))?,
            ),
        },
        metadata,
        parent: p.parent.clone(),
        prompt: p.prompt.clone(),
        limit: p.limit,
    })
}

/// A team admin sees its own team's requests only.
fn team_scope(caller: &crate::identity::Principal, q: &mut crate::reqlog::Query) {
    if caller.role == Some(crate::identity::Role::TeamAdmin) {
        q.metadata.push(("team".into(), caller.team.clone().unwrap_or_default()));
    }
}

/// The caller's permission, the parsed filters and, for a team admin, its
/// team: everything a log route checks before reading the store.
async fn scoped(
    app: &App,
    params: Result<Query<Params>, QueryRejection>,
    headers: &http::HeaderMap,
) -> Result<(Params, crate::reqlog::Query), Response> {
    let p = match params {
        Ok(Query(p)) => p,
        Err(e) => return Err(bad(format!("invalid query: {}", e.body_text()))),
    };
    let caller = require(app, headers, Permission::ReadUsage).await?;
    let mut q = query(&p)?;
    team_scope(&caller, &mut q);
    Ok((p, q))
}

pub async fn search(
    State(app): State<Arc<App>>,
    params: Result<Query<Params>, QueryRejection>,
    req: Request,
) -> Response {
    let (_, q) = match scoped(&app, params, req.headers()).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    match app.store.load_logs(q.from.unwrap_or(0), q.to.unwrap_or(u64::MAX)).await {
        Ok(entries) => {
            let limit = q.limit.unwrap_or(100).min(10_000);
            let data: Vec<_> = entries.iter().rev().filter(|e| q.matches(e)).take(limit).collect();
            json_response(StatusCode::OK, json!({ "data": data }).to_string())
        }
        Err(e) => AdminError::StoreUnavailable(format!("the log store is unavailable: {e}")).into_response(),
    }
}

pub async fn one(State(app): State<Arc<App>>, Path(id): Path<String>, req: Request) -> Response {
    let caller = match require(&app, req.headers(), Permission::ReadUsage).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let mut scope = crate::reqlog::Query::default();
    team_scope(&caller, &mut scope);
    match app.store.load_logs(0, u64::MAX).await {
        Ok(entries) => match entries.into_iter().find(|e| e.id == id && scope.matches(e)) {
            Some(e) => json_response(StatusCode::OK, json!(e).to_string()),
            None => AdminError::NotFound(format!("no logged request `{id}`")).into_response(),
        },
        Err(e) => AdminError::StoreUnavailable(format!("the log store is unavailable: {e}")).into_response(),
    }
}

pub async fn report(
    State(app): State<Arc<App>>,
    params: Result<Query<Params>, QueryRejection>,
    req: Request,
) -> Response {
    let (p, q) = match scoped(&app, params, req.headers()).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let group_by: Vec<String> = p
        .group_by
        .as_deref()
        .unwrap_or("model")
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    if let Some(bad_key) = group_by.iter().find(|g| !valid_group_key(g)) {
        return bad(format!(
            "cannot group by `{bad_key}`; use model, requested_model, provider, subject, status, day or metadata.<key>"
        ));
    }
    let entries = match app.store.load_logs(q.from.unwrap_or(0), q.to.unwrap_or(u64::MAX)).await {
        Ok(e) => e,
        Err(e) => {
            return AdminError::StoreUnavailable(format!("the log store is unavailable: {e}")).into_response();
        }
    };
    let rows = aggregate(entries.iter().filter(|e| q.matches(e)), &group_by);
    if p.format.as_deref() == Some("csv") {
        let mut out = String::new();
        out.push_str(&group_by.join(","));
        out.push_str(",requests,prompt_tokens,completion_tokens,cost_usd,cache_hits,saved_usd\n");
        for r in &rows {
            for g in &group_by {
                out.push_str(&csv(r.group.get(g).map_or("", String::as_str)));
                out.push(',');
            }
            out.push_str(&format!(
                "{},{},{},{:.9},{},{:.9}\n",
                r.requests, r.prompt_tokens, r.completion_tokens, r.cost_usd, r.cache_hits, r.saved_usd
            ));
        }
        let mut resp = Response::new(axum::body::Body::from(out));
        resp.headers_mut()
            .insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("text/csv; charset=utf-8"));
        return resp;
    }
    json_response(StatusCode::OK, json!({ "group_by": group_by, "from": q.from, "to": q.to, "rows": rows }).to_string())
}

fn csv(v: &str) -> String {
    if v.contains([',', '"', '\n']) { format!("\"{}\"", v.replace('"', "\"\"")) } else { v.to_string() }
}
