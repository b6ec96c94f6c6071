//! What the model is offered: the client's own function tools, and for each
//! `{"type": "mcp", "server": …, "allowed_tools": […]}` entry the tools of
//! that MCP endpoint the caller may use, as function tools the gateway will
//! carry out itself.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::config::snapshot::Snapshot;
use crate::glob::Glob;
use crate::identity::Principal;
use crate::mcp::Hub;
use crate::mcp::catalog;
use crate::state::Shared;

/// The gateway's own tool for asking about a quarantined result.
pub const ASK_TOOL: &str = "tollgate_quarantine_ask";

/// An MCP tool offered to the model.
#[derive(Debug, Clone)]
pub struct McpTool {
    /// The function name the model sees and calls.
    pub function: String,
    /// The `/mcp/<endpoint>` it is called through.
    pub endpoint: String,
    /// Its name on that endpoint.
    pub name: String,
    /// `<server>/<tool>`: what allowlists, trust rules, policies and logs name.
    pub qualified: String,
    pub definition: Value,
}

/// Everything the model may be offered on this request.
#[derive(Debug, Default)]
pub struct Toolbox {
    /// The client's function tools, as it sent them.
    pub client: Vec<Value>,
    pub mcp: Vec<McpTool>,
}

impl Toolbox {
    pub fn mcp_by_function(&self, name: &str) -> Option<&McpTool> {
        self.mcp.iter().find(|t| t.function == name)
    }

    pub fn is_client(&self, name: &str) -> bool {
        self.client.iter().any(|t| function_name(t) == Some(name))
    }
}

pub fn function_name(tool: &Value) -> Option<&str> {
    tool.pointer("/function/name").and_then(Value::as_str)
}

/// The name rules and policies match a tool by: `<server>/<tool>` for an
/// MCP tool, the function name for a client tool.
pub fn policy_name<'a>(toolbox: &'a Toolbox, function: &'a str) -> &'a str {
    toolbox.mcp_by_function(function).map_or(function, |t| t.qualified.as_str())
}

/// Splits the request's `tools` into the client's and the MCP endpoints'
/// (listed now, filtered to what the caller may use and `allowed_tools`).
/// An unknown endpoint or a malformed entry is the client's mistake.
pub async fn expand(
    hub: &Arc<Hub>,
    shared: &Arc<Shared>,
    snap: &Snapshot,
    principal: &Principal,
    tools: &[Value],
) -> Result<Toolbox, String> {
    let mut out = Toolbox::default();
    for t in tools {
        if t.get("type").and_then(Value::as_str) != Some("mcp") {
            out.client.push(t.clone());
            continue;
        }
        let Some(server) = t.get("server").and_then(Value::as_str) else {
            return Err("a `{\"type\": \"mcp\"}` tool needs `server`, the MCP server (or virtual server) to offer".into());
        };
        let Some(front) = snap.mcp.front(server) else {
            return Err(format!("`tools`: no MCP server `{server}` on this gateway"));
        };
        let allowed: Option<Vec<Glob>> = match t.get("allowed_tools") {
            None | Some(Value::Null) => None,
            Some(Value::Array(a)) => Some(
                a.iter()
                    .map(|x| x.as_str().map(Glob::new).ok_or("`allowed_tools` must be a list of tool names"))
                    .collect::<Result<_, _>>()?,
            ),
            Some(_) => return Err("`allowed_tools` must be a list of tool names".into()),
        };
        for e in catalog::tools(hub, shared, snap, front, false).await {
            if !catalog::visible(snap, principal, &e) {
                continue;
            }
            let qualified = e.qualified();
            if let Some(globs) = &allowed
                && !globs.iter().any(|g| g.matches(&e.name) || g.matches(&qualified))
            {
                continue;
            }
            out.mcp.push(McpTool {
                function: String::new(),
                endpoint: server.to_string(),
                name: e.name.clone(),
                qualified,
                definition: e.definition.clone(),
            });
        }
    }
    name_functions(&mut out);
    Ok(out)
}

/// Function names: the tool's own where it is unique and valid, else
/// `<endpoint>__<tool>` (OpenAI allows `[A-Za-z0-9_-]{1,64}`).
fn name_functions(b: &mut Toolbox) {
    let clean = |s: &str| -> String {
        s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' { c } else { '_' }).take(64).collect()
    };
    let client: Vec<String> = b.client.iter().filter_map(function_name).map(str::to_string).collect();
    let names: Vec<String> = b.mcp.iter().map(|t| t.name.clone()).collect();
    for t in &mut b.mcp {
        let own = clean(&t.name);
        let clash = client.contains(&own) || names.iter().filter(|n| clean(n) == own).count() > 1 || own == ASK_TOOL;
        t.function = if clash || own != t.name { clean(&format!("{}__{}", t.endpoint, t.name)) } else { own };
    }
}

/// An MCP tool as a function tool.
pub fn as_function(t: &McpTool) -> Value {
    let description = t.definition.get("description").cloned().unwrap_or(Value::Null);
    let parameters =
        t.definition.get("inputSchema").cloned().unwrap_or_else(|| json!({ "type": "object", "properties": {} }));
    json!({ "type": "function", "function": { "name": t.function, "description": description, "parameters": parameters } })
}

/// The quarantine's question tool.
pub fn ask_function() -> Value {
    json!({ "type": "function", "function": {
        "name": ASK_TOOL,
        "description": "Ask about a quarantined tool result (shown to you as `[quarantined result qN …]`). A separate model without tools reads the result and answers in the form you ask for; only that answer is returned.",
        "parameters": { "type": "object", "properties": {
            "ref": { "type": "string", "description": "The result's reference, e.g. q1." },
            "question": { "type": "string" },
            "answer": { "type": "object", "properties": {
                "type": { "type": "string", "enum": ["boolean", "number", "choice", "string"] },
                "options": { "type": "array", "items": { "type": "string" }, "description": "For `choice`: the answers allowed." }
            }, "required": ["type"] }
        }, "required": ["ref", "question", "answer"] }
    } })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tool(endpoint: &str, name: &str) -> McpTool {
        McpTool {
            function: String::new(),
            endpoint: endpoint.into(),
            name: name.into(),
            qualified: format!("{endpoint}/{name}"),
            definition: Value::Null,
        }
    }

    #[test]
    fn functions_keep_their_names_unless_they_clash_or_are_not_valid() {
        let mut b = Toolbox {
            client: vec![json!({"type": "function", "function": {"name": "search"}})],
            mcp: vec![tool("gh", "search"), tool("gh", "get_issue"), tool("files", "read.file"), tool("a", "x"), tool("b", "x")],
        };
        name_functions(&mut b);
        let names: Vec<&str> = b.mcp.iter().map(|t| t.function.as_str()).collect();
        assert_eq!(names, ["gh__search", "get_issue", "files__read_file", "a__x", "b__x"]);
        assert_eq!(policy_name(&b, "get_issue"), "gh/get_issue");
        assert_eq!(policy_name(&b, "search"), "search", "the client's own tool");
    }
}
