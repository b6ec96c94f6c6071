//! Errors of the request path and the one place they become HTTP responses.
//!
//! Each domain has its own enum (request input, identity, upstream); the
//! `GatewayError` wrapper maps all of them, exhaustively, to a status, an
//! OpenAI-shaped body, a retryability flag and a low-cardinality label for
//! metrics. Messages say what to change; they never carry a secret.

use std::time::Duration;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};

use crate::wire::openai::error_body;

/// The client sent something the gateway cannot accept.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("{0}")]
    InvalidJson(String),
    #[error("`{field}` {problem}")]
    InvalidField { field: &'static str, problem: String },
    #[error("`{0}` is required")]
    MissingField(&'static str),
    #[error(
        "request body is larger than the limit of {limit} bytes; send a smaller body or raise server.max_body_size"
    )]
    TooLarge { limit: usize },
    /// The body did not arrive within `server.body_read_timeout`.
    #[error("{0}; send the whole body promptly")]
    BodyTimeout(String),
    #[error("the model `{0}` does not exist; GET /v1/models lists the models your key may use")]
    UnknownModel(String),
    #[error("{message}")]
    Metadata { message: String, param: Option<String> },
    #[error("{0}")]
    UnsupportedOperation(String),
    /// A request body that breaks its API's rules; the message names the field.
    #[error("{0}")]
    InvalidBody(String),
    /// A gateway request header the client got wrong.
    #[error("header `{header}` {message}")]
    InvalidHeader { header: &'static str, message: String },
}

/// Who is calling, and may they.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("missing credentials: send `Authorization: Bearer <key>` or `x-api-key: <key>`")]
    Missing,
    #[error("invalid API key; check the key you sent")]
    Invalid,
    #[error("{0}")]
    InvalidToken(String),
    #[error("this key may not use the model `{0}`")]
    ModelNotAllowed(String),
    #[error("this key may not call the tool `{0}`")]
    ToolNotAllowed(String),
    #[error("this key may not call the agent `{0}`")]
    AgentNotAllowed(String),
    #[error("admin routes need the master key or a key with an admin role; data-plane keys cannot call them")]
    NotAdmin,
    #[error("this key's role does not allow {0}")]
    Forbidden(String),
}

/// What went wrong talking to a provider.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("provider `{provider}` returned {status}: {message}")]
    Status { provider: String, status: u16, message: String, retry_after: Option<HeaderValue> },
    #[error("provider `{provider}` did not answer within {}ms ({phase})", after.as_millis())]
    Timeout { provider: String, phase: &'static str, after: Duration },
    #[error("could not connect to provider `{provider}`: {message}")]
    Connect { provider: String, message: String },
    #[error("provider `{provider}` failed mid-response: {message}")]
    Broken { provider: String, message: String },
    /// The request cannot be expressed in the provider's wire format; it was not sent.
    #[error("provider `{provider}` cannot take this request: {message}")]
    Untranslatable { provider: String, message: String },
}

/// What the admin API refuses or cannot do.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// A malformed body or query; `code` names the route's kind of input.
    #[error("{message}")]
    Invalid { code: &'static str, message: String },
    /// The caller's role does not allow this action on this object.
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    UnknownRoute(String),
    /// The object's state does not allow the change (a name taken, a key revoked).
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// The store could not be read or written; nothing was changed.
    #[error("{0}")]
    StoreUnavailable(String),
    #[error("{0}")]
    ReloadFailed(String),
}

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error(transparent)]
    Admin(#[from] AdminError),
    #[error(transparent)]
    Request(#[from] RequestError),
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    /// A request's `prompt` names a template, version or label that does
    /// not exist, or leaves out its variables.
    #[error(transparent)]
    Prompt(#[from] crate::prompts::PromptError),
    #[error("every target of `{virtual_model}` failed; last error: {last}")]
    AllTargetsFailed { virtual_model: String, last: Box<UpstreamError> },
    #[error("every target of `{0}` is out of rotation after repeated failures (circuit open); retry shortly")]
    NoHealthyTarget(String),
    #[error("rate limit `{}` ({}) allows {} {} per window; {}", .0.rule, .0.key, .0.limit, .0.unit,
        .0.retry_after.map_or("this request alone is larger than that".to_string(), |d| format!("retry in {}s", d.as_millis().div_ceil(1000).max(1))))]
    RateLimited(crate::limits::Refusal),
    #[error("{}; {}", .0.describe(), .0.resets_at.map_or("it does not reset".to_string(), |t| format!("it resets at {}", crate::budgets::period::format_utc(t))))]
    BudgetExceeded(crate::budgets::Refusal),
    /// A guardrail stopped the call. The message names the guardrail and
    /// the hook, never what it matched.
    #[error("guardrail `{guardrail}` blocked this {} at {hook}", if hook.ends_with("input") || hook.ends_with("pre") { "request" } else { "response" })]
    GuardrailBlocked { guardrail: String, hook: &'static str },
    #[error("not found: {0}")]
    NotFound(String),
    #[error("the gateway is not ready yet")]
    NotReady,
    #[error("the gateway is handling its maximum of {0} requests at once (server.max_concurrent_requests); retry shortly")]
    Overloaded(usize),
}

impl UpstreamError {
    /// Whether trying again (here or on another target) can help.
    pub fn is_retryable(&self) -> bool {
        match self {
            UpstreamError::Status { status, .. } => matches!(status, 408 | 409 | 429 | 500..=599),
            UpstreamError::Timeout { .. } | UpstreamError::Connect { .. } | UpstreamError::Broken { .. } => true,
            UpstreamError::Untranslatable { .. } => false,
        }
    }

    pub fn status(&self) -> Option<u16> {
        match self {
            UpstreamError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    pub fn provider(&self) -> &str {
        match self {
            UpstreamError::Status { provider, .. }
            | UpstreamError::Timeout { provider, .. }
            | UpstreamError::Connect { provider, .. }
            | UpstreamError::Broken { provider, .. }
            | UpstreamError::Untranslatable { provider, .. } => provider,
        }
    }
}

impl GatewayError {
    /// (status, OpenAI error type, code, param)
    pub fn parts(&self) -> (StatusCode, &'static str, Option<&'static str>, Option<&str>) {
        use GatewayError as G;
        use RequestError as R;
        const INVALID: &str = "invalid_request_error";
        match self {
            G::Request(r) => match r {
                R::InvalidJson(_) => (StatusCode::BAD_REQUEST, INVALID, Some("invalid_json"), None),
                R::InvalidField { field, .. } => (StatusCode::BAD_REQUEST, INVALID, Some("invalid_type"), Some(field)),
                R::MissingField(f) => (StatusCode::BAD_REQUEST, INVALID, Some("missing_required_parameter"), Some(f)),
                R::TooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, INVALID, Some("request_too_large"), None),
                R::BodyTimeout(_) => (StatusCode::REQUEST_TIMEOUT, INVALID, Some("request_timeout"), None),
                R::UnknownModel(_) => (StatusCode::NOT_FOUND, INVALID, Some("model_not_found"), Some("model")),
                R::Metadata { param, .. } => {
                    (StatusCode::BAD_REQUEST, INVALID, Some("invalid_metadata"), param.as_deref())
                }
                R::UnsupportedOperation(_) => (StatusCode::BAD_REQUEST, INVALID, Some("unsupported_operation"), None),
                R::InvalidBody(_) => (StatusCode::BAD_REQUEST, INVALID, Some("invalid_request"), None),
                R::InvalidHeader { header, .. } => {
                    (StatusCode::BAD_REQUEST, INVALID, Some("invalid_header"), Some(header))
                }
            },
            G::Auth(a) => match a {
                AuthError::Missing | AuthError::Invalid | AuthError::InvalidToken(_) => {
                    (StatusCode::UNAUTHORIZED, INVALID, Some("invalid_api_key"), None)
                }
                AuthError::ModelNotAllowed(_) => {
                    (StatusCode::FORBIDDEN, "permission_error", Some("model_not_allowed"), Some("model"))
                }
                AuthError::ToolNotAllowed(_) => {
                    (StatusCode::FORBIDDEN, "permission_error", Some("tool_not_allowed"), Some("name"))
                }
                AuthError::AgentNotAllowed(_) => {
                    (StatusCode::FORBIDDEN, "permission_error", Some("agent_not_allowed"), None)
                }
                AuthError::NotAdmin => (StatusCode::FORBIDDEN, "permission_error", Some("admin_only"), None),
                AuthError::Forbidden(_) => (StatusCode::FORBIDDEN, "permission_error", Some("role_forbidden"), None),
            },
            G::AllTargetsFailed { last, .. } => upstream_parts(last),
            G::NoHealthyTarget(_) => (StatusCode::SERVICE_UNAVAILABLE, "api_error", Some("no_healthy_target"), None),
            G::RateLimited(_) => (StatusCode::TOO_MANY_REQUESTS, "rate_limit_error", Some("rate_limit_exceeded"), None),
            G::BudgetExceeded(_) => {
                (StatusCode::TOO_MANY_REQUESTS, "insufficient_quota", Some("budget_exceeded"), None)
            }
            G::Upstream(u) => upstream_parts(u),
            G::Prompt(p) => {
                let status = if p.is_not_found() { StatusCode::NOT_FOUND } else { StatusCode::BAD_REQUEST };
                (status, INVALID, Some(p.code()), Some("prompt"))
            }
            G::GuardrailBlocked { .. } => (StatusCode::BAD_REQUEST, INVALID, Some("guardrail_blocked"), None),
            G::NotFound(_) => (StatusCode::NOT_FOUND, INVALID, Some("not_found"), None),
            G::NotReady => (StatusCode::SERVICE_UNAVAILABLE, "api_error", Some("not_ready"), None),
            G::Overloaded(_) => (StatusCode::SERVICE_UNAVAILABLE, "api_error", Some("overloaded"), None),
            G::Admin(a) => match a {
                AdminError::Invalid { code, .. } => (StatusCode::BAD_REQUEST, INVALID, Some(*code), None),
                AdminError::Forbidden(_) => (StatusCode::FORBIDDEN, "permission_error", Some("role_forbidden"), None),
                AdminError::NotFound(_) => (StatusCode::NOT_FOUND, INVALID, Some("not_found"), None),
                AdminError::UnknownRoute(_) => (StatusCode::NOT_FOUND, INVALID, Some("unknown_route"), None),
                AdminError::Conflict { code, .. } => (StatusCode::CONFLICT, INVALID, Some(*code), None),
                AdminError::StoreUnavailable(_) => {
                    (StatusCode::SERVICE_UNAVAILABLE, "api_error", Some("store_unavailable"), None)
                }
                AdminError::ReloadFailed(_) => {
                    (StatusCode::INTERNAL_SERVER_ERROR, "api_error", Some("reload_failed"), None)
                }
            },
        }
    }

    /// A bounded label for metrics and logs.
    pub fn label(&self) -> &'static str {
        self.parts().2.unwrap_or("error")
    }

    /// The provider error behind this one, if any.
    pub fn upstream(&self) -> Option<&UpstreamError> {
        match self {
            GatewayError::Upstream(u) => Some(u),
            GatewayError::AllTargetsFailed { last, .. } => Some(last),
            _ => None,
        }
    }
}

fn upstream_parts(u: &UpstreamError) -> (StatusCode, &'static str, Option<&'static str>, Option<&'static str>) {
    match u {
        UpstreamError::Status { status, .. } => {
            let (s, kind) = upstream_status(*status);
            (s, kind, Some("upstream_error"), None)
        }
        UpstreamError::Timeout { .. } => (StatusCode::GATEWAY_TIMEOUT, "api_error", Some("upstream_timeout"), None),
        UpstreamError::Connect { .. } => (StatusCode::BAD_GATEWAY, "api_error", Some("upstream_unreachable"), None),
        UpstreamError::Broken { .. } => (StatusCode::BAD_GATEWAY, "api_error", Some("upstream_broken"), None),
        UpstreamError::Untranslatable { .. } => {
            (StatusCode::BAD_REQUEST, "invalid_request_error", Some("unsupported_by_provider"), None)
        }
    }
}

/// Maps a provider's status to the one the client sees. Client errors keep
/// their status; a provider refusing *our* credential is a gateway problem
/// (502), not the caller's; server errors stay distinguishable for routing.
fn upstream_status(status: u16) -> (StatusCode, &'static str) {
    match status {
        401 | 403 => (StatusCode::BAD_GATEWAY, "api_error"),
        429 => (StatusCode::TOO_MANY_REQUESTS, "rate_limit_error"),
        400..=499 => (StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST), "invalid_request_error"),
        503 | 529 => (StatusCode::SERVICE_UNAVAILABLE, "api_error"),
        504 => (StatusCode::GATEWAY_TIMEOUT, "api_error"),
        _ => (StatusCode::BAD_GATEWAY, "api_error"),
    }
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        GatewayError::from(self).into_response()
    }
}

impl IntoResponse for GatewayError {
    fn into_response(self) -> Response {
        render(self, crate::wire::Dialect::OpenAi)
    }
}

/// The error response in the client's dialect: OpenAI's error object, or
/// Anthropic's `{"type":"error","error":{…}}` on `/v1/messages`.
pub fn render(e: GatewayError, dialect: crate::wire::Dialect) -> Response {
    let this = e;
    let (status, kind, code, param) = this.parts();
    let mut message = this.to_string();
    if let Some(UpstreamError::Status { status: 401 | 403, .. }) = this.upstream() {
        message.push_str(" (the provider rejected the gateway's own credential; check the provider's api_key)");
    }
    let body = match dialect {
        crate::wire::Dialect::OpenAi | crate::wire::Dialect::Responses => error_body(&message, kind, code, param),
        crate::wire::Dialect::Anthropic => {
            crate::translate::messages::error_body(status.as_u16(), &message).to_string().into_bytes()
        }
    };
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Some(UpstreamError::Status { retry_after: Some(v), .. }) = this.upstream() {
        resp.headers_mut().insert(header::RETRY_AFTER, v.clone());
    }
    match &this {
        GatewayError::Overloaded(_) => {
            resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        GatewayError::RateLimited(r) => {
            if let Some(d) = r.retry_after {
                let secs = d.as_millis().div_ceil(1000).max(1) as u64;
                resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
            }
            if let Ok(v) = HeaderValue::from_str(&r.rule) {
                resp.headers_mut().insert("x-tollgate-limit", v);
            }
        }
        GatewayError::BudgetExceeded(b) => {
            // Retrying at once cannot help; SDKs that honour this header will not.
            resp.headers_mut().insert("x-should-retry", HeaderValue::from_static("false"));
            if let Some(at) = b.resets_at.filter(|_| b.can_fit()) {
                let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
                resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(at.saturating_sub(now).max(1)));
            }
            if let Ok(v) = HeaderValue::from_str(&b.rule) {
                resp.headers_mut().insert("x-tollgate-budget", v);
            }
        }
        _ => {}
    }
    if matches!(this, GatewayError::Auth(AuthError::Missing | AuthError::Invalid | AuthError::InvalidToken(_))) {
        resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_mapped_in_one_place() {
        let e = GatewayError::from(RequestError::UnknownModel("x".into()));
        assert_eq!(e.parts().0, StatusCode::NOT_FOUND);
        let e = GatewayError::from(AuthError::ModelNotAllowed("m".into()));
        assert_eq!(e.parts().0, StatusCode::FORBIDDEN);
        assert!(e.to_string().contains("`m`"));
        let up = |s| {
            GatewayError::from(UpstreamError::Status {
                provider: "p".into(),
                status: s,
                message: "m".into(),
                retry_after: None,
            })
            .parts()
            .0
            .as_u16()
        };
        assert_eq!((up(400), up(401), up(429), up(500), up(503), up(529)), (400, 502, 429, 502, 503, 503));
    }
}
