//! One template text, parsed once at load into literal runs and `{{name}}`
//! placeholders, so a request only concatenates. The syntax is deliberately
//! small: a placeholder is a variable name (spaces around it allowed), `\{{`
//! is a literal `{{`, and anything else between `{{` and `}}` is refused at
//! load — a template written for a richer engine (filters, conditionals)
//! fails loudly instead of reaching a model with the braces in it.

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Lit(String),
    Var(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Text {
    parts: Vec<Part>,
    /// As written, for the admin API and diffs.
    pub source: String,
}

/// A variable name: a letter or `_`, then letters, digits or `_`.
pub fn is_name(s: &str) -> bool {
    let mut b = s.bytes();
    b.next().is_some_and(|c| c.is_ascii_alphabetic() || c == b'_') && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

impl Text {
    pub fn parse(source: &str) -> Result<Text, String> {
        let mut parts = Vec::new();
        let mut lit = String::new();
        let mut rest = source;
        while let Some(i) = rest.find("{{") {
            if rest[..i].ends_with('\\') {
                lit.push_str(&rest[..i - 1]);
                lit.push_str("{{");
                rest = &rest[i + 2..];
                continue;
            }
            lit.push_str(&rest[..i]);
            let after = &rest[i + 2..];
            let Some(end) = after.find("}}") else {
                return Err(format!(
                    "`{{{{` at `{}` is never closed; write `{{{{name}}}}`, or `\\{{{{` for a literal `{{{{`",
                    snippet(&rest[i..])
                ));
            };
            let name = after[..end].trim();
            if !is_name(name) {
                return Err(format!(
                    "`{{{{{}}}}}` is not a placeholder; a placeholder is a variable name such as `{{{{customer_name}}}}` \
                     (no filters or expressions); write `\\{{{{` for a literal `{{{{`",
                    &after[..end]
                ));
            }
            if !lit.is_empty() {
                parts.push(Part::Lit(std::mem::take(&mut lit)));
            }
            parts.push(Part::Var(name.to_string()));
            rest = &after[end + 2..];
        }
        lit.push_str(rest);
        if !lit.is_empty() {
            parts.push(Part::Lit(lit));
        }
        Ok(Text { parts, source: source.to_string() })
    }

    /// The variable names used, in order of first use.
    pub fn vars(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Var(v) => Some(v.as_str()),
            Part::Lit(_) => None,
        })
    }

    /// The text with every placeholder replaced by `value(name)`; the
    /// caller has checked that every variable has a value.
    pub fn render<'v>(&self, value: impl Fn(&str) -> &'v str) -> String {
        let mut out = String::with_capacity(self.source.len());
        for p in &self.parts {
            match p {
                Part::Lit(s) => out.push_str(s),
                Part::Var(v) => out.push_str(value(v)),
            }
        }
        out
    }
}

fn snippet(s: &str) -> &str {
    match s.char_indices().nth(24) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_render_with_their_values() {
        let t = Text::parse("Hi {{name}}, re: {{ topic }}. {{name}}!").unwrap();
        assert_eq!(t.vars().collect::<Vec<_>>(), ["name", "topic", "name"]);
        let out = t.render(|v| if v == "name" { "Ada" } else { "billing" });
        assert_eq!(out, "Hi Ada, re: billing. Ada!");
    }

    #[test]
    fn a_value_is_not_read_as_a_template() {
        let t = Text::parse("say {{x}}").unwrap();
        assert_eq!(t.render(|_| "{{x}}"), "say {{x}}");
    }

    #[test]
    fn escaped_braces_are_literal() {
        let t = Text::parse(r#"JSON: \{{"a": 1}} and {{v}}"#).unwrap();
        assert_eq!(t.vars().collect::<Vec<_>>(), ["v"]);
        assert_eq!(t.render(|_| "ok"), r#"JSON: {{"a": 1}} and ok"#);
    }

    #[test]
    fn bad_placeholders_are_refused_with_the_fix() {
        let e = Text::parse("{{ name | upper }}").unwrap_err();
        assert!(e.contains("`{{ name | upper }}` is not a placeholder"), "{e}");
        assert!(Text::parse("{{1x}}").is_err());
        assert!(Text::parse("{{}}").is_err());
        let e = Text::parse("open {{name and more").unwrap_err();
        assert!(e.contains("never closed"), "{e}");
    }

    #[test]
    fn plain_text_has_no_variables() {
        let t = Text::parse("no braces { here }").unwrap();
        assert_eq!(t.vars().count(), 0);
        assert_eq!(t.render(|_| unreachable!()), "no braces { here }");
    }

    #[test]
    fn names_are_identifiers() {
        assert!(is_name("customer_name") && is_name("_x") && is_name("a1"));
        assert!(!is_name("") && !is_name("1a") && !is_name("a-b") && !is_name("a.b"));
    }
}
