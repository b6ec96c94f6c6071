//! Guardrails (SPEC §7): what the `guardrails:` section defines, compiled
//! once at config load into checks that the one runner
//! (`admission::guardrails`) applies on four hooks.
//!
//! A guardrail is a *validator* (pass or fail; validators run concurrently)
//! or a *mutator* (rewrites the content; mutators run in order, each seeing
//! the previous one's output). Its *mode* says what a failure does: `audit`
//! records it, `enforce` blocks (and lets the call through when the
//! guardrail itself errors or times out), `strict` blocks on both.
//!
//! One file per type. The in-process types (`pii`, `secrets`,
//! `prompt_injection`, `deny_list`, `regex`, `max_size`) work on the text of
//! a call — what [`content`] pulls out of each protocol's JSON — and take
//! microseconds; the external ones (`webhook`, `llm_judge`) and the whole-
//! document ones (`json_schema`, `cedar`) see the call as a whole. Streams
//! are scanned as they pass by `pipeline::stream_guard`.

pub mod cedar;
pub mod content;
pub mod deny_list;
pub mod json_schema;
pub mod llm_judge;
pub mod max_size;
pub mod patterns;
pub mod pii;
pub mod prompt_injection;
pub mod secrets;
pub mod webhook;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use detectors::Finding;

use crate::config::diag::Diags;
use crate::config::file::{GuardrailAction, GuardrailMode, GuardrailType, GuardrailsSection};

pub use content::{Shape, Source};

/// Where in a call content is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Hook {
    /// A model's input (messages, tools), before any model sees it.
    LlmInput,
    /// A model's output (a complete answer, or a stream as it passes).
    LlmOutput,
    /// A tool call's arguments, before the tool server sees them.
    McpToolPre,
    /// A tool's result, before the client (or a model) sees it.
    McpToolPost,
}

impl Hook {
    pub const ALL: [Hook; 4] = [Hook::LlmInput, Hook::LlmOutput, Hook::McpToolPre, Hook::McpToolPost];

    /// The name used in config (`guardrails.enforce.<hook>`) and headers.
    pub fn as_str(self) -> &'static str {
        match self {
            Hook::LlmInput => "llm_input",
            Hook::LlmOutput => "llm_output",
            Hook::McpToolPre => "mcp_tool_pre",
            Hook::McpToolPost => "mcp_tool_post",
        }
    }

    pub fn parse(s: &str) -> Option<Hook> {
        Hook::ALL.into_iter().find(|h| h.as_str() == s)
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

/// One compiled guardrail.
#[derive(Debug)]
pub struct Guardrail {
    pub name: String,
    pub kind: GuardrailType,
    pub action: GuardrailAction,
    pub mode: GuardrailMode,
    /// Past this, the guardrail counts as having errored.
    pub timeout: Option<Duration>,
    pub check: Check,
}

/// What a guardrail does, by type.
#[derive(Debug)]
pub enum Check {
    Pii(pii::PiiCheck),
    Secrets(secrets::SecretsCheck),
    PromptInjection(prompt_injection::InjectionCheck),
    DenyList(deny_list::DenyList),
    Regex(patterns::Patterns),
    MaxSize(max_size::MaxSize),
    JsonSchema(json_schema::SchemaCheck),
    Webhook(webhook::Webhook),
    LlmJudge(llm_judge::Judge),
    Cedar(cedar::CedarCheck),
}

/// A failed check's reason: names what was found, never the matched text.
pub type Reason = String;

impl Check {
    /// For the in-process text checks: what they find in one text. `None`
    /// for the types that judge a call as a whole.
    pub fn findings(&self, text: &str, source: Source) -> Option<Vec<Finding>> {
        Some(match self {
            Check::Pii(c) => c.pii.find(text),
            Check::Secrets(c) => c.secrets.find(text),
            Check::PromptInjection(c) => c.find(text, source),
            Check::DenyList(c) => c.find(text),
            Check::Regex(c) => c.find(text),
            _ => return None,
        })
    }

    /// The in-process checks over text, which answer through [`Check::findings`].
    pub fn is_text(&self) -> bool {
        matches!(
            self,
            Check::Pii(_) | Check::Secrets(_) | Check::PromptInjection(_) | Check::DenyList(_) | Check::Regex(_)
        )
    }

    /// The checks that call out (and so run concurrently, with a timeout).
    pub fn is_external(&self) -> bool {
        matches!(self, Check::Webhook(_) | Check::LlmJudge(_))
    }

    /// Whether this check can rewrite content (config rejects `mutate` otherwise).
    fn can_mutate(kind: GuardrailType) -> bool {
        matches!(
            kind,
            GuardrailType::Pii
                | GuardrailType::Secrets
                | GuardrailType::DenyList
                | GuardrailType::Regex
                | GuardrailType::Webhook
        )
    }
}

/// The compiled `guardrails:` section: every definition by name, and the
/// org-wide lists per hook that a request cannot switch off.
#[derive(Debug, Default)]
pub struct Guardrails {
    pub by_name: HashMap<String, Arc<Guardrail>>,
    pub enforce: [Vec<Arc<Guardrail>>; 4],
}

impl Guardrails {
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}

/// Compiles every definition (options checked against the type) and
/// resolves the org-wide lists; problems go to `d` with their position.
pub fn build(section: &GuardrailsSection, d: &mut Diags) -> Guardrails {
    let mut out = Guardrails::default();
    for def in &section.definitions {
        if out.by_name.contains_key(&*def.name) {
            d.at(
                &def.name,
                format!("guardrail `{}` is defined twice", def.name.value),
                "give each guardrail its own name",
            );
            continue;
        }
        let kind = def.kind.value;
        if def.action == GuardrailAction::Mutate && !Check::can_mutate(kind) {
            d.at(
                &def.kind,
                format!("guardrail `{}`: type `{}` cannot mutate", def.name.value, type_name(kind)),
                "use `action: validate`; types that rewrite content: pii, secrets, deny_list, regex, webhook",
            );
            continue;
        }
        let check = compile(kind, &def.options, def.action);
        match check {
            Ok(check) => {
                let timeout = def.timeout.map(|t| t.0).or(match kind {
                    GuardrailType::Webhook | GuardrailType::LlmJudge => Some(Duration::from_secs(2)),
                    _ => None,
                });
                out.by_name.insert(
                    def.name.value.clone(),
                    Arc::new(Guardrail {
                        name: def.name.value.clone(),
                        kind,
                        action: def.action,
                        mode: def.mode,
                        timeout,
                        check,
                    }),
                );
            }
            Err(e) => d.at(&def.name, format!("guardrail `{}` ({}): {e}", def.name.value, type_name(kind)), ""),
        }
    }
    let e = &section.enforce;
    for (hook, names) in [
        (Hook::LlmInput, &e.llm_input),
        (Hook::LlmOutput, &e.llm_output),
        (Hook::McpToolPre, &e.mcp_tool_pre),
        (Hook::McpToolPost, &e.mcp_tool_post),
    ] {
        for name in names {
            match out.by_name.get(&name.value) {
                Some(g) => out.enforce[hook.index()].push(g.clone()),
                None => d.at(
                    name,
                    format!("guardrails.enforce.{}: no guardrail named `{}` is defined", hook.as_str(), name.value),
                    "define it under guardrails.definitions",
                ),
            }
        }
    }
    out
}

fn compile(
    kind: GuardrailType,
    options: &BTreeMap<String, serde_json::Value>,
    action: GuardrailAction,
) -> Result<Check, String> {
    let opts = serde_json::Value::Object(options.iter().map(|(k, v)| (k.clone(), v.clone())).collect());
    Ok(match kind {
        GuardrailType::Pii => Check::Pii(pii::PiiCheck::build(opts)?),
        GuardrailType::Secrets => Check::Secrets(secrets::SecretsCheck::build(opts)?),
        GuardrailType::PromptInjection => Check::PromptInjection(prompt_injection::InjectionCheck::build(opts)?),
        GuardrailType::DenyList => Check::DenyList(deny_list::DenyList::build(opts)?),
        GuardrailType::Regex => Check::Regex(patterns::Patterns::build(opts)?),
        GuardrailType::MaxSize => Check::MaxSize(max_size::MaxSize::build(opts)?),
        GuardrailType::JsonSchema => Check::JsonSchema(json_schema::SchemaCheck::build(opts)?),
        GuardrailType::Webhook => Check::Webhook(webhook::Webhook::build(opts, action)?),
        GuardrailType::LlmJudge => Check::LlmJudge(llm_judge::Judge::build(opts)?),
        GuardrailType::Cedar => Check::Cedar(cedar::CedarCheck::build(opts)?),
    })
}

/// Reads a type's options into its typed form; an unknown or mistyped
/// option is an error that says which.
pub fn options<T: serde::de::DeserializeOwned>(opts: serde_json::Value) -> Result<T, String> {
    serde_json::from_value(opts).map_err(|e| e.to_string())
}

pub fn type_name(kind: GuardrailType) -> &'static str {
    match kind {
        GuardrailType::Pii => "pii",
        GuardrailType::Secrets => "secrets",
        GuardrailType::PromptInjection => "prompt_injection",
        GuardrailType::DenyList => "deny_list",
        GuardrailType::Regex => "regex",
        GuardrailType::MaxSize => "max_size",
        GuardrailType::JsonSchema => "json_schema",
        GuardrailType::Webhook => "webhook",
        GuardrailType::LlmJudge => "llm_judge",
        GuardrailType::Cedar => "cedar",
    }
}

/// The reason for a failed text check: the kinds found, never the text.
pub fn reason(findings: &[Finding]) -> Reason {
    let mut kinds: Vec<&str> = findings.iter().map(|f| f.kind).collect();
    kinds.sort_unstable();
    kinds.dedup();
    format!("found {}", kinds.join(", "))
}

/// What a masking mutator writes in place of a value it removes.
pub fn mask(kind: &str) -> String {
    format!("[REDACTED:{kind}]")
}
