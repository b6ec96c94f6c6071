//! Checks of a Gemini request's `tools`, `generationConfig` and
//! `toolConfig`, as the real API applies them (tested through
//! `validate::request`).

use serde_json::{Map, Value};

use super::validate::{object, only_keys, unknown};

const GENERATION_KEYS: &[&str] = &[
    "temperature",
    "topP",
    "topK",
    "candidateCount",
    "maxOutputTokens",
    "stopSequences",
    "responseMimeType",
    "responseSchema",
    "responseJsonSchema",
    "presencePenalty",
    "frequencyPenalty",
    "seed",
    "thinkingConfig",
    "responseLogprobs",
    "logprobs",
    "responseModalities",
];
const TOOL_KEYS: &[&str] =
    &["functionDeclarations", "googleSearch", "googleSearchRetrieval", "codeExecution", "urlContext"];
const DECLARATION_KEYS: &[&str] =
    &["name", "description", "parameters", "parametersJsonSchema", "response", "responseJsonSchema", "behavior"];
const MODES: &[&str] = &["AUTO", "ANY", "NONE", "VALIDATED"];

fn number_in(obj: &Map<String, Value>, key: &str, lo: f64, hi: f64, at: &str) -> Result<(), String> {
    match obj.get(key) {
        None => Ok(()),
        Some(v) => match v.as_f64() {
            Some(x) if (lo..=hi).contains(&x) => Ok(()),
            _ => Err(format!("{at}.{key}: {v} is out of range; it must be a number in [{lo}, {hi}]")),
        },
    }
}

fn valid_function_name(n: &str) -> bool {
    let mut b = n.bytes();
    b.next().is_some_and(|c| c.is_ascii_alphabetic() || c == b'_')
        && n.len() <= 64
        && b.all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b':' | b'-'))
}

pub(super) fn tools(t: &Value) -> Result<(), String> {
    let list = t.as_array().ok_or("tools must be an array")?;
    for (i, tool) in list.iter().enumerate() {
        let at = format!("tools[{i}]");
        only_keys(object(tool, &at)?, TOOL_KEYS, &at)?;
        let Some(decls) = tool.get("functionDeclarations") else { continue };
        let decls = decls.as_array().ok_or_else(|| format!("{at}.function_declarations must be an array"))?;
        for (j, d) in decls.iter().enumerate() {
            let at = format!("{at}.function_declarations[{j}]");
            let obj = object(d, &at)?;
            only_keys(obj, DECLARATION_KEYS, &at)?;
            let name = d.get("name").and_then(Value::as_str).unwrap_or_default();
            if !valid_function_name(name) {
                return Err(format!(
                    "* GenerateContentRequest.{at}.name: Invalid function name {name:?}. Must start with a letter or an \
                     underscore. Must be alphameric (a-z, A-Z, 0-9), underscores (_), dots (.), colons (:), or dashes (-), \
                     with a maximum length of 64."
                ));
            }
            if d.get("description").is_some_and(|x| !x.is_string()) {
                return Err(format!("{at}.description must be a string"));
            }
            if obj.contains_key("parameters") && obj.contains_key("parametersJsonSchema") {
                return Err(format!("{at}: set only one of parameters and parametersJsonSchema"));
            }
            if let Some(p) = d.get("parameters") {
                object(p, &format!("{at}.parameters"))?;
                schema(p, &format!("{at}.parameters"))?;
            }
        }
    }
    Ok(())
}

/// The OpenAPI-subset `Schema` rejects JSON-Schema-only keys; property
/// names (the keys of `properties`) are free.
fn schema(v: &Value, at: &str) -> Result<(), String> {
    match v {
        Value::Object(obj) => {
            for (k, val) in obj {
                if k == "additionalProperties" || k == "$schema" {
                    return Err(format!(
                        "{} (function parameters do not accept {k}; use parametersJsonSchema for full JSON Schema)",
                        unknown(k, at)
                    ));
                }
                match (k.as_str(), val) {
                    ("properties", Value::Object(props)) => {
                        for (name, sub) in props {
                            schema(sub, &format!("{at}.properties[{name}]"))?;
                        }
                    }
                    _ => schema(val, &format!("{at}.{k}"))?,
                }
            }
            Ok(())
        }
        Value::Array(items) => items.iter().try_for_each(|x| schema(x, at)),
        _ => Ok(()),
    }
}

pub(super) fn generation_config(g: &Value) -> Result<(), String> {
    let at = "generation_config";
    let obj = object(g, at)?;
    only_keys(obj, GENERATION_KEYS, at)?;
    number_in(obj, "temperature", 0.0, 2.0, at)?;
    number_in(obj, "topP", 0.0, 1.0, at)?;
    number_in(obj, "presencePenalty", -2.0, 2.0, at)?;
    number_in(obj, "frequencyPenalty", -2.0, 2.0, at)?;
    for k in ["topK", "candidateCount", "maxOutputTokens", "seed", "logprobs"] {
        if obj.get(k).is_some_and(|v| !v.is_i64() && !v.is_u64()) {
            return Err(format!("Invalid value at '{at}.{k}' (TYPE_INT32), {}", obj[k]));
        }
    }
    if obj.get("maxOutputTokens").and_then(Value::as_i64).is_some_and(|n| n < 1) {
        return Err(format!("{at}.max_output_tokens must be positive"));
    }
    if let Some(s) = obj.get("stopSequences") {
        let list = s.as_array().filter(|l| l.iter().all(Value::is_string));
        let list = list.ok_or_else(|| format!("{at}.stop_sequences must be an array of strings"))?;
        if list.len() > 5 {
            return Err(format!("{at}.stop_sequences: at most 5 stop sequences are allowed, got {}", list.len()));
        }
    }
    if obj.get("responseMimeType").is_some_and(|m| !m.is_string()) {
        return Err(format!("{at}.response_mime_type must be a string"));
    }
    if let Some(t) = obj.get("thinkingConfig") {
        let at = format!("{at}.thinking_config");
        let t = object(t, &at)?;
        only_keys(t, &["includeThoughts", "thinkingBudget", "thinkingLevel"], &at)?;
        if t.get("includeThoughts").is_some_and(|x| !x.is_boolean())
            || t.get("thinkingBudget").is_some_and(|x| !x.is_i64())
        {
            return Err(format!("{at}: includeThoughts is a boolean and thinkingBudget an integer"));
        }
    }
    Ok(())
}

pub(super) fn tool_config(t: &Value) -> Result<(), String> {
    let at = "tool_config";
    only_keys(object(t, at)?, &["functionCallingConfig", "retrievalConfig"], at)?;
    let Some(f) = t.get("functionCallingConfig") else { return Ok(()) };
    let at = "tool_config.function_calling_config";
    only_keys(object(f, at)?, &["mode", "allowedFunctionNames"], at)?;
    let mode = match f.get("mode") {
        None => "AUTO",
        Some(m) => m.as_str().filter(|m| MODES.contains(m)).ok_or_else(|| {
            format!("Invalid value at '{at}.mode' (type.googleapis.com/google.ai.generativelanguage.v1beta.FunctionCallingConfig.Mode), {m}")
        })?,
    };
    if let Some(names) = f.get("allowedFunctionNames") {
        if !names.as_array().is_some_and(|l| l.iter().all(Value::is_string)) {
            return Err(format!("{at}.allowed_function_names must be an array of strings"));
        }
        if mode != "ANY" && mode != "VALIDATED" {
            return Err("allowed_function_names should only be set when the Mode is ANY or VALIDATED.".into());
        }
    }
    Ok(())
}
