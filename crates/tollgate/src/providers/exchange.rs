//! One HTTP exchange with a provider, the same for every wire format: build
//! the POST, send within the first-token limit, read an error or a whole
//! body within the total deadline and the size limit, or check and start
//! relaying a stream. A provider module supplies only what differs — the
//! URL, its credentials or signature, the body and the stream translator —
//! and reads the answer (`Answer`) in its own format.

use bytes::Bytes;
use http::{Request, Response, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use tokio::time::Instant;

use super::http::HttpClient;
use super::stream::{Mode, SseRelay};
use super::{Dialect, Timeouts};
use crate::config::diag::Diags;
use crate::error::UpstreamError;

/// How a provider's answer is read: where its error message is, what a
/// stream looks like and how it is translated, how large a body may be.
pub struct Wire {
    /// Reads the provider's message from its error body.
    pub error_message: fn(&[u8]) -> Option<String>,
    /// For a stream: the content type the provider must answer with, the
    /// relay mode (translator) and the dialect the relay emits.
    pub stream: Option<(&'static str, Mode, Dialect)>,
    pub max_response_size: usize,
    /// Adjusts an error from the response headers (Bedrock names its error
    /// kind in `x-amzn-errortype`).
    pub fix_error: Option<fn(&http::HeaderMap, &mut UpstreamError)>,
}

impl Wire {
    /// For a provider that translates from and to the hub: a stream must
    /// come as `content_type` and is relayed through `mode` (made only for
    /// a stream) as hub events.
    pub fn hub(
        error_message: fn(&[u8]) -> Option<String>,
        call: &super::Call<'_>,
        content_type: &'static str,
        mode: impl FnOnce() -> Mode,
    ) -> Wire {
        Wire {
            error_message,
            stream: call.stream.then(|| (content_type, mode(), Dialect::OpenAi)),
            max_response_size: call.max_response_size,
            fix_error: None,
        }
    }
}

/// What a translating provider gets back: a stream, already the hub reply,
/// or a whole answer as JSON for it to translate.
pub enum HubAnswer {
    Reply(super::UpstreamReply),
    Json(serde_json::Value),
}

/// A successful answer: a whole body, or a stream already relaying (its
/// first event in hand).
pub enum Answer {
    Whole(Bytes),
    Stream(axum::body::Body),
}

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

    /// A JSON POST to `url` with the provider's headers.
    pub fn post<'h>(
        &self,
        url: &str,
        headers: impl IntoIterator<Item = (&'h http::HeaderName, &'h http::HeaderValue)>,
        body: Vec<u8>,
    ) -> Result<Request<Full<Bytes>>, UpstreamError> {
        let uri: http::Uri = url.parse().map_err(|e| self.broken(format!("bad upstream URL: {e}")))?;
        let mut req = Request::builder().method(http::Method::POST).uri(uri);
        if let Some(h) = req.headers_mut() {
            h.insert(header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
            h.extend(headers.into_iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        req.body(Full::new(Bytes::from(body))).map_err(|e| self.broken(e.to_string()))
    }

    /// The exchange every provider shares once its request is built (and
    /// signed): send, turn a non-2xx into the provider's error, check that
    /// a stream is one and start relaying it, or read the whole body.
    pub async fn run(
        &self,
        client: &HttpClient,
        req: Request<Full<Bytes>>,
        wire: Wire,
    ) -> Result<Answer, UpstreamError> {
        let resp = self.send(client, req).await?;
        if !resp.status().is_success() {
            let headers = wire.fix_error.map(|_| resp.headers().clone());
            let mut e = self.failure(resp, wire.error_message).await;
            if let (Some(fix), Some(h)) = (wire.fix_error, headers) {
                fix(&h, &mut e);
            }
            return Err(e);
        }
        if let Some((content_type, mode, dialect)) = wire.stream {
            if !is_event_stream(&resp, content_type) {
                return Err(self.broken("asked for a stream but the provider answered without one"));
            }
            return Ok(Answer::Stream(self.relay(resp, mode, dialect).await?));
        }
        Ok(Answer::Whole(self.body(resp, wire.max_response_size).await?))
    }

    /// `run` for a provider that translates the hub (see `HubAnswer`).
    pub async fn hub(
        &self,
        client: &HttpClient,
        req: Request<Full<Bytes>>,
        wire: Wire,
    ) -> Result<HubAnswer, UpstreamError> {
        Ok(match self.run(client, req, wire).await? {
            Answer::Stream(body) => HubAnswer::Reply(super::UpstreamReply::Stream(body, Dialect::OpenAi)),
            Answer::Whole(bytes) => HubAnswer::Json(self.json(&bytes)?),
        })
    }

    /// A whole body as JSON.
    pub fn json(&self, body: &[u8]) -> Result<serde_json::Value, UpstreamError> {
        serde_json::from_slice(body).map_err(|e| self.broken(format!("the answer is not JSON: {e}")))
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
        // Providers quote the credential they were sent ("Incorrect API key
        // provided: sk-…"); the gateway's own key must not reach its clients.
        let message = crate::redact::text(&message);
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

/// A provider's `base_url`, checked, without a trailing `/`; `default` when unset.
pub fn check_base(sec: &crate::config::file::ProviderSection, default: &str, diags: &mut Diags) -> Option<String> {
    let Some(b) = &sec.base_url else { return Some(default.to_string()) };
    let s = b.value.trim_end_matches('/').to_string();
    match s.parse::<http::Uri>() {
        Ok(u) if matches!(u.scheme_str(), Some("http" | "https")) && u.authority().is_some() => Some(s),
        _ => {
            diags.at(b, format!("base_url `{}` is not an http(s) URL", b.value), "write e.g. https://api.example.com");
            None
        }
    }
}

/// A provider's configured extra headers, checked and marked sensitive.
pub fn extra_headers(sec: &crate::config::file::ProviderSection, headers: &mut http::HeaderMap, diags: &mut Diags) {
    for (k, v) in &sec.headers {
        match (http::HeaderName::try_from(k.as_str()), secret_header(v)) {
            (Ok(n), Some(v)) if n != header::HOST && n != header::CONTENT_LENGTH => {
                headers.insert(n, v);
            }
            _ => diags.at(
                &sec.name,
                format!("header `{k}` is not a valid upstream header"),
                "use a plain header name and value",
            ),
        }
    }
}

/// The provider's required `api_key` as header `name` (value `prefix` + key,
/// marked sensitive); a missing or unusable key is a config error.
pub fn required_key_header(
    sec: &crate::config::file::ProviderSection,
    headers: &mut http::HeaderMap,
    name: http::HeaderName,
    prefix: &str,
    env: &str,
    diags: &mut Diags,
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
