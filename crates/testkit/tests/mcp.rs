//! The mock MCP server spoken to as a client would: Streamable HTTP, legacy
//! HTTP+SSE, and the `mock-mcp` stdio binary.

use std::process::Stdio;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use testkit::{McpMock, McpOptions};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

type HttpClient = Client<HttpConnector, Full<Bytes>>;

fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

async fn send(
    c: &HttpClient,
    method: Method,
    url: &str,
    session: Option<&str>,
    body: Option<Value>,
) -> Response<Incoming> {
    let mut req = Request::builder()
        .method(method)
        .uri(url)
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .header("authorization", "Bearer static-credential")
        .header("x-trace", "t1");
    if let Some(s) = session {
        req = req.header("mcp-session-id", s);
    }
    let body = body.map(|b| Bytes::from(b.to_string())).unwrap_or_default();
    c.request(req.body(Full::new(body)).expect("request")).await.expect("send")
}

fn rpc(id: u64, method: &str, params: Value) -> Value {
    json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params })
}

async fn text(r: Response<Incoming>) -> String {
    String::from_utf8(r.into_body().collect().await.expect("body").to_bytes().to_vec()).expect("utf-8")
}

/// The next SSE event (`event`, `data`) from a streaming body, reading frames as needed.
async fn next_event(body: &mut Incoming, buf: &mut String) -> (String, String) {
    loop {
        if let Some(end) = buf.find("\n\n") {
            let raw: String = buf.drain(..end + 2).collect();
            let field = |name: &str| {
                raw.lines().find_map(|l| l.strip_prefix(name)).map(|v| v.trim_start().to_string()).unwrap_or_default()
            };
            return (field("event:"), field("data:"));
        }
        let frame = tokio::time::timeout(Duration::from_secs(5), body.frame()).await.expect("event in time");
        let frame = frame.expect("stream open").expect("frame");
        if let Ok(data) = frame.into_data() {
            buf.push_str(std::str::from_utf8(&data).expect("utf-8"));
        }
    }
}

#[tokio::test]
async fn streamable_http_session_tools_progress_and_expiry() {
    let mock = McpMock::start().await;
    let c = client();
    let url = mock.mcp_url();

    let init = rpc(1, "initialize", json!({ "protocolVersion": "2025-06-18", "capabilities": {} }));
    let r = send(&c, Method::POST, &url, None, Some(init)).await;
    assert_eq!(r.status(), 200);
    let session = r.headers()["mcp-session-id"].to_str().expect("ascii").to_string();
    let v: Value = serde_json::from_str(&text(r).await).expect("json");
    assert_eq!(v["result"]["protocolVersion"], "2025-06-18");

    let note = json!({ "jsonrpc": "2.0", "method": "notifications/initialized" });
    assert_eq!(send(&c, Method::POST, &url, Some(&session), Some(note)).await.status(), 202);

    let call = rpc(2, "tools/call", json!({ "name": "echo", "arguments": { "text": "hi" } }));
    let r = send(&c, Method::POST, &url, Some(&session), Some(call)).await;
    assert_eq!(r.headers()["content-type"], "application/json");
    let v: Value = serde_json::from_str(&text(r).await).expect("json");
    assert_eq!(v["result"]["content"][0]["text"], "hi");

    let whoami = rpc(3, "tools/call", json!({ "name": "whoami", "arguments": {} }));
    let v: Value = serde_json::from_str(&text(send(&c, Method::POST, &url, Some(&session), Some(whoami)).await).await)
        .expect("json");
    assert_eq!(v["result"]["content"][0]["text"], "authorization=Bearer static-credential\nx-trace=t1");

    // Progress first, so the answer is an SSE stream: two progress events, then the result.
    let slow =
        rpc(4, "tools/call", json!({ "name": "slow", "arguments": { "ms": 20 }, "_meta": { "progressToken": "p1" } }));
    let r = send(&c, Method::POST, &url, Some(&session), Some(slow)).await;
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    let body = text(r).await;
    let events: Vec<Value> = body
        .split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|e| {
            assert!(e.starts_with("event: message\ndata: "), "{e}");
            serde_json::from_str(e.trim_start_matches("event: message\ndata: ")).expect("json")
        })
        .collect();
    assert_eq!(events.len(), 3);
    assert_eq!(events[0]["params"], json!({ "progressToken": "p1", "progress": 1, "total": 2 }));
    assert_eq!(events[1]["params"]["progress"], 2);
    assert_eq!(events[2]["result"]["content"][0]["text"], "done");

    assert_eq!(mock.calls("echo"), vec![json!({ "text": "hi" })]);
    assert_eq!(mock.count("tools/call"), 3);
    let rec = &mock.received()[2];
    assert_eq!(rec.session.as_deref(), Some(session.as_str()));
    assert_eq!(rec.header("authorization"), Some("Bearer static-credential"));

    let ping = rpc(5, "ping", json!({}));
    assert_eq!(send(&c, Method::POST, &url, None, Some(ping.clone())).await.status(), 400);
    mock.expire_sessions();
    assert_eq!(send(&c, Method::POST, &url, Some(&session), Some(ping.clone())).await.status(), 404);

    mock.fail_next(1, 503);
    assert_eq!(send(&c, Method::POST, &url, None, Some(ping)).await.status(), 503);
}

#[tokio::test]
async fn streamable_http_get_stream_sampling_and_delete() {
    let mock = McpMock::start().await;
    let c = client();
    let url = mock.mcp_url();
    let r = send(&c, Method::POST, &url, None, Some(rpc(1, "initialize", json!({})))).await;
    let session = r.headers()["mcp-session-id"].to_str().expect("ascii").to_string();

    // A rug pull reaches the open GET stream.
    let r = send(&c, Method::GET, &url, Some(&session), None).await;
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    let (mut stream, mut buf) = (r.into_body(), String::new());
    assert!(mock.set_description("echo", "now evil"));
    let (event, data) = next_event(&mut stream, &mut buf).await;
    assert_eq!(event, "message");
    assert_eq!(serde_json::from_str::<Value>(&data).expect("json")["method"], "notifications/tools/list_changed");

    // `sample` streams its request to the client, whose answer comes as a POST of its own.
    let call = rpc(2, "tools/call", json!({ "name": "sample", "arguments": { "prompt": "say hi" } }));
    let r = send(&c, Method::POST, &url, Some(&session), Some(call)).await;
    let (mut body, mut buf) = (r.into_body(), String::new());
    let req: Value = serde_json::from_str(&next_event(&mut body, &mut buf).await.1).expect("json");
    assert_eq!(req["method"], "sampling/createMessage");
    assert_eq!(req["params"]["messages"][0]["content"]["text"], "say hi");
    let reply = json!({ "jsonrpc": "2.0", "id": req["id"],
        "result": { "role": "assistant", "model": "m", "content": { "type": "text", "text": "hello" } } });
    assert_eq!(send(&c, Method::POST, &url, Some(&session), Some(reply)).await.status(), 202);
    let done: Value = serde_json::from_str(&next_event(&mut body, &mut buf).await.1).expect("json");
    assert_eq!(done["result"]["content"][0]["text"], "sampled: hello");

    assert_eq!(send(&c, Method::DELETE, &url, Some(&session), None).await.status(), 200);
    assert_eq!(send(&c, Method::POST, &url, Some(&session), Some(rpc(3, "ping", json!({})))).await.status(), 404);

    let no_get = McpMock::start_with(McpOptions { disable_get_stream: true, ..McpOptions::default() }).await;
    let r = send(&c, Method::POST, &no_get.mcp_url(), None, Some(rpc(1, "initialize", json!({})))).await;
    let s = r.headers()["mcp-session-id"].to_str().expect("ascii").to_string();
    assert_eq!(send(&c, Method::GET, &no_get.mcp_url(), Some(&s), None).await.status(), 405);
}

#[tokio::test]
async fn legacy_sse_endpoint_then_answers_on_the_stream() {
    let mock = McpMock::start().await;
    let c = client();
    let r = send(&c, Method::GET, &mock.sse_url(), None, None).await;
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    let (mut stream, mut buf) = (r.into_body(), String::new());
    let (event, endpoint) = next_event(&mut stream, &mut buf).await;
    assert_eq!(event, "endpoint");
    assert!(endpoint.starts_with("/messages?sessionId="), "{endpoint}");

    let post_url = format!("http://{}{endpoint}", mock.addr);
    let call = rpc(7, "tools/call", json!({ "name": "add", "arguments": { "a": 2, "b": 3 } }));
    assert_eq!(send(&c, Method::POST, &post_url, None, Some(call)).await.status(), 202);
    let (event, data) = next_event(&mut stream, &mut buf).await;
    assert_eq!(event, "message");
    let v: Value = serde_json::from_str(&data).expect("json");
    assert_eq!(v["id"], 7);
    assert_eq!(v["result"]["structuredContent"], json!({ "sum": 5 }));
    assert_eq!(mock.received()[0].session.as_deref(), endpoint.strip_prefix("/messages?sessionId="));

    let unknown = format!("http://{}/messages?sessionId=nope", mock.addr);
    assert_eq!(send(&c, Method::POST, &unknown, None, Some(rpc(8, "ping", json!({})))).await.status(), 404);
}

#[tokio::test]
async fn stdio_binary_marks_records_samples_and_exits() {
    let dir = std::env::temp_dir().join(format!("mock-mcp-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let record = dir.join("received.jsonl");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_mock-mcp"))
        .args(["--tools", "echo,sample", "--exit-after", "2", "--record"])
        .arg(&record)
        .env("MOCK_MCP_MARK", "A")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn mock-mcp");
    let mut stdin = child.stdin.take().expect("stdin");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut next = async || -> Value {
        let line = tokio::time::timeout(Duration::from_secs(5), lines.next_line()).await.expect("in time");
        serde_json::from_str(&line.expect("read").expect("a line")).expect("json")
    };
    let mut say = async |v: Value| stdin.write_all(format!("{v}\n").as_bytes()).await.expect("write");

    say(rpc(1, "initialize", json!({}))).await;
    assert_eq!(next().await["result"]["serverInfo"]["name"], "mock-mcp");
    say(rpc(2, "tools/call", json!({ "name": "echo", "arguments": { "text": "hi" } }))).await;
    assert_eq!(next().await["result"]["content"][0]["text"], "A:hi");

    say(rpc(3, "tools/call", json!({ "name": "sample", "arguments": { "prompt": "p" } }))).await;
    let req = next().await;
    assert_eq!(req["method"], "sampling/createMessage");
    say(json!({ "jsonrpc": "2.0", "id": req["id"], "result": { "content": { "type": "text", "text": "ok" } } })).await;
    assert_eq!(next().await["result"]["content"][0]["text"], "sampled: ok");

    // That was the second tool call: the server exits, as if it crashed.
    let status = tokio::time::timeout(Duration::from_secs(5), child.wait()).await.expect("exits").expect("status");
    assert_eq!(status.code(), Some(1));
    let recorded = std::fs::read_to_string(&record).expect("record file");
    assert_eq!(recorded.lines().count(), 4);
    let _ = std::fs::remove_dir_all(&dir);
}
