//! The service-account token endpoint (`POST /token`, the OAuth JWT bearer
//! grant) and the form/percent decoding the Gemini and Bedrock mocks share.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use http::{Response, header};
use serde_json::{Value, json};

use crate::openai::full;
use crate::{Body, Recorded};

const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const CLOUD_PLATFORM: &str = "https://www.googleapis.com/auth/cloud-platform";
/// What every access token this endpoint issues starts with.
pub(crate) const TOKEN_PREFIX: &str = "ya29.mock-";

/// Access tokens handed out so far (numbering only; any `ya29.mock-` token is accepted).
static TOKENS: AtomicU64 = AtomicU64::new(0);

/// Decodes `%XX` escapes (and `+` as a space when `plus_as_space`, for forms).
pub(crate) fn percent_decode(s: &str, plus_as_space: bool) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b
            .get(i + 1..i + 3)
            .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b[i], hex) {
            (b'%', Some(x)) => {
                out.push(x);
                i += 3;
            }
            (b'+', _) if plus_as_space => {
                out.push(b' ');
                i += 1;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `application/x-www-form-urlencoded` pairs (also a URL query).
pub(crate) fn form_pairs(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (percent_decode(k, true), percent_decode(v, true))
        })
        .collect()
}

pub(crate) fn form_value(pairs: &[(String, String)], name: &str) -> Option<String> {
    pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
}

pub(crate) fn token(req: &Recorded) -> Response<Body> {
    if req.method != "POST" {
        return full(405, "application/json", json!({ "error": "invalid_request" }).to_string());
    }
    let host = req.headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    match check_assertion(&req.body, host, now) {
        Ok(()) => {
            let n = TOKENS.fetch_add(1, Ordering::SeqCst) + 1;
            full(
                200,
                "application/json",
                json!({ "access_token": format!("{TOKEN_PREFIX}{n}"), "expires_in": 3600, "token_type": "Bearer" })
                    .to_string(),
            )
        }
        Err(m) => {
            full(400, "application/json", json!({ "error": "invalid_grant", "error_description": m }).to_string())
        }
    }
}

/// Strict base64url (no padding needed, `=` tolerated at the end).
fn b64url_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.trim_end_matches('=').bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

fn jwt_part(part: &str, what: &str) -> Result<Value, String> {
    let raw = b64url_decode(part).ok_or_else(|| format!("Invalid JWT: the {what} is not base64url"))?;
    serde_json::from_slice(&raw).map_err(|e| format!("Invalid JWT: the {what} is not JSON: {e}"))
}

/// Checks a token request's form body the way Google's token endpoint
/// would, without verifying the signature: the JWT bearer grant, an RS256
/// assertion with `iss`, the cloud-platform `scope`, `aud` = this token
/// URL and a lifetime of at most an hour that has not ended.
pub(crate) fn check_assertion(body: &[u8], host: Option<&str>, now: u64) -> Result<(), String> {
    let form = form_pairs(std::str::from_utf8(body).map_err(|_| "the form body is not UTF-8")?);
    let grant = form_value(&form, "grant_type").unwrap_or_default();
    if grant != JWT_BEARER {
        return Err(format!("Invalid grant_type: {grant:?}; expected {JWT_BEARER}"));
    }
    let assertion = form_value(&form, "assertion").ok_or("the form has no assertion")?;
    let parts: Vec<&str> = assertion.split('.').collect();
    let &[head, payload, signature] = parts.as_slice() else {
        return Err("Invalid JWT: an assertion has three dot-separated parts".into());
    };
    if signature.is_empty() {
        return Err("Invalid JWT Signature.".into());
    }
    let head = jwt_part(head, "header")?;
    if head.get("alg").and_then(Value::as_str) != Some("RS256") {
        return Err("Invalid JWT: the header's alg must be RS256".into());
    }
    let claims = jwt_part(payload, "payload")?;
    let claim = |k: &str| claims.get(k).and_then(Value::as_str).filter(|s| !s.is_empty());
    claim("iss").ok_or("Invalid JWT: no iss claim")?;
    let scope = claim("scope").unwrap_or_default();
    if !scope.split_whitespace().any(|s| s == CLOUD_PLATFORM) {
        return Err(format!("Invalid JWT: scope {scope:?} lacks {CLOUD_PLATFORM}"));
    }
    let aud = claim("aud").unwrap_or_default();
    let aud_ok = aud.ends_with("/token")
        && host.is_none_or(|h| aud == format!("http://{h}/token") || aud == format!("https://{h}/token"));
    if !aud_ok {
        return Err(format!("Invalid JWT: aud {aud:?} is not this token URL"));
    }
    let (Some(iat), Some(exp)) = (claims.get("iat").and_then(Value::as_u64), claims.get("exp").and_then(Value::as_u64))
    else {
        return Err("Invalid JWT: iat and exp must be integer seconds".into());
    };
    if exp <= iat || exp - iat > 3600 || exp <= now {
        return Err("Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim.".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64url(s: &str) -> String {
        aws_smithy_types::base64::encode(s).replace('+', "-").replace('/', "_").trim_end_matches('=').to_string()
    }

    fn form(claims: &Value) -> Vec<u8> {
        let jwt = format!("{}.{}.c2ln", b64url(r#"{"alg":"RS256","typ":"JWT"}"#), b64url(&claims.to_string()));
        format!("grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion={jwt}").into_bytes()
    }

    fn claims(aud: &str) -> Value {
        json!({ "iss": "sa@p.iam.gserviceaccount.com", "scope": CLOUD_PLATFORM, "aud": aud, "iat": 1000, "exp": 4600 })
    }

    #[test]
    fn token_assertion_checks() {
        let host = Some("127.0.0.1:9000");
        assert_eq!(check_assertion(&form(&claims("http://127.0.0.1:9000/token")), host, 2000), Ok(()));
        assert!(check_assertion(&form(&claims("http://elsewhere/token")), host, 2000).is_err());
        assert!(check_assertion(&form(&claims("http://127.0.0.1:9000/token")), host, 5000).is_err(), "expired");
        let mut no_scope = claims("http://127.0.0.1:9000/token");
        no_scope["scope"] = json!("https://www.googleapis.com/auth/userinfo.email");
        assert!(check_assertion(&form(&no_scope), host, 2000).is_err());
        let wrong_grant = b"grant_type=client_credentials&assertion=a.b.c";
        assert!(check_assertion(wrong_grant, host, 2000).is_err_and(|m| m.contains("grant_type")));
        assert!(
            check_assertion(
                b"grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=a.b",
                host,
                2000
            )
            .is_err()
        );
    }

    #[test]
    fn decodes_forms_and_base64url() {
        assert_eq!(percent_decode("a%3Ab+c%2", true), "a:b c%2");
        assert_eq!(percent_decode("v1%3A0", false), "v1:0");
        assert_eq!(b64url_decode(&b64url("hello?>")).as_deref(), Some(&b"hello?>"[..]));
    }
}
