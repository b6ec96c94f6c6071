//! The Batches API end to end: uploads checked line by line, batches run by
//! the gateway through its own data plane (each line authenticated,
//! limited, logged), rate-limited lines retried, cancel, tenant isolation,
//! and a killed gateway resuming its batch without running a line twice.

use crate::common::free_port;
use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};
use testkit::{Fault, MockUpstream};

use crate::common::{Harness, LIMITED, MASTER, Resp, config, eventually};

const OTHER: &str = "other-tenant-key-456";

fn yaml(up: &MockUpstream, batches: &str) -> String {
    let cfg = config(&up.base_url(), "");
    let cfg = cfg.replacen(
        "    - name: limited\n",
        &format!("    - name: other\n      key: \"{OTHER}\"\n    - name: limited\n"),
        1,
    );
    format!("{cfg}\nbatches: {{ {batches} }}\n")
}

/// A JSONL line calling chat completions.
fn chat_line(id: &str, model: &str, text: &str) -> String {
    json!({
        "custom_id": id, "method": "POST", "url": "/v1/chat/completions",
        "body": { "model": model, "messages": [{ "role": "user", "content": text }] }
    })
    .to_string()
}

const BOUNDARY: &str = "tollgate-test-boundary-7f3a";

fn form(purpose: &str, filename: &str, content: &str) -> String {
    format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\n{purpose}\r\n\
         --{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\n\
         Content-Type: application/jsonl\r\n\r\n{content}\r\n--{BOUNDARY}--\r\n"
    )
}

async fn send_raw(base: &str, method: Method, path: &str, key: &str, ctype: &str, body: impl Into<Bytes>) -> Resp {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
    let req = Request::builder()
        .method(method)
        .uri(format!("{base}{path}"))
        .header("authorization", format!("Bearer {key}"))
        .header("content-type", ctype)
        .body(Full::new(body.into()))
        .unwrap();
    let resp = client.request(req).await.expect("send");
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    Resp { status, headers, body }
}

async fn upload(base: &str, key: &str, purpose: &str, content: &str) -> Resp {
    let ctype = format!("multipart/form-data; boundary={BOUNDARY}");
    send_raw(base, Method::POST, "/v1/files", key, &ctype, form(purpose, "in.jsonl", content)).await
}

async fn create(base: &str, key: &str, body: Value) -> Resp {
    send_raw(base, Method::POST, "/v1/batches", key, "application/json", body.to_string()).await
}

async fn get(base: &str, key: &str, path: &str) -> Resp {
    send_raw(base, Method::GET, path, key, "application/json", Bytes::new()).await
}

/// Uploads `lines` and starts a batch on them: the batch object.
async fn start_batch(base: &str, key: &str, lines: &[String]) -> Value {
    let f = upload(base, key, "batch", &lines.join("\n")).await;
    assert_eq!(f.status, 200, "{}", f.text());
    let b = create(
        base,
        key,
        json!({ "input_file_id": f.json()["id"], "endpoint": "/v1/chat/completions", "completion_window": "24h",
                "metadata": { "job": "nightly" } }),
    )
    .await;
    assert_eq!(b.status, 200, "{}", b.text());
    b.json()
}

async fn wait_status(base: &str, key: &str, id: &str, want: &str) -> Value {
    let mut last = Value::Null;
    for _ in 0..400 {
        last = get(base, key, &format!("/v1/batches/{id}")).await.json();
        if last["status"] == want {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("batch {id} never reached {want}: {last}");
}

/// The JSONL lines of a file, by custom_id.
async fn lines_of(base: &str, key: &str, file: &Value) -> HashMap<String, Value> {
    let id = file.as_str().unwrap_or_else(|| panic!("no file id: {file}"));
    let r = get(base, key, &format!("/v1/files/{id}/content")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let mut out = HashMap::new();
    for l in r.text().lines() {
        let v: Value = serde_json::from_str(l).unwrap();
        let custom = v["custom_id"].as_str().unwrap().to_string();
        assert!(out.insert(custom.clone(), v).is_none(), "{custom} appears twice");
    }
    out
}

#[tokio::test]
async fn uploads_are_checked_line_by_line_and_bad_batches_refused() {
    let up = MockUpstream::start().await;
    let h = Harness::start(&yaml(&up, "max_file_size: 2KiB")).await;
    let base = h.url("");
    let good = chat_line("a", "mock/echo", "hi");

    let r = upload(&base, MASTER, "batch", &format!("{good}\n{{\"custom_id\": \"b\"")).await;
    assert_eq!(r.status, 400);
    assert!(r.error_message().starts_with("in.jsonl: line 2: not valid JSON"), "{}", r.error_message());
    let r = upload(&base, MASTER, "batch", &format!("{good}\n\n{good}")).await;
    assert!(r.error_message().contains("line 3: custom_id `a` is used by an earlier line"), "{}", r.error_message());
    let r = upload(
        &base,
        MASTER,
        "batch",
        &chat_line("a", "mock/echo", "hi").replace("/v1/chat/completions", "/v1/images"),
    )
    .await;
    assert!(r.error_message().contains("line 1: `url` is \"/v1/images\"; it must be one of"), "{}", r.error_message());
    let r = upload(&base, MASTER, "fine-tune", &good).await;
    assert_eq!((r.status.as_u16(), r.json()["error"]["code"].as_str()), (400, Some("invalid_purpose")));
    assert!(r.error_message().contains("purpose \"batch\""));
    let big: Vec<String> = (0..40).map(|i| chat_line(&i.to_string(), "mock/echo", "a longer message")).collect();
    let r = upload(&base, MASTER, "batch", &big.join("\n")).await;
    assert_eq!((r.status.as_u16(), r.json()["error"]["code"].as_str()), (400, Some("file_too_large")));
    assert!(r.error_message().contains("batches.max_file_size"));
    let r = send_raw(&base, Method::POST, "/v1/files", MASTER, "application/json", "{}").await;
    assert_eq!(r.status, 400);
    assert!(r.error_message().contains("multipart/form-data"), "{}", r.error_message());
    let r = upload(&base, "wrong-key-000", "batch", &good).await;
    assert_eq!(r.status, 401);

    // A good upload: OpenAI's file object, listed, readable byte for byte.
    let f = upload(&base, MASTER, "batch", &good).await;
    assert_eq!(f.status, 200, "{}", f.text());
    let f = f.json();
    assert!(f["id"].as_str().unwrap().starts_with("file-"));
    assert_eq!(
        (f["object"].as_str(), f["purpose"].as_str(), f["filename"].as_str()),
        (Some("file"), Some("batch"), Some("in.jsonl"))
    );
    assert_eq!(f["bytes"], good.len());
    let id = f["id"].as_str().unwrap();
    assert_eq!(get(&base, MASTER, &format!("/v1/files/{id}/content")).await.text(), good);
    let list = get(&base, MASTER, "/v1/files").await.json();
    assert_eq!(list["data"][0]["id"], id);

    // Batches that cannot run are refused before they start.
    let bad = |b: Value| create(&base, MASTER, b);
    let r = bad(json!({ "input_file_id": id, "endpoint": "/v1/embeddings", "completion_window": "24h" })).await;
    assert!(
        r.error_message().contains("calls /v1/chat/completions but the batch endpoint is /v1/embeddings"),
        "{}",
        r.text()
    );
    let r = bad(json!({ "input_file_id": id, "endpoint": "/v1/chat/completions", "completion_window": "1h" })).await;
    assert!(r.error_message().contains("use \"24h\""));
    let r =
        bad(json!({ "input_file_id": "file-nope", "endpoint": "/v1/chat/completions", "completion_window": "24h" }))
            .await;
    assert_eq!(r.json()["error"]["code"], "invalid_input_file_id");
    let r = bad(json!({ "input_file_id": id, "endpoint": "/v1/chat/completions", "completion_window": "24h", "metadata": { "n": 1 } })).await;
    assert!(r.error_message().contains("metadata `n` must be a string"));
    let r = bad(json!({ "endpoint": "/v1/chat/completions", "completion_window": "24h" })).await;
    assert_eq!(r.status, 400);
    assert!(r.error_message().contains("`input_file_id` is required"));
    h.gw.shutdown().await;
}

#[tokio::test]
async fn a_batch_runs_every_line_as_its_creator_and_writes_output_and_error_files() {
    let up = MockUpstream::start().await;
    let h = Harness::start(&yaml(&up, "concurrency: 2")).await;
    let base = h.url("");
    // The limited key may use mock/* only: its line to the upstream model is refused (403).
    let lines = vec![
        chat_line("one", "mock/echo", "first"),
        chat_line("two", "mock/echo", "second"),
        chat_line("denied", "up/gpt-4o-mini", "not for this key"),
        chat_line("three", "mock/echo", "third"),
    ];
    let b = start_batch(&base, LIMITED, &lines).await;
    assert_eq!((b["object"].as_str(), b["status"].as_str()), (Some("batch"), Some("validating")));
    assert_eq!(b["request_counts"], json!({ "total": 4, "completed": 0, "failed": 0 }));
    assert_eq!(b["metadata"], json!({ "job": "nightly" }));
    let id = b["id"].as_str().unwrap();
    let done = wait_status(&base, LIMITED, id, "completed").await;
    assert_eq!(done["request_counts"], json!({ "total": 4, "completed": 3, "failed": 1 }), "{done}");
    for t in ["in_progress_at", "finalizing_at", "completed_at"] {
        assert!(done[t].as_u64().is_some(), "{t}: {done}");
    }
    assert!(!done.to_string().contains(LIMITED), "the creator's key is never shown");

    let out = lines_of(&base, LIMITED, &done["output_file_id"]).await;
    assert_eq!(out.len(), 3);
    let one = &out["one"];
    assert!(one["id"].as_str().unwrap().starts_with("batch_req_"));
    assert_eq!(one["error"], Value::Null);
    assert_eq!(one["response"]["status_code"], 200);
    assert!(one["response"]["request_id"].as_str().unwrap().starts_with("req_"));
    assert_eq!(one["response"]["body"]["object"], "chat.completion");
    assert!(one["response"]["body"]["choices"][0]["message"]["content"].as_str().unwrap().contains("first"));
    let errors = lines_of(&base, LIMITED, &done["error_file_id"]).await;
    assert_eq!(errors.len(), 1);
    assert_eq!(errors["denied"]["response"]["status_code"], 403);
    assert_eq!(errors["denied"]["response"]["body"]["error"]["code"], "model_not_allowed");
    assert_eq!(up.request_count(), 0, "the refused line never reached the provider");
    let f = get(&base, LIMITED, &format!("/v1/files/{}", done["output_file_id"].as_str().unwrap())).await.json();
    assert_eq!(f["purpose"], "batch_output");

    // Each line is its own request in the log, as the creator, with the batch id.
    let admin = |p: String| {
        let url = h.admin_url(&p);
        async move { send_raw("", Method::GET, &url, MASTER, "application/json", Bytes::new()).await }
    };
    let mut entries = Vec::new();
    eventually("four log entries for the batch", async || {
        entries = admin(format!("/admin/logs?metadata=batch_id:{id}&limit=100")).await.json()["data"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        entries.len() == 4
    })
    .await;
    assert!(
        entries.iter().all(|e| e["subject"] == "key:limited" && e["metadata"]["team"] == "platform"),
        "{entries:?}"
    );
    assert_eq!(entries.iter().filter(|e| e["status"] == 403).count(), 1);

    // The list, newest first, with a cursor.
    let second = start_batch(&base, LIMITED, &lines[..1]).await;
    let page = get(&base, LIMITED, "/v1/batches?limit=1").await.json();
    assert_eq!((page["data"][0]["id"].as_str(), page["has_more"].as_bool()), (second["id"].as_str(), Some(true)));
    let next =
        get(&base, LIMITED, &format!("/v1/batches?limit=1&after={}", second["id"].as_str().unwrap())).await.json();
    assert_eq!((next["data"][0]["id"].as_str(), next["has_more"].as_bool()), (Some(id), Some(false)));
    assert_eq!(get(&base, LIMITED, "/v1/batches?limit=0").await.status, 400);

    // An input file in use cannot be deleted; a finished batch's can.
    wait_status(&base, LIMITED, second["id"].as_str().unwrap(), "completed").await;
    let del = send_raw(
        &base,
        Method::DELETE,
        &format!("/v1/files/{}", b["input_file_id"].as_str().unwrap()),
        LIMITED,
        "application/json",
        Bytes::new(),
    )
    .await;
    assert_eq!(del.json(), json!({ "id": b["input_file_id"], "object": "file", "deleted": true }));
    h.gw.shutdown().await;
}

#[tokio::test]
async fn a_rate_limited_line_waits_and_then_succeeds() {
    let up = MockUpstream::start().await;
    let h = Harness::start(&yaml(&up, "concurrency: 1")).await;
    let base = h.url("");
    up.push_fault(Fault::Status { status: 429, body: None, retry_after: Some("1".into()) });
    let lines = vec![chat_line("a", "up/gpt-4o-mini", "one"), chat_line("b", "up/gpt-4o-mini", "two")];
    let b = start_batch(&base, MASTER, &lines).await;
    let done = wait_status(&base, MASTER, b["id"].as_str().unwrap(), "completed").await;
    assert_eq!(done["request_counts"], json!({ "total": 2, "completed": 2, "failed": 0 }), "{done}");
    assert_eq!(done["error_file_id"], Value::Null);
    assert_eq!(up.request_count(), 3, "the refused line was sent again, once");
    let first = up.requests()[0].headers.get("authorization").unwrap().to_str().unwrap().to_string();
    assert_eq!(first, "Bearer sk-upstream-secret", "the provider gets its own key, never the client's");
    let out = lines_of(&base, MASTER, &done["output_file_id"]).await;
    assert!(out.values().all(|l| l["response"]["status_code"] == 200));
    h.gw.shutdown().await;
}

#[tokio::test]
async fn cancel_stops_a_running_batch_and_keeps_what_finished() {
    let up = MockUpstream::start().await;
    up.set_fault(Some(Fault::Latency(Duration::from_millis(400))));
    let h = Harness::start(&yaml(&up, "concurrency: 1")).await;
    let base = h.url("");
    let lines: Vec<String> = (0..6).map(|i| chat_line(&format!("l{i}"), "up/gpt-4o-mini", "slow")).collect();
    let b = start_batch(&base, MASTER, &lines).await;
    let id = b["id"].as_str().unwrap();
    eventually("the first line finished", async || {
        get(&base, MASTER, &format!("/v1/batches/{id}")).await.json()["request_counts"]["completed"].as_u64() >= Some(1)
    })
    .await;
    let c =
        send_raw(&base, Method::POST, &format!("/v1/batches/{id}/cancel"), MASTER, "application/json", Bytes::new())
            .await;
    assert_eq!(c.status, 200, "{}", c.text());
    assert!(matches!(c.json()["status"].as_str(), Some("cancelling")), "{}", c.text());
    let done = wait_status(&base, MASTER, id, "cancelled").await;
    let finished = done["request_counts"]["completed"].as_u64().unwrap();
    assert!((1..6).contains(&finished), "{done}");
    assert!(done["cancelled_at"].as_u64().is_some());
    let out = lines_of(&base, MASTER, &done["output_file_id"]).await;
    assert_eq!(out.len() as u64, finished);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(up.request_count() as u64, finished, "no line started after the cancel");
    // Cancelling again answers the same; a finished batch cannot be cancelled.
    let again =
        send_raw(&base, Method::POST, &format!("/v1/batches/{id}/cancel"), MASTER, "application/json", Bytes::new())
            .await;
    assert_eq!(again.json()["status"], "cancelled");
    up.set_fault(None);
    let quick = start_batch(&base, MASTER, &lines[..1]).await;
    let qid = quick["id"].as_str().unwrap();
    wait_status(&base, MASTER, qid, "completed").await;
    let late =
        send_raw(&base, Method::POST, &format!("/v1/batches/{qid}/cancel"), MASTER, "application/json", Bytes::new())
            .await;
    assert_eq!((late.status.as_u16(), late.json()["error"]["code"].as_str()), (409, Some("batch_not_cancellable")));
    h.gw.shutdown().await;
}

#[tokio::test]
async fn each_caller_sees_only_its_own_files_and_batches() {
    let up = MockUpstream::start().await;
    let h = Harness::start(&yaml(&up, "")).await;
    let base = h.url("");
    let b = start_batch(&base, LIMITED, &[chat_line("a", "mock/echo", "mine")]).await;
    let (bid, fid) = (b["id"].as_str().unwrap(), b["input_file_id"].as_str().unwrap());
    wait_status(&base, LIMITED, bid, "completed").await;
    for path in [format!("/v1/files/{fid}"), format!("/v1/files/{fid}/content"), format!("/v1/batches/{bid}")] {
        let r = get(&base, OTHER, &path).await;
        assert_eq!(r.status, 404, "{path}: {}", r.text());
        assert!(!r.text().contains("limited"), "nothing about the owner");
    }
    let c =
        send_raw(&base, Method::POST, &format!("/v1/batches/{bid}/cancel"), OTHER, "application/json", Bytes::new())
            .await;
    assert_eq!(c.status, 404);
    let d = send_raw(&base, Method::DELETE, &format!("/v1/files/{fid}"), OTHER, "application/json", Bytes::new()).await;
    assert_eq!(d.status, 404);
    assert_eq!(get(&base, OTHER, "/v1/files").await.json()["data"], json!([]));
    assert_eq!(get(&base, OTHER, "/v1/batches").await.json()["data"], json!([]));
    // Another tenant's file cannot feed a batch.
    let r = create(
        &base,
        OTHER,
        json!({ "input_file_id": fid, "endpoint": "/v1/chat/completions", "completion_window": "24h" }),
    )
    .await;
    assert_eq!(r.json()["error"]["code"], "invalid_input_file_id");
    // The owner and the master key see it.
    assert_eq!(get(&base, LIMITED, "/v1/batches").await.json()["data"][0]["id"], bid);
    assert_eq!(get(&base, MASTER, "/v1/batches").await.json()["data"][0]["id"], bid);
    assert_eq!(get(&base, MASTER, &format!("/v1/files/{fid}")).await.status, 200);
    h.gw.shutdown().await;
}

struct Killed(std::process::Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn serve(cfg: &std::path::Path, port: u16) -> Killed {
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args(["serve", "--no-watch", "--config"])
        .arg(cfg)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let child = Killed(child);
    eventually("the gateway is ready", async || {
        tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok()
            && get(&format!("http://127.0.0.1:{port}"), MASTER, "/ready").await.status == 200
    })
    .await;
    child
}

#[tokio::test]
async fn a_killed_gateway_resumes_its_batch_and_runs_every_line_once() {
    let up = MockUpstream::start().await;
    up.set_fault(Some(Fault::Latency(Duration::from_millis(300))));
    let dir = tempfile::tempdir().unwrap();
    let (port, admin) = (free_port(), free_port());
    let cfg = dir.path().join("tollgate.yaml");
    let text = yaml(&up, "concurrency: 2")
        .replace("admin_listen: \"127.0.0.1:0\"", &format!("admin_listen: \"127.0.0.1:{admin}\""))
        .replace(" listen: \"127.0.0.1:0\"", &format!(" listen: \"127.0.0.1:{port}\""));
    std::fs::write(&cfg, format!("{text}\nstore: {{ url: \"sqlite://{}\" }}\n", dir.path().join("t.db").display()))
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");

    let mut gw = serve(&cfg, port).await;
    let lines: Vec<String> =
        (0..12).map(|i| chat_line(&format!("n{i}"), "up/gpt-4o-mini", &format!("line {i}"))).collect();
    let b = start_batch(&base, MASTER, &lines).await;
    let id = b["id"].as_str().unwrap().to_string();
    eventually("some lines done before the kill", async || {
        get(&base, MASTER, &format!("/v1/batches/{id}")).await.json()["request_counts"]["completed"].as_u64() >= Some(3)
    })
    .await;
    // A crash, not a drain: nothing gets to finish.
    gw.0.kill().unwrap();
    gw.0.wait().unwrap();
    assert!(tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err(), "the gateway is gone");
    let sent_before = up.request_count();
    assert!(sent_before < 12, "killed mid-batch ({sent_before} sent)");

    let _gw = serve(&cfg, port).await;
    let done = wait_status(&base, MASTER, &id, "completed").await;
    assert_eq!(done["request_counts"], json!({ "total": 12, "completed": 12, "failed": 0 }), "{done}");
    let out = lines_of(&base, MASTER, &done["output_file_id"]).await;
    assert_eq!(out.len(), 12, "every line exactly once in the output");
    // Only the lines cut off in flight by the kill (at most `concurrency`) ran twice.
    let mut per_line: HashMap<String, usize> = HashMap::new();
    for r in up.requests() {
        let text = r.json()["messages"][0]["content"].as_str().unwrap_or_default().to_string();
        *per_line.entry(text).or_default() += 1;
    }
    assert_eq!(per_line.len(), 12);
    let twice = per_line.values().filter(|n| **n > 1).count();
    assert!(twice <= 2 && per_line.values().all(|n| *n <= 2), "{per_line:?}");
}
