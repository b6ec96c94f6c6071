//! One HTTP exchange with a provider, the same for every wire format: send
//! within the first-token limit, read an error or a whole body within the
//! total deadline and the size limit, or start relaying a stream.

use bytes::Bytes;
use http::{Request, Response, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use tokio::time::Instant;

use super::http::HttpClient;
use super::stream::{Mode, SseRelay};
use super::{Dialect, Timeouts};
use crate::error::UpstreamError;

pub struct Exchange<'a> {
    pub provider: &'a str,
    pub t: Timeouts,
    deadline: Instant,
    first_by: Instant,
    first: std::time::Duration,
}

impl<'a> Exchange<'a> {
    pub fn new(provider: &'a str, t: Timeouts) -> Exchange<'a> {
        let now = Instant::now();
        let first = t.first_token.min(t.total);
        Exchange { provider, t, deadline: now + t.total, first_by: now + first, first }
    }

    pub fn broken(&self, message: impl Into<String>) -> UpstreamError {
        UpstreamError::Broken { provider: self.provider.to_string(), message: message.into() }
    }

    /// Sends the request; the response head must arrive within the first-token limit.
    pub async fn send(
        &self,
        client: &HttpClient,
        req: Request<Full<Bytes>>,
    ) -> Result<Response<Incoming>, UpstreamError> {
        match tokio::time::timeout(self.first, client.request(req)).await {
            Err(_) => {
                Err(UpstreamError::Timeout { provider: self.provider.into(), phase: "first byte", after: self.first })
            }
            Ok(Err(e)) => Err(classify(self.provider, &e)),
            Ok(Ok(r)) => Ok(r),
        }
    }

    /// A non-2xx response as an error keeping the provider's message
    /// (`message` reads it from the provider's error body).
    pub async fn failure(&self, resp: Response<Incoming>, message: fn(&[u8]) -> Option<String>) -> UpstreamError {
        let status = resp.status().as_u16();
        let retry_after = resp.headers().get(header::RETRY_AFTER).cloned();
        let bytes = read_limited(resp.into_body(), 64 << 10, self.deadline).await.unwrap_or_default();
        let message = message(&bytes)
            .unwrap_or_else(|| String::from_utf8_lossy(&bytes[..bytes.len().min(512)]).trim().to_string());
        UpstreamError::Status { provider: self.provider.into(), status, message, retry_after }
    }

    /// The whole body of a successful response.
    pub async fn body(&self, resp: Response<Incoming>, limit: usize) -> Result<Bytes, UpstreamError> {
        read_limited(resp.into_body(), limit, self.deadline).await.map_err(|e| match e {
            ReadError::Timeout => {
                UpstreamError::Timeout { provider: self.provider.into(), phase: "total", after: self.t.total }
            }
            ReadError::Other(m) => self.broken(m),
        })
    }

    /// Starts relaying a stream and waits for its first event, so a failure
    /// before it can still be retried or fall back.
    pub async fn relay(
        &self,
        resp: Response<Incoming>,
        mode: Mode,
        dialect: Dialect,
    ) -> Result<axum::body::Body, UpstreamError> {
        let mut relay = SseRelay::new(
            resp.into_body(),
            self.provider.into(),
            self.t.idle,
            (self.first_by, self.first),
            self.deadline,
        )
        .with_mode(mode, dialect);
        relay.first_event().await?;
        Ok(axum::body::Body::new(relay))
    }
}

pub fn is_event_stream(resp: &Response<Incoming>, prefix: &str) -> bool {
    resp.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with(prefix))
}

enum ReadError {
    Timeout,
    Other(String),
}

async fn read_limited(body: Incoming, limit: usize, deadline: Instant) -> Result<Bytes, ReadError> {
    match tokio::time::timeout_at(deadline, Limited::new(body, limit).collect()).await {
        Err(_) => Err(ReadError::Timeout),
        Ok(Err(e)) => Err(ReadError::Other(if e.is::<http_body_util::LengthLimitError>() {
            format!("response larger than {limit} bytes")
        } else {
            format!("response body: {e}")
        })),
        Ok(Ok(c)) => Ok(c.to_bytes()),
    }
}

/// Connection failures before any response are `Connect` (safe to fail over);
/// anything after the request went out is `Broken`.
fn classify(provider: &str, e: &hyper_util::client::legacy::Error) -> UpstreamError {
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    if e.is_connect() {
        UpstreamError::Connect { provider: provider.into(), message: msg }
    } else {
        UpstreamError::Broken { provider: provider.into(), message: msg }
    }
}

/// A header value marked sensitive, so it never shows in debug output.
pub fn secret_header(value: &str) -> Option<http::HeaderValue> {
    let mut v = http::HeaderValue::from_str(value).ok()?;
    v.set_sensitive(true);
    Some(v)
}

/// The provider's required `api_key` as header `name` (value `prefix` + key,
/// marked sensitive); a missing or unusable key is a config error.
pub fn required_key_header(
    sec: &crate::config::file::ProviderSection,
    headers: &mut http::HeaderMap,
    name: http::HeaderName,
    prefix: &str,
    env: &str,
    diags: &mut crate::config::diag::Diags,
) {
    match sec.api_key.as_ref().filter(|k| !k.value.is_empty()) {
        Some(k) => match secret_header(&format!("{prefix}{}", k.value)) {
            Some(v) => {
                headers.insert(name, v);
            }
            None => diags.at(k, "api_key contains characters not allowed in an HTTP header", "check the key's value"),
        },
        None => diags.at(
            &sec.name,
            format!("provider `{}` of type `{}` needs an api_key", sec.name.value, super::type_name(sec.kind.value)),
            format!("add api_key: \"${{{env}}}\""),
        ),
    }
}
