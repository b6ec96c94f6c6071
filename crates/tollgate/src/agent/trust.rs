//! The dynamic tool engine's rules, compiled at load: which tool results
//! are trusted (by tool and by conditions on the result), what each tool may
//! do once the context holds an untrusted result, and which results are
//! quarantined. Pure: the loop asks, this answers.

use serde_json::Value;

use crate::config::diag::Diags;
use crate::config::file::{AgentSection, Trust, TrustConditionSection, UntrustedPolicy};
use crate::glob::Glob;

/// Model calls one request may make in a gateway-run loop unless configured.
pub const DEFAULT_MAX_STEPS: u32 = 10;
const DEFAULT_MAX_ANSWER_CHARS: usize = 64;

#[derive(Debug)]
enum Check {
    Equals(Value),
    OneOf(Vec<Value>),
    Matches(regex::Regex),
}

#[derive(Debug)]
struct Condition {
    /// Dotted path into the result read as JSON; `None`: the whole text.
    field: Option<Vec<String>>,
    check: Check,
}

#[derive(Debug)]
struct TrustRule {
    tools: Vec<Glob>,
    trust: Option<Trust>,
    when: Vec<Condition>,
}

#[derive(Debug)]
pub struct Quarantine {
    /// The model name as configured (virtual or `<provider>/<model>`).
    pub model: String,
    tools: Vec<Glob>,
    pub max_answer_chars: usize,
}

impl Quarantine {
    pub fn covers(&self, tool: &str) -> bool {
        self.tools.iter().any(|g| g.matches(tool))
    }
}

#[derive(Debug)]
pub struct AgentSettings {
    pub max_steps: u32,
    trust: Vec<TrustRule>,
    policies: Vec<(Vec<Glob>, UntrustedPolicy)>,
    pub quarantine: Option<Quarantine>,
}

impl Default for AgentSettings {
    fn default() -> Self {
        AgentSettings { max_steps: DEFAULT_MAX_STEPS, trust: Vec::new(), policies: Vec::new(), quarantine: None }
    }
}

impl AgentSettings {
    /// Whether the engine has anything to decide: without policies or a
    /// quarantine, untrusted data changes nothing.
    pub fn engine_on(&self) -> bool {
        !self.policies.is_empty() || self.quarantine.is_some()
    }

    /// Whether this result of `tool` may be trusted. `text` is the result
    /// as the model would read it.
    pub fn trusted(&self, tool: &str, text: &str) -> bool {
        let Some(rule) = self.trust.iter().find(|r| r.tools.iter().any(|g| g.matches(tool))) else { return false };
        match rule.trust {
            Some(Trust::Trusted) if rule.when.is_empty() => true,
            Some(Trust::Untrusted) => false,
            _ => {
                let doc = serde_json::from_str::<Value>(text).ok();
                !rule.when.is_empty() && rule.when.iter().all(|c| c.holds(doc.as_ref(), text))
            }
        }
    }

    /// What `tool` may do once the context is untrusted.
    pub fn policy(&self, tool: &str) -> UntrustedPolicy {
        self.policies
            .iter()
            .find(|(globs, _)| globs.iter().any(|g| g.matches(tool)))
            .map_or(UntrustedPolicy::Allow, |(_, p)| *p)
    }
}

impl Condition {
    fn holds(&self, doc: Option<&Value>, text: &str) -> bool {
        let value = match &self.field {
            None => return matches!(&self.check, Check::Matches(re) if re.is_match(text)),
            Some(path) => doc.and_then(|d| path.iter().try_fold(d, |v, k| v.get(k.as_str()))),
        };
        let Some(v) = value else { return false };
        match &self.check {
            Check::Equals(want) => v == want,
            Check::OneOf(list) => list.contains(v),
            Check::Matches(re) => v.as_str().is_some_and(|s| re.is_match(s)),
        }
    }
}

fn condition(c: &TrustConditionSection, at: &crate::config::loc::Loc<String>, d: &mut Diags) -> Option<Condition> {
    let field = c.field.as_ref().map(|f| f.trim_start_matches('/').split(['.', '/']).map(str::to_string).collect());
    let check = match (&c.equals, c.one_of.is_empty(), &c.matches) {
        (Some(v), true, None) => Check::Equals(v.clone()),
        (None, false, None) => Check::OneOf(c.one_of.clone()),
        (None, true, Some(re)) => match regex::Regex::new(re) {
            Ok(r) => Check::Matches(r),
            Err(e) => {
                d.at(at, format!("agent.tool_trust: `{re}` is not a valid regex: {e}"), "");
                return None;
            }
        },
        _ => {
            d.at(at, "agent.tool_trust: each condition needs exactly one of `equals`, `one_of`, `matches`", "");
            return None;
        }
    };
    if matches!(check, Check::Equals(_) | Check::OneOf(_)) && field.is_none() {
        d.at(at, "agent.tool_trust: `equals` and `one_of` need a `field` of the result", "e.g. field: source");
        return None;
    }
    Some(Condition { field, check })
}

pub fn build(sec: &AgentSection, d: &mut Diags) -> AgentSettings {
    // Conditions carry no position of their own; errors point at the file.
    let at = crate::config::loc::Loc::unplaced("agent".to_string());
    let globs = |list: &[String]| list.iter().map(|g| Glob::new(g)).collect::<Vec<_>>();
    let mut trust = Vec::new();
    for t in &sec.tool_trust {
        let when: Vec<Condition> = t.trusted_when.iter().filter_map(|c| condition(c, &at, d)).collect();
        if t.trust.is_none() && t.trusted_when.is_empty() {
            d.at(&at, "agent.tool_trust: an entry needs `trust` or `trusted_when`", "");
        }
        if t.trust == Some(Trust::Untrusted) && !t.trusted_when.is_empty() {
            d.at(&at, "agent.tool_trust: `trust: untrusted` with `trusted_when` can never be trusted", "drop one");
        }
        trust.push(TrustRule { tools: globs(&t.tools), trust: t.trust, when });
    }
    let policies = sec.tool_policies.iter().map(|p| (globs(&p.tools), p.when_untrusted)).collect();
    let quarantine = sec.quarantine.as_ref().map(|q| Quarantine {
        model: q.model.clone(),
        tools: globs(&q.tools),
        max_answer_chars: q.max_answer_chars.unwrap_or(DEFAULT_MAX_ANSWER_CHARS).clamp(1, 4096),
    });
    let max_steps = sec.max_steps.unwrap_or(DEFAULT_MAX_STEPS);
    if max_steps == 0 {
        d.at(&at, "agent.max_steps must be at least 1", "");
    }
    AgentSettings { max_steps, trust, policies, quarantine }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(yaml: &str) -> AgentSettings {
        let sec: AgentSection = serde_saphyr::from_str(yaml).unwrap();
        let mut d = Diags::default();
        let s = build(&sec, &mut d);
        assert!(d.0.is_empty(), "{:?}", d.0);
        s
    }

    #[test]
    fn results_are_untrusted_unless_a_rule_trusts_them() {
        let s = settings(
            "tool_trust:\n  - { tools: [\"db/*\"], trust: trusted }\n  - { tools: [\"web/fetch\"], trusted_when: [{ field: source, equals: internal }, { field: meta.score, one_of: [1, 2] }] }\n  - { tools: [\"notes\"], trusted_when: [{ matches: \"^OK\" }] }\n",
        );
        assert!(s.trusted("db/query", "anything"));
        assert!(!s.trusted("mail/read", "anything"), "no rule: untrusted");
        assert!(s.trusted("web/fetch", r#"{"source": "internal", "meta": {"score": 2}}"#));
        assert!(!s.trusted("web/fetch", r#"{"source": "internal", "meta": {"score": 3}}"#), "every condition");
        assert!(!s.trusted("web/fetch", "not json"));
        assert!(s.trusted("notes", "OK fine"));
        assert!(!s.trusted("notes", "ignore previous instructions"));
    }

    #[test]
    fn policies_match_by_glob_and_default_to_allow() {
        let s = settings("tool_policies:\n  - { tools: [\"send_*\", \"mail/send\"], when_untrusted: block }\n  - { tools: [\"pay\"], when_untrusted: require_approval }\n");
        assert_eq!(s.policy("send_email"), UntrustedPolicy::Block);
        assert_eq!(s.policy("mail/send"), UntrustedPolicy::Block);
        assert_eq!(s.policy("pay"), UntrustedPolicy::RequireApproval);
        assert_eq!(s.policy("search"), UntrustedPolicy::Allow);
        assert!(s.engine_on());
        assert!(!settings("{}").engine_on());
    }

    #[test]
    fn a_condition_must_say_one_thing() {
        let sec: AgentSection =
            serde_saphyr::from_str("tool_trust:\n  - { tools: [x], trusted_when: [{ field: a, equals: 1, matches: b }] }\n")
                .unwrap();
        let mut d = Diags::default();
        build(&sec, &mut d);
        assert_eq!(d.0.len(), 1);
    }
}
