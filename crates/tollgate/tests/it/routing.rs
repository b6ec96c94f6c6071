//! Virtual models through the real router against fault-injecting mocks:
//! fallbacks, retries, strategies, breakers, budgets, streams, cancellation.

use std::time::{Duration, Instant};

use http::Method;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use testkit::{Fault, MockUpstream};

use crate::common::*;

/// Providers `a`, `b`, `c` on three mock upstreams, plus `virtual_models`.
fn cfg(a: &MockUpstream, b: &MockUpstream, c: &MockUpstream, virtual_models: &str) -> String {
    let p = |name: &str, up: &MockUpstream, price: f64| {
        format!(
            "  - name: {name}\n    type: openai_compatible\n    base_url: \"{}\"\n    api_key: \"sk-{name}\"\n    timeout: {{ first_token: 1s, idle: 1s }}\n    models: [{{ name: m, input_cost_per_mtok: {price}, output_cost_per_mtok: {price} }}]\n",
            up.base_url()
        )
    };
    format!(
        "server: {{ listen: \"127.0.0.1:0\", admin_listen: \"127.0.0.1:0\" }}\nauth:\n  master_key: \"{MASTER}\"\n  keys:\n    - {{ name: prod-only, key: \"{LIMITED}\", models: [\"prod/*\"] }}\nproviders:\n{}{}{}virtual_models:\n{virtual_models}",
        p("a", a, 5.0),
        p("b", b, 1.0),
        p("c", c, 3.0)
    )
}

async fn three() -> (MockUpstream, MockUpstream, MockUpstream) {
    (MockUpstream::start().await, MockUpstream::start().await, MockUpstream::start().await)
}

fn ask(model: &str) -> Value {
    json!({ "model": model, "messages": user("hello") })
}

#[tokio::test]
async fn falls_back_on_each_listed_status_and_not_on_others() {
    let (a, b, c) = three().await;
    // A high breaker threshold keeps `a` in rotation through five failures in a row.
    let vm = "  - name: prod/chat\n    circuit_breaker: { consecutive_failures: 100 }\n    targets:\n      - { model: a/m, fallback_on: [429, 500, 502, 503, 504] }\n      - { model: b/m }\n";
    let h = Harness::start(&cfg(&a, &b, &c, vm)).await;
    for status in [429u16, 500, 502, 503, 504] {
        a.push_fault(Fault::Status { status, body: None, retry_after: None });
        let r = h.chat(Some(MASTER), &ask("prod/chat")).await;
        assert_eq!(r.status, 200, "{status}: {}", r.text());
        assert_eq!(r.header("x-tollgate-resolved-model"), Some("b/m"), "{status}");
        assert_eq!(r.header("x-tollgate-attempts"), Some("2"));
    }
    assert_eq!((a.request_count(), b.request_count()), (5, 5));
    // 400 is the request's fault: no fallback, the provider's error comes back.
    a.push_fault(Fault::Status { status: 400, body: None, retry_after: None });
    let r = h.chat(Some(MASTER), &ask("prod/chat")).await;
    assert_eq!(r.status, 400);
    assert!(r.error_message().contains("mock upstream error 400"));
    assert_eq!(b.request_count(), 5);
    // Without problems the first target answers.
    let r = h.chat(Some(MASTER), &ask("prod/chat")).await;
    assert_eq!(r.header("x-tollgate-resolved-model"), Some("a/m"));
    assert_eq!(r.header("x-tollgate-attempts"), Some("1"));
}

#[tokio::test]
async fn falls_back_on_timeouts_and_refused_connections() {
    let (a, b, c) = three().await;
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_port = dead.local_addr().unwrap().port();
    drop(dead);
    let vm = "  - name: prod/chat\n    targets:\n      - { model: a/m, timeout: { first_token: 300ms } }\n      - { model: dead/m }\n      - { model: b/m }\n".to_string();
    let text = cfg(&a, &b, &c, &vm).replace(
        "virtual_models:",
        &format!("  - {{ name: dead, type: openai_compatible, base_url: \"http://127.0.0.1:{dead_port}/v1\", models: [{{ name: m }}] }}\nvirtual_models:"),
    );
    let h = Harness::start(&text).await;
    a.push_fault(Fault::Latency(Duration::from_secs(3)));
    let started = Instant::now();
    let r = h.chat(Some(MASTER), &ask("prod/chat")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(started.elapsed() < Duration::from_secs(2), "the 300ms first-token limit moved on");
    assert_eq!(r.header("x-tollgate-resolved-model"), Some("b/m"));
    assert_eq!(r.header("x-tollgate-attempts"), Some("3"), "a timed out, dead refused, b answered");
}

#[tokio::test]
async fn retries_exactly_as_configured_then_falls_back() {
    let (a, b, c) = three().await;
    let vm = "  - name: prod/chat\n    targets:\n      - { model: a/m, retry: { attempts: 3, backoff: 10ms, on_status: [503] } }\n      - { model: b/m }\n";
    let h = Harness::start(&cfg(&a, &b, &c, vm)).await;
    a.set_fault(Some(Fault::Status { status: 503, body: None, retry_after: None }));
    let r = h.chat(Some(MASTER), &ask("prod/chat")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-tollgate-resolved-model"), Some("b/m"));
    assert_eq!(a.request_count(), 3, "three tries on a: the first and two retries");
    assert_eq!(r.header("x-tollgate-attempts"), Some("4"));
    // A status not in on_status is not retried (but still falls back).
    a.clear();
    a.set_fault(Some(Fault::Status { status: 500, body: None, retry_after: None }));
    let r = h.chat(Some(MASTER), &ask("prod/chat")).await;
    assert_eq!(r.header("x-tollgate-resolved-model"), Some("b/m"));
    assert_eq!(a.request_count(), 1);
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let (a, b, c) = three().await;
    let vm = "  - name: prod/chat\n    targets:\n      - { model: a/m, retry: { attempts: 2, backoff: 1ms } }\n      - { model: b/m }\n";
    let h = Harness::start(&cfg(&a, &b, &c, vm)).await;
    a.push_fault(Fault::Status { status: 429, body: None, retry_after: Some("1".into()) });
    let started = Instant::now();
    let r = h.chat(Some(MASTER), &ask("prod/chat")).await;
    assert_eq!(r.header("x-tollgate-resolved-model"), Some("a/m"), "the retry on a succeeded");
    assert!(started.elapsed() >= Duration::from_secs(1), "waited for retry-after: {:?}", started.elapsed());
    assert_eq!(a.request_count(), 2);
    assert_eq!(b.request_count(), 0);
}

#[tokio::test]
async fn weights_split_traffic_within_statistical_bounds() {
    let (a, b, c) = three().await;
    let vm = "  - name: prod/canary\n    strategy: weight\n    targets:\n      - { model: a/m, weight: 80 }\n      - { model: b/m, weight: 20 }\n";
    let h = Harness::start(&cfg(&a, &b, &c, vm)).await;
    let n = 1000;
    let body = ask("prod/canary");
    for _ in 0..n / 50 {
        futures_util::future::join_all((0..50).map(|_| h.chat(Some(MASTER), &body))).await;
    }
    let (na, nb) = (a.request_count(), b.request_count());
    assert_eq!(na + nb, n);
    // Binomial(1000, 0.8): sd ≈ 12.6; ±60 is beyond 4.5 sd.
    assert!((740..=860).contains(&na), "a got {na} of {n}");
}

#[tokio::test]
async fn latency_strategy_prefers_the_faster_target() {
    let (a, b, c) = three().await;
    let vm =
        "  - name: prod/fast\n    strategy: latency\n    targets:\n      - { model: a/m }\n      - { model: b/m }\n";
    let h = Harness::start(&cfg(&a, &b, &c, vm)).await;
    // Far apart, so a loaded machine's noise on b cannot make a look faster.
    a.set_fault(Some(Fault::Latency(Duration::from_millis(300))));
    for _ in 0..40 {
        h.chat(Some(MASTER), &ask("prod/fast")).await;
    }
    let (na, nb) = (a.request_count(), b.request_count());
    assert!(nb >= 35 && na <= 5, "fast b {nb}, slow a {na}");
}

#[tokio::test]
async fn cost_strategy_picks_the_cheapest() {
    let (a, b, c) = three().await;
    let vm =
        "  - name: prod/cheap\n    strategy: cost\n    targets: [{ model: a/m }, { model: c/m }, { model: b/m }]\n";
    let h = Harness::start(&cfg(&a, &b, &c, vm)).await;
    let r = h.chat(Some(MASTER), &ask("prod/cheap")).await;
    assert_eq!(r.header("x-tollgate-resolved-model"), Some("b/m"));
    b.set_fault(Some(Fault::Status { status: 503, body: None, retry_after: None }));
    let r = h.chat(Some(MASTER), &ask("prod/cheap")).await;
    assert_eq!(r.header("x-tollgate-resolved-model"), Some("c/m"), "next cheapest");
}

#[tokio::test]
async fn breaker_opens_skips_probes_and_recovers() {
    let (a, b, c) = three().await;
    let vm = "  - name: prod/chat\n    circuit_breaker: { consecutive_failures: 3, cooldown: 700ms }\n    targets: [{ model: a/m }, { model: b/m }]\n";
    let h = Harness::start(&cfg(&a, &b, &c, vm)).await;
    a.set_fault(Some(Fault::Status { status: 503, body: None, retry_after: None }));
    for _ in 0..3 {
        h.chat(Some(MASTER), &ask("prod/chat")).await;
    }
    let opened = Instant::now();
    for _ in 0..10 {
        let r = h.chat(Some(MASTER), &ask("prod/chat")).await;
        assert_eq!(r.header("x-tollgate-resolved-model"), Some("b/m"));
    }
    // Open: a is skipped without an attempt — except one probe per
    // cool-down that passed meanwhile (which fails and opens it again), so
    // the count holds on a machine slow enough to let cool-downs pass.
    let probes = (opened.elapsed().as_millis() / 700) as usize;
    assert!((3..=3 + probes).contains(&a.request_count()), "{} requests to a, {probes} cool-down(s) passed", a.request_count());
    // After the cool-down one probe goes through, and succeeds.
    a.set_fault(None);
    let before = a.request_count();
    eventually("the probe after the cool-down", async || {
        h.chat(Some(MASTER), &ask("prod/chat")).await.header("x-tollgate-resolved-model") == Some("a/m")
    })
    .await;
    assert_eq!(a.request_count(), before + 1, "one probe, not a flood");
    for _ in 0..3 {
        let r = h.chat(Some(MASTER), &ask("prod/chat")).await;
        assert_eq!(r.header("x-tollgate-resolved-model"), Some("a/m"), "closed again");
    }
}

#[tokio::test]
async fn every_target_failing_names_the_virtual_model_and_the_last_error() {
    let (a, b, c) = three().await;
    let vm = "  - name: prod/chat\n    targets: [{ model: a/m }, { model: b/m }]\n";
    let h = Harness::start(&cfg(&a, &b, &c, vm)).await;
    a.set_fault(Some(Fault::Status { status: 503, body: None, retry_after: None }));
    b.set_fault(Some(Fault::Status { status: 429, body: None, retry_after: Some("9".into()) }));
    let r = h.chat(Some(MASTER), &ask("prod/chat")).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), Some("9"));
    let msg = r.error_message();
    assert!(msg.contains("every target of `prod/chat` failed") && msg.contains("provider `b` returned 429"), "{msg}");
}

#[tokio::test]
async fn retry_budget_bounds_the_extra_load() {
    let (a, b, c) = three().await;
    let vm = "  - name: prod/chat\n    retry_budget: { ratio: 0.0, min_per_second: 1 }\n    circuit_breaker: { consecutive_failures: 1000, error_rate: 1.0 }\n    targets:\n      - { model: a/m, retry: { attempts: 5, backoff: 1ms }, fallback_on: [] }\n";
    // From before the budget exists: it refills at each whole-second tick
    // after its creation, and a run shorter than a second can still span one.
    let started = Instant::now();
    let h = Harness::start(&cfg(&a, &b, &c, vm)).await;
    a.set_fault(Some(Fault::Status { status: 503, body: None, retry_after: None }));
    for _ in 0..8 {
        assert_eq!(h.chat(Some(MASTER), &ask("prod/chat")).await.status, 503);
    }
    let secs = started.elapsed().as_secs_f64().ceil() as usize;
    // Without a budget: 8 × 5 = 40 requests. With one retry per second: 8,
    // the one the budget starts with, and one per tick (at most `secs`).
    assert!(a.request_count() <= 9 + secs, "{} upstream requests in {secs}s", a.request_count());
}

#[tokio::test]
async fn routes_pick_targets_by_metadata() {
    let (a, b, c) = three().await;
    let vm = "  - name: prod/chat\n    targets: [{ model: a/m }]\n    routes:\n      - when: { metadata: { workflow: security-review } }\n        targets: [{ model: c/m }, { model: a/m }]\n";
    let h = Harness::start(&cfg(&a, &b, &c, vm)).await;
    let body = ask("prod/chat").to_string();
    let r = h
        .send(
            Method::POST,
            &h.url("/v1/chat/completions"),
            Some(MASTER),
            &[("x-tollgate-metadata", r#"{"workflow":"security-review"}"#)],
            body.clone(),
        )
        .await;
    assert_eq!(r.header("x-tollgate-resolved-model"), Some("c/m"));
    let r = h.send(Method::POST, &h.url("/v1/chat/completions"), Some(MASTER), &[], body).await;
    assert_eq!(r.header("x-tollgate-resolved-model"), Some("a/m"));
}

#[tokio::test]
async fn overrides_are_forced_and_nested_virtual_models_resolve() {
    let (a, b, c) = three().await;
    let vm = "  - name: inner\n    targets: [{ model: b/m, overrides: { temperature: 0.2, max_tokens: 64 } }]\n  - name: prod/outer\n    targets: [{ model: a/m }, { model: inner }]\n";
    let h = Harness::start(&cfg(&a, &b, &c, vm)).await;
    a.set_fault(Some(Fault::Status { status: 502, body: None, retry_after: None }));
    let r = h.chat(Some(MASTER), &json!({ "model": "prod/outer", "temperature": 1.5, "messages": user("x") })).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-tollgate-resolved-model"), Some("b/m"));
    let sent = b.requests()[0].json();
    assert_eq!(
        (sent["temperature"].clone(), sent["max_tokens"].clone(), sent["model"].clone()),
        (json!(0.2), json!(64), json!("m"))
    );
}

#[tokio::test]
async fn virtual_models_are_listed_and_authorized_by_name() {
    let (a, b, c) = three().await;
    let vm = "  - name: prod/chat\n    targets: [{ model: a/m }]\n";
    let h = Harness::start(&cfg(&a, &b, &c, vm)).await;
    let ids: Vec<String> = h.get("/v1/models", Some(LIMITED)).await.json()["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, ["prod/chat"]);
    assert_eq!(h.chat(Some(LIMITED), &ask("prod/chat")).await.status, 200);
    assert_eq!(h.chat(Some(LIMITED), &ask("a/m")).await.status, 403, "the key reaches a/m only through prod/*");
}

#[tokio::test]
async fn cycles_are_rejected_at_load() {
    let text = "providers: [{ name: m, type: mock, models: [{ name: x }] }]\nvirtual_models:\n  - { name: a, targets: [{ model: b }] }\n  - { name: b, targets: [{ model: m/x }, { model: a }] }\n  - { name: c, targets: [{ model: nowhere/x }] }\n";
    let e = tollgate::config::load::load_text(text, "v.yaml", 1, &Default::default(), Default::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("v.yaml:4:51: error: virtual models form a cycle: a → b → a"), "{e}");
    assert_eq!(e.matches("error:").count(), 2, "no follow-on errors for the models in the cycle: {e}");
    assert!(e.contains("target `nowhere/x` is neither a provider model nor a virtual model"), "{e}");
}

fn stream_body(model: &str) -> String {
    json!({ "model": model, "stream": true, "messages": user("one two three four five six") }).to_string()
}

#[tokio::test]
async fn a_stream_error_before_the_first_byte_falls_back_after_it_ends_the_stream() {
    let (a, b, c) = three().await;
    let vm = "  - name: prod/chat\n    targets: [{ model: a/m }, { model: b/m }]\n";
    let h = Harness::start(&cfg(&a, &b, &c, vm)).await;

    a.push_fault(Fault::StreamError { after_events: 0, status: 429 });
    let r = h.send(Method::POST, &h.url("/v1/chat/completions"), Some(MASTER), &[], stream_body("prod/chat")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-tollgate-resolved-model"), Some("b/m"));
    let data = sse_data(&r.text());
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    assert!(!r.text().contains("in-stream error"), "nothing of a's failure reaches the client");

    a.push_fault(Fault::StreamError { after_events: 3, status: 429 });
    let b_before = b.request_count();
    let r = h.send(Method::POST, &h.url("/v1/chat/completions"), Some(MASTER), &[], stream_body("prod/chat")).await;
    assert_eq!(r.header("x-tollgate-resolved-model"), Some("a/m"));
    let data = sse_data(&r.text());
    assert!(!data.contains(&"[DONE]".to_string()), "{data:?}");
    assert!(data.last().unwrap().contains("\"error\""), "ends with an error: {data:?}");
    assert_eq!(b.request_count(), b_before, "no splice: b was never asked");
}

#[tokio::test]
async fn a_client_that_goes_away_cancels_the_upstream_call() {
    let (a, b, c) = three().await;
    a.set_chunk_delay(Duration::from_millis(100));
    let vm = "  - name: prod/chat\n    targets: [{ model: a/m }]\n";
    let h = Harness::start(&cfg(&a, &b, &c, vm)).await;
    let req = http::Request::builder()
        .method(Method::POST)
        .uri(h.url("/v1/chat/completions"))
        .header("authorization", format!("Bearer {MASTER}"))
        .body(http_body_util::Full::new(bytes::Bytes::from(stream_body("prod/chat"))))
        .unwrap();
    let resp = h.client.request(req).await.unwrap();
    let mut body = resp.into_body();
    let first = body.frame().await.unwrap().unwrap();
    assert!(first.is_data());
    let dropped_at = Instant::now();
    drop(body);
    eventually("the upstream stream is abandoned", async || a.aborted_streams() == 1).await;
    // A bound, not a benchmark: far above the few ms it takes, far below
    // the ~2 s the rest of this 100 ms-per-chunk stream would have run.
    assert!(dropped_at.elapsed() < Duration::from_secs(1), "{:?}", dropped_at.elapsed());
}

#[tokio::test]
async fn a_nested_model_with_every_circuit_open_is_skipped_not_fatal() {
    let (a, b, c) = three().await;
    let vm = "  - name: inner\n    circuit_breaker: { consecutive_failures: 1, cooldown: 10s }\n    targets: [{ model: a/m }]\n  - name: prod/outer\n    targets: [{ model: inner }, { model: b/m }]\n";
    let h = Harness::start(&cfg(&a, &b, &c, vm)).await;
    a.set_fault(Some(Fault::Status { status: 503, body: None, retry_after: None }));
    for _ in 0..3 {
        let r = h.chat(Some(MASTER), &ask("prod/outer")).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.header("x-tollgate-resolved-model"), Some("b/m"));
    }
    assert_eq!(a.request_count(), 1, "after opening, the inner model's target is not tried again");
}

/// Timeouts and refused connections are retried only where the target asks
/// (`retry.on_timeout`, `retry.on_connect`); each retry is in the trail.
#[tokio::test]
async fn timeouts_and_refused_connections_retry_only_when_asked() {
    let (a, b, c) = three().await;
    let vm = "  - name: prod/slow\n    targets:\n      - { model: a/m, retry: { attempts: 2, backoff: 1ms, on_timeout: true }, fallback_on: [] }\n  - name: prod/strict\n    targets:\n      - { model: a/m, retry: { attempts: 2, backoff: 1ms }, fallback_on: [] }\n";
    let h = Harness::start(&cfg(&a, &b, &c, vm)).await;
    // The first answer comes after the 1s first-token timeout; the retry's at once.
    a.push_fault(Fault::Latency(Duration::from_millis(1500)));
    let r = h.chat(Some(MASTER), &ask("prod/slow")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-tollgate-attempts"), Some("2"));
    a.push_fault(Fault::Latency(Duration::from_millis(1500)));
    let r = h.chat(Some(MASTER), &ask("prod/strict")).await;
    assert_eq!((r.status.as_u16(), r.header("x-tollgate-attempts")), (504, Some("1")), "no on_timeout: {}", r.text());

    // A port nothing listens on: refused at once, retried with on_connect only.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_url = format!("http://{}/v1", dead.local_addr().unwrap());
    drop(dead);
    let yaml = cfg(&a, &b, &c, "  - name: prod/dead\n    targets:\n      - { model: d/m, retry: { attempts: 3, backoff: 1ms, on_connect: true }, fallback_on: [] }\n  - name: prod/dead-strict\n    targets:\n      - { model: d/m, retry: { attempts: 3, backoff: 1ms }, fallback_on: [] }\n")
        .replace("virtual_models:\n", &format!("  - name: d\n    type: openai_compatible\n    base_url: \"{dead_url}\"\n    api_key: \"sk-d\"\n    models: [{{ name: m }}]\nvirtual_models:\n"));
    let h = Harness::start(&yaml).await;
    let r = h.chat(Some(MASTER), &ask("prod/dead")).await;
    assert_eq!((r.status.as_u16(), r.header("x-tollgate-attempts")), (502, Some("3")), "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "upstream_unreachable");
    let r = h.chat(Some(MASTER), &ask("prod/dead-strict")).await;
    assert_eq!((r.status.as_u16(), r.header("x-tollgate-attempts")), (502, Some("1")), "{}", r.text());
}
