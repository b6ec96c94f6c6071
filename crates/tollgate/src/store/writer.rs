//! The write-behind task: every second, the budget accounts that changed
//! since the last flush are written to the store in one transaction, off
//! the request path. A failed write is logged and retried on the next tick;
//! nothing on the request path waits for it. A final flush runs at shutdown.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::Store;
use crate::budgets::Ledger;

pub struct Writer {
    store: Arc<Store>,
    ledger: Ledger,
    /// What was last written, per key: (period, spent, alerted).
    written: HashMap<String, (u64, u64, u32)>,
}

impl Writer {
    pub fn new(store: Arc<Store>, ledger: Ledger) -> Writer {
        Writer { store, ledger, written: HashMap::new() }
    }

    /// Writes what changed; returns how many rows were written.
    pub async fn flush(&mut self) -> Result<usize, String> {
        let changed: Vec<_> = self
            .ledger
            .export()
            .into_iter()
            .filter(|r| self.written.get(&r.key) != Some(&(r.period, r.spent, r.alerted)))
            .collect();
        if changed.is_empty() {
            return Ok(0);
        }
        self.store.save_spend(changed.clone()).await?;
        for r in &changed {
            self.written.insert(r.key.clone(), (r.period, r.spent, r.alerted));
        }
        Ok(changed.len())
    }

    /// Flushes every `every` until `stop` turns true, then once more.
    pub async fn run(mut self, every: Duration, mut stop: watch::Receiver<bool>) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stop.wait_for(|s| *s) => break,
            }
            if let Err(e) = self.flush().await {
                tracing::error!(error = %e, "could not write budget spend to the store; will retry");
            }
        }
        if let Err(e) = self.flush().await {
            tracing::error!(error = %e, "final write of budget spend failed");
        }
    }
}
