//! Bad input gets a 4xx that names the problem — never a panic or a 500.

use http::Method;
use serde_json::json;
use testkit::MockUpstream;

use crate::common::*;

#[tokio::test]
async fn malformed_requests_get_clear_4xx() {
    let up = MockUpstream::start().await;
    let h = Harness::start(&config(&up.base_url(), "")).await;
    let cases: Vec<(Vec<u8>, u16, &str)> = vec![
        (b"".to_vec(), 400, "empty"),
        (b"{not json".to_vec(), 400, "not valid JSON"),
        (b"[1,2,3]".to_vec(), 400, "not valid JSON"),
        (
            b"{\"model\":\"mock/echo\",\"messages\":[{\"role\":\"user\",\"content\":\"\xff\xfe\"}]}".to_vec(),
            400,
            "not valid JSON",
        ),
        (json!({ "messages": user("hi") }).to_string().into_bytes(), 400, "`model` is required"),
        (json!({ "model": 42, "messages": user("hi") }).to_string().into_bytes(), 400, "`model` must be a string"),
        (json!({ "model": "mock/echo" }).to_string().into_bytes(), 400, "`messages` is required"),
        (
            json!({ "model": "mock/echo", "messages": "hi" }).to_string().into_bytes(),
            400,
            "`messages` must be an array",
        ),
        (
            json!({ "model": "mock/echo", "messages": user("hi"), "stream": "yes" }).to_string().into_bytes(),
            400,
            "`stream`",
        ),
        (
            json!({ "model": "nope/nothing", "messages": user("hi") }).to_string().into_bytes(),
            404,
            "`nope/nothing` does not exist",
        ),
        (
            json!({ "model": "mock/echo", "messages": user(&"x".repeat(70_000)) }).to_string().into_bytes(),
            413,
            "larger than the limit",
        ),
    ];
    for (body, status, needle) in cases {
        let r = h.send(Method::POST, &h.url("/v1/chat/completions"), Some(MASTER), &[], body).await;
        assert_eq!(r.status.as_u16(), status, "{needle}: {}", r.text());
        let msg = r.error_message();
        assert!(msg.contains(needle), "expected {needle:?} in {msg:?}");
        assert!(r.json()["error"]["type"].is_string());
    }
    // Embeddings need input.
    let r = h
        .send(Method::POST, &h.url("/v1/embeddings"), Some(MASTER), &[], json!({ "model": "mock/embed" }).to_string())
        .await;
    assert_eq!(r.status, 400);
    assert!(r.error_message().contains("`input` is required"));
    assert_eq!(up.request_count(), 0, "no bad request reaches a provider");
}
