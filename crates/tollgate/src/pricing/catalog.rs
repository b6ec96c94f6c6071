//! Built-in list prices, USD per million tokens: (input, output, cached
//! read, cached write); `0.0` for a cache price means "same as input".
//! Published list prices for common models; override any of them per model
//! in the config (`input_cost_per_mtok` / `output_cost_per_mtok`), which is
//! also how negotiated rates are expressed.

use super::{NANOS_PER_USD, Price};

pub struct Entry(f64, f64, f64, f64);

impl Entry {
    pub fn to_price(&self) -> Price {
        let n = |usd: f64| (usd * NANOS_PER_USD as f64).round() as u64;
        let input = n(self.0);
        Price {
            input,
            output: n(self.1),
            cached_read: if self.2 > 0.0 { n(self.2) } else { input },
            cached_write: if self.3 > 0.0 { n(self.3) } else { input },
        }
    }
}

pub static PRICES: &[(&str, Entry)] = &[
    // OpenAI
    ("gpt-5", Entry(1.25, 10.0, 0.125, 0.0)),
    ("gpt-5-mini", Entry(0.25, 2.0, 0.025, 0.0)),
    ("gpt-5-nano", Entry(0.05, 0.40, 0.005, 0.0)),
    ("gpt-4.1", Entry(2.0, 8.0, 0.50, 0.0)),
    ("gpt-4.1-mini", Entry(0.40, 1.60, 0.10, 0.0)),
    ("gpt-4.1-nano", Entry(0.10, 0.40, 0.025, 0.0)),
    ("gpt-4o", Entry(2.50, 10.0, 1.25, 0.0)),
    ("gpt-4o-mini", Entry(0.15, 0.60, 0.075, 0.0)),
    ("gpt-4-turbo", Entry(10.0, 30.0, 0.0, 0.0)),
    ("gpt-3.5-turbo", Entry(0.50, 1.50, 0.0, 0.0)),
    ("o1", Entry(15.0, 60.0, 7.50, 0.0)),
    ("o1-mini", Entry(1.10, 4.40, 0.55, 0.0)),
    ("o3", Entry(2.0, 8.0, 0.50, 0.0)),
    ("o3-pro", Entry(20.0, 80.0, 0.0, 0.0)),
    ("gpt-5-pro", Entry(15.0, 120.0, 0.0, 0.0)),
    ("gpt-4o-realtime", Entry(5.0, 20.0, 2.50, 0.0)),
    ("gpt-4o-mini-realtime", Entry(0.60, 2.40, 0.30, 0.0)),
    ("o3-mini", Entry(1.10, 4.40, 0.55, 0.0)),
    ("o4-mini", Entry(1.10, 4.40, 0.275, 0.0)),
    ("text-embedding-3-small", Entry(0.02, 0.0, 0.0, 0.0)),
    ("text-embedding-3-large", Entry(0.13, 0.0, 0.0, 0.0)),
    ("text-embedding-ada-002", Entry(0.10, 0.0, 0.0, 0.0)),
    // Anthropic (cache write at 1.25× input for 5-minute caching)
    ("claude-opus-4-5", Entry(5.0, 25.0, 0.50, 6.25)),
    ("claude-opus-4-1", Entry(15.0, 75.0, 1.50, 18.75)),
    ("claude-opus-4", Entry(15.0, 75.0, 1.50, 18.75)),
    ("claude-sonnet-4-5", Entry(3.0, 15.0, 0.30, 3.75)),
    ("claude-sonnet-4", Entry(3.0, 15.0, 0.30, 3.75)),
    ("claude-haiku-4-5", Entry(1.0, 5.0, 0.10, 1.25)),
    ("claude-3-7-sonnet", Entry(3.0, 15.0, 0.30, 3.75)),
    ("claude-3-5-sonnet", Entry(3.0, 15.0, 0.30, 3.75)),
    ("claude-3-5-haiku", Entry(0.80, 4.0, 0.08, 1.0)),
    ("claude-3-haiku", Entry(0.25, 1.25, 0.03, 0.30)),
    ("claude-3-opus", Entry(15.0, 75.0, 1.50, 18.75)),
    // Anthropic on Bedrock (model ids carry a vendor prefix)
    ("anthropic.claude-sonnet-4-5", Entry(3.0, 15.0, 0.30, 3.75)),
    ("anthropic.claude-sonnet-4", Entry(3.0, 15.0, 0.30, 3.75)),
    ("anthropic.claude-3-7-sonnet", Entry(3.0, 15.0, 0.30, 3.75)),
    ("anthropic.claude-3-5-sonnet", Entry(3.0, 15.0, 0.30, 3.75)),
    ("anthropic.claude-3-5-haiku", Entry(0.80, 4.0, 0.08, 1.0)),
    ("anthropic.claude-haiku-4-5", Entry(1.0, 5.0, 0.10, 1.25)),
    ("amazon.nova-pro", Entry(0.80, 3.20, 0.20, 0.0)),
    ("amazon.nova-lite", Entry(0.06, 0.24, 0.015, 0.0)),
    ("amazon.nova-micro", Entry(0.035, 0.14, 0.00875, 0.0)),
    ("amazon.titan-embed-text-v2", Entry(0.02, 0.0, 0.0, 0.0)),
    // Google Gemini
    ("gemini-2.5-pro", Entry(1.25, 10.0, 0.31, 0.0)),
    ("gemini-2.5-flash", Entry(0.30, 2.50, 0.075, 0.0)),
    ("gemini-2.5-flash-lite", Entry(0.10, 0.40, 0.025, 0.0)),
    ("gemini-2.0-flash", Entry(0.10, 0.40, 0.025, 0.0)),
    ("gemini-2.0-flash-lite", Entry(0.075, 0.30, 0.0, 0.0)),
    ("gemini-1.5-pro", Entry(1.25, 5.0, 0.3125, 0.0)),
    ("gemini-1.5-flash", Entry(0.075, 0.30, 0.01875, 0.0)),
    ("text-embedding-004", Entry(0.0, 0.0, 0.0, 0.0)),
    // Mistral
    ("mistral-large", Entry(2.0, 6.0, 0.0, 0.0)),
    ("mistral-medium", Entry(0.40, 2.0, 0.0, 0.0)),
    ("mistral-small", Entry(0.10, 0.30, 0.0, 0.0)),
    ("codestral", Entry(0.30, 0.90, 0.0, 0.0)),
    ("ministral-8b", Entry(0.10, 0.10, 0.0, 0.0)),
    ("open-mistral-nemo", Entry(0.15, 0.15, 0.0, 0.0)),
    ("mistral-embed", Entry(0.10, 0.0, 0.0, 0.0)),
    // Others commonly reached through OpenAI-compatible providers
    ("deepseek-chat", Entry(0.27, 1.10, 0.07, 0.0)),
    ("deepseek-reasoner", Entry(0.55, 2.19, 0.14, 0.0)),
    ("grok-4", Entry(3.0, 15.0, 0.75, 0.0)),
    ("grok-4-fast", Entry(0.20, 0.50, 0.05, 0.0)),
    ("grok-3-mini", Entry(0.30, 0.50, 0.075, 0.0)),
];
