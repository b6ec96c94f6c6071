//! `tollgate demo`: starts a real gateway on the built-in mock provider and
//! walks through what it does with real HTTP requests, printed as they go.
//! Later capabilities add their scenes here.

use std::collections::HashMap;
use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};

use crate::config::reload::{Live, Source};
use crate::server::Gateway;
use crate::state::Shared;

const DEMO_CONFIG: &str = r#"
server: { listen: "127.0.0.1:0", admin_listen: "127.0.0.1:0" }
store: { url: "memory://" }
auth:
  master_key: "${DEMO_MASTER_KEY}"
  keys:
    - name: demo-app
      key: "${DEMO_APP_KEY}"
      models: ["mock/*", "prod/*", "metered/*"]
      metadata: { team: demo }
    - name: demo-agent
      key: "${DEMO_AGENT_KEY}"
      tools: ["ops/search_docs", "ops/read_file"]
    - name: demo-assistant
      key: "${DEMO_ASSISTANT_KEY}"
      models: ["mock/*"]
      tools: ["ops/fetch_page", "ops/send_email"]
agent:
  tool_policies:
    - { tools: ["ops/send_email"], when_untrusted: block }
mcp_servers:
  - name: ops
    command: "${DEMO_EXE}"
    args: [mcp, mock-server]
providers:
  - name: mock
    type: mock
    mock: { chunk_delay: 80ms }
    models: [{ name: echo }, { name: embed }]
  - name: premium
    type: mock
    models: [{ name: big-model }]
  - name: flaky
    type: mock
    mock: { failure: { status: 503, every: 1 } }
    models: [{ name: echo }]
  - name: metered
    type: mock
    mock: { completion_tokens: 800 }
    models: [{ name: agent, input_cost_per_mtok: 3.0, output_cost_per_mtok: 15.0 }]
  - name: next-gen
    type: mock
    mock: { reply: "an answer from the canary model" }
    models: [{ name: echo }]
budgets:
  - { id: agent-loop, when: { models: ["metered/*"] }, limit_by: [metadata.ticket], unit: cost_per_day, limit: 0.05, alert_at: [0.5, 0.8] }
rate_limits:
  - { id: per-key, limit_by: [subject], unit: requests_per_minute, limit: 600 }
guardrails:
  definitions:
    - { name: pii-redaction, type: pii, action: mutate }
    - { name: no-secrets-out, type: secrets, action: mutate }
  enforce: { llm_input: [pii-redaction], llm_output: [no-secrets-out], mcp_tool_post: [no-secrets-out] }
virtual_models:
  - name: prod/assistant
    strategy: priority
    targets:
      - { model: flaky/echo, retry: { attempts: 2, backoff: 50ms } }
      - { model: mock/echo }
  - name: prod/canary
    strategy: weight
    targets:
      - { model: mock/echo, weight: 80 }
      - { model: next-gen/echo, weight: 20 }
"#;

/// A fresh random secret (`tg-` + 48 hex digits) from the OS.
pub fn random_key() -> String {
    crate::identity::keys::generate_secret()
}

struct Tour {
    client: Client<HttpConnector, Full<Bytes>>,
    base: String,
    admin: String,
    app_key: String,
    agent_key: String,
    assistant_key: String,
    master: String,
}

pub async fn run(keep_running: bool) -> ExitCode {
    let app_key = random_key();
    let agent_key = random_key();
    let assistant_key = random_key();
    let master = random_key();
    // The MCP scene's tool server is this binary's own `mcp mock-server`.
    let exe = std::env::current_exe().map(|p| p.display().to_string()).unwrap_or_else(|_| "tollgate".into());
    let props: HashMap<String, String> = [
        ("DEMO_MASTER_KEY".to_string(), master.clone()),
        ("DEMO_APP_KEY".to_string(), app_key.clone()),
        ("DEMO_AGENT_KEY".to_string(), agent_key.clone()),
        ("DEMO_ASSISTANT_KEY".to_string(), assistant_key.clone()),
        ("DEMO_EXE".to_string(), exe),
    ]
    .into();
    let source = Source::Text { text: DEMO_CONFIG.to_string(), origin: "demo".into(), props };
    let live = match Live::new(source, Shared::default()) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let gw = match Gateway::start(live).await {
        Ok(g) => g,
        Err(e) => {
            eprintln!("tollgate demo: cannot listen: {e}");
            return ExitCode::FAILURE;
        }
    };
    let tour = Arc::new(Tour {
        client: Client::builder(TokioExecutor::new()).build_http(),
        base: format!("http://{}", gw.data_addr),
        admin: format!("http://{}", gw.admin_addr),
        app_key: app_key.clone(),
        agent_key,
        assistant_key,
        master: master.clone(),
    });
    println!("tollgate demo — a gateway is running at {} (admin {})", tour.base, gw.admin_addr);
    println!("the application key `demo-app` may use mock/*; every request below is real HTTP.\n");
    let ok = tour.scenes().await;
    if keep_running {
        println!("\nstill serving at {}/v1 — try:", tour.base);
        println!("  curl {}/v1/chat/completions -H 'authorization: Bearer {app_key}' \\", tour.base);
        println!("       -d '{{\"model\":\"mock/echo\",\"messages\":[{{\"role\":\"user\",\"content\":\"hi\"}}]}}'");
        println!("master key (admin, port {}): {master}\nCtrl-C to stop.", gw.admin_addr.port());
        gw.run_until_signal().await;
    } else {
        gw.shutdown().await;
    }
    if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

impl Tour {
    async fn scenes(&self) -> bool {
        let mut ok = true;
        scene("1. A chat completion, routed to the mock provider");
        let chat = json!({ "model": "mock/echo", "messages": [{ "role": "user", "content": "Hello, tollgate!" }] });
        ok &= self.post(&chat, Some(&self.app_key)).await.is_some_and(|v| {
            println!("   reply: {}", v.pointer("/choices/0/message/content").unwrap_or(&Value::Null));
            true
        });

        scene("2. A streamed completion, relayed chunk by chunk as it is produced");
        let stream = json!({ "model": "mock/echo", "stream": true, "stream_options": { "include_usage": true },
                             "messages": [{ "role": "user", "content": "Streams arrive word by word, never buffered whole." }] });
        ok &= self.stream(&stream).await;

        scene("3. A tool call, then the tool result sent back for the final answer");
        let tools = json!([{ "type": "function", "function": { "name": "get_weather", "description": "Weather for a city",
            "parameters": { "type": "object", "properties": { "city": { "type": "string" } }, "required": ["city"] } } }]);
        let first =
            json!({ "model": "mock/echo", "tools": tools, "messages": [{ "role": "user", "content": "Paris" }] });
        let Some(v) = self.post(&first, Some(&self.app_key)).await else { return false };
        let call = v.pointer("/choices/0/message/tool_calls/0").cloned().unwrap_or(Value::Null);
        println!(
            "   the model asks for: {}({})",
            call.pointer("/function/name").unwrap_or(&Value::Null),
            call.pointer("/function/arguments").and_then(Value::as_str).unwrap_or("")
        );
        let second = json!({ "model": "mock/echo", "tools": tools, "messages": [
            { "role": "user", "content": "Paris" },
            { "role": "assistant", "content": null, "tool_calls": [call.clone()] },
            { "role": "tool", "tool_call_id": call.get("id").cloned().unwrap_or(Value::Null), "content": "18°C and sunny" } ] });
        ok &= self.post(&second, Some(&self.app_key)).await.is_some_and(|v| {
            println!("   final answer: {}", v.pointer("/choices/0/message/content").unwrap_or(&Value::Null));
            true
        });

        scene("4. Governance: no key is refused; a key cannot reach a model it was not granted");
        self.post(&chat, None).await;
        let premium = json!({ "model": "premium/big-model", "messages": [{ "role": "user", "content": "hi" }] });
        self.post(&premium, Some(&self.app_key)).await;

        scene("5. Fallback: `prod/assistant` tries a failing provider (with one retry), then the next target");
        let assistant =
            json!({ "model": "prod/assistant", "messages": [{ "role": "user", "content": "Are you there?" }] });
        ok &= self.post(&assistant, Some(&self.app_key)).await.is_some_and(|v| {
            println!(
                "   reply: {} — the application never saw the 503s",
                v.pointer("/choices/0/message/content").unwrap_or(&Value::Null)
            );
            true
        });

        scene("6. Canary: `prod/canary` sends about 20% of traffic to the next-generation model");
        let canary = json!({ "model": "prod/canary", "messages": [{ "role": "user", "content": "hello" }] });
        let mut counts: std::collections::BTreeMap<String, u32> = Default::default();
        for _ in 0..50 {
            match self.client.request(self.request(&canary, Some(&self.app_key))).await {
                Ok(r) => {
                    let m = r
                        .headers()
                        .get("x-tollgate-resolved-model")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("?")
                        .to_string();
                    *counts.entry(m).or_default() += 1;
                }
                Err(_) => ok = false,
            }
        }
        println!("   50 requests → {}", counts.iter().map(|(m, n)| format!("{m}: {n}")).collect::<Vec<_>>().join(", "));
        ok &= counts.values().sum::<u32>() == 50;

        scene("7. Budgets: an agent stuck in a loop on ticket OPS-42 is stopped at its $0.05 daily budget");
        let step = json!({ "model": "metered/agent", "max_tokens": 800, "messages": [{ "role": "user", "content": "try again" }] });
        let mut calls = 0;
        loop {
            let mut req = self.request(&step, Some(&self.app_key));
            req.headers_mut().insert("x-tollgate-metadata", http::HeaderValue::from_static(r#"{"ticket":"OPS-42"}"#));
            let Ok(resp) = self.client.request(req).await else { return false };
            let status = resp.status().as_u16();
            let budget =
                resp.headers().get("x-tollgate-budget").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
            let body = resp.into_body().collect().await.map(|c| c.to_bytes()).unwrap_or_default();
            if status != 200 {
                let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                println!(
                    "   call {}: ← {status} (budget `{budget}`) {}",
                    calls + 1,
                    v.pointer("/error/message").unwrap_or(&Value::Null)
                );
                ok &= status == 429 && budget == "agent-loop";
                break;
            }
            calls += 1;
            if calls > 100 {
                return false;
            }
        }
        println!(
            "   {calls} calls of about $0.012 each went through; the loop was stopped before the budget was passed"
        );

        scene("8. Guardrails: a card number is redacted before the model sees it; a leaked key is masked");
        let card = json!({ "model": "mock/echo", "messages": [{ "role": "user", "content": "Refund order 1182 to card 4111 1111 1111 1111 please" }] });
        ok &= self.post(&card, Some(&self.app_key)).await.is_some_and(|v| {
            let reply = v.pointer("/choices/0/message/content").and_then(Value::as_str).unwrap_or("");
            println!("   what the model saw and echoed: {reply:?}");
            reply.contains("<CREDIT_CARD_1>")
        });
        let leak = format!("The deploy key is AKIA{} — keep it safe", "Q7Z3X9K2M4N8P6R5");
        let leak = json!({ "model": "mock/echo", "messages": [{ "role": "user", "content": leak }] });
        ok &= self.post(&leak, Some(&self.app_key)).await.is_some_and(|v| {
            let reply = v.pointer("/choices/0/message/content").and_then(Value::as_str).unwrap_or("");
            println!("   what the client received: {reply:?}");
            reply.contains("[REDACTED:AWS_ACCESS_KEY]")
        });

        scene("9. MCP: an agent's key sees two of five tools; a forbidden call is refused; a leaked key is masked");
        ok &= self.mcp_scene().await;

        scene("10. Agents: the gateway runs the tool loop; an injected web page cannot make the agent send an e-mail");
        ok &= self.agent_scene().await;
        ok
    }

    async fn agent_scene(&self) -> bool {
        let body = json!({ "model": "mock/echo", "tools": [{ "type": "mcp", "server": "ops" }],
            "messages": [{ "role": "user", "content": "use fetch_page on https://status.example.com" }] });
        println!("   → POST /v1/chat/completions (demo-assistant key) with tools: [{{type: mcp, server: ops}}]");
        println!("     the page carries a hidden instruction to call send_email; the mock model obeys such instructions");
        let resp = match self.client.request(self.request(&body, Some(&self.assistant_key))).await {
            Ok(r) => r,
            Err(e) => {
                println!("   ✗ {e}");
                return false;
            }
        };
        let status = resp.status().as_u16();
        let h = resp.headers().clone();
        let header = |n: &str| h.get(n).and_then(|v| v.to_str().ok()).unwrap_or("-").to_string();
        let id = header("x-tollgate-request-id");
        let bytes = resp.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
        let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let answer = v.pointer("/choices/0/message/content").and_then(Value::as_str).unwrap_or("").to_string();
        println!("   ← {status}  x-tollgate-agent-steps: {}  x-tollgate-tools-blocked: {}", header("x-tollgate-agent-steps"), header("x-tollgate-tools-blocked"));
        println!("   reply: {answer}");
        tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
        let req = Request::builder()
            .uri(format!("{}/admin/logs?parent={id}", self.admin))
            .header("authorization", format!("Bearer {}", self.master))
            .body(Full::new(Bytes::new()));
        let mut tools_run = Vec::new();
        if let Ok(req) = req
            && let Ok(resp) = self.client.request(req).await
            && let Ok(body) = resp.into_body().collect().await
            && let Ok(v) = serde_json::from_slice::<Value>(&body.to_bytes())
        {
            println!("   the calls made for it (GET /admin/logs?parent={id}):");
            for e in v["data"].as_array().into_iter().flatten().rev() {
                println!("     {}  {}  {}", e["kind"].as_str().unwrap_or("-"), e["requested_model"].as_str().unwrap_or("-"), e["status"]);
                if e["kind"] == "mcp" {
                    tools_run.push(e["requested_model"].as_str().unwrap_or("-").to_string());
                }
            }
        }
        status == 200
            && header("x-tollgate-tools-blocked") == "ops/send_email"
            && tools_run == ["ops/fetch_page"]
            && answer.contains("operational")
    }

    /// One MCP message to `/mcp/ops` with the agent's key; the session id
    /// it returned (on initialize) and the JSON-RPC answer.
    async fn mcp(&self, session: Option<&str>, msg: Value) -> Option<(Option<String>, Value)> {
        let mut b = Request::builder()
            .method(Method::POST)
            .uri(format!("{}/mcp/ops", self.base))
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("authorization", format!("Bearer {}", self.agent_key));
        if let Some(s) = session {
            b = b.header("mcp-session-id", s);
        }
        let req = b.body(Full::new(Bytes::from(msg.to_string()))).ok()?;
        let resp = self.client.request(req).await.ok()?;
        let sid = resp.headers().get("mcp-session-id").and_then(|v| v.to_str().ok()).map(str::to_string);
        let bytes = resp.into_body().collect().await.ok()?.to_bytes();
        Some((sid, serde_json::from_slice(&bytes).ok()?))
    }

    async fn mcp_scene(&self) -> bool {
        let call = |id: u64, name: &str, args: Value| json!({ "jsonrpc": "2.0", "id": id, "method": "tools/call", "params": { "name": name, "arguments": args } });
        println!("   → POST /mcp/ops initialize (demo-agent key; the server has five tools)");
        let init = json!({ "jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": { "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": { "name": "demo", "version": "1" } } });
        let Some((Some(sid), _)) = self.mcp(None, init).await else {
            println!("   ✗ no MCP session");
            return false;
        };
        let list = self.mcp(Some(&sid), json!({ "jsonrpc": "2.0", "id": 2, "method": "tools/list" })).await;
        let names: Vec<String> = list
            .and_then(|(_, v)| v.pointer("/result/tools").and_then(Value::as_array).cloned())
            .unwrap_or_default()
            .iter()
            .filter_map(|t| t["name"].as_str().map(str::to_string))
            .collect();
        println!("   ← tools/list: {names:?}");
        let forbidden =
            self.mcp(Some(&sid), call(3, "send_email", json!({ "to": "x@example.com", "body": "hi" }))).await;
        let refusal = forbidden.as_ref().and_then(|(_, v)| v.pointer("/error/message")).cloned().unwrap_or(Value::Null);
        println!("   → tools/call send_email  ← refused: {refusal}");
        let read = self.mcp(Some(&sid), call(4, "read_file", json!({ "path": "deploy.env" }))).await;
        let text = read
            .as_ref()
            .and_then(|(_, v)| v.pointer("/result/content/0/text").and_then(Value::as_str))
            .unwrap_or("")
            .to_string();
        println!("   → tools/call read_file   ← {text:?}");
        // The log writer batches; give it a moment.
        tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
        let req = Request::builder()
            .uri(format!("{}/admin/logs?kind=mcp", self.admin))
            .header("authorization", format!("Bearer {}", self.master))
            .body(Full::new(Bytes::new()));
        let mut logged = 0;
        if let Ok(req) = req
            && let Ok(resp) = self.client.request(req).await
            && let Ok(body) = resp.into_body().collect().await
            && let Ok(v) = serde_json::from_slice::<Value>(&body.to_bytes())
        {
            println!("   the request log (GET /admin/logs?kind=mcp):");
            for e in v["data"].as_array().into_iter().flatten().rev() {
                logged += 1;
                println!(
                    "     {}  {}  {}  decision={}",
                    e["subject"].as_str().unwrap_or("-"),
                    e["requested_model"].as_str().unwrap_or("-"),
                    e["status"],
                    e.pointer("/mcp/decision").and_then(Value::as_str).unwrap_or("-"),
                );
            }
        }
        names == ["search_docs", "read_file"]
            && refusal.as_str().is_some_and(|m| m.contains("Unknown tool"))
            && text.contains("[REDACTED:AWS_ACCESS_KEY]")
            && logged >= 2
    }

    fn request(&self, body: &Value, key: Option<&str>) -> Request<Full<Bytes>> {
        let mut b = Request::builder()
            .method(Method::POST)
            .uri(format!("{}/v1/chat/completions", self.base))
            .header("content-type", "application/json");
        if let Some(k) = key {
            b = b.header("authorization", format!("Bearer {k}"));
        }
        b.body(Full::new(Bytes::from(body.to_string()))).unwrap_or_default()
    }

    /// Sends a request, prints both directions; returns the JSON body on 200.
    async fn post(&self, body: &Value, key: Option<&str>) -> Option<Value> {
        println!("   → POST /v1/chat/completions {}", if key.is_some() { "(demo-app key)" } else { "(no key)" });
        println!("     {}", body);
        let resp = match self.client.request(self.request(body, key)).await {
            Ok(r) => r,
            Err(e) => {
                println!("   ✗ {e}");
                return None;
            }
        };
        let status = resp.status();
        let h = resp.headers().clone();
        let bytes = resp.into_body().collect().await.ok()?.to_bytes();
        print_head(status.as_u16(), &h);
        let v: Value = serde_json::from_slice(&bytes).ok()?;
        if !status.is_success() {
            println!("     {}", v.pointer("/error/message").unwrap_or(&Value::Null));
            return None;
        }
        Some(v)
    }

    async fn stream(&self, body: &Value) -> bool {
        println!("   → POST /v1/chat/completions (stream: true)");
        let resp = match self.client.request(self.request(body, Some(&self.app_key))).await {
            Ok(r) => r,
            Err(e) => {
                println!("   ✗ {e}");
                return false;
            }
        };
        print_head(resp.status().as_u16(), resp.headers());
        print!("   reply: ");
        let mut body = resp.into_body();
        let mut pending = String::new();
        let mut done = false;
        while let Some(Ok(frame)) = body.frame().await {
            let Ok(data) = frame.into_data() else { continue };
            pending.push_str(&String::from_utf8_lossy(&data));
            while let Some(end) = pending.find("\n\n") {
                let event: String = pending.drain(..end + 2).collect();
                let payload = event.trim().trim_start_matches("data:").trim();
                if payload == "[DONE]" {
                    done = true;
                } else if let Ok(v) = serde_json::from_str::<Value>(payload) {
                    if let Some(t) = v.pointer("/choices/0/delta/content").and_then(Value::as_str) {
                        print!("{t}");
                        let _ = std::io::stdout().flush();
                    }
                    if let Some(u) = v.get("usage").filter(|u| !u.is_null()) {
                        print!("\n   usage: {u}");
                    }
                }
            }
        }
        println!("\n   stream finished {}", if done { "with [DONE]" } else { "WITHOUT [DONE]" });
        done
    }
}

fn scene(title: &str) {
    println!("\n── {title}");
}

fn print_head(status: u16, h: &http::HeaderMap) {
    let get = |n: &str| h.get(n).and_then(|v| v.to_str().ok()).unwrap_or("-").to_string();
    println!(
        "   ← {status}  resolved-model: {}  attempts: {}  server-timing: {}  request-id: {}",
        get("x-tollgate-resolved-model"),
        get("x-tollgate-attempts"),
        get("server-timing"),
        get("x-tollgate-request-id")
    );
    if let Some(g) = h.get("x-tollgate-guardrails").and_then(|v| v.to_str().ok()) {
        println!("     guardrails: {g}");
    }
}

/// A dozen requests to the mock provider through the gateway itself, sent
/// once when it runs on its embedded defaults, so that a first look at the
/// console (`/ui/`) finds traffic to explore: two teams, streams, an
/// embedding and a refused model. Each is a real request, logged as any.
pub fn traffic(gw: &Gateway, master_key: String) {
    let shared = gw.app.live.shared();
    let admin = gw.admin_addr;
    crate::task::spawn("demo-traffic", async move {
        let mut sent = 0;
        for i in 0..12 {
            let team = if i % 3 == 0 { "search" } else { "payments" };
            let model = match i {
                7 => "mock/no-such-model",
                _ => "mock/echo",
            };
            let body = json!({ "model": model, "stream": i % 4 == 1,
                "messages": [{ "role": "user", "content": format!("demo request {} from {team}", i + 1) }] });
            let mut headers = http::HeaderMap::new();
            let (Ok(auth), Ok(meta)) = (
                http::HeaderValue::from_str(&format!("Bearer {master_key}")),
                http::HeaderValue::from_str(&format!("{{\"team\":\"{team}\",\"project\":\"demo\"}}")),
            ) else {
                return;
            };
            headers.insert(http::header::AUTHORIZATION, auth);
            headers.insert("x-tollgate-metadata", meta);
            let _ = shared.loopback.call(headers, bytes::Bytes::from(body.to_string())).await;
            sent += 1;
        }
        eprintln!("tollgate: sent {sent} demo requests to the mock provider; see them at http://{admin}/ui/");
    });
}
