//! A tiny HTTP server that answers every request with a JSON document the
//! test can swap, counting requests and keeping what was POSTed — a
//! stand-in for a JWKS endpoint or a webhook receiver. It can fail the
//! first n requests with 500, to exercise retries.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::Response;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

pub struct JsonServer {
    pub addr: SocketAddr,
    body: Arc<Mutex<String>>,
    hits: Arc<AtomicUsize>,
    received: Arc<Mutex<Vec<(http::HeaderMap, Bytes)>>>,
    fail_first: Arc<AtomicUsize>,
}

impl JsonServer {
    pub async fn start(body: &str) -> JsonServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let body = Arc::new(Mutex::new(body.to_string()));
        let hits = Arc::new(AtomicUsize::new(0));
        let received = Arc::new(Mutex::new(Vec::new()));
        let fail_first = Arc::new(AtomicUsize::new(0));
        let (b, h, rec, ff) = (body.clone(), hits.clone(), received.clone(), fail_first.clone());
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else { continue };
                let (b, h, rec, ff) = (b.clone(), h.clone(), rec.clone(), ff.clone());
                tokio::spawn(async move {
                    let svc = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let (b, h, rec, ff) = (b.clone(), h.clone(), rec.clone(), ff.clone());
                        async move {
                            use http_body_util::BodyExt;
                            h.fetch_add(1, Ordering::SeqCst);
                            let (parts, body) = req.into_parts();
                            let bytes = body.collect().await.map(|c| c.to_bytes()).unwrap_or_default();
                            let failing =
                                ff.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok();
                            if !failing && parts.method == http::Method::POST {
                                rec.lock().expect("lock").push((parts.headers, bytes));
                            }
                            let text = b.lock().expect("lock").clone();
                            let mut r = Response::new(Full::new(Bytes::from(text)));
                            if failing {
                                *r.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
                            }
                            r.headers_mut().insert("content-type", "application/json".parse().expect("static"));
                            Ok::<_, Infallible>(r)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tcp), svc).await;
                });
            }
        });
        JsonServer { addr, body, hits, received, fail_first }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn set(&self, body: &str) {
        *self.body.lock().expect("lock") = body.to_string();
    }

    /// Answer the next `n` requests with 500 (they are not kept).
    pub fn fail_next(&self, n: usize) {
        self.fail_first.store(n, Ordering::SeqCst);
    }

    /// Every POST answered with success: headers and body.
    pub fn received(&self) -> Vec<(http::HeaderMap, Bytes)> {
        self.received.lock().expect("lock").clone()
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}
