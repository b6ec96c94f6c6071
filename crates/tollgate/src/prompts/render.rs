//! A request's `prompt` rendered into its messages. `render` takes a
//! chat-shaped body (OpenAI chat, or the hub body a front made) with a
//! top-level `prompt: {id, version | label, variables}` and returns the
//! body every later stage sees: the template's instructions (as a `system`
//! message) and messages first, then the request's own, and no `prompt`.
//!
//! The rest of the body is copied byte for byte (`RawObject::rebuild`), and
//! a body without a top-level `"prompt"` key costs one substring scan: no
//! parse, no allocation.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock};

use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

use super::{Body, PromptError, Registry, Version};
use crate::wire::json::RawObject;

/// The rendered body and what the request log and the attempts need.
#[derive(Debug)]
pub struct Rendered {
    pub body: bytes::Bytes,
    pub applied: Applied,
}

/// The template a request used, kept on its context.
#[derive(Debug)]
pub struct Applied {
    pub id: String,
    pub version: u32,
    /// The label the request named, if it named one.
    pub label: Option<String>,
    template: Arc<Version>,
    values: BTreeMap<String, String>,
    /// The template's messages as rendered for the body, to find them
    /// again in the body an attempt sends.
    rendered: Vec<Value>,
    /// Set when an override was not used because an input guardrail had
    /// rewritten the template's messages (its rewrite stands).
    kept_guarded: AtomicBool,
}

/// Finds the key without parsing: a body that does not contain it (nearly
/// every body) is returned untouched at the cost of one SIMD scan.
static KEY: LazyLock<aho_corasick::AhoCorasick> =
    LazyLock::new(|| aho_corasick::AhoCorasick::new(["\"prompt\""]).unwrap_or_else(|_| unreachable!()));

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Reference {
    id: String,
    #[serde(default)]
    version: Option<Number>,
    #[serde(default)]
    label: Option<String>,
    #[serde(default)]
    variables: Option<serde_json::Map<String, Value>>,
}

/// A version as a number, or as a string of digits (the Responses API
/// writes `"version": "3"`).
#[derive(Deserialize)]
#[serde(untagged)]
enum Number {
    N(u32),
    S(String),
}

/// Renders the body's `prompt`, if it has one (`Ok(None)`: it has none, or
/// the body is not a JSON object — the caller's own parse reports that).
pub fn render(registry: &Registry, body: &[u8]) -> Result<Option<Rendered>, PromptError> {
    if !KEY.is_match(body) {
        return Ok(None);
    }
    let Ok(obj) = RawObject::parse(body) else { return Ok(None) };
    let Some(raw) = obj.get("prompt").filter(|r| r.get() != "null") else { return Ok(None) };
    let r: Reference = serde_json::from_str(raw.get()).map_err(|e| {
        PromptError::Invalid(format!(
            "must be an object {{\"id\": …, \"version\" or \"label\": …, \"variables\": {{…}}}}: {e}"
        ))
    })?;
    let version = match r.version {
        None => None,
        Some(Number::N(n)) => Some(n),
        Some(Number::S(s)) => Some(
            s.trim().parse::<u32>().map_err(|_| PromptError::Invalid(format!("`version` `{s}` is not a number")))?,
        ),
    };
    if version.is_some() && r.label.is_some() {
        return Err(PromptError::Invalid("names both `version` and `label`; send one".into()));
    }
    let template = registry.templates.get(&r.id).ok_or_else(|| PromptError::NotFound {
        id: r.id.clone(),
        known: registry.templates.keys().cloned().collect(),
    })?;
    let v = template.pick(version, r.label.as_deref())?.clone();
    let values = values(&r.id, &v, r.variables.unwrap_or_default())?;

    let rendered = messages(&v.body, &values);
    let mut list = String::from("[");
    for m in &rendered {
        if list.len() > 1 {
            list.push(',');
        }
        list.push_str(&m.to_string());
    }
    match obj.get("messages").map(RawValue::get) {
        None | Some("null") => {}
        Some(own) => {
            let inner = own.trim().strip_prefix('[').and_then(|s| s.strip_suffix(']')).ok_or_else(|| {
                PromptError::Invalid("is used with `messages` that is not an array; send an array of messages".into())
            })?;
            if !inner.trim().is_empty() {
                if list.len() > 1 {
                    list.push(',');
                }
                list.push_str(inner);
            }
        }
    }
    list.push(']');
    let body = obj.rebuild(&[("messages", &list)], &["prompt"]);
    let applied = Applied {
        id: r.id,
        version: v.number,
        label: r.label,
        values: if v.variants.is_empty() { BTreeMap::new() } else { values },
        template: v,
        rendered,
        kept_guarded: AtomicBool::new(false),
    };
    Ok(Some(Rendered { body: bytes::Bytes::from(body), applied }))
}

/// Whether the body has a top-level `prompt`, for the APIs that do not
/// render one (`/v1/messages`, embeddings): they refuse it rather than
/// pass a template reference to a provider that would not understand it.
pub fn names_prompt(body: &[u8]) -> bool {
    KEY.is_match(body) && RawObject::parse(body).is_ok_and(|o| o.get("prompt").is_some_and(|r| r.get() != "null"))
}

/// Every declared variable's value: the request's, else the default.
fn values(
    id: &str,
    v: &Version,
    given: serde_json::Map<String, Value>,
) -> Result<BTreeMap<String, String>, PromptError> {
    let unknown: Vec<String> = given.keys().filter(|k| !v.variables.contains_key(*k)).cloned().collect();
    if !unknown.is_empty() {
        return Err(PromptError::VariablesUnknown {
            id: id.into(),
            version: v.number,
            unknown,
            declared: v.variables.keys().cloned().collect(),
        });
    }
    let mut out = BTreeMap::new();
    let mut missing = Vec::new();
    for (name, decl) in &v.variables {
        let text = match given.get(name) {
            Some(Value::String(s)) => s.clone(),
            Some(n @ (Value::Number(_) | Value::Bool(_))) => n.to_string(),
            Some(Value::Null) | None => match &decl.default {
                Some(d) => d.clone(),
                None => {
                    missing.push(name.clone());
                    continue;
                }
            },
            Some(_) => {
                return Err(PromptError::Invalid(format!("variable `{name}` must be a string, a number or a boolean")));
            }
        };
        out.insert(name.clone(), text);
    }
    if !missing.is_empty() {
        return Err(PromptError::VariablesMissing { id: id.into(), version: v.number, missing });
    }
    Ok(out)
}

/// The instructions (as a `system` message), then the messages.
fn messages(body: &Body, values: &BTreeMap<String, String>) -> Vec<Value> {
    let value = |name: &str| values.get(name).map_or("", String::as_str);
    let mut out = Vec::with_capacity(body.messages.len() + 1);
    if let Some(i) = &body.instructions {
        out.push(serde_json::json!({ "role": "system", "content": i.render(value) }));
    }
    for (role, text) in &body.messages {
        out.push(serde_json::json!({ "role": role.as_str(), "content": text.render(value) }));
    }
    out
}

impl Applied {
    /// The body an attempt on `provider` sends when the version has an
    /// override for it: the hub body with the template's messages replaced
    /// by the override's rendering. `None`: send the body as it is (no
    /// override, or an input guardrail rewrote the template's messages —
    /// its rewrite stands rather than a text it never saw).
    pub fn for_provider(&self, provider: &str, hub: &RawObject<'_>) -> Option<Vec<u8>> {
        let i = *self.template.per_provider.get(provider)?;
        let variant = self.template.variants.get(i)?;
        let list: Vec<&RawValue> = hub.field("messages").ok().flatten()?;
        let n = self.rendered.len();
        let intact = list.len() >= n
            && list
                .iter()
                .zip(&self.rendered)
                .all(|(raw, want)| serde_json::from_str::<Value>(raw.get()).ok().as_ref() == Some(want));
        if !intact {
            self.kept_guarded.store(true, Ordering::Relaxed);
            tracing::warn!(
                prompt = %self.id,
                version = self.version,
                provider,
                "an input guardrail rewrote the template's messages; the provider's override is not used"
            );
            return None;
        }
        let mut out = String::from("[");
        for m in messages(&variant.body, &self.values) {
            if out.len() > 1 {
                out.push(',');
            }
            out.push_str(&m.to_string());
        }
        for raw in &list[n..] {
            if out.len() > 1 {
                out.push(',');
            }
            out.push_str(raw.get());
        }
        out.push(']');
        Some(hub.rebuild(&[("messages", &out)], &[]))
    }

    /// The provider whose override the answer was rendered with, if any.
    pub fn override_used<'p>(&self, provider: &'p str) -> Option<&'p str> {
        (self.template.per_provider.contains_key(provider) && !self.kept_guarded.load(Ordering::Relaxed))
            .then_some(provider)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry(yaml: &str) -> Registry {
        let sections: Vec<crate::config::file_prompts::PromptSection> = serde_saphyr::from_str(yaml).unwrap();
        let mut d = crate::config::diag::Diags::default();
        let mut w = Vec::new();
        let providers = [("openai-main", "openai"), ("claude", "anthropic")];
        let r = super::super::build::build(&sections, &Default::default(), &providers, &mut d, &mut w);
        assert!(d.0.is_empty(), "{:?}", d.0);
        r
    }

    const YAML: &str = r#"
- id: triage
  labels: { production: 1 }
  versions:
    - version: 1
      variables: { product: { default: Acme }, ticket: }
      instructions: "You triage tickets for {{product}}."
      messages: [{ role: user, content: "Ticket: {{ticket}}" }]
      overrides:
        - provider_type: anthropic
          instructions: "Claude, triage for {{product}}."
    - version: 2
      messages: [{ role: assistant, content: "v2" }]
"#;

    fn go(r: &Registry, body: &str) -> Result<Option<(Value, Applied)>, PromptError> {
        render(r, body.as_bytes()).map(|o| o.map(|x| (serde_json::from_slice(&x.body).unwrap(), x.applied)))
    }

    #[test]
    fn a_body_without_prompt_is_left_alone() {
        assert!(names_prompt(br#"{"prompt":{"id":"x"}}"#));
        assert!(!names_prompt(br#"{"input":"the word \"prompt\"","x":{"prompt":1}}"#));
        assert!(!names_prompt(br#"{"prompt":null}"#));
        let r = registry(YAML);
        assert!(go(&r, r#"{"model":"m","messages":[{"role":"user","content":"prompt"}]}"#).unwrap().is_none());
        assert!(go(&r, "not json \"prompt\"").unwrap().is_none());
    }

    #[test]
    fn the_template_goes_first_and_prompt_is_removed() {
        let r = registry(YAML);
        let (body, a) = go(
            &r,
            r#"{"model":"m","temperature":0.5,"prompt":{"id":"triage","variables":{"ticket":"VPN down"}},"messages":[{"role":"user","content":"hi"}]}"#,
        )
        .unwrap()
        .unwrap();
        assert_eq!((a.id.as_str(), a.version, a.label.as_deref()), ("triage", 1, None));
        assert!(body.get("prompt").is_none());
        assert_eq!(body["temperature"], 0.5);
        assert_eq!(
            body["messages"],
            serde_json::json!([
                { "role": "system", "content": "You triage tickets for Acme." },
                { "role": "user", "content": "Ticket: VPN down" },
                { "role": "user", "content": "hi" },
            ])
        );
    }

    #[test]
    fn version_label_and_string_version_select() {
        let r = registry(YAML);
        let v = |body: &str| go(&r, body).unwrap().unwrap().1.version;
        assert_eq!(v(r#"{"prompt":{"id":"triage","version":2}}"#), 2);
        assert_eq!(v(r#"{"prompt":{"id":"triage","version":"2"}}"#), 2);
        assert_eq!(v(r#"{"prompt":{"id":"triage","label":"production","variables":{"ticket":1}}}"#), 1);
        let (body, _) = go(&r, r#"{"model":"m","prompt":{"id":"triage","version":2}}"#).unwrap().unwrap();
        assert_eq!(body["messages"], serde_json::json!([{ "role": "assistant", "content": "v2" }]));
    }

    #[test]
    fn every_missing_and_unknown_variable_is_named() {
        let r = registry(YAML);
        let e = go(&r, r#"{"prompt":{"id":"triage"}}"#).unwrap_err();
        assert_eq!(e.code(), "prompt_variables_missing");
        assert!(e.to_string().contains("needs these variables: ticket"), "{e}");
        let e = go(&r, r#"{"prompt":{"id":"triage","variables":{"ticket":"x","tikcet":"y"}}}"#).unwrap_err();
        assert_eq!(e.code(), "prompt_variables_unknown");
        assert!(e.to_string().contains("tikcet") && e.to_string().contains("its variables: product, ticket"), "{e}");
        let e = go(&r, r#"{"prompt":{"id":"triage","variables":{"ticket":{"a":1}}}}"#).unwrap_err();
        assert!(e.to_string().contains("must be a string"), "{e}");
    }

    #[test]
    fn bad_references_say_what_exists() {
        let r = registry(YAML);
        let e = go(&r, r#"{"prompt":{"id":"nope"}}"#).unwrap_err();
        assert_eq!(e.to_string(), "prompt template `nope` does not exist; templates: triage");
        let e = go(&r, r#"{"prompt":{"id":"triage","version":1,"label":"production"}}"#).unwrap_err();
        assert!(e.to_string().contains("both"), "{e}");
        let e = go(&r, r#"{"prompt":{"id":"triage","verison":1}}"#).unwrap_err();
        assert!(e.to_string().contains("unknown field `verison`"), "{e}");
        let e = go(&r, r#"{"prompt":"triage"}"#).unwrap_err();
        assert_eq!(e.code(), "invalid_prompt");
        let e = go(&r, r#"{"prompt":{"id":"triage","version":2},"messages":{}}"#).unwrap_err();
        assert!(e.to_string().contains("not an array"), "{e}");
    }

    #[test]
    fn an_attempt_on_an_overridden_provider_gets_the_override() {
        let r = registry(YAML);
        let out = render(
            &r,
            br#"{"model":"m","prompt":{"id":"triage","variables":{"ticket":"T"}},"messages":[{"role":"user","content":"hi"}]}"#,
        )
        .unwrap()
        .unwrap();
        let hub = RawObject::parse(&out.body).unwrap();
        assert!(out.applied.for_provider("openai-main", &hub).is_none(), "no override for it");
        let swapped: Value = serde_json::from_slice(&out.applied.for_provider("claude", &hub).unwrap()).unwrap();
        assert_eq!(
            swapped["messages"],
            serde_json::json!([
                { "role": "system", "content": "Claude, triage for Acme." },
                { "role": "user", "content": "Ticket: T" },
                { "role": "user", "content": "hi" },
            ])
        );
        assert_eq!(out.applied.override_used("claude"), Some("claude"));
    }

    #[test]
    fn a_guardrail_rewrite_of_the_template_is_not_undone_by_an_override() {
        let r = registry(YAML);
        let out = render(&r, br#"{"model":"m","prompt":{"id":"triage","variables":{"ticket":"mail a@b.c"}}}"#)
            .unwrap()
            .unwrap();
        let redacted = String::from_utf8(out.body.to_vec()).unwrap().replace("a@b.c", "<EMAIL_1>");
        let hub = RawObject::parse(redacted.as_bytes()).unwrap();
        assert!(out.applied.for_provider("claude", &hub).is_none());
        assert_eq!(out.applied.override_used("claude"), None);
    }
}
