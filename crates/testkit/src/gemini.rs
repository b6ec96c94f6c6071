//! Gemini wire format: Google AI Studio (`/v1beta/models/{m}:…`) and Vertex
//! AI (`/v1/projects/{p}/locations/{l}/publishers/google/models/{m}:…`)
//! `generateContent` as JSON and as SSE (`alt=sse`), `embedContent`,
//! `batchEmbedContents`, and a service-account token endpoint (`POST
//! /token`, the JWT bearer grant). Request checks live in `validate`.

mod config;
mod token;
mod validate;

pub(crate) use token::percent_decode;
use token::{TOKEN_PREFIX, form_pairs, form_value};

use std::sync::Arc;

use bytes::Bytes;
use http::{Response, header};
use serde_json::{Value, json};

use crate::openai::full;
use crate::{Body, Fault, Recorded, State};

/// The signature the mock puts on the first function call it answers; a
/// replayed model turn must carry it back (the Gemini 3 rule).
pub(crate) const THOUGHT_SIGNATURE: &str = "gsig_mock_1";

fn status_name(status: u16) -> &'static str {
    match status {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        429 => "RESOURCE_EXHAUSTED",
        500 => "INTERNAL",
        503 => "UNAVAILABLE",
        _ => "UNKNOWN",
    }
}

fn google_error(code: u16, status: &str, message: &str) -> Response<Body> {
    full(
        code,
        "application/json",
        json!({ "error": { "code": code, "message": message, "status": status } }).to_string(),
    )
}

fn invalid(message: &str) -> Response<Body> {
    google_error(400, "INVALID_ARGUMENT", message)
}

pub(crate) fn error_response(status: u16, body: Option<&str>, retry_after: Option<&str>) -> Response<Body> {
    let body = body.map(str::to_string).unwrap_or_else(|| {
        json!({ "error": { "code": status, "message": format!("mock upstream error {status}"), "status": status_name(status) } })
            .to_string()
    });
    let mut r = full(status, "application/json", body);
    if let Some(ra) = retry_after
        && let Ok(v) = ra.parse()
    {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}

/// Which surface a request went to, the model in its path and the method.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Route<'a> {
    pub(crate) vertex: bool,
    pub(crate) model: &'a str,
    pub(crate) method: &'a str,
}

pub(crate) fn route(path: &str) -> Option<Route<'_>> {
    let (prefix, method) = path.rsplit_once(':')?;
    let (head, model) = prefix.rsplit_once("/models/")?;
    if model.is_empty() || model.contains('/') || method.is_empty() {
        return None;
    }
    let vertex = match head {
        "/v1beta" | "/v1" => false,
        _ => {
            let rest = head.strip_prefix("/v1/").or_else(|| head.strip_prefix("/v1beta1/"))?;
            let segs: Vec<&str> = rest.split('/').collect();
            match segs.as_slice() {
                ["projects", p, "locations", l, "publishers", "google"] if !p.is_empty() && !l.is_empty() => true,
                _ => return None,
            }
        }
    };
    Some(Route { vertex, model, method })
}

pub(crate) fn respond(req: &Recorded, fault: Option<Fault>, state: Arc<State>) -> Response<Body> {
    if req.path == "/token" {
        return token::token(req);
    }
    let Some(route) = route(&req.path) else {
        return google_error(404, "NOT_FOUND", &format!("the mock knows no Gemini path {}", req.path));
    };
    if req.method != "POST" {
        return google_error(404, "NOT_FOUND", &format!("{} {} is not a Gemini method", req.method, req.path));
    }
    if let Some(denied) = auth_failure(req, route.vertex) {
        return denied;
    }
    let v: Value = match serde_json::from_slice(&req.body) {
        Ok(v) => v,
        Err(e) => return invalid(&format!("Invalid JSON payload received. {e}")),
    };
    let query = form_pairs(req.query.as_deref().unwrap_or(""));
    match route.method {
        "generateContent" => generate(&v, route.model, false, fault, state),
        "streamGenerateContent" if form_value(&query, "alt").as_deref() == Some("sse") => {
            generate(&v, route.model, true, fault, state)
        }
        "streamGenerateContent" => invalid("this mock only streams with alt=sse"),
        "embedContent" => match validate::embed_content(&v, route.model) {
            Ok(()) => full(200, "application/json", json!({ "embedding": { "values": [0.1, 0.2, 0.3] } }).to_string()),
            Err(m) => invalid(&m),
        },
        "batchEmbedContents" => match validate::batch_embed(&v, route.model) {
            Ok(n) => {
                let embeddings: Vec<Value> = (0..n).map(|_| json!({ "values": [0.1, 0.2, 0.3] })).collect();
                full(200, "application/json", json!({ "embeddings": embeddings }).to_string())
            }
            Err(m) => invalid(&m),
        },
        // Vertex's text-embedding models: `instances: [{content}]` → `predictions`.
        "predict" if route.vertex => {
            let Some(instances) = v.get("instances").and_then(Value::as_array).filter(|i| !i.is_empty()) else {
                return invalid("instances must be a non-empty array");
            };
            if instances.iter().any(|i| !i.get("content").is_some_and(Value::is_string)) {
                return invalid("each instance needs a `content` string");
            }
            let predictions: Vec<Value> = instances
                .iter()
                .map(|_| json!({ "embeddings": { "values": [0.1, 0.2, 0.3], "statistics": { "token_count": 2, "truncated": false } } }))
                .collect();
            full(200, "application/json", json!({ "predictions": predictions }).to_string())
        }
        other => google_error(404, "NOT_FOUND", &format!("unknown method {other}")),
    }
}

/// AI Studio wants an API key (header or `key=`); Vertex an OAuth bearer
/// token this mock's token endpoint issued.
fn auth_failure(req: &Recorded, vertex: bool) -> Option<Response<Body>> {
    let header = |name: &str| req.headers.get(name).and_then(|h| h.to_str().ok());
    if vertex {
        let ok = header("authorization")
            .and_then(|h| h.strip_prefix("Bearer "))
            .is_some_and(|t| t.len() > TOKEN_PREFIX.len() && t.starts_with(TOKEN_PREFIX));
        (!ok).then(|| {
            google_error(
                401,
                "UNAUTHENTICATED",
                "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.",
            )
        })
    } else {
        let in_header = header("x-goog-api-key").is_some_and(|k| !k.trim().is_empty());
        let in_query =
            form_value(&form_pairs(req.query.as_deref().unwrap_or("")), "key").is_some_and(|k| !k.is_empty());
        (!in_header && !in_query).then(|| {
            google_error(
                403,
                "PERMISSION_DENIED",
                "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.",
            )
        })
    }
}

/// What the mock answers a generateContent request with.
#[derive(Debug, PartialEq)]
pub(crate) enum Reply {
    /// Function calls: (name, args).
    Calls(Vec<(String, Value)>),
    Text {
        text: String,
        max_tokens: bool,
    },
}

fn parts_of(c: &Value) -> &[Value] {
    c.get("parts").and_then(Value::as_array).map_or(&[][..], Vec::as_slice)
}

fn is_user(c: &Value) -> bool {
    c.get("role").and_then(Value::as_str).unwrap_or("user") == "user"
}

/// The text of a function response: its `result`/`output`/`content`
/// string if it has one, else the whole response object as JSON.
fn result_text(resp: &Value) -> String {
    ["result", "output", "content"]
        .iter()
        .find_map(|k| resp.get(*k).and_then(Value::as_str))
        .map_or_else(|| resp.to_string(), str::to_string)
}

pub(crate) fn reply(v: &Value) -> Reply {
    let tools: Vec<&str> = v
        .get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|t| t.get("functionDeclarations").and_then(Value::as_array))
        .flatten()
        .filter_map(|d| d.get("name").and_then(Value::as_str))
        .collect();
    let contents = v.get("contents").and_then(Value::as_array).map_or(&[][..], Vec::as_slice);
    let last_user = contents.iter().rev().find(|c| is_user(c)).map_or(&[][..], parts_of);
    let results: Vec<String> =
        last_user.iter().filter_map(|p| p.pointer("/functionResponse/response")).map(result_text).collect();
    let text: String = last_user.iter().filter_map(|p| p.get("text").and_then(Value::as_str)).collect();
    if let Some(first) = tools.first()
        && results.is_empty()
    {
        let mut calls = vec![(first.to_string(), json!({ "q": "x" }))];
        if text.contains("[parallel]") {
            calls.push((tools.get(1).unwrap_or(first).to_string(), json!({ "q": "y" })));
        }
        return Reply::Calls(calls);
    }
    if v.pointer("/generationConfig/maxOutputTokens").and_then(Value::as_u64).is_some_and(|n| n < 5) {
        return Reply::Text { text: "upstream".into(), max_tokens: true };
    }
    let text = if results.is_empty() {
        format!("upstream says: {text}")
    } else {
        format!("tool said: {}", results.join(" | "))
    };
    Reply::Text { text, max_tokens: false }
}

/// The parts of the answer, one group per streamed chunk.
fn part_groups(r: &Reply, thoughts: bool, stream: bool) -> Vec<Vec<Value>> {
    let mut groups = Vec::new();
    if thoughts {
        groups.push(vec![json!({ "text": "mock reasoning", "thought": true })]);
    }
    match r {
        Reply::Calls(calls) => groups.push(
            calls
                .iter()
                .enumerate()
                .map(|(i, (name, args))| {
                    let mut p = json!({ "functionCall": { "name": name, "args": args } });
                    if i == 0 {
                        p["thoughtSignature"] = json!(THOUGHT_SIGNATURE);
                    }
                    p
                })
                .collect(),
        ),
        Reply::Text { text, .. } if stream => {
            groups.extend(text.split_inclusive(' ').map(|w| vec![json!({ "text": w })]));
        }
        Reply::Text { text, .. } => groups.push(vec![json!({ "text": text })]),
    }
    groups
}

fn usage(thoughts: bool) -> Value {
    let mut u = json!({ "promptTokenCount": 11, "candidatesTokenCount": 7, "totalTokenCount": 18, "cachedContentTokenCount": 3 });
    if thoughts {
        u["thoughtsTokenCount"] = json!(5);
        u["totalTokenCount"] = json!(23);
    }
    u
}

fn chunk(model: &str, parts: Vec<Value>, finish: Option<(&str, Value)>) -> Value {
    let mut cand = json!({ "content": { "role": "model", "parts": parts }, "index": 0 });
    let mut c = json!({ "candidates": [], "modelVersion": model, "responseId": "gemini-mock-1" });
    if let Some((reason, usage)) = finish {
        cand["finishReason"] = json!(reason);
        c["usageMetadata"] = usage;
    }
    c["candidates"] = json!([cand]);
    c
}

fn generate(v: &Value, model: &str, stream: bool, fault: Option<Fault>, state: Arc<State>) -> Response<Body> {
    if let Err(m) = validate::request(v) {
        return invalid(&m);
    }
    let r = reply(v);
    let thoughts = v.pointer("/generationConfig/thinkingConfig/includeThoughts").and_then(Value::as_bool) == Some(true);
    let finish = match r {
        Reply::Text { max_tokens: true, .. } => "MAX_TOKENS",
        _ => "STOP",
    };
    let groups = part_groups(&r, thoughts, stream);
    if !stream {
        let parts: Vec<Value> = groups.into_iter().flatten().collect();
        return full(200, "application/json", chunk(model, parts, Some((finish, usage(thoughts)))).to_string());
    }
    let last = groups.len().saturating_sub(1);
    let mut events: Vec<Bytes> = groups
        .into_iter()
        .enumerate()
        .map(|(i, parts)| {
            let end = (i == last).then(|| (finish, usage(thoughts)));
            Bytes::from(format!("data: {}\r\n\r\n", chunk(model, parts, end)))
        })
        .collect();
    if let Some(Fault::StreamError { after_events, status }) = &fault {
        let name = match *status {
            429 => "RESOURCE_EXHAUSTED",
            503 => "UNAVAILABLE",
            _ => "INTERNAL",
        };
        events.truncate(*after_events);
        let err = json!({ "error": { "code": status, "message": "mock upstream in-stream error", "status": name } });
        events.push(Bytes::from(format!("data: {err}\r\n\r\n")));
    }
    crate::wire::paced(events, &fault, state, "text/event-stream")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_ai_studio_and_vertex_paths() {
        assert_eq!(
            route("/v1beta/models/gemini-2.5-flash:streamGenerateContent"),
            Some(Route { vertex: false, model: "gemini-2.5-flash", method: "streamGenerateContent" })
        );
        assert_eq!(
            route("/v1/projects/p1/locations/us-central1/publishers/google/models/gemini-2.5-pro:generateContent"),
            Some(Route { vertex: true, model: "gemini-2.5-pro", method: "generateContent" })
        );
        assert_eq!(route("/v1/projects/p1/publishers/google/models/g:generateContent"), None);
        assert_eq!(route("/v1beta/models/:generateContent"), None);
    }

    fn req(contents: Value) -> Value {
        json!({ "contents": contents, "tools": [{ "functionDeclarations": [{ "name": "search" }, { "name": "fetch" }] }] })
    }

    #[test]
    fn replies_follow_the_contract() {
        let v = req(json!([{ "role": "user", "parts": [{ "text": "hi " }, { "text": "[parallel]" }] }]));
        assert_eq!(
            reply(&v),
            Reply::Calls(vec![("search".into(), json!({ "q": "x" })), ("fetch".into(), json!({ "q": "y" }))])
        );
        let v = req(json!([
            { "role": "user", "parts": [{ "text": "hi" }] },
            { "role": "model", "parts": [{ "functionCall": { "name": "search", "args": { "q": "x" } }, "thoughtSignature": THOUGHT_SIGNATURE }] },
            { "role": "user", "parts": [{ "functionResponse": { "name": "search", "response": { "result": "sunny" } } }] }
        ]));
        assert_eq!(reply(&v), Reply::Text { text: "tool said: sunny".into(), max_tokens: false });
        let v = json!({ "contents": [{ "role": "user", "parts": [{ "text": "hello" }] }], "generationConfig": { "maxOutputTokens": 3 } });
        assert_eq!(reply(&v), Reply::Text { text: "upstream".into(), max_tokens: true });
        let v = json!({ "contents": [{ "parts": [{ "text": "hello" }] }] });
        assert_eq!(reply(&v), Reply::Text { text: "upstream says: hello".into(), max_tokens: false });
    }

    #[test]
    fn first_call_carries_the_signature_and_streams_word_by_word() {
        let calls = Reply::Calls(vec![("a".into(), json!({ "q": "x" })), ("a".into(), json!({ "q": "y" }))]);
        let g = part_groups(&calls, true, true);
        assert_eq!(g.len(), 2);
        assert_eq!(g[1][0]["thoughtSignature"], THOUGHT_SIGNATURE);
        assert!(g[1][1].get("thoughtSignature").is_none());
        let text = Reply::Text { text: "upstream says: hi".into(), max_tokens: false };
        assert_eq!(part_groups(&text, false, true).len(), 3);
        assert_eq!(part_groups(&text, false, false).len(), 1);
    }
}
