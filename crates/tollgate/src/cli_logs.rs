//! `tollgate logs` and `tollgate usage`: the request log and cost reports,
//! through a running gateway's admin API.

use std::process::ExitCode;

use clap::Args;
use http::Method;
use serde_json::Value;

use crate::cli_keys::{admin_call, admin_target};

#[derive(Args)]
pub struct LogsArgs {
    /// How far back: 15m, 1h, 168h. Default 24h.
    #[arg(long)]
    since: Option<String>,
    #[arg(long)]
    subject: Option<String>,
    /// Requested or resolved model.
    #[arg(long)]
    model: Option<String>,
    #[arg(long)]
    status: Option<u16>,
    /// What was called: model, mcp or a2a.
    #[arg(long)]
    kind: Option<String>,
    /// `key:value`; repeatable.
    #[arg(long = "metadata", value_name = "KEY:VALUE")]
    metadata: Vec<String>,
    #[arg(long, default_value_t = 50)]
    limit: usize,
    /// One request in full (attempts, phases, cost).
    #[arg(long)]
    id: Option<String>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct UsageArgs {
    /// Comma-separated: model, provider, subject, status, day, metadata.<key>.
    #[arg(long, default_value = "model")]
    group_by: String,
    #[arg(long)]
    since: Option<String>,
    #[arg(long)]
    model: Option<String>,
    #[arg(long)]
    subject: Option<String>,
    /// `key:value`; repeatable (e.g. team:payments).
    #[arg(long = "metadata", value_name = "KEY:VALUE")]
    metadata: Vec<String>,
    /// Print CSV.
    #[arg(long)]
    csv: bool,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub(crate) fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn push(q: &mut Vec<String>, k: &str, v: Option<&str>) {
    if let Some(v) = v {
        q.push(format!("{k}={}", enc(v)));
    }
}

pub(crate) async fn get(
    admin_url: Option<String>,
    tool: &str,
    path: String,
) -> Result<(Value, bytes::Bytes), ExitCode> {
    let Some((base, key)) = admin_target(admin_url, tool) else { return Err(ExitCode::FAILURE) };
    let (status, bytes) = admin_call(Method::GET, &format!("{base}{path}"), &key, None).await.map_err(|e| {
        eprintln!("tollgate {tool}: {e}");
        ExitCode::FAILURE
    })?;
    let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    if !(200..300).contains(&status) {
        eprintln!(
            "tollgate {tool}: {status}: {}",
            v.pointer("/error/message").and_then(Value::as_str).unwrap_or("(no message)")
        );
        return Err(ExitCode::FAILURE);
    }
    Ok((v, bytes))
}

pub async fn logs(a: LogsArgs, admin_url: Option<String>) -> ExitCode {
    if let Some(id) = &a.id {
        return match get(admin_url, "logs", format!("/admin/logs/{}", enc(id))).await {
            Ok((v, _)) => {
                println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
                ExitCode::SUCCESS
            }
            Err(c) => c,
        };
    }
    let mut q = Vec::new();
    push(&mut q, "since", a.since.as_deref());
    push(&mut q, "subject", a.subject.as_deref());
    push(&mut q, "model", a.model.as_deref());
    push(&mut q, "status", a.status.map(|s| s.to_string()).as_deref());
    push(&mut q, "kind", a.kind.as_deref());
    push(&mut q, "metadata", (!a.metadata.is_empty()).then(|| a.metadata.join(",")).as_deref());
    q.push(format!("limit={}", a.limit));
    let (v, _) = match get(admin_url, "logs", format!("/admin/logs?{}", q.join("&"))).await {
        Ok(r) => r,
        Err(c) => return c,
    };
    if a.json {
        println!("{}", serde_json::to_string_pretty(&v["data"]).unwrap_or_default());
        return ExitCode::SUCCESS;
    }
    println!(
        "{:<26} {:<20} {:<18} {:<24} {:>6} {:>9} {:>8} {:>10}",
        "ID", "TIME", "SUBJECT", "MODEL", "STATUS", "TOKENS", "MS", "USD"
    );
    for e in v["data"].as_array().cloned().unwrap_or_default() {
        let time = e["time"]
            .as_u64()
            .map_or("-".into(), |t| crate::budgets::period::format_utc(t / 1000)[..19].replace('T', " "));
        let model = e["resolved_model"].as_str().or(e["requested_model"].as_str()).unwrap_or("-");
        let tokens = e["prompt_tokens"].as_u64().unwrap_or(0) + e["completion_tokens"].as_u64().unwrap_or(0);
        let usd = crate::pricing::nanos_to_usd(e["cost_nanos"].as_u64().unwrap_or(0));
        println!(
            "{:<26} {:<20} {:<18} {:<24} {:>6} {:>9} {:>8.1} {:>10.6}",
            e["id"].as_str().unwrap_or("-"),
            time,
            e["subject"].as_str().unwrap_or("-"),
            model,
            e["status"].as_u64().unwrap_or(0),
            tokens,
            e["total_ms"].as_f64().unwrap_or(0.0),
            usd
        );
    }
    ExitCode::SUCCESS
}

pub async fn usage(a: UsageArgs, admin_url: Option<String>) -> ExitCode {
    let mut q = vec![format!("group_by={}", enc(&a.group_by))];
    push(&mut q, "since", a.since.as_deref());
    push(&mut q, "model", a.model.as_deref());
    push(&mut q, "subject", a.subject.as_deref());
    push(&mut q, "metadata", (!a.metadata.is_empty()).then(|| a.metadata.join(",")).as_deref());
    if a.csv {
        q.push("format=csv".into());
    }
    let (v, bytes) = match get(admin_url, "usage", format!("/admin/usage/report?{}", q.join("&"))).await {
        Ok(r) => r,
        Err(c) => return c,
    };
    if a.csv {
        print!("{}", String::from_utf8_lossy(&bytes));
        return ExitCode::SUCCESS;
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return ExitCode::SUCCESS;
    }
    let keys: Vec<String> = a.group_by.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect();
    for k in &keys {
        print!("{:<22} ", k.to_uppercase());
    }
    println!("{:>9} {:>12} {:>12} {:>12} {:>10} {:>12}", "REQUESTS", "PROMPT", "COMPLETION", "USD", "CACHE_HITS", "SAVED_USD");
    for r in v["rows"].as_array().cloned().unwrap_or_default() {
        for k in &keys {
            print!("{:<22} ", r["group"][k].as_str().unwrap_or("-"));
        }
        let n = |k: &str| r[k].as_u64().unwrap_or(0);
        println!(
            "{:>9} {:>12} {:>12} {:>12.6} {:>10} {:>12.6}",
            n("requests"),
            n("prompt_tokens"),
            n("completion_tokens"),
            r["cost_usd"].as_f64().unwrap_or(0.0),
            n("cache_hits"),
            r["saved_usd"].as_f64().unwrap_or(0.0)
        );
    }
    ExitCode::SUCCESS
}
