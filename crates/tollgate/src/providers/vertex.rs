//! `vertex`: Gemini and Anthropic models on Google Cloud Vertex AI.
//!
//! Calls carry an OAuth access token obtained with the service account's
//! key (a signed JWT exchanged at the account's token URI). The token is
//! fetched once on first use and then refreshed in the background five
//! minutes before it expires, so no request waits on the token endpoint
//! after the first.

use std::sync::{Arc, Weak};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use bytes::Bytes;
use http::{HeaderValue, Method, Request, header};
use http_body_util::{BodyExt, Full};
use serde::Deserialize;

use super::http::{HttpClient, Upstreams};
use super::{Call, Timeouts, UpstreamReply};
use crate::config::diag::Diags;
use crate::config::file::ProviderSection;
use crate::error::UpstreamError;

#[derive(Debug)]
pub struct Vertex {
    gemini: super::gemini::Gemini,
    anthropic: super::anthropic::Anthropic,
}

/// What Gemini and Claude on one Vertex provider share: the configured
/// headers, the pooled client, the service account's token source and the
/// project/location URL prefix.
pub struct OnVertex {
    pub headers: http::HeaderMap,
    pub client: HttpClient,
    pub tokens: Arc<TokenSource>,
    pub prefix: String,
}

impl Vertex {
    pub fn build(sec: &ProviderSection, ups: &Upstreams, t: &Timeouts, diags: &mut Diags) -> Option<Vertex> {
        let path = sec
            .credentials_file
            .as_ref()
            .map(|p| p.value.clone())
            .or_else(|| std::env::var("GOOGLE_APPLICATION_CREDENTIALS").ok());
        let Some(path) = path else {
            diags.at(
                &sec.name,
                format!("provider `{}` of type `vertex` needs service-account credentials", sec.name.value),
                "set credentials_file: /path/to/key.json (or GOOGLE_APPLICATION_CREDENTIALS)",
            );
            return None;
        };
        let account = match std::fs::read(&path).map_err(|e| e.to_string()).and_then(|b| {
            serde_json::from_slice::<ServiceAccount>(&b).map_err(|e| format!("not a service-account key: {e}"))
        }) {
            Ok(a) => a,
            Err(e) => {
                let msg = format!("credentials file `{path}`: {e}");
                let hint = "download a JSON key for the service account";
                match &sec.credentials_file {
                    Some(c) => diags.at(c, msg, hint),
                    None => diags.at(&sec.name, msg, hint),
                }
                return None;
            }
        };
        let key = match jsonwebtoken::EncodingKey::from_rsa_pem(account.private_key.as_bytes()) {
            Ok(k) => k,
            Err(e) => {
                diags.at(
                    &sec.name,
                    format!("the service account's private_key is not an RSA PEM key: {e}"),
                    "use the key file as downloaded",
                );
                return None;
            }
        };
        let Some(project) = sec.project.clone().or_else(|| account.project_id.clone()) else {
            diags.at(&sec.name, "vertex needs a project", "add project: my-gcp-project");
            return None;
        };
        let region = sec.region.clone().unwrap_or_else(|| "us-central1".into());
        let default_base = if region == "global" {
            "https://aiplatform.googleapis.com".to_string()
        } else {
            format!("https://{region}-aiplatform.googleapis.com")
        };
        let base = super::exchange::check_base(sec, &default_base, diags)?;
        let prefix = format!("{base}/v1/projects/{project}/locations/{region}");
        let tokens = Arc::new(TokenSource {
            email: account.client_email,
            token_uri: account.token_uri.unwrap_or_else(|| "https://oauth2.googleapis.com/token".into()),
            key,
            client: ups.client(t.connect),
            current: ArcSwapOption::empty(),
            fetch: tokio::sync::Mutex::new(()),
            refresher: std::sync::Once::new(),
        });
        let mut headers = http::HeaderMap::new();
        super::exchange::extra_headers(sec, &mut headers, diags);
        let on = OnVertex { headers, client: ups.client(t.connect), tokens, prefix };
        Some(Vertex {
            gemini: super::gemini::Gemini::on_vertex(&on),
            anthropic: super::anthropic::Anthropic::on_vertex(sec, &on),
        })
    }

    pub async fn call(&self, provider: &str, t: &Timeouts, call: Call<'_>) -> Result<UpstreamReply, UpstreamError> {
        // Vertex names Anthropic's models `claude-…`; everything else is Gemini's wire format.
        if call.upstream_model.starts_with("claude") {
            self.anthropic.call(provider, t, call).await
        } else {
            self.gemini.call(provider, t, call).await
        }
    }
}

#[derive(Deserialize)]
struct ServiceAccount {
    client_email: String,
    private_key: String,
    #[serde(default)]
    project_id: Option<String>,
    #[serde(default)]
    token_uri: Option<String>,
}

pub struct TokenSource {
    email: String,
    token_uri: String,
    key: jsonwebtoken::EncodingKey,
    client: HttpClient,
    current: ArcSwapOption<Token>,
    /// One fetch at a time: concurrent first requests share it.
    fetch: tokio::sync::Mutex<()>,
    refresher: std::sync::Once,
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSource")
            .field("email", &self.email)
            .field("token_uri", &self.token_uri)
            .finish_non_exhaustive()
    }
}

struct Token {
    header: HeaderValue,
    expires: tokio::time::Instant,
}

/// Refresh this long before expiry; a token is not used within a minute of it.
const REFRESH_AHEAD: Duration = Duration::from_secs(300);

impl TokenSource {
    /// `Bearer <token>` for the next call: the cached token, or (only before
    /// the first fetch, or if refreshing has failed until expiry) a fetch now.
    pub async fn bearer(self: &Arc<Self>, provider: &str) -> Result<HeaderValue, UpstreamError> {
        if let Some(t) = self.valid() {
            return Ok(t);
        }
        let _one = self.fetch.lock().await;
        if let Some(t) = self.valid() {
            return Ok(t);
        }
        let token = self.fetch_token().await.map_err(|message| UpstreamError::Connect {
            provider: provider.into(),
            message: format!("could not get a Vertex access token: {message}"),
        })?;
        let header = token.header.clone();
        self.current.store(Some(Arc::new(token)));
        let weak = Arc::downgrade(self);
        self.refresher.call_once(|| {
            crate::task::spawn("vertex-token-refresh", refresh(weak));
        });
        Ok(header)
    }

    fn valid(&self) -> Option<HeaderValue> {
        let t = self.current.load_full()?;
        (t.expires > tokio::time::Instant::now() + Duration::from_secs(60)).then(|| t.header.clone())
    }

    async fn fetch_token(&self) -> Result<Token, String> {
        let now = crate::translate::now_secs();
        let claims = serde_json::json!({
            "iss": self.email,
            "scope": "https://www.googleapis.com/auth/cloud-platform",
            "aud": self.token_uri,
            "iat": now,
            "exp": now + 3600,
        });
        let jwt = jsonwebtoken::encode(&jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256), &claims, &self.key)
            .map_err(|e| format!("signing the token request: {e}"))?;
        let form = format!("grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion={jwt}");
        let req = Request::builder()
            .method(Method::POST)
            .uri(&self.token_uri)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Full::new(Bytes::from(form)))
            .map_err(|e| e.to_string())?;
        let resp = tokio::time::timeout(Duration::from_secs(30), self.client.request(req))
            .await
            .map_err(|_| "the token endpoint did not answer within 30s".to_string())?
            .map_err(|e| e.to_string())?;
        let status = resp.status();
        let body = resp.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
        if !status.is_success() {
            return Err(format!(
                "token endpoint returned {status}: {}",
                String::from_utf8_lossy(&body[..body.len().min(300)])
            ));
        }
        #[derive(Deserialize)]
        struct Answer {
            access_token: String,
            #[serde(default)]
            expires_in: Option<u64>,
        }
        let a: Answer = serde_json::from_slice(&body).map_err(|e| format!("token answer: {e}"))?;
        let mut header = HeaderValue::from_str(&format!("Bearer {}", a.access_token)).map_err(|e| e.to_string())?;
        header.set_sensitive(true);
        let expires = tokio::time::Instant::now() + Duration::from_secs(a.expires_in.unwrap_or(3600));
        Ok(Token { header, expires })
    }
}

/// Keeps the token fresh until the provider is dropped (a reload that removes it).
async fn refresh(weak: Weak<TokenSource>) {
    loop {
        let wait = match weak.upgrade().and_then(|s| s.current.load_full()) {
            Some(t) => t.expires.saturating_duration_since(tokio::time::Instant::now()).saturating_sub(REFRESH_AHEAD),
            None => Duration::from_secs(5),
        };
        tokio::time::sleep(wait.max(Duration::from_secs(5))).await;
        let Some(s) = weak.upgrade() else { return };
        match s.fetch_token().await {
            Ok(t) => s.current.store(Some(Arc::new(t))),
            Err(e) => {
                tracing::warn!(account = %s.email, error = %e, "refreshing the Vertex access token failed; retrying")
            }
        }
    }
}
