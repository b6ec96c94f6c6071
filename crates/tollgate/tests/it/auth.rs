//! Minimum identity: master key, static keys, model globs, admin separation.

use http::Method;
use serde_json::json;
use testkit::MockUpstream;

use crate::common::*;

#[tokio::test]
async fn nothing_is_open_without_a_valid_key() {
    let up = MockUpstream::start().await;
    let h = Harness::start(&config(&up.base_url(), "")).await;
    let body = json!({ "model": "mock/echo", "messages": user("hi") });
    for key in [None, Some("wrong-key"), Some("")] {
        let r = h.chat(key, &body).await;
        assert_eq!(r.status, 401, "{key:?}");
        let v = r.json();
        assert_eq!(v["error"]["code"], "invalid_api_key");
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert!(r.header("x-tollgate-request-id").is_some());
    }
    assert_eq!(h.get("/v1/models", None).await.status, 401);
    assert_eq!(up.request_count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_authorization_headers_get_401_and_nothing_else() {
    let up = MockUpstream::start().await;
    let h = Harness::start(&config(&up.base_url(), "")).await;
    let huge = format!("Bearer {}", "A".repeat(60_000));
    let hostile: Vec<Vec<u8>> = vec![
        b"Bearer ' OR '1'='1'; DROP TABLE keys; --".to_vec(),
        b"Bearer \xff\xfe\x80 \t binary".to_vec(),
        huge.into_bytes(),
        b"Basic Zm9vOmJhcg==".to_vec(),
        b"Bearer".to_vec(),
        b"Bearer %00%00' UNION SELECT *".to_vec(),
    ];
    for value in &hostile {
        let (status, text) = raw_request(h.gw.data_addr, value);
        assert_eq!(status, 401, "{}", String::from_utf8_lossy(&value[..value.len().min(40)]));
        assert!(!text.contains("DROP TABLE") && !text.contains("UNION"), "the credential is never echoed");
    }
    // A NUL byte is not valid HTTP; the server refuses it before any handler, as a 4xx.
    let (status, _) = raw_request(h.gw.data_addr, b"Bearer \x00\x00abc");
    assert!((400..500).contains(&status), "{status}");
    assert_eq!(up.request_count(), 0);
}

/// Sends a chat request with an arbitrary Authorization value over raw TCP
/// (HTTP client libraries refuse to send such bytes).
fn raw_request(addr: std::net::SocketAddr, auth: &[u8]) -> (u16, String) {
    use std::io::{Read, Write};
    let body = json!({ "model": "mock/echo", "messages": user("hi") }).to_string();
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(5))).unwrap();
    let mut req = b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nconnection: close\r\nauthorization: ".to_vec();
    req.extend_from_slice(auth);
    req.extend_from_slice(format!("\r\ncontent-length: {}\r\n\r\n{body}", body.len()).as_bytes());
    s.write_all(&req).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    (text.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0), text)
}

#[tokio::test]
async fn x_api_key_works_and_globs_limit_models() {
    let up = MockUpstream::start().await;
    let h = Harness::start(&config(&up.base_url(), "")).await;
    let r = h
        .send(
            Method::POST,
            &h.url("/v1/chat/completions"),
            None,
            &[("x-api-key", LIMITED)],
            json!({ "model": "mock/echo", "messages": user("hi") }).to_string(),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());

    let r = h.chat(Some(LIMITED), &json!({ "model": "up/gpt-4o-mini", "messages": user("hi") })).await;
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["error"]["code"], "model_not_allowed");
    assert!(r.error_message().contains("up/gpt-4o-mini"), "{}", r.error_message());
    // The bare alias resolves to the same model and is refused the same way.
    let r = h.chat(Some(LIMITED), &json!({ "model": "gpt-4o-mini", "messages": user("hi") })).await;
    assert_eq!(r.status, 403);
    assert_eq!(up.request_count(), 0);
}

#[tokio::test]
async fn models_lists_only_what_the_key_may_use() {
    let up = MockUpstream::start().await;
    let h = Harness::start(&config(&up.base_url(), "")).await;
    let ids = |r: Resp| -> Vec<String> {
        r.json()["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap().to_string()).collect()
    };
    let all = ids(h.get("/v1/models", Some(MASTER)).await);
    assert_eq!(all, ["mock/echo", "mock/embed", "up/gpt-4o-mini", "up/text-embedding-3-small"]);
    let limited = ids(h.get("/v1/models", Some(LIMITED)).await);
    assert_eq!(limited, ["mock/echo", "mock/embed"]);
    assert_eq!(h.get("/v1/models/mock/echo", Some(LIMITED)).await.json()["id"], "mock/echo");
    assert_eq!(h.get("/v1/models/up/gpt-4o-mini", Some(LIMITED)).await.status, 404);
}

#[tokio::test]
async fn data_plane_keys_cannot_call_admin_routes() {
    let up = MockUpstream::start().await;
    let h = Harness::start(&config(&up.base_url(), "")).await;
    let r = h.send(Method::POST, &h.admin_url("/admin/config/reload"), Some(LIMITED), &[], "").await;
    assert_eq!(r.status, 403);
    let r = h.send(Method::GET, &h.admin_url("/admin/config"), None, &[], "").await;
    assert_eq!(r.status, 401);
    let r = h.send(Method::GET, &h.admin_url("/admin/config"), Some(MASTER), &[], "").await;
    assert_eq!(r.status, 200);
    let text = r.text();
    assert!(!text.contains("sk-upstream-secret") && !text.contains(LIMITED) && !text.contains(MASTER), "{text}");
}

#[tokio::test]
async fn metadata_header_is_validated() {
    let up = MockUpstream::start().await;
    let h = Harness::start(&config(&up.base_url(), "")).await;
    let body = json!({ "model": "mock/echo", "messages": user("hi") }).to_string();
    for bad in ["not json", "[1,2]", r#"{"team":5}"#] {
        let r = h
            .send(
                Method::POST,
                &h.url("/v1/chat/completions"),
                Some(MASTER),
                &[("x-tollgate-metadata", bad)],
                body.clone(),
            )
            .await;
        assert_eq!(r.status, 400, "{bad}");
        assert!(r.error_message().contains("x-tollgate-metadata"), "{}", r.error_message());
    }
    let r = h
        .send(
            Method::POST,
            &h.url("/v1/chat/completions"),
            Some(MASTER),
            &[("x-tfy-metadata", r#"{"team":"a"}"#)],
            body,
        )
        .await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn team_allowlists_narrow_what_members_may_use() {
    let up = MockUpstream::start().await;
    let text = config(&up.base_url(), "")
        .replace("  keys:\n", "  teams:\n    platform: { models: [\"mock/echo\"] }\n  keys:\n");
    let h = Harness::start(&text).await;
    // The limited key pins team=platform: its own globs allow mock/*, its team only mock/echo.
    assert_eq!(h.chat(Some(LIMITED), &json!({ "model": "mock/echo", "messages": user("hi") })).await.status, 200);
    let r = h.chat(Some(LIMITED), &json!({ "model": "mock/embed", "messages": user("hi") })).await;
    assert_eq!(r.status, 403);
    let ids: Vec<String> = h.get("/v1/models", Some(LIMITED)).await.json()["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, ["mock/echo"]);
    // The master key has no team.
    assert_eq!(h.chat(Some(MASTER), &json!({ "model": "mock/embed", "messages": user("hi") })).await.status, 200);
}
