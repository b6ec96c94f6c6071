//! Personal data.
//!
//! Two cheap passes find the places worth a closer look, so prose without
//! numbers costs a vectorized byte scan and nothing else: one for `@`
//! (emails), one for digits and `:` (everything else). Around a digit the
//! detector reads a *window* of alphanumeric groups joined by short
//! separators (`4111 1111 1111 1111`, `(415) 555-2671`, `12 April 1990`)
//! and tries each entity on it, strictest first; check digits and shape
//! rules decide, not a regex. Every match stands alone as a word: nothing
//! is found inside a longer alphanumeric token.
//!
//! The entities:
//! - `EMAIL`: `local@domain.tld`, Unicode letters allowed, at least two
//!   domain labels and an alphabetic (or `xn--`) TLD. Not `@handles`.
//! - `PHONE`: `+` (or `00`) and 8–15 digits (`+14155552671`, `+44 20 7946
//!   0958`, `+44 (0)20 …`, `0049 30 …`); US `(415) 555-2671`, `415-555-2671`,
//!   `415.555.2671`, `1-800-…` (with spaces only, `415 555 2671`, area and
//!   exchange must start 2–9); national numbers with a trunk `0` in 2–5
//!   groups, 9–12 digits (`020 7946 0958`, `07700 900123`, `030 1234567`,
//!   `030/1234567`, `01 23 45 67 89`). A bare run of 10–11 digits only after
//!   a word like "phone" or "call". Not dates, versions, numbers glued to
//!   more digits by `-`, `.` or `/`, runs over 15 digits, or 7-digit locals.
//! - `CREDIT_CARD`: 13–19 digits, in one run or in groups of 4 (Amex 4-6-5,
//!   Diners 4-6-4) joined by one kind of separator, Luhn-valid, with a known
//!   issuer prefix and length (Visa, Mastercard 51–55 and 2221–2720, Amex,
//!   Discover, JCB, Diners, UnionPay, Mir).
//! - `IBAN`: country, check digits, BBAN; compact or in groups of 4; the
//!   country's registered length and mod-97 must both hold.
//! - `US_SSN`: `AAA-GG-SSSS`, `AAA GG SSSS` or with dots; not area 000, 666
//!   or 9xx, group 00, serial 0000, or one repeated digit. Nine bare digits
//!   only after "SSN" or "social security".
//! - `US_ITIN`: the SSN shape with area 9xx and an ITIN group (50–65,
//!   70–88, 90–92, 94–99).
//! - `IP_ADDRESS`: dotted IPv4 with octets up to 255, not part of a longer
//!   dotted run (`1.2.3.4.5`) nor after "version"; IPv6 in full, compressed
//!   or IPv4-suffixed form, checked by `Ipv6Addr` and holding a digit
//!   (so `dead::beef` and `std::fs` are not addresses).
//! - `DATE_OF_BIRTH`: `1990-04-12`, `12/04/1990`, `04.12.1990`, `12/04/90`,
//!   `12 April 1990`, `12. April 1990`, `April 12, 1990`, only within 48
//!   bytes after "born", "DOB", "birth", "geb." and the like. Any other date
//!   is no personal data on its own.
//! - `UK_NINO`: `AB123456C` or `AB 12 34 56 C`, with the prefix letters HMRC
//!   allows and a suffix A–D.
//! - `MAC_ADDRESS`: six hex pairs joined by `:` or `-`, or Cisco `0011.2233.4455`.
//!
//! Left out: passports, driving licences and most national ids have no
//! check digit and no shape that sets them apart from order numbers, so a
//! pattern for them would mostly flag the wrong thing.

use std::net::Ipv6Addr;

use crate::Finding;
use crate::checksum::{
    Context, bounded, card_number, char_before, find_byte, iban_length, iban_mod97, is_word, resolve,
};

/// Every entity this detector knows, as named in config (`entities:`).
#[rustfmt::skip]
pub const ENTITIES: &[&str] = &[
    "EMAIL", "PHONE", "CREDIT_CARD", "IBAN", "US_SSN", "IP_ADDRESS", "DATE_OF_BIRTH", "US_ITIN", "UK_NINO",
    "MAC_ADDRESS",
];

/// Which entity keeps an overlapping span: the better the validation, the earlier.
#[rustfmt::skip]
const RANK: &[&str] = &[
    "EMAIL", "IBAN", "CREDIT_CARD", "UK_NINO", "MAC_ADDRESS", "US_SSN", "US_ITIN", "IP_ADDRESS", "DATE_OF_BIRTH",
    "PHONE",
];

const DOB_WORDS: &[&str] = &["born", "dob", "d.o.b", "birth", "geb.", "geboren", "geburt", "naissance", "nacimiento"];
const SSN_WORDS: &[&str] = &["ssn", "social security", "soc sec", "itin", "taxpayer"];
const PHONE_WORDS: &[&str] =
    &["phone", "tel", "mobile", "cell", "call", "fax", "whatsapp", "sms", "contact", "dial", "handy", "mob"];
const VERSION_WORDS: &[&str] = &["version", "ver.", "release", "build", "firmware"];
#[rustfmt::skip]
const MONTHS: &[&str] = &[
    "january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
    "november", "december", "januar", "februar", "mai", "juni", "juli", "oktober", "dezember",
    "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "okt", "nov", "dec", "dez",
];

/// A compiled PII detector for a set of entities.
pub struct Pii {
    entities: Vec<&'static str>,
    words: Words,
}

/// The context words some entities need before them.
struct Words {
    dob: Context,
    ssn: Context,
    phone: Context,
    version: Context,
}

impl Pii {
    /// `entities` empty means all of [`ENTITIES`]; an unknown name is an
    /// error that names it and lists the known ones.
    pub fn new(entities: &[String]) -> Result<Pii, String> {
        let mut chosen = Vec::new();
        for e in entities {
            match ENTITIES.iter().find(|k| k.eq_ignore_ascii_case(e)) {
                Some(k) => chosen.push(*k),
                None => return Err(format!("unknown PII entity `{e}`; known: {}", ENTITIES.join(", "))),
            }
        }
        if chosen.is_empty() {
            chosen = ENTITIES.to_vec();
        }
        let words = Words {
            dob: Context::new(DOB_WORDS),
            ssn: Context::new(SSN_WORDS),
            phone: Context::new(PHONE_WORDS),
            version: Context::new(VERSION_WORDS),
        };
        Ok(Pii { entities: chosen, words })
    }

    /// The PII in `text`, in text order, non-overlapping.
    pub fn find(&self, text: &str) -> Vec<Finding> {
        let mut found = Vec::new();
        // Emails are looked for even when not wanted: digits inside an
        // address are not a phone number of their own.
        emails(text, &mut found);
        if self.entities.iter().any(|e| *e != "EMAIL") {
            numbers(text, &self.words, &mut found);
        }
        let mut out = resolve(found, |k| RANK.iter().position(|r| *r == k).unwrap_or(RANK.len()));
        out.retain(|f| self.entities.contains(&f.kind));
        out
    }
}

fn emails(text: &str, out: &mut Vec<Finding>) {
    let mut from = 0;
    while let Some(at) = find_byte(text.as_bytes(), from, |c| c == b'@') {
        from = at + 1;
        if let Some((start, end)) = email_at(text, at) {
            out.push(Finding { kind: "EMAIL", start, end });
            from = end;
        }
    }
}

fn email_at(text: &str, at: usize) -> Option<(usize, usize)> {
    let mut start = at;
    for (i, c) in text[..at].char_indices().rev() {
        if at - i > 64 || !(is_word(c) || matches!(c, '.' | '%' | '+' | '-')) {
            break;
        }
        start = i;
    }
    while text[start..at].starts_with(['.', '-', '+']) {
        start += 1;
    }
    if start == at || text[..at].ends_with('.') {
        return None;
    }
    let rest = &text[at + 1..];
    let run = rest.find(|c: char| !((is_word(c) && c != '_') || c == '-' || c == '.')).unwrap_or(rest.len());
    let domain = rest[..run].trim_end_matches(['.', '-']);
    let labels_ok =
        domain.split('.').all(|l| !l.is_empty() && l.len() <= 63 && !l.starts_with('-') && !l.ends_with('-'));
    let tld = domain.rsplit('.').next().unwrap_or_default();
    let tld_ok = tld.len() >= 2 && (tld.chars().all(char::is_alphabetic) || tld.starts_with("xn--"));
    let end = at + 1 + domain.len();
    (labels_ok && tld_ok && domain.contains('.') && domain.len() <= 253 && bounded(text, start, end))
        .then_some((start, end))
}

#[derive(Clone, Copy)]
struct Tok {
    s: usize,
    e: usize,
    digits: usize,
    /// Digits in this group and all after it in the window.
    rest: usize,
}

fn numbers(text: &str, words: &Words, out: &mut Vec<Finding>) {
    let b = text.as_bytes();
    let mut toks = Vec::new();
    let (mut from, mut floor) = (0, 0);
    while let Some(p) = find_byte(b, from, |c| c.wrapping_sub(b'0') <= 10) {
        if b[p] == b':' {
            from = match colon_at(text, p) {
                Some(f) => {
                    out.push(f);
                    floor = floor.max(f.end);
                    f.end
                }
                None => p + 1,
            };
            continue;
        }
        let start = window_start(b, p, floor);
        let end = tokenize(b, start, &mut toks);
        Window { text, b, t: &toks, words }.scan(out);
        from = end.max(p + 1);
        floor = from;
    }
}

/// The start of the group holding the digit at `p`, never before `floor`
/// (what earlier windows read), so each byte is tokenized once.
fn window_start(b: &[u8], p: usize, floor: usize) -> usize {
    let mut s = p;
    while s > floor && b[s - 1].is_ascii_alphanumeric() {
        s -= 1;
    }
    // A MAC address may open with pairs of letters (`AA-BB-0C-…`).
    while s >= floor + 3
        && b[s - 1] == b'-'
        && b[s - 2].is_ascii_hexdigit()
        && b[s - 3].is_ascii_hexdigit()
        && (s == 3 || !b[s - 4].is_ascii_alphanumeric())
    {
        s -= 3;
    }
    s
}

/// Reads the groups from `s` until a separator that joins nothing or a
/// word that cannot be part of an entity; returns where the window ends.
fn tokenize(b: &[u8], s: usize, toks: &mut Vec<Tok>) -> usize {
    toks.clear();
    let (mut p, mut bare) = (s, false);
    loop {
        let ts = p;
        let mut digits = 0;
        while p < b.len() && b[p].is_ascii_alphanumeric() {
            digits += usize::from(b[p].is_ascii_digit());
            p += 1;
        }
        // A word without digits ends the window unless it may belong to an
        // entity: a hex pair of a MAC address, an IBAN group (up to four), a
        // NINO suffix, or a month name; and two in a row always end it.
        let pair = p - ts == 2 && b[ts..p].iter().all(u8::is_ascii_hexdigit);
        let word = digits == 0 && !pair;
        // After a country code and check digits (`IT60`, `CH93`), letter-only
        // groups of four are an account number's, not words of prose.
        let iban_group = word && p - ts <= 4 && toks.first().is_some_and(|t: &Tok| iban_head(&b[t.s..t.e]));
        if p == ts || (word && !iban_group && (bare || (p - ts > 4 && !month_name(&b[ts..p])))) {
            break;
        }
        bare = word;
        toks.push(Tok { s: ts, e: p, digits, rest: 0 });
        let ss = p;
        while p < b.len() && p - ss < 3 && matches!(b[p], b' ' | b'-' | b'.' | b'/' | b'(' | b')' | b'+' | b',') {
            p += 1;
        }
        if p == ss || p >= b.len() || !b[p].is_ascii_alphanumeric() {
            break;
        }
    }
    let mut rest = 0;
    for t in toks.iter_mut().rev() {
        rest += t.digits;
        t.rest = rest;
    }
    toks.last().map_or(s, |t| t.e)
}

/// A group that can open an IBAN: two letters, then two digits.
fn iban_head(t: &[u8]) -> bool {
    t.len() >= 4 && t[..2].iter().all(u8::is_ascii_alphabetic) && t[2..4].iter().all(u8::is_ascii_digit)
}

fn month_name(word: &[u8]) -> bool {
    (3..=9).contains(&word.len())
        && b"jfmasondJFMASOND".contains(&word[0])
        && MONTHS.iter().any(|m| word.eq_ignore_ascii_case(m.as_bytes()))
}

/// A match: the entity, its first byte and the index of its last group.
type Hit = Option<(&'static str, usize, usize)>;

struct Window<'a> {
    text: &'a str,
    b: &'a [u8],
    t: &'a [Tok],
    words: &'a Words,
}

impl Window<'_> {
    fn scan(&self, out: &mut Vec<Finding>) {
        // Most numbers in prose are one short group ("in 2023", "14 services")
        // or hold fewer than the four digits every entity but a MAC address
        // has: those windows end here, and groups with too few digits left
        // skip the entities that need more.
        let hex = |t: &Tok| matches!(t.e - t.s, 2 | 4) && self.b[t.s..t.e].iter().all(u8::is_ascii_hexdigit);
        let long = self.t.iter().any(|t| t.e - t.s >= 9);
        let groups = self.t.iter().filter(|t| t.digits > 0 || hex(t)).count();
        if (!long && groups < 2) || (self.t[0].rest < 4 && !self.t.iter().any(hex)) {
            return;
        }
        let mut i = 0;
        while i < self.t.len() {
            let rest = self.t[i].rest;
            let hit = if hex(&self.t[i]) { self.mac(i) } else { None }.or_else(|| {
                if self.t[i].digits == 0 || rest < 4 {
                    return None;
                }
                self.iban(i)
                    .or_else(|| self.nino(i))
                    .or_else(|| if rest >= 13 { self.card(i) } else { None })
                    .or_else(|| if rest >= 9 { self.ssn(i) } else { None })
                    .or_else(|| self.ipv4(i))
                    .or_else(|| self.dob(i))
                    .or_else(|| if rest >= 8 { self.phone(i) } else { None })
            });
            match hit {
                Some((kind, start, j)) => {
                    out.push(Finding { kind, start, end: self.t[j].e });
                    i = j + 1;
                }
                None => i += 1,
            }
        }
    }

    fn hit(&self, kind: &'static str, start: usize, j: usize) -> Hit {
        bounded(self.text, start, self.t[j].e).then_some((kind, start, j))
    }

    fn tok(&self, j: usize) -> &[u8] {
        &self.b[self.t[j].s..self.t[j].e]
    }

    fn num(&self, j: usize) -> bool {
        self.t[j].digits == self.t[j].e - self.t[j].s
    }

    fn value(&self, j: usize) -> u32 {
        self.tok(j).iter().fold(0, |v, &c| v.saturating_mul(10).saturating_add(u32::from(c.wrapping_sub(b'0'))))
    }

    /// The separator after group `j` (empty after the last).
    fn sep(&self, j: usize) -> &[u8] {
        match self.t.get(j + 1) {
            Some(next) => &self.b[self.t[j].e..next.s],
            None => b"",
        }
    }

    /// Group `j` continues a number before it (`7-4111…`, `1.2.3.4.5`).
    fn glued_before(&self, j: usize, seps: &[u8]) -> bool {
        let s = self.t[j].s;
        s >= 2 && seps.contains(&self.b[s - 1]) && self.b[s - 2].is_ascii_digit()
    }

    fn glued_after(&self, j: usize, seps: &[u8]) -> bool {
        let e = self.t[j].e;
        e + 1 < self.b.len() && seps.contains(&self.b[e]) && self.b[e + 1].is_ascii_digit()
    }

    fn iban(&self, i: usize) -> Hit {
        let t = self.tok(i);
        if t.len() < 4 || !t[..2].iter().all(u8::is_ascii_alphabetic) || !t[2..4].iter().all(u8::is_ascii_digit) {
            return None;
        }
        let len = iban_length(&[t[0].to_ascii_uppercase(), t[1].to_ascii_uppercase()])?;
        let (mut compact, mut n, mut j) = ([0u8; 34], 0, i);
        loop {
            let g = self.tok(j);
            if n + g.len() > len {
                return None;
            }
            compact[n..n + g.len()].copy_from_slice(g);
            compact[n..n + g.len()].make_ascii_uppercase();
            n += g.len();
            if n == len {
                break;
            }
            if g.len() != 4 || self.sep(j) != b" " {
                return None;
            }
            j += 1;
        }
        iban_mod97(&compact[..n]).then(|| self.hit("IBAN", self.t[i].s, j))?
    }

    fn nino(&self, i: usize) -> Hit {
        let prefix = |a: u8, b: u8| {
            a.is_ascii_uppercase()
                && b.is_ascii_uppercase()
                && !b"DFIQUV".contains(&a)
                && !b"DFIOQUV".contains(&b)
                && ![*b"BG", *b"GB", *b"KN", *b"NK", *b"NT", *b"TN", *b"ZZ"].contains(&[a, b])
        };
        let suffix = |c: u8| (b'A'..=b'D').contains(&c);
        let t = self.tok(i);
        if t.len() == 9 && prefix(t[0], t[1]) && t[2..8].iter().all(u8::is_ascii_digit) && suffix(t[8]) {
            return self.hit("UK_NINO", self.t[i].s, i);
        }
        // Spaced, `AB 12 34 56 C`: the letters sit before the digits.
        let s = self.t[i].s;
        if s < 3 || self.b[s - 1] != b' ' || !prefix(self.b[s - 3], self.b[s - 2]) || i + 3 >= self.t.len() {
            return None;
        }
        let pairs = (i..i + 3).all(|j| self.num(j) && self.tok(j).len() == 2 && self.sep(j) == b" ");
        let last = self.tok(i + 3);
        (pairs && last.len() == 1 && suffix(last[0])).then(|| self.hit("UK_NINO", s - 3, i + 3))?
    }

    fn mac(&self, i: usize) -> Hit {
        let hex = |j: usize, n: usize| self.tok(j).len() == n && self.tok(j).iter().all(u8::is_ascii_hexdigit);
        let run = |n: usize, width: usize, sep: &[u8]| {
            i + n <= self.t.len() && (i..i + n).all(|j| hex(j, width)) && (i..i + n - 1).all(|j| self.sep(j) == sep)
        };
        let end = if self.sep(i) == b"-" && run(6, 2, b"-") {
            i + 5
        } else if self.sep(i) == b"." && run(3, 4, b".") {
            i + 2
        } else {
            return None;
        };
        let e = self.t[end].e;
        let glued = e + 1 < self.b.len() && matches!(self.b[e], b'-' | b'.') && self.b[e + 1].is_ascii_hexdigit();
        (!glued).then(|| self.hit("MAC_ADDRESS", self.t[i].s, end))?
    }

    fn card(&self, i: usize) -> Hit {
        if !self.num(i) || !matches!(self.tok(i)[0], b'2'..=b'6') || self.glued_before(i, b"-./") {
            return None;
        }
        let (mut d, mut n, mut sizes, mut k, mut best) = ([0u8; 19], 0, [0usize; 8], 0, None);
        for j in i..self.t.len() {
            let g = self.tok(j);
            if !self.num(j) || k == sizes.len() || n + g.len() > 19 {
                break;
            }
            if j > i && (self.sep(j - 1) != self.sep(i) || !matches!(self.sep(i), b" " | b"-")) {
                break;
            }
            d[n..n + g.len()].copy_from_slice(g);
            n += g.len();
            sizes[k] = g.len();
            k += 1;
            if n >= 13 && card_number(&d[..n], &sizes[..k]) {
                best = Some(j);
            }
        }
        let j = best?;
        (!self.glued_after(j, b"-./")).then(|| self.hit("CREDIT_CARD", self.t[i].s, j))?
    }

    fn ssn(&self, i: usize) -> Hit {
        if !self.num(i) || self.glued_before(i, b"-./") {
            return None;
        }
        let mut d = [0u8; 9];
        let j = if self.tok(i).len() == 3
            && i + 2 < self.t.len()
            && self.num(i + 1)
            && self.num(i + 2)
            && self.tok(i + 1).len() == 2
            && self.tok(i + 2).len() == 4
            && matches!(self.sep(i), b"-" | b" " | b".")
            && self.sep(i) == self.sep(i + 1)
        {
            d[..3].copy_from_slice(self.tok(i));
            d[3..5].copy_from_slice(self.tok(i + 1));
            d[5..].copy_from_slice(self.tok(i + 2));
            i + 2
        } else if self.tok(i).len() == 9 && self.words.ssn.before(self.text, self.t[i].s, 40) {
            d.copy_from_slice(self.tok(i));
            i
        } else {
            return None;
        };
        if self.glued_after(j, b"-./") || d.iter().all(|&c| c == d[0]) {
            return None;
        }
        let part = |r: std::ops::Range<usize>| d[r].iter().fold(0u32, |v, &c| v * 10 + u32::from(c - b'0'));
        let (area, group, serial) = (part(0..3), part(3..5), part(5..9));
        let itin_group = matches!(group, 50..=65 | 70..=88 | 90..=92 | 94..=99);
        let kind = match area {
            _ if group == 0 || serial == 0 => return None,
            0 | 666 => return None,
            900.. if itin_group => "US_ITIN",
            900.. => return None,
            _ => "US_SSN",
        };
        self.hit(kind, self.t[i].s, j)
    }

    fn ipv4(&self, i: usize) -> Hit {
        if i + 3 >= self.t.len() || self.glued_before(i, b".") || self.glued_after(i + 3, b".") {
            return None;
        }
        let octets = (i..i + 4).all(|j| self.num(j) && self.tok(j).len() <= 3 && self.value(j) <= 255);
        let dotted = (i..i + 3).all(|j| self.sep(j) == b".");
        let version = || self.words.version.before(self.text, self.t[i].s, 10);
        (octets && dotted && !version()).then(|| self.hit("IP_ADDRESS", self.t[i].s, i + 3))?
    }

    fn dob(&self, i: usize) -> Hit {
        let (start, end) = self.date(i)?;
        self.words.dob.before(self.text, start, 48).then(|| self.hit("DATE_OF_BIRTH", start, end))?
    }

    /// A full date starting at group `i` (or at the month word just before it).
    fn date(&self, i: usize) -> Option<(usize, usize)> {
        if self.tok(i).len() > 4 || !self.tok(i)[0].is_ascii_digit() || i + 1 >= self.t.len() {
            return None;
        }
        let len = |j: usize| self.tok(j).len();
        let year = |j: usize| self.num(j) && len(j) == 4 && (1900..=2099).contains(&self.value(j));
        let month = |j: usize| self.num(j) && len(j) <= 2 && (1..=12).contains(&self.value(j));
        let day = |j: usize| {
            let t = self.tok(j);
            let digits = self.t[j].digits;
            let suffix = &t[digits..];
            let ordinal =
                suffix.is_empty() || [b"st", b"nd", b"rd", b"th"].iter().any(|o| suffix.eq_ignore_ascii_case(*o));
            (1..=2).contains(&digits) && t[..digits].iter().all(u8::is_ascii_digit) && ordinal && {
                let v = t[..digits].iter().fold(0, |v, &c| v * 10 + u32::from(c - b'0'));
                (1..=31).contains(&v)
            }
        };
        let s = self.t[i].s;
        if i + 2 < self.t.len() {
            let (s1, s2) = (self.sep(i), self.sep(i + 1));
            if s1 == s2 && matches!(s1, b"-" | b"/" | b".") && (i..i + 3).all(|j| self.num(j)) {
                if year(i) && month(i + 1) && day(i + 2) {
                    return Some((s, i + 2));
                }
                let dm = (day(i) && month(i + 1)) || (month(i) && day(i + 1));
                if dm && len(i) <= 2 && (year(i + 2) || len(i + 2) == 2) {
                    return Some((s, i + 2));
                }
            }
            if day(i)
                && month_name(self.tok(i + 1))
                && matches!(s1, b" " | b". " | b"-")
                && matches!(s2, b" " | b", " | b"-")
                && year(i + 2)
            {
                return Some((s, i + 2));
            }
        }
        // `April 12, 1990`: the month word ends the text before the window.
        if day(i) && matches!(self.sep(i), b" " | b", ") && year(i + 1) && s >= 4 && self.b[s - 1] == b' ' {
            let ms = self.b[..s - 1].iter().rposition(|c| !c.is_ascii_alphabetic()).map_or(0, |p| p + 1);
            if month_name(&self.b[ms..s - 1]) {
                return Some((ms, i + 1));
            }
        }
        None
    }

    fn phone(&self, i: usize) -> Hit {
        if !self.num(i) || self.glued_before(i, b"-./") {
            return None;
        }
        let s = self.t[i].s;
        let lead = if s > 0 { self.b[s - 1] } else { 0 };
        let (plus, mut open) = (lead == b'+', lead == b'(');
        let mut paren_used = open;
        let (mut d, mut n, mut groups, mut k) = ([0u8; 15], 0, [0usize; 8], 0);
        let mut plain: [&[u8]; 2] = [b"", b""];
        let mut best = None;
        for j in i..self.t.len() {
            let g = self.tok(j);
            if !self.num(j) || k == groups.len() || n + g.len() > 15 {
                break;
            }
            if j > i {
                match self.sep(j - 1) {
                    b")" | b") " | b")-" if open => open = false,
                    b"(" | b" (" if !paren_used => (open, paren_used) = (true, true),
                    sep @ (b" " | b"-" | b"." | b"/") => match plain.iter().position(|p| p.is_empty() || *p == sep) {
                        Some(slot) => plain[slot] = sep,
                        None => break,
                    },
                    _ => break,
                }
            }
            d[n..n + g.len()].copy_from_slice(g);
            n += g.len();
            groups[k] = g.len();
            k += 1;
            let spaced = plain.iter().all(|p| p.is_empty() || *p == b" ") && !paren_used;
            if !open && phone_shape(&d[..n], &groups[..k], plus, spaced) {
                best = Some(j);
            }
        }
        // One bare run of digits is a phone number only where the text says so.
        let t = self.tok(i);
        let bare = !plus
            && !paren_used
            && ((t.len() == 10 && t[0] >= b'2' && t[3] >= b'2')
                || ((10..=11).contains(&t.len()) && t[0] == b'0' && t[1] != b'0'));
        if best.is_none() && bare && self.words.phone.before(self.text, s, 40) {
            best = Some(i);
        }
        let j = best?;
        let start = if plus || lead == b'(' { s - 1 } else { s };
        (!self.glued_after(j, b"-./")).then(|| self.hit("PHONE", start, j))?
    }
}

/// `d`: the digits, `g`: the group sizes, `plus`: after a `+`, `spaced`:
/// groups joined by spaces only (where a number is likelier something else).
fn phone_shape(d: &[u8], g: &[usize], plus: bool, spaced: bool) -> bool {
    let n = d.len();
    if plus {
        return (8..=15).contains(&n) && d[0] != b'0' && (g.len() == 1 || g[0] <= 3);
    }
    // `0049 30 1234567`: the international prefix instead of a `+`.
    if n > 2 && d.starts_with(b"00") && d[2] != b'0' && g.len() > 1 && g[0] <= 5 {
        return (8..=15).contains(&(n - 2));
    }
    // Example numbers (`555-123-4567`) break the NANP rules; with dashes,
    // dots or parentheses the shape alone is telling enough.
    let us = |o: usize| !spaced || (d[o] >= b'2' && d[o + 3] >= b'2');
    if (g == [3, 3, 4] && us(0)) || (g == [1, 3, 3, 4] && d[0] == b'1' && us(1)) {
        return true;
    }
    let date_like = g.len() >= 3 && g[..3] == [2, 2, 4];
    (9..=12).contains(&n)
        && d[0] == b'0'
        && d[1] != b'0'
        && (2..=5).contains(&g.len())
        && (2..=5).contains(&g[0])
        && g.iter().all(|&x| x >= 2)
        && !date_like
}

/// IPv6 (or a colon-separated MAC) around the `:` at `p`.
fn colon_at(text: &str, p: usize) -> Option<Finding> {
    let b = text.as_bytes();
    let part = |c: u8| c.is_ascii_hexdigit() || c == b':';
    let mut s = p;
    while s > 0 && p - s < 40 && part(b[s - 1]) {
        s -= 1;
    }
    if char_before(text, s).is_some_and(|c| is_word(c) || c == '.') {
        return None;
    }
    let mut e = p;
    while e < b.len() && e - s < 46 && (part(b[e]) || b[e] == b'.') {
        e += 1;
    }
    while e > p && b[e - 1] == b'.' {
        e -= 1;
    }
    let mut v = &text[s..e];
    if !v.bytes().any(|c| c.is_ascii_digit()) {
        return None;
    }
    let mac =
        v.len() == 17 && v.bytes().enumerate().all(|(k, c)| if k % 3 == 2 { c == b':' } else { c.is_ascii_hexdigit() });
    let kind = if mac {
        "MAC_ADDRESS"
    } else {
        if v.parse::<Ipv6Addr>().is_err() {
            v = v.strip_suffix(':').filter(|v| !v.ends_with(':') && v.parse::<Ipv6Addr>().is_ok())?;
        }
        "IP_ADDRESS"
    };
    let end = s + v.len();
    // The `:` at `p` must be inside: a trailing colon was already seen as part of what it ends.
    (end > p && bounded(text, s, end)).then_some(Finding { kind, start: s, end })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checksum::luhn;
    use crate::checksum::testing::{check_table, micros_per_kb, sample_texts, well_formed};
    use crate::redact::Placeholders;

    /// True positives and hard negatives, one a line (see [`check_table`]).
    const CASES: &str = "
        EMAIL | write to [[jane.doe+tag@example.co.uk]].
        EMAIL | <[[a_b@mail-server.example.org]]> and mailto:[[ops@x.io]]
        EMAIL | Müller: [[jürgen.müller@bücher.de]], danke
        EMAIL | 連絡先は[[taro@example.jp]]です
        -     | @handle and @ alone, user@localhost, a@b.c, x@-bad.com, trailing.@x.com
        PHONE | call [[+14155552671]] now; UK office: [[+44 20 7946 0958]].
        PHONE | or [[+44 (0)20 7946 0958]], or [[+49 30 1234567]], or [[+33 1 23 45 67 89]]
        PHONE | US [[(415) 555-2671]] x, [[415-555-2671]], [[415.555.2671]], toll free [[1-800-555-0199]]
        PHONE | London [[020 7946 0958]], mobile [[07700 900123]] (24 hours: [[020 7946 0958]] 24)
        PHONE | Berlin [[030 1234567]] or [[030/1234567]], Paris [[01 23 45 67 89]]
        PHONE | Phone: [[4155552671]]
        PHONE | 電話 [[+81 3 1234 5678]]。
        -     | order 4155552671 shipped on 2023-04-12, 12.04.2023 and 01.02.2023 12 times
        -     | version 1.2.3 and 10.2.0.1234, ISBN 978-3-16-148410-0, total $1,234,567.89
        -     | ext 555-2671, id 123456789012345678901, ref 2023-415-555-2671, at 10:30, 0.5 0.25, a+14155552671
        CREDIT_CARD | visa [[4111 1111 1111 1111]] exp 2027, [[4111-1111-1111-1111]], card:[[4012888888881881]].
        CREDIT_CARD | old visa [[4222222222222]], amex [[378282246310005]] or [[3782 822463 10005]]
        CREDIT_CARD | mc [[5555555555554444]], [[2221000000000009]]; discover [[6011111111111117]]
        CREDIT_CARD | jcb [[3530111333300000]], diners [[30569309025904]], unionpay [[6200000000000005]]
        CREDIT_CARD | カード[[4111111111111111]]
        -     | 4111 1111 1111 1112 (Luhn), 4111 1111-1111 1111 (mixed), 9111111111111111 (issuer)
        -     | 41111111111111112025, x4111111111111111, 7-4111111111111111, 4111 11 11111 11111
        IBAN  | IBAN: [[DE89 3704 0044 0532 0130 00]]. or [[DE89370400440532013000]]
        IBAN  | pay [[GB82 WEST 1234 5698 7654 32]] today, [[GB82WEST12345698765432]], [[gb82west12345698765432]]
        IBAN  | [[FR1420041010050500013M02606]], [[NL91ABNA0417164300]], [[NO9386011117947]]
        IBAN  | to [[IT60 X054 2811 1010 0000 0123 456]] or [[CH93 0076 2011 6238 5295 7]] today
        -     | DE88370400440532013000 (check), DE8937040044053201300 (length), XDE89370400440532013000
        -     | US64SVBKUS6S3300958879 (no IBAN country)
        US_SSN | SSN [[123-45-6789]], her number is [[536 22 1234]], or [[536.22.1234]]
        US_SSN | ssn: [[536221234]]
        US_SSN | Social Security No. [[536221234]]
        US_ITIN | ITIN [[912-70-1234]]
        -     | 000-12-3456 666-12-3456 900-12-3456 123-00-4567 123-45-0000 111-11-1111 123-45.6789
        -     | order 536221234, 1-123-45-6789, 123-45-6789-0
        IP_ADDRESS | host [[10.0.0.1]]. and [[192.168.1.254]]:8080 in net [[10.1.0.0]]/16
        IP_ADDRESS | v6 [[2001:db8::1]] here, [[[2001:db8::1]]]:443, loopback [[::1]]
        IP_ADDRESS | [[fe80::1ff:fe23:4567:890a]], mapped [[::ffff:192.0.2.128]]
        IP_ADDRESS | [[2001:0db8:85a3:0000:0000:8a2e:0370:7334]]
        IP_ADDRESS | at [[fe80::1]]: then
        -     | 1.2.3.4.5, 256.1.1.1, version 1.2.3.4, v1.2.3.4, at 10:30:45, ratio 3:2
        -     | std::vec::Vec and u8::MAX, dead::beef
        DATE_OF_BIRTH | born [[1990-04-12]], DOB: [[12/04/1990]]
        DATE_OF_BIRTH | d.o.b [[12/04/90]]; geb. [[04.12.1990]] in Köln
        DATE_OF_BIRTH | She was born on [[12 April 1990]].
        DATE_OF_BIRTH | Geburtsdatum: [[12. April 1990]]
        DATE_OF_BIRTH | Date of birth: [[April 12, 1990]]
        DATE_OF_BIRTH | birthday: [[12th Apr 1990]]
        -     | meeting on 1990-04-12, invoice dated 12/04/1990, born 13/13/1990
        -     | born in Ohio, which I left to move to the coast in 2001 on 12/04/2001
        UK_NINO | NI: [[AB123456C]] or [[AB 12 34 56 C]].
        -     | QQ123456C BG123456A AB123456E XAB123456C
        MAC_ADDRESS | mac [[00:1A:2B:3C:4D:5E]], [[00-1a-2b-3c-4d-5e]]. [[AA-BB-CC-0D-EE-FF]]
        MAC_ADDRESS | cisco [[0011.2233.4455]]
        -     | 00:1A:2B:3C:4D:5E:6F:70:81
    ";

    fn all() -> Pii {
        Pii::new(&[]).unwrap()
    }

    #[test]
    fn table() {
        let pii = all();
        check_table(CASES, |text| pii.find(text));
    }

    #[test]
    fn compiled_once_and_shared_across_threads() {
        fn shared<T: Send + Sync>() {}
        shared::<Pii>();
    }

    #[test]
    fn entities_are_chosen_by_name() {
        let err = Pii::new(&["EMAIL".into(), "PASSPORT".into()]).err().unwrap();
        assert!(err.contains("`PASSPORT`") && err.contains("IBAN"), "{err}");
        let only_email = Pii::new(&["email".into()]).unwrap();
        assert_eq!(only_email.find("a@b.io 4111 1111 1111 1111"), vec![Finding { kind: "EMAIL", start: 0, end: 6 }]);
        assert_eq!(all().entities.len(), ENTITIES.len());
    }

    #[test]
    fn mixed_text_redacts_to_placeholders_only() {
        let text = "Hi, I'm Ana (ana@example.com, +44 20 7946 0958). Card 4111 1111 1111 1111, \
                    IBAN DE89370400440532013000, born 1990-04-12, from 10.0.0.1. In 2023 we sold 1,500 units.";
        let out = Placeholders::default().redact(text, &all().find(text)).into_owned();
        let want = "Hi, I'm Ana (<EMAIL_1>, <PHONE_1>). Card <CREDIT_CARD_1>, IBAN <IBAN_1>, \
                    born <DATE_OF_BIRTH_1>, from <IP_ADDRESS_1>. In 2023 we sold 1,500 units.";
        assert_eq!(out, want);
    }

    fn luhn_card(body: &[u8]) -> String {
        let mut digits: Vec<u8> = std::iter::once(b'4').chain(body.iter().map(|d| b'0' + d)).collect();
        let check = (b'0'..=b'9').find(|&c| luhn(&[&digits[..], &[c]].concat())).unwrap();
        digits.push(check);
        String::from_utf8(digits).unwrap()
    }

    proptest::proptest! {
        #[test]
        fn any_text_gives_well_formed_findings(text in "\\PC*") {
            well_formed(&text, &all().find(&text))?;
        }

        #[test]
        fn any_bytes_give_well_formed_findings(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..400)) {
            let text = String::from_utf8_lossy(&bytes);
            well_formed(&text, &all().find(&text))?;
        }

        #[test]
        fn numeric_soup_gives_well_formed_findings(text in "[0-9 .:/()+@a-fA-Zé-]{0,200}") {
            well_formed(&text, &all().find(&text))?;
        }

        #[test]
        fn redaction_never_leaves_a_card_or_email(
            body in proptest::collection::vec(0u8..10, 14),
            spaced in proptest::bool::ANY,
            email in "[a-z][a-z0-9._]{0,10}[a-z0-9]@[a-z]{1,10}\\.(com|org|io|de)",
            before in "\\PC{0,30}",
            after in "\\PC{0,30}",
        ) {
            let mut card = luhn_card(&body);
            if spaced {
                card = card.as_bytes().chunks(4).map(|c| std::str::from_utf8(c).unwrap()).collect::<Vec<_>>().join(" ");
            }
            let text = format!("{before} {card} and {email} {after}");
            let out = Placeholders::default().redact(&text, &all().find(&text)).into_owned();
            proptest::prop_assert!(!out.contains(&card) && !out.contains(&email), "{out}");
        }
    }

    /// `cargo test -p detectors --release -- --ignored --nocapture`
    #[test]
    #[ignore = "timing, for a release build by hand"]
    fn throughput() {
        let pii = all();
        for (name, text) in sample_texts() {
            println!("pii, {name}: {:.2} µs/KB", micros_per_kb(&text, |t| pii.find(t).len()));
        }
    }
}
