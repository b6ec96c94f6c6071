//! Prices and cost. Money is integer nano-dollars (1e-9 USD) end to end, so
//! sums over millions of requests never drift; prices are nano-dollars per
//! million tokens.
//!
//! A model's price comes from its provider entry in the config
//! (`input_cost_per_mtok`, `output_cost_per_mtok`) when given, else from the
//! built-in catalog (`catalog.rs`), matched by the provider's model name —
//! exactly, or by the longest catalog name it starts with, so dated
//! versions (`gpt-4o-2024-08-06`) find their family.

mod catalog;

use crate::wire::openai::Usage;

pub const NANOS_PER_USD: u64 = 1_000_000_000;

/// Nano-dollars per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Price {
    pub input: u64,
    pub output: u64,
    /// Cached prompt tokens read (defaults to `input` when unknown).
    pub cached_read: u64,
    /// Prompt tokens written to a cache (defaults to `input`).
    pub cached_write: u64,
}

impl Price {
    pub fn from_usd_per_mtok(input: f64, output: f64) -> Price {
        let n = |usd: f64| (usd.max(0.0) * NANOS_PER_USD as f64).round() as u64;
        Price { input: n(input), output: n(output), cached_read: n(input), cached_write: n(input) }
    }

    /// Cost of a request's usage, in nano-dollars. Cached prompt tokens are
    /// charged at the cached-read price, tokens written to a cache
    /// (Anthropic, Bedrock) at the cache-write price, the rest of the
    /// prompt at input.
    pub fn cost(&self, usage: &Usage) -> u64 {
        let details = usage.prompt_tokens_details.as_ref();
        let cached = details.map_or(0, |d| d.cached_tokens).min(usage.prompt_tokens);
        let written = details.map_or(0, |d| d.cache_write_tokens).min(usage.prompt_tokens - cached);
        let fresh = usage.prompt_tokens - cached - written;
        per_mtok(fresh, self.input)
            + per_mtok(cached, self.cached_read)
            + per_mtok(written, self.cached_write)
            + per_mtok(usage.completion_tokens, self.output)
    }

    /// The most `prompt` input and `completion` output tokens can cost.
    pub fn worst_case(&self, prompt: u64, completion: u64) -> u64 {
        per_mtok(prompt, self.input) + per_mtok(completion, self.output)
    }

    /// (input + output) in USD per million tokens, for ordering by cost.
    pub fn usd_per_mtok(&self) -> f64 {
        (self.input + self.output) as f64 / NANOS_PER_USD as f64
    }
}

fn per_mtok(tokens: u64, nanos_per_mtok: u64) -> u64 {
    let v = u128::from(tokens) * u128::from(nanos_per_mtok) / 1_000_000;
    u64::try_from(v).unwrap_or(u64::MAX)
}

/// The built-in price of a provider model name, if the catalog knows it.
pub fn builtin(model: &str) -> Option<Price> {
    let model = model.rsplit('/').next().unwrap_or(model);
    let mut best: Option<(&str, Price)> = None;
    for (name, p) in catalog::PRICES {
        let matches =
            model == *name || (model.starts_with(name) && model[name.len()..].starts_with(['-', ':', '@', '.']));
        if matches && best.is_none_or(|(b, _)| name.len() > b.len()) {
            best = Some((name, p.to_price()));
        }
    }
    best.map(|(_, p)| p)
}

/// USD as written in config → nano-dollars.
pub fn usd_to_nanos(usd: f64) -> u64 {
    (usd.max(0.0) * NANOS_PER_USD as f64).round() as u64
}

pub fn nanos_to_usd(n: u64) -> f64 {
    n as f64 / NANOS_PER_USD as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::openai::PromptDetails;

    #[test]
    fn cache_writes_and_reads_have_their_own_prices() {
        let p = Price {
            input: 3_000_000_000,
            output: 15_000_000_000,
            cached_read: 300_000_000,
            cached_write: 3_750_000_000,
        };
        let u = Usage {
            prompt_tokens: 1_000_000 + 2_000_000 + 4_000_000,
            prompt_tokens_details: Some(PromptDetails { cached_tokens: 2_000_000, cache_write_tokens: 4_000_000 }),
            ..Default::default()
        };
        // $3 fresh + 2 × $0.30 read + 4 × $3.75 written.
        assert_eq!(p.cost(&u), 3_000_000_000 + 600_000_000 + 15_000_000_000);
    }

    #[test]
    fn costs_are_exact_integers() {
        let p = Price::from_usd_per_mtok(0.15, 0.60);
        let u = Usage { prompt_tokens: 1_000_000, completion_tokens: 500_000, ..Default::default() };
        assert_eq!(p.cost(&u), 150_000_000 + 300_000_000);
        let one = Usage { prompt_tokens: 1, completion_tokens: 1, ..Default::default() };
        assert_eq!(p.cost(&one), 150 + 600, "$0.15/Mtok is 150 nano-dollars a token");
        let u = Usage { prompt_tokens: 10_000, completion_tokens: 0, ..Default::default() };
        assert_eq!(p.cost(&u), 1_500_000);
    }

    #[test]
    fn cached_tokens_use_the_cached_price() {
        let p = builtin("gpt-4o-mini").unwrap();
        let u = Usage {
            prompt_tokens: 2_000_000,
            prompt_tokens_details: Some(PromptDetails { cached_tokens: 1_000_000, ..Default::default() }),
            ..Default::default()
        };
        assert_eq!(p.cost(&u), p.input + p.cached_read);
        assert!(p.cached_read < p.input);
    }

    #[test]
    fn catalog_matches_dated_versions_by_longest_prefix() {
        assert_eq!(builtin("gpt-4o-2024-08-06"), builtin("gpt-4o"));
        assert_ne!(builtin("gpt-4o-mini-2024-07-18"), builtin("gpt-4o"));
        assert_eq!(builtin("gpt-4o-mini-2024-07-18"), builtin("gpt-4o-mini"));
        assert!(builtin("claude-sonnet-4-5-20250929").is_some());
        assert!(builtin("anthropic.claude-3-5-haiku-20241022-v1:0").is_some());
        assert!(builtin("gemini-2.5-flash").is_some());
        assert!(builtin("mistral-large-latest").is_some());
        assert!(builtin("my-own-finetune").is_none());
        assert!(builtin("gpt-4oops").is_none(), "a prefix must end at a separator");
    }
}
