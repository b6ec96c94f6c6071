//! Incremental server-sent-events framing for relayed streams.
//!
//! Upstream chunks arrive at arbitrary byte boundaries. The framer hands on
//! only whole events (up to the last blank line seen), so a client never
//! receives half an event if the upstream is cut, and it notices the
//! OpenAI terminator `data: [DONE]` and the `usage` object on the way past.
//! In the common case a chunk holds whole events and is forwarded as a
//! zero-copy slice; only a trailing partial event is buffered.

use bytes::{Bytes, BytesMut};

use super::openai::Usage;

/// An upstream event larger than this is refused rather than buffered without bound.
pub const MAX_EVENT_BYTES: usize = 4 << 20;

#[derive(Default)]
pub struct SseFramer {
    pending: BytesMut,
    done: bool,
    usage: Option<Usage>,
    events: u64,
}

#[derive(Debug, PartialEq, Eq)]
pub enum FrameError {
    EventTooLarge,
}

impl SseFramer {
    /// Feeds a chunk; returns the complete events it finishes (possibly empty).
    pub fn push(&mut self, chunk: Bytes) -> Result<Bytes, FrameError> {
        let out = if self.pending.is_empty() {
            match last_boundary(&chunk) {
                Some(end) if end == chunk.len() => chunk,
                Some(end) => {
                    self.pending.extend_from_slice(&chunk[end..]);
                    chunk.slice(..end)
                }
                None => {
                    self.pending.extend_from_slice(&chunk);
                    Bytes::new()
                }
            }
        } else {
            self.pending.extend_from_slice(&chunk);
            match last_boundary(&self.pending) {
                Some(end) => self.pending.split_to(end).freeze(),
                None => Bytes::new(),
            }
        };
        if self.pending.len() > MAX_EVENT_BYTES {
            return Err(FrameError::EventTooLarge);
        }
        if !out.is_empty() {
            self.inspect(&out);
        }
        Ok(out)
    }

    /// True once `data: [DONE]` has passed.
    pub fn done(&self) -> bool {
        self.done
    }

    /// The last `usage` object seen in a data event.
    pub fn usage(&self) -> Option<&Usage> {
        self.usage.as_ref()
    }

    pub fn events(&self) -> u64 {
        self.events
    }

    /// Bytes of an unfinished event still held back.
    pub fn has_partial(&self) -> bool {
        !self.pending.iter().all(|b| b.is_ascii_whitespace())
    }

    fn inspect(&mut self, events: &[u8]) {
        let mut in_event = false;
        for line in events.split(|&b| b == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.is_empty() {
                if std::mem::take(&mut in_event) {
                    self.events += 1;
                }
                continue;
            }
            in_event = true;
            let Some(data) = line.strip_prefix(b"data:") else { continue };
            let data = data.strip_prefix(b" ").unwrap_or(data);
            if data == b"[DONE]" {
                self.done = true;
            } else if memfind(data, b"\"usage\"")
                && let Ok(peek) = serde_json::from_slice::<UsagePeek>(data)
                && let Some(u) = peek.usage
            {
                self.usage = Some(u);
            }
        }
    }
}

#[derive(serde::Deserialize)]
struct UsagePeek {
    #[serde(default)]
    usage: Option<Usage>,
}

/// Whole SSE events in a chunk, each with its blank line (LF LF or CR LF
/// CR LF); a trailing partial event comes last. The one event splitter:
/// the framer, the translators and stream metering all split here.
pub fn split_events(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = data;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let lf = rest.windows(2).position(|w| w == b"\n\n").map(|i| i + 2);
        let crlf = rest.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4);
        let end = match (lf, crlf) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => a.or(b).unwrap_or(rest.len()),
        };
        let (event, tail) = rest.split_at(end);
        rest = tail;
        Some(event)
    })
}

/// The first `data:` line of one event.
pub fn event_data(event: &[u8]) -> Option<&[u8]> {
    event
        .split(|&b| b == b'\n')
        .find_map(|l| l.strip_prefix(b"data:"))
        .map(|d| d.strip_suffix(b"\r").unwrap_or(d))
        .map(|d| d.strip_prefix(b" ").unwrap_or(d))
}

/// The events in whole SSE bytes: each event's `event:` name and its data
/// (several `data:` lines joined by a newline). Comments, `id:` and
/// `retry:` lines and events without data are skipped; LF and CRLF both end
/// lines.
pub fn sse_events(bytes: &[u8]) -> Vec<(Option<&str>, std::borrow::Cow<'_, [u8]>)> {
    use std::borrow::Cow;
    let mut out = Vec::new();
    for event in split_events(bytes) {
        let mut name: Option<&str> = None;
        let mut data: Option<Cow<'_, [u8]>> = None;
        for line in event.split(|&b| b == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if let Some(v) = line.strip_prefix(b"data:") {
                let v = v.strip_prefix(b" ").unwrap_or(v);
                data = Some(match data.take() {
                    None => Cow::Borrowed(v),
                    Some(prev) => {
                        let mut joined = prev.into_owned();
                        joined.push(b'\n');
                        joined.extend_from_slice(v);
                        Cow::Owned(joined)
                    }
                });
            } else if let Some(v) = line.strip_prefix(b"event:") {
                name = std::str::from_utf8(v.strip_prefix(b" ").unwrap_or(v)).ok();
            }
        }
        if let Some(d) = data {
            out.push((name, d));
        }
    }
    out
}

/// End index (exclusive) of the last event boundary (a blank line) in `buf`.
pub fn last_boundary(buf: &[u8]) -> Option<usize> {
    let mut i = buf.len();
    while i >= 2 {
        if buf[i - 1] == b'\n' {
            if buf[i - 2] == b'\n' {
                return Some(i);
            }
            if i >= 4 && &buf[i - 4..i] == b"\r\n\r\n" {
                return Some(i);
            }
        }
        i -= 1;
    }
    None
}

pub fn memfind(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_on_lf_and_crlf() {
        assert_eq!(split_events(b"data: a\n\ndata: b\n\n").count(), 2);
        assert_eq!(split_events(b"data: a\r\n\r\ndata: b\r\n\r\n").count(), 2);
        let parts: Vec<&[u8]> = split_events(b"data: a\r\n\r\ndata: b").collect();
        assert_eq!(parts, [&b"data: a\r\n\r\n"[..], b"data: b"]);
        assert_eq!(event_data(b"event: x\r\ndata: {}\r\n\r\n"), Some(&b"{}"[..]));
    }

    fn feed(f: &mut SseFramer, parts: &[&str]) -> String {
        let mut out = String::new();
        for p in parts {
            let b = f.push(Bytes::copy_from_slice(p.as_bytes())).unwrap();
            out.push_str(std::str::from_utf8(&b).unwrap());
        }
        out
    }

    #[test]
    fn whole_events_pass_and_partials_wait() {
        let mut f = SseFramer::default();
        let out = feed(&mut f, &["data: {\"a\":1}\n\ndata: {\"b\"", ":2}\n", "\ndata: [DONE]\n\n"]);
        assert_eq!(out, "data: {\"a\":1}\n\ndata: {\"b\":2}\n\ndata: [DONE]\n\n");
        assert!(f.done());
        assert_eq!(f.events(), 3);
        assert!(!f.has_partial());
    }

    #[test]
    fn cut_stream_leaves_partial_and_no_done() {
        let mut f = SseFramer::default();
        let out = feed(&mut f, &["data: {\"a\":1}\n\ndata: {\"tru"]);
        assert_eq!(out, "data: {\"a\":1}\n\n");
        assert!(!f.done());
        assert!(f.has_partial());
    }

    #[test]
    fn usage_is_picked_up_from_the_final_chunk() {
        let mut f = SseFramer::default();
        feed(
            &mut f,
            &[
                "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":5,\"total_tokens\":8}}\r\n\r\n",
            ],
        );
        let u = f.usage().unwrap();
        assert_eq!((u.prompt_tokens, u.completion_tokens), (3, 5));
    }

    #[test]
    fn events_are_split_with_names_and_joined_data() {
        let ev = sse_events(b"event: a\r\ndata: 1\r\n\r\n: note\n\ndata: x\ndata: y\n\nid: 3\n\n");
        assert_eq!(ev.len(), 2);
        assert_eq!((ev[0].0, &*ev[0].1), (Some("a"), &b"1"[..]));
        assert_eq!((ev[1].0, &*ev[1].1), (None, &b"x\ny"[..]));
    }

    #[test]
    fn arbitrary_splits_give_the_same_output() {
        let text = "data: {\"x\":\"a\\n\"}\n\n: comment\n\ndata: [DONE]\n\n";
        for cut in 0..text.len() {
            let mut f = SseFramer::default();
            let out = feed(&mut f, &[&text[..cut], &text[cut..]]);
            assert_eq!(out, text, "split at {cut}");
            assert!(f.done());
        }
    }
}
