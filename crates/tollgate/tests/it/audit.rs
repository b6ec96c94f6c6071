//! The audit log: admin changes and refusals are chained; `tollgate audit
//! verify` finds an edited or a deleted entry.

use http::Method;
use serde_json::json;
use testkit::MockUpstream;
use tollgate::config::reload::{Live, Source};
use tollgate::server::Gateway;
use tollgate::state::Shared;

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_changes_and_refusals_are_chained_and_tampering_is_found() {
    let up = MockUpstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("audit.db");
    let cfg = dir.path().join("tollgate.yaml");
    std::fs::write(&cfg, format!("{}\nstore: {{ url: \"sqlite://{}\" }}\n", config(&up.base_url(), ""), db.display()))
        .unwrap();
    let live = Live::new(Source::File(cfg.clone()), Shared::default()).unwrap();
    let gw = Gateway::start(live.clone()).await.unwrap();
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
    let send = async |method: Method, url: String, key: &str, body: String| -> (u16, serde_json::Value) {
        let req = http::Request::builder()
            .method(method)
            .uri(url)
            .header("authorization", format!("Bearer {key}"))
            .body(http_body_util::Full::new(bytes::Bytes::from(body)))
            .unwrap();
        let resp = client.request(req).await.unwrap();
        let status = resp.status().as_u16();
        use http_body_util::BodyExt;
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&bytes).unwrap_or_default())
    };
    let admin = format!("http://{}", gw.admin_addr);
    let (_, key) =
        send(Method::POST, format!("{admin}/admin/keys"), MASTER, json!({ "name": "audited" }).to_string()).await;
    let id = key["id"].as_str().unwrap().to_string();
    send(Method::DELETE, format!("{admin}/admin/keys/{id}"), MASTER, String::new()).await;
    send(
        Method::PUT,
        format!("{admin}/admin/rate_limits/r1"),
        MASTER,
        json!({ "unit": "requests_per_minute", "limit": 9 }).to_string(),
    )
    .await;
    send(Method::POST, format!("{admin}/admin/config/reload"), MASTER, String::new()).await;
    send(Method::GET, format!("{admin}/admin/keys"), LIMITED, String::new()).await; // refused: no admin role
    let chat = json!({ "model": "mock/echo", "messages": user("hi") }).to_string();
    send(Method::POST, format!("http://{}/v1/chat/completions", gw.data_addr), "wrong-key", chat).await; // refused credential
    gw.shutdown().await; // the audit writer drains

    let bin = env!("CARGO_BIN_EXE_tollgate");
    let verify = || std::process::Command::new(bin).args(["audit", "verify", "--config"]).arg(&cfg).output().unwrap();
    let out = verify();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("chain intact"), "{text}");

    let conn = rusqlite::Connection::open(&db).unwrap();
    let actions: Vec<String> = conn
        .prepare("SELECT action FROM audit_log ORDER BY seq")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    for expected in ["key.create", "key.revoke", "overlay.put", "config.reload", "admin.refused", "auth.refused"] {
        assert!(actions.iter().any(|a| a == expected), "{expected} missing from {actions:?}");
    }
    let reloader: String = conn
        .query_row(
            "SELECT actor FROM audit_log WHERE action = 'config.reload' AND outcome = 'ok (admin api)'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(reloader, "master", "a reload through the admin API names who asked");
    let secret = key["key"].as_str().unwrap();
    let all: String = conn
        .prepare("SELECT actor || action || target || outcome FROM audit_log")
        .unwrap()
        .query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(!all.contains(secret) && !all.contains(MASTER) && !all.contains("wrong-key"), "no secret in the audit log");

    // Edit one entry: verification names it.
    conn.execute("UPDATE audit_log SET actor = 'someone-else' WHERE seq = 2", []).unwrap();
    let out = verify();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("entry 2 was changed"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Put it back, delete another: verification names the gap.
    conn.execute("UPDATE audit_log SET actor = 'master' WHERE seq = 2", []).unwrap();
    assert!(verify().status.success());
    conn.execute("DELETE FROM audit_log WHERE seq = 3", []).unwrap();
    let out = verify();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("entry 3 is missing"));
}
