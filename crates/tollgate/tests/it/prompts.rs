//! Prompt templates through the real gateway: what the upstream receives,
//! how a version is chosen, refusals that name what is wrong, a provider's
//! override on a fallback, the admin API, persistence, the log entry.

use http::Method;
use serde_json::{Value, json};
use testkit::{Fault, MockUpstream};

use crate::common::*;

fn prompts_config(up: &MockUpstream) -> String {
    config(
        &up.base_url(),
        &format!(
            r#"  - name: claude
    type: anthropic
    base_url: "http://{addr}"
    api_key: "sk-ant-secret"
    models: [{{ name: claude-x }}]
virtual_models:
  - name: prod/triage
    targets:
      - {{ model: up/gpt-4o-mini, fallback_on: [500] }}
      - {{ model: claude/claude-x }}
prompts:
  - id: support-triage
    description: Triage of inbound tickets
    labels: {{ production: 1, staging: 2 }}
    versions:
      - version: 1
        variables:
          product: {{ default: Acme Cloud }}
          ticket: {{ description: the customer's message }}
        instructions: "You triage support tickets for {{{{product}}}}."
        messages:
          - {{ role: user, content: "Ticket: {{{{ticket}}}}" }}
        overrides:
          - provider_type: anthropic
            instructions: "Claude: triage tickets for {{{{product}}}} in one line."
      - version: 2
        variables: {{ ticket: {{}} }}
        instructions: "Triage v2."
        messages:
          - {{ role: user, content: "New ticket: {{{{ticket}}}}" }}
  - id: two-vars
    versions:
      - version: 1
        variables: {{ customer: {{}}, ticket: {{}} }}
        messages: [{{ role: user, content: "{{{{customer}}}}: {{{{ticket}}}}" }}]
"#,
            addr = up.addr
        ),
    )
}

fn ask(prompt: Value) -> Value {
    json!({ "model": "up/gpt-4o-mini", "prompt": prompt, "messages": user("hello") })
}

/// The messages of the last request the upstream received.
fn last_messages(up: &MockUpstream) -> Value {
    let body = up.requests().last().expect("a request reached the upstream").json();
    assert!(body.get("prompt").is_none(), "`prompt` never goes upstream: {body}");
    body["messages"].clone()
}

async fn admin(h: &Harness, method: Method, path: &str, key: &str, body: Value) -> Resp {
    let body = if body.is_null() { String::new() } else { body.to_string() };
    h.send(method, &h.admin_url(path), Some(key), &[], body).await
}

/// A call with the master key outside the harness (after its gateway stopped).
async fn raw(
    client: &hyper_util::client::legacy::Client<
        hyper_util::client::legacy::connect::HttpConnector,
        http_body_util::Full<bytes::Bytes>,
    >,
    method: Method,
    url: &str,
    body: String,
) -> (u16, Value) {
    use http_body_util::BodyExt;
    let req = http::Request::builder()
        .method(method)
        .uri(url)
        .header("authorization", format!("Bearer {MASTER}"))
        .body(http_body_util::Full::new(bytes::Bytes::from(body)))
        .unwrap();
    let resp = client.request(req).await.unwrap();
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

#[tokio::test]
async fn the_upstream_gets_the_rendered_messages_for_the_chosen_version() {
    let up = MockUpstream::start().await;
    let h = Harness::start(&prompts_config(&up)).await;

    // No version or label: the `production` label (version 1), defaults filled in.
    let r =
        h.chat(Some(MASTER), &ask(json!({ "id": "support-triage", "variables": { "ticket": "VPN is down" } }))).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        last_messages(&up),
        json!([
            { "role": "system", "content": "You triage support tickets for Acme Cloud." },
            { "role": "user", "content": "Ticket: VPN is down" },
            { "role": "user", "content": "hello" },
        ])
    );

    // A label, then a version by number; a value replaces the default.
    let r = h
        .chat(Some(MASTER), &ask(json!({ "id": "support-triage", "label": "staging", "variables": { "ticket": "x" } })))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(last_messages(&up)[1], json!({ "role": "user", "content": "New ticket: x" }));
    let r = h
        .chat(
            Some(MASTER),
            &ask(json!({ "id": "support-triage", "version": 1, "variables": { "ticket": 7, "product": "Beta" } })),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(last_messages(&up)[0]["content"], "You triage support tickets for Beta.");
    assert_eq!(last_messages(&up)[1]["content"], "Ticket: 7");

    // The OpenAI SDK's `extra_body` puts it beside the messages; a request
    // without its own messages is the template alone.
    let r = h.chat(Some(MASTER), &json!({ "model": "up/gpt-4o-mini", "prompt": { "id": "two-vars", "variables": { "customer": "Ada", "ticket": "hi" } } })).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(last_messages(&up), json!([{ "role": "user", "content": "Ada: hi" }]));
}

#[tokio::test]
async fn bad_references_are_refused_naming_what_is_wrong_and_nothing_is_sent() {
    let up = MockUpstream::start().await;
    let h = Harness::start(&prompts_config(&up)).await;

    let r = h.chat(Some(MASTER), &ask(json!({ "id": "two-vars" }))).await;
    assert_eq!(r.status, 400, "{}", r.text());
    let e = &r.json()["error"];
    assert_eq!((e["code"].as_str(), e["param"].as_str()), (Some("prompt_variables_missing"), Some("prompt")));
    let m = e["message"].as_str().unwrap();
    assert!(m.contains("customer, ticket"), "every missing variable is named: {m}");

    let r = h
        .chat(Some(MASTER), &ask(json!({ "id": "support-triage", "variables": { "ticket": "x", "tone": "calm" } })))
        .await;
    assert_eq!((r.status.as_u16(), r.json()["error"]["code"].as_str()), (400, Some("prompt_variables_unknown")));
    assert!(r.error_message().contains("tone"), "{}", r.error_message());

    let r = h.chat(Some(MASTER), &ask(json!({ "id": "support-triag" }))).await;
    assert_eq!((r.status.as_u16(), r.json()["error"]["code"].as_str()), (404, Some("prompt_not_found")));
    assert!(r.error_message().contains("templates: support-triage, two-vars"), "{}", r.error_message());

    let r = h.chat(Some(MASTER), &ask(json!({ "id": "support-triage", "version": 9 }))).await;
    assert_eq!(r.json()["error"]["code"], "prompt_version_not_found");
    assert!(r.error_message().contains("versions: 1, 2"), "{}", r.error_message());

    let r = h.chat(Some(MASTER), &ask(json!({ "id": "support-triage", "label": "canary" }))).await;
    assert_eq!(r.json()["error"]["code"], "prompt_label_not_found");
    assert!(r.error_message().contains("labels: production, staging"), "{}", r.error_message());

    let r = h.chat(Some(MASTER), &ask(json!("support-triage"))).await;
    assert_eq!((r.status.as_u16(), r.json()["error"]["code"].as_str()), (400, Some("invalid_prompt")));

    // The Anthropic front renders none: it says where templates work.
    let body = json!({ "model": "up/gpt-4o-mini", "max_tokens": 5, "messages": user("x"), "prompt": { "id": "support-triage" } });
    let r = h.send(Method::POST, &h.url("/v1/messages"), Some(MASTER), &[], body.to_string()).await;
    assert_eq!((r.status.as_u16(), r.json()["type"].as_str()), (400, Some("error")), "{}", r.text());
    assert!(r.json()["error"]["message"].as_str().unwrap().contains("/v1/chat/completions"), "{}", r.text());

    assert_eq!(up.request_count(), 0, "a refused template sends nothing upstream");
}

#[tokio::test]
async fn a_fallback_to_another_provider_type_gets_its_override_and_the_log_says_so() {
    let up = MockUpstream::start().await;
    let h = Harness::start(&prompts_config(&up)).await;
    up.push_fault(Fault::Status { status: 500, body: None, retry_after: None });
    let body = json!({ "model": "prod/triage", "prompt": { "id": "support-triage", "variables": { "ticket": "VPN" } }, "messages": user("hello") });
    let r = h.chat(Some(MASTER), &body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-tollgate-resolved-model"), Some("claude/claude-x"));

    let reqs = up.requests();
    let openai = reqs.iter().find(|q| q.path.ends_with("/chat/completions")).expect("the first target was tried");
    assert_eq!(openai.json()["messages"][0]["content"], "You triage support tickets for Acme Cloud.");
    let anthropic = reqs.iter().find(|q| q.path == "/v1/messages").expect("the fallback was tried");
    let sent = anthropic.json();
    let system = sent["system"].to_string();
    assert!(system.contains("Claude: triage tickets for Acme Cloud in one line."), "the override: {sent}");
    assert!(!sent.to_string().contains("You triage support tickets"), "not the default text: {sent}");
    assert!(sent.to_string().contains("Ticket: VPN") && sent.to_string().contains("hello"), "{sent}");

    // The log entry names the template, its version and the override used.
    let id = r.header("x-tollgate-request-id").unwrap().to_string();
    let mut entry = Value::Null;
    eventually("the log entry is written", async || {
        let r = admin(&h, Method::GET, "/admin/logs?prompt=support-triage@1", MASTER, Value::Null).await;
        entry = r.json()["data"]
            .as_array()
            .and_then(|d| d.iter().find(|e| e["id"] == id.as_str()).cloned())
            .unwrap_or_default();
        !entry.is_null()
    })
    .await;
    assert_eq!(entry["prompt"], json!({ "id": "support-triage", "version": 1, "override_for": "claude" }));
    let other = admin(&h, Method::GET, "/admin/logs?prompt=two-vars", MASTER, Value::Null).await.json();
    assert_eq!(other["data"], json!([]), "the filter keeps other templates out");
}

#[tokio::test]
async fn admin_creates_versions_diffs_them_and_promotes_labels() {
    let up = MockUpstream::start().await;
    let h = Harness::start(&prompts_config(&up)).await;
    let v3 = json!({
        "description": "shorter",
        "variables": { "ticket": {} },
        "instructions": "Triage v3.\nBe brief.",
        "messages": [{ "role": "user", "content": "New ticket: {{ticket}}" }],
    });
    let r = admin(&h, Method::POST, "/admin/prompts/support-triage/versions", LIMITED, v3.clone()).await;
    assert_eq!(r.status, 403, "a data-plane key cannot create versions");
    let r = admin(&h, Method::POST, "/admin/prompts/support-triage/versions", MASTER, v3.clone()).await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["version"], 3);

    // Checked like the file: an undeclared variable, a bad placeholder, a taken number.
    let bad = json!({ "instructions": "Hi {{name}}" });
    let r = admin(&h, Method::POST, "/admin/prompts/support-triage/versions", MASTER, bad).await;
    assert_eq!((r.status.as_u16(), r.json()["error"]["code"].as_str()), (400, Some("invalid_prompt")));
    assert!(r.error_message().contains("`{{name}}`, which its `variables` do not declare"), "{}", r.error_message());
    let r = admin(
        &h,
        Method::POST,
        "/admin/prompts/support-triage/versions",
        MASTER,
        json!({ "version": 1, "instructions": "x" }),
    )
    .await;
    assert_eq!((r.status.as_u16(), r.json()["error"]["code"].as_str()), (409, Some("prompt_version_exists")));
    let r =
        admin(&h, Method::POST, "/admin/prompts/support-triage/versions", MASTER, json!({ "instrutions": "x" })).await;
    assert!(r.error_message().contains("unknown field `instrutions`"), "{}", r.error_message());

    // Requests can use it at once.
    let r = h
        .chat(Some(MASTER), &ask(json!({ "id": "support-triage", "version": 3, "variables": { "ticket": "t" } })))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(last_messages(&up)[0]["content"], "Triage v3.\nBe brief.");

    // Read back: the list, the template, one version in the shape POST takes.
    let list = admin(&h, Method::GET, "/admin/prompts", MASTER, Value::Null).await.json();
    let t = list["data"].as_array().unwrap().iter().find(|t| t["id"] == "support-triage").unwrap().clone();
    assert_eq!((t["latest"].as_u64(), t["labels"]["production"]["version"].as_u64()), (Some(3), Some(1)));
    let one = admin(&h, Method::GET, "/admin/prompts/support-triage/versions/3", MASTER, Value::Null).await.json();
    assert_eq!(one["template"], v3, "{one}");
    assert_eq!(one["created"]["source"], "admin");
    let r = admin(&h, Method::GET, "/admin/prompts/support-triage/versions/7", MASTER, Value::Null).await;
    assert_eq!(r.status, 404);

    // The diff shows the changed lines.
    let d = admin(&h, Method::GET, "/admin/prompts/support-triage/diff?from=2&to=3", MASTER, Value::Null).await.json();
    let unified = d["unified"].as_str().unwrap();
    assert!(unified.starts_with("--- support-triage@2\n+++ support-triage@3\n"), "{unified}");
    assert!(unified.contains("\n-  | Triage v2.\n+  | Triage v3.\n+  | Be brief.\n"), "{unified}");
    assert!(unified.contains("\n   | New ticket: {{ticket}}"), "unchanged lines are context: {unified}");
    let r = admin(&h, Method::GET, "/admin/prompts/support-triage/diff?from=2", MASTER, Value::Null).await;
    assert_eq!(r.status, 400);

    // Promote: requests naming no version follow the label.
    let r = admin(&h, Method::PUT, "/admin/prompts/support-triage/labels/production", MASTER, json!({ "version": 3 }))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!((r.json()["previous"].as_u64(), r.json()["version"].as_u64()), (Some(1), Some(3)));
    let r = h.chat(Some(MASTER), &ask(json!({ "id": "support-triage", "variables": { "ticket": "t" } }))).await;
    assert_eq!(r.status, 200);
    assert_eq!(last_messages(&up)[0]["content"], "Triage v3.\nBe brief.");
    let r = admin(&h, Method::PUT, "/admin/prompts/support-triage/labels/production", MASTER, json!({ "version": 42 }))
        .await;
    assert_eq!(r.status, 404);
    assert!(r.error_message().contains("versions: 1, 2, 3"), "{}", r.error_message());
    let r = admin(&h, Method::PUT, "/admin/prompts/support-triage/labels/Prod", MASTER, json!({ "version": 1 })).await;
    assert_eq!(r.status, 400);
}

#[tokio::test]
async fn created_versions_and_labels_survive_reloads_and_restarts_and_are_audited() {
    let up = MockUpstream::start().await;
    let h = Harness::start(&prompts_config(&up)).await;
    let v3 = json!({ "instructions": "Kept v3." });
    assert_eq!(admin(&h, Method::POST, "/admin/prompts/support-triage/versions", MASTER, v3).await.status, 201);
    let r = admin(&h, Method::PUT, "/admin/prompts/support-triage/labels/production", MASTER, json!({ "version": 3 }))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());

    // A reload of the file keeps them.
    let r = h.send(Method::POST, &h.admin_url("/admin/config/reload"), Some(MASTER), &[], "").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = h.chat(Some(MASTER), &ask(json!({ "id": "support-triage" }))).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(last_messages(&up)[0]["content"], "Kept v3.");

    // A restart on the same store keeps them.
    let (cfg, client) = (h.config_path.clone(), h.client.clone());
    h.gw.shutdown().await;
    let db = rusqlite::Connection::open(cfg.with_file_name("tollgate.db")).unwrap();
    let actions: Vec<String> = db
        .prepare("SELECT action || ' ' || target FROM audit_log WHERE action LIKE 'prompt.%' ORDER BY seq")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        actions,
        ["prompt.version.create prompt/support-triage@3", "prompt.label.set prompt/support-triage:production"]
    );

    let live =
        tollgate::config::reload::Live::new(tollgate::config::reload::Source::File(cfg), Default::default()).unwrap();
    let gw = tollgate::server::Gateway::start(live).await.unwrap();
    let url = format!("http://{}/v1/chat/completions", gw.data_addr);
    let (status, _) = raw(&client, Method::POST, &url, ask(json!({ "id": "support-triage" })).to_string()).await;
    assert_eq!(status, 200);
    assert_eq!(last_messages(&up)[0]["content"], "Kept v3.");
    let (_, t) =
        raw(&client, Method::GET, &format!("http://{}/admin/prompts/support-triage", gw.admin_addr), String::new())
            .await;
    assert_eq!(t["labels"]["production"]["version"], 3);
    assert_eq!(t["labels"]["production"]["set"]["source"], "admin");
    assert_eq!(t["versions"].as_array().unwrap().len(), 3);
    gw.shutdown().await;
}

#[tokio::test]
async fn template_mistakes_in_the_file_are_errors_at_their_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tollgate.yaml");
    let yaml = "providers: [{ name: mock, type: mock }]\nprompts:\n  - id: t\n    labels: { production: 4 }\n    versions:\n      - version: 1\n        messages: [{ role: user, content: \"Hi {{who}}\" }]\n      - version: 1\n        instructions: x\n";
    std::fs::write(&path, yaml).unwrap();
    let e =
        tollgate::config::reload::Live::new(tollgate::config::reload::Source::File(path.clone()), Default::default())
            .err()
            .expect("the file does not load")
            .to_string();
    let at = |line: u32| format!("{}:{line}:", path.display());
    assert!(e.contains(&at(7)) && e.contains("uses `{{who}}`, which its `variables` do not declare"), "{e}");
    assert!(e.contains(&at(8)) && e.contains("defines version 1 twice"), "{e}");
    assert!(e.contains(&at(4)) && e.contains("label `production` points at version 4"), "{e}");
}

/// `/v1/responses` hands the pipeline a chat body with its `prompt` kept,
/// so the same template renders there (the API writes `version` as a string).
#[tokio::test]
async fn the_responses_api_renders_the_same_template() {
    let up = MockUpstream::start().await;
    let h = Harness::start(&prompts_config(&up)).await;
    let body = json!({
        "model": "up/gpt-4o-mini",
        "input": "hello",
        "prompt": { "id": "support-triage", "version": "2", "variables": { "ticket": "VPN" } },
    });
    let r = h.send(Method::POST, &h.url("/v1/responses"), Some(MASTER), &[], body.to_string()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let messages = last_messages(&up);
    assert_eq!(messages[0], json!({ "role": "system", "content": "Triage v2." }));
    assert_eq!(messages[1], json!({ "role": "user", "content": "New ticket: VPN" }));
    assert_eq!(messages[2]["role"], "user", "then the request's own input: {messages}");
    assert!(messages[2].to_string().contains("hello"), "{messages}");

    let body = json!({ "model": "up/gpt-4o-mini", "input": "x", "prompt": { "id": "two-vars" } });
    let r = h.send(Method::POST, &h.url("/v1/responses"), Some(MASTER), &[], body.to_string()).await;
    assert_eq!((r.status.as_u16(), r.json()["error"]["code"].as_str()), (400, Some("prompt_variables_missing")));
}
