//! Checks shared by the PII and secrets detectors: check digits (Luhn,
//! IBAN mod-97), Shannon entropy, base64, word boundaries, a fast byte
//! scan, and the overlap resolution both detectors finish with.

use aho_corasick::AhoCorasick;

use crate::Finding;

/// Luhn over ASCII digits: catches every single-digit typo and most
/// transpositions, which is what makes a 16-digit run a card number.
pub(crate) fn luhn(digits: &[u8]) -> bool {
    let mut sum = 0;
    for (k, &d) in digits.iter().rev().enumerate() {
        let mut v = u32::from(d.wrapping_sub(b'0'));
        if v > 9 {
            return false;
        }
        if k % 2 == 1 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    sum % 10 == 0
}

/// A card number: 13–19 digits, Luhn-valid, with an issuer prefix that
/// comes in that length, written in one run or in `groups` of four (Amex
/// 4-6-5, Diners 4-6-4) with a shorter last one.
pub(crate) fn card_number(digits: &[u8], groups: &[usize]) -> bool {
    let grouping = match groups {
        [_] | [4, 6, 5] | [4, 6, 4] => true,
        [init @ .., last] => init.iter().all(|&s| s == 4) && (1..=4).contains(last),
        [] => false,
    };
    grouping && (13..=19).contains(&digits.len()) && card_issuer(digits) && luhn(digits)
}

/// Visa, Mastercard, Amex, Discover, JCB, Diners, UnionPay and Mir prefixes and lengths.
fn card_issuer(d: &[u8]) -> bool {
    let n = d.len();
    let p = |k: usize| d[..k].iter().fold(0u32, |v, &c| v * 10 + u32::from(c - b'0'));
    let long = (16..=19).contains(&n);
    match d[0] {
        b'4' => matches!(n, 13 | 16 | 19),
        b'5' => (51..=55).contains(&p(2)) && n == 16,
        b'2' => ((2221..=2720).contains(&p(4)) && n == 16) || ((2200..=2204).contains(&p(4)) && long),
        b'3' => {
            (matches!(p(2), 34 | 37) && n == 15)
                || ((3528..=3589).contains(&p(4)) && long)
                || (((300..=305).contains(&p(3)) || p(3) == 309 || matches!(p(2), 36 | 38 | 39))
                    && (14..=19).contains(&n))
        }
        b'6' => (p(4) == 6011 || (644..=649).contains(&p(3)) || matches!(p(2), 62 | 65)) && long,
        _ => false,
    }
}

/// ISO 13616 mod-97 over a compact, upper-case IBAN (country, check
/// digits, BBAN): the remainder of the rearranged number must be 1.
pub(crate) fn iban_mod97(iban: &[u8]) -> bool {
    if iban.len() < 5 {
        return false;
    }
    let mut r: u32 = 0;
    for &c in iban[4..].iter().chain(&iban[..4]) {
        r = match c {
            b'0'..=b'9' => (r * 10 + u32::from(c - b'0')) % 97,
            b'A'..=b'Z' => (r * 100 + u32::from(c - b'A') + 10) % 97,
            _ => return false,
        };
    }
    r == 1
}

/// IBAN length per country (SWIFT registry plus the partial-IBAN
/// countries), as `CCnn` entries; an unknown country is no IBAN.
const IBAN_LENGTHS: &[u8] = b"AD24AE23AL28AO25AT20AZ28BA20BE16BF28BG22BH22BI27BJ28BR29BY28CF27CG27CH21CI28CM27\
CR22CV25CY28CZ24DE22DJ27DK18DO28DZ26EE20EG29ES24FI18FK18FO18FR27GA27GB22GE22GI23GL18GQ27GR27GT28GW25\
HN28HR21HU28IE22IL23IQ23IR26IS26IT27JO30KM27KW30KZ20LB28LC32LI21LT20LU20LV21LY25MA28MC27MD24ME22MG27\
MK19ML28MN20MR27MT31MU30MZ25NE28NI28NL18NO15OM23PK24PL28PS29PT25QA29RO24RS22RU33SA24SC31SD18SE24SI19\
SK24SM27SN28SO23ST25SV28TD27TG28TL23TN24TR26UA29VA22VG24XK20YE30";

pub(crate) fn iban_length(country: &[u8]) -> Option<usize> {
    IBAN_LENGTHS
        .chunks_exact(4)
        .find(|e| &e[..2] == country)
        .map(|e| usize::from(e[2] - b'0') * 10 + usize::from(e[3] - b'0'))
}

/// Shannon entropy in bits per byte.
pub(crate) fn entropy(s: &[u8]) -> f64 {
    let mut counts = [0u32; 256];
    for &c in s {
        counts[usize::from(c)] += 1;
    }
    let n = s.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / n;
            -p * p.log2()
        })
        .sum()
}

/// Base64 in either alphabet (standard or URL-safe), padding optional.
pub(crate) fn b64_decode(s: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for &c in s {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            b'=' => break,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

/// A character that continues a word: a match must not start or end next
/// to one. Scripts written without spaces (CJK and after) do not glue, or
/// `カード4111111111111111` would hide its card number.
pub(crate) fn is_word(c: char) -> bool {
    c == '_' || c.is_ascii_alphanumeric() || (c.is_alphanumeric() && u32::from(c) < 0x2E80)
}

pub(crate) fn char_before(text: &str, i: usize) -> Option<char> {
    text.get(..i)?.chars().next_back()
}

pub(crate) fn char_after(text: &str, i: usize) -> Option<char> {
    text.get(i..)?.chars().next()
}

/// `start..end` is not glued to a longer word on either side.
pub(crate) fn bounded(text: &str, start: usize, end: usize) -> bool {
    !char_before(text, start).is_some_and(is_word) && !char_after(text, end).is_some_and(is_word)
}

/// Words that, shortly before a value, say what it is ("born" before a date).
pub(crate) struct Context(AhoCorasick);

impl Context {
    pub(crate) fn new(words: &[&str]) -> Context {
        let words = AhoCorasick::builder().ascii_case_insensitive(true).build(words);
        Context(words.expect("fixed literal words always build"))
    }

    /// One of the words occurs, in any case, within the `span` bytes before `at`.
    pub(crate) fn before(&self, text: &str, at: usize, span: usize) -> bool {
        self.0.is_match(text.as_bytes().get(at.saturating_sub(span)..at).unwrap_or_default())
    }
}

/// The first index at or after `from` whose byte satisfies `hit`. Prose
/// rarely holds a trigger byte, so whole 32-byte blocks are tested with a
/// branch-free OR (which the compiler vectorizes) before looking closer.
#[inline]
pub(crate) fn find_byte(b: &[u8], from: usize, hit: impl Fn(u8) -> bool) -> Option<usize> {
    let rest = b.get(from..)?;
    let mut skipped = 0;
    for block in rest.chunks_exact(32) {
        if block.iter().fold(false, |any, &c| any | hit(c)) {
            break;
        }
        skipped += 32;
    }
    rest[skipped..].iter().position(|&c| hit(c)).map(|p| from + skipped + p)
}

/// Findings in text order without overlaps: of two overlapping findings the
/// one with the lower `rank` stays (the more specific detector), and at equal
/// rank the longer one.
pub(crate) fn resolve(mut found: Vec<Finding>, rank: impl Fn(&'static str) -> usize) -> Vec<Finding> {
    found.sort_by(|a, b| a.start.cmp(&b.start).then(b.end.cmp(&a.end)));
    let beats = |f: &Finding, g: &Finding| (rank(f.kind), g.end - g.start) < (rank(g.kind), f.end - f.start);
    let mut out: Vec<Finding> = Vec::with_capacity(found.len());
    'next: for f in found {
        while let Some(last) = out.last() {
            if f.start >= last.end {
                break;
            }
            if !beats(&f, last) {
                continue 'next;
            }
            out.pop();
        }
        out.push(f);
    }
    out
}

/// What the detectors' tests share: case tables, invariants, timing.
#[cfg(test)]
pub(crate) mod testing {
    use crate::Finding;

    /// Checks a table with one case a line: `KIND | text` where each
    /// `[[value]]` in the text must be found as `KIND`, and nothing else;
    /// `- | text` for a text where nothing may be found. Text is trimmed.
    pub(crate) fn check_table(table: &str, find: impl Fn(&str) -> Vec<Finding>) {
        for line in table.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let (kind, mut rest) = line.split_once(" | ").expect("a table line is `KIND | text`");
            let (mut text, mut want) = (String::new(), Vec::new());
            while let Some(mut open) = rest.find("[[") {
                // `[[[v]]]`: a bracket, then the marked value.
                open += rest[open + 2..].chars().take_while(|&c| c == '[').count();
                let close = open + rest[open..].find("]]").expect("`[[` closes");
                text.push_str(&rest[..open]);
                text.push_str(&rest[open + 2..close]);
                want.push((kind.trim().to_owned(), rest[open + 2..close].to_owned()));
                rest = &rest[close + 2..];
            }
            text.push_str(rest);
            let got: Vec<_> =
                find(&text).iter().map(|f| (f.kind.to_owned(), text[f.start..f.end].to_owned())).collect();
            assert_eq!(got, want, "in {text:?}");
        }
    }

    /// Findings are in order, apart, non-empty and on character boundaries.
    pub(crate) fn well_formed(text: &str, found: &[Finding]) -> Result<(), proptest::test_runner::TestCaseError> {
        for w in found.windows(2) {
            proptest::prop_assert!(w[0].end <= w[1].start, "{found:?}");
        }
        for f in found {
            proptest::prop_assert!(f.start < f.end && text.is_char_boundary(f.start) && text.is_char_boundary(f.end));
        }
        Ok(())
    }

    /// About 10 KB each of English prose with numbers, personal data and
    /// credentials in it, and of the same prose without them, for the timing tests.
    pub(crate) fn sample_texts() -> [(&'static str, String); 2] {
        const PARAGRAPHS: &[&str] = &[
            "The quarterly review covered the migration of the billing service to the new cluster. Most of the \
             work went as planned, although the team spent two extra days on the database cut-over because the \
             replication lag was higher than expected. In 2023 we moved 14 services; this year the goal is 30, \
             and the budget grew by 12% to cover the extra hardware. ",
            "Customer feedback was mostly positive. One user wrote that the dashboard finally loads in under a \
             second, and another asked whether the export could include the invoice number and the due date. \
             Support tickets fell from 240 to 185 per week, and the median time to first response is now 3 hours. ",
            "For the follow-up, please contact Jane Doe at jane.doe@example.com or on +44 20 7946 0958. The \
             refund of $1,250.00 for order 88231 was sent on 12/03/2024. The vendor's API key is stored in the \
             vault; do not paste it into chat, as happened last month with token=ghp_abcdefghijklmnopqrstuvwxyz0123456789. ",
            "Next steps: finish the load tests, write the runbook, and schedule the game day for the on-call \
             rotation. The staging environment at 10.20.30.40 will be rebuilt on Friday; expect about an hour \
             of downtime between 09:00 and 10:00 UTC. Version 2.4.1 ships after that. ",
            "A note on naming: we agreed to call the new queue the settlement queue rather than the payments \
             queue, because it also carries refunds and chargebacks. The old name stays as an alias for one \
             release so that nobody's scripts break overnight, and then it goes away for good. ",
        ];
        let repeat = |paragraphs: &[&str]| {
            let mut text = String::new();
            while text.len() < 10 * 1024 {
                paragraphs.iter().for_each(|p| text.push_str(p));
            }
            text
        };
        let plain = [PARAGRAPHS[0], PARAGRAPHS[1], PARAGRAPHS[4]];
        [("mixed prose with values", repeat(PARAGRAPHS)), ("plain prose", repeat(&plain))]
    }

    /// The best of several timed batches, in microseconds per KB of `text`.
    pub(crate) fn micros_per_kb(text: &str, find: impl Fn(&str) -> usize) -> f64 {
        let runs = 300;
        let best = (0..9)
            .map(|_| {
                let t = std::time::Instant::now();
                for _ in 0..runs {
                    std::hint::black_box(find(std::hint::black_box(text)));
                }
                t.elapsed().as_secs_f64()
            })
            .fold(f64::MAX, f64::min);
        best * 1e6 / f64::from(runs) / (text.len() as f64 / 1024.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luhn_and_mod97() {
        assert!(luhn(b"4111111111111111"));
        assert!(!luhn(b"4111111111111112"));
        assert!(!luhn(b"41111111111x1111"));
        assert!(iban_mod97(b"GB82WEST12345698765432"));
        assert!(!iban_mod97(b"GB83WEST12345698765432"));
        assert_eq!(iban_length(b"DE"), Some(22));
        assert_eq!(iban_length(b"NO"), Some(15));
        assert_eq!(iban_length(b"US"), None);
    }

    #[test]
    fn entropy_and_base64() {
        assert_eq!(entropy(b"aaaa"), 0.0);
        assert!((entropy(b"abcd") - 2.0).abs() < 1e-9);
        assert_eq!(b64_decode(b"eyJhbGciOiJIUzI1NiJ9").as_deref(), Some(&b"{\"alg\":\"HS256\"}"[..]));
        assert_eq!(b64_decode(b"a*b"), None);
    }

    #[test]
    fn find_byte_finds_in_and_after_blocks() {
        let mut text = vec![b'a'; 100];
        text[70] = b'7';
        assert_eq!(find_byte(&text, 0, |c| c.is_ascii_digit()), Some(70));
        assert_eq!(find_byte(&text, 71, |c| c.is_ascii_digit()), None);
        assert_eq!(find_byte(&text, 500, |c| c.is_ascii_digit()), None);
    }

    #[test]
    fn resolve_prefers_rank_then_length() {
        let f = |kind, start, end| Finding { kind, start, end };
        let rank = |k: &str| usize::from(k == "WEAK");
        let out =
            resolve(vec![f("WEAK", 0, 10), f("A", 2, 5), f("A", 8, 12), f("WEAK", 20, 30), f("WEAK", 22, 24)], rank);
        assert_eq!(out, vec![f("A", 2, 5), f("A", 8, 12), f("WEAK", 20, 30)]);
    }
}
