//! Property tests: whatever bytes an upstream or a client sends, the SSE
//! framer and parser, the event-stream decoder, every translator and the
//! client request reader return (an error at worst) — they never panic.
//! Random bytes rarely get past a frame's CRC or an SSE field name, so the
//! inputs are also generated *structured*: valid event-stream frames of
//! every Bedrock event kind, SSE events with real and arbitrary names, and
//! request objects with the fields the reader looks at — each carrying
//! arbitrary JSON.

use proptest::prelude::*;
use serde_json::Value;

use super::{Settings, ToOpenAiStream, UpEvent};
use crate::wire::eventstream::EventStreamDecoder;
use crate::wire::sse::{SseFramer, sse_events};

fn translators() -> Vec<Box<dyn ToOpenAiStream>> {
    vec![
        Box::new(super::anthropic::Stream::new("m", true)),
        Box::new(super::anthropic::Native::default()),
        Box::new(super::gemini::Stream::new("m", true)),
        Box::new(super::bedrock::Stream::new("m", false)),
        Box::new(super::cohere::Stream::new("m", true)),
    ]
}

/// Arbitrary JSON, nested a few levels, biased towards the keys the
/// translators look at so the interesting paths are reached.
fn json() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        Just("type".to_string()),
        Just("role".to_string()),
        Just("content".to_string()),
        Just("messages".to_string()),
        Just("tool_calls".to_string()),
        Just("text".to_string()),
        Just("delta".to_string()),
        Just("index".to_string()),
        Just("function".to_string()),
        Just("arguments".to_string()),
        Just("candidates".to_string()),
        Just("parts".to_string()),
        Just("usage".to_string()),
        Just("tools".to_string()),
        Just("id".to_string()),
        "[a-z_]{1,8}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        prop_oneof![
            Just("user".to_string()),
            Just("assistant".to_string()),
            Just("tool".to_string()),
            Just("text".to_string()),
            Just("tool_use".to_string()),
            Just("function".to_string()),
            ".{0,12}"
        ]
        .prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec((key.clone(), inner), 0..6).prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_bytes_never_panic_the_stream_decoders(chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..200), 0..8)) {
        let mut framer = SseFramer::default();
        let mut aws = EventStreamDecoder::default();
        let mut ts = translators();
        let mut hub = super::messages::stream::FromHub::new("m", 1);
        let mut out = Vec::new();
        for c in &chunks {
            if let Ok(whole) = framer.push(bytes::Bytes::copy_from_slice(c)) {
                for (event, data) in sse_events(&whole) {
                    for t in &mut ts {
                        let _ = t.event(UpEvent::Sse { event, data: &data }, &mut out);
                    }
                    hub.event(&data, &mut out);
                }
            }
            aws.push(c);
            while let Ok(Some(m)) = aws.next_message() {
                for t in &mut ts {
                    let _ = t.event(UpEvent::Aws { message_type: &m.message_type, kind: &m.kind, payload: &m.payload }, &mut out);
                }
            }
        }
        for t in &mut ts {
            let _ = t.end(&mut out);
        }
        hub.end(&mut out);
    }

    #[test]
    fn arbitrary_json_events_never_panic_the_translators(events in prop::collection::vec(json(), 0..12)) {
        let mut ts = translators();
        let mut hub = super::messages::stream::FromHub::new("m", 1);
        let mut out = Vec::new();
        for v in &events {
            let data = v.to_string();
            for t in &mut ts {
                let _ = t.event(UpEvent::Sse { event: None, data: data.as_bytes() }, &mut out);
                let _ = t.event(UpEvent::Aws { message_type: "event", kind: "contentBlockDelta", payload: data.as_bytes() }, &mut out);
            }
            hub.event(data.as_bytes(), &mut out);
        }
        for t in &mut ts {
            let _ = t.end(&mut out);
        }
    }

    #[test]
    fn arbitrary_requests_and_answers_never_panic_the_translators(v in json()) {
        let s = Settings::default();
        let _ = super::anthropic::request(&v, "m", &s);
        let _ = super::anthropic::response(&v);
        let _ = super::gemini::request(&v);
        let _ = super::gemini::response(&v, "m");
        let _ = super::gemini::embed_request(&v, "m");
        let _ = super::bedrock::request(&v, &s);
        let _ = super::bedrock::response(&v, "m");
        let _ = super::bedrock::embed_request(&v, "m");
        let _ = super::cohere::request(&v, "m", &s);
        let _ = super::cohere::response(&v, "m");
        let _ = super::messages::to_hub(&v);
        let _ = super::messages::from_hub(&v, "m");
        let _ = super::messages::count_tokens(&v);
    }

    /// Valid event-stream messages split at arbitrary points decode whole, in order.
    #[test]
    fn event_stream_messages_split_anywhere_decode_in_order(kinds in prop::collection::vec("[a-zA-Z]{1,12}", 1..6), cut in any::<prop::sample::Index>()) {
        use aws_smithy_eventstream::frame::write_message_to;
        use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
        let mut bytes = Vec::new();
        for k in &kinds {
            let m = Message::new(format!("{{\"k\":\"{k}\"}}").into_bytes())
                .add_header(Header::new(":message-type", HeaderValue::String("event".into())))
                .add_header(Header::new(":event-type", HeaderValue::String(k.clone().into())));
            write_message_to(&m, &mut bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
        }
        let at = cut.index(bytes.len() + 1);
        let mut d = EventStreamDecoder::default();
        let mut got = Vec::new();
        for part in [&bytes[..at], &bytes[at..]] {
            d.push(part);
            while let Some(m) = d.next_message().map_err(TestCaseError::fail)? {
                got.push(m.kind);
            }
        }
        prop_assert_eq!(got, kinds);
    }

    /// Valid frames of every Bedrock event kind (and exceptions), carrying
    /// arbitrary JSON, cut into arbitrary pieces: decoded and translated
    /// without a panic.
    #[test]
    fn valid_bedrock_frames_with_arbitrary_payloads_never_panic(
        frames in prop::collection::vec((0usize..10, json()), 1..10),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..4),
    ) {
        use aws_smithy_eventstream::frame::write_message_to;
        use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
        const KINDS: [(&str, &str); 10] = [
            ("event", "messageStart"), ("event", "contentBlockStart"), ("event", "contentBlockDelta"),
            ("event", "contentBlockStop"), ("event", "messageStop"), ("event", "metadata"),
            ("exception", "throttlingException"), ("exception", "modelStreamErrorException"),
            ("exception", "validationException"), ("event", "somethingNew"),
        ];
        let mut bytes = Vec::new();
        for (k, payload) in &frames {
            let (message_type, kind) = KINDS[*k];
            let type_header = if message_type == "exception" { ":exception-type" } else { ":event-type" };
            let m = Message::new(payload.to_string().into_bytes())
                .add_header(Header::new(":message-type", HeaderValue::String(message_type.into())))
                .add_header(Header::new(type_header, HeaderValue::String(kind.into())));
            write_message_to(&m, &mut bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
        }
        let mut at: Vec<usize> = cuts.iter().map(|c| c.index(bytes.len() + 1)).collect();
        at.push(0);
        at.push(bytes.len());
        at.sort_unstable();
        let mut d = EventStreamDecoder::default();
        let mut t = super::bedrock::Stream::new("m", true);
        let mut out = Vec::new();
        let mut decoded = 0;
        for w in at.windows(2) {
            d.push(&bytes[w[0]..w[1]]);
            while let Some(m) = d.next_message().map_err(TestCaseError::fail)? {
                decoded += 1;
                let _ = t.event(UpEvent::Aws { message_type: &m.message_type, kind: &m.kind, payload: &m.payload }, &mut out);
            }
        }
        let _ = t.end(&mut out);
        prop_assert_eq!(decoded, frames.len(), "every valid frame decodes, however it was cut");
    }

    /// SSE events with the names providers use and arbitrary ones, carrying
    /// arbitrary JSON, framed with LF or CRLF: every translator, and the hub
    /// to Anthropic translation, return without a panic.
    #[test]
    fn sse_events_with_any_name_never_panic_the_translators(
        events in prop::collection::vec((prop_oneof![
            Just("message_start".to_string()), Just("content_block_start".to_string()),
            Just("content_block_delta".to_string()), Just("content_block_stop".to_string()),
            Just("message_delta".to_string()), Just("message_stop".to_string()), Just("error".to_string()),
            Just("ping".to_string()), Just("message-start".to_string()), Just("content-delta".to_string()),
            Just("stream-end".to_string()), "[a-z_.-]{0,16}",
        ], json()), 0..12),
        crlf in any::<bool>(),
    ) {
        let nl = if crlf { "\r\n" } else { "\n" };
        let mut text = String::new();
        for (name, data) in &events {
            text.push_str(&format!("event: {name}{nl}data: {data}{nl}{nl}"));
        }
        let mut framer = SseFramer::default();
        let whole = framer.push(bytes::Bytes::from(text)).map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
        let parsed = sse_events(&whole);
        prop_assert_eq!(parsed.len(), events.len(), "every event framed");
        let mut ts = translators();
        let mut hub = super::messages::stream::FromHub::new("m", 1);
        let mut out = Vec::new();
        for (event, data) in &parsed {
            for t in &mut ts {
                let _ = t.event(UpEvent::Sse { event: *event, data }, &mut out);
            }
            hub.event(data, &mut out);
        }
        for t in &mut ts {
            let _ = t.end(&mut out);
        }
        hub.end(&mut out);
    }

    /// A client's request object, with the fields the reader looks at set to
    /// arbitrary JSON: read into a request or refused with an error, for
    /// chat and embeddings alike.
    #[test]
    fn client_requests_are_read_or_refused_never_a_panic(
        model in prop_oneof![Just(Value::from("mock/echo")), json()],
        messages in prop_oneof![Just(serde_json::json!([{ "role": "user", "content": "hi" }])), json()],
        extra in prop::collection::vec((prop_oneof![
            Just("stream"), Just("max_tokens"), Just("max_completion_tokens"), Just("n"), Just("input"),
            Just("stream_options"), Just("tools"), Just("temperature"),
        ], json()), 0..5),
    ) {
        use crate::wire::Operation;
        let mut o = serde_json::Map::new();
        o.insert("model".into(), model);
        o.insert("messages".into(), messages);
        for (k, v) in extra {
            o.insert(k.to_string(), v);
        }
        let body = bytes::Bytes::from(Value::Object(o).to_string());
        for op in [Operation::ChatCompletions, Operation::Embeddings] {
            if let Ok(req) = crate::pipeline::receive::parse(op, &body) {
                let _ = crate::pipeline::receive::estimate(op, &req);
            }
        }
    }

    #[test]
    fn arbitrary_bytes_are_read_or_refused_never_a_panic(body in prop::collection::vec(any::<u8>(), 0..300)) {
        let body = bytes::Bytes::from(body);
        for op in [crate::wire::Operation::ChatCompletions, crate::wire::Operation::Embeddings] {
            let _ = crate::pipeline::receive::parse(op, &body);
        }
    }
}
