//! What the real Gemini API rejects with 400 INVALID_ARGUMENT, checked
//! strictly so a gateway sending a wrong wire format is caught.

use serde_json::{Map, Value, json};

use super::THOUGHT_SIGNATURE;
use super::config::{generation_config, tool_config, tools};

const TOP_KEYS: &[&str] = &[
    "contents",
    "systemInstruction",
    "tools",
    "toolConfig",
    "generationConfig",
    "safetySettings",
    "cachedContent",
    "labels",
    "model",
];
const DATA_KEYS: &[&str] = &["text", "inlineData", "fileData", "functionCall", "functionResponse"];

pub(super) fn unknown(name: &str, at: &str) -> String {
    format!("Invalid JSON payload received. Unknown name \"{name}\" at '{at}': Cannot find field.")
}

pub(super) fn object<'a>(v: &'a Value, at: &str) -> Result<&'a Map<String, Value>, String> {
    v.as_object().ok_or_else(|| format!("Invalid value at '{at}': expected an object, got {v}"))
}

pub(super) fn only_keys(obj: &Map<String, Value>, allowed: &[&str], at: &str) -> Result<(), String> {
    match obj.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(unknown(k, at)),
        None => Ok(()),
    }
}

fn role_of(c: &Value) -> &str {
    c.get("role").and_then(Value::as_str).unwrap_or("user")
}

/// `(name, id, args)` of each `functionCall` / `functionResponse` part.
fn calls<'a>(c: &'a Value, key: &str) -> Vec<(&'a str, Option<&'a str>, Option<&'a Value>)> {
    c.get("parts")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|p| p.get(key))
        .map(|f| {
            (f.get("name").and_then(Value::as_str).unwrap_or(""), f.get("id").and_then(Value::as_str), f.get("args"))
        })
        .collect()
}

pub(crate) fn request(v: &Value) -> Result<(), String> {
    let obj = object(v, "GenerateContentRequest")?;
    only_keys(obj, TOP_KEYS, "GenerateContentRequest")?;
    contents(v.get("contents"))?;
    if let Some(s) = obj.get("systemInstruction") {
        let at = "system_instruction";
        only_keys(object(s, at)?, &["role", "parts"], at)?;
        let parts = s.get("parts").and_then(Value::as_array).filter(|p| !p.is_empty());
        let parts = parts.ok_or_else(|| format!("{at}.parts must be a non-empty array of {{text}} parts"))?;
        for (j, p) in parts.iter().enumerate() {
            let at = format!("{at}.parts[{j}]");
            only_keys(object(p, &at)?, &["text"], &at)?;
            p.get("text").and_then(Value::as_str).ok_or_else(|| format!("{at}.text must be a string"))?;
        }
    }
    if let Some(t) = obj.get("tools") {
        tools(t)?;
    }
    if let Some(g) = obj.get("generationConfig") {
        generation_config(g)?;
    }
    if let Some(t) = obj.get("toolConfig") {
        tool_config(t)?;
    }
    if let Some(s) = obj.get("safetySettings") {
        let list = s.as_array().ok_or("safety_settings must be an array")?;
        for (i, x) in list.iter().enumerate() {
            let at = format!("safety_settings[{i}]");
            only_keys(object(x, &at)?, &["category", "threshold", "method"], &at)?;
            if x.get("category").and_then(Value::as_str).is_none()
                || x.get("threshold").and_then(Value::as_str).is_none()
            {
                return Err(format!("{at} needs a category and a threshold"));
            }
        }
    }
    Ok(())
}

fn contents(list: Option<&Value>) -> Result<(), String> {
    let list = list.and_then(Value::as_array).filter(|l| !l.is_empty());
    let list = list.ok_or("* GenerateContentRequest.contents: contents is not specified (a non-empty array)")?;
    for (i, c) in list.iter().enumerate() {
        let at = format!("contents[{i}]");
        only_keys(object(c, &at)?, &["role", "parts"], &at)?;
        let role = match c.get("role") {
            None => "user",
            Some(Value::String(r)) if r == "user" || r == "model" => r.as_str(),
            Some(r) => return Err(format!("Please use a valid role: user, model. ({at}.role is {r})")),
        };
        let parts = c.get("parts").and_then(Value::as_array).filter(|p| !p.is_empty());
        let parts =
            parts.ok_or_else(|| format!("* GenerateContentRequest.{at}.parts: contents.parts must not be empty."))?;
        for (j, p) in parts.iter().enumerate() {
            part(p, &format!("{at}.parts[{j}]"))?;
        }
        let own_calls = calls(c, "functionCall");
        let responses = calls(c, "functionResponse");
        if role == "user" && !own_calls.is_empty() {
            return Err(format!("{at}: functionCall parts belong in a model turn"));
        }
        if role == "model" && !responses.is_empty() {
            return Err(format!("{at}: functionResponse parts belong in a user turn"));
        }
        if !own_calls.is_empty() {
            if i == 0 || role_of(&list[i - 1]) != "user" {
                return Err("Please ensure that function call turn comes immediately after a user turn or after a function response turn.".into());
            }
            let first = parts.iter().find(|p| p.get("functionCall").is_some());
            let ours = own_calls.iter().any(|(_, _, args)| *args == Some(&json!({ "q": "x" })));
            // Gemini documents one stand-in for a signature a client could not keep.
            let sig = first.and_then(|p| p.get("thoughtSignature")).and_then(Value::as_str);
            if ours && sig != Some(THOUGHT_SIGNATURE) && sig != Some("skip_thought_signature_validator") {
                return Err(format!(
                    "function call parts must carry their thought signature: {at} replays a function call without the \
                     thoughtSignature returned with it on its first functionCall part"
                ));
            }
        }
        if !responses.is_empty() {
            let prev = i.checked_sub(1).map(|k| &list[k]).filter(|p| role_of(p) == "model");
            let prev_calls = prev.map(|p| calls(p, "functionCall")).unwrap_or_default();
            if prev_calls.is_empty() {
                return Err(
                    "Please ensure that function response turn comes immediately after a function call turn.".into()
                );
            }
            if prev_calls.len() != responses.len() {
                return Err("Please ensure that the number of function response parts is equal to the number of function call parts of the function call turn.".into());
            }
            for (name, id, _) in &responses {
                let matched =
                    prev_calls.iter().any(|(n, call_id, _)| n == name && (call_id.is_none() || call_id == id));
                if !matched {
                    return Err(format!(
                        "{at}: functionResponse {name:?} (id {id:?}) answers no functionCall of the preceding model turn"
                    ));
                }
            }
        }
    }
    Ok(())
}

fn part(p: &Value, at: &str) -> Result<(), String> {
    let obj = object(p, at)?;
    if let Some(k) =
        obj.keys().find(|k| !DATA_KEYS.contains(&k.as_str()) && *k != "thought" && *k != "thoughtSignature")
    {
        return Err(unknown(k, at));
    }
    if obj.get("thought").is_some_and(|t| !t.is_boolean())
        || obj.get("thoughtSignature").is_some_and(|t| !t.is_string())
    {
        return Err(format!("{at}: thought must be a boolean and thoughtSignature a string"));
    }
    let data: Vec<&str> = DATA_KEYS.iter().copied().filter(|k| obj.contains_key(*k)).collect();
    let kind = match data.as_slice() {
        [one] => *one,
        [] => {
            return Err(format!(
                "{at}: a part must hold one of text, inlineData, fileData, functionCall, functionResponse"
            ));
        }
        many => return Err(format!("{at}: a part holds exactly one data field (oneof), found {}", many.join(", "))),
    };
    let val = &obj[kind];
    let at = format!("{at}.{kind}");
    let str_of = |k: &str| val.get(k).and_then(Value::as_str).filter(|s| !s.is_empty());
    match kind {
        "text" => match val.as_str() {
            Some(t) if !t.is_empty() => Ok(()),
            Some(_) => Err("Unable to submit request because it has an empty text parameter. Add a value to the parameter and try again.".into()),
            None => Err(format!("Invalid value at '{at}' (TYPE_STRING), {val}")),
        },
        "inlineData" => {
            only_keys(object(val, &at)?, &["mimeType", "data"], &at)?;
            str_of("mimeType").ok_or_else(|| format!("{at}.mimeType is required"))?;
            let data = str_of("data").ok_or_else(|| format!("{at}.data is required"))?;
            aws_smithy_types::base64::decode(data).map_err(|_| format!("Invalid value at '{at}.data' (TYPE_BYTES), Base64 decoding failed"))?;
            Ok(())
        }
        "fileData" => {
            only_keys(object(val, &at)?, &["mimeType", "fileUri"], &at)?;
            str_of("mimeType").ok_or_else(|| format!("{at}.mimeType is required"))?;
            str_of("fileUri").ok_or_else(|| format!("{at}.fileUri is required"))?;
            Ok(())
        }
        "functionCall" => {
            only_keys(object(val, &at)?, &["id", "name", "args"], &at)?;
            str_of("name").ok_or_else(|| format!("{at}.name is required"))?;
            match val.get("args") {
                None | Some(Value::Object(_)) => Ok(()),
                Some(a) => Err(format!("Invalid value at '{at}.args' (type.googleapis.com/google.protobuf.Struct), {a}")),
            }
        }
        _ => {
            only_keys(object(val, &at)?, &["id", "name", "response", "willContinue", "scheduling", "parts"], &at)?;
            str_of("name").ok_or_else(|| format!("{at}.name is required"))?;
            match val.get("response") {
                Some(Value::Object(_)) => Ok(()),
                Some(r) => Err(format!("Invalid value at '{at}.response' (type.googleapis.com/google.protobuf.Struct), {r}")),
                None => Err(format!("{at}.response is required (an object)")),
            }
        }
    }
}

fn text_content(c: Option<&Value>, at: &str) -> Result<(), String> {
    let c = c.ok_or_else(|| format!("{at}.content is required"))?;
    only_keys(object(c, at)?, &["role", "parts"], at)?;
    let parts = c.get("parts").and_then(Value::as_array).filter(|p| !p.is_empty());
    let parts = parts.ok_or_else(|| format!("{at}.content.parts must not be empty"))?;
    if parts.iter().all(|p| p.get("text").and_then(Value::as_str).is_some()) {
        Ok(())
    } else {
        Err(format!("{at}.content.parts: an embedding request holds text parts"))
    }
}

const EMBED_KEYS: &[&str] = &["model", "content", "taskType", "title", "outputDimensionality"];

/// `embedContent`: `{content:{parts:[{text}]}}`, `model` (if given) the URL's.
pub(crate) fn embed_content(v: &Value, model: &str) -> Result<(), String> {
    only_keys(object(v, "EmbedContentRequest")?, EMBED_KEYS, "EmbedContentRequest")?;
    if let Some(m) = v.get("model")
        && m.as_str() != Some(format!("models/{model}").as_str())
    {
        return Err(format!("model {m} does not match the URL's models/{model}"));
    }
    text_content(v.get("content"), "EmbedContentRequest")
}

/// `batchEmbedContents`: each request names `models/<url model>`; returns how many.
pub(crate) fn batch_embed(v: &Value, model: &str) -> Result<usize, String> {
    only_keys(object(v, "BatchEmbedContentsRequest")?, &["requests"], "BatchEmbedContentsRequest")?;
    let reqs = v.get("requests").and_then(Value::as_array).filter(|r| !r.is_empty());
    let reqs = reqs.ok_or("* BatchEmbedContentsRequest.requests: requests must be a non-empty array")?;
    let want = format!("models/{model}");
    for (i, r) in reqs.iter().enumerate() {
        let at = format!("requests[{i}]");
        only_keys(object(r, &at)?, EMBED_KEYS, &at)?;
        if r.get("model").and_then(Value::as_str) != Some(want.as_str()) {
            return Err(format!("* BatchEmbedContentsRequest.{at}.model: must be {want:?} (the model in the URL)"));
        }
        text_content(r.get("content"), &at)?;
    }
    Ok(reqs.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(text: &str) -> Value {
        json!({ "role": "user", "parts": [{ "text": text }] })
    }

    fn call_turn(sig: Option<&str>, id: Option<&str>) -> Value {
        let mut p = json!({ "functionCall": { "name": "search", "args": { "q": "x" } } });
        if let Some(s) = sig {
            p["thoughtSignature"] = json!(s);
        }
        if let Some(i) = id {
            p["functionCall"]["id"] = json!(i);
        }
        json!({ "role": "model", "parts": [p] })
    }

    fn response_turn(name: &str, id: Option<&str>) -> Value {
        let mut f = json!({ "name": name, "response": { "result": "sunny" } });
        if let Some(i) = id {
            f["id"] = json!(i);
        }
        json!({ "role": "user", "parts": [{ "functionResponse": f }] })
    }

    fn with(contents: Value) -> Value {
        json!({ "contents": contents })
    }

    #[test]
    fn accepts_a_plain_and_a_tool_conversation() {
        assert_eq!(request(&with(json!([user("hi")]))), Ok(()));
        let v = json!({
            "contents": [user("hi"), call_turn(Some(THOUGHT_SIGNATURE), Some("c1")), response_turn("search", Some("c1"))],
            "systemInstruction": { "parts": [{ "text": "be brief" }] },
            "tools": [{ "functionDeclarations": [{ "name": "search", "description": "d",
                "parameters": { "type": "object", "properties": { "additionalProperties": { "type": "string" } } } }] }],
            "toolConfig": { "functionCallingConfig": { "mode": "ANY", "allowedFunctionNames": ["search"] } },
            "generationConfig": { "temperature": 1.5, "maxOutputTokens": 100, "stopSequences": ["a"],
                "thinkingConfig": { "includeThoughts": true } },
            "safetySettings": [{ "category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE" }]
        });
        assert_eq!(request(&v), Ok(()));
    }

    #[test]
    fn rejects_bad_roles_and_parts() {
        for role in ["system", "assistant", "tool", "function"] {
            assert!(request(&with(json!([{ "role": role, "parts": [{ "text": "x" }] }]))).is_err(), "{role}");
        }
        assert!(request(&with(json!([]))).is_err());
        assert!(request(&json!({ "messages": [user("hi")] })).is_err());
        assert!(request(&with(json!([{ "role": "user", "parts": [] }]))).is_err());
        assert!(request(&with(json!([{ "role": "user", "parts": [{ "text": "a", "inlineData": { "mimeType": "image/png", "data": "AA==" } }] }]))).is_err());
        assert!(
            request(&with(
                json!([{ "role": "user", "parts": [{ "inlineData": { "mimeType": "image/png", "data": "%%" } }] }])
            ))
            .is_err()
        );
        assert!(request(&with(json!([{ "role": "user", "parts": [{ "content": "a" }] }]))).is_err());
        assert!(request(&json!({ "contents": [user("hi")], "systemInstruction": "be brief" })).is_err());
    }

    #[test]
    fn function_responses_must_answer_the_previous_calls() {
        let sig = Some(THOUGHT_SIGNATURE);
        assert!(request(&with(json!([user("hi"), call_turn(sig, None), response_turn("search", None)]))).is_ok());
        assert!(request(&with(json!([user("hi"), call_turn(sig, None), response_turn("other", None)]))).is_err());
        assert!(
            request(&with(json!([user("hi"), call_turn(sig, Some("c1")), response_turn("search", Some("c2"))])))
                .is_err()
        );
        assert!(request(&with(json!([user("hi"), response_turn("search", None)]))).is_err());
        let two = json!({ "role": "user", "parts": [
            { "functionResponse": { "name": "search", "response": {} } },
            { "functionResponse": { "name": "search", "response": {} } } ] });
        assert!(request(&with(json!([user("hi"), call_turn(sig, None), two]))).is_err(), "count mismatch");
        let string_response =
            json!({ "role": "user", "parts": [{ "functionResponse": { "name": "search", "response": "sunny" } }] });
        assert!(request(&with(json!([user("hi"), call_turn(sig, None), string_response]))).is_err());
    }

    #[test]
    fn replayed_calls_need_their_thought_signature() {
        let err = request(&with(json!([user("hi"), call_turn(None, None), response_turn("search", None)])));
        assert!(err.is_err_and(|m| m.contains("function call parts must carry their thought signature")));
        let wrong = request(&with(json!([user("hi"), call_turn(Some("other"), None), response_turn("search", None)])));
        assert!(wrong.is_err());
    }

    #[test]
    fn rejects_json_schema_only_keys_and_bad_configs() {
        let tool = |params: Value| json!({ "contents": [user("hi")], "tools": [{ "functionDeclarations": [{ "name": "f", "parameters": params }] }] });
        let nested =
            json!({ "type": "object", "properties": { "a": { "type": "object", "additionalProperties": false } } });
        assert!(request(&tool(nested)).is_err_and(|m| m.contains("additionalProperties")));
        assert!(
            request(&tool(json!({ "$schema": "http://json-schema.org/draft-07/schema#", "type": "object" }))).is_err()
        );
        let bad_name =
            json!({ "contents": [user("hi")], "tools": [{ "functionDeclarations": [{ "name": "9 bad" }] }] });
        assert!(request(&bad_name).is_err());
        let cfg = |g: Value| json!({ "contents": [user("hi")], "generationConfig": g });
        assert!(request(&cfg(json!({ "max_tokens": 5 }))).is_err());
        assert!(request(&cfg(json!({ "temperature": 2.5 }))).is_err());
        assert!(request(&cfg(json!({ "stopSequences": ["1", "2", "3", "4", "5", "6"] }))).is_err());
        assert!(request(&cfg(json!({ "maxOutputTokens": "5" }))).is_err());
        let mode =
            |m: &str| json!({ "contents": [user("hi")], "toolConfig": { "functionCallingConfig": { "mode": m } } });
        assert!(request(&mode("REQUIRED")).is_err());
        assert!(request(&mode("NONE")).is_ok());
    }

    #[test]
    fn embedding_requests() {
        let c = json!({ "parts": [{ "text": "a" }] });
        assert_eq!(embed_content(&json!({ "content": c }), "text-embedding-004"), Ok(()));
        assert!(embed_content(&json!({ "content": { "parts": [] } }), "m").is_err());
        let batch =
            json!({ "requests": [{ "model": "models/m", "content": c }, { "model": "models/m", "content": c }] });
        assert_eq!(batch_embed(&batch, "m"), Ok(2));
        assert!(batch_embed(&json!({ "requests": [{ "model": "m", "content": c }] }), "m").is_err());
    }
}
