//! Incremental decoding of the binary AWS event-stream (Bedrock
//! ConverseStream): bytes arrive at arbitrary boundaries, whole messages
//! (prelude and message CRCs checked) come out.

use aws_smithy_eventstream::frame::{DecodedFrame, MessageFrameDecoder};
use aws_smithy_types::event_stream::HeaderValue;
use bytes::BytesMut;

/// A message larger than this is refused rather than buffered without bound.
const MAX_MESSAGE_BYTES: usize = 4 << 20;

#[derive(Debug, Default)]
pub struct EventStreamDecoder {
    buf: BytesMut,
    frames: MessageFrameDecoder,
}

/// One decoded message: `:message-type`, its `:event-type` or
/// `:exception-type`, and the payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventMessage {
    pub message_type: String,
    pub kind: String,
    pub payload: bytes::Bytes,
}

impl EventStreamDecoder {
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The next whole message, `Ok(None)` when more bytes are needed.
    pub fn next_message(&mut self) -> Result<Option<EventMessage>, String> {
        if self.buf.len() > MAX_MESSAGE_BYTES {
            return Err(format!("an event-stream message is larger than {MAX_MESSAGE_BYTES} bytes"));
        }
        match self.frames.decode_frame(&mut self.buf) {
            Ok(DecodedFrame::Incomplete) => Ok(None),
            Ok(DecodedFrame::Complete(m)) => {
                let header = |name: &str| {
                    m.headers().iter().find(|h| h.name().as_str() == name).and_then(|h| match h.value() {
                        HeaderValue::String(s) => Some(s.as_str().to_string()),
                        _ => None,
                    })
                };
                let message_type = header(":message-type").unwrap_or_else(|| "event".into());
                let kind = header(":event-type").or_else(|| header(":exception-type")).unwrap_or_default();
                Ok(Some(EventMessage { message_type, kind, payload: m.payload().clone() }))
            }
            Err(e) => Err(format!("malformed event-stream message: {e}")),
        }
    }

    /// Bytes of an unfinished message still held.
    pub fn has_partial(&self) -> bool {
        !self.buf.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_smithy_eventstream::frame::write_message_to;
    use aws_smithy_types::event_stream::{Header, Message};

    fn encode(kind: &str, payload: &str) -> Vec<u8> {
        let m = Message::new(payload.as_bytes().to_vec())
            .add_header(Header::new(":message-type", HeaderValue::String("event".into())))
            .add_header(Header::new(":event-type", HeaderValue::String(kind.to_string().into())));
        let mut out = Vec::new();
        write_message_to(&m, &mut out).unwrap();
        out
    }

    #[test]
    fn messages_split_anywhere_decode_whole() {
        let mut bytes = encode("messageStart", r#"{"role":"assistant"}"#);
        bytes.extend(encode("messageStop", r#"{"stopReason":"end_turn"}"#));
        for cut in 0..bytes.len() {
            let mut d = EventStreamDecoder::default();
            let mut got = Vec::new();
            for part in [&bytes[..cut], &bytes[cut..]] {
                d.push(part);
                while let Some(m) = d.next_message().unwrap() {
                    got.push(m.kind);
                }
            }
            assert_eq!(got, ["messageStart", "messageStop"], "cut at {cut}");
            assert!(!d.has_partial());
        }
    }

    #[test]
    fn a_corrupted_message_is_an_error_not_a_panic() {
        let mut bytes = encode("messageStart", "{}");
        let n = bytes.len();
        bytes[n - 1] ^= 0xff;
        let mut d = EventStreamDecoder::default();
        d.push(&bytes);
        assert!(d.next_message().is_err());
    }
}
