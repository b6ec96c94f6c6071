//! `type: deny_list` — terms that must not pass (code names, competitors,
//! topics), matched case-insensitively and on word boundaries: `atlas`
//! matches "Atlas" and "ATLAS," but not "atlases". Validate blocks; mutate
//! masks the term.
//!
//! ```yaml
//! - name: no-codenames
//!   type: deny_list
//!   terms: [atlas, orion]
//! ```

use aho_corasick::{AhoCorasick, AhoCorasickKind, MatchKind};
use detectors::Finding;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {
    terms: Vec<String>,
}

#[derive(Debug)]
pub struct DenyList {
    // One automaton for every term: a scan costs the same for 5 terms or 5,000.
    automaton: AhoCorasick,
}

impl DenyList {
    pub fn build(opts: serde_json::Value) -> Result<DenyList, String> {
        let o: Options = super::options(opts)?;
        let terms: Vec<&str> = o.terms.iter().map(|t| t.trim()).filter(|t| !t.is_empty()).collect();
        if terms.is_empty() {
            return Err("`terms` needs at least one term".into());
        }
        let automaton = AhoCorasick::builder()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::LeftmostLongest)
            .kind(Some(AhoCorasickKind::DFA))
            .build(&terms)
            .map_err(|e| format!("terms: {e}"))?;
        Ok(DenyList { automaton })
    }

    pub fn find(&self, text: &str) -> Vec<Finding> {
        self.automaton
            .find_iter(text)
            .filter(|m| word_edge(text, m.start(), true) && word_edge(text, m.end(), false))
            .map(|m| Finding { kind: "DENIED_TERM", start: m.start(), end: m.end() })
            .collect()
    }
}

/// Whether the character before (`before`) or at `i` is not part of a word.
fn word_edge(text: &str, i: usize, before: bool) -> bool {
    let c = if before { text[..i].chars().next_back() } else { text[i..].chars().next() };
    !c.is_some_and(char::is_alphanumeric)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(terms: &[&str]) -> DenyList {
        DenyList::build(serde_json::json!({"terms": terms})).expect("builds")
    }

    #[test]
    fn whole_words_any_case() {
        let d = list(&["atlas", "project orion"]);
        let hits = |t: &str| d.find(t).len();
        assert_eq!(hits("Atlas ships; ATLAS, atlas."), 3);
        assert_eq!(hits("atlases and Atlassian"), 0);
        assert_eq!(hits("about Project  Orion"), 0);
        assert_eq!(hits("about project Orion!"), 1);
        assert_eq!(hits("über-atlas"), 1);
        assert_eq!(hits("éatlas"), 0);
    }

    #[test]
    fn options_are_checked() {
        assert!(DenyList::build(serde_json::json!({"terms": []})).is_err());
        let e = DenyList::build(serde_json::json!({"term": ["x"]})).expect_err("misspelt");
        assert!(e.contains("term"), "{e}");
    }
}
