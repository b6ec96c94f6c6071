//! Provider failures reach the client with the provider's message and a
//! status routing can act on; broken streams end in an error, never cleanly.

use std::time::Duration;

use http::Method;
use serde_json::json;
use testkit::{Fault, MockUpstream};

use crate::common::*;

fn chat_body(stream: bool) -> String {
    json!({ "model": "up/gpt-4o-mini", "stream": stream, "messages": user("one two three four") }).to_string()
}

#[tokio::test]
async fn upstream_statuses_keep_the_message_and_map_sensibly() {
    let up = MockUpstream::start().await;
    let h = Harness::start(&config(&up.base_url(), "")).await;
    for (upstream, client) in [(400u16, 400u16), (404, 404), (429, 429), (500, 502), (503, 503), (529, 503), (401, 502)]
    {
        up.push_fault(Fault::Status { status: upstream, body: None, retry_after: Some("7".into()) });
        let r = h.send(Method::POST, &h.url("/v1/chat/completions"), Some(MASTER), &[], chat_body(false)).await;
        assert_eq!(r.status.as_u16(), client, "upstream {upstream}: {}", r.text());
        assert!(r.error_message().contains(&format!("mock upstream error {upstream}")), "{}", r.error_message());
        if upstream == 429 {
            assert_eq!(r.header("retry-after"), Some("7"));
            assert_eq!(r.json()["error"]["type"], "rate_limit_error");
        }
    }
}

#[tokio::test]
async fn a_stream_cut_before_done_ends_with_an_error_event() {
    let up = MockUpstream::start().await;
    let h = Harness::start(&config(&up.base_url(), "")).await;
    for abort in [false, true] {
        up.push_fault(Fault::CutStream { after_events: 3, abort });
        let r = h.send(Method::POST, &h.url("/v1/chat/completions"), Some(MASTER), &[], chat_body(true)).await;
        assert_eq!(r.status, 200, "abort={abort}: {}", r.text());
        let data = sse_data(&r.text());
        assert_eq!(data.len(), 4, "three relayed events and one error: {data:?}");
        assert!(!data.contains(&"[DONE]".to_string()));
        let last: serde_json::Value = serde_json::from_str(data.last().unwrap()).unwrap();
        let code = last["error"]["code"].as_str().unwrap();
        assert!(code == "upstream_stream_cut" || code == "upstream_broken", "{last}");
    }
}

#[tokio::test]
async fn a_silent_stream_times_out_with_an_error_event() {
    let up = MockUpstream::start().await;
    let h = Harness::start(&config(&up.base_url(), "")).await;
    up.push_fault(Fault::StallStream { after_events: 2, pause: Duration::from_secs(3) });
    let started = std::time::Instant::now();
    let r = h.send(Method::POST, &h.url("/v1/chat/completions"), Some(MASTER), &[], chat_body(true)).await;
    assert!(started.elapsed() < Duration::from_secs(2), "idle timeout is 500ms");
    let data = sse_data(&r.text());
    let last: serde_json::Value = serde_json::from_str(data.last().unwrap()).unwrap();
    assert_eq!(last["error"]["code"], "upstream_timeout");
}

#[tokio::test]
async fn resets_slow_answers_and_refused_connections_are_gateway_errors() {
    let up = MockUpstream::start().await;
    let h = Harness::start(&config(&up.base_url(), "")).await;

    up.push_fault(Fault::Reset);
    let r = h.send(Method::POST, &h.url("/v1/chat/completions"), Some(MASTER), &[], chat_body(false)).await;
    assert_eq!(r.status, 502, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "upstream_broken");

    up.push_fault(Fault::Latency(Duration::from_secs(4)));
    let r = h.send(Method::POST, &h.url("/v1/chat/completions"), Some(MASTER), &[], chat_body(false)).await;
    assert_eq!(r.status, 504, "first_token timeout is 2s: {}", r.text());
    assert!(r.error_message().contains("did not answer within 2000ms"));

    // A port nothing listens on.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = dead.local_addr().unwrap().port();
    drop(dead);
    let h2 = Harness::start(&config(&format!("http://127.0.0.1:{port}/v1"), "")).await;
    let r = h2.send(Method::POST, &h2.url("/v1/chat/completions"), Some(MASTER), &[], chat_body(false)).await;
    assert_eq!(r.status, 502);
    assert_eq!(r.json()["error"]["code"], "upstream_unreachable");
    assert!(r.error_message().contains("could not connect to provider `up`"));
    assert!(!r.text().contains("sk-upstream-secret"));
}

#[tokio::test]
async fn mock_provider_failures_are_configurable() {
    let up = MockUpstream::start().await;
    let extra = "  - name: flaky\n    type: mock\n    mock: { failure: { status: 503, every: 2, retry_after: 3 } }\n    models: [{ name: m }]\n";
    let h = Harness::start(&config(&up.base_url(), extra)).await;
    let body = json!({ "model": "flaky/m", "messages": user("hi") });
    let statuses: Vec<u16> = futures_util::future::join_all((0..4).map(|_| h.chat(Some(MASTER), &body)))
        .await
        .iter()
        .map(|r| r.status.as_u16())
        .collect();
    assert_eq!(statuses.iter().filter(|s| **s == 503).count(), 2, "{statuses:?}");
    let r = h.chat(Some(MASTER), &json!({ "model": "mock/echo", "messages": user("x [mock:status=429]") })).await;
    assert_eq!(r.status, 429);
}

#[tokio::test]
async fn metrics_count_requests_tokens_refusals_and_latency() {
    let up = MockUpstream::start().await;
    let extra =
        "rate_limits:\n  - { id: tiny, when: { models: [\"mock/embed\"] }, unit: requests_per_minute, limit: 1 }\n";
    let h = Harness::start(&format!("{}{extra}", config(&up.base_url(), ""))).await;
    for _ in 0..2 {
        assert_eq!(
            h.send(Method::POST, &h.url("/v1/chat/completions"), Some(MASTER), &[], chat_body(false)).await.status,
            200
        );
    }
    let stream = json!({ "model": "up/gpt-4o-mini", "stream": true, "stream_options": { "include_usage": true },
                         "messages": user("one two") });
    let r = h.send(Method::POST, &h.url("/v1/chat/completions"), Some(MASTER), &[], stream.to_string()).await;
    assert!(r.text().ends_with("data: [DONE]\n\n"));
    for _ in 0..2 {
        h.send(
            Method::POST,
            &h.url("/v1/embeddings"),
            Some(MASTER),
            &[],
            json!({ "model": "mock/embed", "input": "x" }).to_string(),
        )
        .await;
    }
    // Metrics need a credential that may read usage.
    assert_eq!(h.send(Method::GET, &h.admin_url("/metrics"), Some(LIMITED), &[], "").await.status, 403);
    let m = h.send(Method::GET, &h.admin_url("/metrics"), Some(MASTER), &[], "").await.text();
    let has = |needle: &str| assert!(m.contains(needle), "missing {needle:?} in:\n{m}");
    has(r#"tollgate_requests_total{route="chat",model="up/gpt-4o-mini",provider="up",status="200"} 3"#);
    has(r#"tollgate_requests_total{route="embeddings",model="mock/embed",provider="-",status="429"} 1"#);
    // Two answers and one stream, each reporting 11 prompt and 7 completion tokens.
    has(r#"tollgate_tokens_total{model="up/gpt-4o-mini",provider="up",kind="prompt"} 33"#);
    has(r#"tollgate_tokens_total{model="up/gpt-4o-mini",provider="up",kind="completion"} 21"#);
    has(r#"tollgate_refusals_total{kind="rate_limit",rule="tiny"} 1"#);
    has("tollgate_gateway_overhead_seconds_count 5");
    has(r#"tollgate_request_duration_seconds_bucket{le="+Inf",route="chat"} 3"#);
    has("tollgate_config_version 1");
    assert!(!m.contains(MASTER) && !m.contains("sk-upstream-secret"));
}

/// Past `server.max_concurrent_requests`, a request is answered 503 with
/// `retry-after` at once; probes still answer, and the slot comes back
/// when a request ends.
#[tokio::test]
async fn past_the_concurrency_limit_requests_are_shed_with_retry_after() {
    let up = MockUpstream::start().await;
    let cfg = config(&up.base_url(), "").replace("max_body_size: 64KiB }", "max_body_size: 64KiB, max_concurrent_requests: 2 }");
    let h = Harness::start(&cfg).await;
    let in_flight = async || -> String {
        let m = h.send(Method::GET, &h.admin_url("/metrics"), Some(MASTER), &[], "").await.text();
        m.lines().filter(|l| l.starts_with("tollgate_requests_in_flight ") || l.starts_with("tollgate_requests_shed_total ")).collect::<Vec<_>>().join(" ")
    };
    up.push_fault(Fault::Latency(Duration::from_millis(1500)));
    up.push_fault(Fault::Latency(Duration::from_millis(1500)));
    let slow = async || h.send(Method::POST, &h.url("/v1/chat/completions"), Some(MASTER), &[], chat_body(false)).await;
    let probe = async || {
        eventually("two requests in flight", async || in_flight().await.contains("tollgate_requests_in_flight 2")).await;
        let shed = h.send(Method::POST, &h.url("/v1/chat/completions"), Some(MASTER), &[], chat_body(true)).await;
        let ready = h.get("/ready", None).await;
        (shed, ready)
    };
    let (a, b, (shed, ready)) = tokio::join!(slow(), slow(), probe());
    assert_eq!((a.status.as_u16(), b.status.as_u16()), (200, 200), "the requests in flight finish");
    assert_eq!(shed.status, 503, "{}", shed.text());
    assert_eq!(shed.json()["error"]["code"], "overloaded");
    assert!(shed.error_message().contains("server.max_concurrent_requests"), "{}", shed.text());
    assert_eq!(shed.header("retry-after"), Some("1"));
    assert_eq!(ready.status, 200, "probes are never shed");
    assert_eq!(in_flight().await, "tollgate_requests_in_flight 0 tollgate_requests_shed_total 1");
    assert_eq!(up.request_count(), 2, "the shed request never reached the provider");
    let after = h.send(Method::POST, &h.url("/v1/chat/completions"), Some(MASTER), &[], chat_body(false)).await;
    assert_eq!(after.status, 200, "the slots came back");
}

#[tokio::test]
async fn a_client_that_leaves_cancels_the_upstream_call_at_once() {
    let up = MockUpstream::start().await;
    let h = Harness::start(&config(&up.base_url(), "")).await;
    for stream in [false, true] {
        up.push_fault(Fault::Latency(Duration::from_secs(10)));
        let before = up.abandoned().0;
        let body = json!({ "model": "up/gpt-4o-mini", "messages": user("slow"), "stream": stream });
        // The client gives up after 300 ms: its connection closes.
        let call = h.chat(Some(MASTER), &body);
        assert!(tokio::time::timeout(Duration::from_millis(300), call).await.is_err());
        let left = std::time::Instant::now();
        eventually("the upstream call is cancelled", async || up.abandoned().0 == before + 1).await;
        let cancelled = up.abandoned().1.unwrap();
        let took = cancelled.saturating_duration_since(left);
        assert!(took < Duration::from_millis(100), "stream {stream}: the upstream call ran on for {took:?}");
    }
}
