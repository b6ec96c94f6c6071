//! Redaction of logged bodies: secrets are masked before a body is stored.
//! Two rules, both cheap: values of JSON fields whose name says they hold a
//! credential (`api_key`, `authorization`, `password`, `secret`, `token`…),
//! and strings that look like a known key format (OpenAI/Anthropic `sk-…`,
//! tollgate `tg-…`, AWS `AKIA…`, Google `AIza…`, GitHub `ghp_…`, Slack `xox…`, JWTs).

use serde_json::Value;

/// A field is a credential when one of its name's parts (split on `_`, `-`,
/// `.`) is one of these — so `access_token` is, `max_tokens` is not.
const FIELD_PARTS: &[&str] =
    &["apikey", "authorization", "password", "passwd", "secret", "token", "credential", "credentials"];
/// …or when its name contains one of these.
const FIELD_NAMES: &[&str] = &["api_key", "api-key", "access_key", "private_key", "secret_key"];

fn is_credential_field(name: &str) -> bool {
    let key = name.to_ascii_lowercase();
    FIELD_NAMES.iter().any(|n| key.contains(n)) || key.split(['_', '-', '.']).any(|part| FIELD_PARTS.contains(&part))
}

const PREFIXES: &[&str] =
    &["sk-", "tg-", "AKIA", "ASIA", "AIza", "ghp_", "gho_", "github_pat_", "glpat-", "xoxb-", "xoxp-", "eyJ"];

/// Masks secrets in a JSON document; text that is not JSON is masked word by word.
pub fn body(raw: &str) -> String {
    match serde_json::from_str::<Value>(raw) {
        Ok(mut v) => {
            walk(&mut v);
            v.to_string()
        }
        Err(_) => text(raw),
    }
}

fn walk(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for (k, val) in map.iter_mut() {
                if is_credential_field(k) && !val.is_object() && !val.is_array() {
                    *val = Value::String("[REDACTED]".into());
                } else {
                    walk(val);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(walk),
        Value::String(s) => {
            let masked = text(s);
            if masked != *s {
                *s = masked;
            }
        }
        _ => {}
    }
}

/// Masks every word that starts like a known key format and is long enough to be one.
pub fn text(s: &str) -> String {
    let looks_secret = |w: &str| w.len() >= 16 && PREFIXES.iter().any(|p| w.starts_with(p));
    if !s.split(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | ',' | '(' | ')')).any(looks_secret) {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        if word.len() >= 16 && PREFIXES.iter().any(|p| word.starts_with(p)) {
            out.push_str("[REDACTED]");
        } else {
            out.push_str(word);
        }
        word.clear();
    };
    for c in s.chars() {
        if c.is_whitespace() || matches!(c, '"' | '\'' | ',' | '(' | ')') {
            flush(&mut word, &mut out);
            out.push(c);
        } else {
            word.push(c);
        }
    }
    flush(&mut word, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_masked_and_the_rest_kept() {
        let raw = r#"{"model":"m","messages":[{"role":"user","content":"my key is sk-proj-abcdefghijklmnopqrstuvwxyz, keep it"}],"api_key":"anything","nested":{"Authorization":"Bearer x"}}"#;
        let out = body(raw);
        assert!(!out.contains("sk-proj-abcdefghijklmnopqrstuvwxyz"), "{out}");
        assert!(out.contains("my key is [REDACTED], keep it"), "{out}");
        assert!(out.contains(r#""api_key":"[REDACTED]""#) && out.contains(r#""Authorization":"[REDACTED]""#), "{out}");
        assert!(out.contains(r#""model":"m""#));
        assert_eq!(text("short sk-1 stays"), "short sk-1 stays");
        assert_eq!(text("AKIAABCDEFGHIJKLMNOP."), "[REDACTED]");
        let kept = body(
            r#"{"max_tokens":5,"usage":{"prompt_tokens":3,"total_tokens":8},"access_token":"x","client_secret":"y"}"#,
        );
        assert!(kept.contains(r#""max_tokens":5"#) && kept.contains(r#""prompt_tokens":3"#), "{kept}");
        assert!(
            kept.contains(r#""access_token":"[REDACTED]""#) && kept.contains(r#""client_secret":"[REDACTED]""#),
            "{kept}"
        );
    }
}
