//! Changes pushed between instances over NATS. A message says only *what*
//! changed — never a key, a rule body or a secret; each receiver reads the
//! change from the store (PostgreSQL), which stays the source of truth. So
//! a lost or duplicated message costs nothing: the store poll catches an
//! instance up, and applying a change twice is applying it once.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::settings::{NatsAuth, Settings};

/// Longest an admin route waits to hand a message to the client.
const PUBLISH_DEADLINE: Duration = Duration::from_millis(200);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// A virtual key was created, revoked or rotated.
    Keys,
    /// A rate limit, budget, team or user overlay was put or removed.
    Overlays,
    /// An MCP tool definition was approved (pinned).
    McpApprovals,
    /// The config was reloaded through the admin API.
    ConfigReload,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Message {
    /// The instance that made the change (it ignores its own messages).
    pub from: String,
    pub change: Change,
}

pub struct Bus {
    client: async_nats::Client,
    subject: String,
    instance: String,
    pub published: AtomicU64,
    pub received: AtomicU64,
}

impl std::fmt::Debug for Bus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bus").field("subject", &self.subject).finish_non_exhaustive()
    }
}

impl Bus {
    /// Connects in the background: a NATS that is down at start-up does
    /// not stop the gateway from serving (changes then arrive by the store
    /// poll until it is up).
    pub async fn connect(s: &Settings) -> Result<Arc<Bus>, String> {
        let mut o = async_nats::ConnectOptions::new()
            .name(format!("tollgate {}", s.instance_id))
            .retry_on_initial_connect()
            .max_reconnects(None)
            .connection_timeout(Duration::from_secs(2))
            .require_tls(s.nats_tls);
        if let Some(ca) = &s.nats_ca_file {
            o = o.add_root_certificates(ca.clone());
        }
        o = match &s.nats_auth {
            NatsAuth::None => o,
            NatsAuth::Token(t) => o.token(t.clone()),
            NatsAuth::UserPassword(u, p) => o.user_and_password(u.clone(), p.clone()),
        };
        let nats = s.nats_display();
        let servers: Vec<async_nats::ServerAddr> =
            s.nats_url.split(',').filter_map(|u| u.trim().parse().ok()).collect();
        // The error names no URL: it may hold credentials.
        let client = o.connect(servers).await.map_err(|e| format!("cannot connect to NATS at {nats}: {}", e.kind()))?;
        Ok(Arc::new(Bus {
            client,
            subject: format!("{}.changes", s.namespace),
            instance: s.instance_id.clone(),
            published: AtomicU64::new(0),
            received: AtomicU64::new(0),
        }))
    }

    pub fn connected(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }

    /// Tells the other instances. Best effort: when NATS is down the store
    /// poll carries the change instead, so this never fails an admin call.
    pub async fn publish(&self, change: Change) {
        let msg = Message { from: self.instance.clone(), change };
        let Ok(body) = serde_json::to_vec(&msg) else { return };
        let sent = tokio::time::timeout(PUBLISH_DEADLINE, self.client.publish(self.subject.clone(), body.into())).await;
        match sent {
            Ok(Ok(())) => {
                self.published.fetch_add(1, Ordering::Relaxed);
            }
            _ => tracing::warn!(
                ?change,
                "could not publish a change on NATS; other instances see it at their next store poll"
            ),
        }
    }

    /// Changes other instances made, as they arrive.
    pub async fn subscribe(&self) -> Result<tokio::sync::mpsc::Receiver<Change>, String> {
        use futures_util::StreamExt;
        let mut sub = self.client.subscribe(self.subject.clone()).await.map_err(|e| format!("NATS subscribe: {e}"))?;
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        let me = self.instance.clone();
        crate::task::spawn("nats-changes", async move {
            while let Some(m) = sub.next().await {
                let Ok(msg) = serde_json::from_slice::<Message>(&m.payload) else {
                    tracing::warn!("ignored a malformed change message on NATS");
                    continue;
                };
                if msg.from != me && tx.send(msg.change).await.is_err() {
                    return;
                }
            }
        });
        Ok(rx)
    }

    pub fn count_received(&self) {
        self.received.fetch_add(1, Ordering::Relaxed);
    }
}
