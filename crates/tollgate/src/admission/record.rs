//! Stage 13, the part every protocol shares: the request log entry's
//! identity fields, and what a refusal leaves behind — an audit record for
//! a refused credential or access, an event for a rate-limit or budget
//! refusal, and the refusal's metric label. The protocol adds its own
//! fields (a model call's attempts, tokens and cost) and its headers.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::Admission;
use crate::error::GatewayError;
use crate::reqlog::LogEntry;

/// The log entry of a call, with every protocol-neutral field set: who,
/// what kind of call, what was asked, the outcome, the config version and
/// the trace. Protocol fields are left at their defaults.
pub fn entry(adm: &Admission, status: u16, error: Option<&'static str>, total: Duration) -> LogEntry {
    let started_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
        .saturating_sub(total.as_millis() as u64);
    LogEntry {
        id: adm.id.clone(),
        kind: adm.kind,
        time: started_ms,
        subject: adm.principal.as_ref().map_or("-".into(), |p| p.id.clone()),
        metadata: adm.metadata.clone(),
        requested_model: adm.requested.clone(),
        status,
        error: error.map(str::to_string),
        total_ms: total.as_secs_f64() * 1000.0,
        config_version: adm.snapshot.version,
        trace_id: adm.trace.0.clone(),
        span_id: adm.trace.1.clone(),
        parent_span_id: adm.trace.2.clone(),
        log: adm.snapshot.log_enabled,
        guardrails: adm.guard.decisions.lock().map(|d| d.clone()).unwrap_or_default(),
        parent_id: adm.parent.clone(),
        ..LogEntry::default()
    }
}

/// Records what a refusal leaves behind and returns its metric label
/// (`rate_limit` or `budget`, with the rule id) when it has one.
pub fn refused(adm: &Admission, e: &GatewayError) -> Option<(&'static str, String)> {
    if let GatewayError::Auth(a) = e {
        let actor = adm.principal.as_ref().map_or("-", |p| p.id.as_str());
        let action = if adm.principal.is_some() { "access.refused" } else { "auth.refused" };
        adm.shared.audit.record(actor, action, &adm.requested, &a.to_string());
    }
    let (kind, label, rule, key) = match e {
        GatewayError::RateLimited(r) => ("rate_limit_hit", "rate_limit", r.rule.to_string(), r.key.clone()),
        GatewayError::BudgetExceeded(b) => ("budget_refused", "budget", b.rule.to_string(), b.key.clone()),
        _ => return None,
    };
    let event = crate::events::Event {
        kind,
        id: crate::events::new_id(),
        time: crate::budgets::period::format_utc(
            SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()),
        ),
        data: serde_json::json!({
            "rule": rule,
            "key": key,
            "subject": adm.principal.as_ref().map(|p| p.id.clone()),
            "kind": adm.kind.as_str(),
        }),
    };
    adm.shared.events.publish_throttled(&format!("{kind}|{key}"), Duration::from_secs(60), event);
    Some((label, rule))
}
