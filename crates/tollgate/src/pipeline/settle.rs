//! Stage 12: settle real usage against budgets and token limits. This build
//! keeps the usage on the context for the record stage.

use super::RequestCtx;

pub fn run(_ctx: &mut RequestCtx) {}
