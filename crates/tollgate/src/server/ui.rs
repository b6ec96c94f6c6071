//! The admin console at `/ui/` on the admin port, what it needs from the
//! server, and the data plane's CORS allowance for it.
//!
//! The console is plain JavaScript modules and CSS from `crates/tollgate/ui/`,
//! compiled into the binary: no build step, nothing fetched at run time. It
//! signs in with an admin credential and calls the admin API like any other
//! client; the one thing it cannot learn from a page URL is where the data
//! plane is (its playground chats through it), which `/admin/ui/settings`
//! answers. The data plane, on another port and so another origin, lets the
//! console read its answers (CORS) — that console only: an origin on the
//! admin port of the same host.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use serde_json::json;

use super::admin::{Permission, require};
use super::{App, json_response};
use crate::error::AdminError;

/// The addresses the listeners actually bound (the config may name port 0).
#[derive(Debug, Clone, Copy)]
pub struct Bound {
    pub data: SocketAddr,
    pub admin: SocketAddr,
}

/// Every file of the console: its name under `/ui/`, its type, its bytes.
/// A test checks this list against the directory, so a new file cannot be
/// forgotten here.
pub const ASSETS: &[(&str, &str, &str)] = &[
    ("index.html", "text/html; charset=utf-8", include_str!("../../ui/index.html")),
    ("app.css", "text/css; charset=utf-8", include_str!("../../ui/app.css")),
    ("favicon.svg", "image/svg+xml", include_str!("../../ui/favicon.svg")),
    ("js/main.js", JS, include_str!("../../ui/js/main.js")),
    ("js/api.js", JS, include_str!("../../ui/js/api.js")),
    ("js/dom.js", JS, include_str!("../../ui/js/dom.js")),
    ("js/charts.js", JS, include_str!("../../ui/js/charts.js")),
    ("js/pages/dashboard.js", JS, include_str!("../../ui/js/pages/dashboard.js")),
    ("js/pages/requests.js", JS, include_str!("../../ui/js/pages/requests.js")),
    ("js/pages/keys.js", JS, include_str!("../../ui/js/pages/keys.js")),
    ("js/pages/usage.js", JS, include_str!("../../ui/js/pages/usage.js")),
    ("js/pages/limits.js", JS, include_str!("../../ui/js/pages/limits.js")),
    ("js/pages/config.js", JS, include_str!("../../ui/js/pages/config.js")),
    ("js/pages/mcp.js", JS, include_str!("../../ui/js/pages/mcp.js")),
    ("js/pages/playground.js", JS, include_str!("../../ui/js/pages/playground.js")),
];

const JS: &str = "text/javascript; charset=utf-8";

/// `/ui`, `/ui/` and the console's files. They need no credential: they
/// hold no data, and the sign-in form is one of them.
pub fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/ui", get(|| async { Redirect::permanent("/ui/") }))
        .route("/ui/", get(index))
        .route("/ui/{*file}", get(asset))
}

async fn index(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    serve("index.html", &app, &headers)
}

async fn asset(State(app): State<Arc<App>>, Path(file): Path<String>, headers: HeaderMap) -> Response {
    serve(&file, &app, &headers)
}

fn serve(name: &str, app: &App, headers: &HeaderMap) -> Response {
    let Some((_, kind, text)) = ASSETS.iter().find(|(n, _, _)| *n == name) else {
        return AdminError::UnknownRoute(format!("no console file `{name}`")).into_response();
    };
    let mut r = Response::new(axum::body::Body::from(*text));
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    // The binary is the version: revalidate rather than keep a stale console
    // after an upgrade (the files are small).
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    // Only this origin's scripts and styles; the one other place the page
    // may talk to is this gateway's data plane (the playground).
    let csp = format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         connect-src 'self' {}; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
        data_url(app, headers)
    );
    if let Ok(v) = HeaderValue::from_str(&csp) {
        h.insert("content-security-policy", v);
    }
    r
}

/// `GET /admin/ui/settings`: who the caller is (so the console shows only
/// what its role may use) and where the data plane is, as the browser
/// reaches it. Any admin role may ask.
pub async fn settings(State(app): State<Arc<App>>, req: Request) -> Response {
    let caller = match require(&app, req.headers(), Permission::ListKeys).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let body = json!({
        "subject": caller.id,
        "role": caller.role,
        "team": caller.team,
        "data_url": data_url(&app, req.headers()),
        "config_version": app.live.snapshot().version,
        "version": env!("CARGO_PKG_VERSION"),
    });
    json_response(StatusCode::OK, body.to_string())
}

/// The data plane's base URL as the browser that asked sees it: the host
/// it used for the admin port, with the data port — unless the data plane
/// is bound to one address of its own, which is then the only way to it.
fn data_url(app: &App, headers: &HeaderMap) -> String {
    let (data, admin) = (app.bound.data, app.bound.admin);
    let host = if data.ip().is_unspecified() || data.ip() == admin.ip() {
        request_host(headers).map(str::to_string).unwrap_or_else(|| admin.ip().to_string())
    } else {
        data.ip().to_string()
    };
    let host = if host.contains(':') && !host.starts_with('[') { format!("[{host}]") } else { host };
    format!("http://{host}:{}", data.port())
}

/// The host name of the `Host` header, without its port.
fn request_host(headers: &HeaderMap) -> Option<&str> {
    let h = headers.get(header::HOST)?.to_str().ok()?;
    Some(split_host_port(h).0).filter(|h| !h.is_empty())
}

/// `host:port`, `[v6]:port` or a bare host, split.
fn split_host_port(s: &str) -> (&str, Option<u16>) {
    if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']').unwrap_or((rest, ""));
        return (host, after.strip_prefix(':').and_then(|p| p.parse().ok()));
    }
    match s.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => (h, p.parse().ok()),
        _ => (s, None),
    }
}

/// Whether `origin` is this gateway's console: `http(s)://host:admin-port`,
/// with the host the request was sent to or the admin listener's address.
/// Any other origin gets no CORS headers, so a page elsewhere cannot read
/// the data plane's answers even with a key it holds.
fn console_origin(bound: Bound, origin: &str, headers: &HeaderMap) -> bool {
    let Some(rest) = origin.strip_prefix("http://").or_else(|| origin.strip_prefix("https://")) else {
        return false;
    };
    let (host, port) = split_host_port(rest);
    if port != Some(bound.admin.port()) {
        return false;
    }
    request_host(headers).is_some_and(|h| h.eq_ignore_ascii_case(host)) || host == bound.admin.ip().to_string()
}

/// Data-plane middleware: answers the console's CORS preflight and lets it
/// read answers and their `x-tollgate-*` headers. Requests from anywhere
/// else pass untouched.
pub async fn cors(State(app): State<Arc<App>>, req: Request, next: axum::middleware::Next) -> Response {
    let origin = match req.headers().get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        Some(o) if console_origin(app.bound, o, req.headers()) => o.to_string(),
        _ => return next.run(req).await,
    };
    let Ok(allow) = HeaderValue::from_str(&origin) else { return next.run(req).await };
    if req.method() == Method::OPTIONS && req.headers().contains_key(header::ACCESS_CONTROL_REQUEST_METHOD) {
        let mut r = StatusCode::NO_CONTENT.into_response();
        let h = r.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allow);
        h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("GET, POST, DELETE"));
        h.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("authorization, x-api-key, content-type, x-tollgate-metadata"),
        );
        h.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
        h.insert(header::VARY, HeaderValue::from_static("origin"));
        return r;
    }
    let mut r = next.run(req).await;
    // Name the headers that may be read; the list is per answer because the
    // `x-tollgate-*` set depends on what the request went through.
    let exposed: Vec<&str> = r
        .headers()
        .keys()
        .map(http::HeaderName::as_str)
        .filter(|n| n.starts_with("x-tollgate-") || matches!(*n, "server-timing" | "retry-after"))
        .collect();
    let exposed = HeaderValue::from_str(&exposed.join(", ")).ok();
    let h = r.headers_mut();
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allow);
    h.append(header::VARY, HeaderValue::from_static("origin"));
    if let Some(v) = exposed {
        h.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, v);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bound() -> Bound {
        Bound { data: "127.0.0.1:4000".parse().unwrap(), admin: "127.0.0.1:4001".parse().unwrap() }
    }

    fn host(h: &str) -> HeaderMap {
        let mut m = HeaderMap::new();
        m.insert(header::HOST, HeaderValue::from_str(h).unwrap());
        m
    }

    #[test]
    fn only_the_console_on_the_admin_port_is_a_cors_origin() {
        let h = host("127.0.0.1:4000");
        assert!(console_origin(bound(), "http://127.0.0.1:4001", &h));
        assert!(!console_origin(bound(), "http://127.0.0.1:4002", &h));
        assert!(!console_origin(bound(), "http://evil.example:4001", &h));
        assert!(!console_origin(bound(), "http://127.0.0.1", &h));
        assert!(!console_origin(bound(), "null", &h));
        assert!(console_origin(bound(), "http://localhost:4001", &host("localhost:4000")));
        assert!(console_origin(bound(), "http://[::1]:4001", &host("[::1]:4000")));
    }

    #[test]
    fn hosts_split_from_ports() {
        assert_eq!(split_host_port("a.b:80"), ("a.b", Some(80)));
        assert_eq!(split_host_port("[::1]:4001"), ("::1", Some(4001)));
        assert_eq!(split_host_port("::1"), ("::1", None));
        assert_eq!(split_host_port("host"), ("host", None));
    }

    /// Every file under `ui/` is served, and nothing else is listed.
    #[test]
    fn every_console_file_is_embedded() {
        fn walk(dir: &std::path::Path, root: &std::path::Path, out: &mut Vec<String>) {
            for e in std::fs::read_dir(dir).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    walk(&p, root, out);
                } else {
                    out.push(p.strip_prefix(root).unwrap().to_string_lossy().replace('\\', "/"));
                }
            }
        }
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("ui");
        let mut on_disk = Vec::new();
        walk(&root, &root, &mut on_disk);
        on_disk.sort();
        let mut listed: Vec<String> = ASSETS.iter().map(|(n, _, _)| n.to_string()).collect();
        listed.sort();
        assert_eq!(on_disk, listed, "crates/tollgate/ui/ and server::ui::ASSETS differ");
    }
}
