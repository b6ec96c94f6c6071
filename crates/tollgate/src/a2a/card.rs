//! Agent cards: read from the upstream (and kept for a while, with the
//! agent's health), and rewritten for clients so that every endpoint in
//! them is the gateway's — JSON-RPC interfaces become `/a2a/<name>`, REST
//! ones `/a2a/<name>/rest` (`rest-2`, … when an agent has several), gRPC
//! ones are dropped (the gateway does not relay gRPC) — and the security
//! schemes say to authenticate to the gateway with a bearer token. The
//! upstream's card signatures are dropped: the rewritten card is not the
//! card they signed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{Method, Request, Uri};
use http_body_util::{BodyExt, Full, Limited};
use serde_json::{Map, Value, json};

use super::registry::AgentDef;
use crate::providers::http::HttpClient;

/// The card's well-known path (v0.3.0 on), and the older one.
pub const CARD_PATH: &str = "/.well-known/agent-card.json";
pub const LEGACY_CARD_PATH: &str = "/.well-known/agent.json";

/// A card read successfully is trusted this long; a failed read is retried sooner.
const FRESH: Duration = Duration::from_secs(300);
const RETRY: Duration = Duration::from_secs(10);
const MAX_CARD: usize = 1 << 20;

/// How an interface is spoken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Binding {
    JsonRpc,
    Rest,
    Grpc,
    Other,
}

impl Binding {
    fn parse(s: &str) -> Binding {
        match s.to_ascii_uppercase().as_str() {
            "JSONRPC" => Binding::JsonRpc,
            "HTTP+JSON" | "REST" => Binding::Rest,
            "GRPC" => Binding::Grpc,
            _ => Binding::Other,
        }
    }
}

/// One endpoint the upstream card offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Iface {
    pub url: String,
    pub binding: Binding,
    /// `1.0`, `0.3`, … when the card says.
    pub version: Option<String>,
}

impl Iface {
    /// A v0.3 interface (as opposed to v1.0 or later).
    pub fn legacy(&self) -> bool {
        self.version.as_deref().is_some_and(|v| v.starts_with("0."))
    }
}

/// What the gateway knows of one agent's card.
#[derive(Debug, Clone)]
pub struct Known {
    pub fingerprint: String,
    pub card: Option<Arc<Value>>,
    pub interfaces: Vec<Iface>,
    /// Why the last read failed.
    pub error: Option<String>,
    pub checked: Instant,
    /// Unix ms of the last read, for the admin API.
    pub checked_at_ms: u64,
    pub latency_ms: u64,
}

impl Known {
    fn fresh(&self, def: &AgentDef) -> bool {
        self.fingerprint == def.fingerprint
            && self.checked.elapsed() < if self.card.is_some() && self.error.is_none() { FRESH } else { RETRY }
    }

    /// The upstream JSON-RPC URL for a request of this generation: an
    /// interface of the same generation, any JSON-RPC one, or the base URL.
    pub fn jsonrpc_url(&self, def: &AgentDef, legacy: Option<bool>) -> String {
        let rpc = self.interfaces.iter().filter(|i| i.binding == Binding::JsonRpc);
        let same = legacy.and_then(|l| rpc.clone().find(|i| i.legacy() == l));
        same.or_else(|| rpc.clone().find(|i| !i.legacy())).or_else(|| rpc.clone().next()).map_or_else(|| def.url.clone(), |i| i.url.clone())
    }

    /// The distinct REST base URLs, in card order: `rest`, `rest-2`, … on the gateway.
    pub fn rest_urls(&self) -> Vec<&str> {
        rest_urls(&self.interfaces)
    }
}

fn rest_urls(ifaces: &[Iface]) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    for i in ifaces.iter().filter(|i| i.binding == Binding::Rest) {
        let u = i.url.trim_end_matches('/');
        if !out.contains(&u) {
            out.push(u);
        }
    }
    out
}

/// The gateway path segment of the `n`th REST base.
pub fn rest_segment(n: usize) -> String {
    if n == 0 { "rest".to_string() } else { format!("rest-{}", n + 1) }
}

/// Cards by agent name.
#[derive(Default)]
pub struct Directory {
    known: Mutex<HashMap<String, Known>>,
    /// Agents whose card is being read in the background.
    reading: Mutex<std::collections::HashSet<String>>,
}

impl Directory {
    /// The agent's card, without waiting on the network unless nothing is
    /// known of it yet: a stale card is returned as it is and read again
    /// in the background, so a call never waits for its agent's card once
    /// the gateway has seen it.
    pub async fn get(self: &Arc<Self>, client: &HttpClient, def: &Arc<AgentDef>) -> Known {
        match self.cached(def) {
            Some(k) if k.fresh(def) => k,
            Some(k) => {
                self.read_later(client, def);
                k
            }
            None => self.refresh(client, def).await,
        }
    }

    /// Reads the card in the background, once at a time per agent.
    pub fn read_later(self: &Arc<Self>, client: &HttpClient, def: &Arc<AgentDef>) {
        if !self.reading.lock().unwrap_or_else(|p| p.into_inner()).insert(def.name.clone()) {
            return;
        }
        let (this, client, def) = (self.clone(), client.clone(), def.clone());
        crate::task::spawn("a2a-card-read", async move {
            this.refresh(&client, &def).await;
            this.reading.lock().unwrap_or_else(|p| p.into_inner()).remove(&def.name);
        });
    }

    pub fn cached(&self, def: &AgentDef) -> Option<Known> {
        let known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        known.get(&def.name).filter(|k| k.fingerprint == def.fingerprint).cloned()
    }

    /// Reads the card now; a failed read keeps the last good card (an
    /// agent that is down for a moment still routes to where it was).
    pub async fn refresh(&self, client: &HttpClient, def: &AgentDef) -> Known {
        let started = Instant::now();
        let read = fetch(client, def).await;
        let latency_ms = started.elapsed().as_millis() as u64;
        let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        let mut known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        let prev = known.get(&def.name).filter(|k| k.fingerprint == def.fingerprint);
        let k = match read {
            Ok(card) => Known {
                fingerprint: def.fingerprint.clone(),
                interfaces: interfaces(&card),
                card: Some(Arc::new(card)),
                error: None,
                checked: Instant::now(),
                checked_at_ms: now_ms,
                latency_ms,
            },
            Err(e) => {
                tracing::warn!(agent = %def.name, error = %e, "cannot read the agent's card");
                Known {
                    fingerprint: def.fingerprint.clone(),
                    card: prev.and_then(|p| p.card.clone()),
                    interfaces: prev.map(|p| p.interfaces.clone()).unwrap_or_default(),
                    error: Some(e),
                    checked: Instant::now(),
                    checked_at_ms: now_ms,
                    latency_ms,
                }
            }
        };
        known.insert(def.name.clone(), k.clone());
        k
    }
}

async fn fetch(client: &HttpClient, def: &AgentDef) -> Result<Value, String> {
    match fetch_at(client, def, CARD_PATH).await {
        Err(Missing) => fetch_at(client, def, LEGACY_CARD_PATH).await.map_err(|e| match e {
            Missing => format!("no agent card at {CARD_PATH} or {LEGACY_CARD_PATH}"),
            Failed(m) => m,
        }),
        Err(Failed(m)) => Err(m),
        Ok(v) => Ok(v),
    }
}

enum FetchError {
    Missing,
    Failed(String),
}
use FetchError::{Failed, Missing};

async fn fetch_at(client: &HttpClient, def: &AgentDef, path: &str) -> Result<Value, FetchError> {
    let uri: Uri = format!("{}{path}", def.url).parse().map_err(|_| Failed("the card URL is not valid".into()))?;
    let mut req = Request::builder().method(Method::GET).uri(uri).header(http::header::ACCEPT, "application/json");
    for (k, v) in &def.headers {
        req = req.header(k, v);
    }
    let req = req.body(Full::new(Bytes::new())).map_err(|e| Failed(e.to_string()))?;
    let resp = tokio::time::timeout(Duration::from_secs(10), client.request(req))
        .await
        .map_err(|_| Failed("the card request timed out".into()))?
        .map_err(|e| Failed(format!("cannot connect: {e}")))?;
    match resp.status().as_u16() {
        200 => {}
        404 | 405 => return Err(Missing),
        s => return Err(Failed(format!("the card request answered HTTP {s}"))),
    }
    let body = Limited::new(resp.into_body(), MAX_CARD)
        .collect()
        .await
        .map_err(|_| Failed(format!("the card is larger than {MAX_CARD} bytes or was cut off")))?
        .to_bytes();
    let v: Value = serde_json::from_slice(&body).map_err(|e| Failed(format!("the card is not JSON: {e}")))?;
    if !v.is_object() {
        return Err(Failed("the card is not a JSON object".into()));
    }
    Ok(v)
}

/// Every interface a card lists: v1.0 `supportedInterfaces`, v0.3 `url`
/// with `preferredTransport` and `additionalInterfaces`.
pub fn interfaces(card: &Value) -> Vec<Iface> {
    let mut out = Vec::new();
    let s = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_string);
    for i in card.get("supportedInterfaces").and_then(Value::as_array).into_iter().flatten() {
        if let Some(url) = s(i.get("url")) {
            let binding = Binding::parse(i.get("protocolBinding").and_then(Value::as_str).unwrap_or("JSONRPC"));
            out.push(Iface { url, binding, version: s(i.get("protocolVersion")) });
        }
    }
    let legacy_version = s(card.get("protocolVersion")).filter(|v| v.starts_with("0.")).or(Some("0.3".into()));
    if let Some(url) = s(card.get("url")) {
        let binding = Binding::parse(card.get("preferredTransport").and_then(Value::as_str).unwrap_or("JSONRPC"));
        push_unique(&mut out, Iface { url, binding, version: legacy_version.clone() });
    }
    for i in card.get("additionalInterfaces").and_then(Value::as_array).into_iter().flatten() {
        if let Some(url) = s(i.get("url")) {
            let binding = Binding::parse(i.get("transport").and_then(Value::as_str).unwrap_or("JSONRPC"));
            push_unique(&mut out, Iface { url, binding, version: legacy_version.clone() });
        }
    }
    out
}

fn push_unique(out: &mut Vec<Iface>, i: Iface) {
    if !out.contains(&i) {
        out.push(i);
    }
}

/// The card a client of the gateway sees. `gateway` is the gateway's own
/// base URL as the client reached it (`https://gw.example.com`).
pub fn rewrite(card: &Value, name: &str, gateway: &str, upstream_base: &str) -> Value {
    let mut out = card.clone();
    let Some(obj) = out.as_object_mut() else { return out };
    let ifaces = interfaces(card);
    let rests = rest_urls(&ifaces);
    let jsonrpc = format!("{gateway}/a2a/{name}");
    let local = |url: &str, binding: Binding| -> Option<String> {
        match binding {
            Binding::JsonRpc => Some(jsonrpc.clone()),
            Binding::Rest => {
                let n = rests.iter().position(|r| *r == url.trim_end_matches('/')).unwrap_or(0);
                Some(format!("{jsonrpc}/{}", rest_segment(n)))
            }
            Binding::Grpc | Binding::Other => None,
        }
    };
    relocate(obj, "supportedInterfaces", "protocolBinding", &local);
    let preferred = Binding::parse(obj.get("preferredTransport").and_then(Value::as_str).unwrap_or("JSONRPC"));
    if let Some(url) = obj.get("url").and_then(Value::as_str).map(str::to_string) {
        match local(&url, preferred) {
            Some(mine) => {
                obj.insert("url".into(), Value::String(mine));
            }
            None => {
                // The preferred transport is one the gateway does not relay: JSON-RPC is always there.
                obj.insert("url".into(), Value::String(jsonrpc.clone()));
                obj.insert("preferredTransport".into(), Value::String("JSONRPC".into()));
            }
        }
    }
    relocate(obj, "additionalInterfaces", "transport", &local);
    // Informational links on the upstream's own host would give it away.
    let origin = origin_of(upstream_base);
    for key in ["documentationUrl", "iconUrl"] {
        if obj.get(key).and_then(Value::as_str).is_some_and(|u| origin_of(u) == origin) {
            obj.remove(key);
        }
    }
    obj.remove("signatures");
    secure(obj);
    out
}

/// Points every interface of the list `key` (its binding named by
/// `binding_key`) at the gateway; drops the ones the gateway does not relay,
/// entries that are not objects, and duplicates the rewrite makes.
fn relocate(
    obj: &mut Map<String, Value>,
    key: &str,
    binding_key: &str,
    local: &dyn Fn(&str, Binding) -> Option<String>,
) {
    let Some(Value::Array(list)) = obj.get_mut(key) else { return };
    let mut seen = Vec::new();
    list.retain_mut(|i| {
        let Some(iface) = i.as_object_mut() else { return false };
        let binding = Binding::parse(iface.get(binding_key).and_then(Value::as_str).unwrap_or("JSONRPC"));
        let url = iface.get("url").and_then(Value::as_str).unwrap_or("");
        let Some(mine) = local(url, binding) else { return false };
        iface.insert("url".into(), Value::String(mine));
        let key = i.to_string();
        if seen.contains(&key) {
            return false;
        }
        seen.push(key);
        true
    });
}

/// Replaces the upstream's security schemes (how to reach *it*) with the
/// gateway's: a bearer token, in each dialect the card speaks — v1.0's
/// `httpAuthSecurityScheme`, v0.3's `type`/`scheme`, or both merged, as
/// cards that serve both generations carry them.
fn secure(obj: &mut Map<String, Value>) {
    let description = "A tollgate virtual key or a JWT the gateway accepts, as `Authorization: Bearer <token>`";
    let v10 = obj.contains_key("supportedInterfaces");
    let v03 = obj.contains_key("url");
    let mut scheme = Map::new();
    if v10 {
        scheme.insert("httpAuthSecurityScheme".into(), json!({ "scheme": "Bearer", "description": description }));
    }
    if v03 || !v10 {
        scheme.insert("type".into(), json!("http"));
        scheme.insert("scheme".into(), json!("bearer"));
        scheme.insert("description".into(), json!(description));
    }
    obj.insert("securitySchemes".into(), json!({ "tollgate": scheme }));
    if v10 {
        obj.insert("securityRequirements".into(), json!([{ "schemes": { "tollgate": {} } }]));
    }
    if v03 || !v10 {
        obj.insert("security".into(), json!([{ "tollgate": [] }]));
    } else {
        obj.remove("security");
    }
}

/// `scheme://authority` of a URL, lower-cased.
fn origin_of(url: &str) -> Option<String> {
    let u: Uri = url.parse().ok()?;
    Some(format!("{}://{}", u.scheme_str()?, u.authority()?.as_str()).to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v10() -> Value {
        json!({
            "name": "Echo", "version": "1.0.0",
            "supportedInterfaces": [
                {"url": "http://up:9/", "protocolBinding": "JSONRPC", "protocolVersion": "1.0"},
                {"url": "http://up:9/rest", "protocolBinding": "HTTP+JSON", "protocolVersion": "1.0"},
                {"url": "http://up:9/", "protocolBinding": "JSONRPC", "protocolVersion": "0.3"},
                {"url": "up:50051", "protocolBinding": "GRPC", "protocolVersion": "1.0"}
            ],
            "documentationUrl": "http://up:9/docs",
            "provider": {"organization": "Acme", "url": "https://acme.example"},
            "securitySchemes": {"upstream": {"httpAuthSecurityScheme": {"scheme": "Bearer"}}},
            "signatures": [{"protected": "x", "signature": "y"}]
        })
    }

    #[test]
    fn every_endpoint_of_a_v1_card_points_at_the_gateway() {
        let out = rewrite(&v10(), "echo", "https://gw.example", "http://up:9");
        let text = out.to_string();
        assert!(!text.contains("up:9"), "{text}");
        let ifs = out["supportedInterfaces"].as_array().unwrap();
        assert_eq!(ifs.len(), 3, "gRPC dropped: {ifs:?}");
        assert_eq!(ifs[0]["url"], "https://gw.example/a2a/echo");
        assert_eq!(ifs[1]["url"], "https://gw.example/a2a/echo/rest");
        assert_eq!(ifs[2]["protocolVersion"], "0.3");
        assert_eq!(out["provider"]["url"], "https://acme.example", "links elsewhere stay");
        assert!(out.get("signatures").is_none());
        assert!(out["securitySchemes"]["tollgate"]["httpAuthSecurityScheme"].is_object());
        assert!(out["securitySchemes"].get("upstream").is_none());
    }

    #[test]
    fn a_v03_card_keeps_its_shape_with_gateway_urls() {
        let card = json!({
            "name": "Old", "url": "http://up:9/a2a", "preferredTransport": "GRPC", "protocolVersion": "0.3.0",
            "additionalInterfaces": [
                {"url": "http://up:9/a2a", "transport": "JSONRPC"},
                {"url": "http://up:9/a2a/rest", "transport": "HTTP+JSON"}
            ],
            "securitySchemes": {"k": {"type": "apiKey", "in": "header", "name": "x-key"}},
            "security": [{"k": []}]
        });
        let out = rewrite(&card, "old", "http://gw", "http://up:9/a2a");
        assert_eq!(out["url"], "http://gw/a2a/old");
        assert_eq!(out["preferredTransport"], "JSONRPC");
        assert_eq!(out["additionalInterfaces"][1]["url"], "http://gw/a2a/old/rest");
        assert_eq!(out["securitySchemes"]["tollgate"]["scheme"], "bearer");
        assert_eq!(out["security"], json!([{"tollgate": []}]));
    }

    #[test]
    fn a_malformed_card_is_rewritten_without_panicking() {
        let card = json!({ "supportedInterfaces": ["x", 3, {"url": 7}], "additionalInterfaces": "no", "url": 1 });
        let out = rewrite(&card, "a", "http://gw", "http://up");
        assert_eq!(out["supportedInterfaces"], json!([{ "url": "http://gw/a2a/a" }]));
        assert!(interfaces(&json!({ "supportedInterfaces": [null, []] })).is_empty());
    }

    #[test]
    fn requests_go_to_the_interface_of_their_generation() {
        let def = AgentDef {
            name: "a".into(),
            url: "http://up:9".into(),
            headers: vec![],
            input: vec![],
            output: vec![],
            timeout: Duration::from_secs(1),
            fingerprint: String::new(),
        };
        let mut card = v10();
        card["supportedInterfaces"][2]["url"] = json!("http://up:9/v03");
        let k = Known {
            fingerprint: String::new(),
            interfaces: interfaces(&card),
            card: Some(Arc::new(card)),
            error: None,
            checked: Instant::now(),
            checked_at_ms: 0,
            latency_ms: 0,
        };
        assert_eq!(k.jsonrpc_url(&def, Some(true)), "http://up:9/v03");
        assert_eq!(k.jsonrpc_url(&def, Some(false)), "http://up:9/");
        assert_eq!(k.jsonrpc_url(&def, None), "http://up:9/");
        assert_eq!(k.rest_urls(), vec!["http://up:9/rest"]);
    }
}
