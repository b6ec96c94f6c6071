//! `bedrock`: Converse and ConverseStream on Bedrock runtime, each request
//! signed with SigV4 (or sent with a Bedrock API key as a bearer token);
//! streams arrive as the binary AWS event-stream and are decoded
//! incrementally. Embeddings go through InvokeModel.

use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use bytes::Bytes;
use http::{HeaderValue, Request, header};
use http_body_util::Full;

use super::exchange::{Exchange, HubAnswer, Wire, secret_header};
use super::http::{HttpClient, Upstreams};
use super::stream::Mode;
use super::{Call, Operation, Timeouts, UpstreamReply, untranslatable};
use crate::config::diag::Diags;
use crate::config::file::ProviderSection;
use crate::error::UpstreamError;
use crate::translate::{Settings, bedrock as tr};

pub struct Bedrock {
    base: String,
    region: String,
    auth: Auth,
    settings: Settings,
    client: HttpClient,
}

enum Auth {
    SigV4(Credentials),
    Bearer(HeaderValue),
}

// Credentials must never reach debug output.
impl std::fmt::Debug for Bedrock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bedrock").field("base", &self.base).field("region", &self.region).finish_non_exhaustive()
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

impl Bedrock {
    pub fn build(sec: &ProviderSection, ups: &Upstreams, t: &Timeouts, diags: &mut Diags) -> Option<Bedrock> {
        let Some(region) = sec.region.clone().or_else(|| env("AWS_REGION")).or_else(|| env("AWS_DEFAULT_REGION"))
        else {
            diags.at(
                &sec.name,
                "provider of type `bedrock` needs a region",
                "add region: us-east-1 (or set AWS_REGION)",
            );
            return None;
        };
        let base = super::exchange::check_base(sec, &format!("https://bedrock-runtime.{region}.amazonaws.com"), diags)?;
        let auth = if let Some(k) = sec.api_key.as_ref().filter(|k| !k.value.is_empty()) {
            match secret_header(&format!("Bearer {}", k.value)) {
                Some(v) => Auth::Bearer(v),
                None => {
                    diags.at(k, "api_key contains characters not allowed in an HTTP header", "check the key's value");
                    return None;
                }
            }
        } else {
            let id = sec.access_key_id.clone().filter(|v| !v.is_empty()).or_else(|| env("AWS_ACCESS_KEY_ID"));
            let secret =
                sec.secret_access_key.clone().filter(|v| !v.is_empty()).or_else(|| env("AWS_SECRET_ACCESS_KEY"));
            let token = sec.session_token.clone().filter(|v| !v.is_empty()).or_else(|| env("AWS_SESSION_TOKEN"));
            match (id, secret) {
                (Some(id), Some(secret)) => Auth::SigV4(Credentials::new(id, secret, token, None, "tollgate-config")),
                _ => {
                    diags.at(
                        &sec.name,
                        "provider of type `bedrock` needs AWS credentials",
                        "set access_key_id and secret_access_key (or AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY), or api_key for a Bedrock API key",
                    );
                    return None;
                }
            }
        };
        Some(Bedrock { base, region, auth, settings: super::settings(sec), client: ups.client(t.connect) })
    }

    fn sign(&self, req: &mut Request<Full<Bytes>>, body: &[u8]) -> Result<(), String> {
        let creds = match &self.auth {
            Auth::Bearer(v) => {
                req.headers_mut().insert(header::AUTHORIZATION, v.clone());
                return Ok(());
            }
            Auth::SigV4(c) => c,
        };
        let identity = creds.clone().into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name("bedrock")
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| e.to_string())?
            .into();
        let uri = req.uri().to_string();
        let headers: Vec<(&str, &str)> =
            req.headers().iter().filter_map(|(k, v)| Some((k.as_str(), v.to_str().ok()?))).collect();
        let signable =
            SignableRequest::new(req.method().as_str(), &uri, headers.into_iter(), SignableBody::Bytes(body))
                .map_err(|e| e.to_string())?;
        let (instructions, _) = sign(signable, &params).map_err(|e| e.to_string())?.into_parts();
        instructions.apply_to_request_http1x(req);
        for v in req.headers_mut().values_mut() {
            v.set_sensitive(true);
        }
        Ok(())
    }

    pub async fn call(&self, provider: &str, t: &Timeouts, call: Call<'_>) -> Result<UpstreamReply, UpstreamError> {
        let model = call.upstream_model;
        let hub = call.hub(provider)?;
        let (verb, body) = match call.op {
            Operation::Embeddings => ("invoke", tr::embed_request(&hub, model)),
            Operation::ChatCompletions if call.stream => ("converse-stream", tr::request(&hub, &self.settings)),
            Operation::ChatCompletions => ("converse", tr::request(&hub, &self.settings)),
        };
        let body = body.map_err(|e| untranslatable(provider, e))?.to_string();
        let x = Exchange::new(provider, *t);
        let url = format!("{}/model/{}/{verb}", self.base, encode_segment(model));
        let accept = HeaderValue::from_static(if call.stream {
            "application/vnd.amazon.eventstream"
        } else {
            "application/json"
        });
        let mut req = x.post(&url, [(&header::ACCEPT, &accept)], body.clone().into_bytes())?;
        self.sign(&mut req, body.as_bytes()).map_err(|e| x.broken(format!("signing the request: {e}")))?;
        let wire = Wire {
            fix_error: Some(error_kind),
            ..Wire::hub(tr::error_message, &call, "application/vnd.amazon.eventstream", || {
                Mode::Aws(Box::new(tr::Stream::new(model, call.hub_wants_usage())), Box::default())
            })
        };
        let v = match x.hub(&self.client, req, wire).await? {
            HubAnswer::Reply(r) => return Ok(r),
            HubAnswer::Json(v) => v,
        };
        let read = super::Readers { embeddings: tr::embed_response, chat: tr::response, usage: ("usage", tr::tokens) };
        super::hub_reply(&x, &call, &hub, &v, read)
    }
}

/// Bedrock names the error in a header; throttling must read as 429
/// whatever the status.
fn error_kind(headers: &http::HeaderMap, e: &mut UpstreamError) {
    let kind = headers.get("x-amzn-errortype").and_then(|v| v.to_str().ok());
    if let (UpstreamError::Status { status, message, .. }, Some(kind)) = (e, kind) {
        let kind = kind.split(':').next().unwrap_or("");
        if kind.to_ascii_lowercase().starts_with("throttling") {
            *status = 429;
        }
        *message = format!("{kind}: {message}");
    }
}

/// A model id as one URL path segment (`:` and `/` in ids are encoded).
fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_ids_are_encoded_as_one_segment() {
        assert_eq!(
            encode_segment("anthropic.claude-3-5-haiku-20241022-v1:0"),
            "anthropic.claude-3-5-haiku-20241022-v1%3A0"
        );
        assert_eq!(encode_segment("arn:aws:bedrock/x"), "arn%3Aaws%3Abedrock%2Fx");
    }
}
