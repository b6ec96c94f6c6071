//! Slow clients: a request body must arrive within `server.body_read_timeout`
//! of the request's start, so a client that declares a body and then sends
//! it a byte at a time (or not at all) cannot hold a connection and a
//! handler forever. Headers have their own limit, in the connection
//! builder (`server::serve`). The data router wraps every request body.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use http_body::Frame;
use tokio::time::{Instant, Sleep};

/// The error a body too slow to arrive ends with; `receive::read_body`
/// answers it with 408.
#[derive(Debug)]
pub struct BodyTimeout(pub Duration);

impl std::fmt::Display for BodyTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the request body did not arrive within {:?}", self.0)
    }
}

impl std::error::Error for BodyTimeout {}

/// A body that fails once its deadline passes. The timer is made only when
/// the body is first found not ready: a body that arrives with its headers
/// (nearly every request) costs no timer at all.
pub struct Timed {
    inner: Body,
    limit: Duration,
    deadline: Instant,
    sleep: Option<Pin<Box<Sleep>>>,
}

pub fn wrap(inner: Body, limit: Duration) -> Body {
    if http_body::Body::is_end_stream(&inner) {
        return inner;
    }
    Body::new(Timed { inner, limit, deadline: Instant::now() + limit, sleep: None })
}

impl http_body::Body for Timed {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Pending => {
                let deadline = this.deadline;
                let sleep = this.sleep.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                match sleep.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(axum::Error::new(BodyTimeout(this.limit))))),
                    Poll::Pending => Poll::Pending,
                }
            }
            ready => ready,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
