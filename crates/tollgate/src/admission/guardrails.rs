//! Stages 7 and 11: the guardrail hooks. Every governed call passes its
//! content through the hooks of its kind — a model call `llm_input` before
//! the upstream call and `llm_output` after it; a tool call `mcp_tool_pre`
//! and `mcp_tool_post` — through this one runner, so a guardrail behaves the
//! same on every protocol. Validators will run in parallel and mutators in
//! order here; this build has no guardrails to run and passes content through.

use super::Admission;
use crate::error::GatewayError;

/// Where in a call content is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    /// A model's input (messages, tools), before any model sees it.
    LlmInput,
    /// A model's output (a complete answer, or a stream as it passes).
    LlmOutput,
    /// A tool call's arguments, before the tool server sees them.
    McpToolPre,
    /// A tool's result, before the client (or a model) sees it.
    McpToolPost,
}

impl Hook {
    /// The name used in config (`guardrails.enforce.<hook>`) and headers.
    pub fn as_str(self) -> &'static str {
        match self {
            Hook::LlmInput => "llm_input",
            Hook::LlmOutput => "llm_output",
            Hook::McpToolPre => "mcp_tool_pre",
            Hook::McpToolPost => "mcp_tool_post",
        }
    }
}

/// Runs the guardrails in force on `hook` over `content` (JSON text as the
/// protocol carries it); returns the content to send on, which a mutator
/// may have rewritten, or the refusal.
pub async fn run<'c>(
    _adm: &mut Admission,
    _hook: Hook,
    content: std::borrow::Cow<'c, [u8]>,
) -> Result<std::borrow::Cow<'c, [u8]>, GatewayError> {
    Ok(content)
}
