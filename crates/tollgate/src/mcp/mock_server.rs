//! `tollgate mcp mock-server`: a small MCP server over stdio, built in as
//! the mock provider is, so the demo and a first try of the MCP gateway need
//! nothing else installed. Four tools of an imagined ops assistant; one of
//! them returns a file with a credential in it, for the guardrails to mask.

use std::io::{BufRead, Write};

use serde_json::{Value, json};

use super::rpc;

fn tools() -> Value {
    let text = |name: &str, desc: &str, props: &[&str]| {
        let properties: serde_json::Map<String, Value> =
            props.iter().map(|p| (p.to_string(), json!({ "type": "string" }))).collect();
        json!({ "name": name, "description": desc,
                "inputSchema": { "type": "object", "properties": properties, "required": props } })
    };
    json!([
        text("search_docs", "Searches the runbooks.", &["query"]),
        text("read_file", "Reads a file from the ops repository.", &["path"]),
        text("send_email", "Sends an e-mail.", &["to", "body"]),
        text("run_sql", "Runs a SQL query on the production database.", &["query"]),
    ])
}

fn call(name: &str, args: &Value) -> Result<Value, Value> {
    let arg = |k: &str| args.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let text = match name {
        "search_docs" => format!("3 runbooks mention `{}`: deploy.md, rollback.md, oncall.md", arg("query")),
        // Built at run time so no key-shaped literal sits in the source.
        "read_file" => format!("# {}\nAWS_ACCESS_KEY_ID=AKIA{}\nREGION=eu-west-1", arg("path"), "Q7Z3X9K2M4N8P6R5"),
        "send_email" => format!("sent to {}", arg("to")),
        "run_sql" => "0 rows".to_string(),
        other => return Err(rpc::error_body(rpc::INVALID_PARAMS, format!("Unknown tool: {other}"))),
    };
    Ok(json!({ "content": [{ "type": "text", "text": text }] }))
}

fn answer(msg: Value) -> Option<Value> {
    let rpc::Msg::Request { id, method, params } = rpc::Msg::parse(msg).ok()? else { return None };
    let body = match method.as_str() {
        "initialize" => Ok(json!({
            "protocolVersion": rpc::negotiate(params.get("protocolVersion").and_then(Value::as_str)),
            "capabilities": { "tools": {} },
            "serverInfo": { "name": "tollgate-mock-mcp", "version": env!("CARGO_PKG_VERSION") },
        })),
        "ping" => Ok(json!({})),
        "tools/list" => Ok(json!({ "tools": tools() })),
        "tools/call" => call(params["name"].as_str().unwrap_or(""), &params["arguments"]),
        m => Err(rpc::error_body(rpc::METHOD_NOT_FOUND, format!("Method not found: {m}"))),
    };
    Some(rpc::respond(id, body))
}

/// Serves on stdin/stdout until stdin closes.
pub fn serve() -> std::io::Result<()> {
    let stdin = std::io::stdin();
    let mut out = std::io::stdout().lock();
    for line in stdin.lock().lines() {
        let Ok(msg) = serde_json::from_str::<Value>(&line?) else { continue };
        if let Some(reply) = answer(msg) {
            writeln!(out, "{reply}")?;
            out.flush()?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_answers_the_handshake_the_list_and_calls() {
        let init =
            answer(json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18"}}));
        assert_eq!(init.unwrap()["result"]["protocolVersion"], "2025-06-18");
        assert!(answer(json!({"jsonrpc":"2.0","method":"notifications/initialized"})).is_none());
        let list = answer(json!({"jsonrpc":"2.0","id":2,"method":"tools/list"})).unwrap();
        assert_eq!(list["result"]["tools"].as_array().unwrap().len(), 4);
        let read = answer(
            json!({"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"read_file","arguments":{"path":"x"}}}),
        );
        assert!(read.unwrap()["result"]["content"][0]["text"].as_str().unwrap().contains("AKIA"));
        let bad = answer(json!({"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"nope"}})).unwrap();
        assert_eq!(bad["error"]["code"], rpc::INVALID_PARAMS);
    }
}
