//! SigV4 verification for the Bedrock mock: the signature of a request is
//! recomputed with aws-sigv4 from what arrived (method, path as received,
//! query, the headers named in `SignedHeaders`, `x-amz-date`, body) and
//! compared, the way the service checks it. aws-sigv4's defaults (double
//! percent-encoding of the already-encoded path, path normalization) are
//! what the real Bedrock service expects.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningParams, SigningSettings, sign};
use aws_sigv4::sign::v4;
use http::HeaderMap;

use super::{AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY};

const SERVICE: &str = "bedrock";
const MAX_SKEW: Duration = Duration::from_secs(15 * 60);

/// Why a request's signature was refused: its `x-amzn-ErrorType` and message.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct SigError {
    pub(crate) kind: &'static str,
    pub(crate) message: String,
}

fn err(kind: &'static str, message: impl Into<String>) -> SigError {
    SigError { kind, message: message.into() }
}

fn invalid(message: impl Into<String>) -> SigError {
    err("InvalidSignatureException", message)
}

const MISMATCH: &str = "The request signature we calculated does not match the signature you provided.";

/// The parts of `Authorization: AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…, Signature=…`.
#[derive(Debug)]
struct Authorization<'a> {
    key_id: &'a str,
    date: &'a str,
    region: &'a str,
    service: &'a str,
    signed_headers: Vec<&'a str>,
    signature: &'a str,
}

fn parse_authorization(h: &str) -> Option<Authorization<'_>> {
    let rest = h.strip_prefix("AWS4-HMAC-SHA256 ")?;
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for field in rest.split(',') {
        let (k, v) = field.trim().split_once('=')?;
        match k {
            "Credential" => credential = Some(v),
            "SignedHeaders" => signed = Some(v),
            "Signature" => signature = Some(v),
            _ => return None,
        }
    }
    let scope: Vec<&str> = credential?.split('/').collect();
    let &[key_id, date, region, service, "aws4_request"] = scope.as_slice() else {
        return None;
    };
    Some(Authorization {
        key_id,
        date,
        region,
        service,
        signed_headers: signed?.split(';').collect(),
        signature: signature?,
    })
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = (if y >= 0 { y } else { y - 399 }) / 400;
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `YYYYMMDDTHHMMSSZ` (the `x-amz-date` format) as a time.
pub(crate) fn parse_amz_date(s: &str) -> Option<SystemTime> {
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |from: usize, to: usize| -> Option<i64> {
        let t = s.get(from..to)?;
        if t.bytes().all(|c| c.is_ascii_digit()) { t.parse().ok() } else { None }
    };
    let (y, mo, d) = (num(0, 4)?, num(4, 6)?, num(6, 8)?);
    let (h, mi, se) = (num(9, 11)?, num(11, 13)?, num(13, 15)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let secs = days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + se;
    Some(UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).ok()?))
}

/// Verifies the SigV4 `Authorization` of a request now.
pub(crate) fn verify_sigv4(
    method: &str,
    path: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), SigError> {
    verify_at(method, path, query, headers, body, SystemTime::now())
}

pub(crate) fn verify_at(
    method: &str,
    path: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
    now: SystemTime,
) -> Result<(), SigError> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let missing = || err("MissingAuthenticationTokenException", "Missing Authentication Token");
    let auth = header("authorization").and_then(parse_authorization).ok_or_else(missing)?;
    if auth.key_id != AWS_ACCESS_KEY_ID {
        return Err(err("UnrecognizedClientException", "The security token included in the request is invalid."));
    }
    if auth.service != SERVICE {
        return Err(invalid(format!("Credential should be scoped to correct service: '{SERVICE}'.")));
    }
    let amz_date = header("x-amz-date").ok_or_else(|| {
        err(
            "IncompleteSignatureException",
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.",
        )
    })?;
    let time =
        parse_amz_date(amz_date).ok_or_else(|| invalid(format!("x-amz-date {amz_date:?} is not YYYYMMDDTHHMMSSZ")))?;
    if auth.date.len() != 8 || !amz_date.starts_with(auth.date) {
        return Err(invalid(format!(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{}' != '{}'",
            auth.date,
            &amz_date[..8]
        )));
    }
    let skew = now.duration_since(time).unwrap_or_else(|e| e.duration());
    if skew > MAX_SKEW {
        return Err(invalid(format!(
            "Signature expired: {amz_date} is more than 15 minutes away from the server time"
        )));
    }
    if !auth.signed_headers.contains(&"host") {
        return Err(err("InvalidSignatureException", "'Host' must be a 'SignedHeader' in the AWS Authorization."));
    }
    // aws-sigv4 adds `x-amz-date` (from the time) and the session token
    // itself; every other signed header is passed on as received.
    let token = header("x-amz-security-token");
    let token_signed = auth.signed_headers.contains(&"x-amz-security-token");
    if token_signed && token.is_none() {
        return Err(invalid("x-amz-security-token is a signed header but the request has none"));
    }
    let mut pairs: Vec<(&str, &str)> = Vec::new();
    for &name in &auth.signed_headers {
        if name == "x-amz-date" || name == "x-amz-security-token" {
            continue;
        }
        let before = pairs.len();
        for value in headers.get_all(name) {
            let value = value.to_str().map_err(|_| invalid(format!("signed header {name} is not visible ASCII")))?;
            pairs.push((name, value));
        }
        if pairs.len() == before {
            return Err(invalid(format!("{MISMATCH} (signed header {name} is not in the request)")));
        }
    }
    let host = header("host").unwrap_or("localhost");
    let mut uri = format!("http://{host}{path}");
    if let Some(q) = query.filter(|q| !q.is_empty()) {
        uri.push('?');
        uri.push_str(q);
    }
    let identity = Credentials::new(
        AWS_ACCESS_KEY_ID,
        AWS_SECRET_ACCESS_KEY,
        token.filter(|_| token_signed).map(str::to_string),
        None,
        "testkit-mock-upstream",
    )
    .into();
    let mut settings = SigningSettings::default();
    // Sign exactly the headers the client listed: exclude none of them.
    if let Some(excluded) = settings.excluded_headers.as_mut() {
        excluded.clear();
    }
    let params: SigningParams<'_> = v4::SigningParams::builder()
        .identity(&identity)
        .region(auth.region)
        .name(SERVICE)
        .time(time)
        .settings(settings)
        .build()
        .map_err(|e| invalid(format!("cannot build signing parameters: {e}")))?
        .into();
    let request = SignableRequest::new(method, uri, pairs.into_iter(), SignableBody::Bytes(body))
        .map_err(|e| invalid(format!("{MISMATCH} (the request cannot be read for signing: {e})")))?;
    let expected = sign(request, &params).map_err(|e| invalid(format!("{MISMATCH} (signing failed: {e})")))?;
    if expected.signature() == auth.signature { Ok(()) } else { Err(invalid(MISMATCH)) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    const HOST: &str = "bedrock-runtime.us-east-1.amazonaws.com";
    const PATH: &str = "/model/anthropic.claude-3-5-haiku-20241022-v1%3A0/converse";

    /// Signs like a client would, with aws-sigv4's defaults, and returns the headers sent.
    fn signed(body: &[u8], token: Option<&str>, time: SystemTime) -> HeaderMap {
        let identity =
            Credentials::new(AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, token.map(str::to_string), None, "test").into();
        let params: SigningParams<'_> = v4::SigningParams::builder()
            .identity(&identity)
            .region("us-east-1")
            .name("bedrock")
            .time(time)
            .settings(SigningSettings::default())
            .build()
            .expect("params")
            .into();
        let uri = format!("https://{HOST}{PATH}");
        let base = [("content-type", "application/json"), ("accept", "application/json")];
        let req = SignableRequest::new("POST", uri, base.into_iter(), SignableBody::Bytes(body)).expect("signable");
        let (instructions, _sig) = sign(req, &params).expect("sign").into_parts();
        let mut h = HeaderMap::new();
        h.insert("host", HeaderValue::from_static(HOST));
        for (k, v) in base {
            h.insert(k, HeaderValue::from_static(v));
        }
        for hd in instructions.into_parts().0 {
            h.insert(hd.name(), HeaderValue::from_str(hd.value()).expect("header value"));
        }
        h
    }

    #[test]
    fn accepts_what_aws_sigv4_signs_and_rejects_tampering() {
        let now = SystemTime::now();
        let body = br#"{"messages":[]}"#;
        let h = signed(body, None, now);
        assert_eq!(verify_at("POST", PATH, None, &h, body, now), Ok(()));
        let tampered = verify_at("POST", PATH, None, &h, br#"{"messages":[1]}"#, now);
        assert_eq!(tampered.map_err(|e| e.kind), Err("InvalidSignatureException"));
        let other_path = verify_at("POST", "/model/x/converse", None, &h, body, now);
        assert!(other_path.is_err());
        let late = verify_at("POST", PATH, None, &h, body, now + Duration::from_secs(3600));
        assert!(late.is_err());
    }

    #[test]
    fn session_token_is_part_of_the_signature() {
        let now = SystemTime::now();
        let mut h = signed(b"{}", Some("session-token-1"), now);
        assert!(h.get("x-amz-security-token").is_some());
        assert_eq!(verify_at("POST", PATH, None, &h, b"{}", now), Ok(()));
        h.insert("x-amz-security-token", HeaderValue::from_static("session-token-2"));
        assert!(verify_at("POST", PATH, None, &h, b"{}", now).is_err());
    }

    #[test]
    fn classifies_auth_failures() {
        let now = SystemTime::now();
        let none = verify_at("POST", PATH, None, &HeaderMap::new(), b"{}", now);
        assert_eq!(none.map_err(|e| e.kind), Err("MissingAuthenticationTokenException"));
        let mut h = signed(b"{}", None, now);
        let auth =
            h.get("authorization").and_then(|v| v.to_str().ok()).expect("auth").replace(AWS_ACCESS_KEY_ID, "AKIDOTHER");
        h.insert("authorization", HeaderValue::from_str(&auth).expect("value"));
        let wrong_key = verify_at("POST", PATH, None, &h, b"{}", now);
        assert_eq!(wrong_key.map_err(|e| e.kind), Err("UnrecognizedClientException"));
    }

    #[test]
    fn parses_amz_dates() {
        let t = parse_amz_date("20240101T000000Z").expect("date");
        assert_eq!(t.duration_since(UNIX_EPOCH).expect("after epoch").as_secs(), 1_704_067_200);
        let t = parse_amz_date("20000229T123456Z").expect("leap day");
        assert_eq!(t.duration_since(UNIX_EPOCH).expect("after epoch").as_secs(), 951_827_696);
        assert_eq!(parse_amz_date("2024-01-01T00:00:00Z"), None);
        assert_eq!(parse_amz_date("20241301T000000Z"), None);
    }
}
