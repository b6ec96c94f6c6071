//! `type: regex` — your own patterns (ticket formats, internal hostnames,
//! account numbers). Validate blocks when any matches; mutate masks the
//! match. Patterns use Rust's `regex` syntax, which runs in linear time:
//! no pattern can make a request slow.
//!
//! ```yaml
//! - name: no-internal-hosts
//!   type: regex
//!   patterns: ['\b[a-z0-9-]+\.corp\.example\.com\b']
//! ```

use detectors::Finding;
use regex::Regex;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {
    patterns: Vec<String>,
}

#[derive(Debug)]
pub struct Patterns {
    // One alternation: a single pass over the text for every pattern.
    combined: Regex,
}

impl Patterns {
    pub fn build(opts: serde_json::Value) -> Result<Patterns, String> {
        let o: Options = super::options(opts)?;
        if o.patterns.is_empty() {
            return Err("`patterns` needs at least one pattern".into());
        }
        for p in &o.patterns {
            Regex::new(p).map_err(|e| format!("pattern `{p}`: {e}"))?;
        }
        let joined = o.patterns.iter().map(|p| format!("(?:{p})")).collect::<Vec<_>>().join("|");
        let combined =
            regex::RegexBuilder::new(&joined).size_limit(8 << 20).build().map_err(|e| format!("patterns: {e}"))?;
        Ok(Patterns { combined })
    }

    pub fn find(&self, text: &str) -> Vec<Finding> {
        self.combined
            .find_iter(text)
            .filter(|m| !m.is_empty())
            .map(|m| Finding { kind: "PATTERN", start: m.start(), end: m.end() })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_pattern_matches_and_bad_patterns_are_named() {
        let p = Patterns::build(serde_json::json!({"patterns": ["TICKET-\\d+", "\\bcorp\\.example\\b"]})).expect("ok");
        assert_eq!(p.find("see TICKET-42 on corp.example").len(), 2);
        assert!(p.find("nothing").is_empty());
        let e = Patterns::build(serde_json::json!({"patterns": ["("]})).expect_err("bad");
        assert!(e.contains("pattern `(`"), "{e}");
    }
}
