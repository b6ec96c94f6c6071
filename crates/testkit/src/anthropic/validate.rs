//! Request checks for the Anthropic mock, strict like the real Messages
//! API: a gateway that sends a malformed request, or drops the thinking
//! blocks it must replay, gets the 400 the real API would give.

use std::collections::HashSet;

use serde_json::Value;

use super::{Route, SIGNATURE, blocks_of, ids_of, role, ty};

const VERTEX_VERSION: &str = "vertex-2023-10-16";
const REPLAY: &str = "assistant messages with tool_use must start with the thinking block returned with them";
/// Top-level fields each endpoint accepts; any other is "Extra inputs are not permitted".
const MESSAGE_FIELDS: &str = "model messages max_tokens system metadata stop_sequences stream temperature top_p top_k \
    tools tool_choice thinking service_tier container mcp_servers context_management output_format output_config";
const COUNT_FIELDS: &str = "model messages system tools tool_choice thinking mcp_servers context_management";

/// Why the real API would refuse this request body, if it would.
pub(super) fn validate(v: &Value, route: &Route) -> Result<(), String> {
    let obj = v.as_object().ok_or("request body must be a JSON object")?;
    let allowed = if *route == Route::CountTokens { COUNT_FIELDS } else { MESSAGE_FIELDS };
    let vertex = matches!(route, Route::Vertex { .. });
    let extra = |k: &&String| !(allowed.split_whitespace().any(|f| f == *k) || vertex && *k == "anthropic_version");
    if let Some(k) = obj.keys().find(extra) {
        return Err(format!("{k}: Extra inputs are not permitted"));
    }
    if vertex && obj.contains_key("model") {
        return Err("model: Extra inputs are not permitted (Vertex AI names the model in the URL)".into());
    } else if vertex && v["anthropic_version"] != VERTEX_VERSION {
        return Err(format!("anthropic_version: must be \"{VERTEX_VERSION}\""));
    } else if !vertex && v["model"].as_str().is_none_or(str::is_empty) {
        return Err("model: Field required".into());
    }
    let max_tokens = v["max_tokens"].as_u64().filter(|n| *n > 0);
    if *route != Route::CountTokens && max_tokens.is_none() {
        return Err("max_tokens: Field required (a positive integer)".into());
    }
    if v.get("temperature").is_some_and(|t| !t.as_f64().is_some_and(|t| (0.0..=1.0).contains(&t))) {
        return Err("temperature: must be a number between 0 and 1".into());
    }
    if v.get("stop_sequences").is_some_and(|s| !s.as_array().is_some_and(|a| a.iter().all(Value::is_string))) {
        return Err("stop_sequences: must be an array of strings".into());
    }
    match &v["system"] {
        Value::Null | Value::String(_) => {}
        Value::Array(a) if a.iter().all(|b| ty(b) == "text" && b["text"].is_string()) => {}
        _ => return Err("system: must be a string or an array of text blocks".into()),
    }
    let msgs = v["messages"].as_array().ok_or("messages: Field required (an array)")?;
    validate_messages(msgs)?;
    validate_tools(v)?;
    validate_thinking(v, msgs, max_tokens)
}

fn validate_messages(msgs: &[Value]) -> Result<(), String> {
    if msgs.is_empty() {
        return Err("messages: at least one message is required".into());
    }
    let mut seen = HashSet::new();
    for (i, m) in msgs.iter().enumerate() {
        match role(m) {
            "user" | "assistant" => {}
            "system" => {
                return Err(format!("messages.{i}.role: unexpected role \"system\"; use the top-level `system`"));
            }
            other => return Err(format!("messages.{i}.role: should be 'user' or 'assistant', got {other:?}")),
        }
        if i == 0 && role(m) != "user" {
            return Err("messages.0.role: the first message must use the \"user\" role".into());
        }
        let blocks = blocks_of(m).ok_or_else(|| format!("messages.{i}.content: must be a string or an array"))?;
        if blocks.is_empty() && !(i + 1 == msgs.len() && role(m) == "assistant") {
            return Err(format!("messages.{i}: all messages must have non-empty content except the final assistant"));
        }
        for (j, b) in blocks.iter().enumerate() {
            validate_block(b, role(m)).map_err(|e| format!("messages.{i}.content.{j}: {e}"))?;
        }
        if let Some(id) = ids_of(m, "tool_use", "id").into_iter().find(|id| !seen.insert(id.clone())) {
            return Err(format!("messages.{i}: `tool_use` ids must be unique; {id} is used twice"));
        }
        let results = ids_of(m, "tool_result", "tool_use_id");
        let asked = i.checked_sub(1).map(|p| ids_of(&msgs[p], "tool_use", "id")).unwrap_or_default();
        if let Some(id) = results.iter().find(|id| !asked.contains(*id)) {
            return Err(format!(
                "messages.{i}.content: unexpected `tool_use_id` in `tool_result` blocks: {id}; each \
                `tool_result` must answer a `tool_use` block of the previous message"
            ));
        }
        if let Some(id) = asked.iter().find(|id| !results.contains(*id)) {
            return Err(format!(
                "messages.{}: `tool_use` ids were found without `tool_result` blocks immediately \
                after: {id}",
                i - 1
            ));
        }
        if blocks.iter().skip_while(|b| ty(b) == "tool_result").any(|b| ty(b) == "tool_result") {
            return Err(format!("messages.{i}.content: `tool_result` blocks must come first in the message"));
        }
    }
    Ok(())
}

fn validate_block(b: &Value, role: &str) -> Result<(), String> {
    let s = |k: &str| b[k].is_string();
    let src = &b["source"];
    let (ok, roles, needs) = match ty(b) {
        "text" => (s("text"), "user assistant", "a string `text`"),
        "image" => {
            let ok = match ty(src) {
                "base64" => src["media_type"].is_string() && src["data"].is_string(),
                "url" => src["url"].is_string(),
                _ => false,
            };
            (ok, "user", "`source` {type: base64, media_type, data} or {type: url, url}")
        }
        "document" => (src.is_object(), "user", "an object `source`"),
        "tool_use" => (s("id") && s("name") && b["input"].is_object(), "assistant", "`id`, `name` and object `input`"),
        "tool_result" => {
            let ok = match &b["content"] {
                Value::Null | Value::String(_) => true,
                Value::Array(a) => a.iter().all(|c| matches!(ty(c), "text" | "image" | "document")),
                _ => false,
            };
            (s("tool_use_id") && ok, "user", "`tool_use_id` and `content` (a string or text/image/document blocks)")
        }
        "thinking" => (s("thinking") && s("signature"), "assistant", "`thinking` and `signature`"),
        "redacted_thinking" => (s("data"), "assistant", "`data`"),
        other => return Err(format!("unknown content block type {other:?}")),
    };
    if !roles.split(' ').any(|r| r == role) {
        return Err(format!("`{}` blocks are not allowed in {role} messages", ty(b)));
    }
    if ok { Ok(()) } else { Err(format!("a `{}` block needs {needs}", ty(b))) }
}

fn validate_tools(v: &Value) -> Result<(), String> {
    let tools = match &v["tools"] {
        Value::Null => &[][..],
        t => t.as_array().map(Vec::as_slice).ok_or("tools: must be an array")?,
    };
    for (i, t) in tools.iter().enumerate() {
        if t["name"].as_str().is_none_or(str::is_empty) {
            return Err(format!("tools.{i}.name: Field required"));
        }
        // Server tools (`type: web_search_…` etc.) carry no schema.
        if matches!(ty(t), "" | "custom") && !t["input_schema"].is_object() {
            return Err(format!("tools.{i}.input_schema: Field required"));
        }
    }
    let tc = &v["tool_choice"];
    match ty(tc) {
        _ if tc.is_null() => Ok(()),
        "auto" | "any" | "none" => Ok(()),
        "tool" if tc["name"].is_string() => Ok(()),
        "tool" => Err("tool_choice.name: Field required".into()),
        _ => Err("tool_choice: must be an object with type auto, any, tool or none".into()),
    }
}

fn validate_thinking(v: &Value, msgs: &[Value], max_tokens: Option<u64>) -> Result<(), String> {
    match ty(&v["thinking"]) {
        _ if v["thinking"].is_null() => return Ok(()),
        "enabled" => {}
        "disabled" => return Ok(()),
        _ => return Err("thinking.type: should be 'enabled' or 'disabled'".into()),
    }
    let budget = v["thinking"]["budget_tokens"].as_u64().ok_or("thinking.budget_tokens: Field required")?;
    if budget < 1024 {
        return Err("thinking.budget_tokens: should be greater than or equal to 1024".into());
    }
    if max_tokens.is_some_and(|m| budget >= m) {
        return Err("`max_tokens` must be greater than `thinking.budget_tokens`".into());
    }
    if v.get("temperature").is_some_and(|t| t.as_f64() != Some(1.0)) {
        return Err("`temperature` may only be set to 1 when thinking is enabled".into());
    }
    if matches!(ty(&v["tool_choice"]), "any" | "tool") {
        return Err("Thinking may not be enabled when `tool_choice` forces tool use.".into());
    }
    replay_check(msgs)
}

/// With thinking on, an assistant turn that called tools must be replayed
/// starting with the (signed) thinking block it came with.
pub(super) fn replay_check(msgs: &[Value]) -> Result<(), String> {
    for (i, m) in msgs.iter().enumerate().filter(|(_, m)| role(m) == "assistant") {
        let blocks = blocks_of(m).unwrap_or_default();
        let ok = blocks.first().is_some_and(|b| match ty(b) {
            "thinking" => b["signature"] == SIGNATURE,
            "redacted_thinking" => true,
            _ => false,
        });
        if !ok && blocks.iter().any(|b| ty(b) == "tool_use") {
            return Err(format!("messages.{i}.content.0: {REPLAY}"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::anthropic::route;
    use crate::anthropic::tests::{call, req, tool_turns};

    #[test]
    fn tool_result_must_answer_the_previous_tool_use() {
        assert_eq!(validate(&req(tool_turns(json!([call()]), "toolu_a")), &Route::Messages), Ok(()));
        let e = validate(&req(tool_turns(json!([call()]), "toolu_b")), &Route::Messages).expect_err("mismatch");
        assert!(e.contains("toolu_b"), "{e}");
    }

    #[test]
    fn system_role_and_assistant_first_are_refused() {
        let e = validate(&req(json!([{ "role": "system", "content": "be brief" }])), &Route::Messages);
        assert!(e.expect_err("system role").contains("top-level `system`"));
        assert!(validate(&req(json!([{ "role": "assistant", "content": "hi" }])), &Route::Messages).is_err());
    }

    #[test]
    fn thinking_replay_needs_the_signed_block_first() {
        let mut v = req(tool_turns(json!([call()]), "toolu_a"));
        v["thinking"] = json!({ "type": "enabled", "budget_tokens": 1024 });
        assert!(validate(&v, &Route::Messages).expect_err("dropped thinking").contains(REPLAY));
        let signed = json!({ "type": "thinking", "thinking": "t", "signature": SIGNATURE });
        v["messages"][1]["content"] = json!([signed, call()]);
        assert_eq!(validate(&v, &Route::Messages), Ok(()));
        v["max_tokens"] = json!(1024);
        assert!(validate(&v, &Route::Messages).is_err(), "budget must stay under max_tokens");
    }

    #[test]
    fn vertex_wants_its_version_and_no_model() {
        let vertex = route("/v1/projects/p/locations/l/publishers/anthropic/models/claude-x@1:streamRawPredict");
        let vertex = vertex.expect("vertex route");
        assert_eq!(vertex, Route::Vertex { model: "claude-x@1".into(), stream: true });
        let mut v = req(json!([{ "role": "user", "content": "hi" }]));
        assert!(validate(&v, &vertex).is_err(), "model in body");
        v.as_object_mut().expect("object").remove("model");
        assert!(validate(&v, &vertex).is_err(), "no anthropic_version");
        v["anthropic_version"] = json!(VERTEX_VERSION);
        assert_eq!(validate(&v, &vertex), Ok(()));
    }
}
