//! Distributed mode on the server's side: starting the shared counters and
//! the change bus, telling other instances what changed here, and applying
//! what changed there. Every change is read from the store (the source of
//! truth); NATS only says when to read. The store poll (`poll`, every
//! second with PostgreSQL) catches up an instance that missed messages —
//! a restart, a partition, a NATS outage.

use std::sync::{Arc, Weak};

use super::App;
use crate::config::reload::Live;
use crate::distributed::Cells;
use crate::distributed::bus::{Bus, Change};
use crate::distributed::settings::Settings;

/// What distributed mode runs in this process.
pub struct Cluster {
    pub settings: Arc<Settings>,
    pub cells: Arc<Cells>,
    pub bus: Arc<Bus>,
}

impl Cluster {
    /// Shares the counters and budgets of `live` through Redis and connects
    /// to NATS. Neither needs to be up: the gateway serves regardless.
    pub async fn start(live: &Live, settings: Arc<Settings>) -> std::io::Result<Cluster> {
        let shared = live.shared();
        let cells = Arc::new(Cells::new(settings.lease, settings.fail_closed));
        shared.counters.attach(cells.clone());
        shared.ledger.attach(cells.clone());
        let bus = Bus::connect(&settings).await.map_err(std::io::Error::other)?;
        tracing::info!(
            instance = %settings.instance_id, redis = %settings.redis_display(), nats = %settings.nats_display(),
            namespace = %settings.namespace, "distributed mode"
        );
        Ok(Cluster { settings, cells, bus })
    }

    /// For `/ready`: whether Redis and NATS answer.
    pub fn status(&self) -> serde_json::Value {
        serde_json::json!({
            "instance_id": self.settings.instance_id,
            "redis": if self.cells.degraded() { "unreachable" } else { "ok" },
            "limits": match (self.cells.degraded(), self.cells.fail_closed()) {
                (false, _) => "shared",
                (true, false) => "local",
                (true, true) => "closed",
            },
            "nats": if self.bus.connected() { "ok" } else { "unreachable" },
        })
    }
}

/// Tells the other instances that `change` happened here (after the store
/// has it). A no-op outside distributed mode.
pub async fn publish(app: &App, change: Change) {
    if let Some(c) = &app.cluster {
        c.bus.publish(change).await;
    }
}

/// Applies changes announced by other instances until the process ends.
pub fn listen(app: &Arc<App>) {
    let Some(cluster) = &app.cluster else { return };
    let (bus, weak) = (cluster.bus.clone(), Arc::downgrade(app));
    crate::task::spawn("apply-changes", async move {
        let mut rx = match bus.subscribe().await {
            Ok(rx) => rx,
            Err(e) => {
                tracing::error!(error = %e, "no change feed from NATS; changes arrive by the store poll");
                return;
            }
        };
        while let Some(change) = rx.recv().await {
            let Some(app) = weak.upgrade() else { return };
            bus.count_received();
            apply(&app, change).await;
        }
    });
}

async fn apply(app: &Arc<App>, change: Change) {
    let done = match change {
        Change::Keys => keys(app).await,
        Change::Overlays => overlays(app, &mut None).await,
        Change::McpApprovals => app.mcp.reload_pins().await.map(|_| ()),
        Change::ConfigReload => {
            let live = app.live.clone();
            match tokio::task::spawn_blocking(move || live.reload("change on another instance", true)).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(format!("{} error(s) in the config", e.diags.len())),
                Err(_) => Err("reload task failed".into()),
            }
        }
    };
    if let Err(e) = done {
        tracing::warn!(?change, error = %e, "could not apply a change from another instance; the store poll retries");
    }
}

async fn keys(app: &App) -> Result<(), String> {
    let k = app.store.load_keys().await?;
    app.live.shared().keys.install(k);
    Ok(())
}

/// Overlays as the store has them, sorted: the same set in another order
/// is no change.
type OverlaySet = Vec<(&'static str, String, String)>;

/// Overlays as the store has them, applied through a reload if they differ
/// from what this instance runs. Under the overlay lock: an admin change
/// in progress here (applied, not yet stored) is never undone by a read.
/// `refused` remembers a set that did not load, so the poll does not try
/// (and log) it again every second.
async fn overlays(app: &App, refused: &mut Option<OverlaySet>) -> Result<(), String> {
    let _one = app.overlay_lock.lock().await;
    let stored = app.store.load_overlays().await?;
    let shared = app.live.shared();
    let before = shared.overlays.get();
    let sorted = |v: &[crate::config::overlay::Entry]| -> OverlaySet {
        let mut v: Vec<_> = v.iter().map(|e| (e.kind.as_str(), e.id.clone(), e.body.clone())).collect();
        v.sort();
        v
    };
    let wanted = sorted(&stored);
    if sorted(&before) == wanted || refused.as_ref() == Some(&wanted) {
        return Ok(());
    }
    shared.overlays.set(stored);
    let live = app.live.clone();
    match tokio::task::spawn_blocking(move || live.reload("admin overlay on another instance", false)).await {
        Ok(Ok(_)) => {
            *refused = None;
            Ok(())
        }
        _ => {
            shared.overlays.set(before.to_vec());
            *refused = Some(wanted);
            Err("the stored overlays do not load with this instance's config".into())
        }
    }
}

/// What the store poll remembers between rounds.
#[derive(Default)]
pub struct Poll {
    refused: Option<OverlaySet>,
}

/// One round of the store poll: keys always (as before distributed mode),
/// then overlays and MCP approvals.
pub async fn poll(app: &Weak<App>, state: &mut Poll) {
    let Some(app) = app.upgrade() else { return };
    if let Err(e) = keys(&app).await {
        tracing::warn!(error = %e, "could not refresh virtual keys from the store");
        return;
    }
    if let Err(e) = overlays(&app, &mut state.refused).await {
        tracing::warn!(error = %e, "could not refresh admin overlays from the store");
    }
    if let Err(e) = app.mcp.reload_pins().await {
        tracing::warn!(error = %e, "could not refresh MCP approvals from the store");
    }
}
