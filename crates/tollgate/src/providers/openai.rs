//! `openai`, `azure_openai`, `openai_compatible` and the OpenAI-compatible
//! presets (groq, mistral, …). They share one wire format, so the request
//! body is passed through with only `model` rewritten, and responses are
//! relayed as they come.

use http::{HeaderMap, HeaderName, HeaderValue, Uri, header};

use super::exchange::{Answer, Exchange, Wire};
use super::http::{HttpClient, Upstreams};
use super::stream::Mode;
use super::{Call, Dialect, Operation, Timeouts, UpstreamReply, type_name};
use crate::config::diag::Diags;
use crate::config::file::{ProviderSection, ProviderType};
use crate::error::UpstreamError;
use crate::wire::json::json_string;
use crate::wire::openai::{peek_error_message, peek_usage};

/// Default API root and whether a key is required, per preset.
fn preset(t: ProviderType) -> (Option<&'static str>, bool) {
    use ProviderType::*;
    match t {
        Openai => (Some("https://api.openai.com/v1"), true),
        Groq => (Some("https://api.groq.com/openai/v1"), true),
        Mistral => (Some("https://api.mistral.ai/v1"), true),
        Together => (Some("https://api.together.xyz/v1"), true),
        Fireworks => (Some("https://api.fireworks.ai/inference/v1"), true),
        Deepseek => (Some("https://api.deepseek.com/v1"), true),
        Openrouter => (Some("https://openrouter.ai/api/v1"), true),
        Xai => (Some("https://api.x.ai/v1"), true),
        Cerebras => (Some("https://api.cerebras.ai/v1"), true),
        Perplexity => (Some("https://api.perplexity.ai"), true),
        Vllm => (Some("http://127.0.0.1:8000/v1"), false),
        Sglang => (Some("http://127.0.0.1:30000/v1"), false),
        Ollama => (Some("http://127.0.0.1:11434/v1"), false),
        Lmstudio => (Some("http://127.0.0.1:1234/v1"), false),
        AzureOpenai => (None, true),
        _ => (None, false),
    }
}

pub fn is_openai_family(t: ProviderType) -> bool {
    use ProviderType::*;
    t == OpenaiCompatible || t == AzureOpenai || preset(t).0.is_some()
}

#[derive(Debug)]
pub struct OpenAiCompat {
    pub type_label: &'static str,
    /// API root without a trailing slash.
    base: String,
    /// Upstream headers: credential and configured extras. Marked sensitive.
    headers: HeaderMap,
    azure: Option<Azure>,
    client: HttpClient,
}

#[derive(Debug)]
struct Azure {
    api_version: String,
    deployments: std::collections::BTreeMap<String, String>,
}

impl OpenAiCompat {
    pub fn build(sec: &ProviderSection, ups: &Upstreams, t: &Timeouts, diags: &mut Diags) -> Option<OpenAiCompat> {
        let kind = sec.kind.value;
        let (default_base, key_required) = preset(kind);
        let base = match (&sec.base_url, default_base) {
            (Some(b), _) => {
                let s = b.value.trim_end_matches('/').to_string();
                match s.parse::<Uri>() {
                    Ok(u) if matches!(u.scheme_str(), Some("http" | "https")) && u.authority().is_some() => s,
                    _ => {
                        diags.at(
                            b,
                            format!("base_url `{}` is not an http(s) URL", b.value),
                            "write e.g. https://api.example.com/v1",
                        );
                        return None;
                    }
                }
            }
            (None, Some(d)) => d.to_string(),
            (None, None) => {
                diags.at(
                    &sec.name,
                    format!("provider `{}` needs a base_url", sec.name.value),
                    "add base_url: https://…",
                );
                return None;
            }
        };
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        match &sec.api_key {
            Some(k) if !k.value.is_empty() => {
                let (name, value) = if kind == ProviderType::AzureOpenai {
                    (HeaderName::from_static("api-key"), HeaderValue::from_str(&k.value))
                } else {
                    (header::AUTHORIZATION, HeaderValue::from_str(&format!("Bearer {}", k.value)))
                };
                match value {
                    Ok(mut v) => {
                        v.set_sensitive(true);
                        headers.insert(name, v);
                    }
                    Err(_) => diags.at(
                        k,
                        "api_key contains characters not allowed in an HTTP header",
                        "check the key's value",
                    ),
                }
            }
            _ if key_required => {
                diags.at(
                    &sec.name,
                    format!("provider `{}` of type `{}` needs an api_key", sec.name.value, type_name(kind)),
                    "add api_key: \"${PROVIDER_API_KEY}\"",
                );
            }
            _ => {}
        }
        super::exchange::extra_headers(sec, &mut headers, diags);
        let azure = (kind == ProviderType::AzureOpenai).then(|| Azure {
            api_version: sec.api_version.clone().unwrap_or_else(|| "2024-10-21".into()),
            deployments: sec.deployments.clone(),
        });
        Some(OpenAiCompat { type_label: type_name(kind), base, headers, azure, client: ups.client(t.connect) })
    }

    fn url(&self, op: Operation, model: &str) -> String {
        match &self.azure {
            None => format!("{}{}", self.base, op.path()),
            Some(az) => {
                let dep = az.deployments.get(model).map_or(model, String::as_str);
                format!("{}/openai/deployments/{}{}?api-version={}", self.base, dep, op.path(), az.api_version)
            }
        }
    }

    /// Providers whose own API has `/responses`: a Responses request is
    /// passed to it as the client wrote it.
    fn speaks_responses(&self) -> bool {
        matches!(self.type_label, "openai" | "azure_openai")
    }

    pub async fn call(&self, provider: &str, t: &Timeouts, call: Call<'_>) -> Result<UpstreamReply, UpstreamError> {
        if let Some(n) = call.native.filter(|n| n.dialect == Dialect::Responses)
            && self.speaks_responses()
            && call.op == Operation::ChatCompletions
        {
            return self.responses(provider, t, &call, n).await;
        }
        let url = self.url(call.op, call.upstream_model);
        let model_json = json_string(call.upstream_model);
        let mut replace: Vec<(&str, &str)> = Vec::with_capacity(1 + call.overrides.len());
        replace.push(("model", &model_json));
        replace.extend(call.overrides.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let stream_options;
        if call.want_usage {
            let mut opts = call
                .request
                .field::<serde_json::Map<String, serde_json::Value>>("stream_options")
                .ok()
                .flatten()
                .unwrap_or_default();
            opts.insert("include_usage".into(), serde_json::Value::Bool(true));
            stream_options = serde_json::Value::Object(opts).to_string();
            replace.push(("stream_options", &stream_options));
        }
        let hub_fields;
        let mut remove: Vec<&str> = Vec::new();
        if let Some(native) = call.native.filter(|n| n.dialect == Dialect::Anthropic) {
            if let Some(problem) = &native.hub_problem {
                return Err(UpstreamError::Untranslatable { provider: provider.into(), message: problem.clone() });
            }
            // The hub was written by the gateway from an Anthropic request:
            // leave out what only other providers read.
            hub_fields = gateway_hub_fields(call.request, self.type_label);
            replace.extend(hub_fields.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            remove.extend(["thinking", "top_k", "max_tokens"]);
        }
        let body = call.request.rebuild(&replace, &remove);
        let x = Exchange::new(provider, *t);
        let req = x.post(&url, &self.headers, body)?;
        let wire = Wire {
            error_message: peek_error_message,
            stream: call.stream.then_some(("text/event-stream", Mode::Pass, Dialect::OpenAi)),
            max_response_size: call.max_response_size,
            fix_error: None,
        };
        match x.run(&self.client, req, wire).await? {
            Answer::Stream(body) => Ok(UpstreamReply::Stream(body, Dialect::OpenAi)),
            Answer::Whole(body) => {
                let usage = peek_usage(&body);
                Ok(UpstreamReply::Complete { body, usage, dialect: Dialect::OpenAi })
            }
        }
    }
}

impl OpenAiCompat {
    /// `POST /responses` with the client's Responses request, the model
    /// named as this target's; the answer comes back as OpenAI wrote it.
    async fn responses(
        &self,
        provider: &str,
        t: &Timeouts,
        call: &Call<'_>,
        native: &super::Native<'_>,
    ) -> Result<UpstreamReply, UpstreamError> {
        let (url, model) = match &self.azure {
            None => (format!("{}/responses", self.base), call.upstream_model),
            // Azure's v1 API: one path for every deployment, named as the model.
            Some(az) => (
                format!("{}/openai/v1/responses", self.base),
                az.deployments.get(call.upstream_model).map_or(call.upstream_model, String::as_str),
            ),
        };
        let model_json = json_string(model);
        let body = native.raw.rebuild(&[("model", &model_json)], &[]);
        let x = Exchange::new(provider, *t);
        let req = x.post(&url, &self.headers, body)?;
        let relay = Box::new(crate::translate::responses::stream::Native::default());
        let wire = Wire {
            error_message: peek_error_message,
            stream: call.stream.then_some(("text/event-stream", Mode::Sse(relay), Dialect::Responses)),
            max_response_size: call.max_response_size,
            fix_error: None,
        };
        match x.run(&self.client, req, wire).await? {
            Answer::Stream(body) => Ok(UpstreamReply::Stream(body, Dialect::Responses)),
            Answer::Whole(body) => {
                let usage = x.json(&body)?.get("usage").map(|u| crate::translate::responses::tokens(u).into());
                Ok(UpstreamReply::Complete { body, usage, dialect: Dialect::Responses })
            }
        }
    }
}

/// For a hub request the gateway made from an Anthropic one: messages
/// without the thinking fields only other providers read, and the output
/// limit under the name this provider takes (`max_completion_tokens` for
/// OpenAI's own API, which refuses `max_tokens` for reasoning models).
fn gateway_hub_fields(request: &crate::wire::json::RawObject<'_>, type_label: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Ok(Some(mut messages)) = request.field::<Vec<serde_json::Value>>("messages") {
        for m in &mut messages {
            if let Some(o) = m.as_object_mut() {
                o.remove("thinking_blocks");
                o.remove("reasoning_content");
            }
        }
        out.push(("messages".to_string(), serde_json::Value::from(messages).to_string()));
    }
    if let Some(raw) = request.get("max_tokens") {
        let name = if matches!(type_label, "openai" | "azure_openai") { "max_completion_tokens" } else { "max_tokens" };
        out.push((name.to_string(), raw.get().to_string()));
    }
    out
}
