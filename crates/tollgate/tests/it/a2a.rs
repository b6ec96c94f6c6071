//! The A2A proxy through the real router against the test kit's mock agent:
//! card rewriting, both bindings and both generations of method names,
//! streams relayed as they happen, guardrails on streamed parts, failures
//! of the agent, malformed requests, and what the log and admin API show.

use std::time::Duration;

use bytes::Bytes;
use http::Method;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use testkit::{A2aMock, A2aOptions};

use crate::common::{Harness, MASTER, eventually, sse_data};

const AGENT: &str = "agent-key-a2a";
const OTHER: &str = "other-key-a2a";
const TEAMED: &str = "teamed-key-a2a";
const TOKEN: &str = "mock-agent-token";

fn yaml(agents: &str, more: &str) -> String {
    format!(
        r#"
server: {{ listen: "127.0.0.1:0", admin_listen: "127.0.0.1:0" }}
auth:
  master_key: "{MASTER}"
  keys:
    - {{ name: agent, key: "{AGENT}", agents: ["a*"] }}
    - {{ name: other, key: "{OTHER}", agents: ["nothing"] }}
    - {{ name: teamed, key: "{TEAMED}", metadata: {{ team: research }} }}
  teams:
    research: {{ agents: ["b"] }}
providers:
  - {{ name: mock, type: mock, models: [{{ name: echo }}] }}
a2a_agents:
{agents}
{more}
"#
    )
}

/// An `a2a_agents` entry for the mock, with its token.
fn agent(name: &str, mock: &A2aMock, more: &str) -> String {
    format!(
        "  - {{ name: {name}, url: \"{}\", auth: {{ type: static_header, header: authorization, value: \"Bearer {TOKEN}\" }}{more} }}\n",
        mock.url
    )
}

async fn mock() -> A2aMock {
    A2aMock::start_with(A2aOptions { token: Some(TOKEN.into()), ..Default::default() }).await
}

fn send(method: &str, text: &str) -> Value {
    let message = if method.contains('/') {
        json!({ "kind": "message", "messageId": "m-1", "role": "user", "parts": [{ "kind": "text", "text": text }] })
    } else {
        json!({ "messageId": "m-1", "role": "ROLE_USER", "parts": [{ "text": text }] })
    };
    json!({ "jsonrpc": "2.0", "id": 1, "method": method, "params": { "message": message } })
}

async fn rpc(h: &Harness, name: &str, key: &str, body: &Value) -> crate::common::Resp {
    let version = if body["method"].as_str().is_some_and(|m| m.contains('/')) { "0.3" } else { "1.0" };
    h.send(Method::POST, &h.url(&format!("/a2a/{name}")), Some(key), &[("a2a-version", version)], body.to_string())
        .await
}

async fn logs(h: &Harness) -> Vec<Value> {
    let mut out = Vec::new();
    eventually("a2a log entries", async || {
        let r = h.send(Method::GET, &h.admin_url("/admin/logs?kind=a2a"), Some(MASTER), &[], Bytes::new()).await;
        out = r.json()["data"].as_array().cloned().unwrap_or_default();
        !out.is_empty()
    })
    .await;
    out
}

#[tokio::test]
async fn the_card_keeps_what_describes_the_agent_and_loses_what_locates_it() {
    let m = mock().await;
    let h = Harness::start(&yaml(&agent("a", &m, ""), "")).await;
    let r = h
        .send(
            Method::GET,
            &h.url("/a2a/a/.well-known/agent-card.json"),
            Some(AGENT),
            &[("x-forwarded-proto", "https"), ("x-forwarded-host", "agents.example.com")],
            Bytes::new(),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let card = r.json();
    let text = r.text();
    assert!(!text.contains(&m.addr.to_string()), "the upstream's address is gone: {text}");
    let ifaces = card["supportedInterfaces"].as_array().unwrap();
    assert!(ifaces.iter().all(|i| i["protocolBinding"] != "GRPC"), "gRPC is not relayed: {ifaces:?}");
    assert!(ifaces.iter().all(|i| i["url"].as_str().unwrap().starts_with("https://agents.example.com/a2a/a")));
    assert_eq!(card["url"], "https://agents.example.com/a2a/a");
    assert_eq!(card["additionalInterfaces"][0]["url"], "https://agents.example.com/a2a/a/rest");
    assert!(card.get("documentationUrl").is_none() && card.get("iconUrl").is_none(), "{card}");
    assert_eq!(card["provider"]["url"], "https://tollgate.test", "links elsewhere stay");
    assert!(card.get("signatures").is_none(), "the upstream's signatures do not cover this card");
    assert_eq!(card["name"], "mock-agent");
    assert_eq!(card["capabilities"]["streaming"], true);
    assert_eq!(card["securityRequirements"], json!([{ "schemes": { "tollgate": {} } }]));
    assert_eq!(card["security"], json!([{ "tollgate": [] }]));
    // Read at start-up (or by the first request, if it came first), then kept.
    let fetched = m.card_fetches();
    assert!((1..=2).contains(&fetched), "{fetched}");
    let again = h.send(Method::GET, &h.url("/a2a/a/.well-known/agent.json"), Some(AGENT), &[], Bytes::new()).await;
    assert_eq!(again.status, 200);
    assert_eq!(m.card_fetches(), fetched, "a second read does not go upstream");
}

#[tokio::test]
async fn an_older_agent_is_found_at_its_legacy_card_and_spoken_to_in_v03() {
    let m = A2aMock::start_with(A2aOptions { legacy_only: true, ..Default::default() }).await;
    let h = Harness::start(&yaml(&format!("  - {{ name: a, url: \"{}\" }}\n", m.url), "")).await;
    let card = h.get("/a2a/a/.well-known/agent-card.json", Some(AGENT)).await;
    assert_eq!(card.status, 200, "{}", card.text());
    let card = card.json();
    assert_eq!(card["url"], format!("http://{}/a2a/a", h.gw.data_addr));
    assert!(card.get("supportedInterfaces").is_none(), "a v0.3 card keeps its shape: {card}");
    assert_eq!(card["securitySchemes"]["tollgate"]["scheme"], "bearer");
    let r = rpc(&h, "a", AGENT, &send("message/send", "hello old")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let task = &r.json()["result"];
    assert_eq!(task["kind"], "task");
    assert_eq!(task["artifacts"][0]["parts"][0]["text"], "echo: hello old");
    assert!(m.received().iter().all(|x| x.path == "/rpc"), "sent to the card's URL");
}

#[tokio::test]
async fn both_generations_and_both_bindings_reach_the_agent_with_its_credential_only() {
    let m = mock().await;
    let h = Harness::start(&yaml(&agent("a", &m, ""), "")).await;
    let v10 = rpc(&h, "a", AGENT, &send("SendMessage", "new")).await;
    assert_eq!(v10.json()["result"]["task"]["status"]["state"], "TASK_STATE_COMPLETED", "{}", v10.text());
    let id = v10.json()["result"]["task"]["id"].as_str().unwrap().to_string();
    let v03 = rpc(&h, "a", AGENT, &json!({ "jsonrpc": "2.0", "id": 2, "method": "tasks/get", "params": { "id": id } })).await;
    assert_eq!(v03.json()["result"]["status"]["state"], "completed", "{}", v03.text());
    let rest = h
        .send(
            Method::POST,
            &h.url("/a2a/a/rest/message:send"),
            Some(AGENT),
            &[("a2a-version", "1.0"), ("a2a-extensions", "urn:ext:x")],
            json!({ "message": { "messageId": "m", "role": "ROLE_USER", "parts": [{ "text": "by rest" }] } }).to_string(),
        )
        .await;
    assert_eq!(rest.status, 200, "{}", rest.text());
    assert_eq!(rest.json()["task"]["artifacts"][0]["parts"][0]["text"], "echo: by rest");
    assert_eq!(rest.header("a2a-extensions"), Some("urn:ext:x"), "protocol headers come back");
    assert_eq!(rest.header("content-type"), Some("application/a2a+json"));
    let got = h.send(Method::GET, &h.url(&format!("/a2a/a/rest/tasks/{id}?historyLength=0")), Some(AGENT), &[("a2a-version", "1.0")], Bytes::new()).await;
    assert_eq!(got.json()["id"], id.as_str());

    let seen = m.received();
    assert_eq!(
        seen.iter().map(|r| r.path.as_str()).collect::<Vec<_>>(),
        ["/rpc", "/rpc", "/rest/message:send", &format!("/rest/tasks/{id}?historyLength=0")]
    );
    for r in &seen {
        assert_eq!(r.header("authorization"), Some(format!("Bearer {TOKEN}").as_str()));
        assert!(r.headers.iter().all(|(_, v)| !v.contains(AGENT)), "the client's key never goes upstream");
    }
    assert_eq!(seen[2].header("a2a-extensions"), Some("urn:ext:x"));
    assert_eq!(seen[1].header("a2a-version"), Some("0.3"));

    // The log is written in batches: wait for all four calls.
    let mut entries = Vec::new();
    eventually("every call logged", async || {
        entries = logs(&h).await;
        entries.len() >= 4
    })
    .await;
    let methods: Vec<&str> = entries.iter().map(|e| e["a2a"]["method"].as_str().unwrap()).collect();
    for m in ["SendMessage", "tasks/get", "POST /message:send"] {
        assert!(methods.contains(&m), "{methods:?}");
    }
    let get = entries.iter().find(|e| e["a2a"]["method"] == "tasks/get").unwrap();
    assert_eq!(get["a2a"]["task_id"], id.as_str());
    assert_eq!(get["a2a"]["task_state"], "completed");
    assert_eq!(get["subject"], "key:agent");
    assert_eq!(get["requested_model"], "a");
}

/// Reads a streamed response event by event.
struct Events {
    body: hyper::body::Incoming,
    buf: String,
}

impl Events {
    async fn next(&mut self) -> Option<Value> {
        loop {
            if let Some(end) = self.buf.find("\r\n\r\n").map(|i| (i, 4)).or_else(|| self.buf.find("\n\n").map(|i| (i, 2))) {
                let event: String = self.buf.drain(..end.0 + end.1).collect();
                if let Some(d) = sse_data(&event.replace("\r\n", "\n")).first() {
                    return Some(serde_json::from_str(d).unwrap());
                }
                continue;
            }
            let frame = tokio::time::timeout(Duration::from_secs(5), self.body.frame()).await.expect("an event in time")?;
            if let Ok(data) = frame.expect("frame").into_data() {
                self.buf.push_str(&String::from_utf8_lossy(&data));
            }
        }
    }
}

async fn stream(h: &Harness, path: &str, body: Value) -> Events {
    let req = http::Request::post(h.url(path))
        .header("authorization", format!("Bearer {AGENT}"))
        .header("a2a-version", "1.0")
        .header("accept", "text/event-stream")
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(Bytes::from(body.to_string())))
        .unwrap();
    let resp = h.client.request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    Events { body: resp.into_body(), buf: String::new() }
}

#[tokio::test]
async fn a_stream_is_relayed_as_it_happens_and_a_cancel_ends_it() {
    let m = mock().await;
    let h = Harness::start(&yaml(&agent("a", &m, ""), "")).await;
    let mut events = stream(&h, "/a2a/a", send("SendStreamingMessage", "slow work")).await;
    // The agent is still working: these arrived before the stream could end.
    let first = events.next().await.unwrap();
    let id = first["result"]["task"]["id"].as_str().unwrap().to_string();
    let working = events.next().await.unwrap();
    assert_eq!(working["result"]["statusUpdate"]["status"]["state"], "TASK_STATE_WORKING");
    let cancel = rpc(&h, "a", AGENT, &json!({ "jsonrpc": "2.0", "id": 5, "method": "CancelTask", "params": { "id": id } })).await;
    assert_eq!(cancel.json()["result"]["status"]["state"], "TASK_STATE_CANCELED", "{}", cancel.text());
    let last = events.next().await.unwrap();
    assert_eq!(last["result"]["statusUpdate"]["status"]["state"], "TASK_STATE_CANCELED");
    assert!(events.next().await.is_none(), "the stream ends with the task");
    eventually("the stream's entry", async || {
        let r = h.send(Method::GET, &h.admin_url("/admin/logs?kind=a2a"), Some(MASTER), &[], Bytes::new()).await;
        r.json()["data"].as_array().unwrap().iter().any(|e| e["a2a"]["method"] == "SendStreamingMessage")
    })
    .await;
    let r = h.send(Method::GET, &h.admin_url("/admin/logs?kind=a2a"), Some(MASTER), &[], Bytes::new()).await;
    let all = r.json()["data"].as_array().cloned().unwrap();
    let s = all.iter().find(|e| e["a2a"]["method"] == "SendStreamingMessage").unwrap();
    assert_eq!(s["a2a"]["task_state"], "canceled");
    assert_eq!(s["a2a"]["events"], 3);
    assert_eq!(s["stream"], true);
}

#[tokio::test]
async fn output_guardrails_rewrite_streamed_parts_and_a_block_ends_the_stream() {
    let m = mock().await;
    let defs = "guardrails:\n  definitions:\n    - { name: pii, type: pii, action: mutate, entities: [EMAIL] }\n    - { name: no-chunk-2, type: deny_list, terms: [\"chunk 2\"] }\n";
    let agents = agent("a", &m, ", guardrails: { output: [pii] }") + &agent("ab", &m, ", guardrails: { output: [no-chunk-2] }");
    let h = Harness::start(&yaml(&agents, defs)).await;
    let mut events = stream(&h, "/a2a/a", send("SendStreamingMessage", "stream to bob@example.com")).await;
    let mut texts = Vec::new();
    while let Some(e) = events.next().await {
        if let Some(p) = e["result"]["artifactUpdate"]["artifact"]["parts"][0]["text"].as_str() {
            texts.push(p.to_string());
        }
    }
    assert_eq!(texts, (0..3).map(|i| format!("chunk {i}: stream to <EMAIL_1>")).collect::<Vec<_>>());

    let mut events = stream(&h, "/a2a/ab/rest/message:stream", json!({ "message": { "messageId": "m", "role": "ROLE_USER", "parts": [{ "text": "stream please" }] } })).await;
    let mut seen = Vec::new();
    while let Some(e) = events.next().await {
        seen.push(e);
    }
    let last = seen.last().unwrap();
    assert_eq!(last["error"]["code"], "guardrail_blocked", "{seen:?}");
    assert!(!serde_json::to_string(&seen).unwrap().contains("chunk 2"), "the blocked part never reached the client");
    eventually("the blocked stream's entry", async || {
        let r = h.send(Method::GET, &h.admin_url("/admin/logs?kind=a2a"), Some(MASTER), &[], Bytes::new()).await;
        r.json()["data"].as_array().unwrap().iter().any(|e| e["a2a"]["decision"] == "blocked" && e["a2a"]["agent"] == "ab")
    })
    .await;
}

#[tokio::test]
async fn allowlists_on_keys_and_teams_and_agent_rate_limits_refuse_before_the_agent() {
    let m = mock().await;
    let limits = "rate_limits:\n  - { id: per-agent, unit: agent_calls_per_minute, limit: 1, limit_by: [agent], when: { agents: [b] } }\n";
    let h = Harness::start(&yaml(&(agent("a", &m, "") + &agent("b", &m, "")), limits)).await;
    let r = rpc(&h, "a", OTHER, &send("SendMessage", "hi")).await;
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["error"]["data"]["code"], "agent_not_allowed");
    assert!(r.json()["error"]["message"].as_str().unwrap().contains("`a`"));
    let r = rpc(&h, "a", TEAMED, &send("SendMessage", "hi")).await;
    assert_eq!(r.status, 403, "the team allows b only");
    assert_eq!(rpc(&h, "b", TEAMED, &send("SendMessage", "hi")).await.status, 200);
    let limited = rpc(&h, "b", TEAMED, &send("SendMessage", "again")).await;
    assert_eq!(limited.status, 429, "{}", limited.text());
    assert_eq!(limited.json()["error"]["data"]["rule"], "per-agent");
    assert!(limited.header("retry-after").is_some());
    assert_eq!(rpc(&h, "a", AGENT, &send("SendMessage", "a is not limited")).await.status, 200);
    let no_key = h.send(Method::POST, &h.url("/a2a/a"), None, &[], send("SendMessage", "x").to_string()).await;
    assert_eq!(no_key.status, 401);
    assert!(no_key.header("www-authenticate").is_some());
    assert_eq!(m.received().len(), 2, "only the two allowed calls reached the agent");
    // Model calls do not count against agent limits, nor agent calls against model allowlists.
    let chat = json!({ "model": "mock/echo", "messages": [{ "role": "user", "content": "hi" }] });
    assert_eq!(h.chat(Some(TEAMED), &chat).await.status, 200);
}

#[tokio::test]
async fn malformed_requests_get_a_clear_4xx_and_never_reach_the_agent() {
    let m = mock().await;
    let h = Harness::start(&yaml(&agent("a", &m, ""), "")).await;
    let url = h.url("/a2a/a");
    let not_json = h.send(Method::POST, &url, Some(AGENT), &[], "{nope").await;
    assert_eq!(not_json.status, 400);
    assert_eq!(not_json.json()["error"]["code"], -32700);
    let batch = h.send(Method::POST, &url, Some(AGENT), &[], json!([send("SendMessage", "x")]).to_string()).await;
    assert_eq!(batch.status, 400);
    assert!(batch.json()["error"]["message"].as_str().unwrap().contains("batch"));
    let no_method = h.send(Method::POST, &url, Some(AGENT), &[], json!({ "jsonrpc": "2.0", "id": 1 }).to_string()).await;
    assert_eq!(no_method.status, 400);
    let unknown = h.send(Method::POST, &h.url("/a2a/zzz"), Some(AGENT), &[], send("SendMessage", "x").to_string()).await;
    assert_eq!(unknown.status, 404);
    assert!(unknown.error_message().contains("zzz"));
    let bad_binding = h.get("/a2a/a/grpc/tasks", Some(AGENT)).await;
    assert_eq!(bad_binding.status, 404);
    let big = "x".repeat(11 << 20);
    let too_big = h.send(Method::POST, &url, Some(AGENT), &[], big).await;
    assert_eq!(too_big.status, 413);
    assert!(m.received().is_empty());
    // A method the gateway does not know is the agent's to answer.
    let other = rpc(&h, "a", AGENT, &json!({ "jsonrpc": "2.0", "id": 3, "method": "x/custom", "params": {} })).await;
    assert_eq!(other.status, 200);
    assert_eq!(other.json()["error"]["code"], -32601);
}

#[tokio::test]
async fn an_agent_that_is_down_or_refuses_the_gateway_is_a_502_never_the_clients_401() {
    let m = mock().await;
    let wrong = format!("  - {{ name: a, url: \"{}\", auth: {{ type: static_header, header: authorization, value: \"Bearer wrong\" }} }}\n", m.url);
    let down = "  - { name: ad, url: \"http://127.0.0.1:9\" }\n";
    let h = Harness::start(&yaml(&(wrong + down), "")).await;
    let r = rpc(&h, "a", AGENT, &send("SendMessage", "hi")).await;
    assert_eq!(r.status, 502, "{}", r.text());
    assert_eq!(r.json()["error"]["data"]["code"], "upstream_auth");
    assert!(r.json()["error"]["message"].as_str().unwrap().contains("a2a_agents"));
    assert!(!r.text().contains("wrong"), "never the credential");
    let d = rpc(&h, "ad", AGENT, &send("SendMessage", "hi")).await;
    assert_eq!(d.status, 502, "{}", d.text());
    assert_eq!(d.json()["error"]["code"], -32002);
    assert_eq!(d.json()["error"]["data"]["code"], "upstream_unavailable");
    let card = h.get("/a2a/ad/.well-known/agent-card.json", Some(AGENT)).await;
    assert_eq!(card.status, 502);
    let admin = h.send(Method::GET, &h.admin_url("/admin/a2a/agents"), Some(MASTER), &[], Bytes::new()).await;
    let agents = admin.json()["agents"].as_array().cloned().unwrap();
    let ad = agents.iter().find(|a| a["name"] == "ad").unwrap();
    assert_eq!(ad["health"]["status"], "error");
    let a = agents.iter().find(|a| a["name"] == "a").unwrap();
    assert_eq!(a["health"]["status"], "ok", "the card needs no token: {a}");
    assert_eq!(a["auth"], "static_header");
    assert!(!admin.text().contains("wrong"));
    let one = h.send(Method::GET, &h.admin_url("/admin/a2a/agents/a"), Some(MASTER), &[], Bytes::new()).await;
    assert_eq!(one.json()["skills"][0]["id"], "echo");
    let entries = logs(&h).await;
    assert!(entries.iter().any(|e| e["a2a"]["decision"] == "error" && e["status"] == 502));
}

#[tokio::test]
async fn the_extended_card_is_rewritten_too() {
    let m = mock().await;
    let h = Harness::start(&yaml(&agent("a", &m, ""), "")).await;
    let r = rpc(&h, "a", AGENT, &json!({ "jsonrpc": "2.0", "id": 1, "method": "GetExtendedAgentCard", "params": {} })).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let card = &r.json()["result"];
    assert!(card["supportedInterfaces"].is_array(), "{card}");
    assert!(!r.text().contains(&m.addr.to_string()), "{}", r.text());
}
