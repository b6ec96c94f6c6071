//! Credentials.
//!
//! Two passes: one Aho-Corasick scan for the literal prefixes that
//! providers put on their tokens (`AKIA`, `ghp_`, `-----BEGIN `, `eyJ`, …),
//! each hit then checked by hand (length, alphabet, what surrounds it);
//! and one for `:` and `=`, where the name before an assignment decides
//! whether the value after it is worth a look. Findings cover the secret
//! value only, never the key name.
//!
//! The kinds:
//! - `AWS_ACCESS_KEY`: `AKIA`/`ASIA`/`ABIA`/`ACCA` and 16 upper-case
//!   letters or digits. `AWS_SECRET_KEY`: 40 base64 characters assigned to
//!   `aws_secret_access_key`, `secret_key`, `SecretAccessKey`, ….
//! - `GCP_SERVICE_ACCOUNT_KEY`: the 40-hex `private_key_id` of a service
//!   account file, and API keys `AIza` + 35.
//! - `AZURE_KEY`: storage `AccountKey=`/`SharedAccessKey=` values; 32 hex,
//!   84 alphanumerics, 88 base64 or a client secret (`xxx8Q~…`) assigned to
//!   a name with `azure` in it.
//! - `GITHUB_TOKEN` (`ghp_`, `gho_`, `ghu_`, `ghs_`, `ghr_` + 36,
//!   `github_pat_` + 82), `GITLAB_TOKEN` (`glpat-`, `gldt-`, `glrt-`,
//!   `glptt-` + 20 or more), `SLACK_TOKEN` (`xoxb-` and kin, `xapp-`,
//!   `hooks.slack.com` webhook URLs), `STRIPE_KEY` (`sk_live_`, `rk_live_`,
//!   `sk_test_`, `rk_test_` + 24, `whsec_`; not the public `pk_`),
//!   `OPENAI_KEY` (`sk-proj-`, `sk-svcacct-`, `sk-admin-`, legacy `sk-` with
//!   the `T3BlbkFJ` marker or 48 mixed alphanumerics), `ANTHROPIC_KEY`
//!   (`sk-ant-…`), `HUGGINGFACE_TOKEN` (`hf_`), `NPM_TOKEN` (`npm_` + 36),
//!   `PYPI_TOKEN` (`pypi-AgE…`), `SENDGRID_KEY` (`SG.` 22 `.` 43).
//! - `BASIC_AUTH`: the password in `scheme://user:password@host`.
//! - `PRIVATE_KEY`: a PEM block from `-----BEGIN … PRIVATE KEY-----` to its
//!   `-----END` line (also with `\n` escapes, as in JSON), or the header
//!   alone when the block is cut off. Public keys and certificates are not secret.
//! - `JWT`: `eyJ…` header, payload and signature in base64url, the header
//!   decoding to a JSON object with `"alg"` or `"typ"`.
//! - `HIGH_ENTROPY`: a value assigned (`k=v`, `k: v`, `"k": "v"`, `k := v`,
//!   `Authorization: Bearer v`) to a name holding password, passwd, pwd,
//!   secret, token, api key, auth, credential, private or an access,
//!   signing, encryption, master or session key; 16 or more characters
//!   (8 for passwords) with entropy of at least 3 bits per character and a
//!   digit or three character classes. Not names ending in `_id`, `_url`,
//!   `_type`, `_name`, `_count`, … (`max_tokens: 4096`), placeholders
//!   (`${VAR}`, `<your-key>`, `xxxx`, `changeme`, `example`), references
//!   (`os.environ[…]`, bare identifiers), URLs and paths, sequences.
//!   UUIDs count when the name says secret (Heroku keys are UUIDs); git
//!   SHAs after `commit=` and digests in prose have no such name.

use aho_corasick::{AhoCorasick, Input, MatchKind};

use crate::Finding;
use crate::checksum::{b64_decode, char_after, char_before, entropy, find_byte, is_word, resolve};

/// Every secret type this detector reports.
#[rustfmt::skip]
pub const KINDS: &[&str] = &[
    "AWS_ACCESS_KEY", "AWS_SECRET_KEY", "GCP_SERVICE_ACCOUNT_KEY", "AZURE_KEY", "GITHUB_TOKEN", "GITLAB_TOKEN",
    "SLACK_TOKEN", "STRIPE_KEY", "OPENAI_KEY", "ANTHROPIC_KEY", "HUGGINGFACE_TOKEN", "NPM_TOKEN", "PYPI_TOKEN",
    "SENDGRID_KEY", "BASIC_AUTH", "PRIVATE_KEY", "JWT", "HIGH_ENTROPY",
];

/// The characters a token body may hold.
#[derive(Clone, Copy, PartialEq)]
enum Body {
    Upper,
    Alnum,
    Word,
    Url,
    Dotted,
    B64,
}

impl Body {
    fn has(self, c: u8) -> bool {
        match self {
            Body::Upper => c.is_ascii_uppercase() || c.is_ascii_digit(),
            Body::Alnum => c.is_ascii_alphanumeric(),
            Body::Word => c.is_ascii_alphanumeric() || c == b'_',
            Body::Url => c.is_ascii_alphanumeric() || c == b'_' || c == b'-',
            Body::Dotted => c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.'),
            Body::B64 => c.is_ascii_alphanumeric() || matches!(c, b'+' | b'/' | b'='),
        }
    }
}

#[derive(Clone, Copy)]
enum Rule {
    /// The prefix, then `min..=max` body characters and no more.
    Token(&'static str, Body, usize, usize),
    /// Like `Token`, but the prefix is the key (`AccountKey=`) and the finding the body alone.
    Value(&'static str, Body, usize, usize),
    OpenAi,
    Pem,
    Jwt,
    SlackHook,
    SendGrid,
    UrlPassword,
}

const AWS: Rule = Rule::Token("AWS_ACCESS_KEY", Body::Upper, 16, 16);
const GITHUB: Rule = Rule::Token("GITHUB_TOKEN", Body::Alnum, 36, 36);
const GITLAB: Rule = Rule::Token("GITLAB_TOKEN", Body::Dotted, 20, 512);
const SLACK: Rule = Rule::Token("SLACK_TOKEN", Body::Url, 10, 512);
const STRIPE: Rule = Rule::Token("STRIPE_KEY", Body::Alnum, 24, 512);
const AZURE: Rule = Rule::Value("AZURE_KEY", Body::B64, 40, 100);

#[rustfmt::skip]
const RULES: &[(&str, Rule)] = &[
    ("AKIA", AWS), ("ASIA", AWS), ("ABIA", AWS), ("ACCA", AWS),
    ("AIza", Rule::Token("GCP_SERVICE_ACCOUNT_KEY", Body::Url, 35, 35)),
    ("ghp_", GITHUB), ("gho_", GITHUB), ("ghu_", GITHUB), ("ghs_", GITHUB), ("ghr_", GITHUB),
    ("github_pat_", Rule::Token("GITHUB_TOKEN", Body::Word, 60, 255)),
    ("glpat-", GITLAB), ("gldt-", GITLAB), ("glrt-", GITLAB), ("glptt-", GITLAB),
    ("xoxb-", SLACK), ("xoxp-", SLACK), ("xoxa-", SLACK), ("xoxr-", SLACK), ("xoxs-", SLACK), ("xoxe-", SLACK),
    ("xoxe.xoxp-", SLACK), ("xapp-", SLACK), ("hooks.slack.com/", Rule::SlackHook),
    ("sk_live_", STRIPE), ("rk_live_", STRIPE), ("sk_test_", STRIPE), ("rk_test_", STRIPE),
    ("whsec_", Rule::Token("STRIPE_KEY", Body::Alnum, 32, 512)),
    ("sk-", Rule::OpenAi),
    ("-----BEGIN ", Rule::Pem),
    ("eyJ", Rule::Jwt),
    ("AccountKey=", AZURE), ("SharedAccessKey=", AZURE),
    ("npm_", Rule::Token("NPM_TOKEN", Body::Alnum, 36, 36)),
    ("hf_", Rule::Token("HUGGINGFACE_TOKEN", Body::Alnum, 30, 40)),
    ("pypi-AgE", Rule::Token("PYPI_TOKEN", Body::Url, 50, 512)),
    ("SG.", Rule::SendGrid),
    ("://", Rule::UrlPassword),
];

/// Names that make an assigned value a candidate (normalized: lower case, alphanumerics only).
#[rustfmt::skip]
const SECRET_NAMES: &[&[u8]] = &[
    b"password", b"passwd", b"passphrase", b"passcode", b"pwd", b"passwort", b"kennwort", b"motdepasse",
    b"wachtwoord", b"senha", b"secret", b"token", b"apikey", b"auth", b"credential", b"private", b"accesskey",
    b"signingkey", b"encryptionkey", b"masterkey", b"sessionkey",
];
/// Names that hold something about a secret rather than the secret itself.
#[rustfmt::skip]
const NOT_SECRET_SUFFIXES: &[&[u8]] = &[
    b"id", b"ids", b"name", b"type", b"url", b"uri", b"path", b"file", b"dir", b"count", b"length", b"len", b"size",
    b"ttl", b"expiry", b"expires", b"expiresin", b"expiresat", b"endpoint", b"header", b"field", b"label", b"hint",
    b"policy", b"mode", b"format", b"version", b"limit", b"enabled", b"required", b"usage", b"tokens", b"method",
    b"provider", b"host", b"user", b"username", b"email", b"number", b"index", b"prefix", b"location", b"rotation",
    b"algorithm",
];
#[rustfmt::skip]
const PLACEHOLDERS: &[&str] = &[
    "${", "{{", "<", ">", "%(", "$(", "example", "placeholder", "changeme", "change_me", "change-me", "your",
    "redacted", "dummy", "sample", "insert", "replace", "xxxx", "****", "...", "process.env", "environ",
    "getenv", "fake", "password", "passwd",
];

/// A compiled secrets detector.
pub struct Secrets {
    prefixes: AhoCorasick,
    /// [`SECRET_NAMES`] and the Azure ones: one pass over a key name
    /// instead of a search per word.
    names: AhoCorasick,
    placeholders: AhoCorasick,
}

impl Secrets {
    pub fn new() -> Secrets {
        let prefixes = AhoCorasick::builder().match_kind(MatchKind::LeftmostFirst).build(RULES.iter().map(|(p, _)| p));
        let prefixes = prefixes.expect("fixed literal prefixes always build");
        let names = AhoCorasick::new(SECRET_NAMES.iter().chain(&[&b"azure"[..], b"accountkey"]));
        let placeholders = AhoCorasick::builder().ascii_case_insensitive(true).build(PLACEHOLDERS);
        Secrets {
            prefixes,
            names: names.expect("fixed literal names always build"),
            placeholders: placeholders.expect("fixed literal placeholders always build"),
        }
    }

    /// The secrets in `text`, in text order, non-overlapping.
    pub fn find(&self, text: &str) -> Vec<Finding> {
        let mut found = Vec::new();
        let (mut pos, mut footers) = (0, (usize::MAX, None));
        while let Some(m) = self.prefixes.find(Input::new(text).span(pos..text.len())) {
            pos = match self.token_at(text, m.start(), m.end(), RULES[m.pattern().as_usize()].1, &mut footers) {
                Some(f) => {
                    found.push(f);
                    f.end
                }
                None => m.start() + 1,
            };
        }
        let tokens = found.len();
        let mut from = 0;
        while let Some(p) = find_byte(text.as_bytes(), from, |c| c == b':' || c == b'=') {
            from = p + 1;
            if let Some(f) = self.assignment_at(text, p, &found[..tokens]) {
                from = f.end;
                found.push(f);
            }
        }
        // A key block outranks what its base64 happens to contain; any
        // recognised token outranks a guess from entropy.
        resolve(found, |k| match k {
            "PRIVATE_KEY" => 0,
            "HIGH_ENTROPY" => 2,
            _ => 1,
        })
    }
}

impl Default for Secrets {
    fn default() -> Self {
        Secrets::new()
    }
}

impl Secrets {
    fn token_at(&self, text: &str, start: usize, after: usize, rule: Rule, footers: &mut Footers) -> Option<Finding> {
        let b = text.as_bytes();
        let run = |from: usize, body: Body| {
            b.get(from..).unwrap_or_default().iter().take(513).take_while(|&&c| body.has(c)).count()
        };
        let (kind, start, end) = match rule {
            Rule::Token(kind, body, min, max) if !glued(text, start) => {
                (kind, start, body_end(text, after, body, min, max)?)
            }
            Rule::Value(kind, body, min, max) => (kind, after, body_end(text, after, body, min, max)?),
            Rule::OpenAi if !glued(text, start) => {
                let n = run(after, Body::Url);
                let key = &b[after..after + n];
                let mixed = key.iter().any(u8::is_ascii_digit) && key.iter().any(u8::is_ascii_uppercase);
                let project = [&b"proj-"[..], b"svcacct-", b"admin-"].iter().any(|p| key.starts_with(p));
                let marked = key.windows(8).any(|w| w == b"T3BlbkFJ");
                let legacy = n == 48 && mixed && run(after, Body::Alnum) == 48;
                let kind = if key.starts_with(b"ant-") && n >= 32 {
                    "ANTHROPIC_KEY"
                } else if (n >= 40 && (project || marked)) || legacy {
                    "OPENAI_KEY"
                } else {
                    return None;
                };
                (kind, start, after + n)
            }
            Rule::Pem => ("PRIVATE_KEY", start, pem_end(text, after, footers)?),
            Rule::Jwt if !glued(text, start) => ("JWT", start, jwt_end(text, start)?),
            Rule::SlackHook => {
                let path_len = b[after..].iter().take(256).take_while(|&&c| Body::Url.has(c) || c == b'/').count();
                let path = &b[after..after + path_len];
                let known = [&b"services/"[..], b"workflows/", b"triggers/"].iter().any(|p| path.starts_with(p));
                if !known || path_len < 30 {
                    return None;
                }
                let scheme =
                    ["https://", "http://"].iter().find(|s| text[..start].ends_with(*s)).map_or(0, |s| s.len());
                ("SLACK_TOKEN", start - scheme, after + path_len)
            }
            Rule::SendGrid if !glued(text, start) => {
                let (a, c) = (run(after, Body::Url), run(after + 23, Body::Url));
                let ok = a == 22 && b.get(after + 22) == Some(&b'.') && c == 43;
                (ok && !char_after(text, after + 66).is_some_and(is_word)).then_some(())?;
                ("SENDGRID_KEY", start, after + 66)
            }
            Rule::UrlPassword => {
                let (s, e) = self.url_password(text, start, after)?;
                ("BASIC_AUTH", s, e)
            }
            _ => return None,
        };
        Some(Finding { kind, start, end })
    }

    /// The password of `scheme://user:password@host` around the `://` at `at`.
    fn url_password(&self, text: &str, at: usize, after: usize) -> Option<(usize, usize)> {
        let b = text.as_bytes();
        if !char_before(text, at).is_some_and(|c| c.is_ascii_alphabetic()) {
            return None;
        }
        let part = |from: usize, stop: &[u8]| {
            b[from..].iter().take(257).take_while(|&&c| !c.is_ascii_whitespace() && !stop.contains(&c)).count()
        };
        let user = part(after, b":/@?#\"'<>");
        let ps = after + user + 1;
        if user > 256 || b.get(ps - 1) != Some(&b':') {
            return None;
        }
        let pe = ps + part(ps, b"/@?#\"'<>");
        let host = b.get(pe + 1).is_some_and(u8::is_ascii_alphanumeric);
        let value = text.get(ps..pe)?;
        let lower = value.to_ascii_lowercase();
        let dummy = matches!(lower.as_str(), "password" | "pass" | "pwd" | "secret" | "pw")
            || value.starts_with(['$', '{', '%', '*'])
            || self.placeholder(value);
        (pe > ps && pe - ps <= 256 && b.get(pe) == Some(&b'@') && host && !dummy).then_some((ps, pe))
    }

    fn placeholder(&self, value: &str) -> bool {
        self.placeholders.is_match(value) || value.starts_with(['$', '%', '@'])
    }

    /// The value assigned at the `:` or `=` at `p`, if its name and shape say secret.
    fn assignment_at(&self, text: &str, p: usize, tokens: &[Finding]) -> Option<Finding> {
        let b = text.as_bytes();
        if p > 0 && matches!(b[p - 1], b'=' | b':') {
            return None;
        }
        let mut q = p;
        while q < b.len() && q - p < 2 && matches!(b[q], b'=' | b':' | b'>') {
            q += 1;
        }
        if &b[p..q] == b"::" || (b[p] == b':' && b.get(q) == Some(&b'/')) {
            return None;
        }
        let key = key_before(b, p)?;
        let key = key.as_slice();
        let (mut secretish, mut azure) = (key.ends_with(b"pass"), false);
        for m in self.names.find_overlapping_iter(key) {
            match SECRET_NAMES.get(m.pattern().as_usize()) {
                None => azure = true,
                // `author` is no credential, `authorization` is.
                Some(&w) if w == b"auth" => {
                    let rest = &key[m.end()..];
                    secretish |= !rest.starts_with(b"or") || rest.starts_with(b"oriz");
                }
                Some(_) => secretish = true,
            }
        }
        if !secretish && !azure {
            return None;
        }
        let mut v = q;
        while v < b.len() && v - q < 8 && matches!(b[v], b' ' | b'\t') {
            v += 1;
        }
        // A recognised token as the value was reported by the first pass.
        let k = tokens.partition_point(|f| f.end <= v);
        if tokens.get(k).is_some_and(|f| f.start <= v + 1) {
            return None;
        }
        if b.get(v) == Some(&b'\\') {
            v += 1;
        }
        let quoted = b.get(v).is_some_and(|c| matches!(c, b'"' | b'\'' | b'`'));
        v += usize::from(quoted);
        for scheme in ["bearer ", "basic ", "token "] {
            if b.get(v..v + scheme.len()).is_some_and(|s| s.eq_ignore_ascii_case(scheme.as_bytes())) {
                v += scheme.len();
            }
        }
        let stop: &[u8] = if quoted { b"\"'`\\\n\r" } else { b"\"'`\\,;)]}<>" };
        let n = b
            .get(v..)?
            .iter()
            .take(513)
            .take_while(|&&c| !stop.contains(&c) && (quoted || !c.is_ascii_whitespace()))
            .count();
        let mut ve = v + n;
        if n > 512 {
            return None;
        }
        while !quoted && ve > v && b[ve - 1] == b'.' {
            ve -= 1;
        }
        let kind = self.classify(key, &text[v..ve], quoted, secretish)?;
        Some(Finding { kind, start: v, end: ve })
    }

    fn classify(&self, key: &[u8], value: &str, quoted: bool, secretish: bool) -> Option<&'static str> {
        let v = value.as_bytes();
        let has = |w: &[u8]| key.windows(w.len()).any(|x| x == w);
        let hex = |n: usize| v.len() == n && v.iter().all(u8::is_ascii_hexdigit);
        let b64 = v.iter().all(|&c| Body::B64.has(c));
        if has(b"privatekeyid") {
            return hex(40).then_some("GCP_SERVICE_ACCOUNT_KEY");
        }
        if (has(b"secretaccesskey") || has(b"awssecret") || has(b"secretkey"))
            && v.len() == 40
            && b64
            && entropy(v) >= 3.5
        {
            return Some("AWS_SECRET_KEY");
        }
        if has(b"azure") || has(b"accountkey") {
            let client_secret = (37..=40).contains(&v.len()) && v[3].is_ascii_digit() && &v[4..6] == b"Q~";
            let storage = (86..=88).contains(&v.len()) && b64 && value.ends_with("==");
            if hex(32) || (v.len() == 84 && v.iter().all(u8::is_ascii_alphanumeric)) || storage || client_secret {
                return Some("AZURE_KEY");
            }
        }
        if !secretish || NOT_SECRET_SUFFIXES.iter().any(|s| key.ends_with(s)) {
            return None;
        }
        self.high_entropy(key, value, quoted).then_some("HIGH_ENTROPY")
    }

    fn high_entropy(&self, key: &[u8], value: &str, quoted: bool) -> bool {
        let v = value.as_bytes();
        let password = [&b"pass"[..], b"pwd", b"kennwort", b"wachtwoord", b"senha"]
            .iter()
            .any(|w| key.windows(w.len()).any(|x| x == *w));
        if v.len() < if password { 8 } else { 16 }
            || v.iter().any(u8::is_ascii_whitespace)
            || self.placeholder(value)
            || v.get(..4).is_some_and(|p| p.eq_ignore_ascii_case(b"http"))
            || value.starts_with(['/', '.', '~'])
            || value.contains("://")
            || v.iter().all(u8::is_ascii_digit)
        {
            return false;
        }
        let digits = v.iter().any(u8::is_ascii_digit);
        // Unquoted, a call or an identifier without digits is code, not a value:
        // `password = get_password()`, `token = settings.api_token`.
        let identifier = !digits && v.iter().all(|&c| c.is_ascii_alphabetic() || c == b'_' || c == b'.');
        if !quoted && (identifier || v.contains(&b'(') || v.contains(&b'[')) {
            return false;
        }
        let sequential = v.windows(2).filter(|w| w[1] == w[0].wrapping_add(1)).count();
        if sequential * 10 >= (v.len() - 1) * 7 {
            return false;
        }
        let classes = [
            v.iter().any(u8::is_ascii_lowercase),
            v.iter().any(u8::is_ascii_uppercase),
            digits,
            v.iter().any(|c| !c.is_ascii_alphanumeric()),
        ];
        let classes = classes.iter().filter(|&&c| c).count();
        let h = entropy(v);
        if password { h >= 2.5 && classes >= 2 } else { h >= 3.0 && (digits || classes >= 3) }
    }
}

/// Glued to a longer token on the left (`xghp_…`, `task-`).
fn glued(text: &str, start: usize) -> bool {
    char_before(text, start).is_some_and(|c| is_word(c) || c == '-')
}

/// The end of a run of `min..=max` `body` characters from `from`, standing alone.
fn body_end(text: &str, from: usize, body: Body, min: usize, max: usize) -> Option<usize> {
    let b = text.as_bytes();
    let mut end = from + b[from..].iter().take(max + 1).take_while(|&&c| body.has(c)).count();
    if body == Body::Dotted {
        while end > from && b[end - 1] == b'.' {
            end -= 1;
        }
    }
    ((min..=max).contains(&(end - from)) && !char_after(text, end).is_some_and(is_word)).then_some(end)
}

/// Where the next `-----END ` is, as (searched from, found at): shared by
/// the PEM headers of one text, so that many headers without an end do not
/// each search the rest of the text.
type Footers = (usize, Option<usize>);

/// The end of the PEM block whose header label starts at `label`: after
/// its `-----END` line, or after the header when the block is cut off.
fn pem_end(text: &str, label: usize, footers: &mut Footers) -> Option<usize> {
    let b = text.as_bytes();
    let close = b[label..].windows(5).take(48).position(|w| w == b"-----")?;
    let name = &text[label..label + close];
    if !name.bytes().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == b' ')
        || !(name.ends_with("PRIVATE KEY") || name.ends_with("PRIVATE KEY BLOCK"))
    {
        return None;
    }
    let header_end = label + close + 5;
    let (from, at) = *footers;
    let next = if from <= header_end && at.is_none_or(|a| a >= header_end) {
        at
    } else {
        let at = text[header_end..].find("-----END ").map(|k| header_end + k);
        *footers = (header_end, at);
        at
    };
    let footer = format!("-----END {name}-----");
    let block = next.filter(|&a| a - header_end <= 64 * 1024 && text[a..].starts_with(&footer));
    Some(block.map_or(header_end, |a| a + footer.len()))
}

fn jwt_end(text: &str, start: usize) -> Option<usize> {
    let b = text.as_bytes();
    let seg = |from: usize| b.get(from..).unwrap_or_default().iter().take_while(|&&c| Body::Url.has(c)).count();
    let header = seg(start);
    let payload_at = start + header + 1;
    let payload = seg(payload_at);
    let sig_at = payload_at + payload + 1;
    if !(10..=1024).contains(&header)
        || b.get(payload_at - 1) != Some(&b'.')
        || payload < 10
        || b.get(sig_at - 1) != Some(&b'.')
    {
        return None;
    }
    let json = b64_decode(&b[start..start + header])?;
    let object = json.starts_with(b"{") && b[payload_at] == b'e';
    let claims = [&b"\"alg\""[..], b"\"typ\""].iter().any(|k| json.windows(k.len()).any(|w| w == *k));
    let end = sig_at + seg(sig_at);
    (object && claims && !char_after(text, end).is_some_and(is_word)).then_some(end)
}

/// The name before the assignment operator at `p`, lower-cased with only
/// its letters and digits (`"X-Api-Key"` → `xapikey`), up to three words
/// (`API key`, `Secret Access Key`, `mot de passe`).
fn key_before(b: &[u8], p: usize) -> Option<Vec<u8>> {
    let mut ke = p;
    while ke > 0 && p - ke < 4 && matches!(b[ke - 1], b' ' | b'\t') {
        ke -= 1;
    }
    while ke > 0 && p - ke < 7 && matches!(b[ke - 1], b'"' | b'\'' | b'`' | b'\\' | b']' | b'!' | b'<' | b'>') {
        ke -= 1;
    }
    let name = |c: u8| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.');
    let mut ks = ke;
    while ks > 0 && ke - ks < 64 && name(b[ks - 1]) {
        ks -= 1;
    }
    for _ in 0..2 {
        if ks < 2 || b[ks - 1] != b' ' || !b[ks - 2].is_ascii_alphabetic() || ke - ks > 24 {
            break;
        }
        ks -= 1;
        while ks > 0 && ke - ks < 40 && b[ks - 1].is_ascii_alphabetic() {
            ks -= 1;
        }
    }
    let key: Vec<u8> = b[ks..ke].iter().filter(|c| c.is_ascii_alphanumeric()).map(u8::to_ascii_lowercase).collect();
    (!key.is_empty()).then_some(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checksum::testing::{check_table, micros_per_kb, sample_texts, well_formed};
    use crate::redact::Placeholders;

    const JWT: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";

    /// True positives and hard negatives, one a line (see [`check_table`]);
    /// `{bN}` stands for N token characters and `{jwt}` for [`JWT`], so
    /// that nothing here looks like a real credential to a scanner.
    const CASES: &str = r#"
        AWS_ACCESS_KEY | id [[AKIAIOSFODNN7EXAMPLE]], [[ASIAY34FZKBOKMUTVV7A]]
        -              | AKIAIOSFODNN7EXAMPL AKIAIOSFODNN7EXAMPLEX xAKIAIOSFODNN7EXAMPLE AKIAiosfodnn7example ASIAN
        AWS_SECRET_KEY | aws_secret_access_key = [[wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY]]
        AWS_SECRET_KEY | {"SecretAccessKey": "[[wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY]]"}
        AWS_SECRET_KEY | export AWS_SECRET_ACCESS_KEY='[[wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY]]'
        GCP_SERVICE_ACCOUNT_KEY | "private_key_id": "[[1234567890abcdef1234567890abcdef12345678]]",
        GCP_SERVICE_ACCOUNT_KEY | key=[[AIza{b35}]]&x
        AZURE_KEY | DefaultEndpointsProtocol=https;AccountName=a;AccountKey=[[{b86}==]];EndpointSuffix=x
        AZURE_KEY | AZURE_OPENAI_API_KEY=[[0123456789abcdef0123456789abcdef]]
        AZURE_KEY | azure_client_secret: [[abc8Q~{b34}]]
        GITHUB_TOKEN | use [[ghp_{b36}]] here, `[[gho_{b36}]]`. [[github_pat_{b22}_{b59}]]
        -            | ghp_{b30} xghp_{b36}
        GITLAB_TOKEN | [[glpat-{b20}]].
        SLACK_TOKEN | [[xoxb-1234567890-1234567890123-{b24}]] and [[xapp-1-A0123456789-{b30}]]
        SLACK_TOKEN | hook: [[https://hooks.slack.com/services/T00000000/B00000000/{b24}]]
        STRIPE_KEY | [[sk_live_{b24}]] [[rk_test_{b30}]] [[whsec_{b32}]]
        -          | pk_live_{b24} (publishable)
        OPENAI_KEY | [[sk-proj-{b64}]] [[sk-{b20}T3BlbkFJ{b20}]] [[sk-svcacct-{b40}]]
        -          | sk-{b20}, a task-based plan, a desk-top
        ANTHROPIC_KEY | ANTHROPIC_API_KEY=[[sk-ant-api03-{b93}AA]]
        HUGGINGFACE_TOKEN | [[hf_{b34}]]
        NPM_TOKEN | //registry.npmjs.org/:_authToken=[[npm_{b36}]]
        PYPI_TOKEN | password = [[pypi-AgEIcHlwaS5vcmc{b60}]]
        SENDGRID_KEY | [[SG.{b22}.{b43}]]
        -            | SG.is short
        JWT | Authorization: Bearer [[{jwt}]]
        JWT | t=[[{jwt}]]. id_token: [[{jwt}]]
        -   | eyJub3QiOiJhIGp3dCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.abc eyJhbGciOiJIUzI1NiJ9 x{jwt}
        BASIC_AUTH | postgres://admin:[[s3cr3tP4ss]]@db.example.com:5432/app redis://:[[Zx81kQ]]@cache:6379
        -          | https://user:password@host.com https://u:${PASS}@host.com http://example.com:8080/x
        HIGH_ENTROPY | password=[[Xk9#mQ2$vL8p]]
        HIGH_ENTROPY | {"api_key": "[[a8f5f167f44f4964e6c998dee827110c]]"}
        HIGH_ENTROPY | X-Api-Key: [[8f14e45fceea167a5a36dedd4bea2543]]
        HIGH_ENTROPY | export API_TOKEN='[[Zm9vYmFyYmF6cXV4MTIzNDU2]]'
        HIGH_ENTROPY | client_secret: '[[Ab3dEf6hIj9kLm2nOp5q]]'
        HIGH_ENTROPY | DB_PASSWORD: [[hunter22x]]
        HIGH_ENTROPY | token := "[[Q2xvdWRTZWNyZXQxMjM0NTY3]]"
        HIGH_ENTROPY | Authorization: Basic [[dXNlcjpwYXNzd29yZDEyMzQ1Ng==]]
        HIGH_ENTROPY | my API key: [[9f8e7d6c5b4a39281706f5e4d3c2b1a0]].
        HIGH_ENTROPY | secret: [[550e8400-e29b-41d4-a716-446655440000]]
        HIGH_ENTROPY | Passwort: [[Xk9#mQ2$vL8pé]], bitte; le mot de passe : [[Xk9#mQ2$vL8p]]
        -   | password=${DB_PASSWORD} api_key: <your-api-key> token: xxxxxxxxxxxxxxxxxxxx
        -   | password= password= password: Password1; password: changeme; password: hunter2; secret_name: my-secret-name-123456; max_tokens: 4096
        -   | commit=3f786850e387550fdab836ed7e6dc881de23001b
        -   | The sha256 is e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855.
        -   | request_id: 550e8400-e29b-41d4-a716-446655440000 version: 1.2.3-beta.4 order_id=ORD-2024-000123
        -   | password = get_password() token = settings.api_token api_key = os.environ['API_KEY']
        -   | data: dGhpcyBpcyBhIHRlc3Qgb2Ygb3JkaW5hcnkgd29yZHM=
        -   | author: Jane Doe-Smith-Johnson-1234
        -   | auth_url: https://login.example.com/oauth2/v2.0/token
        -   | token: abcdefghijklmnopqrstuvwxyz; Tokens: they are how models read text
        -   | if a == b and c != d: x = y::z
        GITHUB_TOKEN | GITHUB_TOKEN=[[ghp_{b36}]] {"token": "[[ghp_{b36}]]"}
        GITHUB_TOKEN | トークン「[[ghp_{b36}]]」です clé:[[ghp_{b36}]].
    "#;

    /// A token-shaped filler of `n` characters.
    fn body(n: usize) -> String {
        "aB3dE6gH9jK2mN5pQ8sT1vW4yZ7".chars().cycle().take(n).collect()
    }

    fn expand(table: &str) -> String {
        let mut out = table.replace("{jwt}", JWT);
        while let Some(at) = out.find("{b") {
            let close = at + out[at..].find('}').unwrap();
            let n = out[at + 2..close].parse().unwrap();
            out.replace_range(at..=close, &body(n));
        }
        out
    }

    #[test]
    fn table() {
        let secrets = Secrets::new();
        check_table(&expand(CASES), |text| secrets.find(text));
    }

    #[test]
    fn private_keys() {
        let found = |text: &str| -> Vec<String> {
            Secrets::new().find(text).iter().map(|f| format!("{} {}", f.kind, &text[f.start..f.end])).collect()
        };
        let block = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7\nabc=\n-----END RSA PRIVATE KEY-----";
        assert_eq!(found(&format!("key:\n{block}\nthanks")), [format!("PRIVATE_KEY {block}")]);
        let cut = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk (cut)";
        assert_eq!(found(cut), ["PRIVATE_KEY -----BEGIN OPENSSH PRIVATE KEY-----"]);
        let json = r#"{"private_key": "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBg\n-----END PRIVATE KEY-----\n"}"#;
        assert_eq!(
            found(json),
            [r#"PRIVATE_KEY -----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBg\n-----END PRIVATE KEY-----"#]
        );
        assert!(
            found("-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY----- -----BEGIN CERTIFICATE-----").is_empty()
        );
    }

    #[test]
    fn long_non_ascii_values_stay_on_char_boundaries() {
        let secrets = Secrets::new();
        for n in 100..140 {
            let long = "é".repeat(n);
            for text in [format!("https://u:{long}@h.io"), format!("password={long}"), format!("token: \"{long}\"")] {
                for f in secrets.find(&text) {
                    assert!(text.is_char_boundary(f.start) && text.is_char_boundary(f.end));
                }
            }
        }
    }

    #[test]
    fn compiled_once_and_shared_across_threads() {
        fn shared<T: Send + Sync>() {}
        shared::<Secrets>();
    }

    #[test]
    fn kinds_are_listed() {
        let text = expand("a {jwt} b AKIAIOSFODNN7EXAMPLE c password=Xk9#mQ2$vL8p ü");
        let kinds: Vec<_> = Secrets::default().find(&text).iter().map(|f| f.kind).collect();
        assert_eq!(kinds, ["JWT", "AWS_ACCESS_KEY", "HIGH_ENTROPY"]);
        assert!(RULES.iter().all(|(_, rule)| match rule {
            Rule::Token(kind, ..) | Rule::Value(kind, ..) => KINDS.contains(kind),
            _ => true,
        }));
    }

    proptest::proptest! {
        #[test]
        fn any_text_gives_well_formed_findings(text in "\\PC*") {
            well_formed(&text, &Secrets::new().find(&text))?;
        }

        #[test]
        fn any_bytes_give_well_formed_findings(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..400)) {
            let text = String::from_utf8_lossy(&bytes);
            well_formed(&text, &Secrets::new().find(&text))?;
        }

        #[test]
        fn secretish_soup_gives_well_formed_findings(
            text in "(sk-|eyJ|ghp_|AKIA|-----BEGIN |://|token=|password: |[A-Za-z0-9._~:/=\"' -]|é){0,60}",
        ) {
            well_formed(&text, &Secrets::new().find(&text))?;
        }

        #[test]
        fn redaction_never_leaves_a_detected_token(
            tail in "[A-Za-z0-9]{36}",
            before in "\\PC{0,30}",
            after in "\\PC{0,30}",
        ) {
            let token = format!("ghp_{tail}");
            let text = format!("{before} {token} and password=\"Xk9#mQ2$vL8p\" {after}");
            let out = Placeholders::default().redact(&text, &Secrets::new().find(&text)).into_owned();
            proptest::prop_assert!(!out.contains(&token) && !out.contains("Xk9#mQ2$vL8p"), "{out}");
        }
    }

    /// `cargo test -p detectors --release -- --ignored --nocapture`
    #[test]
    #[ignore = "timing, for a release build by hand"]
    fn throughput() {
        let secrets = Secrets::new();
        for (name, text) in sample_texts() {
            println!("secrets, {name}: {:.2} µs/KB", micros_per_kb(&text, |t| secrets.find(t).len()));
        }
    }
}
