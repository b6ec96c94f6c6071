//! Wire formats, free of I/O: the passthrough JSON object, the SSE framer
//! and the OpenAI shapes the gateway itself produces.

pub mod eventstream;
pub mod json;
pub mod openai;
pub mod sse;
