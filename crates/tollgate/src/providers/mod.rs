//! Upstream providers: a closed enum with one module per wire family.
//!
//! `Provider` is built from config at load time and lives inside the
//! snapshot; the connection pools it uses (`http::Upstreams`) live outside,
//! so a reload never drops warm connections.

pub mod anthropic;
pub mod bedrock;
pub mod cohere;
pub mod exchange;
pub mod gemini;
pub mod http;
pub mod mock;
pub mod openai;
pub mod stream;
pub mod vertex;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::config::diag::Diags;
use crate::config::file::{ProviderSection, ProviderType, TimeoutSection};
use crate::error::UpstreamError;
use crate::wire::json::RawObject;
use crate::wire::openai::Usage;
pub use crate::wire::{Dialect, Operation};

#[derive(Debug)]
pub struct Provider {
    pub name: String,
    pub kind: ProviderKind,
    /// True when the config lists no models: any model name passes through.
    pub any_model: bool,
    pub timeouts: Timeouts,
}

// Providers live behind an `Arc` in the snapshot, built once per load:
// the size difference between variants costs nothing per request.
#[expect(
    clippy::large_enum_variant,
    reason = "built once per load behind an Arc; variant size costs nothing per request"
)]
#[derive(Debug)]
pub enum ProviderKind {
    OpenAi(openai::OpenAiCompat),
    Anthropic(anthropic::Anthropic),
    Gemini(gemini::Gemini),
    Vertex(vertex::Vertex),
    Bedrock(bedrock::Bedrock),
    Cohere(cohere::Cohere),
    Mock(mock::MockProvider),
}

/// A request as the client sent it, in its own API: `/v1/messages` for
/// Anthropic providers, `/v1/responses` for OpenAI's. Such a provider takes
/// it as it is (nothing lost in translation); every other provider takes
/// the hub translation in `Call::request`.
pub struct Native<'a> {
    /// `Anthropic` or `Responses`: which API `raw` speaks.
    pub dialect: Dialect,
    pub raw: RawObject<'a>,
    /// The client's `anthropic-beta` header.
    pub beta: Option<String>,
    /// Why the hub translation is incomplete (e.g. an Anthropic server
    /// tool): a provider that needs it refuses the request with this.
    pub hub_problem: Option<String>,
}

#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub connect: Duration,
    pub first_token: Duration,
    pub idle: Duration,
    pub total: Duration,
}

impl Timeouts {
    pub fn from_section(t: &TimeoutSection) -> Timeouts {
        Timeouts {
            connect: t.connect.map_or(Duration::from_secs(10), |d| d.0),
            first_token: t.first_token.map_or(Duration::from_secs(120), |d| d.0),
            idle: t.idle.map_or(Duration::from_secs(60), |d| d.0),
            total: t.total.map_or(Duration::from_secs(600), |d| d.0),
        }
    }
}

/// What an upstream call hands back to the pipeline: in the hub (OpenAI)
/// dialect, in Anthropic's when an Anthropic provider took a native
/// request, in the Responses API's when OpenAI took one.
pub enum UpstreamReply {
    /// A complete JSON body.
    Complete { body: Bytes, usage: Option<Usage>, dialect: Dialect },
    /// An SSE body relayed event by event.
    Stream(axum::body::Body, Dialect),
}

impl UpstreamReply {
    pub fn dialect(&self) -> Dialect {
        match self {
            UpstreamReply::Complete { dialect, .. } | UpstreamReply::Stream(_, dialect) => *dialect,
        }
    }
}

/// Everything one upstream call needs, borrowed from the request context.
pub struct Call<'a> {
    pub op: Operation,
    pub upstream_model: &'a str,
    pub request: &'a RawObject<'a>,
    pub stream: bool,
    /// Ask for a usage chunk at the end of the stream.
    pub want_usage: bool,
    pub max_response_size: usize,
    /// Request fields forced by the routing target: (name, raw JSON).
    pub overrides: &'a [(String, String)],
    /// The routing target's time limits, replacing the provider's.
    pub timeouts: Option<Timeouts>,
    /// The client's own request when it came on `/v1/messages`.
    pub native: Option<&'a Native<'a>>,
}

impl Call<'_> {
    /// The hub request as a tree, with the upstream model and the target's
    /// overrides applied — the input of every translating provider.
    pub fn hub(&self, provider: &str) -> Result<serde_json::Value, UpstreamError> {
        if let Some(problem) = self.native.and_then(|n| n.hub_problem.as_ref()) {
            return Err(UpstreamError::Untranslatable { provider: provider.into(), message: problem.clone() });
        }
        let mut map = serde_json::Map::new();
        for k in self.request.keys() {
            if let Some(raw) = self.request.get(k) {
                let v = serde_json::from_str(raw.get()).unwrap_or(serde_json::Value::Null);
                map.insert(k.to_string(), v);
            }
        }
        map.insert("model".into(), serde_json::Value::String(self.upstream_model.to_string()));
        for (k, raw) in self.overrides {
            if let Ok(v) = serde_json::from_str(raw) {
                map.insert(k.clone(), v);
            }
        }
        Ok(serde_json::Value::Object(map))
    }

    /// Whether the hub stream should end with a usage chunk.
    pub fn hub_wants_usage(&self) -> bool {
        self.want_usage
            || self
                .request
                .field::<serde_json::Value>("stream_options")
                .ok()
                .flatten()
                .and_then(|v| v.get("include_usage").and_then(serde_json::Value::as_bool))
                .unwrap_or(false)
    }
}

/// A translated embeddings answer in the hub shape (`encoding_format`
/// applied) with its usage, when the provider counted any tokens.
pub fn embeddings(
    (mut out, n): (serde_json::Value, u64),
    hub: &serde_json::Value,
) -> (serde_json::Value, Option<Usage>) {
    crate::translate::hub::encode_embeddings(&mut out, hub);
    (out, (n > 0).then(|| Usage { prompt_tokens: n, total_tokens: n, ..Default::default() }))
}

/// How a translating provider reads a whole answer: its embeddings, chat
/// and usage translators.
pub struct Readers {
    pub embeddings: fn(&serde_json::Value, &str) -> (serde_json::Value, u64),
    pub chat: fn(&serde_json::Value, &str) -> crate::translate::Result<serde_json::Value>,
    /// Where the answer keeps its usage, and how it reads.
    pub usage: (&'static str, fn(&serde_json::Value) -> crate::translate::hub::Tokens),
}

/// A whole translated answer (embeddings or a chat completion) as the hub reply.
pub fn hub_reply(
    x: &exchange::Exchange<'_>,
    call: &Call<'_>,
    hub: &serde_json::Value,
    v: &serde_json::Value,
    read: Readers,
) -> Result<UpstreamReply, UpstreamError> {
    let model = call.upstream_model;
    let (out, usage) = match call.op {
        Operation::Embeddings => embeddings((read.embeddings)(v, model), hub),
        Operation::ChatCompletions => {
            let usage = v.get(read.usage.0).map(|u| Usage::from((read.usage.1)(u)));
            ((read.chat)(v, model).map_err(|e| x.broken(e.0))?, usage)
        }
    };
    Ok(UpstreamReply::Complete { body: Bytes::from(out.to_string()), usage, dialect: Dialect::OpenAi })
}

/// A translation refusal as the upstream error routing and the client see.
pub fn untranslatable(provider: &str, e: crate::translate::Untranslatable) -> UpstreamError {
    UpstreamError::Untranslatable { provider: provider.into(), message: e.0 }
}

/// The translation settings a provider section sets.
pub fn settings(sec: &ProviderSection) -> crate::translate::Settings {
    use crate::config::file::TemperaturePolicySection as T;
    crate::translate::Settings {
        default_max_tokens: sec.default_max_tokens.unwrap_or(4096),
        temperature: match sec.temperature_policy {
            Some(T::Reject) => crate::translate::TemperaturePolicy::Reject,
            _ => crate::translate::TemperaturePolicy::Clamp,
        },
    }
}

impl Provider {
    pub fn build(sec: &ProviderSection, ups: &http::Upstreams, diags: &mut Diags) -> Option<Provider> {
        let timeouts = Timeouts::from_section(&sec.timeout);
        let kind = match sec.kind.value {
            ProviderType::Mock => ProviderKind::Mock(mock::MockProvider::build(sec, diags)?),
            t if openai::is_openai_family(t) => {
                ProviderKind::OpenAi(openai::OpenAiCompat::build(sec, ups, &timeouts, diags)?)
            }
            ProviderType::Anthropic => {
                ProviderKind::Anthropic(anthropic::Anthropic::build(sec, ups, &timeouts, diags)?)
            }
            ProviderType::Gemini => ProviderKind::Gemini(gemini::Gemini::build(sec, ups, &timeouts, diags)?),
            ProviderType::Vertex => ProviderKind::Vertex(vertex::Vertex::build(sec, ups, &timeouts, diags)?),
            ProviderType::Bedrock => ProviderKind::Bedrock(bedrock::Bedrock::build(sec, ups, &timeouts, diags)?),
            ProviderType::Cohere => ProviderKind::Cohere(cohere::Cohere::build(sec, ups, &timeouts, diags)?),
            other => {
                diags.at(&sec.kind, format!("unknown provider type `{}`", type_name(other)), "see docs/providers.md");
                return None;
            }
        };
        if sec.mock.is_some() && sec.kind.value != ProviderType::Mock {
            diags.at(&sec.name, "`mock` settings apply only to providers of type `mock`", "remove the `mock` block");
        }
        Some(Provider { name: sec.name.value.clone(), kind, any_model: sec.models.is_empty(), timeouts })
    }

    pub fn type_label(&self) -> &'static str {
        match &self.kind {
            ProviderKind::OpenAi(o) => o.type_label,
            ProviderKind::Anthropic(_) => "anthropic",
            ProviderKind::Gemini(_) => "gemini",
            ProviderKind::Vertex(_) => "vertex",
            ProviderKind::Bedrock(_) => "bedrock",
            ProviderKind::Cohere(_) => "cohere",
            ProviderKind::Mock(_) => "mock",
        }
    }

    pub async fn call(&self, call: Call<'_>) -> Result<UpstreamReply, UpstreamError> {
        let t = call.timeouts.unwrap_or(self.timeouts);
        match &self.kind {
            ProviderKind::OpenAi(p) => p.call(&self.name, &t, call).await,
            ProviderKind::Anthropic(p) => p.call(&self.name, &t, call).await,
            ProviderKind::Gemini(p) => p.call(&self.name, &t, call).await,
            ProviderKind::Vertex(p) => p.call(&self.name, &t, call).await,
            ProviderKind::Bedrock(p) => p.call(&self.name, &t, call).await,
            ProviderKind::Cohere(p) => p.call(&self.name, &t, call).await,
            ProviderKind::Mock(p) => {
                if let Some(problem) = call.native.and_then(|n| n.hub_problem.as_ref()) {
                    return Err(UpstreamError::Untranslatable {
                        provider: self.name.clone(),
                        message: problem.clone(),
                    });
                }
                p.call(&self.name, call).await
            }
        }
    }
}

pub fn type_name(t: ProviderType) -> &'static str {
    use ProviderType::*;
    match t {
        Openai => "openai",
        OpenaiCompatible => "openai_compatible",
        AzureOpenai => "azure_openai",
        Groq => "groq",
        Mistral => "mistral",
        Together => "together",
        Fireworks => "fireworks",
        Deepseek => "deepseek",
        Openrouter => "openrouter",
        Xai => "xai",
        Cerebras => "cerebras",
        Perplexity => "perplexity",
        Vllm => "vllm",
        Sglang => "sglang",
        Ollama => "ollama",
        Lmstudio => "lmstudio",
        Mock => "mock",
        Anthropic => "anthropic",
        Gemini => "gemini",
        Vertex => "vertex",
        Bedrock => "bedrock",
        Cohere => "cohere",
    }
}

pub type SharedProvider = Arc<Provider>;
