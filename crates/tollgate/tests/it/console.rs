//! The admin console's server side: its files on the admin port, the
//! settings it signs in with, the data plane's CORS allowance for it, and
//! the OpenAPI document. The pages themselves are tested in a browser
//! (tests/sdk/test_ui_browser.py).

use bytes::Bytes;
use http::{Method, StatusCode};
use serde_json::json;

use super::common::{Harness, LIMITED, MASTER};

async fn harness() -> Harness {
    Harness::start(&super::common::config("http://127.0.0.1:9", "")).await
}

#[tokio::test]
async fn the_console_is_served_from_the_binary_with_a_strict_policy() {
    let h = harness().await;
    let page = h.send(Method::GET, &h.admin_url("/ui/"), None, &[], Bytes::new()).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.header("content-type").unwrap().starts_with("text/html"));
    assert!(page.text().contains(r#"<script type="module" src="js/main.js"></script>"#));
    let csp = page.header("content-security-policy").unwrap();
    assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(csp.contains(&format!("http://127.0.0.1:{}", h.gw.data_addr.port())), "{csp}");

    let js = h.send(Method::GET, &h.admin_url("/ui/js/pages/keys.js"), None, &[], Bytes::new()).await;
    assert_eq!(js.status, StatusCode::OK);
    assert!(js.header("content-type").unwrap().starts_with("text/javascript"));
    assert_eq!(js.header("x-content-type-options"), Some("nosniff"));

    let missing = h.send(Method::GET, &h.admin_url("/ui/../Cargo.toml"), None, &[], Bytes::new()).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    let bare = h.send(Method::GET, &h.admin_url("/ui"), None, &[], Bytes::new()).await;
    assert_eq!(bare.status, StatusCode::PERMANENT_REDIRECT);
    assert_eq!(bare.header("location"), Some("/ui/"));
    // Not on the data plane.
    assert_eq!(h.get("/ui/", None).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn settings_name_the_caller_and_the_data_plane_as_the_browser_reaches_it() {
    let h = harness().await;
    let url = h.admin_url("/admin/ui/settings");
    let s = h.send(Method::GET, &url, Some(MASTER), &[], Bytes::new()).await;
    assert_eq!(s.status, StatusCode::OK, "{}", s.text());
    let v = s.json();
    assert_eq!(v["subject"], "master");
    assert_eq!(v["role"], "admin");
    assert_eq!(v["data_url"], format!("http://127.0.0.1:{}", h.gw.data_addr.port()));
    // The host the browser used is the host it is sent back to.
    let s = h.send(Method::GET, &url, Some(MASTER), &[("host", "localhost:4001")], Bytes::new()).await;
    assert_eq!(s.json()["data_url"], format!("http://localhost:{}", h.gw.data_addr.port()));
    // No credential, or one without an admin role: refused as on every admin route.
    assert_eq!(h.send(Method::GET, &url, None, &[], Bytes::new()).await.status, StatusCode::UNAUTHORIZED);
    let data_key = h.send(Method::GET, &url, Some(LIMITED), &[], Bytes::new()).await;
    assert_eq!(data_key.status, StatusCode::FORBIDDEN);
    assert_eq!(data_key.json()["error"]["code"], "admin_only");
}

#[tokio::test]
async fn the_data_plane_answers_cors_for_the_console_alone() {
    let h = harness().await;
    let console = format!("http://127.0.0.1:{}", h.gw.admin_addr.port());
    let preflight = |origin: String| {
        let h = &h;
        async move {
            h.send(
                Method::OPTIONS,
                &h.url("/v1/chat/completions"),
                None,
                &[("origin", origin.as_str()), ("access-control-request-method", "POST")],
                Bytes::new(),
            )
            .await
        }
    };
    let ok = preflight(console.clone()).await;
    assert_eq!(ok.status, StatusCode::NO_CONTENT);
    assert_eq!(ok.header("access-control-allow-origin"), Some(console.as_str()));
    assert!(ok.header("access-control-allow-headers").unwrap().contains("authorization"));

    let body = json!({ "model": "mock/echo", "messages": [{ "role": "user", "content": "hi" }] }).to_string();
    let chat =
        h.send(Method::POST, &h.url("/v1/chat/completions"), Some(MASTER), &[("origin", console.as_str())], body).await;
    assert_eq!(chat.status, StatusCode::OK);
    assert_eq!(chat.header("access-control-allow-origin"), Some(console.as_str()));
    let exposed = chat.header("access-control-expose-headers").unwrap();
    assert!(exposed.contains("x-tollgate-request-id") && exposed.contains("x-tollgate-resolved-model"), "{exposed}");

    for other in ["http://evil.example".to_string(), format!("http://evil.example:{}", h.gw.admin_addr.port())] {
        let refused = preflight(other.clone()).await;
        assert!(refused.header("access-control-allow-origin").is_none(), "{other}");
        let r =
            h.send(Method::GET, &h.url("/v1/models"), Some(MASTER), &[("origin", other.as_str())], Bytes::new()).await;
        assert_eq!(r.status, StatusCode::OK);
        assert!(r.header("access-control-allow-origin").is_none(), "{other}");
    }
}

#[tokio::test]
async fn the_openapi_document_is_served_without_a_credential() {
    let h = harness().await;
    let doc = h.send(Method::GET, &h.admin_url("/admin/openapi.json"), None, &[], Bytes::new()).await;
    assert_eq!(doc.status, StatusCode::OK);
    let v = doc.json();
    assert_eq!(v["openapi"], "3.1.0");
    assert_eq!(v["paths"]["/admin/keys"]["post"]["x-permission"], "ManageKeys");
    // The body of a key's creation is the handler's own type.
    let body = &v["paths"]["/admin/keys"]["post"]["requestBody"]["content"]["application/json"]["schema"];
    let name = body["$ref"].as_str().unwrap().rsplit('/').next().unwrap();
    assert!(v["components"]["schemas"][name]["properties"]["expires_in"].is_object(), "{body}");
}

#[tokio::test]
async fn usage_shows_each_counters_limit() {
    let h = Harness::start(&format!(
        "{}rate_limits:\n  - {{ id: rpm, limit_by: [subject], unit: requests_per_minute, limit: 7 }}\n",
        super::common::config("http://127.0.0.1:9", "")
    ))
    .await;
    let body = json!({ "model": "mock/echo", "messages": [{ "role": "user", "content": "hi" }] });
    assert_eq!(h.chat(Some(MASTER), &body).await.status, StatusCode::OK);
    let u = h.send(Method::GET, &h.admin_url("/admin/usage"), Some(MASTER), &[], Bytes::new()).await.json();
    let counter = &u["rate_limits"][0];
    assert_eq!(counter["key"], "rpm@requests_per_minute|master");
    assert_eq!((counter["used"].as_u64(), counter["limit"].as_u64()), (Some(1), Some(7)));
}
