//! `prompts:` from the file, plus the admin API's versions and labels,
//! into the runtime `Registry`. Problems in the file are errors at their
//! `file:line:column`; the admin API's entries were checked when they were
//! made, so what a later config change breaks in them (a provider removed,
//! a label's version gone) is a warning and that part is left out — a
//! stored entry never stops the file from loading.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::text::{Text, is_name};
use super::{Body, Label, Registry, Source, Stored, Template, Variable, Variant, Version, is_id, is_label};
use crate::config::diag::Diags;
use crate::config::file::ProviderType;
use crate::config::file_prompts::{PromptMessageSection, PromptSection, PromptVersionSection};
use crate::config::loc::Loc;

/// Where problems go: the file's diagnostics (with positions), and always
/// the list a stored entry's warnings or the admin API's answer are made of.
struct Sink<'a> {
    file: Option<&'a mut Diags>,
    problems: Vec<String>,
}

impl Sink<'_> {
    fn at<T>(&mut self, loc: &Loc<T>, message: String, hint: &str) {
        if let Some(d) = self.file.as_deref_mut() {
            d.at(loc, message.clone(), hint);
        }
        self.problems.push(message);
    }
}

/// `providers`: every configured provider's (name, type).
pub fn build(
    sections: &[PromptSection],
    stored: &Stored,
    providers: &[(&str, &str)],
    d: &mut Diags,
    warnings: &mut Vec<String>,
) -> Registry {
    let mut reg = Registry::default();
    for s in sections {
        if !is_id(&s.id) {
            d.at(&s.id, format!("prompt id `{}` is not usable", s.id.value), "use letters, digits, `-`, `_` and `.`");
            continue;
        }
        if reg.templates.contains_key(&s.id.value) {
            d.at(&s.id, format!("prompt `{}` is defined twice", s.id.value), "give each template one entry");
            continue;
        }
        let mut t = Template {
            id: s.id.value.clone(),
            description: s.description.clone(),
            versions: BTreeMap::new(),
            labels: BTreeMap::new(),
        };
        let mut first_at: HashMap<u32, u64> = HashMap::new();
        for vs in &s.versions {
            if *vs.version == 0 {
                d.at(&vs.version, format!("prompt `{}`: versions start at 1", t.id), "");
                continue;
            }
            if let Some(line) = first_at.insert(*vs.version, vs.version.line) {
                d.at(
                    &vs.version,
                    format!("prompt `{}` defines version {} twice (first on line {line})", t.id, *vs.version),
                    "versions are immutable: give the new text the next number",
                );
                continue;
            }
            if let Some(v) =
                version(&t.id, vs, Source::Config, providers, &mut Sink { file: Some(&mut *d), problems: Vec::new() })
            {
                t.versions.insert(v.number, Arc::new(v));
            }
        }
        reg.templates.insert(t.id.clone(), t);
    }
    add_stored(&mut reg, sections, stored, providers, d, warnings);
    // Labels after the stored versions (a label may name one); the admin
    // API's labels after the file's, so a promotion wins.
    for s in sections {
        let Some(t) = reg.templates.get_mut(&s.id.value) else { continue };
        for (name, n) in &s.labels {
            if !is_label(name) {
                d.at(
                    n,
                    format!("prompt `{}`: label `{name}` is not usable", t.id),
                    "use lower-case letters, digits, `-` and `_`",
                );
            } else if !t.versions.contains_key(&n.value) {
                let known: Vec<String> = t.versions.keys().map(u32::to_string).collect();
                d.at(
                    n,
                    format!("prompt `{}`: label `{name}` points at version {}, which does not exist", t.id, n.value),
                    format!("versions: {}", known.join(", ")),
                );
            } else {
                t.labels.insert(name.clone(), Label { version: n.value, source: Source::Config });
            }
        }
    }
    add_stored_labels(&mut reg, stored, warnings);
    for s in sections {
        if s.versions.is_empty() && reg.templates.get(&s.id.value).is_some_and(|t| t.versions.is_empty()) {
            d.at(
                &s.id,
                format!("prompt `{}` has no versions", s.id.value),
                "add `versions: [{ version: 1, messages: [...] }]`",
            );
        }
    }
    reg
}

fn add_stored(
    reg: &mut Registry,
    sections: &[PromptSection],
    stored: &Stored,
    providers: &[(&str, &str)],
    d: &mut Diags,
    warnings: &mut Vec<String>,
) {
    for sv in &stored.versions {
        let what = format!("admin prompt version `{}` {}", sv.prompt_id, sv.version);
        let section = match serde_saphyr::from_str::<PromptVersionSection>(&sv.body) {
            Ok(s) => s,
            Err(e) => {
                warnings.push(format!("{what}: {}; it is left out", e.without_snippet()));
                continue;
            }
        };
        let source = Source::Admin { at: sv.created_at, by: sv.created_by.clone() };
        let mut sink = Sink { file: None, problems: Vec::new() };
        let built = version(&sv.prompt_id, &section, source, providers, &mut sink);
        warnings.extend(sink.problems.into_iter().map(|p| format!("{what}: {p}; it is left out")));
        let Some(v) = built else { continue };
        let t = reg.templates.entry(sv.prompt_id.clone()).or_insert_with(|| Template {
            id: sv.prompt_id.clone(),
            description: None,
            versions: BTreeMap::new(),
            labels: BTreeMap::new(),
        });
        if t.versions.contains_key(&sv.version) {
            // The file took a number the admin API had used: the file is
            // what changed, so it is the file that is wrong — unless it
            // holds the same text (a version copied into the file).
            let in_file = sections
                .iter()
                .filter(|s| s.id.value == sv.prompt_id)
                .flat_map(|s| &s.versions)
                .find(|vs| vs.version.value == sv.version);
            let same =
                t.versions.get(&sv.version).is_some_and(|f| super::diff::describe(f) == super::diff::describe(&v));
            if let (Some(vs), false) = (in_file, same) {
                d.at(
                    &vs.version,
                    format!(
                        "prompt `{}` version {} was already created through the admin API (by {}) with another text",
                        sv.prompt_id, sv.version, sv.created_by
                    ),
                    "versions are immutable: number this one after the latest (GET /admin/prompts/<id>)",
                );
            }
            continue;
        }
        t.versions.insert(sv.version, Arc::new(v));
    }
}

fn add_stored_labels(reg: &mut Registry, stored: &Stored, warnings: &mut Vec<String>) {
    for sl in &stored.labels {
        match reg.templates.get_mut(&sl.prompt_id) {
            Some(t) if t.versions.contains_key(&sl.version) => {
                let source = Source::Admin { at: sl.updated_at, by: sl.updated_by.clone() };
                t.labels.insert(sl.label.clone(), Label { version: sl.version, source });
            }
            _ => warnings.push(format!(
                "admin label `{}` of prompt `{}` points at version {}, which no longer exists; it is left out",
                sl.label, sl.prompt_id, sl.version
            )),
        }
    }
}

/// One version, or `None` when it has errors (each reported).
fn version(
    id: &str,
    vs: &PromptVersionSection,
    source: Source,
    providers: &[(&str, &str)],
    sink: &mut Sink<'_>,
) -> Option<Version> {
    let n = vs.version.value;
    let here = format!("prompt `{id}` version {n}");
    let before = sink.problems.len();
    let mut variables = BTreeMap::new();
    for (name, decl) in &vs.variables {
        if !is_name(name) {
            sink.at(
                &vs.version,
                format!("{here}: variable name `{name}` is not usable"),
                "start with a letter or `_`; then letters, digits, `_`",
            );
        }
        let decl = decl.clone().unwrap_or_default();
        variables.insert(name.clone(), Variable { default: decl.default, description: decl.description });
    }
    let text = |loc: &Loc<String>, sink: &mut Sink<'_>| -> Option<Text> {
        match Text::parse(loc) {
            Ok(t) => {
                for var in t.vars().filter(|v| !variables.contains_key(*v)) {
                    sink.at(
                        loc,
                        format!("{here} uses `{{{{{var}}}}}`, which its `variables` do not declare"),
                        &format!(
                            "declare it: `variables: {{ {var}: {{}} }}`, with a `default` if requests may leave it out"
                        ),
                    );
                }
                Some(t)
            }
            Err(e) => {
                sink.at(loc, format!("{here}: {e}"), "");
                None
            }
        }
    };
    let base = body(vs.instructions.as_ref(), Some(&vs.messages), &text, sink);
    if vs.instructions.is_none() && vs.messages.is_empty() {
        sink.at(
            &vs.version,
            format!("{here} has neither `instructions` nor `messages`"),
            "add the text the template should put first",
        );
    }
    let mut variants = Vec::new();
    for o in &vs.overrides {
        let at = o
            .provider
            .as_ref()
            .or(o.provider_type.as_ref())
            .map_or((vs.version.line, vs.version.column), |l| (l.line, l.column));
        let at = Loc { value: (), line: at.0, column: at.1 };
        if o.provider.is_none() && o.provider_type.is_none() {
            sink.at(
                &at,
                format!("{here}: an override names neither `provider` nor `provider_type`"),
                "e.g. `provider_type: anthropic`",
            );
        }
        if o.instructions.is_none() && o.messages.is_none() {
            sink.at(&at, format!("{here}: an override sets neither `instructions` nor `messages`"), "");
        }
        if let Some(p) = &o.provider
            && !providers.iter().any(|(name, _)| *name == p.value)
        {
            let names: Vec<&str> = providers.iter().map(|(n, _)| *n).collect();
            sink.at(
                p,
                format!("{here}: override provider `{}` is not configured", p.value),
                &format!("providers: {}", names.join(", ")),
            );
        }
        if let Some(t) = &o.provider_type
            && serde_json::from_value::<ProviderType>(serde_json::Value::String(t.value.clone())).is_err()
        {
            sink.at(
                t,
                format!("{here}: `{}` is not a provider type", t.value),
                "use a `type` from `providers`, e.g. anthropic, openai, gemini, bedrock",
            );
        }
        let own = body(o.instructions.as_ref(), o.messages.as_ref(), &text, sink);
        let merged = Body {
            instructions: if o.instructions.is_some() { own.instructions.clone() } else { base.instructions.clone() },
            messages: if o.messages.is_some() { own.messages.clone() } else { base.messages.clone() },
        };
        variants.push(Variant {
            provider: o.provider.as_ref().map(|p| p.value.clone()),
            provider_type: o.provider_type.as_ref().map(|t| t.value.clone()),
            sets_instructions: o.instructions.is_some(),
            sets_messages: o.messages.is_some(),
            own,
            body: merged,
        });
    }
    if sink.problems.len() > before {
        return None;
    }
    // A provider named outright wins over its type; the first entry wins in each.
    let mut per_provider = HashMap::new();
    for (name, kind) in providers {
        let by_name = variants.iter().position(|v| {
            v.provider.as_deref() == Some(*name) && v.provider_type.as_deref().is_none_or(|t| t == *kind)
        });
        let by_type =
            || variants.iter().position(|v| v.provider.is_none() && v.provider_type.as_deref() == Some(*kind));
        if let Some(i) = by_name.or_else(by_type) {
            per_provider.insert(name.to_string(), i);
        }
    }
    Some(Version {
        number: n,
        description: vs.description.clone(),
        source,
        variables,
        body: base,
        variants,
        per_provider,
    })
}

fn body(
    instructions: Option<&Loc<String>>,
    messages: Option<&Vec<PromptMessageSection>>,
    text: &impl Fn(&Loc<String>, &mut Sink<'_>) -> Option<Text>,
    sink: &mut Sink<'_>,
) -> Body {
    Body {
        instructions: instructions.and_then(|i| text(i, sink)),
        messages: messages
            .into_iter()
            .flatten()
            .filter_map(|m| text(&m.content, sink).map(|t| (m.role.value, t)))
            .collect(),
    }
}

/// Checks one version for the admin API, as the file's would be checked;
/// the problems, one per line, when it would not load.
pub fn check(id: &str, vs: &PromptVersionSection, providers: &[(&str, &str)]) -> Result<(), Vec<String>> {
    let mut sink = Sink { file: None, problems: Vec::new() };
    match version(id, vs, Source::Config, providers, &mut sink) {
        Some(_) => Ok(()),
        None => Err(sink.problems),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROVIDERS: [(&str, &str); 2] = [("openai-main", "openai"), ("claude", "anthropic")];

    fn load(yaml: &str, stored: &Stored) -> (Registry, Vec<String>, Vec<String>) {
        let sections: Vec<PromptSection> = serde_saphyr::from_str(yaml).unwrap();
        let (mut d, mut w) = (Diags::default(), Vec::new());
        let r = build(&sections, stored, &PROVIDERS, &mut d, &mut w);
        let errors = d.0.iter().map(|e| format!("{}:{}: {}", e.line, e.column, e.message)).collect();
        (r, errors, w)
    }

    #[test]
    fn undeclared_variables_duplicates_and_dangling_labels_are_errors_at_their_line() {
        let (_, errors, _) = load(
            r#"
- id: t
  labels: { production: 9 }
  versions:
    - version: 1
      messages: [{ role: user, content: "Hi {{name}}" }]
    - version: 1
      messages: [{ role: user, content: "x" }]
"#,
            &Stored::default(),
        );
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert!(errors[0].starts_with("6:41: prompt `t` version 1 uses `{{name}}`"), "{errors:?}");
        assert!(errors[1].starts_with("7:16: prompt `t` defines version 1 twice (first on line 5)"), "{errors:?}");
        assert!(errors[2].starts_with("3:25: prompt `t`: label `production` points at version 9"), "{errors:?}");
    }

    #[test]
    fn overrides_name_configured_providers_and_known_types() {
        let (_, errors, _) = load(
            r#"
- id: t
  versions:
    - version: 1
      instructions: "x"
      overrides:
        - { provider: nope, instructions: "y" }
        - { provider_type: antropic, instructions: "y" }
        - { provider_type: anthropic }
"#,
            &Stored::default(),
        );
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert!(errors[0].contains("override provider `nope` is not configured"), "{errors:?}");
        assert!(errors[1].contains("`antropic` is not a provider type"), "{errors:?}");
        assert!(errors[2].contains("sets neither"), "{errors:?}");
    }

    #[test]
    fn a_provider_named_outright_wins_over_its_type() {
        let (r, errors, _) = load(
            r#"
- id: t
  versions:
    - version: 1
      instructions: "base"
      messages: [{ role: user, content: "m" }]
      overrides:
        - { provider_type: anthropic, instructions: "by type" }
        - { provider: claude, messages: [{ role: user, content: "by name" }] }
"#,
            &Stored::default(),
        );
        assert!(errors.is_empty(), "{errors:?}");
        let v = &r.templates["t"].versions[&1];
        let b = v.body_for("claude");
        assert_eq!(b.instructions.as_ref().unwrap().source, "base", "the override keeps what it does not set");
        assert_eq!(b.messages[0].1.source, "by name");
        assert_eq!(v.body_for("openai-main").instructions.as_ref().unwrap().source, "base");
    }

    #[test]
    fn admin_versions_and_labels_join_the_file() {
        let stored = Stored {
            versions: vec![super::super::StoredVersion {
                prompt_id: "t".into(),
                version: 2,
                body: r#"{"version": 2, "messages": [{"role": "user", "content": "two"}]}"#.into(),
                created_at: 1,
                created_by: "admin".into(),
            }],
            labels: vec![
                super::super::StoredLabel {
                    prompt_id: "t".into(),
                    label: "production".into(),
                    version: 2,
                    updated_at: 2,
                    updated_by: "admin".into(),
                },
                super::super::StoredLabel {
                    prompt_id: "t".into(),
                    label: "old".into(),
                    version: 7,
                    updated_at: 2,
                    updated_by: "admin".into(),
                },
            ],
        };
        let yaml = "- id: t\n  labels: { production: 1 }\n  versions: [{ version: 1, messages: [{ role: user, content: one }] }]\n";
        let (r, errors, warnings) = load(yaml, &stored);
        assert!(errors.is_empty(), "{errors:?}");
        let t = &r.templates["t"];
        assert_eq!(t.versions.keys().copied().collect::<Vec<_>>(), [1, 2]);
        assert_eq!(t.labels["production"].version, 2, "the admin API's promotion wins");
        assert!(warnings[0].contains("label `old`"), "{warnings:?}");

        // The file taking a number the admin API used, with another text, is the file's error.
        let yaml2 = "- id: t\n  versions:\n    - { version: 1, messages: [{ role: user, content: one }] }\n    - { version: 2, messages: [{ role: user, content: other }] }\n";
        let (_, errors, _) = load(yaml2, &stored);
        assert!(errors.iter().any(|e| e.contains("already created through the admin API")), "{errors:?}");
    }

    #[test]
    fn a_version_checked_for_the_admin_api_lists_its_problems() {
        let vs: PromptVersionSection =
            serde_saphyr::from_str(r#"{"version": 3, "instructions": "{{a}} {{b | x}}"}"#).unwrap();
        let problems = check("t", &vs, &PROVIDERS).unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("is not a placeholder"), "{problems:?}");
        let vs: PromptVersionSection = serde_saphyr::from_str(r#"{"version": 3, "instructions": "{{a}}"}"#).unwrap();
        assert!(check("t", &vs, &PROVIDERS).unwrap_err()[0].contains("`{{a}}`, which its `variables` do not declare"));
    }
}
