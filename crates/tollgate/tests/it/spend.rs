//! Rate limits and budgets through the real router: exact counts, refusals
//! that name the rule, reservations that never leak under concurrency,
//! errors, timeouts and disconnects, streams charged for what they used.

use std::sync::Arc;

use http::Method;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use testkit::MockUpstream;

use crate::common::*;

const PRICED: &str = "  - name: priced\n    type: mock\n    mock: { prompt_tokens: 5, completion_tokens: 1000, chunk_delay: 30ms }\n    models: [{ name: m, input_cost_per_mtok: 1.0, output_cost_per_mtok: 1.0 }]\n";

fn with_rules(up: &MockUpstream, rules: &str) -> String {
    format!("{}{rules}", config(&up.base_url(), PRICED))
}

async fn post(h: &Harness, body: &Value, metadata: &str) -> Resp {
    h.send(
        Method::POST,
        &h.url("/v1/chat/completions"),
        Some(MASTER),
        &[("x-tollgate-metadata", metadata)],
        body.to_string(),
    )
    .await
}

#[tokio::test]
async fn request_limits_are_exact_per_key_and_name_the_rule() {
    let up = MockUpstream::start().await;
    let rules =
        "rate_limits:\n  - { id: per-project, limit_by: [metadata.project_id], unit: requests_per_minute, limit: 5 }\n";
    let h = Harness::start(&with_rules(&up, rules)).await;
    let body = json!({ "model": "mock/echo", "messages": user("hi") });
    let mut statuses = Vec::new();
    for _ in 0..8 {
        statuses.push(post(&h, &body, r#"{"project_id":"p1"}"#).await);
    }
    let ok = statuses.iter().filter(|r| r.status == 200).count();
    assert_eq!(ok, 5, "exactly the limit");
    let refused = statuses.last().unwrap();
    assert_eq!(refused.status, 429);
    assert_eq!(refused.header("x-tollgate-limit"), Some("per-project"));
    let retry: u64 = refused.header("retry-after").unwrap().parse().unwrap();
    // Sliding window: the previous minute still counts for a while into the next.
    assert!((1..=120).contains(&retry), "{retry}");
    assert_eq!(refused.json()["error"]["code"], "rate_limit_exceeded");
    assert!(refused.error_message().contains("rate limit `per-project`"), "{}", refused.error_message());
    assert_eq!(post(&h, &body, r#"{"project_id":"p2"}"#).await.status, 200, "another key has its own counter");
}

#[tokio::test]
async fn every_matching_rule_applies_and_a_refusal_costs_no_quota() {
    let up = MockUpstream::start().await;
    let rules = "rate_limits:\n  - { id: wide, unit: requests_per_minute, limit: 100 }\n  - { id: echo-only, when: { models: [\"mock/echo\"] }, unit: requests_per_minute, limit: 2 }\n";
    let h = Harness::start(&with_rules(&up, rules)).await;
    let echo = json!({ "model": "mock/echo", "messages": user("hi") });
    let other = json!({ "model": "mock/embed", "messages": user("hi") });
    assert_eq!(post(&h, &echo, "{}").await.status, 200);
    assert_eq!(post(&h, &echo, "{}").await.status, 200);
    for _ in 0..5 {
        let r = post(&h, &echo, "{}").await;
        assert_eq!(r.header("x-tollgate-limit"), Some("echo-only"));
    }
    assert_eq!(post(&h, &other, "{}").await.status, 200, "the narrow rule does not match other models");
    let used: Vec<(String, u64)> = h.live.shared().counters.snapshot();
    let wide = used.iter().find(|(k, _)| k == "wide@requests_per_minute").map(|(_, n)| *n);
    assert_eq!(wide, Some(3), "refused requests were given back to the wide rule: {used:?}");
}

#[tokio::test]
async fn token_limits_reserve_then_settle_to_real_usage() {
    let up = MockUpstream::start().await;
    // Each call really uses 1005 tokens; it reserves the prompt estimate + 1000.
    let rules = "rate_limits:\n  - { id: tokens, unit: tokens_per_minute, limit: 5100 }\n";
    let h = Harness::start(&with_rules(&up, rules)).await;
    let body = json!({ "model": "priced/m", "max_tokens": 1000, "messages": user("hi") });
    let mut ok = 0;
    for _ in 0..8 {
        if post(&h, &body, "{}").await.status == 200 {
            ok += 1;
        }
    }
    assert_eq!(ok, 5, "5 × 1005 fit in 5100, a sixth reservation does not");
    let used = h.live.shared().counters.snapshot();
    assert_eq!(used, vec![("tokens@tokens_per_minute".to_string(), 5 * 1005)], "settled to real usage");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_never_overspend_and_leak_no_reservation() {
    let up = MockUpstream::start().await;
    // $0.01 budget; each call costs 1005 tokens × $1/Mtok = $0.001005.
    let rules = "budgets:\n  - { id: team-daily, limit_by: [metadata.team], unit: cost_per_day, limit: 0.01, alert_at: [0.5, 1.0] }\n";
    let h = Arc::new(Harness::start(&with_rules(&up, rules)).await);
    let mut tasks = Vec::new();
    for i in 0..240 {
        let h = h.clone();
        tasks.push(tokio::spawn(async move {
            let text = match i % 4 {
                0 => "fail please [mock:status=503]",
                _ => "hi",
            };
            let stream = i % 3 == 0;
            let body = json!({ "model": "priced/m", "max_tokens": 1000, "stream": stream, "messages": user(text) });
            if i % 5 == 0 {
                // A client that goes away after the first chunk.
                let req = http::Request::builder()
                    .method(Method::POST)
                    .uri(h.url("/v1/chat/completions"))
                    .header("authorization", format!("Bearer {MASTER}"))
                    .header("x-tollgate-metadata", r#"{"team":"t1"}"#)
                    .body(http_body_util::Full::new(bytes::Bytes::from(
                        json!({ "model": "priced/m", "max_tokens": 1000, "stream": true, "messages": user("go") })
                            .to_string(),
                    )))
                    .unwrap();
                // Every client gets an answer: a stream that starts, or a refusal.
                let resp = h.client.request(req).await.expect("an answer");
                let status = resp.status().as_u16();
                let mut b = resp.into_body();
                let _ = b.frame().await;
                return status;
            }
            post(&h, &body, r#"{"team":"t1"}"#).await.status.as_u16()
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    assert!(statuses.iter().all(|s| [200, 429, 503].contains(s)), "{statuses:?}");
    let ledger = h.live.shared().ledger.clone();
    eventually("every reservation is released", async || ledger.export().iter().all(|a| a.reserved == 0)).await;
    let account = ledger.export().into_iter().find(|a| a.key.starts_with("team-daily")).unwrap();
    assert!(account.spent <= 10_000_000, "spend {} exceeds the $0.01 limit", account.spent);
    // Exact: the account holds what was served — the sum of the logged
    // costs, one entry per request, disconnected streams included.
    let mut logged = Vec::new();
    eventually("one log entry per request", async || {
        let r = h.send(Method::GET, &h.admin_url("/admin/logs?limit=1000"), Some(MASTER), &[], bytes::Bytes::new()).await;
        logged = r.json()["data"].as_array().cloned().unwrap_or_default();
        logged.len() >= 240
    })
    .await;
    assert_eq!(logged.len(), 240);
    let served: u64 = logged.iter().map(|e| e["cost_nanos"].as_u64().unwrap_or(0)).sum();
    assert_eq!(account.spent, served, "charged exactly what the log says was served");
    let ok = statuses.iter().filter(|s| **s == 200).count();
    let charged = logged.iter().filter(|e| e["cost_nanos"].as_u64().unwrap_or(0) > 0).count();
    assert!(charged <= ok && charged > 0, "only answered requests are charged: {charged} of {ok}");
    assert!(account.spent > 5_000_000, "the budget was actually used: {}", account.spent);
    assert!(statuses.contains(&429), "some requests were refused");
    assert!(
        ledger.events().iter().any(|e| e.kind == "budget_threshold" && e.threshold == 0.5),
        "{:?}",
        ledger.events()
    );
    // Once spent, the budget refuses with its name and a reset time
    // (a little room may be left, depending on how the race above went).
    let mut r =
        post(&h, &json!({ "model": "priced/m", "max_tokens": 1000, "messages": user("hi") }), r#"{"team":"t1"}"#).await;
    for _ in 0..10 {
        if r.status != 200 {
            break;
        }
        r = post(&h, &json!({ "model": "priced/m", "max_tokens": 1000, "messages": user("hi") }), r#"{"team":"t1"}"#)
            .await;
    }
    assert_eq!(r.status, 429);
    assert!(ledger.export().iter().all(|a| a.spent <= 10_000_000));
    assert_eq!(r.header("x-tollgate-budget"), Some("team-daily"));
    assert_eq!(r.json()["error"]["code"], "budget_exceeded");
    assert!(r.header("retry-after").is_some());
    // Another team has its own account.
    let r =
        post(&h, &json!({ "model": "priced/m", "max_tokens": 1000, "messages": user("hi") }), r#"{"team":"t2"}"#).await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn streams_are_charged_their_usage_and_cancelled_streams_what_they_delivered() {
    let up = MockUpstream::start().await;
    let rules = "budgets:\n  - { id: total, unit: cost_total, limit: 100.0 }\n";
    let h = Harness::start(&with_rules(&up, rules)).await;
    let ledger = h.live.shared().ledger.clone();
    let spent = || ledger.export().first().map_or(0, |a| a.spent);

    // A full stream: charged the usage the provider reported, which the
    // client (who did not ask for it) does not see.
    let r = post(&h, &json!({ "model": "priced/m", "stream": true, "messages": user("one two three") }), "{}").await;
    let text = r.text();
    assert!(text.ends_with("data: [DONE]\n\n"));
    assert!(!text.contains("\"usage\""), "the gateway's usage request stays hidden: {text}");
    assert_eq!(spent(), 1_005_000);

    // A client that asked for usage still gets it.
    let r = post(&h, &json!({ "model": "priced/m", "stream": true, "stream_options": { "include_usage": true }, "messages": user("x") }), "{}").await;
    assert!(r.text().contains("\"completion_tokens\":1000"));
    assert_eq!(spent(), 2_010_000);

    // A stream the client abandons after the first chunk: charged for what
    // was delivered (the prompt estimate and little output), not the worst case.
    let req = http::Request::builder()
        .method(Method::POST)
        .uri(h.url("/v1/chat/completions"))
        .header("authorization", format!("Bearer {MASTER}"))
        .body(http_body_util::Full::new(bytes::Bytes::from(
            json!({ "model": "priced/m", "stream": true, "messages": user("a b c d e f g h i j k l m n o p") })
                .to_string(),
        )))
        .unwrap();
    let resp = h.client.request(req).await.unwrap();
    let mut body = resp.into_body();
    let _ = body.frame().await;
    drop(body);
    let before = 2_010_000;
    eventually("the cancelled stream settles", async || ledger.export()[0].reserved == 0).await;
    let charged = spent() - before;
    assert!(charged > 0 && charged < 100_000, "charged {charged} nano-dollars for a few delivered tokens");
}

#[tokio::test]
async fn warn_mode_lets_requests_through_and_reports() {
    let up = MockUpstream::start().await;
    let rules = "budgets:\n  - { id: soft, unit: tokens_per_day, limit: 10, mode: warn }\n";
    let h = Harness::start(&with_rules(&up, rules)).await;
    for _ in 0..3 {
        assert_eq!(post(&h, &json!({ "model": "priced/m", "messages": user("hi") }), "{}").await.status, 200);
    }
    let events = h.live.shared().ledger.events();
    assert_eq!(events.iter().filter(|e| e.kind == "budget_exceeded_warn").count(), 1, "{events:?}");
}

#[tokio::test]
async fn spend_survives_a_restart() {
    use tollgate::config::reload::{Live, Source};
    use tollgate::server::Gateway;
    use tollgate::state::Shared;

    let up = MockUpstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let rules = format!(
        "budgets:\n  - {{ id: total, unit: cost_total, limit: 0.003 }}\nstore: {{ url: \"sqlite://{}\" }}\n",
        dir.path().join("spend.db").display()
    );
    let cfg = dir.path().join("tollgate.yaml");
    std::fs::write(&cfg, with_rules(&up, &rules)).unwrap();
    let body = json!({ "model": "priced/m", "max_tokens": 1000, "messages": user("hi") }).to_string();
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
    let call = async |addr: std::net::SocketAddr| -> u16 {
        let req = http::Request::builder()
            .method(Method::POST)
            .uri(format!("http://{addr}/v1/chat/completions"))
            .header("authorization", format!("Bearer {MASTER}"))
            .body(http_body_util::Full::new(bytes::Bytes::from(body.clone())))
            .unwrap();
        client.request(req).await.unwrap().status().as_u16()
    };

    let live = Live::new(Source::File(cfg.clone()), Shared::default()).unwrap();
    let gw = Gateway::start(live).await.unwrap();
    assert_eq!(call(gw.data_addr).await, 200);
    assert_eq!(call(gw.data_addr).await, 200);
    gw.shutdown().await; // the final flush writes the spend

    // A new process: fresh memory, same store.
    let live = Live::new(Source::File(cfg), Shared::default()).unwrap();
    let gw = Gateway::start(live.clone()).await.unwrap();
    assert_eq!(live.shared().ledger.export()[0].spent, 2 * 1_005_000, "spend was restored before serving");
    assert_eq!(call(gw.data_addr).await, 429, "$0.00201 spent + a $0.00101 worst case passes the $0.003 budget");
    gw.shutdown().await;
}

/// The same survival on PostgreSQL, through the gateway: spend and keys.
#[tokio::test]
async fn spend_and_keys_survive_a_restart_on_postgres() {
    use tollgate::config::reload::{Live, Source};
    use tollgate::server::Gateway;
    use tollgate::state::Shared;

    let (pg, store_url, db) = postgres_database("tollgate_it").await;

    let up = MockUpstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let rules =
        format!("budgets:\n  - {{ id: total, unit: cost_total, limit: 0.003 }}\nstore: {{ url: \"{store_url}\" }}\n");
    let cfg = dir.path().join("tollgate.yaml");
    std::fs::write(&cfg, with_rules(&up, &rules)).unwrap();
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
    let send = async |method: Method, url: String, key: &str, body: String| -> (u16, Value) {
        let req = http::Request::builder()
            .method(method)
            .uri(url)
            .header("authorization", format!("Bearer {key}"))
            .body(http_body_util::Full::new(bytes::Bytes::from(body)))
            .unwrap();
        let resp = client.request(req).await.unwrap();
        let status = resp.status().as_u16();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    };
    let chat = json!({ "model": "priced/m", "max_tokens": 1000, "messages": user("hi") }).to_string();

    let gw = Gateway::start(Live::new(Source::File(cfg.clone()), Shared::default()).unwrap()).await.unwrap();
    let (status, key) = send(
        Method::POST,
        format!("http://{}/admin/keys", gw.admin_addr),
        MASTER,
        json!({ "name": "pg-key" }).to_string(),
    )
    .await;
    assert_eq!(status, 201);
    let secret = key["key"].as_str().unwrap().to_string();
    for _ in 0..2 {
        assert_eq!(
            send(Method::POST, format!("http://{}/v1/chat/completions", gw.data_addr), &secret, chat.clone()).await.0,
            200
        );
    }
    gw.shutdown().await;

    let live = Live::new(Source::File(cfg), Shared::default()).unwrap();
    let gw = Gateway::start(live.clone()).await.unwrap();
    assert_eq!(live.shared().ledger.export()[0].spent, 2 * 1_005_000, "spend restored from PostgreSQL");
    let (status, _) =
        send(Method::POST, format!("http://{}/v1/chat/completions", gw.data_addr), &secret, chat.clone()).await;
    assert_eq!(status, 429, "the key still works (not 401) and the restored spend is enforced");

    // A second gateway on the same database: a revocation made there is in
    // force here within the key sync interval.
    let other = Gateway::start(Live::new(Source::File(dir.path().join("tollgate.yaml")), Shared::default()).unwrap())
        .await
        .unwrap();
    let id = key["id"].as_str().unwrap();
    assert_eq!(
        send(Method::DELETE, format!("http://{}/admin/keys/{id}", other.admin_addr), MASTER, String::new()).await.0,
        200
    );
    let mut refused = false;
    for _ in 0..40 {
        let (s, _) =
            send(Method::POST, format!("http://{}/v1/chat/completions", gw.data_addr), &secret, chat.clone()).await;
        if s == 401 {
            refused = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(refused, "the revocation reached the other gateway");
    other.shutdown().await;
    gw.shutdown().await;
    pg.batch_execute(&format!("DROP DATABASE {db} WITH (FORCE)")).await.unwrap();
}

#[tokio::test]
async fn budget_alerts_reach_webhooks_signed_and_retried() {
    let up = MockUpstream::start().await;
    let hook = testkit::JsonServer::start("{}").await;
    hook.fail_next(1); // the first delivery fails; the retry must get through
    let rules = format!(
        "budgets:\n  - {{ id: team-daily, limit_by: [metadata.team], unit: cost_per_day, limit: 0.003, alert_at: [0.5] }}\nevents:\n  webhooks:\n    - {{ url: \"{}\", secret: \"hook-secret\", kinds: [budget_threshold] }}\n",
        hook.url("/hooks/tollgate")
    );
    let h = Harness::start(&with_rules(&up, &rules)).await;
    let body = json!({ "model": "priced/m", "max_tokens": 1000, "messages": user("hi") });
    for _ in 0..2 {
        assert_eq!(post(&h, &body, r#"{"team":"ops"}"#).await.status, 200);
    }
    eventually("the webhook receives the alert", async || !hook.received().is_empty()).await;
    let (headers, bytes) = hook.received().remove(0);
    let event: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(event["type"], "budget_threshold");
    assert_eq!(event["data"]["rule"], "team-daily");
    assert_eq!(event["data"]["key"], "team-daily@cost_per_day|ops");
    assert_eq!(event["data"]["threshold"], 0.5);
    let expected = format!("sha256={}", hex::encode(tollgate::digest::hmac_sha256(b"hook-secret", &bytes)));
    assert_eq!(headers.get("x-tollgate-signature").unwrap().to_str().unwrap(), expected);
    assert_eq!(headers.get("x-tollgate-event").unwrap(), "budget_threshold");
    assert_eq!(hook.hits(), 2, "one failed attempt, one retry");
}

#[tokio::test]
async fn rules_and_team_allowlists_can_be_added_through_the_admin_api() {
    let up = MockUpstream::start().await;
    let h = Harness::start(&with_rules(&up, "")).await;
    let admin = async |method: Method, path: &str, body: Value| {
        let text = if body.is_null() { String::new() } else { body.to_string() };
        h.send(method, &h.admin_url(path), Some(MASTER), &[], text).await
    };
    let chat = json!({ "model": "mock/echo", "messages": user("hi") });

    let r = admin(Method::PUT, "/admin/rate_limits/burst", json!({ "unit": "requests_per_minute", "limit": 2 })).await;
    assert_eq!(r.status, 200, "{}", r.text());
    for expected in [200, 200, 429] {
        assert_eq!(post(&h, &chat, "{}").await.status, expected);
    }
    let listed = admin(Method::GET, "/admin/rate_limits", Value::Null).await.json();
    assert_eq!(listed["active"], json!(["burst"]));
    assert_eq!(listed["overlays"][0]["rule"]["limit"], 2);

    // Bad shapes are refused with the parser's message; a rule that does not
    // load is refused with the loader's, and nothing changes.
    let r = admin(Method::PUT, "/admin/rate_limits/x", json!({ "unit": "requests_per_minute", "limit": 2, "limt": 3 }))
        .await;
    assert_eq!(r.status, 400);
    assert!(r.error_message().contains("unknown field `limt`"), "{}", r.error_message());
    let r = admin(
        Method::PUT,
        "/admin/budgets/y",
        json!({ "unit": "cost_per_day", "limit": 1.0, "limit_by": ["nonsense"] }),
    )
    .await;
    assert_eq!(r.status, 422, "{}", r.text());
    assert!(r.text().contains("is not a limit_by value"));
    assert_eq!(admin(Method::GET, "/admin/budgets", Value::Null).await.json()["active"], json!([]));

    // A team allowlist narrows the limited key (team platform).
    let r = admin(Method::PUT, "/admin/teams/platform", json!({ "models": ["mock/echo"] })).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(h.chat(Some(LIMITED), &json!({ "model": "mock/embed", "messages": user("x") })).await.status, 403);

    // Removing the rule lifts the limit.
    assert_eq!(admin(Method::DELETE, "/admin/rate_limits/burst", Value::Null).await.status, 200);
    assert_eq!(post(&h, &chat, "{}").await.status, 200);
    assert_eq!(admin(Method::DELETE, "/admin/rate_limits/burst", Value::Null).await.status, 404);
    assert_eq!(admin(Method::GET, "/admin/nonsense", Value::Null).await.status, 404);

    // Only admins change rules.
    let r = h.send(Method::PUT, &h.admin_url("/admin/rate_limits/z"), Some(LIMITED), &[], "{}").await;
    assert_eq!(r.status, 403);
}

#[tokio::test]
async fn limit_hits_reach_webhooks_once_a_minute_per_key() {
    let up = MockUpstream::start().await;
    let hook = testkit::JsonServer::start("{}").await;
    let rules = format!(
        "rate_limits:\n  - {{ id: tight, limit_by: [subject], unit: requests_per_minute, limit: 1 }}\nevents:\n  webhooks:\n    - {{ url: \"{}\", kinds: [rate_limit_hit] }}\nlogging: {{ enabled: false }}\n",
        hook.url("/hook")
    );
    let h = Harness::start(&with_rules(&up, &rules)).await;
    let chat = json!({ "model": "mock/echo", "messages": user("hi") });
    assert_eq!(post(&h, &chat, "{}").await.status, 200);
    for _ in 0..5 {
        assert_eq!(post(&h, &chat, "{}").await.status, 429);
    }
    // A later refusal of another key: its event is dispatched after any the
    // master's refusals caused, so once it is in, those are in too.
    assert_eq!(h.chat(Some(LIMITED), &chat).await.status, 200);
    assert_eq!(h.chat(Some(LIMITED), &chat).await.status, 429);
    let events = || -> Vec<Value> { hook.received().iter().map(|r| serde_json::from_slice(&r.1).unwrap()).collect() };
    eventually("the later key's event is delivered", async || events().iter().any(|e| e["data"]["subject"] != "master")).await;
    let master: Vec<Value> = events().into_iter().filter(|e| e["data"]["subject"] == "master").collect();
    assert_eq!(master.len(), 1, "five refusals, one event: {master:?}");
    let event = &master[0];
    assert_eq!(event["type"], "rate_limit_hit");
    assert_eq!(event["data"]["rule"], "tight");
    // With logging off, nothing reaches the request log.
    let logs = h.send(Method::GET, &h.admin_url("/admin/logs"), Some(MASTER), &[], "").await.json();
    assert_eq!(logs["data"], json!([]));
}

/// A client cycling a metadata value creates one counter and one account
/// per value — up to each rule's `max_keys`; past it, new values share the
/// rule's overflow key, limited together rather than let through.
#[tokio::test]
async fn cycling_metadata_values_cannot_grow_counters_or_accounts_past_max_keys() {
    let up = MockUpstream::start().await;
    let rules = "rate_limits:\n  - { id: per-project, limit_by: [metadata.project_id], unit: requests_per_minute, limit: 4, max_keys: 3 }\nbudgets:\n  - { id: per-team, limit_by: [metadata.team], unit: tokens_per_day, limit: 1000000, max_keys: 2 }\n";
    let h = Harness::start(&with_rules(&up, rules)).await;
    let body = json!({ "model": "mock/echo", "messages": user("hi") });
    let mut statuses = Vec::new();
    for i in 0..40 {
        let r = post(&h, &body, &format!(r#"{{"project_id":"p{i}","team":"t{i}"}}"#)).await;
        statuses.push((r.status, r.header("x-tollgate-limit").map(str::to_string), r.error_message()));
    }
    // Three projects get counters of their own; the rest share one counter of 4.
    let ok = statuses.iter().filter(|s| s.0 == 200).count();
    assert_eq!(ok, 3 + 4, "{statuses:?}");
    let refused = statuses.last().unwrap();
    assert_eq!(refused.0, 429);
    assert_eq!(refused.1.as_deref(), Some("per-project"));
    assert!(refused.2.contains("per-project@requests_per_minute#overflow"), "{}", refused.2);
    // A value that has its own counter still counts on its own.
    assert_eq!(post(&h, &body, r#"{"project_id":"p0","team":"t0"}"#).await.status, 200);

    let counters = h.live.shared().counters.snapshot();
    assert_eq!(counters.len(), 4, "three keys and the overflow key: {counters:?}");
    let accounts: Vec<String> = h.live.shared().ledger.export().into_iter().map(|a| a.key).collect();
    assert_eq!(
        accounts,
        vec!["per-team@tokens_per_day#overflow", "per-team@tokens_per_day|t0", "per-team@tokens_per_day|t1"],
        "two accounts and the overflow account"
    );
}
