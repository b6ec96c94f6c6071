//! `gemini`: Google AI Studio's Gemini API (`x-goog-api-key`), and — built
//! by `vertex` — Gemini models on Vertex AI (bearer token, model in a
//! project path). Same wire format, translated from and to the hub.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Uri, header};
use http_body_util::Full;
use serde_json::Value;

use super::exchange::{Exchange, is_event_stream};
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
        let base = super::anthropic::check_base(sec, "https://generativelanguage.googleapis.com", diags)?;
        let mut headers = HeaderMap::new();
        super::exchange::required_key_header(
            sec,
            &mut headers,
            HeaderName::from_static("x-goog-api-key"),
            "",
            "GEMINI_API_KEY",
            diags,
        );
        super::anthropic::extra_headers(sec, &mut headers, diags);
        let prefix = if base.ends_with("/v1beta") || base.ends_with("/v1") { base } else { format!("{base}/v1beta") };
        Some(Gemini { prefix: format!("{prefix}/models"), headers, vertex: None, client: ups.client(t.connect) })
    }

    pub fn on_vertex(
        sec: &ProviderSection,
        ups: &Upstreams,
        t: &Timeouts,
        tokens: Arc<super::vertex::TokenSource>,
        prefix: String,
        diags: &mut Diags,
    ) -> Gemini {
        let mut headers = HeaderMap::new();
        super::anthropic::extra_headers(sec, &mut headers, diags);
        Gemini {
            prefix: format!("{prefix}/publishers/google/models"),
            headers,
            vertex: Some(tokens),
            client: ups.client(t.connect),
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
        let uri: Uri = format!("{}/{model}:{verb}", self.prefix).parse().map_err(|e| UpstreamError::Broken {
            provider: provider.into(),
            message: format!("bad upstream URL: {e}"),
        })?;
        let mut req = Request::builder().method(Method::POST).uri(uri);
        if let Some(h) = req.headers_mut() {
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            h.extend(self.headers.iter().map(|(k, v)| (k.clone(), v.clone())));
            if let Some(tokens) = &self.vertex {
                h.insert(header::AUTHORIZATION, tokens.bearer(provider).await?);
            }
        }
        let req = req
            .body(Full::new(Bytes::from(body.to_string())))
            .map_err(|e| UpstreamError::Broken { provider: provider.into(), message: e.to_string() })?;
        let x = Exchange::new(provider, *t);
        let resp = x.send(&self.client, req).await?;
        if !resp.status().is_success() {
            return Err(x.failure(resp, tr::error_message).await);
        }
        if call.stream {
            if !is_event_stream(&resp, "text/event-stream") {
                return Err(x.broken("asked for a stream but the provider answered without one"));
            }
            let t: Box<dyn translate::ToOpenAiStream> = Box::new(tr::Stream::new(model, call.hub_wants_usage()));
            let body = x.relay(resp, Mode::Sse(t), Dialect::OpenAi).await?;
            return Ok(UpstreamReply::Stream(body, Dialect::OpenAi));
        }
        let bytes = x.body(resp, call.max_response_size).await?;
        let v: Value = serde_json::from_slice(&bytes).map_err(|e| x.broken(format!("the answer is not JSON: {e}")))?;
        let (out, usage) = match call.op {
            Operation::Embeddings if self.vertex.is_some() => {
                let (mut out, n) = tr::vertex_embed_response(&v, model);
                translate::hub::encode_embeddings(&mut out, &hub);
                (out, (n > 0).then(|| Usage { prompt_tokens: n, total_tokens: n, ..Default::default() }))
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
