//! MCP upstreams other than Streamable HTTP (a stdio process the gateway
//! spawns and restarts, a legacy SSE server), virtual servers composed of
//! two servers, and what a tool call leaves behind: the request log,
//! traces, metrics and the registry in the admin API.

use std::path::PathBuf;

use http::Method;
use serde_json::{Value, json};
use testkit::{BUILTIN_TOOLS, McpMock};

use crate::common::{Harness, MASTER, Resp, eventually, user};
use crate::mcp::{Client, NARROW, UPSTREAM_SECRET, http_server, names, yaml};

/// The `mock-mcp` binary of the test kit, built by `cargo build --workspace
/// --bins` beside this test binary (`target/<profile>/deps/it-…`). Missing,
/// the test fails: it is never skipped.
fn mock_mcp_bin() -> PathBuf {
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.join("mock-mcp")))
        .filter(|p| p.is_file());
    let bin =
        beside.unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../target/debug/mock-mcp")));
    assert!(
        bin.is_file(),
        "the stdio mock MCP server is missing at {}: run `cargo build --workspace --bins` first",
        bin.display()
    );
    bin
}

/// Lines of a `--record` file: every message the process received.
fn recorded(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path).unwrap_or_default().lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
}

#[tokio::test]
async fn stdio_servers_get_their_env_and_are_restarted_and_legacy_sse_servers_work() {
    let bin = mock_mcp_bin();
    let sse = McpMock::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (rec_s, rec_x) = (dir.path().join("s.jsonl"), dir.path().join("x.jsonl"));
    let rest = format!(
        r#"mcp_servers:
  - name: s
    command: "{bin}"
    args: ["--record", "{rec_s}"]
    env: {{ MOCK_MCP_MARK: "from-env" }}
  - name: x
    command: "{bin}"
    args: ["--record", "{rec_x}", "--exit-after", "1"]
    env: {{ MOCK_MCP_MARK: "X" }}
  - name: l
    sse_url: "{sse_url}"
    auth: {{ type: static_header, header: authorization, value: "{UPSTREAM_SECRET}" }}
"#,
        bin = bin.display(),
        rec_s = rec_s.display(),
        rec_x = rec_x.display(),
        sse_url = sse.sse_url(),
    );
    let h = Harness::start(&yaml(&rest)).await;

    let s = Client::connect(&h, "s", MASTER).await;
    assert_eq!(s.tool_names().await, BUILTIN_TOOLS.to_vec(), "every page, over stdio");
    assert_eq!(s.call_ok("echo", json!({ "text": "hi" })).await, "from-env:hi", "env reaches the process");
    let got = recorded(&rec_s);
    assert!(got.iter().any(|m| m["method"] == "tools/call" && m["params"]["arguments"]["text"] == "hi"), "{got:?}");

    // `x` exits after each tool call, as a crash.
    let x = Client::connect(&h, "x", MASTER).await;
    assert_eq!(x.call_ok("echo", json!({ "text": "one" })).await, "X:one");
    // The process is gone now. The gateway starts it again on the next
    // request; if that request reaches the old connection before the
    // gateway has seen the process end, it fails once with an upstream
    // error (-32001, documented in docs/mcp.md) and the next one gets the
    // new process.
    let second = x.call("echo", json!({ "text": "two" })).await;
    let restarted = if second.get("error").is_some() {
        assert_eq!(second["error"]["code"], -32001, "an upstream error: {second}");
        assert!(second["error"]["message"].as_str().unwrap().contains("`x` is unavailable"), "{second}");
        x.call("echo", json!({ "text": "three" })).await
    } else {
        second
    };
    assert!(restarted.get("error").is_none(), "{restarted}");
    assert!(crate::mcp::text_of(&restarted).starts_with("X:"), "{restarted}");
    let inits = recorded(&rec_x).iter().filter(|m| m["method"] == "initialize").count();
    assert!(inits >= 2, "a second process was started and initialised: {inits}");

    // Legacy HTTP+SSE upstream.
    let l = Client::connect(&h, "l", MASTER).await;
    assert_eq!(l.tool_names().await, BUILTIN_TOOLS.to_vec());
    assert_eq!(l.call_ok("echo", json!({ "text": "over sse" })).await, "over sse");
    assert_eq!(sse.calls("echo"), vec![json!({ "text": "over sse" })]);
    assert!(sse.received().iter().all(|r| r.header("authorization") == Some(UPSTREAM_SECRET)));
}

async fn two_servers(virtuals: &str) -> (McpMock, McpMock, Harness) {
    let (m, n) = (McpMock::start().await, McpMock::start().await);
    let rest = format!(
        "mcp_servers:\n{}{}virtual_mcp_servers:\n{virtuals}",
        http_server("m", &m.mcp_url(), ""),
        http_server("n", &n.mcp_url(), "")
    );
    let h = Harness::start(&yaml(&rest)).await;
    (m, n, h)
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[tokio::test]
async fn virtual_servers_name_tools_by_their_prefix_mode_and_route_calls_to_the_right_server() {
    let (m, n, h) = two_servers(
        r#"  - name: combo
    tools: ["m/echo", "n/echo", "m/add"]
    prefix: on_conflict
    overrides: { "m/add": { rename: plus, description: "Adds." } }
  - { name: all, tools: ["m/echo", "n/echo", "m/add"], prefix: always }
  - { name: bare, tools: ["m/echo", "n/echo", "m/add"], prefix: never }
"#,
    )
    .await;
    let combo = Client::connect(&h, "combo", MASTER).await;
    let list = combo.list().await;
    assert_eq!(sorted(names(&list)), ["m__echo", "n__echo", "plus"]);
    let plus = list["tools"].as_array().unwrap().iter().find(|t| t["name"] == "plus").unwrap();
    assert_eq!(plus["description"], "Adds.");
    assert_eq!(plus["inputSchema"]["required"], json!(["a", "b"]), "the rest of the definition is the server's");

    assert_eq!(combo.call_ok("n__echo", json!({ "text": "to n" })).await, "to n");
    assert_eq!(combo.call_ok("m__echo", json!({ "text": "to m" })).await, "to m");
    assert_eq!(combo.call_ok("plus", json!({ "a": 2, "b": 3 })).await, "5");
    assert_eq!(n.calls("echo"), vec![json!({ "text": "to n" })]);
    assert_eq!(m.calls("echo"), vec![json!({ "text": "to m" })]);
    assert_eq!(m.calls("add"), vec![json!({ "a": 2, "b": 3 })], "the server is called by the tool's own name");
    assert!(n.calls("add").is_empty());
    assert_eq!(combo.call("echo", json!({ "text": "?" })).await["error"]["code"], -32602, "no unprefixed echo here");
    let r = combo.request("resources/list", json!({})).await;
    assert_eq!(r["error"]["code"], -32601, "a virtual server has tools only: {r}");

    let all = Client::connect(&h, "all", MASTER).await;
    assert_eq!(sorted(all.tool_names().await), ["m__add", "m__echo", "n__echo"]);
    assert_eq!(all.call_ok("m__add", json!({ "a": 1, "b": 1 })).await, "2");

    let bare = Client::connect(&h, "bare", MASTER).await;
    assert_eq!(sorted(bare.tool_names().await), ["add", "echo"], "of two echos the first is shown");
    assert_eq!(bare.call_ok("echo", json!({ "text": "bare" })).await, "bare");
    assert_eq!(m.calls("echo").len(), 2, "the shown echo is m's");
    assert_eq!(n.calls("echo").len(), 1);

    // Allowlists and the log name the real tool, whatever the endpoint calls it.
    let narrow = Client::connect(&h, "combo", NARROW).await;
    assert_eq!(sorted(narrow.tool_names().await), ["m__echo", "plus"], "n/echo is not the narrow key's");
    eventually("the log names the real tool behind `plus`", async || {
        logs(&h)
            .await
            .iter()
            .any(|e| e["mcp"]["endpoint"] == "combo" && e["mcp"]["server"] == "m" && e["mcp"]["tool"] == "add")
    })
    .await;
}

async fn logs(h: &Harness) -> Vec<Value> {
    let r = h.send(Method::GET, &h.admin_url("/admin/logs?kind=mcp&limit=100"), Some(MASTER), &[], "").await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["data"].as_array().cloned().unwrap_or_default()
}

async fn admin_get(h: &Harness, path: &str) -> Resp {
    h.send(Method::GET, &h.admin_url(path), Some(MASTER), &[], "").await
}

#[tokio::test]
async fn tool_calls_are_logged_traced_counted_and_servers_are_listed_with_their_health() {
    let mock = McpMock::start().await;
    // A port nobody listens on: a server that is down.
    let down = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let rest = format!(
        "mcp_servers:\n{}  - {{ name: down, url: \"http://{down}/mcp\" }}\n",
        http_server("m", &mock.mcp_url(), "")
    );
    let h = Harness::start(&yaml(&rest)).await;
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let c = Client::connect(&h, "m", MASTER).await;
    let msg = json!({ "jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": { "name": "echo", "arguments": { "text": "logged" } } });
    let r = c.post(&msg, &[("traceparent", &format!("00-{trace}-00f067aa0ba902b7-01"))]).await;
    assert_eq!(crate::mcp::text_of(&crate::mcp::message(&r)), "logged");
    let narrow = Client::connect(&h, "m", NARROW).await;
    assert_eq!(narrow.call("leak", json!({})).await["error"]["code"], -32602);
    assert_eq!(h.chat(Some(MASTER), &json!({ "model": "mock/echo", "messages": user("hi") })).await.status, 200);

    let mut entries = Vec::new();
    eventually("both tool calls are logged", async || {
        entries = logs(&h).await;
        entries.len() >= 2
    })
    .await;
    assert_eq!(entries.len(), 2, "tool calls only, not the model call: {entries:#?}");
    assert!(entries.iter().all(|e| e["kind"] == "mcp"), "{entries:#?}");
    let allowed = entries.iter().find(|e| e["mcp"]["decision"] == "allowed").expect("the allowed call");
    assert_eq!(allowed["mcp"]["server"], "m");
    assert_eq!(allowed["mcp"]["tool"], "echo");
    assert_eq!(allowed["mcp"]["endpoint"], "m");
    assert_eq!(allowed["subject"], "master");
    assert_eq!(allowed["status"], 200);
    assert_eq!(allowed["requested_model"], "m/echo");
    let sha = allowed["mcp"]["arguments_sha256"].as_str().unwrap();
    assert!(sha.len() == 64 && sha.bytes().all(|b| b.is_ascii_hexdigit()), "{sha}");
    assert!(allowed["mcp"]["result_bytes"].as_u64().is_some_and(|n| n > 0), "{allowed}");
    assert_eq!(allowed["trace_id"], trace, "the client's trace");
    let refused = entries.iter().find(|e| e["mcp"]["decision"] == "refused").expect("the refused call");
    assert_eq!(refused["subject"], "key:narrow");
    assert_eq!(refused["requested_model"], "m/leak");
    // Unknown and forbidden tools are logged without a server and tool (docs/mcp.md).
    assert_eq!((refused["mcp"]["server"].as_str(), refused["mcp"]["tool"].as_str()), (Some("-"), Some("-")));
    assert_eq!(refused["mcp"]["result_bytes"], 0);
    assert_eq!(refused["mcp"]["arguments_sha256"].as_str().map(str::len), Some(64));
    assert!(mock.calls("leak").is_empty());

    let metrics = admin_get(&h, "/metrics").await;
    assert_eq!(metrics.status, 200);
    let text = metrics.text();
    let line = text
        .lines()
        .find(|l| {
            l.starts_with("tollgate_mcp_tool_calls_total{")
                && l.contains(r#"decision="allowed""#)
                && l.contains(r#"tool="echo""#)
        })
        .unwrap_or_else(|| panic!("no allowed echo call in the metrics:\n{text}"));
    assert!(line.ends_with(" 1"), "{line}");
    assert!(
        text.lines().any(|l| l.starts_with("tollgate_mcp_tool_calls_total{") && l.contains(r#"decision="refused""#))
    );

    let r = admin_get(&h, "/admin/mcp/servers?refresh=true").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let body = r.json();
    let server = |name: &str| body["servers"].as_array().unwrap().iter().find(|s| s["name"] == name).unwrap().clone();
    let m = server("m");
    assert_eq!(m["health"]["status"], "ok", "{m}");
    assert_eq!(m["transport"], "streamable_http");
    let tools = m["tools"].as_array().unwrap();
    assert_eq!(tools.len(), BUILTIN_TOOLS.len());
    assert_eq!(tools[0]["definition"]["name"], "echo");
    assert_eq!(tools[0]["definition"]["inputSchema"]["required"], json!(["text"]));
    assert!(!r.text().contains("up-secret"), "the credential is never shown");
    let d = server("down");
    assert_eq!(d["health"]["status"], "error", "{d}");
    assert!(d["health"]["error"].as_str().is_some_and(|e| !e.is_empty()), "{d}");
    assert!(body["sessions"].as_u64().is_some_and(|n| n >= 2), "{body}");
    // One server, read now.
    let r = admin_get(&h, "/admin/mcp/servers/down").await;
    assert_eq!(r.json()["health"]["status"], "error");
    assert_eq!(admin_get(&h, "/admin/mcp/servers/nope").await.status, 404);
}
