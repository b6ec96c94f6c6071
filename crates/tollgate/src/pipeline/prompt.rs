//! Before stage 1's parse: a request's `prompt` (a template id with a
//! version or label and its variables) rendered into its messages, so the
//! token estimate, the guardrails, the cache key and routing all see the
//! messages the model will get. Only chat-shaped bodies on the OpenAI
//! dialect carry one: `/v1/chat/completions`, and `/v1/responses` whose
//! front hands this pipeline a chat body with the Responses `prompt` kept
//! at its top level. A body without a top-level `prompt` key costs one
//! substring scan and comes back as it was.

use bytes::Bytes;

use super::RequestCtx;
use crate::error::GatewayError;
use crate::wire::{Dialect, Operation};

pub fn apply(ctx: &mut RequestCtx, bytes: Bytes) -> Result<Bytes, GatewayError> {
    if ctx.front != Dialect::OpenAi || ctx.op != Operation::ChatCompletions {
        if crate::prompts::names_prompt(&bytes) {
            return Err(crate::prompts::PromptError::Invalid(
                "templates are rendered on /v1/chat/completions and /v1/responses only; render it there or \
                 send the messages"
                    .into(),
            )
            .into());
        }
        return Ok(bytes);
    }
    match crate::prompts::render(&ctx.adm.snapshot.prompts, &bytes)? {
        None => Ok(bytes),
        Some(r) => {
            ctx.prompt = Some(r.applied);
            Ok(r.body)
        }
    }
}
