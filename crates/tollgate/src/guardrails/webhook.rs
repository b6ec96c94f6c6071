//! `type: webhook` — your own check behind an HTTP endpoint. The gateway
//! POSTs `{hook, guardrail, request_id, subject, metadata, content}` where
//! `content` is the call's JSON document (the request, the answer, the
//! tool's arguments or result), and reads back
//! `{"verdict": "pass"|"block", "reason": "…", "content": …}`. With
//! `action: mutate`, a returned `content` replaces the document. A non-2xx
//! answer, a malformed one or a timeout (`timeout`, default 2s) is the
//! guardrail's own error: let through under `enforce`, blocked under
//! `strict`. The URL obeys the gateway's SSRF rules (no link-local or
//! metadata addresses; private ones only with `allow_private_network`).
//!
//! ```yaml
//! - name: dlp
//!   type: webhook
//!   url: https://dlp.internal.example.com/check
//!   headers: { authorization: "Bearer ${DLP_TOKEN}" }
//!   timeout: 500ms
//!   mode: strict
//! ```

use std::collections::BTreeMap;

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::{BodyExt, Full, Limited};
use serde_json::Value;

use crate::config::file::GuardrailAction;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {
    url: String,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    allow_private_network: bool,
}

#[derive(Debug)]
pub struct Webhook {
    pub url: http::Uri,
    headers: http::HeaderMap,
    allow_private: bool,
    mutate: bool,
}

/// The webhook's answer.
#[derive(serde::Deserialize)]
struct Answer {
    verdict: String,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    content: Option<Value>,
}

/// What the runner learns from one call.
pub enum Outcome {
    Pass(Option<Value>),
    Block(String),
}

/// Longest answer read from a webhook.
const MAX_ANSWER: usize = 8 << 20;

impl Webhook {
    pub fn build(opts: Value, action: GuardrailAction) -> Result<Webhook, String> {
        let o: Options = super::options(opts)?;
        let url: http::Uri = o.url.parse().map_err(|e| format!("url `{}`: {e}", o.url))?;
        if !matches!(url.scheme_str(), Some("http" | "https")) || url.host().is_none() {
            return Err(format!("url `{}` is not an http(s) URL", o.url));
        }
        if let Some(Ok(ip)) = url.host().map(|h| h.trim_matches(['[', ']']).parse()) {
            crate::netguard::ip_allowed(ip, o.allow_private_network).map_err(|e| format!("url: {e}"))?;
        }
        let mut headers = http::HeaderMap::new();
        for (k, v) in &o.headers {
            let name = http::HeaderName::from_bytes(k.as_bytes())
                .map_err(|_| format!("headers: `{k}` is not a header name"))?;
            let mut value = http::HeaderValue::from_str(v)
                .map_err(|_| format!("headers: the value of `{k}` is not a valid header value"))?;
            // Usually a credential: kept out of debug output.
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        Ok(Webhook { url, headers, allow_private: o.allow_private_network, mutate: action == GuardrailAction::Mutate })
    }

    /// One call; `Err` is the guardrail's own failure (never the content).
    pub async fn call(&self, client: &crate::providers::http::HttpClient, body: Value) -> Result<Outcome, String> {
        crate::netguard::check(&self.url, self.allow_private).await?;
        let mut req = Request::builder()
            .method(Method::POST)
            .uri(self.url.clone())
            .header("content-type", "application/json")
            .header("user-agent", "tollgate-guardrails");
        for (k, v) in &self.headers {
            req = req.header(k, v);
        }
        let req = req.body(Full::new(Bytes::from(body.to_string()))).map_err(|e| e.to_string())?;
        let resp = client.request(req).await.map_err(|e| format!("calling the webhook: {e}"))?;
        let status = resp.status();
        let bytes = Limited::new(resp.into_body(), MAX_ANSWER)
            .collect()
            .await
            .map_err(|e| format!("reading the webhook's answer: {e}"))?
            .to_bytes();
        if !status.is_success() {
            return Err(format!("the webhook answered {status}"));
        }
        let a: Answer = serde_json::from_slice(&bytes)
            .map_err(|e| format!("the webhook's answer is not {{\"verdict\": \"pass\"|\"block\", …}}: {e}"))?;
        match a.verdict.as_str() {
            "pass" => Ok(Outcome::Pass(if self.mutate { a.content } else { None })),
            "block" => Ok(Outcome::Block(a.reason.unwrap_or_else(|| "blocked by the webhook".into()))),
            other => Err(format!("the webhook's verdict `{other}` is neither pass nor block")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_values_stay_out_of_debug_output_and_urls_are_checked() {
        let w = Webhook::build(
            serde_json::json!({"url": "https://dlp.example.com/check", "headers": {"authorization": "Bearer s3cr3t-token"}}),
            GuardrailAction::Validate,
        )
        .expect("builds");
        assert!(!format!("{w:?}").contains("s3cr3t"));
        for (url, says) in [
            ("ftp://x/y", "not an http(s) URL"),
            ("http://169.254.169.254/latest", "link-local"),
            ("http://127.0.0.1:9/x", "allow_private_network"),
        ] {
            let e = Webhook::build(serde_json::json!({"url": url}), GuardrailAction::Validate).expect_err(url);
            assert!(e.contains(says), "{url}: {e}");
        }
    }
}
