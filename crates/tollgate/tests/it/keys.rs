//! Virtual keys: created, used, listed without secrets, revoked at once,
//! rotated with overlap, persisted; admin roles; the `tollgate keys` CLI.

use std::time::Duration;

use http::Method;
use serde_json::{Value, json};
use testkit::MockUpstream;

use crate::common::*;

async fn admin(h: &Harness, method: Method, path: &str, key: &str, body: Value) -> Resp {
    let body = if body.is_null() { String::new() } else { body.to_string() };
    h.send(method, &h.admin_url(path), Some(key), &[], body).await
}

fn ask() -> Value {
    json!({ "model": "mock/echo", "messages": user("hi") })
}

#[tokio::test]
async fn keys_are_created_used_listed_revoked_and_rotated() {
    let up = MockUpstream::start().await;
    let h = Harness::start(&config(&up.base_url(), "")).await;

    let r = admin(
        &h,
        Method::POST,
        "/admin/keys",
        MASTER,
        json!({ "name": "ci", "team": "payments", "models": ["mock/*"] }),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let created = r.json();
    let secret = created["key"].as_str().unwrap().to_string();
    let id = created["id"].as_str().unwrap().to_string();
    assert!(secret.starts_with("tg-") && secret.len() > 40);
    assert_eq!(created["prefix"], secret[..9]);

    // Usable at once, scoped to its models, with its team pinned.
    assert_eq!(h.chat(Some(&secret), &ask()).await.status, 200);
    assert_eq!(h.chat(Some(&secret), &json!({ "model": "up/gpt-4o-mini", "messages": user("x") })).await.status, 403);

    // Listed without the secret.
    let list = admin(&h, Method::GET, "/admin/keys", MASTER, Value::Null).await;
    assert_eq!(list.status, 200);
    assert!(!list.text().contains(&secret), "a secret is shown once only");
    assert_eq!(list.json()["data"][0]["name"], "ci");

    // Names are unique among live keys.
    let dup = admin(&h, Method::POST, "/admin/keys", MASTER, json!({ "name": "ci" })).await;
    assert_eq!(dup.status, 409);
    let bad = admin(&h, Method::POST, "/admin/keys", MASTER, json!({ "name": "no spaces allowed" })).await;
    assert_eq!(bad.status, 400);
    let bad = admin(&h, Method::POST, "/admin/keys", MASTER, json!({ "name": "x", "colour": "red" })).await;
    assert_eq!(bad.status, 400);
    assert!(bad.error_message().contains("unknown field"), "{}", bad.error_message());

    // Rotation: the new secret works, the old one until the overlap ends.
    let rotated_at = std::time::Instant::now();
    let r = admin(&h, Method::POST, &format!("/admin/keys/{id}/rotate"), MASTER, json!({ "overlap": "3s" })).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let rotated = r.json();
    let new_secret = rotated["key"].as_str().unwrap().to_string();
    let new_id = rotated["id"].as_str().unwrap().to_string();
    assert_eq!(rotated["rotated_from"], id.as_str());
    assert_eq!(h.chat(Some(&new_secret), &ask()).await.status, 200);
    assert_eq!(h.chat(Some(&secret), &ask()).await.status, 200, "old secret within the overlap");
    eventually("the old secret refused after the overlap", async || h.chat(Some(&secret), &ask()).await.status == 401).await;
    assert!(rotated_at.elapsed() >= Duration::from_millis(2900), "refused before the overlap ended: {:?}", rotated_at.elapsed());

    // Revocation is in force for the very next request.
    let r = admin(&h, Method::DELETE, &format!("/admin/keys/{new_id}"), MASTER, Value::Null).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["active"], false);
    assert_eq!(h.chat(Some(&new_secret), &ask()).await.status, 401);
    assert_eq!(admin(&h, Method::DELETE, "/admin/keys/vk_nope", MASTER, Value::Null).await.status, 404);
}

#[tokio::test]
async fn roles_decide_what_a_key_may_do_on_the_admin_api() {
    let up = MockUpstream::start().await;
    let h = Harness::start(&config(&up.base_url(), "")).await;
    let make = async |body: Value| -> String {
        let r = admin(&h, Method::POST, "/admin/keys", MASTER, body).await;
        assert_eq!(r.status, 201, "{}", r.text());
        r.json()["key"].as_str().unwrap().to_string()
    };
    let data_key = make(json!({ "name": "app" })).await;
    let viewer = make(json!({ "name": "auditor", "role": "viewer" })).await;
    let lead = make(json!({ "name": "lead", "role": "team_admin", "team": "payments" })).await;

    // A data-plane key never reaches admin routes.
    assert_eq!(admin(&h, Method::GET, "/admin/keys", &data_key, Value::Null).await.status, 403);
    assert_eq!(admin(&h, Method::GET, "/admin/config", LIMITED, Value::Null).await.status, 403);

    // A viewer reads but does not change.
    assert_eq!(admin(&h, Method::GET, "/admin/usage", &viewer, Value::Null).await.status, 200);
    assert_eq!(admin(&h, Method::GET, "/admin/config", &viewer, Value::Null).await.status, 200);
    let r = admin(&h, Method::POST, "/admin/keys", &viewer, json!({ "name": "sneaky" })).await;
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["error"]["code"], "role_forbidden");
    assert_eq!(admin(&h, Method::POST, "/admin/config/reload", &viewer, Value::Null).await.status, 403);

    // A team admin manages its own team's keys only.
    let r = admin(&h, Method::POST, "/admin/keys", &lead, json!({ "name": "pay-svc" })).await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["team"], "payments", "the team is forced to the team admin's own");
    assert_eq!(
        admin(&h, Method::POST, "/admin/keys", &lead, json!({ "name": "x", "team": "search" })).await.status,
        403
    );
    assert_eq!(
        admin(&h, Method::POST, "/admin/keys", &lead, json!({ "name": "y", "role": "admin" })).await.status,
        403
    );
    let listed = admin(&h, Method::GET, "/admin/keys", &lead, Value::Null).await.json();
    let names: Vec<&str> = listed["data"].as_array().unwrap().iter().map(|k| k["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["lead", "pay-svc"], "only its team's keys");
    let others = admin(&h, Method::GET, "/admin/keys", MASTER, Value::Null).await.json();
    let app_id = others["data"].as_array().unwrap().iter().find(|k| k["name"] == "app").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(admin(&h, Method::DELETE, &format!("/admin/keys/{app_id}"), &lead, Value::Null).await.status, 404);
    assert_eq!(admin(&h, Method::POST, "/admin/config/reload", &lead, Value::Null).await.status, 403);

    // The users directory never lends a role to a key: a team admin cannot
    // mint an admin key by naming an admin as its owner.
    assert_eq!(admin(&h, Method::PUT, "/admin/users/boss", MASTER, json!({ "role": "admin" })).await.status, 200);
    let r = admin(&h, Method::POST, "/admin/keys", &lead, json!({ "name": "sneaky", "owner": "boss" })).await;
    assert_eq!(r.status, 201);
    let sneaky = r.json()["key"].as_str().unwrap().to_string();
    assert_eq!(admin(&h, Method::POST, "/admin/config/reload", &sneaky, Value::Null).await.status, 403);
}

#[tokio::test]
async fn keys_survive_a_restart_and_the_cli_manages_them() {
    let up = MockUpstream::start().await;
    let h = Harness::start(&config(&up.base_url(), "")).await;
    let bin = env!("CARGO_BIN_EXE_tollgate");
    let admin_url = format!("http://{}", h.gw.admin_addr);
    let cli = move |args: &[&str]| {
        let out = std::process::Command::new(bin)
            .arg("keys")
            .args(args)
            .args(["--admin-url", &admin_url])
            .env("TOLLGATE_MASTER_KEY", MASTER)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, out, err) = tokio::task::spawn_blocking(move || {
        cli(&[
            "create",
            "--name",
            "nightly",
            "--team",
            "data",
            "--models",
            "mock/*",
            "--tools",
            "github/search_*,files/read_file",
            "--agents",
            "research-*",
            "--metadata",
            "project_id=etl",
        ])
    })
    .await
    .unwrap();
    assert!(ok, "{out}\n{err}");
    assert!(err.contains("shown only once"));
    let created: Value = serde_json::from_str(&out).unwrap();
    let secret = created["key"].as_str().unwrap().to_string();
    assert_eq!(created["metadata"]["project_id"], "etl");
    assert_eq!(created["tools"], serde_json::json!(["github/search_*", "files/read_file"]));
    assert_eq!(created["agents"], serde_json::json!(["research-*"]));
    assert_eq!(h.chat(Some(&secret), &ask()).await.status, 200);

    let admin_url2 = format!("http://{}", h.gw.admin_addr);
    let (ok, out, _) = tokio::task::spawn_blocking(move || {
        let out = std::process::Command::new(bin)
            .args(["keys", "list", "--admin-url", &admin_url2])
            .env("TOLLGATE_MASTER_KEY", MASTER)
            .output()
            .unwrap();
        (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned(), ())
    })
    .await
    .unwrap();
    assert!(ok);
    assert!(out.contains("nightly") && out.contains("data") && !out.contains(&secret), "{out}");

    // The store keeps keys: a new gateway on the same config knows the key.
    let cfg = h.config_path.clone();
    h.gw.app.ready.store(false, std::sync::atomic::Ordering::Release);
    let live =
        tollgate::config::reload::Live::new(tollgate::config::reload::Source::File(cfg), Default::default()).unwrap();
    let gw2 = tollgate::server::Gateway::start(live).await.unwrap();
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
    let req = http::Request::builder()
        .method(Method::POST)
        .uri(format!("http://{}/v1/chat/completions", gw2.data_addr))
        .header("authorization", format!("Bearer {secret}"))
        .body(http_body_util::Full::new(bytes::Bytes::from(ask().to_string())))
        .unwrap();
    assert_eq!(client.request(req).await.unwrap().status(), 200);
    gw2.shutdown().await;

    // Without a master key the CLI says what to do.
    let out =
        std::process::Command::new(bin).args(["keys", "list"]).env_remove("TOLLGATE_MASTER_KEY").output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("TOLLGATE_MASTER_KEY"));
}

#[tokio::test]
async fn a_team_admin_reads_its_own_teams_requests_only() {
    let up = MockUpstream::start().await;
    let h = Harness::start(&config(&up.base_url(), "")).await;
    let r = admin(&h, Method::POST, "/admin/keys", MASTER, json!({ "name": "lead", "role": "team_admin", "team": "payments" })).await;
    let lead = r.json()["key"].as_str().unwrap().to_string();
    for team in ["payments", "search"] {
        let meta = format!("{{\"team\":\"{team}\"}}");
        let r = h
            .send(Method::POST, &h.url("/v1/chat/completions"), Some(MASTER), &[("x-tollgate-metadata", &meta)], ask().to_string())
            .await;
        assert_eq!(r.status, 200);
    }
    eventually("both requests are logged", async || {
        admin(&h, Method::GET, "/admin/logs", MASTER, Value::Null).await.json()["data"].as_array().map_or(0, Vec::len) >= 2
    })
    .await;
    for path in ["/admin/logs", "/admin/usage/report?group_by=metadata.team"] {
        let r = admin(&h, Method::GET, path, &lead, Value::Null).await;
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        let text = r.text();
        assert!(text.contains("payments") && !text.contains("search"), "{path}: {text}");
    }
}
