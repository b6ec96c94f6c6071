//! Distributed mode: several gateways in one process on one config, sharing
//! counters and budgets through the real Redis and changes through the real
//! NATS and PostgreSQL. Each test has its own namespace (Redis keys, NATS
//! subjects) and database, so runs never see each other's state. A missing
//! service fails the test; nothing is skipped.

use crate::common::free_port;
use std::sync::Arc;

use serde_json::{Value, json};

use crate::common::{Harness, LIMITED, MASTER, config, eventually, postgres_database, user};

fn redis_url() -> String {
    std::env::var("TOLLGATE_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/0".into())
}

fn nats_url() -> String {
    std::env::var("TOLLGATE_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
}

/// Unique per test and run.
fn namespace(test: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    format!("t-{test}-{}-{nanos:x}", std::process::id())
}

/// The `distributed:` section; `extra` adds options (`, lease: 0.05`).
fn distributed(ns: &str, redis: &str, nats: &str, extra: &str) -> String {
    format!("distributed: {{ redis_url: \"{redis}\", nats_url: \"{nats}\", namespace: \"{ns}\" {extra} }}\n")
}

async fn start_all(n: usize, yaml: &str) -> Vec<Arc<Harness>> {
    let mut v = Vec::new();
    for _ in 0..n {
        v.push(Arc::new(Harness::start(yaml).await));
    }
    v
}

fn ask(max_tokens: u64) -> Value {
    json!({ "model": "mock/echo", "messages": user("hi"), "max_tokens": max_tokens })
}

#[derive(Debug, Default)]
struct Tally {
    admitted: u64,
    refused: u64,
    /// Tokens the admitted requests reported using.
    tokens: u64,
}

/// `per` requests to each gateway, `workers` at a time per gateway, all
/// gateways at once.
async fn burst(gws: &[Arc<Harness>], per: usize, workers: usize, body: &Value) -> Tally {
    let mut tasks = Vec::new();
    for gw in gws {
        for w in 0..workers {
            let (gw, body) = (gw.clone(), body.clone());
            let n = per / workers + usize::from(w < per % workers);
            tasks.push(tokio::spawn(async move {
                let mut t = Tally::default();
                for _ in 0..n {
                    let r = gw.chat(Some(LIMITED), &body).await;
                    match r.status.as_u16() {
                        200 => {
                            t.admitted += 1;
                            t.tokens += r.json()["usage"]["total_tokens"].as_u64().unwrap();
                        }
                        429 => t.refused += 1,
                        s => panic!("unexpected {s}: {}", r.text()),
                    }
                }
                t
            }));
        }
    }
    let mut all = Tally::default();
    for t in tasks {
        let t = t.await.unwrap();
        all.admitted += t.admitted;
        all.refused += t.refused;
        all.tokens += t.tokens;
    }
    all
}

async fn redis_conn(url: &str) -> redis::aio::MultiplexedConnection {
    let client = redis::Client::open(url).unwrap();
    client
        .get_multiplexed_async_connection()
        .await
        .unwrap_or_else(|e| panic!("Redis is needed for this test at {url} (TOLLGATE_TEST_REDIS_URL): {e}"))
}

/// The sum of the Redis integers under `pattern`.
async fn redis_sum(url: &str, pattern: &str) -> u64 {
    let mut c = redis_conn(url).await;
    let keys: Vec<String> = redis::cmd("KEYS").arg(pattern).query_async(&mut c).await.unwrap();
    let mut sum = 0;
    for k in keys {
        let v: Option<u64> = redis::cmd("GET").arg(&k).query_async(&mut c).await.unwrap();
        sum += v.unwrap_or(0);
    }
    sum
}

async fn ready(h: &Harness) -> Value {
    h.get("/ready", None).await.json()
}

// Several worker threads, as the gateway has when it serves: with one, the
// sync task would queue behind every request of every instance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_and_three_instances_share_a_rate_limit_within_the_bound() {
    for n in [2u64, 3] {
        let ns = namespace("rate");
        let limit = 400u64;
        let yaml = format!(
            "{}rate_limits:\n  - {{ id: shared, unit: requests_per_day, limit: {limit} }}\n{}",
            config("http://127.0.0.1:9", ""),
            distributed(&ns, &redis_url(), &nats_url(), ", lease: 0.1")
        );
        let gws = start_all(n as usize, &yaml).await;
        // Lease: 10% of 400 = 40 requests; each instance may borrow one more.
        let lease = limit / 10;
        // Well under the limit (below limit - 2 × lease × instances), nothing is refused.
        let under = ((limit - 2 * lease * n) / n) as usize;
        let t = burst(&gws, under, 4, &ask(8)).await;
        assert_eq!(t.refused, 0, "{n} instances refused under the limit: {t:?}");
        // Far past the limit: never more than limit + instances × lease, and
        // no less than the limit minus the leases others may hold unused.
        let t2 = burst(&gws, limit as usize, 4, &ask(8)).await;
        let admitted = t.admitted + t2.admitted;
        assert!(admitted <= limit + n * lease, "{n} instances admitted {admitted} > bound {}", limit + n * lease);
        assert!(admitted >= limit - n * lease, "{n} instances admitted only {admitted} of {limit}");
        assert!(t2.refused > 0);
        for g in gws {
            assert_eq!(ready(&g).await["distributed"]["redis"], "ok");
            Arc::into_inner(g).unwrap().gw.shutdown().await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_budget_is_shared_and_its_spend_reaches_redis_exactly_once() {
    let ns = namespace("budget");
    let limit = 600u64;
    let yaml = format!(
        "{}budgets:\n  - {{ id: tokens, unit: tokens_per_day, limit: {limit}, mode: enforce }}\n{}",
        config("http://127.0.0.1:9", ""),
        distributed(&ns, &redis_url(), &nats_url(), ", lease: 0.05")
    );
    let gws = start_all(3, &yaml).await;
    // Each request reserves its worst case (prompt estimate + 40) and
    // settles to far less: spend reaches the limit only through many.
    let t = burst(&gws, 200, 4, &ask(40)).await;
    assert!(t.refused > 0, "the budget must run out: {t:?}");
    // Spend in Redis: exactly what the admitted requests used, once.
    let url = redis_url();
    eventually("every instance's spend in Redis", async || redis_sum(&url, &format!("{ns}:s:*")).await == t.tokens)
        .await;
    // The budget held: spend stays within limit + instances × one lease
    // (a lease is at least one request's worst case).
    let worst = 60;
    assert!(t.tokens <= limit + 3 * worst.max(limit / 20), "spent {} of {limit}", t.tokens);
    for g in gws {
        Arc::into_inner(g).unwrap().gw.shutdown().await;
    }
    // After shutdown (unused leases returned) the spend is unchanged.
    assert_eq!(redis_sum(&url, &format!("{ns}:s:*")).await, t.tokens);
}

/// A Redis of the test's own, so it can be stopped and started.
struct OwnRedis {
    port: u16,
    child: std::process::Child,
}

impl OwnRedis {
    fn start(port: u16) -> OwnRedis {
        let child = std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("redis-server is needed for this test: {e}"));
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        OwnRedis { port, child }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

#[tokio::test]
async fn a_redis_outage_counts_locally_and_reconciles_when_it_returns() {
    let ns = namespace("outage");
    let redis = OwnRedis::start(free_port());
    let url = redis.url();
    let yaml = format!(
        "{}rate_limits:\n  - {{ id: r, unit: requests_per_day, limit: 1000 }}\n{}",
        config("http://127.0.0.1:9", ""),
        distributed(&ns, &url, &nats_url(), ", lease: 0.05")
    );
    let gws = start_all(2, &yaml).await;
    let before = burst(&gws, 10, 1, &ask(8)).await;
    assert_eq!(before.admitted, 20);
    let port = redis.port;
    redis.stop();
    for g in &gws {
        eventually("/ready reports Redis down", async || ready(g).await["distributed"]["redis"] == "unreachable").await;
        assert_eq!(ready(g).await["distributed"]["limits"], "local");
        let m = g.send(http::Method::GET, &g.admin_url("/metrics"), Some(MASTER), &[], "").await.text();
        assert!(m.contains("tollgate_distributed_redis_up 0"), "{m}");
    }
    // Fail-open: still served, counted locally (each instance against the
    // whole limit), and kept to be sent.
    let during = burst(&gws, 15, 2, &ask(8)).await;
    assert_eq!(during.admitted, 30, "fail-open serves while Redis is down: {during:?}");
    // Back, and empty (as a restarted Redis without persistence is): what
    // was counted during the outage is sent, on top of what the instances
    // last knew of the count.
    let redis = OwnRedis::start(port);
    for g in &gws {
        eventually("/ready reports Redis back", async || ready(g).await["distributed"]["redis"] == "ok").await;
    }
    eventually("the outage's counts reach Redis", async || {
        redis_sum(&url, &format!("{ns}:c:*")).await >= before.admitted + during.admitted
    })
    .await;
    let after = burst(&gws, 5, 1, &ask(8)).await;
    assert_eq!(after.admitted, 10);
    for g in gws {
        Arc::into_inner(g).unwrap().gw.shutdown().await;
    }
    redis.stop();
}

#[tokio::test]
async fn fail_closed_refuses_while_redis_cannot_be_reached() {
    let ns = namespace("closed");
    let dead = format!("redis://127.0.0.1:{}/0", free_port());
    let yaml = format!(
        "{}rate_limits:\n  - {{ id: r, unit: requests_per_day, limit: 1000 }}\n{}",
        config("http://127.0.0.1:9", ""),
        distributed(&ns, &dead, &nats_url(), ", fail_closed: true")
    );
    let h = Harness::start(&yaml).await;
    eventually("/ready reports Redis down", async || ready(&h).await["distributed"]["limits"] == "closed").await;
    let r = h.chat(Some(LIMITED), &ask(8)).await;
    assert_eq!(r.status, 429, "{}", r.text());
    // A call no limit applies to is unaffected: the master key on an
    // unlimited route (/v1/models).
    assert_eq!(h.get("/v1/models", Some(MASTER)).await.status, 200);
    h.gw.shutdown().await;
}

/// Two gateways on one PostgreSQL store; `nats` may be a dead address.
async fn pair(test: &str, nats: &str) -> (Vec<Arc<Harness>>, tokio_postgres::Client, String) {
    let ns = namespace(test);
    let (pg, store_url, db) = postgres_database(&format!("tollgate_dist_{test}")).await;
    let yaml = format!(
        // No request log: with the store dropped it would spool to the working directory.
        "{}store: {{ url: \"{store_url}\" }}\nlogging: {{ enabled: false }}\n{}",
        config("http://127.0.0.1:9", ""),
        distributed(&ns, &redis_url(), nats, "")
    );
    (start_all(2, &yaml).await, pg, db)
}

async fn create_key(h: &Harness) -> (String, String) {
    let r = h
        .send(
            http::Method::POST,
            &h.admin_url("/admin/keys"),
            Some(MASTER),
            &[],
            json!({ "name": "dist", "models": ["mock/*"] }).to_string(),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let v = r.json();
    (v["id"].as_str().unwrap().to_string(), v["key"].as_str().unwrap().to_string())
}

async fn changes_received(h: &Harness) -> u64 {
    let m = h.send(http::Method::GET, &h.admin_url("/metrics"), Some(MASTER), &[], "").await.text();
    m.lines()
        .find_map(|l| l.strip_prefix("tollgate_distributed_changes_received "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn keys_and_overlays_propagate_over_nats() {
    let (gws, pg, db) = pair("push", &nats_url()).await;
    let (a, b) = (&gws[0], &gws[1]);
    eventually("both connected to NATS", async || ready(a).await["distributed"]["nats"] == "ok").await;
    eventually("both connected to NATS", async || ready(b).await["distributed"]["nats"] == "ok").await;
    let (id, key) = create_key(a).await;
    eventually("the new key works on the other instance", async || b.chat(Some(&key), &ask(8)).await.status == 200)
        .await;
    let r = a.send(http::Method::DELETE, &a.admin_url(&format!("/admin/keys/{id}")), Some(MASTER), &[], "").await;
    assert_eq!(r.status, 200, "{}", r.text());
    eventually("the revocation reaches the other instance", async || b.chat(Some(&key), &ask(8)).await.status == 401)
        .await;
    // An overlay put on one instance is in force on the other.
    let rule = json!({ "id": "overlaid", "unit": "requests_per_day", "limit": 1 }).to_string();
    let r = a.send(http::Method::PUT, &a.admin_url("/admin/rate_limits/overlaid"), Some(MASTER), &[], rule).await;
    assert_eq!(r.status, 200, "{}", r.text());
    eventually("the overlay reaches the other instance", async || {
        let list = b.send(http::Method::GET, &b.admin_url("/admin/rate_limits"), Some(MASTER), &[], "").await;
        list.text().contains("overlaid")
    })
    .await;
    // A config reload through the admin API is announced too (each
    // instance reloads its own copy of the file).
    let r = a.send(http::Method::POST, &a.admin_url("/admin/config/reload"), Some(MASTER), &[], "").await;
    assert_eq!(r.status, 200, "{}", r.text());
    // The changes came over NATS (the store poll would have applied them
    // too, but counts nothing here): create, revoke, overlay, reload.
    eventually("four changes pushed to the other instance", async || changes_received(b).await >= 4).await;
    for g in gws {
        Arc::into_inner(g).unwrap().gw.shutdown().await;
    }
    let _ = pg.batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)")).await;
}

#[tokio::test]
async fn with_nats_down_changes_arrive_from_the_store() {
    let dead = format!("nats://127.0.0.1:{}", free_port());
    let (gws, pg, db) = pair("poll", &dead).await;
    let (a, b) = (&gws[0], &gws[1]);
    assert_eq!(ready(b).await["distributed"]["nats"], "unreachable");
    let (id, key) = create_key(a).await;
    eventually("the new key works on the other instance", async || b.chat(Some(&key), &ask(8)).await.status == 200)
        .await;
    let r = a.send(http::Method::DELETE, &a.admin_url(&format!("/admin/keys/{id}")), Some(MASTER), &[], "").await;
    assert_eq!(r.status, 200);
    eventually("the revocation reaches the other instance", async || b.chat(Some(&key), &ask(8)).await.status == 401)
        .await;
    assert_eq!(changes_received(b).await, 0);
    // PostgreSQL gone as well: requests are still served and counted.
    pg.batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)")).await.unwrap();
    for g in &gws {
        let r = g.chat(Some(LIMITED), &ask(8)).await;
        assert_eq!(r.status, 200, "the request path needs no store: {}", r.text());
    }
    for g in gws {
        Arc::into_inner(g).unwrap().gw.shutdown().await;
    }
    let _ = pg.batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)")).await;
}

#[tokio::test]
async fn credentials_are_never_shown() {
    let ns = namespace("secrets");
    let redis = format!("redis://:canary-redis-pw@127.0.0.1:{}/0", free_port());
    let nats = format!("nats://gw:canary-nats-pw@127.0.0.1:{}", free_port());
    let yaml = format!("{}{}", config("http://127.0.0.1:9", ""), distributed(&ns, &redis, &nats, ""));
    let h = Harness::start(&yaml).await;
    eventually("/ready reports Redis down", async || ready(&h).await["distributed"]["redis"] == "unreachable").await;
    let shown = [
        h.get("/ready", None).await.text(),
        h.send(http::Method::GET, &h.admin_url("/admin/config"), Some(MASTER), &[], "").await.text(),
        h.send(http::Method::GET, &h.admin_url("/metrics"), Some(MASTER), &[], "").await.text(),
    ];
    for s in &shown {
        assert!(!s.contains("canary"), "{s}");
    }
    assert!(shown[1].contains("127.0.0.1"), "the addresses are shown: {}", shown[1]);
    h.gw.shutdown().await;

    // A bad URL is reported at its position, without repeating it.
    let bad = format!(
        "{}distributed:\n  redis_url: \"http://:canary-pw@redis\"\n  nats_url: \"nats://x\"\n  lease: 0.9\n",
        config("http://127.0.0.1:9", "")
    );
    let err =
        tollgate::config::load::load_text(&bad, "t.yaml", 1, &tollgate::state::Shared::default(), Default::default())
            .unwrap_err()
            .to_string();
    assert!(!err.contains("canary"), "{err}");
    assert!(err.contains("distributed.redis_url is not a Redis URL") && err.contains("lease"), "{err}");
    assert!(err.contains("t.yaml:"), "positions: {err}");
}
