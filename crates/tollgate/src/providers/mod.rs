//! Upstream providers: a closed enum with one module per wire family.
//!
//! `Provider` is built from config at load time and lives inside the
//! snapshot; the connection pools it uses (`http::Upstreams`) live outside,
//! so a reload never drops warm connections.

pub mod http;
pub mod mock;
pub mod openai;
pub mod stream;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::config::file::{ProviderSection, ProviderType, TimeoutSection};
use crate::config::validate::Diags;
use crate::error::UpstreamError;
use crate::wire::json::RawObject;
use crate::wire::openai::Usage;

/// Which OpenAI-shaped operation a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    ChatCompletions,
    Embeddings,
}

impl Operation {
    pub fn path(self) -> &'static str {
        match self {
            Operation::ChatCompletions => "/chat/completions",
            Operation::Embeddings => "/embeddings",
        }
    }
}

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
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum ProviderKind {
    OpenAi(openai::OpenAiCompat),
    Mock(mock::MockProvider),
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

/// What an upstream call hands back to the pipeline.
pub enum UpstreamReply {
    /// A complete JSON body, passed to the client as it came.
    Complete { body: Bytes, usage: Option<Usage> },
    /// An SSE body relayed chunk by chunk.
    Stream(axum::body::Body),
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
}

impl Provider {
    pub fn build(sec: &ProviderSection, ups: &http::Upstreams, diags: &mut Diags) -> Option<Provider> {
        let timeouts = Timeouts::from_section(&sec.timeout);
        let kind = match sec.kind.value {
            ProviderType::Mock => ProviderKind::Mock(mock::MockProvider::build(sec, diags)?),
            t if openai::is_openai_family(t) => {
                ProviderKind::OpenAi(openai::OpenAiCompat::build(sec, ups, &timeouts, diags)?)
            }
            other => {
                diags.at(
                    &sec.kind,
                    format!("provider type `{}` is not available in this build yet", type_name(other)),
                    "use `openai`, an OpenAI-compatible preset, `openai_compatible` with a base_url, or `mock`",
                );
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
            ProviderKind::Mock(_) => "mock",
        }
    }

    pub async fn call(&self, call: Call<'_>) -> Result<UpstreamReply, UpstreamError> {
        match &self.kind {
            ProviderKind::OpenAi(p) => {
                let t = call.timeouts.unwrap_or(self.timeouts);
                p.call(&self.name, &t, call).await
            }
            ProviderKind::Mock(p) => p.call(&self.name, call).await,
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
