//! Typed, numbered placeholders. The same value gets the same placeholder
//! everywhere in one request (`<EMAIL_1>` in the prompt and in the history),
//! so a model can still reason about "the same address"; with `restore` the
//! originals go back into the answer, also across stream chunks.

use std::borrow::Cow;
use std::collections::HashMap;

use crate::Finding;

/// The placeholders handed out in one request, and what they stand for.
#[derive(Debug, Default, Clone)]
pub struct Placeholders {
    by_value: HashMap<(&'static str, String), String>,
    by_token: HashMap<String, String>,
    counts: HashMap<&'static str, usize>,
    longest: usize,
}

impl Placeholders {
    pub fn is_empty(&self) -> bool {
        self.by_token.is_empty()
    }

    /// The placeholder for `value` of `kind`, handing out the next number
    /// the first time a value is seen.
    pub fn token(&mut self, kind: &'static str, value: &str) -> &str {
        let key = (kind, value.to_owned());
        if !self.by_value.contains_key(&key) {
            let n = self.counts.entry(kind).or_insert(0);
            *n += 1;
            let token = format!("<{kind}_{n}>");
            self.longest = self.longest.max(token.len());
            self.by_token.insert(token.clone(), value.to_owned());
            self.by_value.insert(key.clone(), token);
        }
        &self.by_value[&key]
    }

    /// `text` with each finding replaced by its placeholder. `findings` must
    /// be in text order and non-overlapping (see [`crate::merge_overlapping`]).
    pub fn redact<'t>(&mut self, text: &'t str, findings: &[Finding]) -> Cow<'t, str> {
        if findings.is_empty() {
            return Cow::Borrowed(text);
        }
        let mut out = String::with_capacity(text.len());
        let mut at = 0;
        for f in findings {
            out.push_str(&text[at..f.start]);
            out.push_str(self.token(f.kind, &text[f.start..f.end]));
            at = f.end;
        }
        out.push_str(&text[at..]);
        Cow::Owned(out)
    }

    /// `text` with every known placeholder replaced by its original value.
    pub fn restore<'t>(&self, text: &'t str) -> Cow<'t, str> {
        if self.by_token.is_empty() || !text.contains('<') {
            return Cow::Borrowed(text);
        }
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(open) = rest.find('<') {
            out.push_str(&rest[..open]);
            let tail = &rest[open..];
            let close = tail[1..].find(['>', '<']).map(|i| i + 1);
            match close {
                Some(c) if tail.as_bytes()[c] == b'>' => {
                    let token = &tail[..=c];
                    match self.by_token.get(token) {
                        Some(value) => out.push_str(value),
                        None => out.push_str(token),
                    }
                    rest = &tail[c + 1..];
                }
                _ => {
                    out.push('<');
                    rest = &tail[1..];
                }
            }
        }
        out.push_str(rest);
        Cow::Owned(out)
    }

    /// How many trailing bytes of a stream chunk may be the start of a
    /// placeholder, and so must wait for the next chunk before restoring.
    pub fn held_back(&self, text: &str) -> usize {
        if self.by_token.is_empty() {
            return 0;
        }
        let window = &text[floor_boundary(text, text.len().saturating_sub(self.longest))..];
        match window.rfind('<') {
            Some(i) if !window[i..].contains('>') => window.len() - i,
            _ => 0,
        }
    }
}

/// The largest character boundary at or below `i`.
pub fn floor_boundary(text: &str, mut i: usize) -> usize {
    while i > 0 && !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(kind: &'static str, start: usize, end: usize) -> Finding {
        Finding { kind, start, end }
    }

    #[test]
    fn same_value_same_placeholder_numbered_per_kind() {
        let mut p = Placeholders::default();
        let text = "a@x.io, b@y.io, a@x.io and +44 20 7946 0958";
        let out = p.redact(text, &[f("EMAIL", 0, 6), f("EMAIL", 8, 14), f("EMAIL", 16, 22), f("PHONE", 27, 43)]);
        assert_eq!(out, "<EMAIL_1>, <EMAIL_2>, <EMAIL_1> and <PHONE_1>");
        assert_eq!(p.restore(&out), text);
    }

    #[test]
    fn restore_leaves_unknown_and_broken_tokens() {
        let mut p = Placeholders::default();
        p.token("EMAIL", "a@x.io");
        assert_eq!(p.restore("<b> <EMAIL_9> <<EMAIL_1>> <EMAIL_1"), "<b> <EMAIL_9> <a@x.io> <EMAIL_1");
    }

    #[test]
    fn held_back_covers_a_split_placeholder() {
        let mut p = Placeholders::default();
        p.token("CREDIT_CARD", "4111111111111111");
        assert_eq!(p.held_back("card <CREDIT_C"), "<CREDIT_C".len());
        assert_eq!(p.held_back("card <CREDIT_CARD_1> ok"), 0);
        assert_eq!(p.held_back("a < b and more text than any placeholder is long"), 0);
        assert_eq!(Placeholders::default().held_back("x <"), 0);
    }

    proptest::proptest! {
        #[test]
        fn restore_inverts_redact(prefix in "\\PC{0,20}", value in "[a-z]{1,8}@[a-z]{1,8}\\.io", suffix in "\\PC{0,20}") {
            let text = format!("{prefix}{value}{suffix}");
            let mut p = Placeholders::default();
            let start = prefix.len();
            let out = p.redact(&text, &[f("EMAIL", start, start + value.len())]).into_owned();
            proptest::prop_assert!(!out.contains(&value));
            // Only when the surrounding text holds no placeholder-like token of its own.
            if !prefix.contains('<') && !suffix.contains('<') {
                proptest::prop_assert_eq!(p.restore(&out), text);
            }
        }
    }
}
