//! The fault suite: the real binary in front of a provider that fails in
//! every way SPEC §14 lists — 429 and 5xx storms, slow and hung answers,
//! streams cut or stalled mid-answer, connection resets, a name that does
//! not resolve — and a config reloaded under load. For every fault, under
//! concurrent clients: every client gets an answer within its timeout, every
//! error is OpenAI-shaped (a JSON error, or an error event ending a stream
//! already begun), the request log holds exactly one entry per request, and
//! the token budget charged equals the tokens the log recorded, with
//! nothing left reserved.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{Value, json};
use testkit::{Fault, MockUpstream};

use crate::real::{self, body_json};

const MASTER: &str = "tg-fault-suite-master-key";
const CLIENTS: usize = 8;

/// What a client saw, checked for shape; the request id it was given.
fn check_answer(what: &str, status: u16, text: &str, stream: bool) -> Option<String> {
    assert!(status > 0, "{what}: no answer at all");
    let (head, body) = text.split_once('\n').unwrap_or((text, ""));
    let id = head.split("\"x-tollgate-request-id\": \"").nth(1).and_then(|r| r.split('"').next()).map(str::to_string);
    if status == 200 && stream {
        let events: Vec<&str> = body.split("\n\n").filter_map(|e| e.strip_prefix("data: ")).collect();
        let last = *events.last().unwrap_or_else(|| panic!("{what}: an empty stream"));
        if last != "[DONE]" {
            let v: Value = serde_json::from_str(last).unwrap_or_else(|_| panic!("{what}: a stream cut without a word: {body}"));
            assert!(v["error"]["message"].is_string() && v["error"]["code"].is_string(), "{what}: {last}");
        }
    } else if status == 200 {
        let v: Value = serde_json::from_str(body).unwrap_or_else(|_| panic!("{what}: {body}"));
        assert_eq!(v["object"], "chat.completion", "{what}");
    } else {
        let v: Value = serde_json::from_str(body).unwrap_or_else(|_| panic!("{what}: {status} {body}"));
        let e = &v["error"];
        assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()), "{what}: {v}");
        assert!(e["type"].is_string() && e["code"].is_string(), "{what}: {v}");
    }
    id
}

async fn burst(g: &real::Gateway, model: &str, what: &str) -> Vec<(u16, String)> {
    let url = format!("{}/v1/chat/completions", g.data);
    let calls = (0..CLIENTS).map(|i| {
        let stream = i % 2 == 1;
        let body = json!({ "model": model, "stream": stream, "max_tokens": 50,
            "messages": [{ "role": "user", "content": format!("{what} {i}") }] })
        .to_string();
        let url = url.clone();
        async move {
            // The client's own timeout: the gateway must answer well within it.
            let answer = tokio::time::timeout(Duration::from_secs(8), g.client.post(&url, Some(MASTER), &body)).await;
            let (status, text) = answer.unwrap_or_else(|_| panic!("{what}: a client waited past its timeout"));
            let id = check_answer(what, status, &text, stream);
            (status, id.unwrap_or_else(|| panic!("{what}: no request id: {text}")))
        }
    });
    futures_util::future::join_all(calls).await
}

#[tokio::test]
async fn every_fault_answers_every_client_and_logs_each_request_once() {
    let up = MockUpstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        r#"
server: {{ listen: "127.0.0.1:{{port}}", admin_listen: "127.0.0.1:{{admin}}" }}
store: {{ url: "sqlite://{db}" }}
auth: {{ master_key: "{MASTER}" }}
providers:
  - name: up
    type: openai_compatible
    base_url: "{base}"
    api_key: "sk-fault-suite"
    timeout: {{ first_token: 500ms, idle: 300ms, total: 4s }}
    models: [{{ name: m, input_cost_per_mtok: 1, output_cost_per_mtok: 2 }}]
  - {{ name: nodns, type: openai_compatible, base_url: "http://no-such-host.invalid/v1", api_key: "sk-x", models: [{{ name: m }}] }}
budgets:
  - {{ id: all-tokens, unit: tokens_total, limit: 100000000 }}
"#,
        db = dir.path().join("faults.db").display(),
        base = up.base_url(),
    );
    let g = real::serve(dir.path(), &yaml).await;

    let mut ids: Vec<(String, u16)> = Vec::new();
    let faults: Vec<(&str, Option<Fault>, &str, fn(u16) -> bool)> = vec![
        ("healthy", None, "up/m", |s| s == 200),
        ("429 storm", Some(Fault::Status { status: 429, body: None, retry_after: Some("1".into()) }), "up/m", |s| s == 429),
        ("5xx storm", Some(Fault::Status { status: 503, body: None, retry_after: None }), "up/m", |s| s == 503),
        ("slow", Some(Fault::Latency(Duration::from_secs(2))), "up/m", |s| s == 504),
        ("hung stream", Some(Fault::StallStream { after_events: 2, pause: Duration::from_secs(5) }), "up/m", |s| s == 200 || s == 504),
        ("cut stream", Some(Fault::CutStream { after_events: 2, abort: false }), "up/m", |s| s == 200 || s == 502),
        ("aborted stream", Some(Fault::CutStream { after_events: 2, abort: true }), "up/m", |s| s == 200 || s == 502),
        ("error in stream", Some(Fault::StreamError { after_events: 1, status: 500 }), "up/m", |s| s == 200 || s == 500 || s == 502),
        ("reset", Some(Fault::Reset), "up/m", |s| s == 502),
        ("no such host", None, "nodns/m", |s| s == 502),
    ];
    for (what, fault, model, expected) in faults {
        up.set_fault(fault);
        for (status, id) in burst(&g, model, what).await {
            assert!(expected(status), "{what}: status {status}");
            ids.push((id, status));
        }
    }
    up.set_fault(None);

    // A config reloaded again and again under load: nothing is dropped.
    let reload = format!("{}/admin/config/reload", g.admin);
    let reloads = async {
        for _ in 0..5 {
            let (status, text) = g.client.post(&reload, Some(MASTER), "").await;
            assert_eq!(status, 200, "{text}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let (answers, ()) = tokio::join!(burst(&g, "up/m", "reloading"), reloads);
    for (status, id) in answers {
        assert_eq!(status, 200, "a reload under load failed a request");
        ids.push((id, status));
    }

    // The log: exactly one entry per request, with the status the client saw.
    let logs = format!("{}/admin/logs?limit=1000", g.admin);
    let mut entries: Vec<Value> = Vec::new();
    crate::common::eventually("every request is in the log", async || {
        entries = body_json(&g.client.get(&logs, Some(MASTER)).await.1).and_then(|v| v["data"].as_array().cloned()).unwrap_or_default();
        entries.len() >= ids.len()
    })
    .await;
    let mut count: HashMap<&str, usize> = HashMap::new();
    for e in &entries {
        *count.entry(e["id"].as_str().unwrap()).or_default() += 1;
    }
    assert_eq!(entries.len(), ids.len(), "one entry per request, no more");
    for (id, status) in &ids {
        assert_eq!(count.get(id.as_str()), Some(&1), "request {id} logged once");
        let e = entries.iter().find(|e| e["id"] == id.as_str()).unwrap();
        // A stream already begun reports 200 to the client and its error in the log.
        assert!(e["status"] == *status || *status == 200, "{id}: client saw {status}, log says {}", e["status"]);
    }

    // The budget: charged exactly the tokens the log recorded, nothing still held.
    let logged: u64 = entries.iter().map(|e| e["prompt_tokens"].as_u64().unwrap() + e["completion_tokens"].as_u64().unwrap()).sum();
    let usage = format!("{}/admin/usage", g.admin);
    let mut account = Value::Null;
    crate::common::eventually("the budget is settled", async || {
        let v = body_json(&g.client.get(&usage, Some(MASTER)).await.1).unwrap_or(Value::Null);
        account = v["budgets"].as_array().and_then(|b| b.iter().find(|a| a["unit"] == "tokens").cloned()).unwrap_or(Value::Null);
        account["reserved"] == 0 && account["spent"].as_u64() == Some(logged)
    })
    .await;
    assert!(logged > 0, "healthy requests used tokens: {account}");
    // However hard the faults, the process never panicked.
    let log = std::fs::read_to_string(&g.log).unwrap();
    assert!(!log.contains("panicked"), "{log}");
}
