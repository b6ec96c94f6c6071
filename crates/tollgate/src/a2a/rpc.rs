//! What the gateway reads of A2A traffic, in both generations of the
//! protocol: v0.3 (`message/send`, `kind`-tagged objects, `completed`) and
//! v1.0 (`SendMessage`, wrapper objects such as `{"task": …}`,
//! `TASK_STATE_COMPLETED`). Everything else passes through unread.

use serde_json::{Value, json};

/// JSON-RPC error codes: the standard ones and A2A's.
pub const PARSE_ERROR: i64 = -32700;
pub const INVALID_REQUEST: i64 = -32600;
pub const INTERNAL_ERROR: i64 = -32603;
/// The gateway refused the call (identity, policy, guardrail): a server
/// error in the implementation-defined range, with `data.code` saying which.
pub const REFUSED: i64 = -32001;
/// The upstream agent could not be reached or answered with something that
/// is not A2A.
pub const UPSTREAM_ERROR: i64 = -32002;

/// What a request does, whichever name or path carried it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Send,
    Stream,
    GetTask,
    ListTasks,
    Cancel,
    Subscribe,
    PushSet,
    PushGet,
    PushList,
    PushDelete,
    ExtendedCard,
    /// A method the gateway does not know (an extension's): relayed as is.
    Other,
}

impl Op {
    /// As metrics label it.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Send => "send",
            Op::Stream => "stream",
            Op::GetTask => "get_task",
            Op::ListTasks => "list_tasks",
            Op::Cancel => "cancel",
            Op::Subscribe => "subscribe",
            Op::PushSet => "push_config_set",
            Op::PushGet => "push_config_get",
            Op::PushList => "push_config_list",
            Op::PushDelete => "push_config_delete",
            Op::ExtendedCard => "extended_card",
            Op::Other => "other",
        }
    }

    /// Answered with an SSE stream.
    pub fn streams(self) -> bool {
        matches!(self, Op::Stream | Op::Subscribe)
    }

    /// Carries a message to the agent: what input guardrails read.
    pub fn sends(self) -> bool {
        matches!(self, Op::Send | Op::Stream)
    }
}

/// The protocol generation a method name belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Generation {
    V03,
    V10,
}

/// A JSON-RPC method name: its operation and generation (`None` for a
/// name of neither).
pub fn method(name: &str) -> (Op, Option<Generation>) {
    use Generation::*;
    match name {
        "message/send" => (Op::Send, Some(V03)),
        "message/stream" => (Op::Stream, Some(V03)),
        "tasks/get" => (Op::GetTask, Some(V03)),
        "tasks/list" => (Op::ListTasks, Some(V03)),
        "tasks/cancel" => (Op::Cancel, Some(V03)),
        "tasks/resubscribe" => (Op::Subscribe, Some(V03)),
        "tasks/pushNotificationConfig/set" => (Op::PushSet, Some(V03)),
        "tasks/pushNotificationConfig/get" => (Op::PushGet, Some(V03)),
        "tasks/pushNotificationConfig/list" => (Op::PushList, Some(V03)),
        "tasks/pushNotificationConfig/delete" => (Op::PushDelete, Some(V03)),
        "agent/getAuthenticatedExtendedCard" => (Op::ExtendedCard, Some(V03)),
        "SendMessage" => (Op::Send, Some(V10)),
        "SendStreamingMessage" => (Op::Stream, Some(V10)),
        "GetTask" => (Op::GetTask, Some(V10)),
        "ListTasks" => (Op::ListTasks, Some(V10)),
        "CancelTask" => (Op::Cancel, Some(V10)),
        "SubscribeToTask" => (Op::Subscribe, Some(V10)),
        "CreateTaskPushNotificationConfig" => (Op::PushSet, Some(V10)),
        "GetTaskPushNotificationConfig" => (Op::PushGet, Some(V10)),
        "ListTaskPushNotificationConfigs" => (Op::PushList, Some(V10)),
        "DeleteTaskPushNotificationConfig" => (Op::PushDelete, Some(V10)),
        "GetExtendedAgentCard" => (Op::ExtendedCard, Some(V10)),
        _ => (Op::Other, None),
    }
}

/// A REST (HTTP+JSON) request: its operation and the task it names, from
/// the path below the interface's base. v1.0 paths (`/message:send`,
/// `/tasks/{id}:cancel`) and v0.3 ones (the same under `/v1`) alike; a
/// leading tenant segment is allowed.
pub fn rest(method: &http::Method, path: &str) -> (Op, Option<String>) {
    let segs: Vec<&str> = path.trim_matches('/').split('/').filter(|s| !s.is_empty()).collect();
    let get = method == http::Method::GET;
    let post = method == http::Method::POST;
    // Operations are named by the path's tail, so a tenant or `v1` prefix does not matter.
    let last = segs.last().copied().unwrap_or("");
    if post && last == "message:send" {
        return (Op::Send, None);
    }
    if post && last == "message:stream" {
        return (Op::Stream, None);
    }
    if last == "extendedAgentCard" || (get && last == "card") {
        return (Op::ExtendedCard, None);
    }
    if let Some(i) = segs.iter().rposition(|s| *s == "tasks" || s.starts_with("tasks:")) {
        let rest = &segs[i + 1..];
        let id = rest.first().map(|s| s.split(':').next().unwrap_or(s).to_string());
        return match rest {
            [] if get => (Op::ListTasks, None),
            [t] if post && t.ends_with(":cancel") => (Op::Cancel, id),
            [t] if t.ends_with(":subscribe") => (Op::Subscribe, id),
            [_] if get => (Op::GetTask, id),
            [_, p] if p.starts_with("pushNotificationConfigs") && post => (Op::PushSet, id),
            [_, p] if p.starts_with("pushNotificationConfigs") && get => (Op::PushList, id),
            [_, p, _] if p.starts_with("pushNotificationConfigs") && get => (Op::PushGet, id),
            [_, p, _] if p.starts_with("pushNotificationConfigs") && method == http::Method::DELETE => {
                (Op::PushDelete, id)
            }
            _ => (Op::Other, id),
        };
    }
    (Op::Other, None)
}

/// The task a request names: `id` (get, cancel, subscribe), a task's
/// `taskId`, or the message's `taskId` (a follow-up message); v1.0's
/// resource name `tasks/{id}` too.
pub fn request_task(params: &Value) -> Option<String> {
    let s = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_string);
    s(params.get("id"))
        .or_else(|| s(params.get("taskId")))
        .or_else(|| s(params.get("message").and_then(|m| m.get("taskId"))))
        .or_else(|| {
            params.get("name").and_then(Value::as_str).and_then(|n| n.strip_prefix("tasks/")).map(|r| {
                r.split('/').next().unwrap_or(r).to_string()
            })
        })
}

/// The task a result or stream event is about, and its state when it says:
/// a task (`id`, `status.state`), a status or artifact update (`taskId`),
/// or a message (`taskId`), bare (v0.3) or wrapped (v1.0 `{"task": …}`).
pub fn result_task(result: &Value) -> (Option<String>, Option<String>) {
    let inner = ["task", "statusUpdate", "artifactUpdate", "message"]
        .iter()
        .find_map(|k| result.get(*k))
        .unwrap_or(result);
    let is_task = inner.get("kind").and_then(Value::as_str) == Some("task")
        || (inner.get("status").is_some() && inner.get("taskId").is_none());
    let id = if is_task { inner.get("id") } else { inner.get("taskId") }
        .and_then(Value::as_str)
        .map(str::to_string);
    let state = inner.get("status").and_then(|s| s.get("state")).and_then(Value::as_str).map(state_name);
    (id, state)
}

/// One vocabulary for task states in logs and metrics: v1.0's
/// `TASK_STATE_INPUT_REQUIRED` and v0.3's `input-required` are both
/// `input-required`.
pub fn state_name(s: &str) -> String {
    s.strip_prefix("TASK_STATE_").unwrap_or(s).to_ascii_lowercase().replace('_', "-")
}

pub fn error_body(code: i64, message: impl Into<String>, data: Option<Value>) -> Value {
    let mut e = json!({ "code": code, "message": message.into() });
    if let Some(d) = data {
        e["data"] = d;
    }
    e
}

pub fn error(id: Value, code: i64, message: impl Into<String>, data: Option<Value>) -> Value {
    json!({ "jsonrpc": "2.0", "id": id, "error": error_body(code, message, data) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_generations_of_method_names_are_the_same_operations() {
        assert_eq!(method("message/send"), (Op::Send, Some(Generation::V03)));
        assert_eq!(method("SendMessage"), (Op::Send, Some(Generation::V10)));
        assert_eq!(method("tasks/resubscribe").0, Op::Subscribe);
        assert_eq!(method("SubscribeToTask").0, Op::Subscribe);
        assert!(method("SendStreamingMessage").0.streams());
        assert_eq!(method("x/custom"), (Op::Other, None));
    }

    #[test]
    fn rest_paths_of_both_generations_and_with_a_tenant_name_their_operation() {
        let p = http::Method::POST;
        let g = http::Method::GET;
        assert_eq!(rest(&p, "/message:send"), (Op::Send, None));
        assert_eq!(rest(&p, "/v1/message:stream"), (Op::Stream, None));
        assert_eq!(rest(&p, "/acme/message:send"), (Op::Send, None));
        assert_eq!(rest(&g, "/tasks/t-1"), (Op::GetTask, Some("t-1".into())));
        assert_eq!(rest(&p, "/v1/tasks/t-1:cancel"), (Op::Cancel, Some("t-1".into())));
        assert_eq!(rest(&g, "/tasks/t-1:subscribe"), (Op::Subscribe, Some("t-1".into())));
        assert_eq!(rest(&g, "/tasks"), (Op::ListTasks, None));
        assert_eq!(rest(&p, "/tasks/t-1/pushNotificationConfigs"), (Op::PushSet, Some("t-1".into())));
        assert_eq!(rest(&http::Method::DELETE, "/tasks/t-1/pushNotificationConfigs/c"), (Op::PushDelete, Some("t-1".into())));
        assert_eq!(rest(&g, "/extendedAgentCard").0, Op::ExtendedCard);
        assert_eq!(rest(&g, "/elsewhere").0, Op::Other);
    }

    #[test]
    fn task_and_state_are_read_from_either_generation() {
        let v03 = json!({"kind": "task", "id": "t1", "contextId": "c", "status": {"state": "input-required"}});
        assert_eq!(result_task(&v03), (Some("t1".into()), Some("input-required".into())));
        let v10 = json!({"task": {"id": "t2", "status": {"state": "TASK_STATE_COMPLETED"}}});
        assert_eq!(result_task(&v10), (Some("t2".into()), Some("completed".into())));
        let upd = json!({"statusUpdate": {"taskId": "t3", "status": {"state": "TASK_STATE_WORKING"}}});
        assert_eq!(result_task(&upd), (Some("t3".into()), Some("working".into())));
        let upd03 = json!({"kind": "status-update", "taskId": "t4", "status": {"state": "canceled"}, "final": true});
        assert_eq!(result_task(&upd03), (Some("t4".into()), Some("canceled".into())));
        let msg = json!({"message": {"messageId": "m", "role": "ROLE_AGENT", "parts": []}});
        assert_eq!(result_task(&msg), (None, None));
        assert_eq!(request_task(&json!({"id": "t9"})), Some("t9".into()));
        assert_eq!(request_task(&json!({"message": {"taskId": "t8"}})), Some("t8".into()));
        assert_eq!(request_task(&json!({"name": "tasks/t7"})), Some("t7".into()));
    }
}
