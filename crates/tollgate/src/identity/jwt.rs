//! JWT bearer tokens from trusted issuers.
//!
//! Each issuer publishes its signing keys as a JWKS. Keys are fetched once,
//! cached in memory (the cache outlives config reloads), and fetched again
//! when a token names a key id the cache does not know — at most once every
//! `REFETCH_EVERY` per issuer, so a flood of bogus key ids cannot turn into a
//! flood of fetches. `iss`, `aud`, `exp` and `nbf` are checked; only
//! asymmetric algorithms are accepted (`none` and shared-secret HMAC never).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::Uri;
use http_body_util::{BodyExt, Full, Limited};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

use crate::config::diag::Diags;
use crate::config::file::JwtIssuerSection;
use crate::identity::Role;
use crate::identity::{Principal, PrincipalKind};
use crate::providers::http::{HttpClient, Upstreams};

const REFETCH_EVERY: Duration = Duration::from_secs(10);
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_AGE: Duration = Duration::from_secs(600);

/// Signing keys of one JWKS URL, by key id.
pub struct Jwks {
    url: Uri,
    client: HttpClient,
    keys: ArcSwap<HashMap<String, (Arc<DecodingKey>, Algorithm)>>,
    /// Millis since the process epoch of the last fetch attempt (0 = never).
    last_fetch: AtomicU64,
    fetching: tokio::sync::Mutex<()>,
}

fn epoch() -> Instant {
    static E: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *E.get_or_init(Instant::now)
}

impl Jwks {
    fn get(&self, kid: &str) -> Option<(Arc<DecodingKey>, Algorithm)> {
        self.keys.load().get(kid).cloned()
    }

    /// Refreshes in the background when the set is older than `MAX_AGE`, so
    /// a key the issuer withdrew stops being trusted without a restart.
    fn refresh_if_stale(self: &Arc<Self>) {
        let now = epoch().elapsed().as_millis() as u64 + 1;
        let last = self.last_fetch.load(Ordering::Relaxed);
        if last != 0 && now - last > MAX_AGE.as_millis() as u64 && self.fetching.try_lock().is_ok() {
            let me = self.clone();
            crate::task::spawn("jwks-refresh", async move { me.refresh().await });
        }
    }

    /// Fetches the key set unless a fetch happened within `REFETCH_EVERY`.
    async fn refresh(&self) {
        let _one = self.fetching.lock().await;
        let now = epoch().elapsed().as_millis() as u64 + 1;
        let last = self.last_fetch.load(Ordering::Relaxed);
        if last != 0 && now - last < REFETCH_EVERY.as_millis() as u64 {
            return;
        }
        self.last_fetch.store(now, Ordering::Relaxed);
        match tokio::time::timeout(FETCH_TIMEOUT, self.fetch()).await {
            Ok(Ok(n)) => tracing::info!(url = %self.url, keys = n, "fetched JWKS"),
            Ok(Err(e)) => tracing::warn!(url = %self.url, error = %e, "could not fetch JWKS"),
            Err(_) => tracing::warn!(url = %self.url, "JWKS fetch timed out"),
        }
    }

    async fn fetch(&self) -> Result<usize, String> {
        let req = http::Request::get(self.url.clone()).body(Full::new(Bytes::new())).map_err(|e| e.to_string())?;
        let resp = self.client.request(req).await.map_err(|e| e.to_string())?;
        if !resp.status().is_success() {
            return Err(format!("status {}", resp.status()));
        }
        let body = Limited::new(resp.into_body(), 1 << 20).collect().await.map_err(|e| e.to_string())?.to_bytes();
        let set: JwkSet = serde_json::from_slice(&body).map_err(|e| format!("not a JWKS: {e}"))?;
        let mut keys = HashMap::new();
        for jwk in &set.keys {
            let Some(kid) = jwk.common.key_id.clone() else { continue };
            let Ok(key) = DecodingKey::from_jwk(jwk) else { continue };
            let alg = match jwk.common.key_algorithm.map(|a| a.to_string()) {
                Some(a) => a.parse::<Algorithm>().ok(),
                None => default_alg(jwk),
            };
            if let Some(alg) = alg.filter(|a| asymmetric(*a)) {
                keys.insert(kid, (Arc::new(key), alg));
            }
        }
        let n = keys.len();
        self.keys.store(Arc::new(keys));
        Ok(n)
    }
}

fn default_alg(jwk: &jsonwebtoken::jwk::Jwk) -> Option<Algorithm> {
    use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve};
    match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Some(Algorithm::RS256),
        AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
            EllipticCurve::P256 => Some(Algorithm::ES256),
            EllipticCurve::P384 => Some(Algorithm::ES384),
            _ => None,
        },
        AlgorithmParameters::OctetKeyPair(_) => Some(Algorithm::EdDSA),
        AlgorithmParameters::OctetKey(_) => None,
    }
}

fn asymmetric(a: Algorithm) -> bool {
    !matches!(a, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512)
}

/// JWKS caches by URL, kept across reloads.
#[derive(Clone, Default)]
pub struct JwksRegistry {
    map: Arc<std::sync::Mutex<HashMap<String, Arc<Jwks>>>>,
}

impl std::fmt::Debug for JwksRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JwksRegistry")
    }
}

impl JwksRegistry {
    fn get(&self, url: Uri, ups: &Upstreams) -> Arc<Jwks> {
        let mut m = self.map.lock().unwrap_or_else(|p| p.into_inner());
        m.entry(url.to_string())
            .or_insert_with(|| {
                Arc::new(Jwks {
                    url,
                    client: ups.client(FETCH_TIMEOUT),
                    keys: ArcSwap::from_pointee(HashMap::new()),
                    last_fetch: AtomicU64::new(0),
                    fetching: tokio::sync::Mutex::new(()),
                })
            })
            .clone()
    }
}

pub struct Issuer {
    pub issuer: String,
    audiences: Vec<String>,
    jwks: Arc<Jwks>,
    claims: crate::config::file::JwtClaimsSection,
    roles: BTreeMap<String, Role>,
    allow: super::Allowlist,
    leeway: u64,
}

impl std::fmt::Debug for Issuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Issuer({})", self.issuer)
    }
}

pub fn build(sections: &[JwtIssuerSection], ups: &Upstreams, reg: &JwksRegistry, d: &mut Diags) -> Vec<Arc<Issuer>> {
    sections
        .iter()
        .filter_map(|s| {
            let url = match s.jwks_url.value.parse::<Uri>() {
                Ok(u) if matches!(u.scheme_str(), Some("http" | "https")) && u.authority().is_some() => u,
                _ => {
                    d.at(&s.jwks_url, format!("jwks_url `{}` is not an http(s) URL", s.jwks_url.value), "");
                    return None;
                }
            };
            let mut roles = BTreeMap::new();
            for (group, role) in &s.roles {
                match serde_json::from_value::<Role>(serde_json::Value::String(role.clone())) {
                    Ok(r) => {
                        roles.insert(group.clone(), r);
                    }
                    Err(_) => {
                        d.at(&s.issuer, format!("`{role}` is not a role"), "use admin, team_admin, viewer or member")
                    }
                }
            }
            Some(Arc::new(Issuer {
                issuer: s.issuer.value.clone(),
                audiences: s.audiences.clone(),
                jwks: reg.get(url, ups),
                claims: crate::config::file::JwtClaimsSection {
                    subject: s.claims.subject.clone(),
                    team: s.claims.team.clone(),
                    groups: s.claims.groups.clone(),
                    metadata: s.claims.metadata.clone(),
                },
                roles,
                allow: super::Allowlist::build(&s.models, &s.tools, &s.agents, d),
                leeway: s.leeway_secs.unwrap_or(30),
            }))
        })
        .collect()
}

/// Does the credential look like a JWT (three base64url segments)?
pub fn looks_like_jwt(token: &[u8]) -> bool {
    token.starts_with(b"eyJ") && token.iter().filter(|&&b| b == b'.').count() == 2
}

/// Why a token was refused; said plainly (never echoing the token).
pub type Refusal = String;

/// Fetches every issuer's keys now (at start-up), without waiting.
pub fn prefetch(issuers: &[Arc<Issuer>]) {
    for i in issuers {
        let jwks = i.jwks.clone();
        crate::task::spawn("jwks-refresh", async move { jwks.refresh().await });
    }
}

pub async fn verify(issuers: &[Arc<Issuer>], token: &str) -> Result<Principal, Refusal> {
    let header = jsonwebtoken::decode_header(token).map_err(|e| format!("malformed JWT: {e}"))?;
    if !asymmetric(header.alg) {
        return Err("JWTs signed with a shared secret (HS*) are not accepted".into());
    }
    let kid = header.kid.ok_or("the JWT header has no `kid`")?;
    // The issuer is read before the signature is checked only to pick the key set.
    let unverified = jsonwebtoken::dangerous::insecure_decode::<serde_json::Value>(token)
        .map_err(|e| format!("malformed JWT: {e}"))?;
    let iss = unverified.claims.get("iss").and_then(|v| v.as_str()).ok_or("the JWT has no `iss` claim")?;
    let issuer = issuers.iter().find(|i| i.issuer == iss).ok_or_else(|| format!("issuer `{iss}` is not trusted"))?;
    let (key, alg) = match issuer.jwks.get(&kid) {
        Some(k) => k,
        None => {
            issuer.jwks.refresh().await;
            issuer.jwks.get(&kid).ok_or_else(|| format!("unknown signing key `{kid}` for issuer `{iss}`"))?
        }
    };
    if header.alg != alg {
        return Err(format!("the JWT says {:?} but key `{kid}` is for {alg:?}", header.alg));
    }
    let mut v = Validation::new(alg);
    v.set_issuer(&[&issuer.issuer]);
    v.validate_nbf = true;
    v.leeway = issuer.leeway;
    if issuer.audiences.is_empty() {
        v.validate_aud = false;
        v.set_required_spec_claims(&["exp", "iss"]);
    } else {
        // With audiences configured, a token without `aud` is refused too.
        v.set_audience(&issuer.audiences);
        v.set_required_spec_claims(&["exp", "iss", "aud"]);
    }
    let data = jsonwebtoken::decode::<serde_json::Value>(token, &key, &v).map_err(|e| match e.kind() {
        jsonwebtoken::errors::ErrorKind::ExpiredSignature => "the JWT has expired".to_string(),
        jsonwebtoken::errors::ErrorKind::ImmatureSignature => "the JWT is not valid yet (nbf)".to_string(),
        jsonwebtoken::errors::ErrorKind::InvalidAudience => "the JWT is for another audience".to_string(),
        jsonwebtoken::errors::ErrorKind::InvalidSignature => "the JWT signature does not verify".to_string(),
        jsonwebtoken::errors::ErrorKind::MissingRequiredClaim(c) => format!("the JWT has no `{c}` claim"),
        _ => format!("the JWT was refused: {e}"),
    })?;
    if data.claims.get(&issuer.claims.subject).and_then(|v| v.as_str()).is_none_or(str::is_empty) {
        return Err(format!("the JWT has no `{}` claim to identify its subject", issuer.claims.subject));
    }
    issuer.jwks.refresh_if_stale();
    Ok(issuer.principal(&data.claims))
}

impl Issuer {
    fn principal(&self, claims: &serde_json::Value) -> Principal {
        let s = |name: &str| claims.get(name).and_then(|v| v.as_str()).map(str::to_string);
        let subject = s(&self.claims.subject).unwrap_or_default();
        let team = s(&self.claims.team);
        let groups: Vec<String> = match claims.get(&self.claims.groups) {
            Some(serde_json::Value::Array(a)) => a.iter().filter_map(|g| g.as_str().map(str::to_string)).collect(),
            Some(serde_json::Value::String(g)) => g.split_whitespace().map(str::to_string).collect(),
            _ => Vec::new(),
        };
        let mut metadata = BTreeMap::new();
        for (key, claim) in &self.claims.metadata {
            if let Some(v) = s(claim) {
                metadata.insert(key.clone(), v);
            }
        }
        if let Some(t) = &team {
            metadata.insert("team".into(), t.clone());
        }
        // The strongest role any of the subject's groups grants.
        let rank = |r: &Role| match r {
            Role::Admin => 3,
            Role::TeamAdmin => 2,
            Role::Viewer => 1,
            Role::Member => 0,
        };
        let role = groups.iter().filter_map(|g| self.roles.get(g)).max_by_key(|r| rank(r)).copied();
        Principal {
            id: format!("jwt:{subject}"),
            kind: PrincipalKind::Jwt,
            allow: self.allow.clone(),
            groups,
            metadata,
            role,
            team,
            owner: Some(subject),
        }
    }
}
