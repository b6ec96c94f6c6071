//! Property tests: whatever bytes an upstream or a client sends, the SSE
//! framer and parser, the event-stream decoder and every translator return
//! (an error at worst) — they never panic.

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
}
