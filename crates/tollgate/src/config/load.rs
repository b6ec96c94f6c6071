//! Reading config text into a snapshot: `${ENV}` interpolation and the
//! first (serde) phase here, the second phase in `validate.rs`. Start-up,
//! `tollgate check` and every reload go through these same functions.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use super::diag::Diagnostic;
use super::file::ConfigFile;
use super::validate::build_snapshot;
use crate::config::snapshot::Snapshot;
use crate::digest::sha256;
use crate::state::Shared;

/// Every problem found in one config source.
#[derive(Debug)]
pub struct ConfigErrors {
    pub origin: String,
    pub diags: Vec<Diagnostic>,
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.diags.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            if d.line == 0 {
                write!(f, "{}: error: {}", self.origin, d.message)?;
            } else {
                write!(f, "{}:{}:{}: error: {}", self.origin, d.line, d.column, d.message)?;
            }
            if let Some(h) = &d.hint {
                write!(f, "\n    hint: {h}")?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// The process environment as interpolation properties.
pub fn env_properties() -> HashMap<String, String> {
    std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))).collect()
}

/// Phase one: YAML → `ConfigFile`, with `${NAME}` replaced inside scalars
/// (so a value can never change the document's structure). A missing
/// variable is an error naming it.
pub fn parse(text: &str, props: HashMap<String, String>) -> Result<ConfigFile, Vec<Diagnostic>> {
    if text.trim().is_empty() {
        return Ok(ConfigFile::default());
    }
    let missing = missing_variables(text, &props);
    if !missing.is_empty() {
        return Err(missing);
    }
    // Compose syntax interpolates quoted scalars too (`"${KEY}"` is the
    // usual way to write a secret); it would quietly turn an unset variable
    // into "", which `missing_variables` has already refused.
    let mut opts = serde_saphyr::Options::default().with_properties(props);
    opts.property_syntax = serde_saphyr::options::PropertySyntax::DockerCompose;
    serde_saphyr::from_str_with_options::<ConfigFile>(text, opts).map_err(|e| {
        let (line, column) = e.location().map_or((1, 1), |l| (l.line(), l.column()));
        let mut message = bare_message(&e);
        // With interpolation on, the parser words some errors generically
        // ("an interpolated field"); the same spot parsed without
        // interpolation names the actual key or value.
        if let Err(plain) = serde_saphyr::from_str::<ConfigFile>(text)
            && plain.location().map(|l| (l.line(), l.column())) == Some((line, column))
        {
            message = bare_message(&plain);
        }
        vec![Diagnostic { line, column, hint: hint_for(&message), message }]
    })
}

/// Every variable reference whose variable is unset, with its position:
/// `${NAME}` and bare `$NAME` (which the interpolator would otherwise turn
/// into "" without a word — a password like `pa$word` must be written
/// `pa$$word`). Forms with a default (`${NAME:-x}`) are left to the
/// interpolator; `$$` is an escaped dollar; comment lines are skipped.
fn missing_variables(text: &str, props: &HashMap<String, String>) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim_start().starts_with('#') {
            continue;
        }
        let bytes = line.as_bytes();
        let mut at = 0;
        while let Some(pos) = line[at..].find('$') {
            let start = at + pos;
            at = start + 1;
            if bytes.get(start + 1) == Some(&b'$') {
                at = start + 2; // `$$` is a literal dollar
                continue;
            }
            let braced = bytes.get(start + 1) == Some(&b'{');
            let rest = &line[start + 1 + usize::from(braced)..];
            let name_len = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(rest.len());
            let name = &rest[..name_len];
            let plain = if braced { rest[name_len..].starts_with('}') } else { true };
            let valid = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
            if plain && valid && !props.contains_key(name) {
                let written = if braced { format!("${{{name}}}") } else { format!("${name}") };
                out.push(Diagnostic {
                    line: i as u64 + 1,
                    column: line[..start].chars().count() as u64 + 1,
                    message: format!("environment variable `{name}` (written `{written}`) is not set"),
                    hint: Some(format!(
                        "export {name}=… before starting tollgate, write ${{{name}:-default}}, or $$ for a literal dollar sign"
                    )),
                });
            }
        }
    }
    out
}

/// serde-saphyr prefixes its message with the position; we print our own.
fn bare_message(e: &serde_saphyr::Error) -> String {
    let full = e.without_snippet().to_string();
    let first = full.lines().next().unwrap_or("").trim();
    let first = first.strip_prefix("error: ").unwrap_or(first);
    match first.strip_prefix("line ") {
        Some(rest) => rest.split_once(": ").map_or(first, |(_, m)| m).to_string(),
        None => first.to_string(),
    }
}

fn hint_for(msg: &str) -> Option<String> {
    if msg.contains("missing property") {
        Some("export the variable before starting tollgate, or write the value in the file".into())
    } else if msg.contains("unknown field") {
        Some("check the spelling against docs/config.md or config.schema.json".into())
    } else if msg.contains("unknown variant") {
        Some("see docs/config.md for the accepted values".into())
    } else {
        None
    }
}

pub fn load_text(
    text: &str,
    origin: &str,
    version: u64,
    shared: &Shared,
    props: HashMap<String, String>,
) -> Result<Snapshot, ConfigErrors> {
    let errors = |diags| ConfigErrors { origin: origin.to_string(), diags };
    let file = parse(text, props).map_err(errors)?;
    let digest = hex::encode(&sha256(text.as_bytes())[..6]);
    build_snapshot(file, origin, digest, version, shared).map_err(errors)
}

pub fn load_path(path: &Path, version: u64, shared: &Shared) -> Result<Snapshot, ConfigErrors> {
    let origin = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ConfigErrors {
        origin: origin.clone(),
        diags: vec![Diagnostic {
            line: 0,
            column: 0,
            message: format!("cannot read the config file: {e}"),
            hint: None,
        }],
    })?;
    load_text(&text, &origin, version, shared, env_properties())
}

/// The configuration `tollgate serve` and `tollgate demo` use without a
/// file: the built-in mock provider, plus OpenAI when `OPENAI_API_KEY` is set.
/// Provider keys the embedded defaults look for, and the provider each adds.
pub const DEFAULT_PROVIDER_KEYS: [&str; 3] = ["OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY"];

/// The built-in config, plus a provider for each key in `keys` (names from
/// `DEFAULT_PROVIDER_KEYS` that are set in the environment). Anthropic and
/// Gemini list no models, so any of their model names is passed through.
pub fn embedded_defaults(keys: &[&str]) -> String {
    let mut s = String::from(include_str!("defaults.yaml"));
    for k in keys {
        let (name, kind) = match *k {
            "OPENAI_API_KEY" => ("openai", "openai"),
            "ANTHROPIC_API_KEY" => ("anthropic", "anthropic"),
            "GEMINI_API_KEY" => ("gemini", "gemini"),
            _ => continue,
        };
        s.push_str(&format!("  - name: {name}\n    type: {kind}\n    api_key: \"${{{k}}}\"\n"));
        if name == "openai" {
            // Listed, so the bare names resolve (`gpt-4o-mini` → `openai/gpt-4o-mini`).
            s.push_str(
                "    models:\n      - { name: gpt-4o-mini }\n      - { name: gpt-4o }\n      - { name: text-embedding-3-small }\n",
            );
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str, props: &[(&str, &str)]) -> Result<Snapshot, ConfigErrors> {
        let props = props.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        load_text(text, "t.yaml", 1, &Shared::default(), props)
    }

    #[test]
    fn unknown_keys_are_named_with_their_position() {
        let e = load("server:\n  listen: 127.0.0.1:1\n  lisen: x\n", &[]).unwrap_err();
        let s = e.to_string();
        assert!(s.starts_with("t.yaml:3:3: error: unknown field `lisen`"), "{s}");
    }

    #[test]
    fn errors_stay_precise_in_files_that_use_variables() {
        let e = load("auth:\n  master_key: \"${MK}\"\nserver:\n  lisen: x\n", &[("MK", "abcdefgh1")]).unwrap_err();
        assert!(e.to_string().contains("t.yaml:4:3: error: unknown field `lisen`"), "{e}");
    }

    #[test]
    fn missing_env_is_named() {
        let e = load("auth:\n  master_key: ${NOPE_NOT_SET}\n", &[]).unwrap_err();
        assert!(e.to_string().contains("`NOPE_NOT_SET` (written `${NOPE_NOT_SET}`) is not set"), "{e}");
        assert_eq!((e.diags[0].line, e.diags[0].column), (2, 15));
    }

    #[test]
    fn quoted_and_defaulted_variables_interpolate() {
        let s = load(
            "auth:\n  master_key: \"${MK}\"\n  keys:\n    - { name: k, key: '${NOT_SET:-fallback-key}' }\n# ${IN_COMMENT}\n",
            &[("MK", "quoted-master-key")],
        )
        .unwrap();
        assert_eq!(s.auth.master, Some(sha256(b"quoted-master-key")));
        assert!(s.auth.keys.contains_key(&sha256(b"fallback-key")));
    }

    #[test]
    fn a_bare_dollar_name_is_checked_and_double_dollar_is_literal() {
        let e = load("auth:\n  master_key: \"pa$word123\"\n", &[]).unwrap_err();
        assert!(
            e.to_string().contains("t.yaml:2:18: error: environment variable `word123` (written `$word123`)"),
            "{e}"
        );
        let s = load("auth:\n  master_key: \"pa$$word123\"\n", &[]).unwrap();
        assert_eq!(s.auth.master, Some(sha256(b"pa$word123")));
        assert!(load("auth:\n  master_key: \"costs $5 each\"\n", &[]).is_ok());
    }

    #[test]
    fn env_values_cannot_change_structure() {
        let s = load(
            "auth:\n  master_key: ${MK}\nproviders:\n  - { name: m, type: mock, models: [{name: echo}] }\n",
            &[("MK", "abc: def\nproviders: []")],
        )
        .unwrap();
        assert_eq!(s.models.listed, vec!["m/echo".to_string()]);
        assert_eq!(s.auth.master, Some(sha256(b"abc: def\nproviders: []")));
    }

    #[test]
    fn phase_two_reports_every_error_with_positions() {
        let text = "server:\n  listen: nope\nauth:\n  keys:\n    - { name: a, key: short }\n    - { name: a, key_sha256: zz }\nproviders:\n  - { name: p, type: groq }\n  - { name: p, type: mock }\n  - { name: b, type: bedrock }\n";
        let e = load(text, &[]).unwrap_err();
        let s = e.to_string();
        for needle in [
            "t.yaml:2:11: error: server.listen `nope`",
            "shorter than 8",
            "duplicate key name `a`",
            "key_sha256 must be 64 hex",
            "needs an api_key",
            "duplicate provider name `p`",
            "type `bedrock` needs",
        ] {
            assert!(s.contains(needle), "missing {needle:?} in:\n{s}");
        }
    }

    #[test]
    fn embedded_defaults_load() {
        let s = load(
            &embedded_defaults(&["OPENAI_API_KEY"]),
            &[("TOLLGATE_MASTER_KEY", "tg-test-key-123"), ("OPENAI_API_KEY", "sk-x")],
        )
        .unwrap();
        assert!(s.models.resolve("mock/echo").is_some());
        assert!(s.models.resolve("openai/gpt-4o-mini").is_some());
        assert!(s.models.resolve("gpt-4o-mini").is_some(), "unique bare names resolve");
        assert!(s.models.resolve("echo").is_some());
    }
}
