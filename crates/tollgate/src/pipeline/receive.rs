//! Stage 1: read the body within its size limit and parse only what the
//! gateway needs. The returned `Parsed` borrows the body: every field not
//! named here travels upstream as the exact bytes the client sent.

use std::borrow::Cow;

use axum::body::Body;
use bytes::Bytes;
use http::{HeaderMap, header};
use http_body_util::{BodyExt, Limited};
use serde_json::value::RawValue;

use crate::error::RequestError;
use crate::limits::Estimate;
use crate::wire::Operation;
use crate::wire::json::RawObject;

pub struct Parsed<'a> {
    pub obj: RawObject<'a>,
    pub model: Cow<'a, str>,
    pub stream: bool,
}

pub async fn read_body(body: Body, headers: &HeaderMap, limit: usize) -> Result<Bytes, RequestError> {
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(RequestError::TooLarge { limit });
    }
    match Limited::new(body, limit).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(RequestError::TooLarge { limit }),
        // axum wraps the body's own error: look through it for the timeout.
        Err(e) if timed_out(&*e) => Err(RequestError::BodyTimeout(e.to_string())),
        Err(e) => Err(RequestError::InvalidJson(format!("could not read the request body: {e}"))),
    }
}

fn timed_out(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if err.is::<super::body_timeout::BodyTimeout>() {
            return true;
        }
        cur = err.source();
    }
    false
}

pub fn parse(op: Operation, bytes: &Bytes) -> Result<Parsed<'_>, RequestError> {
    if bytes.is_empty() {
        return Err(RequestError::InvalidJson("the request body is empty; send a JSON object".into()));
    }
    let obj = RawObject::parse(bytes).map_err(|e| {
        RequestError::InvalidJson(format!("the request body is not valid JSON: {e}; send a JSON object"))
    })?;
    let model = match obj.get("model") {
        None => return Err(RequestError::MissingField("model")),
        Some(raw) => as_str(raw).ok_or_else(|| invalid("model", "must be a string naming a model"))?,
    };
    if model.is_empty() {
        return Err(invalid("model", "must not be empty"));
    }
    let stream = match obj.get("stream").map(RawValue::get) {
        None | Some("null") | Some("false") => false,
        Some("true") => true,
        Some(_) => return Err(invalid("stream", "must be true or false")),
    };
    match op {
        Operation::ChatCompletions => {
            let messages = obj.get("messages").ok_or(RequestError::MissingField("messages"))?;
            if !messages.get().starts_with('[') {
                return Err(invalid("messages", "must be an array of messages"));
            }
            // Each message is an object; a cheap look at the first keeps an
            // array of arrays (however deep) from going any further.
            let first = messages.get()[1..].trim_start();
            if !first.starts_with('{') && !first.starts_with(']') {
                return Err(invalid("messages", "must be an array of message objects ({\"role\": …, \"content\": …})"));
            }
            if messages.get() == "[]" || messages.get().trim_start_matches('[').trim_start().starts_with(']') {
                return Err(invalid("messages", "must contain at least one message"));
            }
            check_type(&obj, "n", |s| s.bytes().all(|b| b.is_ascii_digit()), "must be a positive integer")?;
            check_type(&obj, "tools", |s| s.starts_with('['), "must be an array of tools")?;
            check_type(&obj, "stream_options", |s| s.starts_with('{'), "must be an object")?;
            check_type(&obj, "response_format", |s| s.starts_with('{'), "must be an object")?;
        }
        Operation::Embeddings => {
            let Some(input) = obj.get("input") else { return Err(RequestError::MissingField("input")) };
            // A string, strings, token ids or arrays of token ids: nothing deeper.
            let inner = input.get().strip_prefix('[').map(str::trim_start);
            if inner.and_then(|i| i.strip_prefix('[')).is_some_and(|i| i.trim_start().starts_with(['[', '{', '"'])) {
                return Err(invalid("input", "must be a string, an array of strings or an array of token-id arrays"));
            }
            if stream {
                return Err(invalid("stream", "is not supported for embeddings"));
            }
        }
    }
    Ok(Parsed { obj, model, stream })
}

fn invalid(field: &'static str, problem: &str) -> RequestError {
    RequestError::InvalidField { field, problem: problem.to_string() }
}

fn check_type(
    obj: &RawObject<'_>,
    field: &'static str,
    ok: impl Fn(&str) -> bool,
    problem: &str,
) -> Result<(), RequestError> {
    match obj.get(field).map(RawValue::get) {
        None | Some("null") => Ok(()),
        Some(s) if ok(s) => Ok(()),
        Some(_) => Err(invalid(field, problem)),
    }
}

/// A JSON string's contents, borrowed when it needs no unescaping (the
/// common case) and decoded otherwise.
fn as_str(raw: &RawValue) -> Option<Cow<'_, str>> {
    let s = raw.get();
    let inner = s.strip_prefix('"')?.strip_suffix('"')?;
    if inner.contains('\\') {
        return serde_json::from_str::<String>(s).ok().map(Cow::Owned);
    }
    Some(Cow::Borrowed(inner))
}

/// Output allowance assumed when a chat request sets no `max_tokens`.
pub const DEFAULT_MAX_OUTPUT: u64 = 4096;

/// Token counts known before the call: the prompt estimated from its bytes
/// (about four per token), the output allowance from `max_completion_tokens`
/// or `max_tokens`.
pub fn estimate(op: Operation, req: &Parsed<'_>) -> Estimate {
    let field = |k: &str| req.obj.get(k).map_or(0, |v| v.get().len() as u64);
    match op {
        Operation::ChatCompletions => {
            let max = req.obj.field::<u64>("max_completion_tokens").ok().flatten();
            let max = max.or_else(|| req.obj.field::<u64>("max_tokens").ok().flatten());
            let n = req.obj.field::<u64>("n").ok().flatten().unwrap_or(1).max(1);
            let prompt = (field("messages") + field("tools")).div_ceil(4);
            Estimate { prompt, max_output: max.unwrap_or(DEFAULT_MAX_OUTPUT).saturating_mul(n) }
        }
        Operation::Embeddings => Estimate { prompt: field("input").div_ceil(4), max_output: 0 },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(body: &str) -> Result<(String, bool), String> {
        let b = Bytes::from(body.to_string());
        parse(Operation::ChatCompletions, &b).map(|p| (p.model.to_string(), p.stream)).map_err(|e| e.to_string())
    }

    #[test]
    fn bad_input_names_the_problem() {
        assert!(p("").unwrap_err().contains("empty"));
        assert!(p("{").unwrap_err().contains("not valid JSON"));
        assert!(p("[]").unwrap_err().contains("not valid JSON"));
        assert_eq!(p(r#"{"messages":[{}]}"#).unwrap_err(), "`model` is required");
        assert!(p(r#"{"model":5,"messages":[{}]}"#).unwrap_err().starts_with("`model` must be a string"));
        assert!(p(r#"{"model":"m"}"#).unwrap_err().contains("`messages` is required"));
        assert!(p(r#"{"model":"m","messages":{}}"#).unwrap_err().contains("array"));
        assert!(p(r#"{"model":"m","messages":[ ]}"#).unwrap_err().contains("at least one"));
        assert!(p(r#"{"model":"m","messages":[{}],"stream":"yes"}"#).unwrap_err().contains("`stream`"));
        assert!(p(r#"{"model":"m","messages":[{}],"n":"2"}"#).unwrap_err().contains("`n`"));
        assert_eq!(p(r#"{"model":"m","messages":[{}],"stream":true,"x":1}"#).unwrap(), ("m".into(), true));
    }
}
