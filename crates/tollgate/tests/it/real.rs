//! The real `tollgate` binary for tests that need the whole process: its
//! own listeners, its own log output, a kill from outside.

use crate::common::free_port;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use bytes::Bytes;
use http::Method;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::Value;

/// A child process killed when the test lets go of it.
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A running `tollgate serve`: its URLs, and the file its log goes to.
pub struct Gateway {
    pub data: String,
    pub admin: String,
    pub log: PathBuf,
    pub client: Plain,
    _child: Killed,
}

/// Starts the binary on `yaml` (with `{port}` and `{admin}` filled in),
/// logging at `debug` into a file in `dir`, and waits until it is ready.
pub async fn serve(dir: &std::path::Path, yaml: &str) -> Gateway {
    let (port, admin) = (free_port(), free_port());
    let cfg = dir.join("tollgate.yaml");
    std::fs::write(&cfg, yaml.replace("{port}", &port.to_string()).replace("{admin}", &admin.to_string())).unwrap();
    let log = dir.join("tollgate.log");
    let child = Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args(["serve", "--config"])
        .arg(&cfg)
        .env("TOLLGATE_LOG", "debug")
        .stdout(std::fs::File::create(dir.join("stdout.log")).unwrap())
        .stderr(std::fs::File::create(&log).unwrap())
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let g = Gateway {
        data: format!("http://127.0.0.1:{port}"),
        admin: format!("http://127.0.0.1:{admin}"),
        log,
        client: Plain::new(),
        _child: Killed(child),
    };
    let ready = format!("{}/ready", g.data);
    crate::common::eventually("the gateway is ready", async || g.client.get(&ready, None).await.0 == 200).await;
    g
}

/// A small HTTP client: (status, headers and body as text).
pub struct Plain(Client<HttpConnector, Full<Bytes>>);

impl Plain {
    pub fn new() -> Plain {
        Plain(Client::builder(hyper_util::rt::TokioExecutor::new()).build_http())
    }

    pub async fn call(&self, method: Method, url: &str, key: Option<&str>, body: &str) -> (u16, String) {
        let mut b = http::Request::builder().method(method).uri(url).header("content-type", "application/json");
        if let Some(k) = key {
            b = b.header("authorization", format!("Bearer {k}"));
        }
        let Ok(resp) = self.0.request(b.body(Full::new(Bytes::from(body.to_string()))).unwrap()).await else {
            return (0, String::new());
        };
        let status = resp.status().as_u16();
        let headers = format!("{:?}", resp.headers());
        let body = resp.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
        (status, format!("{headers}\n{}", String::from_utf8_lossy(&body)))
    }

    pub async fn get(&self, url: &str, key: Option<&str>) -> (u16, String) {
        self.call(Method::GET, url, key, "").await
    }

    pub async fn post(&self, url: &str, key: Option<&str>, body: &str) -> (u16, String) {
        self.call(Method::POST, url, key, body).await
    }
}

/// The JSON body of a `Plain` answer (its headers come first, then a newline).
pub fn body_json(answer: &str) -> Option<Value> {
    serde_json::from_str(answer.split_once('\n')?.1).ok()
}
