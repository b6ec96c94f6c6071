//! What Bedrock's Converse API rejects with a ValidationException, checked
//! strictly so a gateway sending a wrong wire format is caught.

use serde_json::{Map, Value};

const TOP_KEYS: &[&str] = &[
    "messages",
    "system",
    "inferenceConfig",
    "toolConfig",
    "additionalModelRequestFields",
    "additionalModelResponseFieldPaths",
    "guardrailConfig",
    "promptVariables",
    "requestMetadata",
    "performanceConfig",
];
const IMAGE_FORMATS: &[&str] = &["png", "jpeg", "gif", "webp"];

fn object<'a>(v: &'a Value, at: &str) -> Result<&'a Map<String, Value>, String> {
    v.as_object().ok_or_else(|| format!("{at}: expected a JSON object, got {v}"))
}

fn only_keys(obj: &Map<String, Value>, allowed: &[&str], at: &str) -> Result<(), String> {
    match obj.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(format!("Malformed input request: {at}: extraneous key [{k}] is not permitted")),
        None => Ok(()),
    }
}

/// The one member of a union object (`{"text": …}`, `{"toolUse": …}`, …).
fn member<'a>(v: &'a Value, at: &str) -> Result<(&'a str, &'a Value), String> {
    let obj = object(v, at)?;
    let mut it = obj.iter();
    match (it.next(), it.next()) {
        (Some((k, val)), None) => Ok((k.as_str(), val)),
        _ => Err(format!("{at}: a union must have exactly one member set, found {}", obj.len())),
    }
}

fn str_in<'a>(v: &'a Value, key: &str, at: &str) -> Result<&'a str, String> {
    v.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| format!("{at}.{key} is required (a non-empty string)"))
}

/// The `toolUseId`s of the `toolUse` / `toolResult` blocks of a message.
pub(crate) fn ids<'a>(m: &'a Value, kind: &str) -> Vec<&'a str> {
    m.get("content")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|b| b.get(kind)?.get("toolUseId")?.as_str())
        .collect()
}

pub(crate) fn converse(v: &Value) -> Result<(), String> {
    let obj = object(v, "request")?;
    only_keys(obj, TOP_KEYS, "#")?;
    let msgs = obj.get("messages").and_then(Value::as_array).filter(|m| !m.is_empty());
    let msgs = msgs.ok_or("messages: the request must have a non-empty messages array")?;
    let tool_config = obj.get("toolConfig").is_some();
    let mut prev_role = "";
    for (i, m) in msgs.iter().enumerate() {
        let at = format!("messages.{i}");
        only_keys(object(m, &at)?, &["role", "content"], &at)?;
        let role = m.get("role").and_then(Value::as_str).unwrap_or_default();
        if role != "user" && role != "assistant" {
            return Err(format!("{at}.role: value {role:?} must satisfy enum value set: [user, assistant]"));
        }
        if i == 0 && role != "user" {
            return Err("A conversation must start with a user message. Try again with a conversation that starts with a user message.".into());
        }
        if role == prev_role {
            return Err("A conversation must alternate between user and assistant roles. Make sure the conversation alternates between user and assistant roles and try again.".into());
        }
        prev_role = role;
        let content =
            m.get("content").and_then(Value::as_array).ok_or_else(|| format!("{at}.content must be an array"))?;
        if content.is_empty() {
            return Err(format!(
                "The content field in the Message object at {at} is empty. Add a ContentBlock object to the content field and try again."
            ));
        }
        for (j, b) in content.iter().enumerate() {
            block(b, role, &format!("{at}.content.{j}"))?;
        }
        let (uses, results) = (ids(m, "toolUse"), ids(m, "toolResult"));
        if (!uses.is_empty() || !results.is_empty()) && !tool_config {
            return Err("The toolConfig field must be defined when using toolUse and toolResult content blocks.".into());
        }
        if !results.is_empty() {
            let prev_uses = i.checked_sub(1).map(|k| ids(&msgs[k], "toolUse")).unwrap_or_default();
            if results.len() > prev_uses.len() {
                return Err(format!(
                    "The number of toolResult blocks at {at}.content exceeds the number of toolUse blocks of previous turn."
                ));
            }
            if let Some(r) = results.iter().find(|r| !prev_uses.contains(r)) {
                return Err(format!(
                    "{at}: toolResult {r:?} does not match any toolUse of the previous assistant message"
                ));
            }
        }
        if !uses.is_empty()
            && let Some(next) = msgs.get(i + 1)
        {
            let answered = ids(next, "toolResult");
            let missing: Vec<&str> = uses.iter().copied().filter(|u| !answered.contains(u)).collect();
            if !missing.is_empty() {
                return Err(format!(
                    "Expected toolResult blocks at messages.{}.content for the following Ids: {}",
                    i + 1,
                    missing.join(", ")
                ));
            }
        }
    }
    if let Some(s) = obj.get("system") {
        let list = s.as_array().ok_or("system must be an array of SystemContentBlock")?;
        for (i, b) in list.iter().enumerate() {
            let at = format!("system.{i}");
            match member(b, &at)? {
                ("text", Value::String(t)) if !t.trim().is_empty() => {}
                ("cachePoint" | "guardContent", Value::Object(_)) => {}
                _ => return Err(format!("{at}: a SystemContentBlock is {{\"text\": \"…\"}} (non-blank)")),
            }
        }
    }
    if let Some(c) = obj.get("inferenceConfig") {
        inference_config(c)?;
    }
    if let Some(t) = obj.get("toolConfig") {
        tools(t)?;
    }
    if obj.get("additionalModelRequestFields").is_some_and(|a| !a.is_object()) {
        return Err("additionalModelRequestFields must be a JSON object".into());
    }
    Ok(())
}

fn block(b: &Value, role: &str, at: &str) -> Result<(), String> {
    let (kind, val) = member(b, at)?;
    let at = format!("{at}.{kind}");
    let role_must_be = |want: &str| {
        if role == want { Ok(()) } else { Err(format!("{at}: {kind} blocks are only allowed in {want} messages")) }
    };
    match kind {
        "text" => match val.as_str() {
            Some(t) if !t.trim().is_empty() => Ok(()),
            _ => Err(format!(
                "The text field in the ContentBlock object at {} is blank. Add text to the text field, and try again.",
                at.trim_end_matches(".text")
            )),
        },
        "image" => image(val, &at),
        "toolUse" => {
            role_must_be("assistant")?;
            only_keys(object(val, &at)?, &["toolUseId", "name", "input", "type"], &at)?;
            str_in(val, "toolUseId", &at)?;
            str_in(val, "name", &at)?;
            match val.get("input") {
                Some(Value::Object(_)) => Ok(()),
                _ => Err(format!("{at}.input is required (a JSON object)")),
            }
        }
        "toolResult" => {
            role_must_be("user")?;
            only_keys(object(val, &at)?, &["toolUseId", "content", "status", "type"], &at)?;
            str_in(val, "toolUseId", &at)?;
            if let Some(s) = val.get("status")
                && s != "success"
                && s != "error"
            {
                return Err(format!("{at}.status: value {s} must satisfy enum value set: [success, error]"));
            }
            let items = val.get("content").and_then(Value::as_array);
            let items = items.ok_or_else(|| format!("{at}.content is required (an array)"))?;
            for (k, item) in items.iter().enumerate() {
                let at = format!("{at}.content.{k}");
                match member(item, &at)? {
                    ("text", Value::String(_)) | ("json", _) | ("document", Value::Object(_)) => {}
                    ("image", img) => image(img, &at)?,
                    (other, _) => {
                        return Err(format!(
                            "{at}: {other} is not a ToolResultContentBlock (text, json, image, document)"
                        ));
                    }
                }
            }
            Ok(())
        }
        "reasoningContent" => {
            role_must_be("assistant")?;
            match member(val, &at)? {
                ("reasoningText", r) => {
                    only_keys(object(r, &at)?, &["text", "signature"], &at)?;
                    r.get("text")
                        .and_then(Value::as_str)
                        .ok_or_else(|| format!("{at}.reasoningText.text is required"))?;
                    if r.get("signature").is_some_and(|s| !s.is_string()) {
                        return Err(format!("{at}.reasoningText.signature must be a string"));
                    }
                    Ok(())
                }
                ("redactedContent", Value::String(_)) => Ok(()),
                _ => Err(format!(
                    "{at}: reasoningContent is {{reasoningText: {{text, signature}}}} or {{redactedContent}}"
                )),
            }
        }
        "document" => {
            let d = object(val, &at)?;
            only_keys(d, &["format", "name", "source", "context", "citations"], &at)?;
            str_in(val, "name", &at)?;
            object(d.get("source").unwrap_or(&Value::Null), &format!("{at}.source"))?;
            Ok(())
        }
        "cachePoint" | "guardContent" | "video" => object(val, &at).map(|_| ()),
        other => Err(format!("{at}: unknown ContentBlock member {other}")),
    }
}

fn image(val: &Value, at: &str) -> Result<(), String> {
    only_keys(object(val, at)?, &["format", "source"], at)?;
    let format = val.get("format").and_then(Value::as_str).unwrap_or_default();
    if !IMAGE_FORMATS.contains(&format) {
        return Err(format!("{at}.format: value {format:?} must satisfy enum value set: [png, jpeg, gif, webp]"));
    }
    match member(val.get("source").unwrap_or(&Value::Null), &format!("{at}.source"))? {
        ("bytes", Value::String(b)) if aws_smithy_types::base64::decode(b).is_ok_and(|d| !d.is_empty()) => Ok(()),
        ("bytes", _) => Err(format!("{at}.source.bytes must be base64-encoded image bytes")),
        ("s3Location", Value::Object(_)) => Ok(()),
        (other, _) => Err(format!("{at}.source: unknown ImageSource member {other}")),
    }
}

fn inference_config(c: &Value) -> Result<(), String> {
    let at = "inferenceConfig";
    let obj = object(c, at)?;
    only_keys(obj, &["maxTokens", "temperature", "topP", "stopSequences"], at)?;
    if obj.get("maxTokens").is_some_and(|n| n.as_u64().is_none_or(|n| n < 1)) {
        return Err(format!("{at}.maxTokens: value must be an integer >= 1"));
    }
    for (k, hi) in [("temperature", 1.0), ("topP", 1.0)] {
        if obj.get(k).is_some_and(|x| x.as_f64().is_none_or(|x| !(0.0..=hi).contains(&x))) {
            return Err(format!("{at}.{k}: value must be a number between 0 and {hi}"));
        }
    }
    if obj.get("stopSequences").is_some_and(|s| !s.as_array().is_some_and(|l| l.iter().all(Value::is_string))) {
        return Err(format!("{at}.stopSequences must be an array of strings"));
    }
    Ok(())
}

fn tools(t: &Value) -> Result<(), String> {
    let at = "toolConfig";
    only_keys(object(t, at)?, &["tools", "toolChoice"], at)?;
    let list = t.get("tools").and_then(Value::as_array).filter(|l| !l.is_empty());
    let list = list.ok_or("toolConfig.tools must be a non-empty array")?;
    let mut names = Vec::new();
    for (i, tool) in list.iter().enumerate() {
        let at = format!("toolConfig.tools.{i}");
        let spec = match member(tool, &at)? {
            ("toolSpec", spec) => spec,
            ("cachePoint", Value::Object(_)) => continue,
            (other, _) => return Err(format!("{at}: {other} is not a Tool member (toolSpec, cachePoint)")),
        };
        let at = format!("{at}.toolSpec");
        only_keys(object(spec, &at)?, &["name", "description", "inputSchema", "strict"], &at)?;
        let name = str_in(spec, "name", &at)?;
        if name.len() > 64 || !name.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-') {
            return Err(format!(
                "{at}.name: value {name:?} must satisfy regular expression pattern: [a-zA-Z0-9_-]+ (max 64)"
            ));
        }
        if spec.get("description").is_some_and(|d| d.as_str().is_none_or(|d| d.is_empty())) {
            return Err(format!("{at}.description must be a non-empty string"));
        }
        match spec.get("inputSchema").map(|s| member(s, &format!("{at}.inputSchema"))).transpose()? {
            Some(("json", Value::Object(_))) => {}
            _ => return Err(format!("{at}.inputSchema is required: {{\"json\": {{…JSON schema…}}}}")),
        }
        names.push(name);
    }
    if let Some(choice) = t.get("toolChoice") {
        let at = "toolConfig.toolChoice";
        match member(choice, at)? {
            ("auto" | "any", Value::Object(o)) if o.is_empty() => {}
            ("tool", tool) if tool.get("name").and_then(Value::as_str).is_some_and(|n| names.contains(&n)) => {}
            ("tool", _) => return Err(format!("{at}.tool.name must name a tool of toolConfig.tools")),
            _ => {
                return Err(format!(
                    "{at} must be one of {{\"auto\":{{}}}}, {{\"any\":{{}}}}, {{\"tool\":{{\"name\":…}}}}"
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn tool_config() -> Value {
        json!({ "tools": [{ "toolSpec": { "name": "search", "inputSchema": { "json": { "type": "object" } } } }] })
    }

    fn conv(messages: Value) -> Value {
        json!({ "messages": messages, "toolConfig": tool_config() })
    }

    fn user(text: &str) -> Value {
        json!({ "role": "user", "content": [{ "text": text }] })
    }

    fn tool_use(id: &str) -> Value {
        json!({ "role": "assistant", "content": [{ "toolUse": { "toolUseId": id, "name": "search", "input": { "q": "x" } } }] })
    }

    fn tool_result(id: &str) -> Value {
        json!({ "role": "user", "content": [{ "toolResult": { "toolUseId": id, "content": [{ "text": "sunny" }], "status": "success" } }] })
    }

    #[test]
    fn accepts_a_tool_round_trip() {
        let mut v = conv(json!([user("hi"), tool_use("t1"), tool_result("t1")]));
        v["system"] = json!([{ "text": "be brief" }]);
        v["inferenceConfig"] = json!({ "maxTokens": 100, "temperature": 0.5, "stopSequences": ["x"] });
        v["toolConfig"]["toolChoice"] = json!({ "tool": { "name": "search" } });
        v["additionalModelRequestFields"] = json!({ "top_k": 5 });
        assert_eq!(converse(&v), Ok(()));
    }

    #[test]
    fn rejects_wrong_roles_and_blocks() {
        assert!(converse(&json!({ "messages": [] })).is_err());
        assert!(converse(&json!({ "messages": [{ "role": "system", "content": [{ "text": "x" }] }] })).is_err());
        assert!(converse(&json!({ "messages": [{ "role": "user", "content": "hi" }] })).is_err());
        assert!(converse(&json!({ "messages": [{ "role": "user", "content": [] }] })).is_err());
        assert!(
            converse(&json!({ "messages": [{ "role": "user", "content": [{ "type": "text", "text": "x" }] }] }))
                .is_err()
        );
        assert!(converse(&json!({ "messages": [user("a"), user("b")] })).is_err());
        assert!(converse(&json!({ "messages": [user("a")], "system": "be brief" })).is_err());
        assert!(converse(&json!({ "messages": [user("a")], "inferenceConfig": { "temperature": 1.5 } })).is_err());
        assert!(converse(&json!({ "messages": [user("a")], "inferenceConfig": { "max_tokens": 5 } })).is_err());
        let img = json!({ "image": { "format": "png", "source": { "bytes": "not base64!" } } });
        assert!(converse(&json!({ "messages": [{ "role": "user", "content": [img] }] })).is_err());
    }

    #[test]
    fn tool_results_must_answer_the_previous_tool_uses() {
        assert!(converse(&conv(json!([user("hi"), tool_use("t1"), tool_result("t2")]))).is_err());
        assert!(converse(&conv(json!([user("hi"), tool_use("t1"), user("no result")]))).is_err());
        let no_config = json!({ "messages": [user("hi"), tool_use("t1"), tool_result("t1")] });
        assert!(converse(&no_config).is_err_and(|m| m.contains("toolConfig")));
        let bad_choice = json!({ "messages": [user("hi")], "toolConfig": { "tools": tool_config()["tools"], "toolChoice": { "required": {} } } });
        assert!(converse(&bad_choice).is_err());
        let bad_spec = json!({ "messages": [user("hi")], "toolConfig": { "tools": [{ "toolSpec": { "name": "s", "inputSchema": { "type": "object" } } }] } });
        assert!(converse(&bad_spec).is_err());
    }
}
