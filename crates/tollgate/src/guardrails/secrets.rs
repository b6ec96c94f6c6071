//! `type: secrets` — credentials: cloud keys, platform tokens, private
//! keys, JWTs, high-entropy values in `key=value` context. Validate blocks;
//! mutate masks each value as `[REDACTED:<KIND>]`. Above all an output and
//! `mcp_tool_post` guardrail: it stops a key a model or a tool leaks from
//! reaching the client.
//!
//! ```yaml
//! - name: no-secrets-out
//!   type: secrets
//!   action: mutate
//! ```

use detectors::secrets::Secrets;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {}

pub struct SecretsCheck {
    pub secrets: Secrets,
}

impl std::fmt::Debug for SecretsCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretsCheck")
    }
}

impl SecretsCheck {
    pub fn build(opts: serde_json::Value) -> Result<SecretsCheck, String> {
        let _: Options = super::options(opts)?;
        Ok(SecretsCheck { secrets: Secrets::new() })
    }
}
