//! `cohere`: Cohere's v2 chat (streamed as typed SSE events) and embed.

use http::{HeaderMap, header};

use super::exchange::{Exchange, HubAnswer, Wire};
use super::http::{HttpClient, Upstreams};
use super::stream::Mode;
use super::{Call, Operation, Timeouts, UpstreamReply, untranslatable};
use crate::config::diag::Diags;
use crate::config::file::ProviderSection;
use crate::error::UpstreamError;
use crate::translate::{Settings, cohere as tr};

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
        let wire = Wire::hub(tr::error_message, &call, "text/event-stream", || {
            Mode::Sse(Box::new(tr::Stream::new(model, call.hub_wants_usage())))
        });
        let v = match x.hub(&self.client, req, wire).await? {
            HubAnswer::Reply(r) => return Ok(r),
            HubAnswer::Json(v) => v,
        };
        let read = super::Readers { embeddings: tr::embed_response, chat: tr::response, usage: ("usage", tr::tokens) };
        super::hub_reply(&x, &call, &hub, &v, read)
    }
}
