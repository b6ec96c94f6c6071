//! Wire formats, free of I/O: the passthrough JSON object, the SSE framer
//! and the OpenAI shapes the gateway itself produces.

pub mod eventstream;
pub mod json;
pub mod openai;
pub mod sse;

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

/// The API shape a request came in and an answer goes out in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// OpenAI chat completions: the hub every provider translates to and from.
    OpenAi,
    /// Anthropic Messages, for `/v1/messages` answered by an Anthropic model.
    Anthropic,
    /// OpenAI Responses, for `/v1/responses` passed through to OpenAI's own.
    Responses,
}
