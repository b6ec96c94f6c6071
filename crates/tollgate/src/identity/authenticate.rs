//! Stage 2: credential → principal. Keys are compared by their SHA-256
//! digest: the digest indexes the key table, and the final equality check is
//! constant-time, so response timing says nothing about how much of a
//! guessed key was right.

use std::sync::Arc;

use http::{HeaderMap, header};

use crate::digest::{ct_eq, sha256};
use crate::error::AuthError;
use crate::identity::keys::KeyRegistry;
use crate::identity::{AuthSettings, Principal};

/// Longest credential looked at; anything longer is refused unhashed.
const MAX_KEY_LEN: usize = 4096;

/// Master key and static keys from config first, then virtual keys, then
/// JWTs from trusted issuers.
pub async fn run(auth: &AuthSettings, keys: &KeyRegistry, headers: &HeaderMap) -> Result<Arc<Principal>, AuthError> {
    let presented = credential(headers).ok_or(AuthError::Missing)?;
    if presented.is_empty() || presented.len() > MAX_KEY_LEN {
        return Err(AuthError::Invalid);
    }
    let digest = sha256(presented);
    if let Some(master) = &auth.master
        && ct_eq(master, &digest)
    {
        return Ok(auth.master_principal.clone());
    }
    if let Some((stored, p)) = auth.keys.get_key_value(&digest)
        && ct_eq(stored, &digest)
    {
        return Ok(p.clone());
    }
    if let Some(p) = keys.lookup(presented) {
        // A key's `owner` is whatever its creator wrote, so the users
        // directory never adds to a key: it applies to verified JWT subjects only.
        return Ok(p);
    }
    if !auth.jwt.is_empty() && crate::identity::jwt::looks_like_jwt(presented) {
        let token = std::str::from_utf8(presented).map_err(|_| AuthError::Invalid)?;
        let p = crate::identity::jwt::verify(&auth.jwt, token).await.map(Arc::new).map_err(AuthError::InvalidToken)?;
        return Ok(if auth.users.is_empty() { p } else { auth.enrich(p) });
    }
    Err(AuthError::Invalid)
}

/// The caller of an admin route: a valid credential that carries an admin role.
pub async fn admin(auth: &AuthSettings, keys: &KeyRegistry, headers: &HeaderMap) -> Result<Arc<Principal>, AuthError> {
    let p = run(auth, keys, headers).await?;
    if p.role.is_none() {
        return Err(AuthError::NotAdmin);
    }
    Ok(p)
}

/// `Authorization: Bearer <key>` or `x-api-key: <key>`, as raw bytes.
fn credential(headers: &HeaderMap) -> Option<&[u8]> {
    if let Some(v) = headers.get(header::AUTHORIZATION) {
        let b = v.as_bytes();
        if let Some(rest) = b.get(..7).filter(|p| p.eq_ignore_ascii_case(b"bearer ")).map(|_| &b[7..]) {
            return Some(trim(rest));
        }
        // Another scheme (e.g. Basic from a proxy in between): look at x-api-key.
    }
    headers.get("x-api-key").map(|v| trim(v.as_bytes()))
}

fn trim(b: &[u8]) -> &[u8] {
    let start = b.iter().position(|c| !c.is_ascii_whitespace()).unwrap_or(b.len());
    let end = b.iter().rposition(|c| !c.is_ascii_whitespace()).map_or(start, |i| i + 1);
    &b[start..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::PrincipalKind;
    use http::HeaderValue;

    fn settings() -> AuthSettings {
        let mut a = AuthSettings { master: Some(sha256(b"master-key-1")), ..Default::default() };
        let p = Principal {
            id: "key:ci".into(),
            kind: PrincipalKind::StaticKey,
            allow: Default::default(),
            groups: vec![],
            role: None,
            team: None,
            owner: None,
            metadata: Default::default(),
        };
        a.keys.insert(sha256(b"data-key-1"), Arc::new(p));
        a
    }

    fn h(name: &'static str, v: &[u8]) -> HeaderMap {
        let mut m = HeaderMap::new();
        m.insert(name, HeaderValue::from_bytes(v).unwrap());
        m
    }

    #[tokio::test]
    async fn bearer_and_x_api_key_both_work() {
        let a = settings();
        let k = KeyRegistry::default();
        assert_eq!(run(&a, &k, &h("authorization", b"Bearer data-key-1")).await.unwrap().id, "key:ci");
        assert_eq!(run(&a, &k, &h("authorization", b"bearer  master-key-1 ")).await.unwrap().id, "master");
        assert_eq!(run(&a, &k, &h("x-api-key", b"data-key-1")).await.unwrap().id, "key:ci");
    }

    #[tokio::test]
    async fn bad_credentials_are_refused() {
        let a = settings();
        let k = KeyRegistry::default();
        assert!(matches!(run(&a, &k, &HeaderMap::new()).await, Err(AuthError::Missing)));
        assert!(matches!(run(&a, &k, &h("authorization", b"Basic abc")).await, Err(AuthError::Missing)));
        assert!(matches!(run(&a, &k, &h("authorization", b"Bearer nope")).await, Err(AuthError::Invalid)));
        assert!(matches!(run(&a, &k, &h("authorization", b"Bearer ' OR 1=1; --")).await, Err(AuthError::Invalid)));
        let huge = [b'a'; 10_000];
        assert!(matches!(run(&a, &k, &h("x-api-key", &huge)).await, Err(AuthError::Invalid)));
        assert!(matches!(admin(&a, &k, &h("x-api-key", b"data-key-1")).await, Err(AuthError::NotAdmin)));
        assert!(admin(&a, &k, &h("x-api-key", b"master-key-1")).await.is_ok());
    }
}
