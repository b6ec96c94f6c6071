//! Model-name globs (`prod/*`, `openai-main/gpt-4o*`). Only `*` (any run of
//! characters, `/` included) and `?` (one character) are special: model
//! names are short, so a tiny backtracking matcher beats pulling in a regex
//! engine for this.

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    pattern: Box<str>,
    literal: bool,
}

impl Glob {
    pub fn new(pattern: &str) -> Glob {
        Glob { literal: !pattern.contains(['*', '?']), pattern: pattern.into() }
    }

    pub fn as_str(&self) -> &str {
        &self.pattern
    }

    pub fn matches(&self, text: &str) -> bool {
        if self.literal {
            return *self.pattern == *text;
        }
        wildcard(self.pattern.as_bytes(), text.as_bytes())
    }
}

/// Iterative wildcard match with single-star backtracking: linear in practice
/// and never recursive, so hostile model names cannot blow the stack.
fn wildcard(p: &[u8], t: &[u8]) -> bool {
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == b'?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::Glob;

    #[test]
    fn globs_match_model_names() {
        assert!(Glob::new("prod/*").matches("prod/engineering-assistant"));
        assert!(!Glob::new("prod/*").matches("dev/x"));
        assert!(Glob::new("openai-main/gpt-4o*").matches("openai-main/gpt-4o-mini"));
        assert!(Glob::new("*").matches("anything/at/all"));
        assert!(Glob::new("a?c").matches("abc"));
        assert!(!Glob::new("a?c").matches("ac"));
        assert!(Glob::new("local/echo").matches("local/echo"));
        assert!(!Glob::new("local/echo").matches("local/echo2"));
        assert!(Glob::new("*-mini").matches("openai/gpt-4o-mini"));
        assert!(!Glob::new("*-mini").matches("openai/gpt-4o-mini-x"));
    }
}
