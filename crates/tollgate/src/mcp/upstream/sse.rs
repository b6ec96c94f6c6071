//! A legacy HTTP+SSE server (protocol 2024-11-05): a GET stream whose
//! first `endpoint` event names the URL to POST messages to; every answer
//! comes back on the stream.

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, Request, Uri};
use http_body_util::{BodyExt, Full};
use serde_json::Value;
use tokio::sync::oneshot;

use super::pump::{self, PumpConn};
use crate::providers::http::HttpClient;

/// Opens the stream and waits for its endpoint.
pub async fn connect(
    server: &str,
    url: Uri,
    client: HttpClient,
    headers: Vec<(HeaderName, HeaderValue)>,
    capabilities: Value,
) -> Result<PumpConn, String> {
    let mut req = Request::builder().method(Method::GET).uri(url.clone());
    for (k, v) in &headers {
        req = req.header(k, v);
    }
    let req = req
        .header(http::header::ACCEPT, "text/event-stream")
        .body(Full::new(Bytes::new()))
        .map_err(|e| e.to_string())?;
    let resp = client.request(req).await.map_err(|e| format!("cannot connect: {e}"))?;
    if !resp.status().is_success() {
        return Err(format!("the SSE endpoint answered HTTP {}", resp.status().as_u16()));
    }
    let (shared, mut rx) = pump::channel(server);
    let (endpoint_tx, endpoint_rx) = oneshot::channel::<Uri>();
    let reader_shared = shared.clone();
    let base = url.clone();
    let reader = crate::task::spawn("mcp-sse-reader", async move {
        let mut endpoint_tx = Some(endpoint_tx);
        let mut body = resp.into_body();
        let mut buf: Vec<u8> = Vec::new();
        while let Some(Ok(frame)) = body.frame().await {
            let Ok(data) = frame.into_data() else { continue };
            buf.extend_from_slice(&data);
            let Some(end) = crate::wire::sse::last_boundary(&buf) else { continue };
            for (name, d) in crate::wire::sse::sse_events(&buf[..end]) {
                if name == Some("endpoint") {
                    let target = String::from_utf8_lossy(&d).trim().to_string();
                    if let (Some(tx), Some(u)) = (endpoint_tx.take(), resolve(&base, &target)) {
                        let _ = tx.send(u);
                    }
                } else if let Ok(v) = serde_json::from_slice::<Value>(&d) {
                    reader_shared.incoming(v);
                }
            }
            buf.drain(..end);
        }
        reader_shared.closed("its SSE stream ended");
    });
    let endpoint = tokio::time::timeout(std::time::Duration::from_secs(10), endpoint_rx)
        .await
        .map_err(|_| "the SSE stream sent no `endpoint` event".to_string())?
        .map_err(|_| "the SSE stream ended before its `endpoint` event".to_string())?;
    let writer_shared = shared.clone();
    let writer = crate::task::spawn("mcp-sse-writer", async move {
        while let Some(msg) = rx.recv().await {
            let mut req = Request::builder().method(Method::POST).uri(endpoint.clone());
            for (k, v) in &headers {
                req = req.header(k, v);
            }
            let Ok(req) = req
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(Full::new(Bytes::from(serde_json::to_vec(&msg).unwrap_or_default())))
            else {
                continue;
            };
            match client.request(req).await {
                Ok(r) if r.status().is_success() => {}
                Ok(r) => {
                    tracing::debug!(server = %writer_shared.server, status = %r.status(), "upstream refused a message")
                }
                Err(e) => {
                    writer_shared.closed(&format!("cannot post to its endpoint: {e}"));
                    return;
                }
            }
        }
    });
    Ok(PumpConn::new(shared, capabilities, vec![reader.abort_handle(), writer.abort_handle()]))
}

/// The endpoint event's URL, relative to the SSE URL (same origin only: a
/// server cannot send the gateway's credential elsewhere).
fn resolve(base: &Uri, target: &str) -> Option<Uri> {
    if target.starts_with("http://") || target.starts_with("https://") {
        let u: Uri = target.parse().ok()?;
        return (u.authority() == base.authority()).then_some(u);
    }
    let scheme = base.scheme_str()?;
    let authority = base.authority()?.as_str();
    let path = if target.starts_with('/') {
        target.to_string()
    } else {
        let dir = base.path().rsplit_once('/').map_or("", |(d, _)| d);
        format!("{dir}/{target}")
    };
    format!("{scheme}://{authority}{path}").parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_resolve_against_the_stream_and_stay_on_its_origin() {
        let base: Uri = "http://h:1/a/sse".parse().unwrap();
        assert_eq!(resolve(&base, "/messages?sessionId=x").unwrap().to_string(), "http://h:1/messages?sessionId=x");
        assert_eq!(resolve(&base, "messages?s=1").unwrap().to_string(), "http://h:1/a/messages?s=1");
        assert_eq!(resolve(&base, "http://h:1/m").unwrap().to_string(), "http://h:1/m");
        assert!(resolve(&base, "http://evil:1/m").is_none());
    }
}
