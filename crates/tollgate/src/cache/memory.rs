//! The in-process backend: answers by key, each until its deadline, within
//! a bound on entries and bytes. When full, the entry stored longest ago
//! goes first (a hit does not renew it: TTLs are short, and a FIFO needs no
//! bookkeeping on the read path).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;

#[derive(Default)]
struct Inner {
    entries: HashMap<String, (Bytes, Instant)>,
    order: VecDeque<String>,
    bytes: usize,
}

#[derive(Default)]
pub struct Memory {
    inner: Mutex<Inner>,
}

impl Memory {
    pub fn get(&self, key: &str) -> Option<Bytes> {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        match g.entries.get(key) {
            Some((v, until)) if *until > Instant::now() => Some(v.clone()),
            Some(_) => {
                // Expired: gone now, its place in the order is dropped lazily.
                if let Some((v, _)) = g.entries.remove(key) {
                    g.bytes -= v.len();
                }
                None
            }
            None => None,
        }
    }

    /// Stores `value`; returns how many entries were evicted to make room.
    pub fn put(&self, key: String, value: Bytes, ttl: Duration, max_entries: usize, max_bytes: usize) -> u64 {
        if value.len() > max_bytes || max_entries == 0 {
            return 0;
        }
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((old, _)) = g.entries.remove(&key) {
            g.bytes -= old.len();
        }
        let mut evicted = 0;
        while g.entries.len() >= max_entries || g.bytes + value.len() > max_bytes {
            let Some(oldest) = g.order.pop_front() else { break };
            if let Some((v, _)) = g.entries.remove(&oldest) {
                g.bytes -= v.len();
                evicted += 1;
            }
        }
        g.bytes += value.len();
        g.order.push_back(key.clone());
        g.entries.insert(key, (value, Instant::now() + ttl));
        // The order may hold keys replaced or expired since; keep it bounded.
        if g.order.len() > 2 * max_entries.max(16) {
            let Inner { entries, order, .. } = &mut *g;
            order.retain(|k| entries.contains_key(k));
        }
        evicted
    }

    pub fn bytes(&self) -> usize {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_and_the_oldest_go_first_when_full() {
        let m = Memory::default();
        let ttl = Duration::from_secs(60);
        m.put("a".into(), Bytes::from_static(b"1234"), ttl, 2, 100);
        m.put("b".into(), Bytes::from_static(b"5678"), ttl, 2, 100);
        assert_eq!(m.put("c".into(), Bytes::from_static(b"9"), ttl, 2, 100), 1);
        assert!(m.get("a").is_none() && m.get("b").is_some() && m.get("c").is_some());
        assert_eq!(m.bytes(), 5);
        assert_eq!(m.put("d".into(), Bytes::from(vec![0; 98]), ttl, 10, 100), 1, "bytes bound: b goes");
        assert!(m.get("b").is_none() && m.get("c").is_some());
        m.put("e".into(), Bytes::from_static(b"x"), Duration::ZERO, 10, 1000);
        assert!(m.get("e").is_none(), "expired");
        assert_eq!(m.put("big".into(), Bytes::from(vec![0; 1001]), ttl, 10, 1000), 0);
        assert!(m.get("big").is_none(), "larger than the whole cache: not kept");
    }
}
