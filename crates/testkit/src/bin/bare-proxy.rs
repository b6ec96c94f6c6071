//! A bare hyper pass-through proxy: the baseline the load benchmark compares
//! tollgate with. It forwards every request to one upstream over pooled
//! connections and streams the response back — no auth, no parsing, no
//! policy — so "tollgate minus bare proxy" is what the gateway's own work
//! costs, with the network hops of a proxy counted on both sides.
//!
//! Run: `bare-proxy 127.0.0.1:4300 127.0.0.1:9100`
#![expect(clippy::disallowed_methods, reason = "a baseline proxy: a task per connection, nothing to track")]

use std::convert::Infallible;
use std::net::SocketAddr;

use http::{Request, Response, StatusCode, Uri};
use http_body_util::BodyExt;
use http_body_util::combinators::BoxBody;
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

type Body = BoxBody<Bytes, hyper::Error>;

fn main() {
    let mut args = std::env::args().skip(1);
    let listen: SocketAddr = args.next().and_then(|a| a.parse().ok()).expect("usage: bare-proxy LISTEN UPSTREAM");
    let upstream: String = args.next().expect("usage: bare-proxy LISTEN UPSTREAM");
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    rt.block_on(async move {
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        let client: Client<HttpConnector, Incoming> = Client::builder(TokioExecutor::new()).build(http);
        let listener = tokio::net::TcpListener::bind(listen).await.expect("bind");
        eprintln!("bare proxy {listen} -> {upstream}");
        loop {
            let Ok((tcp, _)) = listener.accept().await else { continue };
            let _ = tcp.set_nodelay(true);
            let (client, upstream) = (client.clone(), upstream.clone());
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<Incoming>| forward(client.clone(), upstream.clone(), req));
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tcp), svc).await;
            });
        }
    });
}

async fn forward(
    client: Client<HttpConnector, Incoming>,
    upstream: String,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let (mut parts, body) = req.into_parts();
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    parts.uri = format!("http://{upstream}{path}").parse::<Uri>().unwrap_or_default();
    parts.headers.remove(http::header::HOST);
    match client.request(Request::from_parts(parts, body)).await {
        Ok(resp) => Ok(resp.map(|b| b.boxed())),
        Err(_) => {
            let mut r = Response::new(http_body_util::Empty::new().map_err(|never| match never {}).boxed());
            *r.status_mut() = StatusCode::BAD_GATEWAY;
            Ok(r)
        }
    }
}
