//! Hot reload: admin API, file watch; atomic, and invisible to requests.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http::Method;
use serde_json::json;
use testkit::MockUpstream;

use crate::common::*;

fn with_reply(upstream: &str, reply: &str, extra_model: &str) -> String {
    config(
        upstream,
        &format!(
            "  - name: slow\n    type: mock\n    mock: {{ reply: \"{reply}\", latency: 600ms }}\n    models: [{{ name: m }}{extra_model}]\n"
        ),
    )
}

async fn reload(h: &Harness) -> Resp {
    h.send(Method::POST, &h.admin_url("/admin/config/reload"), Some(MASTER), &[], "").await
}

#[tokio::test]
async fn admin_reload_applies_valid_and_rejects_invalid_configs() {
    let up = MockUpstream::start().await;
    let h = Harness::start(&with_reply(&up.base_url(), "old", "")).await;
    assert_eq!(h.chat(Some(MASTER), &json!({ "model": "slow/m2", "messages": user("x") })).await.status, 404);

    std::fs::write(&h.config_path, with_reply(&up.base_url(), "old", ", { name: m2 }")).unwrap();
    let r = reload(&h).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.json()["version"].as_u64().unwrap() >= 2);
    assert_eq!(h.chat(Some(MASTER), &json!({ "model": "slow/m2", "messages": user("x") })).await.status, 200);

    let before = h.live.snapshot().version;
    std::fs::write(&h.config_path, "providers:\n  - name: broken\n    type: mock\n    modles: []\n").unwrap();
    let r = reload(&h).await;
    assert_eq!(r.status, 422);
    let v = r.json();
    assert_eq!(v["error"]["code"], "invalid_config");
    assert!(v["errors"][0].as_str().unwrap().contains(":4:5: error: unknown field `modles`"), "{v}");
    assert_eq!(h.live.snapshot().version, before, "the old config keeps serving");
    assert_eq!(h.chat(Some(MASTER), &json!({ "model": "slow/m2", "messages": user("x") })).await.status, 200);
}

#[tokio::test]
async fn a_changed_file_is_picked_up_by_the_watcher() {
    let up = MockUpstream::start().await;
    let h = Harness::start(&with_reply(&up.base_url(), "old", "")).await;
    std::fs::write(&h.config_path, with_reply(&up.base_url(), "old", ", { name: watched }")).unwrap();
    eventually("the watcher reloads the file", async || {
        h.chat(Some(MASTER), &json!({ "model": "slow/watched", "messages": user("x") })).await.status == 200
    })
    .await;
}

/// Editors save by writing a new file and renaming it over the old one;
/// other files in the directory (a SQLite store beside the config) change
/// all the time and must not count as a change to the config.
#[tokio::test]
async fn a_file_renamed_over_the_config_is_picked_up_and_neighbours_are_ignored() {
    let up = MockUpstream::start().await;
    let h = Harness::start(&with_reply(&up.base_url(), "old", "")).await;
    let dir = h.config_path.parent().unwrap().to_path_buf();
    let before = h.live.snapshot().version;
    // A neighbour written, closed and renamed: no reload.
    std::fs::write(dir.join("store.db-wal"), "x".repeat(4096)).unwrap();
    std::fs::rename(dir.join("store.db-wal"), dir.join("store.db")).unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    assert_eq!(h.live.snapshot().version, before, "a file beside the config is not the config");
    let tmp = dir.join(".tollgate.yaml.swp");
    std::fs::write(&tmp, with_reply(&up.base_url(), "old", ", { name: renamed }")).unwrap();
    std::fs::rename(&tmp, &h.config_path).unwrap();
    eventually("the watcher reloads the renamed file", async || {
        h.chat(Some(MASTER), &json!({ "model": "slow/renamed", "messages": user("x") })).await.status == 200
    })
    .await;
}

#[tokio::test]
async fn in_flight_requests_finish_on_the_snapshot_they_started_with() {
    let up = MockUpstream::start().await;
    let h = Arc::new(Harness::start(&with_reply(&up.base_url(), "old", "")).await);
    let old_version = h.live.snapshot().version;
    up.push_fault(testkit::Fault::Latency(Duration::from_millis(700)));
    let h2 = h.clone();
    let in_flight =
        tokio::spawn(async move { h2.chat(Some(MASTER), &json!({ "model": "up/gpt-4o-mini", "messages": user("x") })).await });
    // In flight for sure: the upstream has it, and holds its answer back.
    eventually("the request reaches the upstream", async || up.request_count() == 1).await;
    std::fs::write(&h.config_path, with_reply(&up.base_url(), "new", "").replace("sk-upstream-secret", "sk-rotated")).unwrap();
    let r = reload(&h).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let new_version = r.json()["version"].as_u64().unwrap();
    assert!(new_version > old_version);
    let new = h.chat(Some(MASTER), &json!({ "model": "up/gpt-4o-mini", "messages": user("x") })).await;
    assert_eq!(new.status, 200);
    let old = in_flight.await.unwrap();
    assert_eq!(old.status, 200, "{}", old.text());
    let auth: Vec<_> = up.requests().iter().map(|r| r.headers["authorization"].to_str().unwrap().to_string()).collect();
    assert_eq!(auth, ["Bearer sk-upstream-secret", "Bearer sk-rotated"], "the request after the reload uses the new config");
    for (resp, version) in [(&old, old_version), (&new, new_version)] {
        let id = resp.header("x-tollgate-request-id").unwrap().to_string();
        let mut entry = serde_json::Value::Null;
        eventually("the log entry", async || {
            let r = h.send(Method::GET, &h.admin_url(&format!("/admin/logs/{id}")), Some(MASTER), &[], "").await;
            entry = r.json();
            r.status == 200
        })
        .await;
        assert_eq!(entry["config_version"], version, "finished and logged under the config it started with: {entry}");
    }
}

#[tokio::test]
async fn the_watcher_does_not_take_a_file_caught_mid_write_for_a_config() {
    // `open(O_TRUNC)` then `write`: a watcher waking in between sees an
    // empty file, which as a config would drop the master key.
    let up = MockUpstream::start().await;
    let h = Harness::start(&with_reply(&up.base_url(), "old", "")).await;
    std::fs::write(&h.config_path, "").unwrap();
    // Time for the watcher to wake on the truncated file (a sleep here only
    // makes the test stronger: without it the check below may pass early).
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(h.chat(Some(MASTER), &json!({ "model": "slow/m", "messages": user("x") })).await.status, 200);
    std::fs::write(&h.config_path, with_reply(&up.base_url(), "old", ", { name: watched }")).unwrap();
    eventually("the completed write is picked up", async || {
        h.chat(Some(MASTER), &json!({ "model": "slow/watched", "messages": user("x") })).await.status == 200
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_changes_under_load_fail_no_request() {
    let up = MockUpstream::start().await;
    let h = Arc::new(Harness::start(&with_reply(&up.base_url(), "a", "")).await);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let ok = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for i in 0..8 {
        let (h, stop, ok) = (h.clone(), stop.clone(), ok.clone());
        workers.push(tokio::spawn(async move {
            let model = if i % 2 == 0 { "mock/echo" } else { "up/gpt-4o-mini" };
            let stream = i % 4 == 1;
            let mut failures = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let body = json!({ "model": model, "stream": stream, "messages": user("load") });
                let r = h.chat(Some(MASTER), &body).await;
                let complete = !stream || r.text().ends_with("data: [DONE]\n\n");
                if r.status == 200 && complete {
                    ok.fetch_add(1, Ordering::Relaxed);
                } else {
                    failures.push(format!("{} {}", r.status, r.text()));
                }
            }
            failures
        }));
    }
    let mut last_version = h.live.snapshot().version;
    for round in 0..12 {
        // Pacing, so the rounds spread over the load.
        tokio::time::sleep(Duration::from_millis(80)).await;
        let reply = if round % 2 == 0 { "b" } else { "c" };
        let invalid = round % 4 == 3;
        let text = if invalid {
            "providers: [ { name: oops, type: nonsense } ]\n".to_string()
        } else {
            with_reply(&up.base_url(), reply, ", { name: extra }").replace("latency: 600ms", "latency: 0ms")
        };
        std::fs::write(&h.config_path, text).unwrap();
        let r = reload(&h).await;
        if invalid {
            assert_eq!(r.status, 422, "round {round}: {}", r.text());
            continue;
        }
        assert_eq!(r.status, 200, "round {round}: {}", r.text());
        let version = r.json()["version"].as_u64().unwrap();
        assert!(version > last_version, "round {round}: a new version");
        last_version = version;
        // The very next request is served by what the reload applied.
        let a = h.chat(Some(MASTER), &json!({ "model": "slow/extra", "messages": user("x") })).await;
        assert_eq!(a.status, 200, "round {round}: {}", a.text());
        assert_eq!(a.json()["choices"][0]["message"]["content"], reply, "round {round}");
    }
    // Leave a valid config in place before stopping.
    std::fs::write(&h.config_path, with_reply(&up.base_url(), "z", "")).unwrap();
    assert_eq!(reload(&h).await.status, 200);
    stop.store(true, Ordering::Relaxed);
    let mut failures = Vec::new();
    for w in workers {
        failures.extend(w.await.unwrap());
    }
    assert!(failures.is_empty(), "{} failed, e.g. {:?}", failures.len(), failures.first());
    assert!(ok.load(Ordering::Relaxed) > 100, "load actually ran: {}", ok.load(Ordering::Relaxed));
    assert!(h.live.snapshot().version >= 10);
}
