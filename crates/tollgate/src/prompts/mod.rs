//! Prompt templates, managed centrally (docs/prompts.md): versioned chat
//! messages and instructions with `{{variables}}`, labels that name
//! versions (`production`, `staging`), and per-provider overrides.
//!
//! A policy domain like `routing`: `build.rs` turns the config's `prompts:`
//! and the versions and labels created through the admin API (kept in the
//! store, held in `Shared::prompts`) into the `Registry` every snapshot
//! holds; `render.rs` is the one function a front calls on a chat-shaped
//! body; `Applied::for_provider` gives a routing attempt its provider's
//! override; `diff.rs` compares versions for the admin API. Nothing here
//! does I/O, so a request renders from memory only.

pub mod build;
pub mod diff;
pub mod render;
pub mod text;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arc_swap::ArcSwap;

pub use render::{Applied, Rendered, names_prompt, render};

use crate::config::file_prompts::PromptRole;
use text::Text;

/// Every template, by id.
#[derive(Debug, Default)]
pub struct Registry {
    pub templates: BTreeMap<String, Template>,
}

#[derive(Debug)]
pub struct Template {
    pub id: String,
    pub description: Option<String>,
    pub versions: BTreeMap<u32, Arc<Version>>,
    pub labels: BTreeMap<String, Label>,
}

#[derive(Debug, Clone)]
pub struct Label {
    pub version: u32,
    pub source: Source,
}

/// Where a version or a label was defined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Config,
    /// Through the admin API: when (unix ms) and by whom (a principal id).
    Admin {
        at: u64,
        by: String,
    },
}

#[derive(Debug)]
pub struct Version {
    pub number: u32,
    pub description: Option<String>,
    pub source: Source,
    pub variables: BTreeMap<String, Variable>,
    pub body: Body,
    /// The overrides as written, in order.
    pub variants: Vec<Variant>,
    /// Configured provider name → the override its attempts use.
    pub per_provider: HashMap<String, usize>,
}

#[derive(Debug, Clone, Default)]
pub struct Variable {
    pub default: Option<String>,
    pub description: Option<String>,
}

/// What a rendering puts before the request's messages.
#[derive(Debug, Clone, Default)]
pub struct Body {
    pub instructions: Option<Text>,
    pub messages: Vec<(PromptRole, Text)>,
}

#[derive(Debug)]
pub struct Variant {
    pub provider: Option<String>,
    pub provider_type: Option<String>,
    /// What the override sets itself (for the admin API).
    pub own: Body,
    pub sets_instructions: bool,
    pub sets_messages: bool,
    /// The version's body with the override applied.
    pub body: Body,
}

impl Version {
    /// The body an attempt on `provider` renders.
    pub fn body_for(&self, provider: &str) -> &Body {
        self.per_provider.get(provider).and_then(|&i| self.variants.get(i)).map_or(&self.body, |v| &v.body)
    }
}

impl Template {
    pub fn latest(&self) -> Option<&Arc<Version>> {
        self.versions.values().next_back()
    }

    /// The version a request asks for: by number, by label, else the
    /// `production` label, else the latest.
    pub fn pick(&self, version: Option<u32>, label: Option<&str>) -> Result<&Arc<Version>, PromptError> {
        let known = || self.versions.keys().copied().collect::<Vec<_>>();
        if let Some(n) = version {
            return self.versions.get(&n).ok_or_else(|| PromptError::VersionNotFound {
                id: self.id.clone(),
                version: n,
                known: known(),
            });
        }
        let wanted = label.unwrap_or(DEFAULT_LABEL);
        match self.labels.get(wanted) {
            Some(l) => self.versions.get(&l.version).ok_or_else(|| PromptError::VersionNotFound {
                id: self.id.clone(),
                version: l.version,
                known: known(),
            }),
            None if label.is_some() => Err(PromptError::LabelNotFound {
                id: self.id.clone(),
                label: wanted.to_string(),
                known: self.labels.keys().cloned().collect(),
            }),
            None => self.latest().ok_or_else(|| PromptError::VersionNotFound {
                id: self.id.clone(),
                version: 0,
                known: known(),
            }),
        }
    }
}

/// The label a request that names neither version nor label gets.
pub const DEFAULT_LABEL: &str = "production";

/// A template id: what a URL path and a log filter can carry as is.
pub fn is_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= 128 && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// A label name: lower-case letters, digits, `-`, `_`.
pub fn is_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_'))
}

/// A version created through the admin API, as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredVersion {
    pub prompt_id: String,
    pub version: u32,
    /// The version as JSON, read by the same types as the config file.
    pub body: String,
    pub created_at: u64,
    pub created_by: String,
}

/// A label set through the admin API; it wins over the file's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredLabel {
    pub prompt_id: String,
    pub label: String,
    pub version: u32,
    pub updated_at: u64,
    pub updated_by: String,
}

#[derive(Debug, Clone, Default)]
pub struct Stored {
    pub versions: Vec<StoredVersion>,
    pub labels: Vec<StoredLabel>,
}

/// The admin API's versions and labels, loaded from the store at start-up
/// and read by every snapshot build; swapped whole on change.
#[derive(Debug, Clone, Default)]
pub struct StoredPrompts {
    current: Arc<ArcSwap<Stored>>,
}

impl StoredPrompts {
    pub fn get(&self) -> Arc<Stored> {
        self.current.load_full()
    }

    pub fn set(&self, s: Stored) {
        self.current.store(Arc::new(s));
    }
}

/// Why a request's `prompt` could not be rendered. Every message says what
/// exists or what to send instead.
#[derive(Debug, thiserror::Error)]
pub enum PromptError {
    #[error("`prompt` {0}")]
    Invalid(String),
    #[error("prompt template `{id}` does not exist; {}", listing("templates", known))]
    NotFound { id: String, known: Vec<String> },
    #[error("prompt template `{id}` has no version {version}; {}", listing("versions", &known.iter().map(u32::to_string).collect::<Vec<_>>()))]
    VersionNotFound { id: String, version: u32, known: Vec<u32> },
    #[error("prompt template `{id}` has no label `{label}`; {}", listing("labels", known))]
    LabelNotFound { id: String, label: String, known: Vec<String> },
    #[error("prompt template `{id}` version {version} needs these variables: {}; send them in `prompt.variables`", missing.join(", "))]
    VariablesMissing { id: String, version: u32, missing: Vec<String> },
    #[error("prompt template `{id}` version {version} does not declare {}; {}", unknown.join(", "), listing("its variables", declared))]
    VariablesUnknown { id: String, version: u32, unknown: Vec<String>, declared: Vec<String> },
}

impl PromptError {
    /// The `error.code` clients see.
    pub fn code(&self) -> &'static str {
        match self {
            PromptError::Invalid(_) => "invalid_prompt",
            PromptError::NotFound { .. } => "prompt_not_found",
            PromptError::VersionNotFound { .. } => "prompt_version_not_found",
            PromptError::LabelNotFound { .. } => "prompt_label_not_found",
            PromptError::VariablesMissing { .. } => "prompt_variables_missing",
            PromptError::VariablesUnknown { .. } => "prompt_variables_unknown",
        }
    }

    /// A template, version or label that does not exist (404), rather than
    /// a request that is wrong about one that does (400).
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            PromptError::NotFound { .. } | PromptError::VersionNotFound { .. } | PromptError::LabelNotFound { .. }
        )
    }
}

/// "versions: 1, 2, 3" — at most 20 names, so an error stays readable.
fn listing(what: &str, names: &[String]) -> String {
    if names.is_empty() {
        return format!("there are no {what}");
    }
    let shown: Vec<&str> = names.iter().take(20).map(String::as_str).collect();
    let more = names.len().saturating_sub(shown.len());
    let tail = if more > 0 { format!(" and {more} more") } else { String::new() };
    format!("{what}: {}{tail}", shown.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(versions: &[u32], labels: &[(&str, u32)]) -> Template {
        Template {
            id: "t".into(),
            description: None,
            versions: versions
                .iter()
                .map(|&n| {
                    let v = Version {
                        number: n,
                        description: None,
                        source: Source::Config,
                        variables: BTreeMap::new(),
                        body: Body::default(),
                        variants: Vec::new(),
                        per_provider: HashMap::new(),
                    };
                    (n, Arc::new(v))
                })
                .collect(),
            labels: labels
                .iter()
                .map(|(l, v)| (l.to_string(), Label { version: *v, source: Source::Config }))
                .collect(),
        }
    }

    #[test]
    fn version_then_label_then_production_then_latest() {
        let t = template(&[1, 2, 3], &[("production", 2), ("staging", 3)]);
        assert_eq!(t.pick(Some(1), None).unwrap().number, 1);
        assert_eq!(t.pick(None, Some("staging")).unwrap().number, 3);
        assert_eq!(t.pick(None, None).unwrap().number, 2, "production when set");
        let t = template(&[1, 2, 3], &[]);
        assert_eq!(t.pick(None, None).unwrap().number, 3, "else the latest");
    }

    #[test]
    fn what_does_not_exist_is_named_with_what_does() {
        let t = template(&[1, 2], &[("production", 2)]);
        let e = t.pick(Some(9), None).unwrap_err();
        assert_eq!(
            (e.code(), e.to_string()),
            ("prompt_version_not_found", "prompt template `t` has no version 9; versions: 1, 2".into())
        );
        let e = t.pick(None, Some("canary")).unwrap_err();
        assert_eq!(e.to_string(), "prompt template `t` has no label `canary`; labels: production");
        assert!(e.is_not_found());
    }

    #[test]
    fn ids_and_labels_are_path_safe() {
        assert!(is_id("support-triage") && is_id("a.b_c") && !is_id("a/b") && !is_id(""));
        assert!(is_label("production") && is_label("canary-2") && !is_label("Prod") && !is_label("a b"));
    }
}
