//! Stages 7 and 11: the guardrail hooks. Every governed call passes its
//! content through the hooks of its kind — a model call `llm_input` before
//! the upstream call and `llm_output` after it; a tool call `mcp_tool_pre`
//! and `mcp_tool_post` — through this one runner, so a guardrail behaves the
//! same on every protocol.
//!
//! On a hook: the org-wide guardrails (`guardrails.enforce`) and the ones
//! the request added (`x-tollgate-guardrails`) run — mutators first, in
//! order, each on the previous one's output; then validators, concurrently,
//! on what will actually be sent. Every decision is recorded (log entry,
//! metrics, the `x-tollgate-guardrails` response header, an event for a
//! block); the matched text never is.

use std::borrow::Cow;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use detectors::redact::Placeholders;
use http::HeaderMap;
use serde_json::Value;

use super::Admission;
use crate::config::file::{GuardrailAction, GuardrailMode, GuardrailType};
use crate::error::{GatewayError, RequestError};
pub use crate::guardrails::Hook;
use crate::guardrails::{Check, Guardrail, Guardrails, Shape, Source, content};
use crate::reqlog::entry::GuardrailLog;

/// The request header that adds guardrails to one request.
pub const HEADER: &str = "x-tollgate-guardrails";

/// What one guardrail concluded on one hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Pass,
    /// Failed in `audit` mode: recorded, not acted on.
    Flagged,
    /// A mutator rewrote the content.
    Mutated,
    Blocked,
    /// The guardrail itself failed (or timed out) and the call went on.
    Error,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Flagged => "flagged",
            Outcome::Mutated => "mutated",
            Outcome::Blocked => "blocked",
            Outcome::Error => "error",
        }
    }
}

/// Decisions of one call; shared with a guarded stream, which adds its
/// own after the response headers have gone.
pub type Decisions = Arc<Mutex<Vec<GuardrailLog>>>;

/// The guardrail state of one call.
#[derive(Debug, Default)]
pub struct GuardState {
    /// Added by the request's header, per hook.
    pub requested: [Vec<Arc<Guardrail>>; 4],
    pub decisions: Decisions,
    /// Placeholders a `pii` mutator handed out on this call.
    pub placeholders: Placeholders,
    /// Put the placeholders' values back into the answer.
    pub restore: bool,
    /// This call is the gateway's own `llm_judge` call: not judged again.
    pub judge_call: bool,
}

impl GuardState {
    /// Every non-pass outcome, as the response header carries it.
    pub fn header(&self) -> Option<String> {
        let d = self.decisions.lock().ok()?;
        let parts: Vec<String> =
            d.iter().filter(|x| x.outcome != "pass").map(|x| format!("{}={}", x.name, x.outcome)).collect();
        (!parts.is_empty()).then(|| parts.join(", "))
    }
}

/// What a guardrail may know of the call besides its content, owned so a
/// stream's guard can keep it after the handler has returned. Built only
/// when a hook has guardrails to run.
#[derive(Clone)]
pub struct CallView {
    pub id: String,
    pub principal: Option<Arc<crate::identity::Principal>>,
    pub metadata: std::collections::BTreeMap<String, String>,
    /// What the client asked for (`<model>`, `<server>/<tool>`, `<agent>`).
    pub requested: String,
    /// `Model`, `Tool` or `Agent`.
    pub resource_type: &'static str,
    pub shared: Arc<crate::state::Shared>,
    pub decisions: Decisions,
}

impl CallView {
    pub fn of(adm: &Admission) -> CallView {
        CallView {
            id: adm.id.clone(),
            principal: adm.principal.clone(),
            metadata: adm.metadata.clone(),
            requested: adm.requested.clone(),
            resource_type: match &adm.resource {
                Some(super::Resource::Tool(_)) => "Tool",
                Some(super::Resource::Agent(_)) => "Agent",
                _ => "Model",
            },
            shared: adm.shared.clone(),
            decisions: adm.guard.decisions.clone(),
        }
    }

    fn subject(&self) -> Option<&str> {
        self.principal.as_ref().map(|p| p.id.as_str())
    }
}

/// Reads `x-tollgate-guardrails` (`{"llm_input": ["name"], …}`): an unknown
/// hook or guardrail name is the client's mistake, named in a 400.
pub fn requested(all: &Guardrails, headers: &HeaderMap) -> Result<[Vec<Arc<Guardrail>>; 4], RequestError> {
    let mut out: [Vec<Arc<Guardrail>>; 4] = Default::default();
    let Some(raw) = headers.get(HEADER) else { return Ok(out) };
    let bad = |m: String| RequestError::InvalidHeader { header: HEADER, message: m };
    let text = raw.to_str().map_err(|_| bad("is not valid UTF-8".into()))?;
    let parsed: serde_json::Map<String, Value> = serde_json::from_str(text).map_err(|_| {
        bad(r#"must be a JSON object of lists per hook, e.g. {"llm_input": ["pii"], "llm_output": ["secrets"]}"#.into())
    })?;
    for (hook, names) in parsed {
        let h = Hook::parse(&hook).ok_or_else(|| {
            bad(format!("`{hook}` is not a hook; use llm_input, llm_output, mcp_tool_pre or mcp_tool_post"))
        })?;
        let names = names.as_array().ok_or_else(|| bad(format!("`{hook}` must be a list of guardrail names")))?;
        for n in names {
            let n = n.as_str().ok_or_else(|| bad(format!("`{hook}` must be a list of guardrail names")))?;
            let g = all.by_name.get(n).ok_or_else(|| bad(format!("no guardrail named `{n}` is defined")))?;
            out[h.index()].push(g.clone());
        }
    }
    Ok(out)
}

/// The guardrails in force on `hook`: org-wide first, then the request's
/// own (a request can add, never remove).
pub fn active(adm: &Admission, hook: Hook) -> Vec<Arc<Guardrail>> {
    let org = &adm.snapshot.guardrails.enforce[hook.index()];
    let mine = &adm.guard.requested[hook.index()];
    let mut out: Vec<Arc<Guardrail>> = Vec::with_capacity(org.len() + mine.len());
    for g in org.iter().chain(mine) {
        if out.iter().any(|x| x.name == g.name) || (adm.guard.judge_call && g.kind == GuardrailType::LlmJudge) {
            continue;
        }
        out.push(g.clone());
    }
    out
}

/// Runs the guardrails in force on `hook` over `content` (the protocol's
/// JSON document of `shape`); returns the content to send on — rewritten
/// by a mutator, or with placeholders restored on an output hook — or the
/// refusal.
pub async fn run<'c>(
    adm: &mut Admission,
    hook: Hook,
    shape: Shape,
    content: Cow<'c, [u8]>,
) -> Result<Cow<'c, [u8]>, GatewayError> {
    let active = active(adm, hook);
    let restore = hook == Hook::LlmOutput && adm.guard.restore && !adm.guard.placeholders.is_empty();
    if active.is_empty() && !restore {
        return Ok(content);
    }
    // A body that is not JSON has no texts a guardrail could read.
    let Ok(mut doc) = serde_json::from_slice::<Value>(&content) else { return Ok(content) };
    let mut changed = check(adm, hook, shape, &mut doc, &active).await?;
    if restore {
        for (_, t) in content::texts(&mut doc, shape) {
            if let Cow::Owned(back) = adm.guard.placeholders.restore(t) {
                *t = back;
                changed = true;
            }
        }
    }
    if !changed {
        return Ok(content);
    }
    Ok(Cow::Owned(serde_json::to_vec(&doc).unwrap_or_else(|_| content.to_vec())))
}

/// Mutators in order, then validators together, over `doc`; true when a
/// mutator rewrote it.
pub async fn check(
    adm: &mut Admission,
    hook: Hook,
    shape: Shape,
    doc: &mut Value,
    active: &[Arc<Guardrail>],
) -> Result<bool, GatewayError> {
    let view = CallView::of(adm);
    let mut changed = false;
    let mut blocked: Option<String> = None;
    for g in active.iter().filter(|g| g.action == GuardrailAction::Mutate) {
        let started = Instant::now();
        let verdict = if g.mode == GuardrailMode::Audit {
            // Audit records what it would have done and leaves the content alone.
            validate(&view, g, hook, shape, &mut doc.clone()).await
        } else {
            mutate(&view, &mut adm.guard.placeholders, g, hook, shape, doc).await
        };
        if verdict == Verdict::Mutated {
            changed = true;
            if g.kind == GuardrailType::Pii && hook == Hook::LlmInput && matches!(&g.check, Check::Pii(p) if p.restore)
            {
                adm.guard.restore = true;
            }
        }
        if decide(&view, g, hook, verdict, started.elapsed()) {
            blocked.get_or_insert_with(|| g.name.clone());
            break;
        }
    }
    if blocked.is_none() {
        let validators: Vec<&Arc<Guardrail>> =
            active.iter().filter(|g| g.action == GuardrailAction::Validate).collect();
        // In-process checks take microseconds: inline. External ones run together.
        let (local, remote): (Vec<_>, Vec<_>) = validators.into_iter().partition(|g| !g.check.is_external());
        let mut results = Vec::with_capacity(local.len() + remote.len());
        for g in local {
            let started = Instant::now();
            let v = validate(&view, g, hook, shape, doc).await;
            results.push((g, v, started.elapsed()));
        }
        if !remote.is_empty() {
            let shared = &view;
            let snapshot = doc.clone();
            let futures = remote.into_iter().map(|g| {
                let mut own = snapshot.clone();
                async move {
                    let started = Instant::now();
                    let v = validate(shared, g, hook, shape, &mut own).await;
                    (g, v, started.elapsed())
                }
            });
            results.extend(futures_util::future::join_all(futures).await);
        }
        for (g, v, took) in results {
            if decide(&view, g, hook, v, took) {
                blocked.get_or_insert_with(|| g.name.clone());
            }
        }
    }
    match blocked {
        Some(guardrail) => Err(GatewayError::GuardrailBlocked { guardrail, hook: hook.as_str() }),
        None => Ok(changed),
    }
}

/// What running one guardrail found, before its mode is applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    Fail(String),
    Mutated,
    Error(String),
}

/// Applies the mode, records the decision; true when the call must stop.
pub fn decide(view: &CallView, g: &Guardrail, hook: Hook, v: Verdict, took: Duration) -> bool {
    let (outcome, reason, stop) = match v {
        Verdict::Pass => (Outcome::Pass, None, false),
        Verdict::Mutated => (Outcome::Mutated, None, false),
        Verdict::Fail(r) if g.mode == GuardrailMode::Audit => (Outcome::Flagged, Some(r), false),
        Verdict::Fail(r) => (Outcome::Blocked, Some(r), true),
        Verdict::Error(e) if g.mode == GuardrailMode::Strict => {
            (Outcome::Blocked, Some(format!("guardrail error: {e}")), true)
        }
        Verdict::Error(e) => (Outcome::Error, Some(e), false),
    };
    record(view, &g.name, hook, outcome, reason, took);
    stop
}

/// One decision into the log entry, the metrics and (for a block) an event.
pub fn record(view: &CallView, name: &str, hook: Hook, outcome: Outcome, reason: Option<String>, took: Duration) {
    let m = &view.shared.metrics;
    m.guardrail_decisions
        .get_or_create(&crate::metrics::GuardrailLabels {
            guardrail: name.to_string(),
            hook: hook.as_str(),
            outcome: outcome.as_str(),
        })
        .inc();
    m.guardrail_duration
        .get_or_create(&crate::metrics::GuardrailTimeLabels { guardrail: name.to_string(), hook: hook.as_str() })
        .observe(took.as_secs_f64());
    if outcome == Outcome::Blocked {
        view.shared.events.publish(crate::events::Event {
            kind: "guardrail_blocked",
            id: crate::events::new_id(),
            time: crate::budgets::period::format_utc(
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()),
            ),
            data: serde_json::json!({
                "guardrail": name,
                "hook": hook.as_str(),
                "request_id": view.id,
                "subject": view.subject(),
                "requested": view.requested,
                "metadata": view.metadata,
                "reason": reason,
            }),
        });
    }
    if let Ok(mut d) = view.decisions.lock() {
        d.push(GuardrailLog {
            name: name.to_string(),
            hook: hook.as_str().to_string(),
            outcome: outcome.as_str().to_string(),
            duration_us: took.as_micros() as u64,
            reason,
        });
    }
}

/// A validator over `doc`.
pub async fn validate(view: &CallView, g: &Guardrail, hook: Hook, shape: Shape, doc: &mut Value) -> Verdict {
    if let Some(found) = text_findings(g, doc, shape) {
        return if found.is_empty() { Verdict::Pass } else { Verdict::Fail(crate::guardrails::reason(&found)) };
    }
    match &g.check {
        Check::MaxSize(m) => match m.check(content::text_len(doc, shape)) {
            Ok(()) => Verdict::Pass,
            Err(r) => Verdict::Fail(r),
        },
        Check::JsonSchema(s) => match s.check(doc, shape) {
            Ok(()) => Verdict::Pass,
            Err(r) => Verdict::Fail(r),
        },
        Check::Cedar(c) => match c.check(&cedar_input(view, hook, shape, doc)) {
            Ok(Ok(())) => Verdict::Pass,
            Ok(Err(r)) => Verdict::Fail(r),
            Err(e) => Verdict::Error(e),
        },
        Check::Webhook(w) => match timed(g, w.call(&webhook_client(view, g), webhook_body(view, g, hook, doc))).await {
            Ok(crate::guardrails::webhook::Outcome::Pass(_)) => Verdict::Pass,
            Ok(crate::guardrails::webhook::Outcome::Block(r)) => Verdict::Fail(r),
            Err(e) => Verdict::Error(e),
        },
        Check::LlmJudge(j) => {
            let text = joined(doc, shape);
            match timed(g, j.ask(&view.shared.loopback, &g.name, &text)).await {
                Ok(Ok(())) => Verdict::Pass,
                Ok(Err(r)) => Verdict::Fail(r),
                Err(e) => Verdict::Error(e),
            }
        }
        // The text checks answered above.
        Check::Pii(_) | Check::Secrets(_) | Check::PromptInjection(_) | Check::DenyList(_) | Check::Regex(_) => {
            Verdict::Pass
        }
    }
}

/// A mutator over `doc`, rewriting it in place.
pub async fn mutate(
    view: &CallView,
    placeholders: &mut Placeholders,
    g: &Guardrail,
    hook: Hook,
    shape: Shape,
    doc: &mut Value,
) -> Verdict {
    if let Check::Webhook(w) = &g.check {
        let body = webhook_body(view, g, hook, doc);
        return match timed(g, w.call(&webhook_client(view, g), body)).await {
            Ok(crate::guardrails::webhook::Outcome::Pass(Some(new))) if new != *doc => {
                *doc = new;
                Verdict::Mutated
            }
            Ok(crate::guardrails::webhook::Outcome::Pass(_)) => Verdict::Pass,
            Ok(crate::guardrails::webhook::Outcome::Block(r)) => Verdict::Fail(r),
            Err(e) => Verdict::Error(e),
        };
    }
    let mut any = false;
    for (source, text) in content::texts(doc, shape) {
        if let Some(new) = rewrite(g, text, source, placeholders) {
            *text = new;
            any = true;
        }
    }
    if any { Verdict::Mutated } else { Verdict::Pass }
}

/// A text mutator on one text: the rewritten text, if anything was found.
/// `pii` hands out placeholders; the others mask.
pub fn rewrite(g: &Guardrail, text: &str, source: Source, placeholders: &mut Placeholders) -> Option<String> {
    let found = detectors::merge_overlapping(g.check.findings(text, source)?);
    if found.is_empty() {
        return None;
    }
    Some(match &g.check {
        Check::Pii(_) => placeholders.redact(text, &found).into_owned(),
        _ => {
            let mut out = String::with_capacity(text.len());
            let mut at = 0;
            for f in &found {
                out.push_str(&text[at..f.start]);
                out.push_str(&crate::guardrails::mask(f.kind));
                at = f.end;
            }
            out.push_str(&text[at..]);
            out
        }
    })
}

/// Findings of a text check over every text of `doc`; `None` for the
/// other types.
pub fn text_findings(g: &Guardrail, doc: &mut Value, shape: Shape) -> Option<Vec<detectors::Finding>> {
    if !g.check.is_text() {
        return None;
    }
    let mut all = Vec::new();
    for (source, text) in content::texts(doc, shape) {
        all.extend(g.check.findings(text, source)?);
    }
    Some(all)
}

async fn timed<T>(g: &Guardrail, f: impl Future<Output = Result<T, String>>) -> Result<T, String> {
    match g.timeout {
        Some(limit) => tokio::time::timeout(limit, f)
            .await
            .unwrap_or_else(|_| Err(format!("timed out after {}ms", limit.as_millis()))),
        None => f.await,
    }
}

fn webhook_client(view: &CallView, g: &Guardrail) -> crate::providers::http::HttpClient {
    view.shared.upstreams.client(g.timeout.unwrap_or(Duration::from_secs(2)))
}

fn webhook_body(view: &CallView, g: &Guardrail, hook: Hook, doc: &Value) -> Value {
    serde_json::json!({
        "hook": hook.as_str(),
        "guardrail": g.name,
        "request_id": view.id,
        "subject": view.subject(),
        "metadata": view.metadata,
        "content": doc,
    })
}

fn cedar_input<'a>(
    view: &'a CallView,
    hook: Hook,
    shape: Shape,
    doc: &Value,
) -> crate::guardrails::cedar::CedarInput<'a> {
    let p = view.principal.as_deref();
    let mut context = serde_json::json!({
        "subject": {
            "id": p.map_or("", |p| p.id.as_str()),
            "team": p.and_then(|p| p.team.as_deref()).unwrap_or(""),
            "groups": p.map(|p| p.groups.clone()).unwrap_or_default(),
        },
        "metadata": view.metadata,
    });
    if shape == Shape::ToolArgs {
        context["arguments"] = doc.clone();
    }
    crate::guardrails::cedar::CedarInput {
        subject: p.map_or("anonymous", |p| p.id.as_str()),
        hook: hook.as_str(),
        resource_type: view.resource_type,
        resource: &view.requested,
        context,
    }
}

/// Every text of `doc`, one per paragraph: what an external judge reads.
pub fn joined(doc: &mut Value, shape: Shape) -> String {
    content::texts(doc, shape).iter().map(|(_, t)| t.as_str()).collect::<Vec<_>>().join("\n\n")
}
