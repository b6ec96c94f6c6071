//! `tollgate mcp`: the MCP servers of a running gateway (admin API) — their
//! health and tools, and approving a quarantined tool.

use std::process::ExitCode;

use clap::Subcommand;
use http::Method;
use serde_json::Value;

use crate::cli_keys::{admin_call, admin_target};
use crate::cli_logs::{enc, get};

#[derive(Subcommand)]
pub enum McpCommand {
    /// Every MCP server and virtual server: transport, health, tools.
    List {
        #[arg(long)]
        json: bool,
    },
    /// One server's tools, read now: name, standing (approved, changed,
    /// pending), definition hash, description.
    Tools {
        server: String,
        #[arg(long)]
        json: bool,
    },
    /// Pin a tool's current definition, releasing it from quarantine.
    Approve { server: String, tool: String },
    /// A small MCP server on stdin/stdout (four ops tools, one of which
    /// returns a credential), to try the gateway with:
    /// `command: tollgate`, `args: [mcp, mock-server]`.
    MockServer,
}

pub async fn run(cmd: McpCommand, admin_url: Option<String>) -> ExitCode {
    match cmd {
        McpCommand::MockServer => match tokio::task::spawn_blocking(crate::mcp::mock_server::serve).await {
            Ok(Ok(())) => ExitCode::SUCCESS,
            _ => ExitCode::FAILURE,
        },
        McpCommand::List { json } => {
            let (v, _) = match get(admin_url, "mcp", "/admin/mcp/servers?refresh=true".into()).await {
                Ok(r) => r,
                Err(c) => return c,
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
                return ExitCode::SUCCESS;
            }
            println!("{:<20} {:<16} {:<8} {:>5}  {:<6} TARGET", "SERVER", "TRANSPORT", "HEALTH", "TOOLS", "PINNED");
            for s in v["servers"].as_array().into_iter().flatten() {
                println!(
                    "{:<20} {:<16} {:<8} {:>5}  {:<6} {}",
                    s["name"].as_str().unwrap_or("-"),
                    s["transport"].as_str().unwrap_or("-"),
                    s["health"]["status"].as_str().unwrap_or("-"),
                    s["tools"].as_array().map_or(0, Vec::len),
                    if s["pin_tools"].as_bool().unwrap_or(false) { "yes" } else { "no" },
                    s["target"].as_str().unwrap_or("-"),
                );
                if let Some(e) = s["health"]["error"].as_str() {
                    println!("    error: {e}");
                }
            }
            for vs in v["virtual_servers"].as_array().into_iter().flatten() {
                let tools: Vec<String> = vs["tools"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|t| format!("{} ({})", t["name"].as_str().unwrap_or("-"), t["tool"].as_str().unwrap_or("-")))
                    .collect();
                println!("{:<20} {:<16} {}", vs["name"].as_str().unwrap_or("-"), "virtual", tools.join(", "));
            }
            ExitCode::SUCCESS
        }
        McpCommand::Tools { server, json } => {
            let (v, _) = match get(admin_url, "mcp", format!("/admin/mcp/servers/{}", enc(&server))).await {
                Ok(r) => r,
                Err(c) => return c,
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&v["tools"]).unwrap_or_default());
                return ExitCode::SUCCESS;
            }
            if let Some(e) = v["health"]["error"].as_str() {
                eprintln!("tollgate mcp: `{server}` did not answer: {e} (showing the last tools read)");
            }
            println!("{:<28} {:<9} {:<12} DESCRIPTION", "TOOL", "STANDING", "SHA256");
            for t in v["tools"].as_array().into_iter().flatten() {
                let desc = t["definition"]["description"].as_str().unwrap_or("").replace('\n', " ");
                println!(
                    "{:<28} {:<9} {:<12} {}",
                    t["name"].as_str().unwrap_or("-"),
                    t["standing"].as_str().unwrap_or("-"),
                    t["sha256"].as_str().unwrap_or("").get(..12).unwrap_or(""),
                    desc.chars().take(80).collect::<String>(),
                );
            }
            ExitCode::SUCCESS
        }
        McpCommand::Approve { server, tool } => {
            let Some((base, key)) = admin_target(admin_url, "mcp") else { return ExitCode::FAILURE };
            let url = format!("{base}/admin/mcp/servers/{}/tools/{}/approve", enc(&server), enc(&tool));
            match admin_call(Method::POST, &url, &key, None).await {
                Ok((200, body)) => {
                    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    println!("approved {server}/{tool} (sha256 {})", v["sha256"].as_str().unwrap_or("?"));
                    ExitCode::SUCCESS
                }
                Ok((status, body)) => {
                    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    let msg = v.pointer("/error/message").and_then(Value::as_str).unwrap_or("(no message)");
                    eprintln!("tollgate mcp: {status}: {msg}");
                    ExitCode::FAILURE
                }
                Err(e) => {
                    eprintln!("tollgate mcp: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
