//! `cohere`: Cohere's v2 chat (streamed as typed SSE events) and embed.

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Uri, header};
use http_body_util::Full;
use serde_json::Value;

use super::exchange::{Exchange, is_event_stream};
use super::http::{HttpClient, Upstreams};
use super::stream::Mode;
use super::{Call, Dialect, Operation, Timeouts, UpstreamReply, untranslatable};
use crate::config::diag::Diags;
use crate::config::file::ProviderSection;
use crate::error::UpstreamError;
use crate::translate::{self, Settings, cohere as tr};
use crate::wire::openai::Usage;

#[derive(Debug)]
pub struct Cohere {
    base: String,
    headers: HeaderMap,
    settings: Settings,
    client: HttpClient,
}

impl Cohere {
    pub fn build(sec: &ProviderSection, ups: &Upstreams, t: &Timeouts, diags: &mut Diags) -> Option<Cohere> {
        let base = super::anthropic::check_base(sec, "https://api.cohere.com", diags)?;
        let mut headers = HeaderMap::new();
        super::exchange::required_key_header(
            sec,
            &mut headers,
            header::AUTHORIZATION,
            "Bearer ",
            "COHERE_API_KEY",
            diags,
        );
        super::anthropic::extra_headers(sec, &mut headers, diags);
        let base = base.strip_suffix("/v2").map_or(base.clone(), str::to_string);
        Some(Cohere { base, headers, settings: super::settings(sec), client: ups.client(t.connect) })
    }

    pub async fn call(&self, provider: &str, t: &Timeouts, call: Call<'_>) -> Result<UpstreamReply, UpstreamError> {
        let model = call.upstream_model;
        let hub = call.hub(provider)?;
        let (path, body) = match call.op {
            Operation::Embeddings => ("embed", tr::embed_request(&hub, model)),
            Operation::ChatCompletions => ("chat", tr::request(&hub, model, &self.settings)),
        };
        let body = body.map_err(|e| untranslatable(provider, e))?;
        let uri: Uri = format!("{}/v2/{path}", self.base).parse().map_err(|e| UpstreamError::Broken {
            provider: provider.into(),
            message: format!("bad upstream URL: {e}"),
        })?;
        let mut req = Request::builder().method(Method::POST).uri(uri);
        if let Some(h) = req.headers_mut() {
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            h.extend(self.headers.iter().map(|(k, v)| (k.clone(), v.clone())));
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
            Operation::Embeddings => {
                let (mut out, n) = tr::embed_response(&v, model);
                translate::hub::encode_embeddings(&mut out, &hub);
                (out, (n > 0).then(|| Usage { prompt_tokens: n, total_tokens: n, ..Default::default() }))
            }
            Operation::ChatCompletions => {
                let usage = v.get("usage").map(|u| Usage::from(tr::tokens(u)));
                (tr::response(&v, model).map_err(|e| x.broken(e.0))?, usage)
            }
        };
        Ok(UpstreamReply::Complete { body: Bytes::from(out.to_string()), usage, dialect: Dialect::OpenAi })
    }
}
