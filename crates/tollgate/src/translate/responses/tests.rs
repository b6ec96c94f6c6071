use serde_json::{Value, json};

use super::stream::FromHub;
use super::*;

fn ids() -> impl FnMut(&str) -> String {
    let mut n = 0;
    move |p: &str| {
        n += 1;
        format!("{p}_{n}")
    }
}

#[test]
fn a_string_input_with_instructions_is_a_system_and_a_user_message() {
    let c = to_hub(
        &json!({"model": "m", "input": "hi", "instructions": "be brief", "max_output_tokens": 50,
                "temperature": 0.2, "reasoning": {"effort": "low"}, "metadata": {"a": "b"}, "store": false}),
        &[],
        &|_| None,
    )
    .unwrap();
    assert_eq!(
        c.hub,
        json!({"model": "m", "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}],
               "max_tokens": 50, "temperature": 0.2, "reasoning_effort": "low"})
    );
    assert_eq!(c.input, vec![json!({"role": "user", "content": "hi"})]);
}

#[test]
fn function_calls_and_outputs_keep_their_call_ids_exactly() {
    let req = json!({"model": "m", "input": [
        {"role": "user", "content": [{"type": "input_text", "text": "weather?"},
                                     {"type": "input_image", "image_url": "data:image/png;base64,AAA", "detail": "low"}]},
        {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "think"}],
         "encrypted_content": seal(&[json!({"type": "thinking", "thinking": "t", "signature": "sig"})])},
        {"type": "function_call", "call_id": "call_A", "name": "get_weather", "arguments": "{\"city\":\"Paris\"}"},
        {"type": "function_call", "call_id": "call_B", "name": "get_weather", "arguments": "{\"city\":\"Oslo\"}"},
        {"type": "function_call_output", "call_id": "call_A", "output": "sunny"},
        {"type": "function_call_output", "call_id": "call_B", "output": "snow"},
    ], "tools": [{"type": "function", "name": "get_weather", "parameters": {"type": "object"}, "strict": true}],
       "tool_choice": {"type": "function", "name": "get_weather"}, "text": {"format": {"type": "json_schema",
       "name": "w", "schema": {"type": "object"}, "strict": true}}});
    let c = to_hub(&req, &[json!({"role": "user", "content": "earlier"})], &|_| None).unwrap();
    let m = c.hub["messages"].as_array().unwrap();
    assert_eq!(m[0], json!({"role": "user", "content": "earlier"}));
    assert_eq!(m[1]["content"][1], json!({"type": "image_url", "image_url": {"url": "data:image/png;base64,AAA", "detail": "low"}}));
    assert_eq!(m[2]["reasoning_content"], "think");
    assert_eq!(m[2]["thinking_blocks"][0]["signature"], "sig");
    let calls: Vec<_> = m[2]["tool_calls"].as_array().unwrap().iter().map(|c| c["id"].clone()).collect();
    assert_eq!(calls, [json!("call_A"), json!("call_B")]);
    assert_eq!(m[3], json!({"role": "tool", "tool_call_id": "call_A", "content": "sunny"}));
    assert_eq!(m[4]["tool_call_id"], "call_B");
    assert_eq!(c.hub["tools"][0], json!({"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}, "strict": true}}));
    assert_eq!(c.hub["tool_choice"], json!({"type": "function", "function": {"name": "get_weather"}}));
    assert_eq!(c.hub["response_format"]["json_schema"]["name"], "w");
}

#[test]
fn what_cannot_be_carried_is_refused_with_what_to_do() {
    let bad = |req: Value| to_hub(&req, &[], &|_| None).unwrap_err().0;
    assert!(bad(json!({"input": "x"})).contains("`model`"));
    assert!(bad(json!({"model": "m"})).contains("`input` is required"));
    assert!(bad(json!({"model": "m", "input": "x", "tools": [{"type": "web_search"}]})).contains("web_search"));
    assert!(bad(json!({"model": "m", "input": [{"type": "item_reference", "id": "x"}]})).contains("`x` was not found"));
    let stored = |id: &str| (id == "fc_1").then(|| json!({"type": "function_call", "id": "fc_1", "call_id": "c1", "name": "f", "arguments": "{}"}));
    let c = to_hub(&json!({"model": "m", "input": [{"type": "item_reference", "id": "fc_1"},
        {"type": "function_call_output", "call_id": "c1", "output": "ok"}]}), &[], &stored).unwrap();
    assert_eq!(c.hub["messages"][0]["tool_calls"][0]["id"], "c1");
    assert!(bad(json!({"model": "m", "input": [{"type": "function_call_output"}]})).contains("call_id"));
    assert!(bad(json!({"model": "m", "input": "x", "background": true})).contains("background"));
    assert!(bad(json!({"model": "m", "input": "x", "reasoning": {"effort": "max"}})).contains("effort"));
}

#[test]
fn a_hub_completion_becomes_items_usage_and_status() {
    let hub = json!({"model": "gpt-x", "choices": [{"finish_reason": "tool_calls", "message": {
        "role": "assistant", "content": "checking", "reasoning_content": "hmm",
        "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15,
                  "prompt_tokens_details": {"cached_tokens": 4}, "completion_tokens_details": {"reasoning_tokens": 2}}});
    let req = json!({"model": "alias", "input": "x", "metadata": {"k": "v"}});
    let echo = Echo { id: "resp_1", created_at: 7, req: &req };
    let (r, message) = from_hub(&hub, &echo, &mut ids());
    assert_eq!(r["status"], "completed");
    assert_eq!(r["model"], "gpt-x");
    assert_eq!(r["metadata"], json!({"k": "v"}));
    let types: Vec<_> = r["output"].as_array().unwrap().iter().map(|i| i["type"].clone()).collect();
    assert_eq!(types, [json!("reasoning"), json!("message"), json!("function_call")]);
    assert_eq!(r["output"][1]["content"][0]["text"], "checking");
    assert_eq!(r["output"][2]["call_id"], "call_1");
    assert_eq!(r["usage"], json!({"input_tokens": 10, "input_tokens_details": {"cached_tokens": 4},
        "output_tokens": 5, "output_tokens_details": {"reasoning_tokens": 2}, "total_tokens": 15}));
    assert_eq!(message["tool_calls"][0]["id"], "call_1");
    let cut = json!({"choices": [{"finish_reason": "length", "message": {"role": "assistant", "content": "ab"}}]});
    let (r, _) = from_hub(&cut, &echo, &mut ids());
    assert_eq!((r["status"].clone(), r["incomplete_details"]["reason"].clone()), (json!("incomplete"), json!("max_output_tokens")));
}

fn events(out: &[u8]) -> Vec<Value> {
    crate::wire::sse::sse_events(out).into_iter().map(|(_, d)| serde_json::from_slice(&d).unwrap()).collect()
}

#[test]
fn a_hub_stream_becomes_the_responses_event_sequence() {
    let mut tr = FromHub::new("resp_1".into(), 1, json!({"model": "m", "input": "x"}), Box::new(ids()));
    let mut out = Vec::new();
    for chunk in [
        json!({"model": "m-1", "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hel"}}]}),
        json!({"choices": [{"index": 0, "delta": {"content": "lo"}}]}),
        json!({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "id": "call_9", "type": "function",
            "function": {"name": "f", "arguments": ""}}]}}]}),
        json!({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "{\"a\":"}}]}}]}),
        json!({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]}}]}),
        json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}),
        json!({"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}}),
    ] {
        tr.event(chunk.to_string().as_bytes(), &mut out);
    }
    tr.event(b"[DONE]", &mut out);
    assert!(tr.ended());
    let ev = events(&out);
    let kinds: Vec<_> = ev.iter().map(|e| e["type"].as_str().unwrap().to_string()).collect();
    assert_eq!(kinds, [
        "response.created", "response.in_progress",
        "response.output_item.added", "response.content_part.added",
        "response.output_text.delta", "response.output_text.delta",
        "response.output_text.done", "response.content_part.done", "response.output_item.done",
        "response.output_item.added", "response.function_call_arguments.delta", "response.function_call_arguments.delta",
        "response.function_call_arguments.done", "response.output_item.done", "response.completed",
    ]);
    let seq: Vec<_> = ev.iter().map(|e| e["sequence_number"].as_u64().unwrap()).collect();
    assert_eq!(seq, (0..15).collect::<Vec<_>>());
    let done = &ev[14]["response"];
    assert_eq!(done["output"][0]["content"][0]["text"], "Hello");
    assert_eq!(done["output"][1]["arguments"], "{\"a\":1}");
    assert_eq!(done["output"][1]["call_id"], "call_9");
    assert_eq!(ev[10]["output_index"], 1);
    assert_eq!(done["usage"]["total_tokens"], 7);
    assert_eq!(done["model"], "m-1");
    let kept = tr.take_finished().unwrap();
    assert_eq!(kept.message["content"], "Hello");
    assert_eq!(kept.message["tool_calls"][0]["function"]["arguments"], "{\"a\":1}");
}

#[test]
fn a_cut_or_failed_stream_ends_with_response_failed() {
    let mut tr = FromHub::new("resp_1".into(), 1, json!({"model": "m"}), Box::new(ids()));
    let mut out = Vec::new();
    tr.event(json!({"choices": [{"index": 0, "delta": {"content": "par"}}]}).to_string().as_bytes(), &mut out);
    tr.end(&mut out);
    let ev = events(&out);
    let last = ev.last().unwrap();
    assert_eq!(last["type"], "response.failed");
    assert_eq!(last["response"]["status"], "failed");
    assert_eq!(ev[ev.len() - 2]["type"], "error");
    assert!(tr.take_finished().is_none());
    let mut tr = FromHub::new("resp_2".into(), 1, json!({"model": "m"}), Box::new(ids()));
    let mut out = Vec::new();
    tr.event(br#"{"error":{"message":"blocked","code":"guardrail_blocked"}}"#, &mut out);
    assert!(tr.ended());
    assert_eq!(events(&out).last().unwrap()["response"]["error"]["code"], "guardrail_blocked");
}
