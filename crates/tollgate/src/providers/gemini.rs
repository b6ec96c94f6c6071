//! `gemini`: Google AI Studio's Gemini API (`x-goog-api-key`), and — built
//! by `vertex` — Gemini models on Vertex AI (bearer token, model in a
//! project path). Same wire format, translated from and to the hub.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, header};
use serde_json::Value;

use super::exchange::{Exchange, HubAnswer, Wire};
use super::http::{HttpClient, Upstreams};
use super::stream::Mode;
use super::{Call, Dialect, Operation, Timeouts, UpstreamReply, untranslatable};
use crate::config::diag::Diags;
use crate::config::file::ProviderSection;
use crate::error::UpstreamError;
use crate::translate::{self, gemini as tr};
use crate::wire::openai::Usage;

#[derive(Debug)]
pub struct Gemini {
    /// Everything before `/models/{model}:verb` (AI Studio) or `/publishers/google/models/…` (Vertex).
    prefix: String,
    headers: HeaderMap,
    vertex: Option<Arc<super::vertex::TokenSource>>,
    client: HttpClient,
}

impl Gemini {
    pub fn build(sec: &ProviderSection, ups: &Upstreams, t: &Timeouts, diags: &mut Diags) -> Option<Gemini> {
        let base = super::exchange::check_base(sec, "https://generativelanguage.googleapis.com", diags)?;
        let mut headers = HeaderMap::new();
        super::exchange::required_key_header(
            sec,
            &mut headers,
            HeaderName::from_static("x-goog-api-key"),
            "",
            "GEMINI_API_KEY",
            diags,
        );
        super::exchange::extra_headers(sec, &mut headers, diags);
        let prefix = if base.ends_with("/v1beta") || base.ends_with("/v1") { base } else { format!("{base}/v1beta") };
        Some(Gemini { prefix: format!("{prefix}/models"), headers, vertex: None, client: ups.client(t.connect) })
    }

    /// Gemini models on Vertex AI, sharing the Vertex provider's token source.
    pub fn on_vertex(v: &super::vertex::OnVertex) -> Gemini {
        Gemini {
            prefix: format!("{}/publishers/google/models", v.prefix),
            headers: v.headers.clone(),
            vertex: Some(v.tokens.clone()),
            client: v.client.clone(),
        }
    }

    pub async fn call(&self, provider: &str, t: &Timeouts, call: Call<'_>) -> Result<UpstreamReply, UpstreamError> {
        let model = call.upstream_model;
        let hub = call.hub(provider)?;
        let (verb, body) = match call.op {
            Operation::Embeddings if self.vertex.is_some() => ("predict", tr::vertex_embed_request(&hub)),
            Operation::Embeddings => ("batchEmbedContents", tr::embed_request(&hub, model)),
            Operation::ChatCompletions if call.stream => ("streamGenerateContent?alt=sse", tr::request(&hub)),
            Operation::ChatCompletions => ("generateContent", tr::request(&hub)),
        };
        let body = body.map_err(|e| untranslatable(provider, e))?;
        let x = Exchange::new(provider, *t);
        let mut req =
            x.post(&format!("{}/{model}:{verb}", self.prefix), &self.headers, body.to_string().into_bytes())?;
        if let Some(tokens) = &self.vertex {
            req.headers_mut().insert(header::AUTHORIZATION, tokens.bearer(provider).await?);
        }
        let wire = Wire::hub(tr::error_message, &call, "text/event-stream", || {
            Mode::Sse(Box::new(tr::Stream::new(model, call.hub_wants_usage())))
        });
        let v = match x.hub(&self.client, req, wire).await? {
            HubAnswer::Reply(r) => return Ok(r),
            HubAnswer::Json(v) => v,
        };
        let (out, usage) = match call.op {
            Operation::Embeddings if self.vertex.is_some() => {
                super::embeddings(tr::vertex_embed_response(&v, model), &hub)
            }
            Operation::Embeddings => {
                // Gemini reports no tokens for embeddings: count them.
                let n = translate::tokens::count(&translate::content_text(hub.get("input")))
                    + hub
                        .get("input")
                        .and_then(Value::as_array)
                        .map_or(0, |a| a.iter().filter_map(Value::as_str).map(translate::tokens::count).sum());
                let mut out = tr::embed_response(&v, model, n);
                translate::hub::encode_embeddings(&mut out, &hub);
                (out, None)
            }
            Operation::ChatCompletions => {
                let usage = v.get("usageMetadata").map(|u| Usage::from(tr::tokens(u)));
                (tr::response(&v, model).map_err(|e| x.broken(e.0))?, usage)
            }
        };
        Ok(UpstreamReply::Complete { body: Bytes::from(out.to_string()), usage, dialect: Dialect::OpenAi })
    }
}
