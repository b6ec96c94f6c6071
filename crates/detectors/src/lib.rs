//! The detectors behind tollgate's built-in guardrails, as pure functions
//! over text: no I/O, no allocation beyond the findings, compiled once (at
//! config load) and shared by every request.
//!
//! - [`pii`]: personal data (email, phone, card numbers with Luhn, IBAN with
//!   mod-97, national ids, IP addresses, dates of birth in context, …).
//! - [`secrets`]: credentials (cloud keys, platform tokens, private keys,
//!   JWTs, high-entropy values in `key=value` context).
//! - [`injection`]: prompt-injection heuristics, weighted by where the text
//!   came from (a user turn, or a tool's output).
//! - [`redact`]: typed, numbered placeholders (`<EMAIL_1>`) that are
//!   consistent within a request and can be put back into an answer.
//!
//! Offsets in findings are byte offsets into the scanned `&str`, always on
//! character boundaries.

mod checksum;
pub mod injection;
pub mod pii;
pub mod redact;
pub mod secrets;

/// One detected value: what it is and where it sits in the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Finding {
    /// The entity or secret type, upper snake case (`EMAIL`, `AWS_ACCESS_KEY`).
    pub kind: &'static str,
    /// Byte offset of the first byte of the value.
    pub start: usize,
    /// Byte offset one past the last byte of the value.
    pub end: usize,
}

/// Keeps the longest of overlapping findings, in text order: two detectors
/// may claim the same span (a JWT inside a `token=` value), and a redaction
/// must replace each byte at most once.
pub fn merge_overlapping(mut findings: Vec<Finding>) -> Vec<Finding> {
    findings.sort_by(|a, b| a.start.cmp(&b.start).then(b.end.cmp(&a.end)));
    let mut out: Vec<Finding> = Vec::with_capacity(findings.len());
    for f in findings {
        match out.last_mut() {
            Some(last) if f.start < last.end => {
                if f.end - f.start > last.end - last.start {
                    *last = f;
                }
            }
            _ => out.push(f),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlapping_findings_keep_the_longest() {
        let f = |kind, start, end| Finding { kind, start, end };
        let merged = merge_overlapping(vec![f("B", 5, 8), f("A", 0, 4), f("C", 3, 12), f("D", 20, 22)]);
        assert_eq!(merged, vec![f("C", 3, 12), f("D", 20, 22)]);
    }
}
