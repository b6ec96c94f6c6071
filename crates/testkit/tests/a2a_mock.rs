//! The mock A2A agent spoken to as a client would: the card, JSON-RPC in
//! both protocol generations, HTTP+JSON, SSE streams, cancel, bearer tokens
//! and the v0.3-only mode.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use testkit::{A2aMock, A2aOptions};

type HttpClient = Client<HttpConnector, Full<Bytes>>;

fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

async fn send(
    c: &HttpClient,
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> Response<Incoming> {
    let mut req = Request::builder().method(method).uri(url).header("content-type", "application/json");
    for (n, v) in headers {
        req = req.header(*n, *v);
    }
    let body = body.map(|b| Bytes::from(b.to_string())).unwrap_or_default();
    c.request(req.body(Full::new(body)).expect("request")).await.expect("send")
}

async fn json_of(r: Response<Incoming>) -> Value {
    let bytes = r.into_body().collect().await.expect("body").to_bytes();
    serde_json::from_slice(&bytes).expect("json")
}

fn rpc(id: u64, method: &str, params: Value) -> Value {
    json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params })
}

fn v1_message(id: &str, text: &str) -> Value {
    json!({ "message": { "messageId": id, "role": "ROLE_USER", "parts": [{ "text": text }] } })
}

fn v03_message(id: &str, text: &str) -> Value {
    json!({ "message": { "kind": "message", "messageId": id, "role": "user", "parts": [{ "kind": "text", "text": text }] } })
}

async fn call(c: &HttpClient, mock: &A2aMock, body: Value) -> Value {
    let r = send(c, Method::POST, &format!("{}/rpc", mock.url), &[], Some(body)).await;
    assert_eq!(r.status(), 200);
    json_of(r).await
}

/// Reads SSE `data:` events until the stream ends, noting when each arrived.
async fn events(r: Response<Incoming>) -> Vec<(Instant, Value)> {
    assert_eq!(r.headers()["content-type"], "text/event-stream; charset=utf-8");
    let (mut body, mut buf, mut out) = (r.into_body(), String::new(), Vec::new());
    loop {
        while let Some(end) = buf.find("\r\n\r\n") {
            let raw: String = buf.drain(..end + 4).collect();
            let data = raw.trim_end().strip_prefix("data: ").expect("a data line");
            out.push((Instant::now(), serde_json::from_str(data).expect("json")));
        }
        let frame = tokio::time::timeout(Duration::from_secs(5), body.frame()).await.expect("event in time");
        let Some(frame) = frame else { return out };
        if let Ok(data) = frame.expect("frame").into_data() {
            buf.push_str(std::str::from_utf8(&data).expect("utf-8"));
        }
    }
}

#[tokio::test]
async fn a2a_card_at_both_paths_merges_v03_fields() {
    let mock = A2aMock::start().await;
    let c = client();
    let base = &mock.url;
    let r = send(&c, Method::GET, &format!("{base}/.well-known/agent-card.json"), &[], None).await;
    assert_eq!(r.status(), 200);
    let card = json_of(r).await;
    assert_eq!(
        card["supportedInterfaces"],
        json!([
            { "url": format!("{base}/rpc"), "protocolBinding": "JSONRPC", "protocolVersion": "1.0" },
            { "url": format!("{base}/rest"), "protocolBinding": "HTTP+JSON", "protocolVersion": "1.0" },
            { "url": format!("{base}/rpc"), "protocolBinding": "JSONRPC", "protocolVersion": "0.3" },
            { "url": "127.0.0.1:1", "protocolBinding": "GRPC", "protocolVersion": "1.0" },
        ])
    );
    assert_eq!(card["url"], format!("{base}/rpc"));
    assert_eq!(card["preferredTransport"], "JSONRPC");
    assert_eq!(card["protocolVersion"], "0.3");
    assert_eq!(card["additionalInterfaces"][0], json!({ "transport": "HTTP+JSON", "url": format!("{base}/rest") }));
    assert_eq!(
        card["capabilities"],
        json!({ "streaming": true, "pushNotifications": false, "extendedAgentCard": true })
    );
    assert_eq!(card["skills"][0]["id"], "echo");
    assert_eq!(card["security"], json!([{ "bearer": [] }]));
    let legacy = json_of(send(&c, Method::GET, &format!("{base}/.well-known/agent.json"), &[], None).await).await;
    assert_eq!(legacy, card);
    assert_eq!(mock.card_fetches(), 2);
    assert!(mock.received().is_empty(), "card GETs are not recorded");
}

#[tokio::test]
async fn a2a_v1_send_get_list_and_errors() {
    let mock = A2aMock::start().await;
    let c = client();
    let headers = [("a2a-version", "1.0"), ("a2a-extensions", "https://ext.test/x")];
    let r = send(
        &c,
        Method::POST,
        &format!("{}/rpc", mock.url),
        &headers,
        Some(rpc(1, "SendMessage", v1_message("m-1", "hello"))),
    )
    .await;
    assert_eq!(r.headers()["a2a-version"], "1.0");
    assert_eq!(r.headers()["a2a-extensions"], "https://ext.test/x");
    let v = json_of(r).await;
    assert_eq!(v["id"], 1);
    let task = &v["result"]["task"];
    assert_eq!(task["status"]["state"], "TASK_STATE_COMPLETED");
    assert!(task["status"]["timestamp"].as_str().expect("timestamp").ends_with('Z'));
    assert_eq!(task["artifacts"][0]["name"], "echo");
    assert_eq!(task["artifacts"][0]["parts"], json!([{ "text": "echo: hello" }]));
    let user = &task["history"][0];
    assert_eq!((&user["messageId"], &user["role"], &user["taskId"]), (&json!("m-1"), &json!("ROLE_USER"), &task["id"]));
    assert_eq!(user["parts"], json!([{ "text": "hello" }]));

    let got = call(&c, &mock, rpc(2, "GetTask", json!({ "id": task["id"], "historyLength": 0 }))).await;
    assert_eq!(got["result"]["id"], task["id"]);
    assert!(got["result"].get("history").is_none());

    let direct = call(&c, &mock, rpc(3, "SendMessage", v1_message("m-2", "direct hi"))).await;
    assert_eq!(direct["result"]["message"]["role"], "ROLE_AGENT");
    assert_eq!(direct["result"]["message"]["parts"], json!([{ "text": "echo: direct hi" }]));

    let list = call(&c, &mock, rpc(4, "ListTasks", json!({}))).await;
    assert_eq!((&list["result"]["totalSize"], &list["result"]["tasks"][0]["id"]), (&json!(1), &task["id"]));

    let cancel = call(&c, &mock, rpc(5, "CancelTask", json!({ "id": task["id"] }))).await;
    assert_eq!(cancel["error"], json!({ "code": -32002, "message": "Task cannot be canceled" }));
    let missing = call(&c, &mock, rpc(6, "GetTask", json!({ "id": "nope" }))).await;
    assert_eq!(missing["error"]["code"], -32001);
    let unknown = call(&c, &mock, rpc(7, "tasks/list", json!({}))).await;
    assert_eq!(
        unknown,
        json!({ "error": { "code": -32601, "message": "Method not found" }, "id": 7, "jsonrpc": "2.0" })
    );
    let r = c
        .request(Request::post(format!("{}/rpc", mock.url)).body(Full::new(Bytes::from("not json"))).expect("request"))
        .await
        .expect("send");
    let parse = json_of(r).await;
    assert_eq!((&parse["error"]["code"], &parse["id"]), (&json!(-32700), &Value::Null));

    let rec = mock.received();
    assert_eq!(rec.len(), 8);
    assert_eq!(rec[0].rpc_method(), Some("SendMessage"));
    assert_eq!(rec[0].header("a2a-extensions"), Some("https://ext.test/x"));
    assert_eq!((rec[0].method.as_str(), rec[0].path.as_str()), ("POST", "/rpc"));
    assert_eq!(rec[7].body, Value::Null);
    mock.clear();
    assert!(mock.received().is_empty());
}

#[tokio::test]
async fn a2a_v03_message_send_in_v03_shapes() {
    let mock = A2aMock::start().await;
    let c = client();
    let v = call(&c, &mock, rpc(20, "message/send", v03_message("m-5", "hello"))).await;
    let task = &v["result"];
    assert_eq!((&task["kind"], &task["status"]["state"]), (&json!("task"), &json!("completed")));
    assert_eq!(task["artifacts"][0]["parts"], json!([{ "kind": "text", "text": "echo: hello" }]));
    let user = &task["history"][0];
    assert_eq!((&user["kind"], &user["role"], &user["messageId"]), (&json!("message"), &json!("user"), &json!("m-5")));

    let got = call(&c, &mock, rpc(21, "tasks/get", json!({ "id": task["id"] }))).await;
    assert_eq!(got["result"]["kind"], "task");
    let direct = call(&c, &mock, rpc(22, "message/send", v03_message("m-6", "direct hi"))).await;
    assert_eq!(direct["result"]["kind"], "message");
    assert_eq!(direct["result"]["role"], "agent");
    assert_eq!(direct["result"]["parts"], json!([{ "kind": "text", "text": "echo: direct hi" }]));
}

#[tokio::test]
async fn a2a_streams_arrive_over_time() {
    let mock = A2aMock::start().await;
    let c = client();
    let url = format!("{}/rpc", mock.url);
    let r =
        send(&c, Method::POST, &url, &[], Some(rpc(3, "SendStreamingMessage", v1_message("m-1", "stream it")))).await;
    let evs = events(r).await;
    assert_eq!(evs.len(), 6, "{evs:?}");
    assert!(evs[5].0 - evs[0].0 >= Duration::from_millis(50), "the events came over time");
    let results: Vec<&Value> = evs
        .iter()
        .map(|(_, e)| {
            assert_eq!(e["id"], 3);
            &e["result"]
        })
        .collect();
    assert_eq!(results[0]["task"]["status"], json!({ "state": "TASK_STATE_SUBMITTED" }));
    assert_eq!(results[1]["statusUpdate"]["status"]["state"], "TASK_STATE_WORKING");
    let chunk = |i: usize| &results[2 + i]["artifactUpdate"];
    assert_eq!(chunk(0)["artifact"]["parts"], json!([{ "text": "chunk 0: stream it" }]));
    assert_eq!(chunk(0)["artifact"]["artifactId"], "stream");
    assert!(chunk(0).get("append").is_none() && chunk(0).get("lastChunk").is_none());
    assert_eq!((&chunk(1)["append"], chunk(1).get("lastChunk")), (&json!(true), None));
    assert_eq!((&chunk(2)["append"], &chunk(2)["lastChunk"]), (&json!(true), &json!(true)));
    assert_eq!(results[5]["statusUpdate"]["status"]["state"], "TASK_STATE_COMPLETED");
    let id = &results[0]["task"]["id"];
    let got = call(&c, &mock, rpc(4, "GetTask", json!({ "id": id }))).await;
    assert_eq!(got["result"]["artifacts"][0]["parts"].as_array().map(Vec::len), Some(3));

    // The same in v0.3 shapes, and over REST (bare events, no envelope).
    let r = send(&c, Method::POST, &url, &[], Some(rpc(5, "message/stream", v03_message("m-2", "stream it")))).await;
    let kinds: Vec<Value> = events(r).await.into_iter().map(|(_, e)| e["result"]["kind"].clone()).collect();
    assert_eq!(
        kinds,
        ["task", "status-update", "artifact-update", "artifact-update", "artifact-update", "status-update"]
    );
    let r =
        send(&c, Method::POST, &format!("{}/rest/message:stream", mock.url), &[], Some(v1_message("m-3", "stream it")))
            .await;
    let evs = events(r).await;
    assert_eq!(evs.len(), 6);
    assert!(evs[0].1["task"].is_object() && evs[2].1["artifactUpdate"].is_object());
}

#[tokio::test]
async fn a2a_slow_task_streams_until_canceled() {
    let mock = A2aMock::start().await;
    let c = client();
    let url = format!("{}/rpc", mock.url);
    let r =
        send(&c, Method::POST, &url, &[], Some(rpc(1, "SendStreamingMessage", v1_message("m-1", "slow one")))).await;
    // Cancel once the task is working, while the stream is read alongside.
    let cancel = async {
        let id = loop {
            let list = call(&c, &mock, rpc(2, "ListTasks", json!({}))).await;
            if list["result"]["tasks"][0]["status"]["state"] == "TASK_STATE_WORKING" {
                break list["result"]["tasks"][0]["id"].clone();
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        // The stream stays open while the task works.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let at = Instant::now();
        let canceled = call(&c, &mock, rpc(3, "CancelTask", json!({ "id": id }))).await;
        assert_eq!(canceled["result"]["status"]["state"], "TASK_STATE_CANCELED");
        at
    };
    let (evs, canceled_at) = tokio::join!(events(r), cancel);
    assert!(evs.last().expect("events").0 >= canceled_at, "the stream ended only with the cancel");
    let states: Vec<&Value> =
        evs.iter().skip(1).map(|(_, e)| &e["result"]["statusUpdate"]["status"]["state"]).collect();
    assert_eq!(states, [&json!("TASK_STATE_WORKING"), &json!("TASK_STATE_CANCELED")]);

    // Not streamed: the task comes back working; v0.3 cancels it.
    let v = call(&c, &mock, rpc(4, "message/send", v03_message("m-2", "slow"))).await;
    assert_eq!(v["result"]["status"]["state"], "working");
    let v = call(&c, &mock, rpc(5, "tasks/cancel", json!({ "id": v["result"]["id"] }))).await;
    assert_eq!(v["result"]["status"]["state"], "canceled");
}

#[tokio::test]
async fn a2a_rest_bindings() {
    let mock = A2aMock::start().await;
    let c = client();
    let r =
        send(&c, Method::POST, &format!("{}/rest/message:send", mock.url), &[], Some(v1_message("m-1", "hi"))).await;
    assert_eq!(r.headers()["content-type"], "application/a2a+json");
    let task = json_of(r).await["task"].clone();
    assert_eq!(task["status"]["state"], "TASK_STATE_COMPLETED");
    let id = task["id"].as_str().expect("id");
    let got =
        json_of(send(&c, Method::GET, &format!("{}/rest/tasks/{id}?historyLength=0", mock.url), &[], None).await).await;
    assert_eq!(got["id"], id);
    assert!(got.get("history").is_none());
    let r = send(&c, Method::GET, &format!("{}/rest/tasks/nope", mock.url), &[], None).await;
    assert_eq!(r.status(), 404);
    assert_eq!(
        json_of(r).await,
        json!({ "error": { "code": 404, "status": "NOT_FOUND", "message": "Task not found" } })
    );
    let r = send(&c, Method::POST, &format!("{}/rest/tasks/{id}:cancel", mock.url), &[], None).await;
    assert_eq!(r.status(), 409);

    let r = send(&c, Method::POST, &format!("{}/rest/v1/message:send", mock.url), &[], Some(v03_message("m-2", "hi")))
        .await;
    assert_eq!(r.headers()["content-type"], "application/json");
    let v = json_of(r).await;
    assert_eq!((&v["kind"], &v["status"]["state"]), (&json!("task"), &json!("completed")));
    let list = json_of(send(&c, Method::GET, &format!("{}/rest/tasks", mock.url), &[], None).await).await;
    assert_eq!(list["totalSize"], 2);
}

#[tokio::test]
async fn a2a_token_required_except_for_the_card() {
    let mock = A2aMock::start_with(A2aOptions { token: Some("s3cret".into()), ..A2aOptions::default() }).await;
    let c = client();
    let url = format!("{}/rpc", mock.url);
    let body = rpc(1, "SendMessage", v1_message("m-1", "hi"));
    let r = send(&c, Method::POST, &url, &[], Some(body.clone())).await;
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    assert_eq!(json_of(r).await, json!({ "error": "missing or wrong bearer token" }));
    let wrong =
        send(&c, Method::GET, &format!("{}/rest/tasks", mock.url), &[("authorization", "Bearer nope")], None).await;
    assert_eq!(wrong.status(), 401);
    let r = send(&c, Method::POST, &url, &[("authorization", "Bearer s3cret")], Some(body)).await;
    assert_eq!(r.status(), 200);
    assert_eq!(json_of(r).await["result"]["task"]["status"]["state"], "TASK_STATE_COMPLETED");
    let card = send(&c, Method::GET, &format!("{}/.well-known/agent-card.json", mock.url), &[], None).await;
    assert_eq!(card.status(), 200);
    let rec = mock.received();
    assert_eq!(rec.len(), 3, "refused requests are recorded too");
    assert_eq!(rec[2].header("authorization"), Some("Bearer s3cret"));
}

#[tokio::test]
async fn a2a_legacy_only_agent() {
    let mock = A2aMock::start_with(A2aOptions { legacy_only: true, ..A2aOptions::default() }).await;
    let c = client();
    let r = send(&c, Method::GET, &format!("{}/.well-known/agent-card.json", mock.url), &[], None).await;
    assert_eq!(r.status(), 404);
    let card = json_of(send(&c, Method::GET, &format!("{}/.well-known/agent.json", mock.url), &[], None).await).await;
    assert_eq!(mock.card_fetches(), 2);
    assert!(card.get("supportedInterfaces").is_none());
    assert_eq!((&card["protocolVersion"], &card["preferredTransport"]), (&json!("0.3.0"), &json!("JSONRPC")));
    assert_eq!(card["url"], format!("{}/rpc", mock.url));
    assert_eq!(card["capabilities"], json!({ "streaming": true }));

    let v1 = call(&c, &mock, rpc(1, "SendMessage", v1_message("m-1", "hi"))).await;
    assert_eq!(v1["error"]["code"], -32601);
    let v03 = call(&c, &mock, rpc(2, "message/send", v03_message("m-2", "hi"))).await;
    assert_eq!(v03["result"]["status"]["state"], "completed");
    let rest =
        send(&c, Method::POST, &format!("{}/rest/message:send", mock.url), &[], Some(v1_message("m-3", "hi"))).await;
    assert_eq!(rest.status(), 404);
}
