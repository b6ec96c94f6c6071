//! Shared helpers: start a gateway on a config, call it over real HTTP.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use tollgate::config::reload::{Live, Source};
use tollgate::server::Gateway;
use tollgate::state::Shared;

pub const MASTER: &str = "test-master-key";
pub const LIMITED: &str = "limited-key-123";

/// A config with the master key, a key limited to `mock/*`, the built-in mock
/// and an OpenAI-compatible provider pointed at `upstream_base`.
pub fn config(upstream_base: &str, extra_providers: &str) -> String {
    format!(
        r#"
server: {{ listen: "127.0.0.1:0", admin_listen: "127.0.0.1:0", max_body_size: 64KiB }}
auth:
  master_key: "{MASTER}"
  keys:
    - name: limited
      key: "{LIMITED}"
      models: ["mock/*"]
      metadata: {{ team: platform }}
providers:
  - name: mock
    type: mock
    models: [{{ name: echo }}, {{ name: embed }}]
  - name: up
    type: openai_compatible
    base_url: "{upstream_base}"
    api_key: "sk-upstream-secret"
    timeout: {{ first_token: 2s, idle: 500ms, total: 10s }}
    models: [{{ name: gpt-4o-mini }}, {{ name: text-embedding-3-small }}]
{extra_providers}"#
    )
}

pub struct Harness {
    pub gw: Gateway,
    pub live: Arc<Live>,
    pub client: Client<HttpConnector, Full<Bytes>>,
    pub config_path: PathBuf,
    _dir: tempfile::TempDir,
}

pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    pub fn error_message(&self) -> String {
        self.json()["error"]["message"].as_str().unwrap_or_default().to_string()
    }
}

impl Harness {
    pub async fn start(yaml: &str) -> Harness {
        let dir = tempfile::tempdir().expect("tempdir");
        let config_path = dir.path().join("tollgate.yaml");
        // Keep the store out of the working directory.
        let yaml = if yaml.contains("\nstore:") {
            yaml.to_string()
        } else {
            format!("{yaml}\nstore: {{ url: \"sqlite://{}\" }}\n", dir.path().join("tollgate.db").display())
        };
        std::fs::write(&config_path, yaml).expect("write config");
        let live = Live::new(Source::File(config_path.clone()), Shared::default()).unwrap_or_else(|e| panic!("{e}"));
        live.spawn_watchers(true);
        let gw = Gateway::start(live.clone()).await.expect("start gateway");
        Harness { gw, live, client: Client::builder(TokioExecutor::new()).build_http(), config_path, _dir: dir }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.gw.data_addr)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.gw.admin_addr)
    }

    pub async fn send(
        &self,
        method: Method,
        url: &str,
        key: Option<&str>,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Resp {
        let mut b = Request::builder().method(method).uri(url).header("content-type", "application/json");
        if let Some(k) = key {
            b = b.header("authorization", format!("Bearer {k}"));
        }
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let resp = self.client.request(b.body(Full::new(body.into())).expect("request")).await.expect("send");
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        Resp { status, headers, body }
    }

    pub async fn chat(&self, key: Option<&str>, body: &Value) -> Resp {
        self.send(Method::POST, &self.url("/v1/chat/completions"), key, &[], body.to_string()).await
    }

    pub async fn get(&self, path: &str, key: Option<&str>) -> Resp {
        self.send(Method::GET, &self.url(path), key, &[], Bytes::new()).await
    }
}

/// Parses an SSE body into its `data:` payloads.
/// `(event name, data)` of an SSE body with named events (Anthropic's,
/// the Responses API's).
pub fn named_events(body: &str) -> Vec<(String, Value)> {
    body.split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            let name = e.lines().find_map(|l| l.strip_prefix("event: ")).unwrap_or("").to_string();
            let data = e.lines().find_map(|l| l.strip_prefix("data: ")).unwrap_or("null");
            (name, serde_json::from_str(data).unwrap_or(Value::Null))
        })
        .collect()
}

pub fn sse_data(body: &str) -> Vec<String> {
    body.split("\n\n").filter_map(|e| e.lines().find_map(|l| l.strip_prefix("data: ")).map(str::to_string)).collect()
}

pub fn user(text: &str) -> Value {
    serde_json::json!([{ "role": "user", "content": text }])
}

/// Polls `f` until it holds, for up to ~10 s (generous: a loaded 2-core
/// machine must not turn a slow success into a failure).
pub async fn eventually(what: &str, mut f: impl AsyncFnMut() -> bool) {
    for _ in 0..200 {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for: {what}");
}

/// A fresh PostgreSQL database for one test: (admin client, store URL).
/// The server comes from `TOLLGATE_TEST_POSTGRES_URL` (default: the local
/// one); a missing server fails the test, it is never skipped.
pub async fn postgres_database(prefix: &str) -> (tokio_postgres::Client, String, String) {
    let admin_url = std::env::var("TOLLGATE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let (pg, conn) = tokio_postgres::connect(&admin_url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL is needed for this test at {admin_url}: {e}"));
    tokio::spawn(conn);
    let db = format!("{prefix}_{}", std::process::id());
    let _ = pg.batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)")).await;
    pg.batch_execute(&format!("CREATE DATABASE {db}")).await.unwrap();
    let store_url = format!("{}/{db}", admin_url.rsplit_once('/').unwrap().0);
    (pg, store_url, db)
}

/// A port nothing listens on now. The kernel may hand a released port out
/// again at once, so two calls in a row (a listen and an admin port) could
/// collide; a port is never given twice in this test process.
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut given = GIVEN.lock().unwrap_or_else(|p| p.into_inner());
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}
