//! `cohere`: Cohere's v2 chat (streamed as typed SSE events) and embed.

use bytes::Bytes;
use http::{HeaderMap, header};

use super::exchange::{Answer, Exchange, Wire};
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
        let base = super::exchange::check_base(sec, "https://api.cohere.com", diags)?;
        let mut headers = HeaderMap::new();
        super::exchange::required_key_header(
            sec,
            &mut headers,
            header::AUTHORIZATION,
            "Bearer ",
            "COHERE_API_KEY",
            diags,
        );
        super::exchange::extra_headers(sec, &mut headers, diags);
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
        let x = Exchange::new(provider, *t);
        let req = x.post(&format!("{}/v2/{path}", self.base), &self.headers, body.to_string().into_bytes())?;
        let stream = call.stream.then(|| {
            let t: Box<dyn translate::ToOpenAiStream> = Box::new(tr::Stream::new(model, call.hub_wants_usage()));
            ("text/event-stream", Mode::Sse(t), Dialect::OpenAi)
        });
        let wire = Wire {
            error_message: tr::error_message,
            stream,
            max_response_size: call.max_response_size,
            fix_error: None,
        };
        let bytes = match x.run(&self.client, req, wire).await? {
            Answer::Stream(body) => return Ok(UpstreamReply::Stream(body, Dialect::OpenAi)),
            Answer::Whole(bytes) => bytes,
        };
        let v = x.json(&bytes)?;
        let (out, usage) = match call.op {
            Operation::Embeddings => super::embeddings(tr::embed_response(&v, model), &hub),
            Operation::ChatCompletions => {
                let usage = v.get("usage").map(|u| Usage::from(tr::tokens(u)));
                (tr::response(&v, model).map_err(|e| x.broken(e.0))?, usage)
            }
        };
        Ok(UpstreamReply::Complete { body: Bytes::from(out.to_string()), usage, dialect: Dialect::OpenAi })
    }
}
