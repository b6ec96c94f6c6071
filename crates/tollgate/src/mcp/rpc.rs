//! JSON-RPC 2.0 as MCP uses it: one message per HTTP body or stdio line,
//! requests (`id` + `method`), notifications (`method`, no `id`) and
//! responses (`id` + `result` | `error`). The gateway reads only the
//! envelope; params and results pass through as they came.

use serde_json::{Value, json};

/// JSON-RPC error codes the gateway answers with.
pub const PARSE_ERROR: i64 = -32700;
pub const INVALID_REQUEST: i64 = -32600;
pub const METHOD_NOT_FOUND: i64 = -32601;
pub const INVALID_PARAMS: i64 = -32602;
pub const INTERNAL_ERROR: i64 = -32603;
/// Refusals of policy (rate limit, a quarantined tool): the implementation-defined range.
pub const REFUSED: i64 = -32000;
/// The upstream server could not be reached or did not answer.
pub const UPSTREAM_ERROR: i64 = -32001;

/// Protocol revisions negotiated with the `initialize` handshake, oldest first.
pub const HANDSHAKE_VERSIONS: [&str; 4] = ["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"];
/// The per-request (stateless) revision: no handshake, no session.
pub const MODERN_VERSION: &str = "2026-07-28";
/// What the gateway offers upstream and answers clients that ask for an unknown revision.
pub const LATEST_HANDSHAKE: &str = "2025-11-25";
/// `_meta` keys of the per-request envelope (protocol version, client info,
/// client capabilities, log level): they describe one hop, so they are
/// never passed to the next.
pub const META_PROTOCOL_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
const META_ENVELOPE_PREFIX: &str = "io.modelcontextprotocol/";
/// The answer to a request at a protocol version the server does not speak.
pub const UNSUPPORTED_PROTOCOL_VERSION: i64 = -32022;
/// Every version a client may use with the gateway.
pub const ALL_VERSIONS: [&str; 5] = ["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25", MODERN_VERSION];

/// The protocol version a request's envelope names, if any.
pub fn envelope_version(params: &Value) -> Option<&str> {
    params.pointer("/_meta").and_then(|m| m.get(META_PROTOCOL_VERSION)).and_then(Value::as_str)
}

/// Removes the per-request envelope from `_meta` (and `_meta` if that
/// leaves it empty).
pub fn strip_envelope(params: &mut Value) {
    let Some(meta) = params.get_mut("_meta").and_then(Value::as_object_mut) else { return };
    meta.retain(|k, _| !k.starts_with(META_ENVELOPE_PREFIX));
    if meta.is_empty()
        && let Some(p) = params.as_object_mut()
    {
        p.remove("_meta");
    }
}

/// A message by what it is.
#[derive(Debug)]
pub enum Msg {
    Request { id: Value, method: String, params: Value },
    Notification { method: String, params: Value },
    Response { id: Value, body: Result<Value, Value> },
}

impl Msg {
    /// Classifies a parsed message; `Err` is the JSON-RPC error to answer.
    pub fn parse(v: Value) -> Result<Msg, Value> {
        let Value::Object(mut o) = v else {
            return Err(error(
                Value::Null,
                INVALID_REQUEST,
                "a message is one JSON-RPC object (batches are not accepted)",
            ));
        };
        let id = o.remove("id");
        let params = o.remove("params").unwrap_or(Value::Null);
        match (o.remove("method"), id) {
            (Some(Value::String(method)), Some(id)) if valid_id(&id) => Ok(Msg::Request { id, method, params }),
            (Some(Value::String(method)), None) => Ok(Msg::Notification { method, params }),
            (None, Some(id)) if o.contains_key("result") || o.contains_key("error") => {
                let body = match o.remove("error") {
                    Some(e) => Err(e),
                    None => Ok(o.remove("result").unwrap_or(Value::Null)),
                };
                Ok(Msg::Response { id, body })
            }
            (_, id) => Err(error(
                id.unwrap_or(Value::Null),
                INVALID_REQUEST,
                "not a JSON-RPC 2.0 request, notification or response",
            )),
        }
    }
}

/// Ids are strings or integers (MCP forbids null).
fn valid_id(id: &Value) -> bool {
    id.is_string() || id.is_i64() || id.is_u64()
}

pub fn request(id: Value, method: &str, params: Value) -> Value {
    if params.is_null() {
        json!({ "jsonrpc": "2.0", "id": id, "method": method })
    } else {
        json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params })
    }
}

pub fn notification(method: &str, params: Value) -> Value {
    if params.is_null() {
        json!({ "jsonrpc": "2.0", "method": method })
    } else {
        json!({ "jsonrpc": "2.0", "method": method, "params": params })
    }
}

pub fn result(id: Value, result: Value) -> Value {
    json!({ "jsonrpc": "2.0", "id": id, "result": result })
}

pub fn error(id: Value, code: i64, message: impl Into<String>) -> Value {
    json!({ "jsonrpc": "2.0", "id": id, "error": { "code": code, "message": message.into() } })
}

/// A response body from either arm: the result, or the error object.
pub fn respond(id: Value, body: Result<Value, Value>) -> Value {
    match body {
        Ok(r) => result(id, r),
        Err(e) => json!({ "jsonrpc": "2.0", "id": id, "error": e }),
    }
}

/// An error object (the `error` member) with a code and message.
pub fn error_body(code: i64, message: impl Into<String>) -> Value {
    json!({ "code": code, "message": message.into() })
}

/// The protocol version a client asked for, answered with itself when the
/// gateway speaks it and with the newest revision otherwise (the client
/// then decides whether it can go on).
pub fn negotiate(asked: Option<&str>) -> &'static str {
    asked.and_then(|a| HANDSHAKE_VERSIONS.iter().find(|v| **v == a).copied()).unwrap_or(LATEST_HANDSHAKE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_told_apart_by_their_members() {
        assert!(matches!(
            Msg::parse(json!({"jsonrpc":"2.0","id":1,"method":"ping"})),
            Ok(Msg::Request { method, .. }) if method == "ping"
        ));
        assert!(matches!(
            Msg::parse(json!({"jsonrpc":"2.0","method":"notifications/initialized"})),
            Ok(Msg::Notification { .. })
        ));
        assert!(matches!(
            Msg::parse(json!({"jsonrpc":"2.0","id":"a","result":{}})),
            Ok(Msg::Response { body: Ok(_), .. })
        ));
        assert!(matches!(
            Msg::parse(json!({"jsonrpc":"2.0","id":"a","error":{"code":1}})),
            Ok(Msg::Response { body: Err(_), .. })
        ));
        assert_eq!(Msg::parse(json!([1])).unwrap_err()["error"]["code"], INVALID_REQUEST);
        assert_eq!(Msg::parse(json!({"id": null, "method": "x"})).unwrap_err()["error"]["code"], INVALID_REQUEST);
    }

    #[test]
    fn the_envelope_is_read_and_never_passed_on() {
        let mut p = json!({"name": "t", "_meta": {
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientInfo": {"name": "c"},
            "progressToken": 7,
        }});
        assert_eq!(envelope_version(&p), Some("2026-07-28"));
        strip_envelope(&mut p);
        assert_eq!(p, json!({"name": "t", "_meta": {"progressToken": 7}}));
        let mut q = json!({"_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28"}});
        strip_envelope(&mut q);
        assert_eq!(q, json!({}));
    }

    #[test]
    fn versions_are_echoed_when_spoken_else_the_newest() {
        assert_eq!(negotiate(Some("2025-06-18")), "2025-06-18");
        assert_eq!(negotiate(Some("1999-01-01")), LATEST_HANDSHAKE);
        assert_eq!(negotiate(None), LATEST_HANDSHAKE);
    }
}
