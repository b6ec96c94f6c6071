//! Tasks, messages and stream events kept once, and written out in either
//! protocol generation's JSON: v1.0 (proto JSON: `ROLE_USER`,
//! `TASK_STATE_COMPLETED`, events wrapped as `{"statusUpdate": …}`, empty
//! lists left out) or v0.3 (`kind` tags, lower-case states, `final`).

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};

/// Which protocol generation a request spoke, and so how it is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Gen {
    V1,
    V03,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TaskState {
    Submitted,
    Working,
    Completed,
    Canceled,
}

impl TaskState {
    pub(crate) fn terminal(self) -> bool {
        matches!(self, TaskState::Completed | TaskState::Canceled)
    }

    fn name(self, g: Gen) -> &'static str {
        match (self, g) {
            (TaskState::Submitted, Gen::V1) => "TASK_STATE_SUBMITTED",
            (TaskState::Working, Gen::V1) => "TASK_STATE_WORKING",
            (TaskState::Completed, Gen::V1) => "TASK_STATE_COMPLETED",
            (TaskState::Canceled, Gen::V1) => "TASK_STATE_CANCELED",
            (TaskState::Submitted, Gen::V03) => "submitted",
            (TaskState::Working, Gen::V03) => "working",
            (TaskState::Completed, Gen::V03) => "completed",
            (TaskState::Canceled, Gen::V03) => "canceled",
        }
    }
}

/// A text-only message.
#[derive(Debug, Clone)]
pub(crate) struct Msg {
    pub(crate) id: String,
    pub(crate) context_id: String,
    pub(crate) task_id: Option<String>,
    pub(crate) from_agent: bool,
    pub(crate) text: String,
}

/// An artifact: one text part per chunk it was streamed in.
#[derive(Debug, Clone)]
pub(crate) struct Artifact {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) texts: Vec<String>,
}

#[derive(Debug, Clone)]
pub(crate) struct Status {
    pub(crate) state: TaskState,
    /// None while submitted: the SDK stamps only the updates after that.
    pub(crate) timestamp: Option<String>,
}

impl Status {
    pub(crate) fn new(state: TaskState) -> Status {
        let timestamp = (state != TaskState::Submitted).then(now);
        Status { state, timestamp }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Task {
    pub(crate) id: String,
    pub(crate) context_id: String,
    pub(crate) status: Status,
    pub(crate) artifacts: Vec<Artifact>,
    pub(crate) history: Vec<Msg>,
}

/// One item of a stream (v1.0 `StreamResponse`, v0.3 the `result` of an SSE event).
#[derive(Debug, Clone)]
pub(crate) enum Event {
    Task(Task),
    Message(Msg),
    Status { task_id: String, context_id: String, status: Status },
    Artifact { task_id: String, context_id: String, artifact: Artifact, append: bool, last_chunk: bool },
}

fn parts(g: Gen, texts: &[String]) -> Value {
    let part = |t: &String| match g {
        Gen::V1 => json!({ "text": t }),
        Gen::V03 => json!({ "kind": "text", "text": t }),
    };
    Value::Array(texts.iter().map(part).collect())
}

/// Adds `"kind"` for v0.3; v1.0 tells the kinds apart by the wrapping key instead.
fn tagged(g: Gen, kind: &str, mut v: Value) -> Value {
    if g == Gen::V03
        && let Some(o) = v.as_object_mut()
    {
        o.insert("kind".into(), kind.into());
    }
    v
}

pub(crate) fn message(g: Gen, m: &Msg) -> Value {
    let role = match (g, m.from_agent) {
        (Gen::V1, false) => "ROLE_USER",
        (Gen::V1, true) => "ROLE_AGENT",
        (Gen::V03, false) => "user",
        (Gen::V03, true) => "agent",
    };
    let mut v = json!({ "messageId": m.id, "contextId": m.context_id, "role": role,
        "parts": parts(g, std::slice::from_ref(&m.text)) });
    if let Some(t) = &m.task_id {
        v["taskId"] = json!(t);
    }
    tagged(g, "message", v)
}

fn status(g: Gen, s: &Status) -> Value {
    let mut v = json!({ "state": s.state.name(g) });
    if let Some(ts) = &s.timestamp {
        v["timestamp"] = json!(ts);
    }
    v
}

fn artifact(g: Gen, a: &Artifact) -> Value {
    json!({ "artifactId": a.id, "name": a.name, "parts": parts(g, &a.texts) })
}

/// A task, with at most the last `history_length` messages (0: none).
pub(crate) fn task(g: Gen, t: &Task, history_length: Option<usize>) -> Value {
    let mut o = Map::new();
    o.insert("id".into(), json!(t.id));
    o.insert("contextId".into(), json!(t.context_id));
    o.insert("status".into(), status(g, &t.status));
    if !t.artifacts.is_empty() {
        o.insert("artifacts".into(), t.artifacts.iter().map(|a| artifact(g, a)).collect());
    }
    let keep = history_length.unwrap_or(usize::MAX).min(t.history.len());
    if keep > 0 {
        o.insert("history".into(), t.history[t.history.len() - keep..].iter().map(|m| message(g, m)).collect());
    }
    tagged(g, "task", Value::Object(o))
}

/// An event as a v1.0 `StreamResponse` (also the `SendMessage` result) or
/// as the bare v0.3 object (also the `message/send` result).
pub(crate) fn event(g: Gen, e: &Event) -> Value {
    let (key, v) = match e {
        Event::Task(t) => ("task", task(g, t, None)),
        Event::Message(m) => ("message", message(g, m)),
        Event::Status { task_id, context_id, status: s } => {
            let mut v = json!({ "taskId": task_id, "contextId": context_id, "status": status(g, s) });
            if g == Gen::V03 {
                v["final"] = json!(s.state.terminal());
            }
            ("statusUpdate", tagged(g, "status-update", v))
        }
        Event::Artifact { task_id, context_id, artifact: a, append, last_chunk } => {
            let mut v = json!({ "taskId": task_id, "contextId": context_id, "artifact": artifact(g, a) });
            // proto JSON leaves false out; the v0.3 model always writes both.
            if *append || g == Gen::V03 {
                v["append"] = json!(append);
            }
            if *last_chunk || g == Gen::V03 {
                v["lastChunk"] = json!(last_chunk);
            }
            ("artifactUpdate", tagged(g, "artifact-update", v))
        }
    };
    match g {
        Gen::V1 => json!({ key: v }),
        Gen::V03 => v,
    }
}

/// Now as RFC 3339 UTC with microseconds, as the SDK writes timestamps.
pub(crate) fn now() -> String {
    let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let (days, secs) = (d.as_secs() / 86_400, d.as_secs() % 86_400);
    // Days since the epoch to a civil date (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let (era, doe) = (z / 146_097, z % 146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = era * 400 + yoe + u64::from(month <= 2);
    let (h, m, s, us) = (secs / 3600, secs / 60 % 60, secs % 60, d.subsec_micros());
    format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}.{us:06}Z")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamp_is_rfc3339_utc_with_micros() {
        let t = now();
        assert_eq!(t.len(), "2026-12-05T12:06:26.704260Z".len(), "{t}");
        assert!(t.starts_with("20") && t.ends_with('Z') && &t[10..11] == "T", "{t}");
    }

    #[test]
    fn shapes_per_generation() {
        let m = Msg { id: "m".into(), context_id: "c".into(), task_id: None, from_agent: true, text: "hi".into() };
        assert_eq!(
            event(Gen::V1, &Event::Message(m.clone())),
            json!({ "message": { "messageId": "m", "contextId": "c", "role": "ROLE_AGENT", "parts": [{ "text": "hi" }] } })
        );
        assert_eq!(
            event(Gen::V03, &Event::Message(m)),
            json!({ "kind": "message", "messageId": "m", "contextId": "c", "role": "agent",
                "parts": [{ "kind": "text", "text": "hi" }] })
        );
    }
}
