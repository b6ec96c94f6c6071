//! Hostile input and the secrets sweep: every malformed, oversized, nested,
//! lying or smuggling request gets a 4xx that says what to fix and leaves
//! the gateway healthy; planted secrets never come back out — not in
//! answers, admin views, metrics, traces or the process's own log.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use http::Method;
use serde_json::{Value, json};
use testkit::{Fault, MockUpstream};

use crate::common::*;
use crate::common::free_port;
use crate::real::{Killed, Plain, body_json};

/// What one raw HTTP/1.1 exchange answered: the status and the whole text.
/// Off the runtime's thread: the gateway under test runs on it.
async fn raw(addr: std::net::SocketAddr, request: impl AsRef<[u8]>, half_close: bool) -> (u16, String) {
    let request = request.as_ref().to_vec();
    tokio::task::spawn_blocking(move || raw_blocking(addr, &request, half_close)).await.unwrap()
}

fn raw_blocking(addr: std::net::SocketAddr, request: &[u8], half_close: bool) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // A flood the server refuses may close before all of it is written.
    let _ = s.write_all(request);
    if half_close {
        let _ = s.shutdown(std::net::Shutdown::Write);
    }
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, text)
}

async fn healthy(h: &Harness) {
    let r = h.get("/health", None).await;
    assert_eq!(r.status, 200, "the gateway stays up");
    let r = h.chat(Some(MASTER), &json!({ "model": "mock/echo", "messages": user("still there?") })).await;
    assert_eq!(r.status, 200, "and keeps answering: {}", r.text());
}

#[tokio::test]
async fn malformed_huge_and_nested_bodies_get_a_4xx_that_says_what_to_fix() {
    let up = MockUpstream::start().await;
    let h = Harness::start(&config(&up.base_url(), "")).await;
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let nest = format!("{}1{}", "[".repeat(5_000), "]".repeat(5_000));
    let deep_obj = format!(r#"{{"model":"mock/echo","input":{nest},"messages":{nest}}}"#);
    let bodies: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        ("not JSON", b"{oops".to_vec(), 400, "not valid JSON"),
        ("empty", Vec::new(), 400, "empty"),
        ("a JSON array", b"[1,2]".to_vec(), 400, "JSON object"),
        ("deeply nested", deep.into_bytes(), 400, "JSON"),
        ("deeply nested field", deep_obj.into_bytes(), 400, "messages"),
        ("invalid UTF-8", b"{\"model\":\"mock/echo\",\"messages\":[{\"role\":\"user\",\"content\":\"\xff\xfe\"}]}".to_vec(), 400, "JSON"),
        ("a raw control character", b"{\"model\":\"mock/echo\",\"messages\":[{\"role\":\"user\",\"content\":\"a\x01b\"}]}".to_vec(), 400, "JSON"),
        ("too large", vec![b' '; 70 * 1024], 413, "65536 bytes"),
        ("a number for messages", br#"{"model":"mock/echo","messages":5}"#.to_vec(), 400, "messages"),
        ("a model that is not a string", br#"{"model":{"$ne":1},"messages":[]}"#.to_vec(), 400, "model"),
    ];
    for path in ["/v1/chat/completions", "/v1/messages", "/v1/responses", "/v1/embeddings"] {
        for (what, body, status, says) in &bodies {
            let r = h.send(Method::POST, &h.url(path), Some(MASTER), &[], body.clone()).await;
            assert!(r.status.is_client_error(), "{path} {what}: {} {}", r.status, r.text());
            // Each route has its own words for a wrong field; the JSON and size checks are shared.
            if matches!(*what, "not JSON" | "too large" | "empty") {
                assert_eq!(r.status, *status, "{path} {what}: {}", r.text());
                assert!(r.error_message().contains(says), "{path} {what}: {}", r.text());
            }
            let v: Value = serde_json::from_slice(&r.body).unwrap_or_else(|_| panic!("{path} {what}: {}", r.text()));
            assert!(v["error"]["message"].as_str().is_some_and(|m| m.len() > 10), "{path} {what}: {v}");
        }
    }
    for (what, body) in [("not JSON", b"{oops".to_vec()), ("nested", format!("{}{}", "[".repeat(50_000), "]".repeat(50_000)).into_bytes())] {
        for path in ["/mcp/nowhere", "/a2a/nowhere"] {
            let r = h.send(Method::POST, &h.url(path), Some(MASTER), &[("accept", "application/json, text/event-stream")], body.clone()).await;
            assert!(r.status.is_client_error(), "{path} {what}: {} {}", r.status, r.text());
        }
    }
    healthy(&h).await;
}

#[tokio::test]
async fn lying_lengths_header_floods_and_bad_headers_are_refused() {
    let up = MockUpstream::start().await;
    let yaml = config(&up.base_url(), "")
        .replace("max_body_size: 64KiB }", "max_body_size: 64KiB, body_read_timeout: 1s, header_read_timeout: 1s }");
    let h = Harness::start(&yaml).await;
    let addr = h.gw.data_addr;
    let body = r#"{"model":"mock/echo","messages":[{"role":"user","content":"hi"}]}"#;
    let head = |len: usize, extra: &str| {
        format!(
            "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {MASTER}\r\ncontent-type: application/json\r\ncontent-length: {len}\r\n{extra}connection: close\r\n\r\n"
        )
    };
    // Declares more than it sends, then waits: 408 once the body is late, no hang.
    let started = std::time::Instant::now();
    let (status, text) = raw(addr, format!("{}{body}", head(body.len() + 500, "")), false).await;
    assert_eq!(status, 408, "{text}");
    assert!(text.contains("did not arrive within"), "{text}");
    assert!(started.elapsed() < Duration::from_secs(5));
    // Headers sent a little at a time and never finished (slowloris): the
    // connection is closed, not held.
    let started = std::time::Instant::now();
    let (status, _) = raw(addr, b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n", false).await;
    assert!(status == 0 || status == 408, "{status}");
    assert!(started.elapsed() < Duration::from_secs(5), "the connection was held");
    // Declares less than it sends: the body is cut where it said, and that is not JSON.
    let (status, text) = raw(addr, format!("{}{body}", head(20, "")), false).await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("not valid JSON"), "{text}");
    // Declares more than the limit: refused before the body is read.
    let (status, text) = raw(addr, head(10 << 20, ""), false).await;
    assert_eq!(status, 413, "{text}");
    // Thousands of headers.
    let flood: String = (0..5_000).map(|i| format!("x-flood-{i}: {}\r\n", "a".repeat(20))).collect();
    let (status, _) = raw(addr, format!("{}{body}", head(body.len(), &flood)), false).await;
    assert!(status == 431 || status == 400 || status == 0, "a header flood is refused: {status}");
    // A control character in a header value, and metadata that is not JSON.
    let (status, _) = raw(addr, format!("{}{body}", head(body.len(), "x-tollgate-metadata: {\"a\":\"\x01\"}\r\n")), false).await;
    assert_eq!(status, 400);
    let r = h
        .send(Method::POST, &h.url("/v1/chat/completions"), Some(MASTER), &[("x-tollgate-metadata", "{not json")], body.to_string())
        .await;
    assert_eq!(r.status, 400);
    assert!(r.error_message().contains("x-tollgate-metadata"), "{}", r.text());
    let r = h
        .send(Method::POST, &h.url("/v1/chat/completions"), Some(MASTER), &[("x-tollgate-guardrails", "[[[")], body.to_string())
        .await;
    assert_eq!(r.status, 400, "{}", r.text());
    healthy(&h).await;
}

#[tokio::test]
async fn urls_in_bodies_and_headers_never_make_the_gateway_call_them() {
    // An internal service the attacker would like the gateway to reach.
    let internal = MockUpstream::start().await;
    let up = MockUpstream::start().await;
    let h = Harness::start(&config(&up.base_url(), "")).await;
    let target = internal.base_url();
    let image = json!([{ "type": "text", "text": "look" }, { "type": "image_url", "image_url": { "url": format!("{target}/latest/meta-data") } }]);
    let r = h.chat(Some(MASTER), &json!({ "model": "up/gpt-4o-mini", "messages": [{ "role": "user", "content": image }] })).await;
    assert!(r.status.is_success() || r.status.is_client_error(), "{}", r.text());
    // Headers that would redirect a naive proxy.
    let host = target.trim_start_matches("http://").trim_end_matches("/v1").to_string();
    for (name, value) in [("host", host.as_str()), ("x-forwarded-host", host.as_str()), ("x-original-url", "/admin/config")] {
        let r = h
            .send(Method::POST, &h.url("/v1/chat/completions"), Some(MASTER), &[(name, value)],
                json!({ "model": "up/gpt-4o-mini", "messages": user("hi") }).to_string())
            .await;
        assert_eq!(r.status, 200, "{name}: {}", r.text());
    }
    let r = h
        .send(Method::POST, &h.url("/v1/responses"), Some(MASTER), &[],
            json!({ "model": "up/gpt-4o-mini", "input": [{ "role": "user", "content": [{ "type": "input_image", "image_url": format!("{target}/x") }] }] }).to_string())
        .await;
    assert!(r.status.is_success() || r.status.is_client_error(), "{}", r.text());
    assert_eq!(internal.request_count(), 0, "the gateway called a URL from the request");
    assert!(up.request_count() >= 4, "the configured upstream was used");
    healthy(&h).await;
}

const CANARY_MASTER: &str = "tg-canary-master-7f3a91c2e4b8";
const CANARY_CLIENT: &str = "tg-canary-client-5d6e7f8091ab";
const CANARY_PROVIDER: &str = "sk-canary-provider-0c1d2e3f4a5b";
const CANARY_WEBHOOK: &str = "canary-webhook-secret-8b7a6c5d";

#[tokio::test]
async fn planted_secrets_never_come_back_out() {
    let up = MockUpstream::start().await;
    let collector = MockUpstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (port, admin) = (free_port(), free_port());
    let yaml = format!(
        r#"
server: {{ listen: "127.0.0.1:{port}", admin_listen: "127.0.0.1:{admin}" }}
store: {{ url: "sqlite://{db}" }}
auth:
  master_key: "{CANARY_MASTER}"
  keys: [{{ name: app, key: "{CANARY_CLIENT}" }}]
providers:
  - {{ name: up, type: openai_compatible, base_url: "{base}", api_key: "{CANARY_PROVIDER}", models: [{{ name: m }}] }}
events:
  webhooks: [{{ url: "{hook}/hook", secret: "{CANARY_WEBHOOK}" }}]
logging: {{ bodies: true }}
telemetry: {{ otlp_endpoint: "{otel}" }}
"#,
        db = dir.path().join("t.db").display(),
        base = up.base_url(),
        hook = collector.base_url(),
        otel = collector.base_url().trim_end_matches("/v1"),
    );
    let cfg = dir.path().join("t.yaml");
    std::fs::write(&cfg, yaml).unwrap();
    let log = dir.path().join("out.log");
    let child = Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args(["serve", "--config"])
        .arg(&cfg)
        .env("TOLLGATE_LOG", "debug")
        .stdout(std::fs::File::create(dir.path().join("stdout.log")).unwrap())
        .stderr(std::fs::File::create(&log).unwrap())
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let _guard = Killed(child);
    let client = Plain::new();
    let data = format!("http://127.0.0.1:{port}");
    let adm = format!("http://127.0.0.1:{admin}");
    eventually("the gateway is ready", async || client.get(&format!("{data}/ready"), None).await.0 == 200).await;

    let mut seen = String::new();
    let chat = |content: &str| json!({ "model": "up/m", "messages": user(content) }).to_string();
    // The provider echoes the key it was sent in its error, as real providers do.
    up.push_fault(Fault::Status {
        status: 401,
        body: Some(json!({ "error": { "message": format!("Incorrect API key provided: {CANARY_PROVIDER}"), "type": "invalid_request_error" } }).to_string()),
        retry_after: None,
    });
    up.push_fault(Fault::Status { status: 500, body: Some(format!("internal error for key {CANARY_PROVIDER}")), retry_after: None });
    for (key, body) in [
        (Some(CANARY_CLIENT), chat("first")),
        (Some(CANARY_CLIENT), chat("second")),
        (Some("tg-canary-client-5d6e7f8091aX"), chat("a near miss")),
        (Some(&format!("{CANARY_CLIENT}x")[..]), chat("a longer one")),
        (Some(CANARY_CLIENT), format!("{{\"model\": \"up/m\", \"messages\": \"{CANARY_PROVIDER}\"}}")),
        (Some(CANARY_CLIENT), json!({ "model": "up/m", "messages": user("x"), "api_key": CANARY_CLIENT }).to_string()),
        (None, chat("anonymous")),
    ] {
        let (status, text) = client.post(&format!("{data}/v1/chat/completions"), key, &body).await;
        assert!(status > 0, "{text}");
        seen.push_str(&text);
    }
    let (status, text) = client.post(&format!("{data}/v1/responses"), Some(CANARY_CLIENT), r#"{"model":"up/m","input":"x","previous_response_id":"resp_x"}"#).await;
    assert_eq!(status, 400);
    seen.push_str(&text);
    for path in ["/admin/config", "/admin/logs", "/admin/keys", "/admin/usage", "/metrics", "/admin/audit", "/admin/mcp/servers"] {
        let (_, text) = client.get(&format!("{adm}{path}"), Some(CANARY_MASTER)).await;
        seen.push_str(&text);
    }
    let (_, text) = client.post(&format!("{adm}/admin/keys"), Some(CANARY_MASTER), r#"{"name": "made"}"#).await;
    let made = body_json(&text).and_then(|v| v["key"].as_str().map(str::to_string));
    // Give the log writer and the trace exporter time to flush.
    eventually("the request log has every request", async || {
        let (_, t) = client.get(&format!("{adm}/admin/logs?limit=100"), Some(CANARY_MASTER)).await;
        // Every request, refusals included.
        body_json(&t).and_then(|v| v["data"].as_array().map(Vec::len)).unwrap_or(0) >= 8
    })
    .await;
    let (_, logs) = client.get(&format!("{adm}/admin/logs?limit=100"), Some(CANARY_MASTER)).await;
    seen.push_str(&logs);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for r in collector.requests() {
        seen.push_str(&String::from_utf8_lossy(&r.body));
    }
    seen.push_str(&std::fs::read_to_string(&log).unwrap());
    seen.push_str(&std::fs::read_to_string(dir.path().join("stdout.log")).unwrap());
    assert!(seen.len() > 2_000, "the sweep read real output");
    let mut secrets = vec![CANARY_MASTER, CANARY_CLIENT, CANARY_PROVIDER, CANARY_WEBHOOK];
    if let Some(k) = made.as_deref() {
        secrets.push(k);
        // The one place a secret may appear: the answer that creates it.
        seen = seen.replace(&text, "");
    }
    for s in secrets {
        assert!(!seen.contains(s), "`{s}` leaked: …{}…", context(&seen, s));
    }
}

fn context(hay: &str, needle: &str) -> String {
    hay.find(needle).map_or_else(String::new, |i| hay[i.saturating_sub(200)..(i + needle.len() + 50).min(hay.len())].to_string())
}
