//! The request log: one entry per request, searchable, grouped into usage
//! reports that match what the upstream served; nothing lost while the
//! sink is down, nothing duplicated when it comes back.

use std::sync::Arc;
use std::time::Duration;

use http::Method;
use serde_json::json;
use testkit::{Fault, MockUpstream};
use tollgate::config::reload::{Live, Source};
use tollgate::server::Gateway;
use tollgate::state::Shared;

use crate::common::*;

async fn admin_get(h: &Harness, path: &str) -> Resp {
    h.send(Method::GET, &h.admin_url(path), Some(MASTER), &[], "").await
}

#[tokio::test]
async fn every_request_is_logged_and_usage_matches_what_was_served() {
    let up = MockUpstream::start().await;
    let vm = "virtual_models:\n  - name: prod/chat\n    targets: [{ model: up/gpt-4o-mini }, { model: mock/echo }]\n";
    let h = Harness::start(&format!("{}{vm}", config(&up.base_url(), ""))).await;
    let md = |team: &str, project: &str| format!(r#"{{"team":"{team}","project_id":"{project}"}}"#);
    let chat = |model: &str, stream: bool| {
        json!({ "model": model, "stream": stream, "stream_options": { "include_usage": true }, "messages": user("hi") })
            .to_string()
    };
    for (team, project, n) in [("payments", "checkout", 3), ("search", "ranking", 2)] {
        for _ in 0..n {
            let r = h
                .send(
                    Method::POST,
                    &h.url("/v1/chat/completions"),
                    Some(MASTER),
                    &[("x-tollgate-metadata", &md(team, project))],
                    chat("up/gpt-4o-mini", false),
                )
                .await;
            assert_eq!(r.status, 200);
        }
    }
    let r = h
        .send(
            Method::POST,
            &h.url("/v1/chat/completions"),
            Some(MASTER),
            &[("x-tollgate-metadata", &md("search", "ranking"))],
            chat("up/gpt-4o-mini", true),
        )
        .await;
    assert!(r.text().ends_with("data: [DONE]\n\n"));
    // A fallback, to be explained by the log.
    up.push_fault(Fault::Status { status: 503, body: None, retry_after: None });
    let fell_back = h
        .send(
            Method::POST,
            &h.url("/v1/chat/completions"),
            Some(MASTER),
            &[("x-tollgate-metadata", &md("payments", "checkout"))],
            chat("prod/chat", false),
        )
        .await;
    assert_eq!(fell_back.header("x-tollgate-resolved-model"), Some("mock/echo"));
    let fell_back_id = fell_back.header("x-tollgate-request-id").unwrap().to_string();
    assert_eq!(h.chat(Some("wrong"), &json!({ "model": "mock/echo", "messages": user("x") })).await.status, 401);

    let mut entries = Vec::new();
    for _ in 0..50 {
        entries = admin_get(&h, "/admin/logs?limit=100").await.json()["data"].as_array().cloned().unwrap_or_default();
        if entries.len() == 8 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(entries.len(), 8, "one entry per request: {entries:#?}");
    let refused = entries.iter().find(|e| e["status"] == 401).unwrap();
    assert_eq!(refused["subject"], "-");
    // Every entry says what kind of call it was; `kind` filters on it.
    assert!(entries.iter().all(|e| e["kind"] == "model"), "{entries:#?}");
    let models = admin_get(&h, "/admin/logs?kind=model&limit=100").await.json();
    assert_eq!(models["data"].as_array().map(Vec::len), Some(8));
    let tools = admin_get(&h, "/admin/logs?kind=mcp").await.json();
    assert_eq!(tools["data"].as_array().map(Vec::len), Some(0));
    let r = admin_get(&h, "/admin/logs?kind=robot").await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["code"], "invalid_query");
    assert!(r.error_message().contains("use model, mcp or a2a"), "{}", r.text());

    // Why did that request fall back? The log says.
    let one = admin_get(&h, &format!("/admin/logs/{fell_back_id}")).await.json();
    assert_eq!(one["resolved_model"], "mock/echo");
    assert_eq!(one["attempts"][0]["target"], "up/gpt-4o-mini");
    assert_eq!(one["attempts"][0]["outcome"], "fell_back");
    assert_eq!(one["attempts"][0]["status"], 503);
    assert_eq!(one["attempts"][1]["outcome"], "ok");
    assert_eq!(one["metadata"]["team"], "payments");

    // Usage by team and model equals what the upstream served: 11 + 7 tokens a call.
    let report = admin_get(&h, "/admin/usage/report?group_by=metadata.team,model").await.json();
    let rows = report["rows"].as_array().unwrap();
    let find = |team: &str| {
        rows.iter().find(|r| r["group"]["metadata.team"] == team && r["group"]["model"] == "up/gpt-4o-mini").unwrap()
    };
    assert_eq!(
        (find("payments")["requests"].as_u64(), find("payments")["prompt_tokens"].as_u64()),
        (Some(3), Some(33))
    );
    assert_eq!(
        (find("search")["requests"].as_u64(), find("search")["completion_tokens"].as_u64()),
        (Some(3), Some(21))
    );
    let served = up.request_count() as u64 - 1; // the 503 served no tokens
    let tokens: u64 = rows
        .iter()
        .filter(|r| r["group"]["model"] == "up/gpt-4o-mini")
        .map(|r| r["prompt_tokens"].as_u64().unwrap() + r["completion_tokens"].as_u64().unwrap())
        .sum();
    assert_eq!(tokens, served * 18);
    let csv = h
        .send(
            Method::GET,
            &h.admin_url("/admin/usage/report?group_by=metadata.project_id&format=csv"),
            Some(MASTER),
            &[],
            "",
        )
        .await
        .text();
    assert!(csv.starts_with("metadata.project_id,requests,prompt_tokens,completion_tokens,cost_usd,cache_hits,saved_usd\n"), "{csv}");
    assert!(csv.contains("checkout,4,"), "{csv}");
    assert_eq!(admin_get(&h, "/admin/usage/report?group_by=colour").await.status, 400);
    let r = admin_get(&h, "/admin/logs?status=abc").await;
    assert_eq!(r.status, 400);
    assert!(r.error_message().contains("invalid query"), "{}", r.text());

    // The CLI answers "what did team X spend on model Y, by project".
    let bin = env!("CARGO_BIN_EXE_tollgate");
    let admin_url = format!("http://{}", h.gw.admin_addr);
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(bin)
            .args([
                "usage",
                "--group-by",
                "metadata.project_id,model",
                "--metadata",
                "team:payments",
                "--since",
                "1h",
                "--admin-url",
                &admin_url,
            ])
            .env("TOLLGATE_MASTER_KEY", MASTER)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("checkout") && text.contains("up/gpt-4o-mini") && !text.contains("ranking"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_lost_while_the_log_sink_is_down() {
    let (pg, store_url, db) = postgres_database("tollgate_logs").await;
    let up = MockUpstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("tollgate.yaml");
    std::fs::write(&cfg, format!("{}store: {{ url: \"{store_url}\" }}\n", config(&up.base_url(), ""))).unwrap();
    let gw = Arc::new(Gateway::start(Live::new(Source::File(cfg), Shared::default()).unwrap()).await.unwrap());
    let (sink, sink_conn) = tokio_postgres::connect(&store_url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(sink_conn);

    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
    let body = json!({ "model": "mock/echo", "messages": user("hi") }).to_string();
    let fire = async |n: usize| {
        let mut ok = 0;
        for chunk in 0..n / 50 {
            let _ = chunk;
            let results = futures_util::future::join_all((0..50).map(|_| {
                let req = http::Request::builder()
                    .method(Method::POST)
                    .uri(format!("http://{}/v1/chat/completions", gw.data_addr))
                    .header("authorization", format!("Bearer {MASTER}"))
                    .body(http_body_util::Full::new(bytes::Bytes::from(body.clone())))
                    .unwrap();
                client.request(req)
            }))
            .await;
            ok += results.iter().filter(|r| r.as_ref().is_ok_and(|r| r.status() == 200)).count();
        }
        ok
    };
    let count = async || -> i64 {
        sink.query_one("SELECT count(*), count(DISTINCT id) FROM request_log", &[])
            .await
            .map(|r| {
                assert_eq!(r.get::<_, i64>(0), r.get::<_, i64>(1), "no entry is stored twice");
                r.get(0)
            })
            .unwrap_or(-1)
    };

    let mut served = fire(500).await;
    // The sink goes away: requests are still served, entries wait.
    sink.batch_execute("ALTER TABLE request_log RENAME TO request_log_offline").await.unwrap();
    let started = std::time::Instant::now();
    served += fire(1000).await;
    let during = started.elapsed();
    tokio::time::sleep(Duration::from_millis(700)).await;
    let waiting = gw.app.live.shared().reqlog.spooled.load(std::sync::atomic::Ordering::Relaxed);
    assert!(waiting > 0, "entries wait in the spool while the sink is down");
    assert_eq!(gw.app.live.shared().reqlog.dropped.load(std::sync::atomic::Ordering::Relaxed), 0);
    // … and comes back: the spool is replayed.
    sink.batch_execute("ALTER TABLE request_log_offline RENAME TO request_log").await.unwrap();
    served += fire(500).await;
    assert_eq!(served, 2000, "every request was served while the sink was down");
    let mut stored = 0;
    for _ in 0..100 {
        stored = count().await;
        if stored == 2000 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(stored, 2000, "exactly one entry per request served");
    assert!(during < Duration::from_secs(20), "a stopped sink did not slow requests down: {during:?}");
    Arc::try_unwrap(gw).ok().unwrap().shutdown().await;
    pg.batch_execute(&format!("DROP DATABASE {db} WITH (FORCE)")).await.unwrap();
}

#[tokio::test]
async fn requests_become_otlp_spans_in_the_callers_trace() {
    let up = MockUpstream::start().await;
    let otlp = testkit::JsonServer::start("{}").await;
    let extra = format!(
        "virtual_models:\n  - name: prod/chat\n    targets: [{{ model: up/gpt-4o-mini }}, {{ model: mock/echo }}]\ntelemetry: {{ otlp_endpoint: \"{}\", service_name: tg-test }}\n",
        otlp.url("")
    );
    let h = Harness::start(&format!("{}{extra}", config(&up.base_url(), ""))).await;
    up.push_fault(Fault::Status { status: 503, body: None, retry_after: None });
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let r = h
        .send(
            Method::POST,
            &h.url("/v1/chat/completions"),
            Some(MASTER),
            &[("traceparent", traceparent)],
            json!({ "model": "prod/chat", "messages": user("hi") }).to_string(),
        )
        .await;
    assert_eq!(r.status, 200);
    let mut spans = Vec::new();
    for _ in 0..60 {
        spans = otlp
            .received()
            .iter()
            .flat_map(|(_, b)| {
                let v: serde_json::Value = serde_json::from_slice(b).unwrap();
                v["resourceSpans"][0]["scopeSpans"][0]["spans"].as_array().cloned().unwrap_or_default()
            })
            .collect();
        if spans.len() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(spans.len(), 3, "a request span and two attempt spans: {spans:#?}");
    let attr = |s: &serde_json::Value, k: &str| -> serde_json::Value {
        s["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["key"] == k)
            .map(|a| a["value"].clone())
            .unwrap_or_default()
    };
    let root = &spans[0];
    assert_eq!(root["traceId"], "4bf92f3577b34da6a3ce929d0e0e4736", "joins the caller's trace");
    assert_eq!(root["parentSpanId"], "00f067aa0ba902b7");
    assert_eq!(root["name"], "chat prod/chat");
    assert_eq!(attr(root, "gen_ai.response.model")["stringValue"], "mock/echo");
    assert_eq!(attr(root, "gen_ai.operation.name")["stringValue"], "chat");
    assert!(attr(root, "gen_ai.usage.input_tokens")["intValue"].as_str().is_some());
    assert_eq!(spans[1]["parentSpanId"], root["spanId"]);
    assert_eq!(attr(&spans[1], "tollgate.attempt.outcome")["stringValue"], "fell_back");
    assert_eq!(attr(&spans[1], "http.response.status_code")["intValue"], "503");
    assert_eq!(spans[1]["status"]["code"], 2);
    assert_eq!(attr(&spans[2], "gen_ai.provider.name")["stringValue"], "mock");
    let (_, body) = &otlp.received()[0];
    let v: serde_json::Value = serde_json::from_slice(body).unwrap();
    assert_eq!(v["resourceSpans"][0]["resource"]["attributes"][0]["value"]["stringValue"], "tg-test");
    assert!(!String::from_utf8_lossy(body).contains(MASTER), "no credential in a span");
}

#[tokio::test]
async fn bodies_are_kept_when_asked_with_secrets_masked() {
    let up = MockUpstream::start().await;
    let extra = "logging: { bodies: true, max_body_size: 4KiB }\n";
    let h = Harness::start(&format!("{}{extra}", config(&up.base_url(), ""))).await;
    let r = h
        .chat(
            Some(MASTER),
            &json!({ "model": "mock/echo", "messages": user("deploy with sk-live-0123456789abcdefghij please") }),
        )
        .await;
    let id = r.header("x-tollgate-request-id").unwrap().to_string();
    let mut entry = serde_json::Value::Null;
    for _ in 0..50 {
        let e = admin_get(&h, &format!("/admin/logs/{id}")).await;
        if e.status == 200 {
            entry = e.json();
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let request = entry["request_body"].as_str().unwrap();
    let response = entry["response_body"].as_str().unwrap();
    assert!(request.contains("deploy with [REDACTED] please"), "{request}");
    assert!(response.contains("[REDACTED]") && !response.contains("sk-live-0123456789abcdefghij"), "{response}");
    assert!(response.contains("chat.completion"));
}

/// A TCP forwarder to PostgreSQL that can be taken down — every connection
/// cut, new ones refused — and brought back: a stopped server, as the
/// gateway sees one.
struct PgGate {
    addr: std::net::SocketAddr,
    open: Arc<std::sync::atomic::AtomicBool>,
    conns: Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl PgGate {
    async fn start(target: String) -> PgGate {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let open = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let conns = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (o, c) = (open.clone(), conns.clone());
        tokio::spawn(async move {
            while let Ok((mut client, _)) = l.accept().await {
                if !o.load(std::sync::atomic::Ordering::SeqCst) {
                    continue; // dropped: refused
                }
                let target = target.clone();
                let h = tokio::spawn(async move {
                    if let Ok(mut server) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                c.lock().unwrap().push(h.abort_handle());
            }
        });
        PgGate { addr, open, conns }
    }

    fn down(&self) {
        self.open.store(false, std::sync::atomic::Ordering::SeqCst);
        for h in self.conns.lock().unwrap().drain(..) {
            h.abort();
        }
    }

    fn up(&self) {
        self.open.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// PostgreSQL stopped, the gateway restarted during the outage: the entries
/// waiting in memory go to the disk spool at shutdown and are written by the
/// next run once the server is back — one entry per request, none twice.
/// With a disk spool too small for them, the ones that do not fit are
/// dropped and counted, and the rest still arrive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_survive_a_restart_while_postgres_is_stopped_and_overflow_is_counted() {
    for (spool_max, all_fit) in [("64MiB", true), ("16KiB", false)] {
        let (pg, store_url, db) = postgres_database(if all_fit { "tollgate_spool" } else { "tollgate_spool_small" }).await;
        let (head, path) = store_url.split_once("@").unwrap();
        let (target, dbname) = path.split_once('/').unwrap();
        let gate = PgGate::start(target.to_string()).await;
        let gated_url = format!("{head}@{}/{dbname}", gate.addr);
        let up = MockUpstream::start().await;
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("tollgate.yaml");
        std::fs::write(
            &cfg,
            format!(
                "{}store: {{ url: \"{gated_url}\" }}\nlogging: {{ spool_dir: \"{}\", spool_max_size: {spool_max} }}\n",
                config(&up.base_url(), ""),
                dir.path().join("spool").display()
            ),
        )
        .unwrap();
        let start = async || Gateway::start(Live::new(Source::File(cfg.clone()), Shared::default()).unwrap()).await.unwrap();
        let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
        // Still ready while the log store is down: requests are served.
        let ready = async |gw: &Gateway| -> serde_json::Value {
            let r = client.get(format!("http://{}/ready", gw.data_addr).parse().unwrap()).await.unwrap();
            assert_eq!(r.status(), 200, "ready");
            serde_json::from_slice(&http_body_util::BodyExt::collect(r.into_body()).await.unwrap().to_bytes()).unwrap()
        };
        let fire = async |gw: &Gateway, n: usize| {
            let mut ok = 0;
            for _ in 0..n {
                let req = http::Request::builder()
                    .method(Method::POST)
                    .uri(format!("http://{}/v1/chat/completions", gw.data_addr))
                    .header("authorization", format!("Bearer {MASTER}"))
                    .body(http_body_util::Full::new(bytes::Bytes::from(
                        json!({ "model": "mock/echo", "messages": user("hi") }).to_string(),
                    )))
                    .unwrap();
                ok += usize::from(client.request(req).await.is_ok_and(|r| r.status() == 200));
            }
            ok
        };
        let (sink, conn) = tokio_postgres::connect(&store_url, tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(conn);
        let count = async || -> (i64, i64) {
            sink.query_one("SELECT count(*), count(DISTINCT id) FROM request_log", &[])
                .await
                .map(|r| (r.get(0), r.get(1)))
                .unwrap_or((-1, -1))
        };

        let gw = start().await;
        assert_eq!(fire(&gw, 20).await, 20);
        eventually("the first entries are stored", async || count().await.0 == 20).await;
        gate.down();
        assert_eq!(fire(&gw, 200).await, 200, "requests are served while PostgreSQL is stopped");
        let spooled = gw.app.live.shared().reqlog.spooled.clone();
        eventually("entries wait", async || spooled.load(std::sync::atomic::Ordering::Relaxed) >= 200).await;
        let now = ready(&gw).await;
        assert!(now["request_log"]["waiting"].as_u64().unwrap() >= 200, "{now}");
        let first_dropped = gw.app.live.shared().reqlog.dropped.clone();
        gw.shutdown().await;
        let lost = first_dropped.load(std::sync::atomic::Ordering::Relaxed) as i64;
        if all_fit {
            assert_eq!(lost, 0);
        } else {
            assert!(lost > 0 && lost < 200, "what did not fit on disk is counted at shutdown: {lost}");
        }
        let spool = dir.path().join("spool").join(tollgate::reqlog::spool::FILE);
        assert!(spool.exists(), "the waiting entries were put on disk at shutdown");

        gate.up();
        let gw = start().await;
        let dropped = gw.app.live.shared().reqlog.dropped.clone();
        eventually("the spooled entries are written", async || {
            let (n, distinct) = count().await;
            assert_eq!(n, distinct, "no entry is stored twice");
            n == 220 - lost
        })
        .await;
        eventually("the spool file is removed once written", async || !spool.exists()).await;
        assert_eq!(dropped.load(std::sync::atomic::Ordering::Relaxed), 0, "the second run lost nothing");
        let now = ready(&gw).await;
        assert_eq!(now["request_log"], serde_json::json!({"waiting": 0, "dropped": 0}), "{now}");
        gw.shutdown().await;
        drop(sink);
        pg.batch_execute(&format!("DROP DATABASE {db} WITH (FORCE)")).await.unwrap();
    }
}
