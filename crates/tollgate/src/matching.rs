//! What policy rules match on and count by: the `when` conditions shared by
//! routes, rate limits and budgets, and the `limit_by` key of a counter.

use std::collections::BTreeMap;

use crate::config::diag::Diags;
use crate::config::file::WhenSection;
use crate::config::loc::Loc;
use crate::glob::Glob;
use crate::identity::Principal;
use crate::resource::Called;

/// What is known about a call when rules are checked, whatever protocol
/// carried it.
pub struct Facts<'a> {
    /// What it calls: a model, a tool or an agent, by name.
    pub called: Called<'a>,
    pub principal: Option<&'a Principal>,
    pub metadata: &'a BTreeMap<String, String>,
}

/// The condition of a rule; every listed part must match. The name lists
/// (`models`, `tools`, `agents`) together say what is called: with none of
/// them the rule matches every call; otherwise the list for the call's kind
/// must be there and match.
#[derive(Debug, Default)]
pub struct When {
    pub models: Vec<Glob>,
    pub tools: Vec<Glob>,
    pub agents: Vec<Glob>,
    pub metadata: BTreeMap<String, String>,
    pub subjects: Vec<Glob>,
    pub teams: Vec<String>,
    pub groups: Vec<String>,
}

impl When {
    pub fn from_section(w: &WhenSection) -> When {
        When {
            models: w.models.iter().map(|m| Glob::new(m)).collect(),
            tools: w.tools.iter().map(|m| Glob::new(m)).collect(),
            agents: w.agents.iter().map(|m| Glob::new(m)).collect(),
            metadata: w.metadata.clone(),
            subjects: w.subjects.iter().map(|m| Glob::new(m)).collect(),
            teams: w.teams.clone(),
            groups: w.groups.clone(),
        }
    }

    /// For a route of a virtual model: models are matched against the requested name.
    pub fn matches(&self, requested: &str, principal: Option<&Principal>, metadata: &BTreeMap<String, String>) -> bool {
        self.matches_facts(&Facts { called: Called::model(requested), principal, metadata })
    }

    /// Models are matched against the requested and the resolved name,
    /// tools as `<server>/<tool>`, agents by name.
    pub fn matches_facts(&self, f: &Facts<'_>) -> bool {
        self.called_matches(f.called) && self.rest_matches(f.principal, f.metadata)
    }

    fn called_matches(&self, c: Called<'_>) -> bool {
        if self.models.is_empty() && self.tools.is_empty() && self.agents.is_empty() {
            return true;
        }
        match c {
            Called::Model { requested, resolved } => {
                self.models.iter().any(|g| g.matches(requested) || g.matches(resolved))
            }
            Called::Tool(name) => self.tools.iter().any(|g| g.matches(name)),
            Called::Agent(name) => self.agents.iter().any(|g| g.matches(name)),
        }
    }

    fn rest_matches(&self, principal: Option<&Principal>, metadata: &BTreeMap<String, String>) -> bool {
        self.metadata.iter().all(|(k, v)| metadata.get(k) == Some(v))
            && (self.subjects.is_empty() || principal.is_some_and(|p| self.subjects.iter().any(|g| g.matches(&p.id))))
            && (self.teams.is_empty() || metadata.get("team").is_some_and(|t| self.teams.contains(t)))
            && (self.groups.is_empty() || principal.is_some_and(|p| p.groups.iter().any(|g| self.groups.contains(g))))
    }
}

/// Rule ids appear in counter keys, headers and messages: keep them plain.
pub fn check_rule_id(id: &Loc<String>, d: &mut Diags) {
    let ok = !id.value.is_empty()
        && id.value.len() <= 64
        && id.value.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'));
    if !ok {
        d.at(
            id,
            format!("rule id `{}` must be 1–64 letters, digits, `-`, `_`, `.` or `:`", id.value),
            "e.g. team-daily-spend",
        );
    }
}

/// One part of a counter key (`limit_by`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyPart {
    Subject,
    Model,
    Provider,
    Tool,
    Agent,
    Team,
    Metadata(String),
}

impl KeyPart {
    pub fn parse_all(parts: &[Loc<String>], d: &mut Diags) -> Vec<KeyPart> {
        parts
            .iter()
            .filter_map(|p| match p.value.as_str() {
                "subject" => Some(KeyPart::Subject),
                "model" => Some(KeyPart::Model),
                "provider" => Some(KeyPart::Provider),
                "tool" => Some(KeyPart::Tool),
                "agent" => Some(KeyPart::Agent),
                "team" => Some(KeyPart::Team),
                other => match other.strip_prefix("metadata.") {
                    Some(k) if !k.is_empty() => Some(KeyPart::Metadata(k.to_string())),
                    _ => {
                        d.at(
                            p,
                            format!("`{other}` is not a limit_by value"),
                            "use subject, model, provider, tool, agent, team or metadata.<key>",
                        );
                        None
                    }
                },
            })
            .collect()
    }

    fn value<'a>(&self, f: &'a Facts<'_>) -> &'a str {
        match self {
            KeyPart::Subject => f.principal.map_or("-", |p| p.id.as_str()),
            KeyPart::Model => match f.called {
                Called::Model { resolved, .. } => resolved,
                _ => "-",
            },
            KeyPart::Provider => match f.called {
                Called::Model { resolved, .. } => resolved.split_once('/').map_or("-", |(p, _)| p),
                _ => "-",
            },
            KeyPart::Tool => match f.called {
                Called::Tool(name) => name,
                _ => "-",
            },
            KeyPart::Agent => match f.called {
                Called::Agent(name) => name,
                _ => "-",
            },
            KeyPart::Team => f.metadata.get("team").map_or("-", String::as_str),
            KeyPart::Metadata(k) => f.metadata.get(k).map_or("-", String::as_str),
        }
    }
}

/// The counter key of a rule for a request: the rule's `id@unit` and each
/// `limit_by` value, joined by `|`. A `|` or `\\` inside a value is escaped
/// with `\\`, so two different sets of values never share a key.
pub fn counter_key(rule: &str, parts: &[KeyPart], f: &Facts<'_>) -> String {
    let mut k = String::with_capacity(rule.len() + 24 * parts.len());
    k.push_str(rule);
    for p in parts {
        k.push('|');
        for c in p.value(f).chars() {
            if matches!(c, '|' | '\\') {
                k.push('\\');
            }
            k.push(c);
        }
    }
    k
}

/// A key as people read it (keys are already readable: `rule@unit|value`).
pub fn describe_key(key: &str) -> String {
    key.to_string()
}
