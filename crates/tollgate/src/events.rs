//! Events (budget thresholds, warn-mode overspends…) delivered to webhooks.
//!
//! Publishing never blocks a request: events go into a bounded queue; a
//! full queue drops the event, counts it and says so in the log. One
//! dispatcher task sends each event to every matching webhook as a JSON
//! POST, retrying with backoff, and signs the body with HMAC-SHA256 when
//! the webhook has a `secret`. Webhooks are read from the current config
//! snapshot at delivery time, so a reload applies to the next event.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Uri};
use http_body_util::Full;
use serde::Serialize;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::config::diag::Diags;
use crate::config::file::WebhookSection;
use crate::providers::http::HttpClient;

const QUEUE: usize = 1024;

#[derive(Debug, Clone, Serialize)]
pub struct Event {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub id: String,
    /// RFC 3339, UTC.
    pub time: String,
    pub data: serde_json::Value,
}

/// Throttled keys remembered before the stale ones are swept.
const THROTTLE_KEYS: usize = 10_000;

/// Where events are published. Cheap to clone; works before a dispatcher
/// is running (events are then only logged).
#[derive(Debug, Clone, Default)]
pub struct EventBus {
    tx: Arc<OnceLock<mpsc::Sender<Event>>>,
    dropped: Arc<AtomicU64>,
    /// Last time each throttled event key was published.
    last: Arc<dashmap::DashMap<String, std::time::Instant>>,
}

impl EventBus {
    pub fn publish(&self, e: Event) {
        let Some(tx) = self.tx.get() else { return };
        if tx.try_send(e).is_err() {
            let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            tracing::warn!(dropped_total = n, "event queue full; an event was dropped");
        }
    }

    /// Publishes at most once per `every` for the same `key` (a refusal
    /// storm becomes one event a minute per rule and key, not thousands).
    pub fn publish_throttled(&self, key: &str, every: Duration, e: Event) {
        let now = std::time::Instant::now();
        let fresh = self.last.get(key).is_none_or(|t| now.duration_since(*t) >= every);
        if fresh {
            // Keys carry request values (a rule and its counter key): forget
            // the ones past their quiet time before the map grows large.
            if self.last.len() >= THROTTLE_KEYS {
                self.last.retain(|_, t| now.duration_since(*t) < every);
            }
            self.last.insert(key.to_string(), now);
            self.publish(e);
        }
    }

    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

#[derive(Debug, Clone)]
pub struct Webhook {
    pub url: Uri,
    /// Empty = every kind.
    pub kinds: Vec<String>,
    pub secret: Option<String>,
    pub timeout: Duration,
    pub attempts: u32,
}

pub fn build(sections: &[WebhookSection], d: &mut Diags) -> Vec<Webhook> {
    sections
        .iter()
        .filter_map(|w| {
            let url = match w.url.value.parse::<Uri>() {
                Ok(u) if matches!(u.scheme_str(), Some("http" | "https")) && u.authority().is_some() => u,
                _ => {
                    d.at(&w.url, format!("webhook url `{}` is not an http(s) URL", w.url.value), "");
                    return None;
                }
            };
            Some(Webhook {
                url,
                kinds: w.kinds.clone(),
                secret: w.secret.clone().filter(|s| !s.is_empty()),
                timeout: w.timeout.map_or(Duration::from_secs(5), |t| t.0),
                attempts: w.attempts.unwrap_or(4).clamp(1, 10),
            })
        })
        .collect()
}

/// Where the dispatcher finds the webhooks in force at delivery time (the
/// live snapshot's), so a reload applies to the next event.
pub type WebhookSource = Arc<dyn Fn() -> Vec<Webhook> + Send + Sync>;

/// Starts the dispatcher; it runs until `stop`, then delivers what is queued.
pub fn start(
    bus: &EventBus,
    webhooks: WebhookSource,
    client: HttpClient,
    mut stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let (tx, mut rx) = mpsc::channel::<Event>(QUEUE);
    let _ = bus.tx.set(tx);
    crate::task::spawn("event-dispatcher", async move {
        let mut deliveries = JoinSet::new();
        let dispatch = |event: Event, deliveries: &mut JoinSet<()>| {
            let hooks: Vec<Webhook> = webhooks();
            let body = Bytes::from(serde_json::to_vec(&event).unwrap_or_default());
            for hook in hooks.into_iter().filter(|h| h.kinds.is_empty() || h.kinds.iter().any(|k| k == event.kind)) {
                deliveries.spawn(deliver(client.clone(), hook, event.kind, body.clone()));
            }
        };
        loop {
            let event = tokio::select! {
                e = rx.recv() => match e { Some(e) => e, None => break },
                _ = stop.wait_for(|s| *s) => break,
                Some(_) = deliveries.join_next(), if !deliveries.is_empty() => continue,
            };
            dispatch(event, &mut deliveries);
        }
        // Stopping: what is already queued is still delivered.
        while let Ok(event) = rx.try_recv() {
            dispatch(event, &mut deliveries);
        }
        while deliveries.join_next().await.is_some() {}
    })
}

async fn deliver(client: HttpClient, hook: Webhook, kind: &'static str, body: Bytes) {
    let signature = hook
        .secret
        .as_ref()
        .map(|s| format!("sha256={}", hex::encode(crate::digest::hmac_sha256(s.as_bytes(), &body))));
    let mut wait = Duration::from_millis(250);
    for attempt in 1..=hook.attempts {
        let mut req = Request::builder()
            .method(Method::POST)
            .uri(hook.url.clone())
            .header("content-type", "application/json")
            .header("user-agent", "tollgate-webhooks")
            .header("x-tollgate-event", kind);
        if let Some(sig) = &signature {
            req =
                req.header("x-tollgate-signature", HeaderValue::from_str(sig).unwrap_or(HeaderValue::from_static("")));
        }
        let Ok(req) = req.body(Full::new(body.clone())) else { return };
        let outcome = match tokio::time::timeout(hook.timeout, client.request(req)).await {
            Ok(Ok(resp)) if resp.status().is_success() => return,
            Ok(Ok(resp)) => format!("status {}", resp.status()),
            Ok(Err(e)) => e.to_string(),
            Err(_) => "timed out".to_string(),
        };
        if attempt == hook.attempts {
            tracing::error!(url = %hook.url, kind, attempts = attempt, error = %outcome, "webhook delivery failed; event dropped");
            return;
        }
        tracing::warn!(url = %hook.url, kind, attempt, error = %outcome, "webhook delivery failed; retrying");
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(Duration::from_secs(30));
    }
}

/// A short unique event id.
pub fn new_id() -> String {
    format!("evt_{}", hex::encode(crate::digest::os_random::<8>()))
}
