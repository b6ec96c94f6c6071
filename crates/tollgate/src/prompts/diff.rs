//! Two versions compared line by line for `GET /admin/prompts/{id}/diff`.
//!
//! A version is first written as plain text (`describe`), one line per
//! line of each text, so a changed sentence in a long system prompt shows
//! as that line, not as one changed JSON string. The diff is the classic
//! longest-common-subsequence table: prompts are at most a few hundred
//! lines, so its O(n·m) cost is nothing here, and forty lines of code
//! spare the gateway a dependency. Past `MAX_CELLS` the table would grow
//! large; the diff then shows every line removed and added (still
//! correct, only less minimal).

use std::fmt::Write;

use super::text::Text;
use super::{Body, Version};

const MAX_CELLS: usize = 4_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Equal,
    Delete,
    Insert,
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Equal => "equal",
            Op::Delete => "delete",
            Op::Insert => "insert",
        }
    }
}

/// A version as the text the diff compares.
pub fn describe(v: &Version) -> String {
    let mut out = String::new();
    if let Some(d) = &v.description {
        let _ = writeln!(out, "description: {d}");
    }
    if !v.variables.is_empty() {
        out.push_str("variables:\n");
        for (name, var) in &v.variables {
            let _ = match &var.default {
                Some(d) => writeln!(out, "  {name} = {d:?}"),
                None => writeln!(out, "  {name} (required)"),
            };
        }
    }
    body(&mut out, "", &v.body);
    for o in &v.variants {
        let mut who = Vec::new();
        if let Some(p) = &o.provider {
            who.push(format!("provider {p}"));
        }
        if let Some(t) = &o.provider_type {
            who.push(format!("provider_type {t}"));
        }
        let _ = writeln!(out, "override for {}:", who.join(", "));
        let own = Body {
            instructions: o.own.instructions.clone().filter(|_| o.sets_instructions),
            messages: if o.sets_messages { o.own.messages.clone() } else { Vec::new() },
        };
        body(&mut out, "  ", &own);
    }
    out
}

fn body(out: &mut String, indent: &str, b: &Body) {
    if let Some(i) = &b.instructions {
        let _ = writeln!(out, "{indent}instructions:");
        text(out, indent, i);
    }
    for (role, t) in &b.messages {
        let _ = writeln!(out, "{indent}message ({}):", role.as_str());
        text(out, indent, t);
    }
}

fn text(out: &mut String, indent: &str, t: &Text) {
    for line in t.source.lines() {
        let _ = writeln!(out, "{indent}  | {line}");
    }
}

/// The line diff of `a` into `b`.
pub fn lines<'a>(a: &'a str, b: &'a str) -> Vec<(Op, &'a str)> {
    let a: Vec<&str> = a.lines().collect();
    let b: Vec<&str> = b.lines().collect();
    // Common head and tail need no table.
    let head = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let tail = a[head..].iter().rev().zip(b[head..].iter().rev()).take_while(|(x, y)| x == y).count();
    let (am, bm) = (&a[head..a.len() - tail], &b[head..b.len() - tail]);
    let mut out: Vec<(Op, &str)> = a[..head].iter().map(|l| (Op::Equal, *l)).collect();
    if am.len().saturating_mul(bm.len()) > MAX_CELLS {
        out.extend(am.iter().map(|l| (Op::Delete, *l)));
        out.extend(bm.iter().map(|l| (Op::Insert, *l)));
    } else {
        // lcs[i][j]: the longest common subsequence of am[i..] and bm[j..].
        let w = bm.len() + 1;
        let mut lcs = vec![0u32; (am.len() + 1) * w];
        for i in (0..am.len()).rev() {
            for j in (0..bm.len()).rev() {
                lcs[i * w + j] = if am[i] == bm[j] {
                    lcs[(i + 1) * w + j + 1] + 1
                } else {
                    lcs[(i + 1) * w + j].max(lcs[i * w + j + 1])
                };
            }
        }
        let (mut i, mut j) = (0, 0);
        while i < am.len() && j < bm.len() {
            if am[i] == bm[j] {
                out.push((Op::Equal, am[i]));
                i += 1;
                j += 1;
            } else if lcs[(i + 1) * w + j] >= lcs[i * w + j + 1] {
                out.push((Op::Delete, am[i]));
                i += 1;
            } else {
                out.push((Op::Insert, bm[j]));
                j += 1;
            }
        }
        out.extend(am[i..].iter().map(|l| (Op::Delete, *l)));
        out.extend(bm[j..].iter().map(|l| (Op::Insert, *l)));
    }
    out.extend(a[a.len() - tail..].iter().map(|l| (Op::Equal, *l)));
    out
}

/// A unified diff (`---`/`+++` headers, `@@` hunks with three lines of
/// context), as `diff -u` and code review tools show it.
pub fn unified(from: &str, to: &str, ops: &[(Op, &str)]) -> String {
    const CONTEXT: usize = 3;
    let mut out = format!("--- {from}\n+++ {to}\n");
    let changed: Vec<usize> = ops.iter().enumerate().filter(|(_, (op, _))| *op != Op::Equal).map(|(i, _)| i).collect();
    let mut k = 0;
    while k < changed.len() {
        let start = changed[k].saturating_sub(CONTEXT);
        let mut end = changed[k];
        while k + 1 < changed.len() && changed[k + 1] <= end + 2 * CONTEXT + 1 {
            k += 1;
            end = changed[k];
        }
        let end = (end + CONTEXT + 1).min(ops.len());
        // Line numbers of the hunk's first line in each side (1-based).
        let before = |upto: usize, skip: Op| ops[..upto].iter().filter(|(op, _)| *op != skip).count();
        let (a0, b0) = (before(start, Op::Insert), before(start, Op::Delete));
        let hunk = &ops[start..end];
        let a_len = hunk.iter().filter(|(op, _)| *op != Op::Insert).count();
        let b_len = hunk.iter().filter(|(op, _)| *op != Op::Delete).count();
        let _ =
            writeln!(out, "@@ -{},{a_len} +{},{b_len} @@", a0 + usize::from(a_len > 0), b0 + usize::from(b_len > 0));
        for (op, line) in hunk {
            let mark = match op {
                Op::Equal => ' ',
                Op::Delete => '-',
                Op::Insert => '+',
            };
            let _ = writeln!(out, "{mark}{line}");
        }
        k += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn show(ops: &[(Op, &str)]) -> String {
        ops.iter()
            .map(|(op, l)| {
                format!(
                    "{}{l}",
                    match op {
                        Op::Equal => ' ',
                        Op::Delete => '-',
                        Op::Insert => '+',
                    }
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn a_changed_line_is_one_delete_and_one_insert() {
        let d = lines("a\nb\nc\nd", "a\nB\nc\nd\ne");
        assert_eq!(show(&d), " a\n-b\n+B\n c\n d\n+e");
    }

    #[test]
    fn identical_texts_have_no_changes_and_empty_sides_work() {
        assert!(lines("x\ny", "x\ny").iter().all(|(op, _)| *op == Op::Equal));
        assert_eq!(show(&lines("", "a\nb")), "+a\n+b");
        assert_eq!(show(&lines("a", "")), "-a");
        assert_eq!(unified("v1", "v2", &lines("x", "x")), "--- v1\n+++ v2\n");
    }

    #[test]
    fn the_diff_is_minimal_around_moved_lines() {
        let d = lines("a\nb\nc\nx\ny", "b\nc\na\nx\ny");
        assert_eq!(d.iter().filter(|(op, _)| *op != Op::Equal).count(), 2, "{}", show(&d));
    }

    #[test]
    fn hunks_carry_context_and_line_numbers() {
        let a: String = (1..=20).map(|i| format!("l{i}\n")).collect();
        let b = a.replace("l10\n", "ten\n");
        let u = unified("t@1", "t@2", &lines(&a, &b));
        assert_eq!(u, "--- t@1\n+++ t@2\n@@ -7,7 +7,7 @@\n l7\n l8\n l9\n-l10\n+ten\n l11\n l12\n l13\n");
    }

    #[test]
    fn far_apart_changes_make_two_hunks() {
        let a: String = (1..=30).map(|i| format!("l{i}\n")).collect();
        let b = a.replace("l2\n", "two\n").replace("l28\n", "x\n");
        let u = unified("a", "b", &lines(&a, &b));
        assert_eq!(u.matches("@@ ").count(), 2, "{u}");
    }
}
