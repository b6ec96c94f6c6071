//! The text of a call, as each protocol carries it. Guardrails judge text
//! (what a person or a tool wrote), not JSON syntax: a key name or a model
//! id is not PII. Each shape names where its text sits; a mutator rewrites
//! those strings in place and the document is written back.

use serde_json::Value;

/// A JSON document's shape: which protocol message it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// OpenAI `chat/completions`, `completions` or `embeddings` request.
    ChatRequest,
    /// Anthropic `/v1/messages` request.
    MessagesRequest,
    /// OpenAI chat completion (complete answer).
    ChatResponse,
    /// Anthropic message (complete answer).
    MessagesResponse,
    /// A tool call's arguments: every string in it.
    ToolArgs,
    /// A tool's result (MCP `CallToolResult`).
    ToolResult,
    /// An A2A request to an agent: the text and data of every message part in it.
    A2aRequest,
    /// What an A2A agent sends back (a message, a task with its history and
    /// artifacts, a stream event): every part in it, as content no user wrote.
    A2aResponse,
}

/// Who wrote a text: what `prompt_injection` weighs a phrase by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    User,
    System,
    Assistant,
    /// A tool's output or retrieved content.
    Tool,
    /// Arguments a model chose for a tool.
    Arguments,
}

impl Source {
    /// Tool output is content no user wrote: imperative text in it weighs more.
    pub fn injection(self) -> detectors::injection::Source {
        match self {
            Source::Tool => detectors::injection::Source::Tool,
            _ => detectors::injection::Source::User,
        }
    }
}

/// Every text of `doc` with who wrote it, as mutable strings.
pub fn texts(doc: &mut Value, shape: Shape) -> Vec<(Source, &mut String)> {
    let mut out = Vec::new();
    match shape {
        Shape::ChatRequest => chat_request(doc, &mut out),
        Shape::MessagesRequest => messages_request(doc, &mut out),
        Shape::ChatResponse => {
            if let Some(choices) = doc.get_mut("choices").and_then(Value::as_array_mut) {
                for c in choices {
                    if let Some(m) = c.get_mut("message") {
                        chat_message(m, Source::Assistant, &mut out);
                    }
                }
            }
        }
        Shape::MessagesResponse => {
            if let Some(blocks) = doc.get_mut("content") {
                blocks_text(blocks, Source::Assistant, &mut out);
            }
        }
        Shape::ToolArgs => all_strings(doc, Source::Arguments, &mut out),
        Shape::ToolResult => match doc {
            Value::String(s) => out.push((Source::Tool, s)),
            Value::Object(m) => {
                for (k, v) in m.iter_mut() {
                    match k.as_str() {
                        "content" => blocks_text(v, Source::Tool, &mut out),
                        "structuredContent" => all_strings(v, Source::Tool, &mut out),
                        _ => {}
                    }
                }
            }
            _ => {}
        },
        Shape::A2aRequest => a2a_parts(doc, Source::User, &mut out),
        Shape::A2aResponse => a2a_parts(doc, Source::Tool, &mut out),
    }
    out
}

/// Every `parts` (or `content`) list anywhere in an A2A document, whichever generation:
/// a part's `text`, and every string of a `data` part (v0.3 tags parts with
/// `kind`, v1.0 names the member). File parts are not text.
fn a2a_parts<'v>(doc: &'v mut Value, source: Source, out: &mut Vec<(Source, &'v mut String)>) {
    match doc {
        Value::Array(a) => a.iter_mut().for_each(|x| a2a_parts(x, source, out)),
        Value::Object(m) => {
            for (k, v) in m.iter_mut() {
                match (k.as_str(), v) {
                    // v0.3's REST binding names a message's parts `content`.
                    ("parts" | "content", Value::Array(parts)) => {
                        for p in parts {
                            let Value::Object(pm) = p else { continue };
                            for (pk, pv) in pm.iter_mut() {
                                match (pk.as_str(), pv) {
                                    ("text", Value::String(s)) => out.push((source, s)),
                                    ("data", d) => all_strings(d, source, out),
                                    _ => {}
                                }
                            }
                        }
                    }
                    (_, v @ (Value::Object(_) | Value::Array(_))) => a2a_parts(v, source, out),
                    _ => {}
                }
            }
        }
        _ => {}
    }
}

/// The size of the text in `doc`, in bytes.
pub fn text_len(doc: &mut Value, shape: Shape) -> usize {
    texts(doc, shape).iter().map(|(_, t)| t.len()).sum()
}

fn chat_request<'v>(doc: &'v mut Value, out: &mut Vec<(Source, &'v mut String)>) {
    let Value::Object(m) = doc else { return };
    for (k, v) in m.iter_mut() {
        match k.as_str() {
            "messages" => {
                if let Value::Array(msgs) = v {
                    for msg in msgs {
                        let source = role(msg);
                        chat_message(msg, source, out);
                    }
                }
            }
            // completions' `prompt`, embeddings' `input`: strings or lists of them.
            "prompt" | "input" => all_strings(v, Source::User, out),
            _ => {}
        }
    }
}

fn role(msg: &Value) -> Source {
    match msg.get("role").and_then(Value::as_str) {
        Some("system" | "developer") => Source::System,
        Some("assistant") => Source::Assistant,
        Some("tool" | "function") => Source::Tool,
        _ => Source::User,
    }
}

/// An OpenAI message: `content` (a string or text parts) and the arguments
/// of any tool calls.
fn chat_message<'v>(msg: &'v mut Value, source: Source, out: &mut Vec<(Source, &'v mut String)>) {
    let Value::Object(m) = msg else { return };
    for (k, v) in m.iter_mut() {
        match k.as_str() {
            "content" => match v {
                Value::String(s) => out.push((source, s)),
                Value::Array(parts) => {
                    for p in parts {
                        if let Some(Value::String(s)) = p.get_mut("text") {
                            out.push((source, s));
                        }
                    }
                }
                _ => {}
            },
            "tool_calls" => {
                if let Value::Array(calls) = v {
                    for c in calls {
                        if let Some(Value::String(s)) = c.get_mut("function").and_then(|f| f.get_mut("arguments")) {
                            out.push((source, s));
                        }
                    }
                }
            }
            _ => {}
        }
    }
}

fn messages_request<'v>(doc: &'v mut Value, out: &mut Vec<(Source, &'v mut String)>) {
    let Value::Object(m) = doc else { return };
    for (k, v) in m.iter_mut() {
        match k.as_str() {
            "system" => blocks_text(v, Source::System, out),
            "messages" => {
                if let Value::Array(msgs) = v {
                    for msg in msgs {
                        let source = role(msg);
                        if let Some(content) = msg.get_mut("content") {
                            blocks_text(content, source, out);
                        }
                    }
                }
            }
            _ => {}
        }
    }
}

/// Anthropic (and MCP) content: a string, or blocks — `text`, a
/// `tool_result`'s content (tool output), a `tool_use`'s input, an MCP
/// embedded resource's text.
fn blocks_text<'v>(content: &'v mut Value, source: Source, out: &mut Vec<(Source, &'v mut String)>) {
    match content {
        Value::String(s) => out.push((source, s)),
        Value::Array(blocks) => {
            for b in blocks {
                let kind = b.get("type").and_then(Value::as_str).unwrap_or("text").to_string();
                let Value::Object(m) = b else { continue };
                for (k, v) in m.iter_mut() {
                    match (kind.as_str(), k.as_str()) {
                        (_, "text") => {
                            if let Value::String(s) = v {
                                out.push((source, s));
                            }
                        }
                        ("tool_result", "content") => blocks_text(v, Source::Tool, out),
                        ("tool_use", "input") => all_strings(v, Source::Arguments, out),
                        ("resource", "resource") => {
                            if let Some(Value::String(s)) = v.get_mut("text") {
                                out.push((source, s));
                            }
                        }
                        _ => {}
                    }
                }
            }
        }
        _ => {}
    }
}

fn all_strings<'v>(v: &'v mut Value, source: Source, out: &mut Vec<(Source, &'v mut String)>) {
    match v {
        Value::String(s) => out.push((source, s)),
        Value::Array(a) => a.iter_mut().for_each(|x| all_strings(x, source, out)),
        Value::Object(m) => m.iter_mut().for_each(|(_, x)| all_strings(x, source, out)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn collect(mut doc: Value, shape: Shape) -> Vec<(Source, String)> {
        texts(&mut doc, shape).into_iter().map(|(s, t)| (s, t.clone())).collect()
    }

    #[test]
    fn a2a_texts_are_the_parts_of_either_generation_and_never_ids() {
        let v03 = json!({"jsonrpc": "2.0", "id": "1", "method": "message/send", "params": {"message": {
            "kind": "message", "messageId": "m1", "role": "user",
            "parts": [{"kind": "text", "text": "hi"}, {"kind": "data", "data": {"q": "x"}}, {"kind": "file", "file": {"uri": "u"}}]
        }}});
        assert_eq!(
            collect(v03, Shape::A2aRequest),
            vec![(Source::User, "hi".to_string()), (Source::User, "x".to_string())]
        );
        let v10 = json!({"task": {"id": "t", "status": {"state": "TASK_STATE_COMPLETED", "message": {"parts": [{"text": "done"}]}},
            "artifacts": [{"artifactId": "a", "parts": [{"text": "result"}]}]}});
        assert_eq!(
            collect(v10, Shape::A2aResponse),
            vec![(Source::Tool, "done".to_string()), (Source::Tool, "result".to_string())]
        );
    }

    #[test]
    fn chat_request_texts_by_role_and_not_keys_or_models() {
        let doc = json!({"model": "gpt-4o-mini", "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "image_url", "image_url": {"url": "u"}}]},
            {"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": "{\"q\":1}"}}]},
            {"role": "tool", "content": "result"}]});
        assert_eq!(
            collect(doc, Shape::ChatRequest),
            vec![
                (Source::System, "be brief".into()),
                (Source::User, "hi".into()),
                (Source::Assistant, "{\"q\":1}".into()),
                (Source::Tool, "result".into())
            ]
        );
    }

    #[test]
    fn anthropic_tool_results_are_tool_text() {
        let doc = json!({"system": [{"type": "text", "text": "sys"}], "messages": [
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": [{"type": "text", "text": "page"}]}]},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "n", "input": {"a": ["x"]}}]}]});
        assert_eq!(
            collect(doc, Shape::MessagesRequest),
            vec![(Source::System, "sys".into()), (Source::Tool, "page".into()), (Source::Arguments, "x".into())]
        );
    }

    #[test]
    fn mutating_a_text_rewrites_the_document() {
        let mut doc = json!({"choices": [{"message": {"role": "assistant", "content": "key AKIA"}}]});
        for (_, t) in texts(&mut doc, Shape::ChatResponse) {
            *t = t.replace("AKIA", "[REDACTED]");
        }
        assert_eq!(doc["choices"][0]["message"]["content"], "key [REDACTED]");
    }

    #[test]
    fn tool_results_and_arguments() {
        let doc =
            json!({"content": [{"type": "text", "text": "out"}], "structuredContent": {"k": "v"}, "isError": false});
        assert_eq!(collect(doc, Shape::ToolResult), vec![(Source::Tool, "out".into()), (Source::Tool, "v".into())]);
        assert_eq!(collect(json!({"path": "/x", "n": 2}), Shape::ToolArgs), vec![(Source::Arguments, "/x".into())]);
    }
}
