//! `tollgate keys …`: virtual keys through a running gateway's admin API.

use std::process::ExitCode;

use bytes::Bytes;
use clap::Subcommand;
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Create a key; its secret is printed once.
    Create {
        #[arg(long)]
        name: String,
        #[arg(long)]
        team: Option<String>,
        #[arg(long)]
        owner: Option<String>,
        /// Model globs, comma-separated (omitted = every model).
        #[arg(long, value_delimiter = ',')]
        models: Option<Vec<String>>,
        /// MCP tool globs (`<server>/<tool>`), comma-separated (omitted = every tool).
        #[arg(long, value_delimiter = ',')]
        tools: Option<Vec<String>>,
        /// A2A agent globs, comma-separated (omitted = every agent).
        #[arg(long, value_delimiter = ',')]
        agents: Option<Vec<String>>,
        /// Default metadata, `key=value`; repeatable.
        #[arg(long = "metadata", value_name = "KEY=VALUE")]
        metadata: Vec<String>,
        /// admin, team_admin, viewer or member (omitted = data plane only).
        #[arg(long)]
        role: Option<String>,
        /// e.g. 720h.
        #[arg(long)]
        expires_in: Option<String>,
    },
    /// List keys (never their secrets).
    List,
    /// Revoke a key; in force for the next request.
    Revoke { id: String },
    /// Issue a new secret; the old one keeps working for `--overlap`.
    Rotate {
        id: String,
        #[arg(long)]
        overlap: Option<String>,
    },
}

/// The admin URL (`--admin-url`, `TOLLGATE_ADMIN_URL`, or the default) and
/// the credential (`TOLLGATE_MASTER_KEY`, or any key with an admin role).
pub fn admin_target(admin_url: Option<String>, tool: &str) -> Option<(String, String)> {
    let base = admin_url
        .or_else(|| std::env::var("TOLLGATE_ADMIN_URL").ok())
        .unwrap_or_else(|| "http://127.0.0.1:4001".into());
    let Some(key) = std::env::var("TOLLGATE_MASTER_KEY").ok().filter(|k| !k.is_empty()) else {
        eprintln!("tollgate {tool}: set TOLLGATE_MASTER_KEY (or an admin key) to call the admin API");
        return None;
    };
    Some((base.trim_end_matches('/').to_string(), key))
}

/// One admin API call: (status, body).
pub async fn admin_call(method: Method, url: &str, key: &str, body: Option<String>) -> Result<(u16, Bytes), String> {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let req = Request::builder()
        .method(method)
        .uri(url)
        .header("authorization", format!("Bearer {key}"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.unwrap_or_default())))
        .map_err(|_| format!("`{url}` is not a usable admin URL"))?;
    let resp = client.request(req).await.map_err(|e| format!("cannot reach the admin API at {url}: {e}"))?;
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.map(|c| c.to_bytes()).unwrap_or_default();
    Ok((status, bytes))
}

pub async fn run(cmd: KeysCommand, admin_url: Option<String>) -> ExitCode {
    let Some((base, master)) = admin_target(admin_url, "keys") else { return ExitCode::FAILURE };
    let (method, path, body) = match &cmd {
        KeysCommand::Create { name, team, owner, models, tools, agents, metadata, role, expires_in } => {
            let mut md = serde_json::Map::new();
            for kv in metadata {
                let Some((k, v)) = kv.split_once('=') else {
                    eprintln!("tollgate keys: --metadata takes key=value, got `{kv}`");
                    return ExitCode::FAILURE;
                };
                md.insert(k.to_string(), json!(v));
            }
            let body = json!({ "name": name, "team": team, "owner": owner, "models": models,
                               "tools": tools, "agents": agents,
                               "metadata": md, "role": role, "expires_in": expires_in });
            (Method::POST, "/admin/keys".to_string(), Some(body))
        }
        KeysCommand::List => (Method::GET, "/admin/keys".to_string(), None),
        KeysCommand::Revoke { id } => (Method::DELETE, format!("/admin/keys/{id}"), None),
        KeysCommand::Rotate { id, overlap } => {
            (Method::POST, format!("/admin/keys/{id}/rotate"), Some(json!({ "overlap": overlap })))
        }
    };
    let (status, bytes) = match admin_call(method, &format!("{base}{path}"), &master, body.map(|b| b.to_string())).await
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("tollgate keys: {e}");
            return ExitCode::FAILURE;
        }
    };
    let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    if !(200..300).contains(&status) {
        eprintln!(
            "tollgate keys: {status}: {}",
            v.pointer("/error/message").and_then(Value::as_str).unwrap_or("(no message)")
        );
        return ExitCode::FAILURE;
    }
    match cmd {
        KeysCommand::List => {
            println!("{:<22} {:<24} {:<12} {:<14} {:<8} MODELS", "ID", "NAME", "PREFIX", "TEAM", "ACTIVE");
            for k in v["data"].as_array().cloned().unwrap_or_default() {
                let s = |f: &str| k[f].as_str().unwrap_or("-").to_string();
                let models = k["models"]
                    .as_array()
                    .map_or("*".into(), |m| m.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(","));
                let active = k["active"].as_bool().map_or("-", |a| if a { "yes" } else { "no" });
                println!(
                    "{:<22} {:<24} {:<12} {:<14} {:<8} {models}",
                    s("id"),
                    s("name"),
                    s("prefix"),
                    s("team"),
                    active
                );
            }
        }
        _ => {
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            if v.get("key").is_some() {
                eprintln!("tollgate keys: the secret `key` above is shown only once; store it now.");
            }
        }
    }
    ExitCode::SUCCESS
}
