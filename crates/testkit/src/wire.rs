//! Pieces every mock wire format shares: a paced streamed body that obeys
//! the cut/stall faults, and reading the conversation a request carries.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream;
use http::{Response, header};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;

use crate::{Body, Fault, State};

/// Counts a stream as aborted if its body is dropped before the end.
struct Watch {
    state: Arc<State>,
    done: bool,
}

impl Drop for Watch {
    fn drop(&mut self) {
        if !self.done {
            self.state.aborted_streams.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// Streams `events` (already framed for the wire) with the state's chunk
/// delay between them. `CutStream` truncates them (and breaks the
/// connection when `abort`); `StallStream` pauses before event n. A
/// `StreamError` fault is the caller's to apply, since its shape is the
/// provider's.
pub(crate) fn paced(
    mut events: Vec<Bytes>,
    fault: &Option<Fault>,
    state: Arc<State>,
    content_type: &'static str,
) -> Response<Body> {
    let delay = *state.chunk_delay.lock().expect("lock");
    let (cut, abort, stall) = match fault {
        Some(Fault::CutStream { after_events, abort }) => (Some(*after_events), *abort, None),
        Some(Fault::StallStream { after_events, pause }) => (None, false, Some((*after_events, *pause))),
        _ => (None, false, None),
    };
    if let Some(n) = cut {
        events.truncate(n);
    }
    let items: Vec<(usize, Bytes)> = events.into_iter().enumerate().collect();
    let watch = Watch { state, done: false };
    let body = stream::unfold((items.into_iter(), false, watch), move |(mut it, ended, mut watch)| async move {
        if ended {
            return None;
        }
        let next = it.next();
        if next.is_none() && !abort {
            watch.done = true;
        }
        match next {
            Some((i, e)) => {
                if i > 0 && !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                if let Some((n, pause)) = stall
                    && i == n
                {
                    tokio::time::sleep(pause).await;
                }
                Some((Ok(Frame::data(e)), (it, false, watch)))
            }
            None if abort => {
                watch.done = true; // the mock broke it on purpose; not a reader going away
                // Let what was sent reach the wire first, so the break is mid-stream.
                tokio::time::sleep(Duration::from_millis(50)).await;
                Some((Err(std::io::Error::other("mock upstream aborted the stream")), (it, true, watch)))
            }
            None => None,
        }
    });
    let mut r = Response::new(StreamBody::new(body).boxed());
    r.headers_mut().insert(header::CONTENT_TYPE, content_type.parse().expect("static"));
    r
}

/// One SSE event with an optional `event:` line.
pub(crate) fn sse_event(event: Option<&str>, data: &serde_json::Value) -> Bytes {
    match event {
        Some(e) => Bytes::from(format!("event: {e}\ndata: {data}\n\n")),
        None => Bytes::from(format!("data: {data}\n\n")),
    }
}
