//! `type: prompt_injection` — instruction overrides, role hijacks,
//! system-prompt exfiltration, instructions hidden in retrieved content,
//! encoded payloads. Weighted by who wrote the text: the same phrase counts
//! for more in a tool's output (`role: tool`, a `tool_result`, an MCP
//! result) than in a user's own turn. Validate only.
//!
//! ```yaml
//! - name: injection
//!   type: prompt_injection
//!   sources: [tool]        # default: every text; `tool` checks tool output only
//! ```

use detectors::Finding;
use detectors::injection::Injection;

use super::Source;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {
    #[serde(default)]
    sources: Vec<String>,
}

pub struct InjectionCheck {
    detector: Injection,
    /// Only tool output (and retrieved content) is checked.
    tool_only: bool,
}

impl std::fmt::Debug for InjectionCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InjectionCheck").field("tool_only", &self.tool_only).finish_non_exhaustive()
    }
}

impl InjectionCheck {
    pub fn build(opts: serde_json::Value) -> Result<InjectionCheck, String> {
        let o: Options = super::options(opts)?;
        let mut tool_only = false;
        for s in &o.sources {
            match s.as_str() {
                "tool" => tool_only = true,
                "all" => {}
                other => return Err(format!("sources: `{other}` is not a source; use `tool` or `all`")),
            }
        }
        Ok(InjectionCheck { detector: Injection::new(), tool_only: tool_only && !o.sources.iter().any(|s| s == "all") })
    }

    /// A flagged text is one finding over the whole text, named by its
    /// strongest signal.
    pub fn find(&self, text: &str, source: Source) -> Vec<Finding> {
        if self.tool_only && source != Source::Tool {
            return Vec::new();
        }
        let v = self.detector.scan(text, source.injection());
        if !v.flagged {
            return Vec::new();
        }
        vec![Finding { kind: v.signals.first().copied().unwrap_or("prompt_injection"), start: 0, end: text.len() }]
    }
}
