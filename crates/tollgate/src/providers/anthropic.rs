//! `anthropic`: the Messages API, directly or (through `vertex`) on Vertex
//! AI. A `/v1/messages` request is sent as the client wrote it (only the
//! model changes); a chat-completions request is translated.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, header};
use serde_json::Value;

use super::exchange::{Answer, Exchange, Wire};
use super::http::{HttpClient, Upstreams};
use super::stream::Mode;
use super::{Call, Dialect, Operation, Timeouts, UpstreamReply, untranslatable};
use crate::config::diag::Diags;
use crate::config::file::ProviderSection;
use crate::error::UpstreamError;
use crate::translate::{self, Settings, anthropic as tr};
use crate::wire::json::json_string;
use crate::wire::openai::Usage;

#[derive(Debug)]
pub struct Anthropic {
    base: String,
    headers: HeaderMap,
    beta: Vec<String>,
    settings: Settings,
    auth: Auth,
    client: HttpClient,
}

#[derive(Debug)]
enum Auth {
    /// `x-api-key`, in `headers`.
    Key,
    /// Vertex AI: a bearer token from the service account, the model in the URL.
    Vertex { tokens: Arc<super::vertex::TokenSource>, prefix: String },
}

impl Anthropic {
    pub fn build(sec: &ProviderSection, ups: &Upstreams, t: &Timeouts, diags: &mut Diags) -> Option<Anthropic> {
        let base = super::exchange::check_base(sec, "https://api.anthropic.com", diags)?;
        let mut headers = HeaderMap::new();
        super::exchange::required_key_header(
            sec,
            &mut headers,
            HeaderName::from_static("x-api-key"),
            "",
            "ANTHROPIC_API_KEY",
            diags,
        );
        let version = sec.anthropic_version.clone().unwrap_or_else(|| "2023-06-01".into());
        match HeaderValue::from_str(&version) {
            Ok(v) => {
                headers.insert("anthropic-version", v);
            }
            Err(_) => diags.at(&sec.name, "anthropic_version is not a valid header value", "write e.g. 2023-06-01"),
        }
        super::exchange::extra_headers(sec, &mut headers, diags);
        Some(Anthropic {
            base,
            headers,
            beta: sec.anthropic_beta.clone(),
            settings: super::settings(sec),
            auth: Auth::Key,
            client: ups.client(t.connect),
        })
    }

    /// Anthropic models on Vertex AI, sharing the Vertex provider's token source.
    pub fn on_vertex(sec: &ProviderSection, v: &super::vertex::OnVertex) -> Anthropic {
        Anthropic {
            base: String::new(),
            headers: v.headers.clone(),
            beta: sec.anthropic_beta.clone(),
            settings: super::settings(sec),
            auth: Auth::Vertex { tokens: v.tokens.clone(), prefix: v.prefix.clone() },
            client: v.client.clone(),
        }
    }

    pub async fn call(&self, provider: &str, t: &Timeouts, call: Call<'_>) -> Result<UpstreamReply, UpstreamError> {
        if call.op == Operation::Embeddings {
            return Err(UpstreamError::Untranslatable {
                provider: provider.into(),
                message: "Anthropic has no embeddings API; use an embeddings model from another provider".into(),
            });
        }
        let model = call.upstream_model;
        let vertex = matches!(self.auth, Auth::Vertex { .. });
        let (body, dialect) = match call.native.filter(|n| n.dialect == Dialect::Anthropic) {
            Some(n) => {
                let model_json = json_string(model);
                let mut replace: Vec<(&str, &str)> =
                    call.overrides.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                let mut remove = Vec::new();
                if vertex {
                    replace.push(("anthropic_version", "\"vertex-2023-10-16\""));
                    remove.push("model");
                } else {
                    replace.push(("model", &model_json));
                }
                (n.raw.rebuild(&replace, &remove), Dialect::Anthropic)
            }
            None => {
                let hub = call.hub(provider)?;
                let mut v = tr::request(&hub, model, &self.settings).map_err(|e| untranslatable(provider, e))?;
                if vertex && let Some(o) = v.as_object_mut() {
                    o.remove("model");
                    o.insert("anthropic_version".into(), Value::from("vertex-2023-10-16"));
                }
                (serde_json::to_vec(&v).unwrap_or_default(), Dialect::OpenAi)
            }
        };
        let url = match &self.auth {
            Auth::Key => format!("{}/v1/messages", self.base),
            Auth::Vertex { prefix, .. } => {
                let verb = if call.stream { "streamRawPredict" } else { "rawPredict" };
                format!("{prefix}/publishers/anthropic/models/{model}:{verb}")
            }
        };
        let x = Exchange::new(provider, *t);
        let mut req = x.post(&url, &self.headers, body)?;
        let h = req.headers_mut();
        let client_beta = call.native.filter(|n| n.dialect == Dialect::Anthropic).and_then(|n| n.beta.as_deref());
        let beta: Vec<&str> = self.beta.iter().map(String::as_str).chain(client_beta).collect();
        if !beta.is_empty()
            && let Ok(v) = HeaderValue::from_str(&beta.join(","))
        {
            h.insert("anthropic-beta", v);
        }
        if let Auth::Vertex { tokens, .. } = &self.auth {
            h.insert(header::AUTHORIZATION, tokens.bearer(provider).await?);
        }
        let stream = call.stream.then(|| {
            let translator: Box<dyn translate::ToOpenAiStream> = match dialect {
                Dialect::Anthropic => Box::new(tr::Native::default()),
                Dialect::OpenAi | Dialect::Responses => Box::new(tr::Stream::new(model, call.hub_wants_usage())),
            };
            ("text/event-stream", Mode::Sse(translator), dialect)
        });
        let wire = Wire { error_message, stream, max_response_size: call.max_response_size, fix_error: None };
        let body = match x.run(&self.client, req, wire).await? {
            Answer::Stream(body) => return Ok(UpstreamReply::Stream(body, dialect)),
            Answer::Whole(body) => body,
        };
        let v = x.json(&body)?;
        let usage = v.get("usage").map(|u| Usage::from(tr::tokens(u)));
        match dialect {
            Dialect::Anthropic => Ok(UpstreamReply::Complete { body, usage, dialect }),
            Dialect::OpenAi | Dialect::Responses => {
                let hub = tr::response(&v).map_err(|e| x.broken(e.0))?;
                Ok(UpstreamReply::Complete { body: Bytes::from(hub.to_string()), usage, dialect })
            }
        }
    }
}

/// `error.message` of Anthropic's `{"type":"error","error":{…}}`.
pub fn error_message(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    v.pointer("/error/message").and_then(Value::as_str).map(str::to_string)
}
