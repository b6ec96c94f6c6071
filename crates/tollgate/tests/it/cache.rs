//! The response cache through the real router against the test kit's
//! OpenAI-compatible upstream: exact hits that skip the upstream and cost
//! nothing, tenant isolation, streams replayed as streams, errors and cut
//! streams never kept, the per-request header, the `/v1/messages` front,
//! and Redis shared by two gateways (and a Redis outage being a miss).

use std::time::Duration;

use bytes::Bytes;
use http::Method;
use serde_json::{Value, json};
use testkit::{Fault, MockUpstream};

use crate::common::{Harness, MASTER, eventually, sse_data};

const A: &str = "key-team-a-1";
const A2: &str = "key-team-a-2";
const B: &str = "key-team-b";

fn yaml(up: &MockUpstream, cache: &str) -> String {
    format!(
        r#"
server: {{ listen: "127.0.0.1:0", admin_listen: "127.0.0.1:0" }}
auth:
  master_key: "{MASTER}"
  keys:
    - {{ name: a1, key: "{A}", metadata: {{ team: alpha }} }}
    - {{ name: a2, key: "{A2}", metadata: {{ team: alpha }} }}
    - {{ name: b, key: "{B}", metadata: {{ team: beta }} }}
providers:
  - name: up
    type: openai_compatible
    base_url: "{}"
    api_key: "sk-upstream-secret"
    models: [{{ name: gpt-4o-mini, input_cost_per_mtok: 0.15, output_cost_per_mtok: 0.6 }}]
cache: {cache}
"#,
        up.base_url()
    )
}

fn ask(text: &str) -> Value {
    json!({ "model": "up/gpt-4o-mini", "temperature": 0, "messages": [{ "role": "user", "content": text }] })
}

async fn chat(h: &Harness, key: &str, body: &Value, headers: &[(&str, &str)]) -> crate::common::Resp {
    h.send(Method::POST, &h.url("/v1/chat/completions"), Some(key), headers, body.to_string()).await
}

async fn entry(h: &Harness, id: &str) -> Value {
    let mut out = Value::Null;
    eventually("the log entry", async || {
        let r = h.send(Method::GET, &h.admin_url(&format!("/admin/logs/{id}")), Some(MASTER), &[], Bytes::new()).await;
        out = if r.status == 200 { r.json() } else { Value::Null };
        !out.is_null()
    })
    .await;
    out
}

fn content(r: &crate::common::Resp) -> String {
    r.json()["choices"][0]["message"]["content"].as_str().unwrap_or_default().to_string()
}

/// The text of a streamed answer, and whether it ended with `[DONE]`.
fn streamed(r: &crate::common::Resp) -> (String, bool) {
    let events = sse_data(&r.text());
    let text = events
        .iter()
        .filter_map(|e| serde_json::from_str::<Value>(e).ok())
        .filter_map(|e| e["choices"][0]["delta"]["content"].as_str().map(str::to_string))
        .collect();
    (text, events.last().map(String::as_str) == Some("[DONE]"))
}

#[tokio::test]
async fn an_exact_hit_skips_the_upstream_costs_nothing_and_says_so() {
    let up = MockUpstream::start().await;
    let h = Harness::start(&yaml(&up, "{ mode: exact }")).await;
    let first = chat(&h, A, &ask("hello cache"), &[]).await;
    assert_eq!(first.status, 200, "{}", first.text());
    assert_eq!(first.header("x-tollgate-cache-status"), Some("miss"));
    // The answer is kept off the request's path.
    let mut second = chat(&h, A, &ask("hello cache"), &[]).await;
    for _ in 0..50 {
        if second.header("x-tollgate-cache-status") == Some("hit") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        second = chat(&h, A, &ask("hello cache"), &[]).await;
    }
    assert_eq!(second.header("x-tollgate-cache-status"), Some("hit"));
    assert_eq!(second.json()["choices"], first.json()["choices"]);
    assert_eq!(second.header("x-tollgate-resolved-model"), Some("up/gpt-4o-mini"));
    assert_eq!(up.request_count(), 1, "the hit never reached the upstream");
    // Field order and the stream flag do not change the key: a hit replays as a stream.
    let reordered = r#"{"messages":[{"content":"hello cache","role":"user"}],"temperature":0,"model":"up/gpt-4o-mini","stream":true}"#;
    let s = h.send(Method::POST, &h.url("/v1/chat/completions"), Some(A), &[], reordered).await;
    assert_eq!(s.header("x-tollgate-cache-status"), Some("hit"));
    let (text, done) = streamed(&s);
    assert_eq!(text, content(&first));
    assert!(done, "a replayed stream ends with [DONE]");
    assert!(!s.text().contains("\"usage\""), "usage goes to a client that asked for it only");
    assert_eq!(up.request_count(), 1);

    let miss = entry(&h, first.header("x-tollgate-request-id").unwrap()).await;
    let hit = entry(&h, second.header("x-tollgate-request-id").unwrap()).await;
    assert_eq!(miss["cache"]["status"], "miss");
    assert_eq!(hit["cache"]["status"], "hit");
    assert_eq!(hit["cost_nanos"], 0);
    assert_eq!(hit["prompt_tokens"], 0, "a hit spends no tokens");
    assert_eq!(hit["cache"]["saved_nanos"], miss["cost_nanos"]);
    assert!(miss["cost_nanos"].as_u64().unwrap() > 0);
    let mut row = Value::Null;
    eventually("both hits in the usage report", async || {
        let r = h.send(Method::GET, &h.admin_url("/admin/usage/report?group_by=model"), Some(MASTER), &[], Bytes::new()).await;
        row = r.json()["rows"][0].clone();
        row["cache_hits"] == 2
    })
    .await;
    assert!(row["saved_usd"].as_f64().unwrap() > 0.0, "{row}");
    let metrics = h.send(Method::GET, &h.admin_url("/metrics"), Some(MASTER), &[], Bytes::new()).await.text();
    assert!(metrics.contains("tollgate_cache_requests_total{status=\"hit\"} 2"), "{metrics}");
}

#[tokio::test]
async fn tenants_never_share_an_answer() {
    let up = MockUpstream::start().await;
    let h = Harness::start(&yaml(&up, "{ mode: exact }")).await;
    assert_eq!(chat(&h, A, &ask("team question"), &[]).await.status, 200);
    eventually("a teammate's hit", async || {
        chat(&h, A2, &ask("team question"), &[]).await.header("x-tollgate-cache-status") == Some("hit")
    })
    .await;
    let other = chat(&h, B, &ask("team question"), &[]).await;
    assert_eq!(other.header("x-tollgate-cache-status"), Some("miss"), "another team never sees it");
    let master = chat(&h, MASTER, &ask("team question"), &[]).await;
    assert_eq!(master.header("x-tollgate-cache-status"), Some("miss"), "nor a caller without a team");
}

#[tokio::test]
async fn errors_and_cut_streams_are_never_kept() {
    let up = MockUpstream::start().await;
    let h = Harness::start(&yaml(&up, "{ mode: exact }")).await;
    up.push_fault(Fault::Status { status: 500, body: None, retry_after: None });
    assert_eq!(chat(&h, A, &ask("flaky"), &[]).await.status, 502);
    let ok = chat(&h, A, &ask("flaky"), &[]).await;
    assert_eq!((ok.status.as_u16(), ok.header("x-tollgate-cache-status")), (200, Some("miss")), "the error was not kept");

    let mut body = ask("cut short");
    body["stream"] = json!(true);
    up.push_fault(Fault::CutStream { after_events: 2, abort: false });
    let cut = chat(&h, A, &body, &[]).await;
    assert!(!streamed(&cut).1);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let again = chat(&h, A, &body, &[]).await;
    assert_eq!(again.header("x-tollgate-cache-status"), Some("miss"), "a cut stream was not kept");
    assert!(streamed(&again).1);
    eventually("the whole stream kept", async || {
        chat(&h, A, &body, &[]).await.header("x-tollgate-cache-status") == Some("hit")
    })
    .await;
}

#[tokio::test]
async fn the_request_header_refreshes_partitions_expires_and_bypasses() {
    let up = MockUpstream::start().await;
    let h = Harness::start(&yaml(&up, "{ mode: exact, ttl: 1h }")).await;
    chat(&h, A, &ask("steer"), &[]).await;
    eventually("kept", async || chat(&h, A, &ask("steer"), &[]).await.header("x-tollgate-cache-status") == Some("hit")).await;
    let n = up.request_count();
    let refresh = chat(&h, A, &ask("steer"), &[("x-tollgate-cache", r#"{"force_refresh": true}"#)]).await;
    assert_eq!(refresh.header("x-tollgate-cache-status"), Some("refresh"));
    assert_eq!(up.request_count(), n + 1);
    let ns = chat(&h, A, &ask("steer"), &[("x-tollgate-cache", r#"{"namespace": "evals"}"#)]).await;
    assert_eq!(ns.header("x-tollgate-cache-status"), Some("miss"), "another namespace");
    let off = chat(&h, A, &ask("steer"), &[("x-tollgate-cache", r#"{"mode": "off"}"#)]).await;
    assert_eq!(off.header("x-tollgate-cache-status"), Some("bypass"));
    let short = [("x-tollgate-cache", r#"{"ttl": "300ms", "namespace": "brief"}"#)];
    chat(&h, A, &ask("steer"), &short).await;
    eventually("kept briefly", async || chat(&h, A, &ask("steer"), &short).await.header("x-tollgate-cache-status") == Some("hit")).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(chat(&h, A, &ask("steer"), &short).await.header("x-tollgate-cache-status"), Some("miss"), "expired");
    let bad = chat(&h, A, &ask("steer"), &[("x-tollgate-cache", r#"{"mood": "exact"}"#)]).await;
    assert_eq!(bad.status, 400);
    assert!(bad.error_message().contains("x-tollgate-cache"), "{}", bad.text());
}

#[tokio::test]
async fn a_hit_on_the_messages_front_door_is_anthropic_shaped() {
    let up = MockUpstream::start().await;
    let h = Harness::start(&yaml(&up, "{ mode: exact }")).await;
    let body = json!({ "model": "up/gpt-4o-mini", "max_tokens": 100, "messages": [{ "role": "user", "content": "bonjour" }] });
    let url = h.url("/v1/messages");
    let send = || h.send(Method::POST, &url, Some(A), &[("anthropic-version", "2023-06-01")], body.to_string());
    let first = send().await;
    assert_eq!(first.status, 200, "{}", first.text());
    let mut hit = send().await;
    for _ in 0..50 {
        if hit.header("x-tollgate-cache-status") == Some("hit") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        hit = send().await;
    }
    assert_eq!(hit.header("x-tollgate-cache-status"), Some("hit"));
    assert_eq!(hit.json()["type"], "message");
    assert_eq!(hit.json()["content"], first.json()["content"]);
    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    let s = h.send(Method::POST, &h.url("/v1/messages"), Some(A), &[("anthropic-version", "2023-06-01")], streamed.to_string()).await;
    assert_eq!(s.header("x-tollgate-cache-status"), Some("hit"));
    assert!(s.text().contains("event: message_stop"), "{}", s.text());
    assert_eq!(up.request_count(), 1);
}

#[tokio::test]
async fn redis_is_shared_by_gateways_and_an_outage_is_a_miss() {
    let url = std::env::var("TOLLGATE_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/0".into());
    let up = MockUpstream::start().await;
    let cache = format!("{{ mode: exact, backend: redis, redis_url: \"{url}\" }}");
    let one = Harness::start(&yaml(&up, &cache)).await;
    let two = Harness::start(&yaml(&up, &cache)).await;
    // Unique per run: the Redis outlives the test.
    let text = format!("shared {}", std::process::id() as u128 * 1_000_000 + fastrand_seed());
    let first = chat(&one, A, &ask(&text), &[]).await;
    assert_eq!(first.status, 200);
    assert_eq!(
        first.header("x-tollgate-cache-status"),
        Some("miss"),
        "Redis is needed for this test at {url}: start it (redis-server) or set TOLLGATE_TEST_REDIS_URL"
    );
    eventually("a hit on the other gateway", async || {
        chat(&two, A, &ask(&text), &[]).await.header("x-tollgate-cache-status") == Some("hit")
    })
    .await;
    assert_eq!(up.request_count(), 1);

    // Semantic mode: a vector added on one gateway is found by the other.
    let cache = format!("{{ mode: semantic, backend: redis, redis_url: \"{url}\" }}");
    let (one, two) = (Harness::start(&yaml(&up, &cache)).await, Harness::start(&yaml(&up, &cache)).await);
    let nonce = fastrand_seed();
    // A namespace of its own: vectors an earlier run left in Redis are in
    // other partitions, so this run's index starts empty.
    let ns = format!(r#"{{"namespace": "run-{}-{nonce}"}}"#, std::process::id());
    let ns = [("x-tollgate-cache", ns.as_str())];
    let asked = format!("Which river flows through city {nonce}?");
    assert_eq!(chat(&one, A, &ask(&asked), &ns).await.header("x-tollgate-cache-status"), Some("miss"));
    indexed(&one, 1).await;
    let r = chat(&two, A, &ask(&format!("Tell me: which river flows through city {nonce}")), &ns).await;
    assert_eq!(r.header("x-tollgate-cache-status"), Some("hit"), "the vector came through Redis");
    assert!(r.header("x-tollgate-cache-similarity").is_some());
    assert_eq!(up.request_count(), 2);

    let down = Harness::start(&yaml(&up, "{ mode: exact, backend: redis, redis_url: \"redis://127.0.0.1:1/0\" }")).await;
    for _ in 0..2 {
        let r = chat(&down, A, &ask(&text), &[]).await;
        assert_eq!((r.status.as_u16(), r.header("x-tollgate-cache-status")), (200, Some("miss")));
    }
}

fn fastrand_seed() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() % 1_000_000
}

/// `/v1/messages` relayed to an Anthropic model: the answer is kept in
/// Anthropic's own shape, whether it came whole or as a stream, and a hit
/// is served in that shape, whole or replayed as Anthropic's events.
#[tokio::test]
async fn anthropic_answers_to_the_messages_front_door_are_kept_in_their_own_shape() {
    let up = MockUpstream::start().await;
    let config = yaml(&up, "{ mode: exact }").replace(
        "cache:",
        &format!(
            "  - {{ name: claude, type: anthropic, base_url: \"{}\", api_key: \"sk-ant-secret\", models: [{{ name: claude-x, input_cost_per_mtok: 3, output_cost_per_mtok: 15 }}] }}\ncache:",
            up.base_url().trim_end_matches("/v1")
        ),
    );
    let h = Harness::start(&config).await;
    let url = h.url("/v1/messages");
    let send = |body: Value| {
        let url = url.clone();
        let h = &h;
        async move { h.send(Method::POST, &url, Some(A), &[("anthropic-version", "2023-06-01")], body.to_string()).await }
    };
    let ask = |text: &str, stream: bool| {
        json!({ "model": "claude/claude-x", "max_tokens": 64, "stream": stream, "messages": [{ "role": "user", "content": text }] })
    };
    let texts = |r: &crate::common::Resp| -> String {
        sse_data(&r.text())
            .iter()
            .filter_map(|e| serde_json::from_str::<Value>(e).ok())
            .filter_map(|e| e["delta"]["text"].as_str().map(str::to_string))
            .collect()
    };

    let first = send(ask("kept whole", false)).await;
    assert_eq!((first.status.as_u16(), first.header("x-tollgate-cache-status")), (200, Some("miss")), "{}", first.text());
    assert_eq!(first.json()["type"], "message");
    let mut hit = Value::Null;
    eventually("a whole hit", async || {
        let r = send(ask("kept whole", false)).await;
        hit = r.json();
        r.header("x-tollgate-cache-status") == Some("hit")
    })
    .await;
    assert_eq!(hit["content"], first.json()["content"]);
    assert_eq!(hit["id"], first.json()["id"], "the kept message, not a translation of it");
    let s = send(ask("kept whole", true)).await;
    assert_eq!(s.header("x-tollgate-cache-status"), Some("hit"));
    assert!(s.text().starts_with("event: message_start"), "{}", s.text());
    assert_eq!(texts(&s), first.json()["content"][0]["text"].as_str().unwrap());

    let streamed = send(ask("kept from a stream", true)).await;
    assert_eq!(streamed.header("x-tollgate-cache-status"), Some("miss"));
    assert!(streamed.text().contains("event: message_stop"));
    let mut whole = Value::Null;
    eventually("a hit on the streamed answer", async || {
        let r = send(ask("kept from a stream", false)).await;
        whole = r.json();
        r.header("x-tollgate-cache-status") == Some("hit")
    })
    .await;
    assert_eq!(whole["content"][0]["text"].as_str().unwrap(), texts(&streamed));
    assert!(whole["usage"]["output_tokens"].as_u64().unwrap() > 0, "{whole}");
    assert_eq!(up.request_count(), 2, "hits never reached the upstream");
}

fn hit_or_miss(r: &crate::common::Resp) -> Option<&str> {
    r.header("x-tollgate-cache-status")
}

/// Waits until the gateway's semantic index holds `n` vectors (they are
/// added, and shared through Redis, off the request's path).
async fn indexed(h: &Harness, n: u64) {
    eventually(&format!("{n} vectors indexed"), async || {
        let m = h.send(Method::GET, &h.admin_url("/metrics"), Some(MASTER), &[], Bytes::new()).await.text();
        m.lines().any(|l| l == format!("tollgate_cache_vectors {n}"))
    })
    .await;
}

/// Semantic mode with the built-in embedding: a reworded question is a hit
/// (and says how similar it was), a different question, another tenant or
/// another system prompt is not.
#[tokio::test]
async fn a_reworded_question_is_a_semantic_hit_within_its_tenant_and_partition() {
    let up = MockUpstream::start().await;
    let h = Harness::start(&yaml(&up, "{ mode: semantic }")).await;
    let first = chat(&h, A, &ask("What is the capital of France?"), &[]).await;
    assert_eq!(hit_or_miss(&first), Some("miss"), "{}", first.text());
    indexed(&h, 1).await;
    let hit = chat(&h, A2, &ask("what's the capital of france"), &[]).await;
    assert_eq!(hit_or_miss(&hit), Some("hit"));
    assert_eq!(content(&hit), content(&first));
    let similarity: f32 = hit.header("x-tollgate-cache-similarity").unwrap().parse().unwrap();
    assert!(similarity > 0.9 && similarity < 1.0, "{similarity}");
    let logged = entry(&h, hit.header("x-tollgate-request-id").unwrap()).await;
    assert_eq!(logged["cache"]["status"], "hit");
    assert!((logged["cache"]["similarity"].as_f64().unwrap() - f64::from(similarity)).abs() < 1e-3, "{logged}");
    assert_eq!(up.request_count(), 1);

    let replayed = {
        let mut b = ask("What's the capital of France ?");
        b["stream"] = json!(true);
        chat(&h, A, &b, &[]).await
    };
    assert_eq!(hit_or_miss(&replayed), Some("hit"));
    assert_eq!(streamed(&replayed), (content(&first), true), "a semantic hit replays as a stream too");

    let germany = chat(&h, A, &ask("What is the capital of Germany?"), &[]).await;
    assert_eq!(hit_or_miss(&germany), Some("miss"), "a different question");
    let other_tenant = chat(&h, B, &ask("what's the capital of france"), &[]).await;
    assert_eq!(hit_or_miss(&other_tenant), Some("miss"), "another team never sees it");
    let mut with_system = ask("what's the capital of france");
    with_system["messages"] = json!([{ "role": "system", "content": "Answer in French." }, { "role": "user", "content": "what's the capital of france" }]);
    assert_eq!(hit_or_miss(&chat(&h, A, &with_system, &[]).await), Some("miss"), "another system prompt is another partition");
    let strict = chat(&h, A, &ask("what's the capital of France?"), &[("x-tollgate-cache", r#"{"threshold": 0.999}"#)]).await;
    assert_eq!(hit_or_miss(&strict), Some("miss"), "a request may ask for a closer match");
    let exact_only = chat(&h, A, &ask("what's the capital of france!"), &[("x-tollgate-cache", r#"{"mode": "exact"}"#)]).await;
    assert_eq!(hit_or_miss(&exact_only), Some("miss"), "exact mode never matches by similarity");
    let bad = chat(&h, A, &ask("x"), &[("x-tollgate-cache", r#"{"threshold": 2}"#)]).await;
    assert_eq!(bad.status, 400);
    assert!(bad.error_message().contains("threshold"), "{}", bad.text());
}

/// Semantic mode with an embedding model served by the gateway: the
/// model's notion of "the same" (synonyms the built-in embedding cannot
/// see) decides, and each embedding call is logged as the request's child.
#[tokio::test]
async fn an_embedding_model_through_the_gateway_matches_synonyms_and_is_logged() {
    let up = MockUpstream::start().await;
    let config = yaml(&up, "{ mode: semantic, semantic: { embedding_model: up/concepts-embed, threshold: 0.95 } }")
        .replace("models: [{ name: gpt-4o-mini,", "models: [{ name: concepts-embed, input_cost_per_mtok: 0.02 }, { name: gpt-4o-mini,");
    let h = Harness::start(&config).await;
    let first = chat(&h, A, &ask("How do I buy a cheap car?"), &[]).await;
    assert_eq!(hit_or_miss(&first), Some("miss"), "{}", first.text());
    indexed(&h, 1).await;
    let hit = chat(&h, A, &ask("How can I purchase an affordable automobile?"), &[]).await;
    assert_eq!(hit_or_miss(&hit), Some("hit"), "{}", hit.text());
    assert_eq!(content(&hit), content(&first));
    assert_eq!(hit_or_miss(&chat(&h, A, &ask("How do I sell a cheap boat?"), &[]).await), Some("miss"));
    let asked: Vec<Value> = up.requests().iter().filter(|r| r.path.ends_with("/embeddings")).map(|r| r.json()).collect();
    assert!(asked.len() >= 3, "{asked:?}");
    assert_eq!(asked[0], json!({ "model": "concepts-embed", "input": "How do I buy a cheap car?" }));
    let id = hit.header("x-tollgate-request-id").unwrap().to_string();
    let mut children = Value::Null;
    eventually("the embedding call, logged as a child", async || {
        let r = h.send(Method::GET, &h.admin_url(&format!("/admin/logs?parent={id}")), Some(MASTER), &[], Bytes::new()).await;
        children = r.json();
        children["data"].as_array().is_some_and(|d| !d.is_empty())
    })
    .await;
    let child = &children["data"][0];
    assert_eq!(child["route"], "embeddings", "{child}");
    assert_eq!(child["resolved_model"], "up/concepts-embed");
    assert!(child["cost_nanos"].as_u64().unwrap() > 0, "the embedding is paid for and attributed: {child}");
}

#[tokio::test]
async fn semantic_settings_are_checked_at_load() {
    let up = MockUpstream::start().await;
    for (cache, says) in [
        ("{ mode: semantic, semantic: { threshold: 1.5 } }", "threshold"),
        ("{ mode: semantic, semantic: { embedding_model: up/nope } }", "embedding_model `up/nope`"),
    ] {
        let e = tollgate::config::load::load_text(&yaml(&up, cache), "test", 1, &tollgate::state::Shared::default(), Default::default())
            .expect_err(cache);
        assert!(format!("{e}").contains(says), "{e}");
    }
}
