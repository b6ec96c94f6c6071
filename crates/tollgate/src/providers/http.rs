//! Pooled HTTP clients for upstream calls. One client per distinct connect
//! timeout, shared by every provider that uses it and kept across reloads,
//! so warm connections (and their TLS sessions) outlive config changes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

pub type HttpClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// Installs the process-wide rustls crypto provider. Safe to call many times.
pub fn install_crypto() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

#[derive(Clone, Default)]
pub struct Upstreams {
    clients: Arc<Mutex<HashMap<Duration, HttpClient>>>,
}

impl std::fmt::Debug for Upstreams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Upstreams")
    }
}

impl Upstreams {
    /// The shared client for a connect timeout. Called at config load only,
    /// never per request, so the lock is not on the hot path.
    pub fn client(&self, connect_timeout: Duration) -> HttpClient {
        let mut map = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(connect_timeout).or_insert_with(|| build_client(connect_timeout)).clone()
    }
}

fn build_client(connect_timeout: Duration) -> HttpClient {
    install_crypto();
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(connect_timeout));
    http.set_keepalive(Some(Duration::from_secs(60)));
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_webpki_roots()
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(http);
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(1024)
        .build(https)
}
