//! The shared admission path for the three kinds of call: a tool call and
//! an agent call go through the same authenticate → metadata → authorize →
//! rate limits → budget stages as a model call, with allowlists, `when`
//! conditions and units for their kind, and a request-log entry of their kind.

use std::sync::Arc;

use http::{HeaderMap, HeaderValue};
use tollgate::admission::{Admission, Requested};
use tollgate::config::load::load_text;
use tollgate::error::GatewayError;
use tollgate::limits::Estimate;
use tollgate::resource::Kind;
use tollgate::state::Shared;

const CONFIG: &str = r#"
store: { url: "memory://" }
auth:
  master_key: "master-key-0001"
  keys:
    - name: agent
      key: "agent-key-0001"
      tools: ["github/*"]
      agents: ["research-*"]
    - name: payments
      key: "payments-key-01"
      metadata: { team: payments }
  teams:
    payments: { tools: ["files/read_*"] }
providers:
  - { name: local, type: mock, models: [{ name: echo }] }
rate_limits:
  - id: github-calls
    when: { tools: ["github/*"] }
    limit_by: [subject, tool]
    unit: tool_calls_per_minute
    limit: 2
  - id: all-requests
    unit: requests_per_minute
    limit: 100
  - id: agent-calls
    unit: agent_calls_per_hour
    limit: 1
budgets:
  - id: spend
    unit: cost_per_day
    limit: 0.000001
"#;

struct Env {
    snapshot: Arc<tollgate::config::snapshot::Snapshot>,
    shared: Arc<Shared>,
}

fn env() -> Env {
    let shared = Arc::new(Shared::default());
    let snapshot = load_text(CONFIG, "test", 1, &shared, Default::default()).unwrap_or_else(|e| panic!("{e}"));
    Env { snapshot: Arc::new(snapshot), shared }
}

fn headers(key: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("authorization", HeaderValue::from_str(&format!("Bearer {key}")).unwrap());
    h
}

/// Runs admission for one call; the admission (with its holds) on success.
async fn admit(env: &Env, key: &str, kind: Kind, what: Requested<'_>) -> Result<Admission, GatewayError> {
    let h = headers(key);
    let mut adm = Admission::new("req".into(), kind, env.snapshot.clone(), env.shared.clone(), &h);
    adm.authenticate(&h).await?;
    adm.admit(&h, what, &Estimate::default())?;
    Ok(adm)
}

fn code(e: &GatewayError) -> (u16, &'static str) {
    let (status, _, code, _) = e.parts();
    (status.as_u16(), code.unwrap_or("-"))
}

const fn tool<'a>(server: &'a str, tool: &'a str) -> Requested<'a> {
    Requested::Tool { server, tool }
}

#[tokio::test]
async fn tool_and_agent_allowlists_apply_like_model_allowlists() {
    let env = env();
    assert!(admit(&env, "agent-key-0001", Kind::Mcp, tool("github", "search_issues")).await.is_ok());
    let e = admit(&env, "agent-key-0001", Kind::Mcp, tool("files", "delete")).await.err().unwrap();
    assert_eq!(code(&e), (403, "tool_not_allowed"));
    assert!(e.to_string().contains("`files/delete`"), "{e}");

    assert!(admit(&env, "agent-key-0001", Kind::A2a, Requested::Agent("research-bot")).await.is_ok());
    let e = admit(&env, "agent-key-0001", Kind::A2a, Requested::Agent("billing")).await.err().unwrap();
    assert_eq!(code(&e), (403, "agent_not_allowed"));

    // A team's tool list applies to its members; it says nothing about models.
    assert!(admit(&env, "payments-key-01", Kind::Mcp, tool("files", "read_file")).await.is_ok());
    let e = admit(&env, "payments-key-01", Kind::Mcp, tool("files", "write_file")).await.err().unwrap();
    assert_eq!(code(&e), (403, "tool_not_allowed"));
    // The master key has no lists.
    assert!(admit(&env, "master-key-0001", Kind::Mcp, tool("anything", "at_all")).await.is_ok());
}

#[tokio::test]
async fn tool_call_units_count_tool_calls_only() {
    let env = env();
    for _ in 0..2 {
        admit(&env, "agent-key-0001", Kind::Mcp, tool("github", "search_issues")).await.unwrap();
    }
    let e = admit(&env, "agent-key-0001", Kind::Mcp, tool("github", "search_issues")).await.err().unwrap();
    assert_eq!(code(&e), (429, "rate_limit_exceeded"));
    assert!(e.to_string().contains("github-calls") && e.to_string().contains("tool calls"), "{e}");
    // The counter is per tool (`limit_by: [subject, tool]`).
    admit(&env, "agent-key-0001", Kind::Mcp, tool("github", "get_issue")).await.unwrap();

    // A model call is not counted by a tool unit, and a tool call not by a
    // model unit (`requests_per_minute` with no `when`).
    let model = admit(&env, "master-key-0001", Kind::Model, Requested::Model("local/echo")).await;
    let counters = env.shared.counters.snapshot();
    let used = |prefix: &str| counters.iter().filter(|(k, _)| k.starts_with(prefix)).map(|(_, n)| n).sum::<u64>();
    assert_eq!(used("all-requests@"), 1, "{counters:?}");
    assert_eq!(used("github-calls@"), 3, "{counters:?}");
    // The tiny cost budget holds the model call (or refuses it) but never a tool call.
    match model {
        Ok(adm) => assert!(!adm.holds.budget.is_empty()),
        Err(e) => assert_eq!(code(&e).1, "budget_exceeded"),
    }
}

#[tokio::test]
async fn agent_units_and_budgets_leave_tool_calls_alone() {
    let env = env();
    let adm = admit(&env, "agent-key-0001", Kind::A2a, Requested::Agent("research-bot")).await.unwrap();
    assert!(adm.holds.budget.is_empty(), "a budget never holds an agent call");
    let e = admit(&env, "agent-key-0001", Kind::A2a, Requested::Agent("research-bot")).await.err().unwrap();
    assert_eq!(code(&e), (429, "rate_limit_exceeded"));
    let adm = admit(&env, "agent-key-0001", Kind::Mcp, tool("github", "search_issues")).await.unwrap();
    assert!(adm.holds.budget.is_empty());
}

#[tokio::test]
async fn a_tool_call_logs_as_kind_mcp() {
    let env = env();
    let h = headers("agent-key-0001");
    let mut adm = Admission::new("req-1".into(), Kind::Mcp, env.snapshot.clone(), env.shared.clone(), &h);
    adm.authenticate(&h).await.unwrap();
    adm.admit(&h, tool("github", "search_issues"), &Estimate::default()).unwrap();
    let e = tollgate::admission::record::entry(&adm, 200, None, std::time::Duration::from_millis(3));
    assert_eq!(
        (e.kind, e.requested_model.as_str(), e.subject.as_str()),
        (Kind::Mcp, "github/search_issues", "key:agent")
    );
    assert_eq!(serde_json::to_value(&e).unwrap()["kind"], "mcp");
}

#[test]
fn unknown_units_and_transports_are_config_errors() {
    let shared = Shared::default();
    let bad = |text: &str| load_text(text, "t", 1, &shared, Default::default()).err().map(|e| e.to_string());
    let e = bad("rate_limits: [{ id: x, unit: tool_calls_per_week, limit: 1 }]").unwrap();
    assert!(e.contains("tool_calls_per_week"), "{e}");
    let e = bad("mcp_servers: [{ name: gh, url: \"http://a/mcp\", command: npx }]").unwrap();
    assert!(e.contains("more than one of `url`, `sse_url` and `command`"), "{e}");
    let e = bad("mcp_servers: [{ name: gh }]").unwrap();
    assert!(e.contains("needs `url`, `sse_url` or `command`"), "{e}");
    let e = bad("guardrails: { definitions: [{ name: g, type: telepathy }] }").unwrap();
    assert!(e.contains("telepathy"), "{e}");
    let e = bad("guardrails: { definitions: [{ name: g, type: pii, mode: lenient }] }").unwrap();
    assert!(e.contains("lenient"), "{e}");
    let ok = "guardrails: { definitions: [{ name: g, type: pii, action: mutate, mode: strict }] }\n\
              mcp_servers: [{ name: gh, url: \"http://a/mcp\", auth: { type: static_header, header: authorization, value: x } }]";
    assert!(bad(ok).is_none(), "{:?}", bad(ok));
}

/// Tool and agent lists set through the admin API — on a virtual key and
/// on a team overlay — are what admission enforces on the running gateway.
#[tokio::test]
async fn admin_api_tool_lists_reach_admission() {
    use crate::common::*;
    use http::Method;
    use serde_json::json;
    let up = testkit::MockUpstream::start().await;
    let h = Harness::start(&config(&up.base_url(), "")).await;
    let post = |path: &str, method: Method, body: serde_json::Value| {
        let url = h.admin_url(path);
        let h = &h;
        async move { h.send(method, &url, Some(MASTER), &[], body.to_string()).await }
    };
    let r = post(
        "/admin/keys",
        Method::POST,
        json!({ "name": "triage", "team": "ops", "tools": ["github/*"], "agents": ["research-*"] }),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let secret = r.json()["key"].as_str().unwrap().to_string();
    let listed = post("/admin/keys", Method::GET, serde_json::Value::Null).await.json();
    assert_eq!(listed["data"][0]["tools"], json!(["github/*"]));
    assert_eq!(listed["data"][0]["agents"], json!(["research-*"]));
    // A team entry with tools only: models stay unrestricted for the team.
    let r = post("/admin/teams/ops", Method::PUT, json!({ "tools": ["github/search_*"] })).await;
    assert!(r.status.is_success(), "{}", r.text());

    let env = Env { snapshot: h.live.snapshot(), shared: h.live.shared() };
    assert!(admit(&env, &secret, Kind::Mcp, tool("github", "search_issues")).await.is_ok());
    // The key allows it, the team does not.
    let e = admit(&env, &secret, Kind::Mcp, tool("github", "delete_repo")).await.err().unwrap();
    assert_eq!(code(&e), (403, "tool_not_allowed"));
    let e = admit(&env, &secret, Kind::A2a, Requested::Agent("billing")).await.err().unwrap();
    assert_eq!(code(&e), (403, "agent_not_allowed"));
    // Models: no list on the key or the team, so the chat goes through.
    assert_eq!(h.chat(Some(&secret), &json!({ "model": "mock/echo", "messages": user("x") })).await.status, 200);
}
