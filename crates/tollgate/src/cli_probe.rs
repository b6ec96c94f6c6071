//! `tollgate probe`: the container image's health check. Images built on
//! distroless have no shell or curl, so the binary asks itself: one plain
//! HTTP/1.1 GET to the gateway's own `/health` (or `/ready`), exit 0 on a
//! 200 within two seconds, 1 otherwise.

use std::process::ExitCode;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub const DEFAULT_URL: &str = "http://127.0.0.1:4000/health";

pub async fn run(url: &str) -> ExitCode {
    match tokio::time::timeout(Duration::from_secs(2), get(url)).await {
        Ok(Ok(200)) => ExitCode::SUCCESS,
        Ok(Ok(status)) => {
            eprintln!("tollgate probe: {url} answered {status}");
            ExitCode::FAILURE
        }
        Ok(Err(e)) => {
            eprintln!("tollgate probe: {url}: {e}");
            ExitCode::FAILURE
        }
        Err(_) => {
            eprintln!("tollgate probe: {url} did not answer within 2s");
            ExitCode::FAILURE
        }
    }
}

async fn get(url: &str) -> Result<u16, String> {
    let uri: http::Uri = url.parse().map_err(|_| "not a URL; e.g. http://127.0.0.1:4000/health".to_string())?;
    if uri.scheme_str() != Some("http") {
        return Err("only http:// (the probe runs beside the gateway)".into());
    }
    let host = uri.host().ok_or("the URL has no host")?;
    let port = uri.port_u16().unwrap_or(80);
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let mut tcp = tokio::net::TcpStream::connect((host, port)).await.map_err(|e| e.to_string())?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    tcp.write_all(req.as_bytes()).await.map_err(|e| e.to_string())?;
    let mut head = [0u8; 12];
    tcp.read_exact(&mut head).await.map_err(|e| e.to_string())?;
    // "HTTP/1.1 200"
    std::str::from_utf8(&head[9..12]).ok().and_then(|s| s.parse().ok()).ok_or_else(|| "not an HTTP answer".into())
}
