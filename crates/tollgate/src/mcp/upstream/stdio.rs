//! A stdio MCP server: tollgate spawns the process, speaks newline-delimited
//! JSON-RPC on its stdin/stdout, forwards its stderr to the log, and kills
//! it when the connection is dropped (a config change, the end of a
//! per-session process's session, shutdown). A process that exits is
//! restarted by the hub on the next request.

use std::collections::BTreeMap;
use std::process::Stdio;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use super::pump::{self, PumpConn};

/// A line longer than this ends the connection (a server writing garbage).
const MAX_LINE: usize = 32 << 20;

pub fn spawn(
    server: &str,
    command: &str,
    args: &[String],
    env: &BTreeMap<String, String>,
    capabilities: Value,
) -> Result<PumpConn, String> {
    let mut child = tokio::process::Command::new(command)
        .args(args)
        .envs(env)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start `{command}`: {e}"))?;
    let (Some(mut stdin), Some(stdout), Some(stderr)) = (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return Err("the process has no stdio".into());
    };
    let (shared, mut rx) = pump::channel(server);
    let writer = crate::task::spawn("mcp-stdio-writer", async move {
        while let Some(msg) = rx.recv().await {
            let mut line = serde_json::to_vec(&msg).unwrap_or_default();
            line.push(b'\n');
            if stdin.write_all(&line).await.is_err() || stdin.flush().await.is_err() {
                return;
            }
        }
    });
    let name = server.to_string();
    let logs = crate::task::spawn("mcp-stdio-stderr", async move {
        let mut lines = BufReader::new(stderr).lines();
        while let Ok(Some(l)) = lines.next_line().await {
            tracing::debug!(server = %name, "{l}");
        }
    });
    let reader_shared = shared.clone();
    let reader = crate::task::spawn("mcp-stdio-reader", async move {
        // The child lives as long as its reader: aborting the reader (the
        // connection dropped) kills the process.
        let mut child = child;
        let mut out = BufReader::new(stdout);
        let mut line = Vec::new();
        loop {
            line.clear();
            match out.read_until(b'\n', &mut line).await {
                Ok(0) | Err(_) => break,
                Ok(_) if line.len() > MAX_LINE => break,
                Ok(_) => match serde_json::from_slice::<Value>(&line) {
                    Ok(v) => reader_shared.incoming(v),
                    Err(_) => tracing::debug!(server = %reader_shared.server, "a stdout line that is not JSON-RPC"),
                },
            }
        }
        let status = child.wait().await.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string());
        tracing::warn!(server = %reader_shared.server, %status, "MCP server process ended");
        reader_shared.closed(&format!("the process ended ({status})"));
    });
    Ok(PumpConn::new(shared, capabilities, vec![writer.abort_handle(), logs.abort_handle(), reader.abort_handle()]))
}
