//! `prompts:` as users write it: versioned templates with variables,
//! labels and per-provider overrides (docs/prompts.md). The same types read
//! a version created through the admin API, so both are checked alike.
//! The `prompts` domain turns them into the runtime registry (its `build.rs`).
//!
//! Doc comments here become descriptions in `config.schema.json`.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;

use super::loc::Loc;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PromptSection {
    /// Unique id requests name in `prompt.id`, e.g. `support-triage`
    /// (letters, digits, `-`, `_`, `.`).
    pub id: Loc<String>,
    /// What the template is for (shown by the admin API).
    #[serde(default)]
    pub description: Option<String>,
    /// Names for versions, e.g. `{ production: 3, staging: 4 }`. A request
    /// naming no version or label gets `production`, else the latest version.
    #[serde(default)]
    pub labels: BTreeMap<String, Loc<u32>>,
    /// The template's versions; each number once. Versions are immutable:
    /// change a template by adding a version.
    #[serde(default)]
    pub versions: Vec<PromptVersionSection>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PromptVersionSection {
    /// The version number, from 1.
    pub version: Loc<u32>,
    /// A note on what changed in this version.
    #[serde(default)]
    pub description: Option<String>,
    /// Every `{{name}}` the texts use, with an optional `default`. A
    /// variable without a default must be given by the request.
    #[serde(default)]
    pub variables: BTreeMap<String, Option<PromptVariableSection>>,
    /// System text, sent first as a `system` message.
    #[serde(default)]
    pub instructions: Option<Loc<String>>,
    /// Messages placed before the request's own messages.
    #[serde(default)]
    pub messages: Vec<PromptMessageSection>,
    /// Other texts for some providers; the first entry naming the target's
    /// provider wins, else the first naming its type.
    #[serde(default)]
    pub overrides: Vec<PromptOverrideSection>,
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PromptVariableSection {
    /// Used when the request does not give the variable.
    #[serde(default)]
    pub default: Option<String>,
    /// What the variable holds (shown by the admin API).
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PromptMessageSection {
    /// `system`, `developer`, `user` or `assistant`.
    pub role: Loc<PromptRole>,
    /// The text, with `{{name}}` placeholders; `\{{` is a literal `{{`.
    pub content: Loc<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PromptRole {
    System,
    Developer,
    User,
    Assistant,
}

impl PromptRole {
    pub fn as_str(self) -> &'static str {
        match self {
            PromptRole::System => "system",
            PromptRole::Developer => "developer",
            PromptRole::User => "user",
            PromptRole::Assistant => "assistant",
        }
    }
}

/// Texts used instead of the version's own when the call goes to a
/// matching provider (a fallback target included). What it does not set is
/// the version's.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PromptOverrideSection {
    /// A provider name from `providers`.
    #[serde(default)]
    pub provider: Option<Loc<String>>,
    /// A provider type, e.g. `anthropic`, `bedrock`, `openai`.
    #[serde(default)]
    pub provider_type: Option<Loc<String>>,
    /// Replaces the version's `instructions`.
    #[serde(default)]
    pub instructions: Option<Loc<String>>,
    /// Replaces the version's `messages`.
    #[serde(default)]
    pub messages: Option<Vec<PromptMessageSection>>,
}
