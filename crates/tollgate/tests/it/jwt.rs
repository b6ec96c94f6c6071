//! JWT bearer tokens: RSA and EC keys from a local JWKS server; expiry,
//! audience, not-before, signature, `alg: none`, HMAC, unknown issuers;
//! refetch on an unknown `kid`, rate-limited; groups mapped to admin roles.

use std::time::{SystemTime, UNIX_EPOCH};

use http::Method;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};
use testkit::{JsonServer, MockUpstream};

use crate::common::*;

const RSA: &[u8] = include_bytes!("../fixtures/jwt/rsa.pem");
const RSA_OTHER: &[u8] = include_bytes!("../fixtures/jwt/rsa-other.pem");
const EC: &[u8] = include_bytes!("../fixtures/jwt/ec.pem");
const JWKS: &str = include_str!("../fixtures/jwt/jwks.json");
const JWKS_ROTATED: &str = include_str!("../fixtures/jwt/jwks-rotated.json");
const ISS: &str = "https://idp.test/";

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

fn token(alg: Algorithm, kid: &str, pem: &[u8], claims: Value) -> String {
    let key = match alg {
        Algorithm::ES256 => EncodingKey::from_ec_pem(pem).unwrap(),
        _ => EncodingKey::from_rsa_pem(pem).unwrap(),
    };
    let mut h = Header::new(alg);
    h.kid = Some(kid.into());
    encode(&h, &claims, &key).unwrap()
}

fn claims(extra: Value) -> Value {
    let mut c = json!({ "iss": ISS, "aud": "tollgate", "sub": "alice", "exp": now() + 300, "team": "payments",
                        "groups": ["engineering"], "project": "checkout" });
    if let (Some(c), Some(e)) = (c.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            c.insert(k.clone(), v.clone());
        }
    }
    c
}

async fn setup() -> (Harness, JsonServer, MockUpstream) {
    let up = MockUpstream::start().await;
    let jwks = JsonServer::start(JWKS).await;
    let extra = "  - name: premium\n    type: mock\n    models: [{ name: big }]\nrate_limits:\n  - { id: per-project, limit_by: [metadata.project_id], unit: requests_per_minute, limit: 3 }\n".to_string();
    let text = config(&up.base_url(), &extra).replace(
        "  keys:\n",
        &format!(
            "  jwt:\n    - issuer: \"{ISS}\"\n      jwks_url: \"{}\"\n      audiences: [tollgate]\n      claims: {{ metadata: {{ project_id: project }} }}\n      roles: {{ platform-admins: admin }}\n      models: [\"mock/*\"]\n  groups:\n    contractors: {{ models: [\"mock/echo\"] }}\n  keys:\n",
            jwks.url("/.well-known/jwks.json")
        ),
    );
    let h = Harness::start(&text).await;
    (h, jwks, up)
}

fn ask() -> Value {
    json!({ "model": "mock/echo", "messages": user("hi") })
}

#[tokio::test]
async fn rsa_and_ec_tokens_authenticate_with_their_claims() {
    let (h, _jwks, _up) = setup().await;
    let rs = token(Algorithm::RS256, "rsa-1", RSA, claims(json!({})));
    let r = h.chat(Some(&rs), &ask()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let es = token(Algorithm::ES256, "ec-1", EC, claims(json!({ "sub": "bob", "project": "search" })));
    assert_eq!(h.chat(Some(&es), &ask()).await.status, 200);
    // The issuer's model globs apply.
    let r = h.chat(Some(&rs), &json!({ "model": "premium/big", "messages": user("x") })).await;
    assert_eq!(r.status, 403);
    // Claims become metadata: the per-project limit counts alice's project.
    for _ in 0..2 {
        assert_eq!(h.chat(Some(&rs), &ask()).await.status, 200);
    }
    let r = h.chat(Some(&rs), &ask()).await;
    assert_eq!(r.status, 429);
    assert!(r.error_message().contains("checkout"), "{}", r.error_message());
}

#[tokio::test]
async fn bad_tokens_are_refused_with_a_reason() {
    let (h, _jwks, _up) = setup().await;
    let cases = [
        (token(Algorithm::RS256, "rsa-1", RSA, claims(json!({ "exp": now() - 3600 }))), "expired"),
        (token(Algorithm::RS256, "rsa-1", RSA, claims(json!({ "aud": "someone-else" }))), "audience"),
        (token(Algorithm::RS256, "rsa-1", RSA, claims(json!({ "nbf": now() + 3600 }))), "not valid yet"),
        (token(Algorithm::RS256, "rsa-1", RSA_OTHER, claims(json!({}))), "signature"),
        (token(Algorithm::RS256, "rsa-1", RSA, claims(json!({ "iss": "https://evil.test/" }))), "not trusted"),
        (token(Algorithm::RS256, "ec-1", RSA, claims(json!({}))), "is for"),
        (token(Algorithm::RS256, "rsa-1", RSA, without(claims(json!({})), "aud")), "no `aud` claim"),
        (token(Algorithm::RS256, "rsa-1", RSA, without(claims(json!({})), "sub")), "no `sub` claim"),
        (token(Algorithm::RS256, "rsa-1", RSA, without(claims(json!({})), "exp")), "no `exp` claim"),
    ];
    for (t, reason) in cases {
        let r = h.chat(Some(&t), &ask()).await;
        assert_eq!(r.status, 401, "{reason}: {}", r.text());
        assert!(r.error_message().contains(reason), "expected {reason:?}: {}", r.error_message());
        assert!(!r.text().contains(&t[..20]), "the token is never echoed");
    }
    // alg: none, and a shared-secret token, are never accepted.
    let b64 = |v: Value| base64url(v.to_string().as_bytes());
    let none = format!("{}.{}.", b64(json!({ "alg": "none", "kid": "rsa-1" })), b64(claims(json!({}))));
    assert_eq!(h.chat(Some(&none), &ask()).await.status, 401);
    let mut hs = Header::new(Algorithm::HS256);
    hs.kid = Some("rsa-1".into());
    let hs = encode(&hs, &claims(json!({})), &EncodingKey::from_secret(b"guessable")).unwrap();
    let r = h.chat(Some(&hs), &ask()).await;
    assert_eq!(r.status, 401);
    assert!(r.error_message().contains("shared secret"));
}

#[tokio::test]
async fn an_unknown_kid_triggers_one_rate_limited_refetch() {
    let (h, jwks, _up) = setup().await;
    let ok = token(Algorithm::RS256, "rsa-1", RSA, claims(json!({})));
    assert_eq!(h.chat(Some(&ok), &ask()).await.status, 200);
    let before = jwks.hits();
    // The issuer rotates its key; a token with the new kid makes the gateway look again.
    jwks.set(JWKS_ROTATED);
    tokio::time::sleep(std::time::Duration::from_millis(10_100)).await; // past the refetch interval
    let rotated = token(Algorithm::RS256, "rsa-2", RSA_OTHER, claims(json!({})));
    assert_eq!(h.chat(Some(&rotated), &ask()).await.status, 200, "learned the new key");
    assert_eq!(jwks.hits(), before + 1);
    // A flood of made-up kids does not become a flood of fetches.
    for i in 0..20 {
        let bogus = token(Algorithm::RS256, &format!("nope-{i}"), RSA, claims(json!({})));
        assert_eq!(h.chat(Some(&bogus), &ask()).await.status, 401);
    }
    assert_eq!(jwks.hits(), before + 1, "refetches are rate-limited");
}

#[tokio::test]
async fn groups_map_to_admin_roles() {
    let (h, _jwks, _up) = setup().await;
    let admin = token(Algorithm::RS256, "rsa-1", RSA, claims(json!({ "groups": ["engineering", "platform-admins"] })));
    let member = token(Algorithm::RS256, "rsa-1", RSA, claims(json!({})));
    let get = async |t: &str| h.send(Method::GET, &h.admin_url("/admin/keys"), Some(t), &[], "").await.status;
    assert_eq!(get(&admin).await, 200);
    assert_eq!(get(&member).await, 403);
}

fn without(mut v: Value, key: &str) -> Value {
    if let Some(o) = v.as_object_mut() {
        o.remove(key);
    }
    v
}

fn base64url(b: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for c in b.chunks(3) {
        let n =
            (u32::from(c[0]) << 16) | (u32::from(*c.get(1).unwrap_or(&0)) << 8) | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..=c.len() {
            out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

#[tokio::test]
async fn group_allowlists_apply_to_token_holders() {
    let (h, _jwks, _up) = setup().await;
    let contractor =
        token(Algorithm::RS256, "rsa-1", RSA, claims(json!({ "groups": ["contractors"], "project": "c1" })));
    assert_eq!(h.chat(Some(&contractor), &ask()).await.status, 200);
    let embed = json!({ "model": "mock/embed", "messages": user("x") });
    assert_eq!(h.chat(Some(&contractor), &embed).await.status, 403);
    let employee = token(Algorithm::RS256, "rsa-1", RSA, claims(json!({ "project": "c2" })));
    assert_eq!(h.chat(Some(&employee), &embed).await.status, 200, "no group allowlist applies");
}

#[tokio::test]
async fn the_users_directory_fills_in_team_and_role() {
    let (h, _jwks, _up) = setup().await;
    let dana = token(
        Algorithm::RS256,
        "rsa-1",
        RSA,
        without(without(claims(json!({ "sub": "dana", "project": "d1" })), "team"), "groups"),
    );
    assert_eq!(h.send(Method::GET, &h.admin_url("/admin/usage"), Some(&dana), &[], "").await.status, 403);
    let r = h
        .send(
            Method::PUT,
            &h.admin_url("/admin/users/dana"),
            Some(MASTER),
            &[],
            json!({ "team": "search", "role": "viewer" }).to_string(),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        h.send(Method::GET, &h.admin_url("/admin/usage"), Some(&dana), &[], "").await.status,
        200,
        "role from the directory"
    );
    // The team from the directory is pinned: a team allowlist applies to her.
    let r = h
        .send(
            Method::PUT,
            &h.admin_url("/admin/teams/search"),
            Some(MASTER),
            &[],
            json!({ "models": ["mock/embed"] }).to_string(),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(h.chat(Some(&dana), &ask()).await.status, 403, "mock/echo is outside team search's allowlist");
    let listed = h.send(Method::GET, &h.admin_url("/admin/users"), Some(MASTER), &[], "").await.json();
    assert_eq!(listed["active"], json!(["dana"]));
}
