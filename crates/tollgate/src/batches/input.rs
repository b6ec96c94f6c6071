//! The batch input file: JSONL, one request per line, each
//! `{custom_id, method: "POST", url, body}`. Checked whole at upload, so a
//! batch never starts on a file that would fail half way; every error names
//! the line and what to change.

use std::collections::{BTreeMap, HashSet};

use serde_json::Value;
use serde_json::value::RawValue;

/// The endpoints a batch line may call.
pub const ENDPOINTS: &[&str] = &["/v1/chat/completions", "/v1/embeddings", "/v1/responses", "/v1/messages"];

/// Most lines one input file may hold (OpenAI's limit too).
pub const MAX_LINES: usize = 50_000;

/// Longest `custom_id` accepted.
const MAX_CUSTOM_ID: usize = 512;

/// One request of a batch.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    /// 0-based position among the requests (blank lines are not counted).
    pub index: u64,
    pub custom_id: String,
    pub url: String,
    /// The request body, as the client wrote it.
    pub body: bytes::Bytes,
}

/// Parses and checks an input file. The error says which line (1-based, as
/// an editor shows it) and what to fix.
pub fn parse(content: &[u8]) -> Result<Vec<Line>, String> {
    let text = std::str::from_utf8(content).map_err(|e| {
        let line = content[..e.valid_up_to()].iter().filter(|b| **b == b'\n').count() + 1;
        format!("line {line}: the file is not UTF-8 text; save it as UTF-8 JSONL")
    })?;
    let mut out = Vec::new();
    let mut ids = HashSet::new();
    for (n, raw) in text.split('\n').enumerate() {
        let n = n + 1;
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        if raw.trim().is_empty() {
            continue;
        }
        if out.len() == MAX_LINES {
            return Err(format!("line {n}: a batch holds at most {MAX_LINES} requests; split the file"));
        }
        let line = one(raw).map_err(|why| format!("line {n}: {why}"))?;
        if !ids.insert(line.custom_id.clone()) {
            return Err(format!(
                "line {n}: custom_id `{}` is used by an earlier line; every line needs its own custom_id",
                line.custom_id
            ));
        }
        out.push(Line { index: out.len() as u64, ..line });
    }
    if out.is_empty() {
        return Err("the file holds no requests; write one JSON object per line: \
                    {\"custom_id\": \"…\", \"method\": \"POST\", \"url\": \"/v1/chat/completions\", \"body\": {…}}"
            .into());
    }
    Ok(out)
}

fn one(raw: &str) -> Result<Line, String> {
    // Raw values, so the body is sent byte for byte as the client wrote it.
    let o: BTreeMap<String, Box<RawValue>> = serde_json::from_str(raw).map_err(|e| {
        if raw.trim_start().starts_with('{') {
            format!("not valid JSON ({e}); write one JSON object per line")
        } else {
            "not a JSON object; write {\"custom_id\", \"method\", \"url\", \"body\"}".to_string()
        }
    })?;
    for k in o.keys() {
        if !matches!(k.as_str(), "custom_id" | "method" | "url" | "body") {
            return Err(format!("unknown field `{k}`; a line has only custom_id, method, url and body"));
        }
    }
    let field = |k: &str| o.get(k).map(|r| serde_json::from_str::<Value>(r.get()).unwrap_or(Value::Null));
    let custom_id = match field("custom_id") {
        Some(Value::String(s)) if !s.is_empty() && s.len() <= MAX_CUSTOM_ID => s,
        Some(Value::String(s)) if s.is_empty() => return Err("`custom_id` is empty; give every line an id".into()),
        Some(Value::String(_)) => return Err(format!("`custom_id` is longer than {MAX_CUSTOM_ID} characters")),
        Some(_) => return Err("`custom_id` must be a string".into()),
        None => return Err("`custom_id` is missing; give every line a unique id to match its result".into()),
    };
    match field("method") {
        Some(Value::String(m)) if m == "POST" => {}
        Some(m) => return Err(format!("`method` is {m}; it must be \"POST\"")),
        None => return Err("`method` is missing; set it to \"POST\"".into()),
    }
    let url = match field("url") {
        Some(Value::String(u)) if ENDPOINTS.contains(&u.as_str()) => u,
        Some(u) => return Err(format!("`url` is {u}; it must be one of {}", ENDPOINTS.join(", "))),
        None => return Err(format!("`url` is missing; set it to one of {}", ENDPOINTS.join(", "))),
    };
    let body = match (field("body"), o.get("body")) {
        (Some(Value::Object(m)), Some(raw)) => {
            if !matches!(m.get("model"), Some(Value::String(s)) if !s.is_empty()) {
                return Err("`body.model` is missing; name the model each request calls".into());
            }
            if m.get("stream").is_some_and(|s| s != &Value::Bool(false) && !s.is_null()) {
                return Err("`body.stream` is set; batch requests cannot stream, remove it".into());
            }
            bytes::Bytes::copy_from_slice(raw.get().as_bytes())
        }
        (Some(_), _) => return Err("`body` must be a JSON object: the request body for the url".into()),
        _ => return Err("`body` is missing; it is the request body for the url".into()),
    };
    Ok(Line { index: 0, custom_id, url, body })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str =
        r#"{"custom_id":"a","method":"POST","url":"/v1/chat/completions","body":{"model":"m","messages":[]}}"#;

    fn err(text: &str) -> String {
        parse(text.as_bytes()).unwrap_err()
    }

    #[test]
    fn good_lines_parse_with_their_positions() {
        let two = format!("{GOOD}\r\n\n{}\n", GOOD.replace("\"a\"", "\"b\""));
        let lines = parse(two.as_bytes()).unwrap();
        assert_eq!(lines.len(), 2);
        assert_eq!((lines[1].index, lines[1].custom_id.as_str()), (1, "b"));
        assert_eq!(&lines[0].body[..], br#"{"model":"m","messages":[]}"#, "the body is kept byte for byte");
    }

    #[test]
    fn every_error_names_its_line_and_the_fix() {
        assert!(err("").contains("no requests"));
        assert!(err("{nope").starts_with("line 1: not valid JSON"));
        let dup = format!("{GOOD}\n{GOOD}");
        assert!(err(&dup).starts_with("line 2: custom_id `a` is used by an earlier line"), "{}", err(&dup));
        let bad_url = GOOD.replace("/v1/chat/completions", "/v1/completions");
        assert!(
            err(&format!("{GOOD}\n\n{bad_url}")).starts_with("line 3: `url` is \"/v1/completions\"; it must be one of")
        );
        assert!(err(&GOOD.replace("POST", "GET")).contains("it must be \"POST\""));
        assert!(err(&GOOD.replace("\"model\":\"m\"", "\"x\":1")).contains("`body.model` is missing"));
        assert!(err(&GOOD.replace("\"model\":\"m\"", "\"model\":\"m\",\"stream\":true")).contains("cannot stream"));
        assert!(err(&GOOD.replace("\"custom_id\":\"a\"", "\"custom_id\":7")).contains("must be a string"));
        assert!(err(&GOOD.replace("\"custom_id\":\"a\",", "")).contains("`custom_id` is missing"));
        assert!(err(&GOOD.replace("\"method\"", "\"extra\":1,\"method\"")).contains("unknown field `extra`"));
        assert!(err("[1]").contains("not a JSON object"));
        assert!(parse(b"\xff\xfe").unwrap_err().contains("not UTF-8"));
    }

    #[test]
    fn a_file_past_the_line_limit_is_refused() {
        let mut text = String::new();
        for i in 0..=MAX_LINES {
            text.push_str(&GOOD.replace("\"a\"", &format!("\"{i}\"")));
            text.push('\n');
        }
        assert!(err(&text).starts_with(&format!("line {}: a batch holds at most", MAX_LINES + 1)));
    }
}
