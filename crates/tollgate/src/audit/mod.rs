//! The audit log: admin changes (keys, rules, config reloads) and security
//! decisions (refused credentials, refused admin calls), append-only and
//! hash-chained. Each entry's hash covers the previous entry's hash and the
//! entry itself, so editing or deleting any entry breaks every hash after
//! it; `tollgate audit verify` walks the chain and says where.
//!
//! Recording never blocks a request: entries go through a bounded queue to
//! one writer task that appends them to the store in batches. A full queue
//! drops the entry and counts it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, watch};

use crate::store::Store;

pub mod chain;
pub use chain::{Entry, GENESIS, Record, entry_hash};

/// Checks a chain read in `seq` order; the first problem found, if any.
pub fn verify(entries: &[Entry]) -> Result<usize, String> {
    let mut prev = GENESIS.to_string();
    for (expected_seq, e) in (1u64..).zip(entries.iter()) {
        if e.seq != expected_seq {
            return Err(format!("entry {expected_seq} is missing (the next one is {}): entries were deleted", e.seq));
        }
        if e.prev_hash != prev {
            return Err(format!("entry {} does not follow entry {}: the chain was cut or reordered", e.seq, e.seq - 1));
        }
        if entry_hash(e.seq, &e.prev_hash, &e.record) != e.hash {
            return Err(format!(
                "entry {} was changed after it was written ({} {})",
                e.seq, e.record.action, e.record.target
            ));
        }
        prev = e.hash.clone();
    }
    Ok(entries.len())
}

/// Where audit records are sent. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct AuditLog {
    tx: Arc<OnceLock<mpsc::Sender<Record>>>,
    dropped: Arc<AtomicU64>,
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

impl AuditLog {
    pub fn record(&self, actor: &str, action: &str, target: &str, outcome: &str) {
        let r = Record {
            time: now_ms(),
            actor: actor.to_string(),
            action: action.to_string(),
            target: target.to_string(),
            outcome: outcome.to_string(),
        };
        tracing::info!(actor, action, target, outcome, "audit");
        let Some(tx) = self.tx.get() else { return };
        if tx.try_send(r).is_err() {
            let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            tracing::warn!(dropped_total = n, "audit queue full; an audit record was dropped");
        }
    }

    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Starts the writer; it appends in batches until `stop`, then writes
    /// what is still queued.
    pub fn start(&self, store: Arc<Store>, mut stop: watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
        let (tx, mut rx) = mpsc::channel::<Record>(4096);
        let _ = self.tx.set(tx);
        crate::task::spawn("audit-writer", async move {
            let mut batch = Vec::new();
            loop {
                let stopping = tokio::select! {
                    r = rx.recv() => match r { Some(r) => { batch.push(r); false } None => true },
                    _ = stop.wait_for(|s| *s) => true,
                };
                while let Ok(r) = rx.try_recv() {
                    batch.push(r);
                }
                // A failed append is retried with the next batch: nothing is
                // lost while the store is briefly unavailable.
                if !batch.is_empty() {
                    match store.append_audit(batch.clone()).await {
                        Ok(()) => batch.clear(),
                        Err(e) => {
                            tracing::error!(error = %e, pending = batch.len(), "could not append to the audit log; will retry");
                            if !stopping {
                                tokio::time::sleep(Duration::from_millis(500)).await;
                            }
                        }
                    }
                }
                if stopping {
                    return;
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: u64) -> Vec<Entry> {
        let mut prev = GENESIS.to_string();
        (1..=n)
            .map(|seq| {
                let record = Record {
                    time: seq,
                    actor: "master".into(),
                    action: "key.create".into(),
                    target: format!("vk_{seq}"),
                    outcome: "ok".into(),
                };
                let hash = entry_hash(seq, &prev, &record);
                let e = Entry { seq, record, prev_hash: prev.clone(), hash: hash.clone() };
                prev = hash;
                e
            })
            .collect()
    }

    #[test]
    fn edits_and_deletions_are_detected() {
        assert_eq!(verify(&chain(5)), Ok(5));
        let mut edited = chain(5);
        edited[2].record.actor = "someone-else".into();
        assert!(verify(&edited).unwrap_err().contains("entry 3 was changed"));
        let mut deleted = chain(5);
        deleted.remove(1);
        assert!(verify(&deleted).unwrap_err().contains("entry 2 is missing"));
        let mut tail_cut = chain(5);
        tail_cut.remove(0);
        assert!(verify(&tail_cut).is_err());
    }
}
