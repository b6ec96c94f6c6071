//! The semantic index: for each partition (tenant, namespace, model, front
//! door and every part of the request but the last user turn), the vectors
//! of the kept answers' last user turns, searched by cosine similarity.
//!
//! Purpose-built rather than a vector-database crate because the hot path
//! needs only "is there one entry above the threshold", within a partition
//! that is usually small. Each vector is kept as int8 with one scale (a
//! quarter of the memory of f32, precise to ~0.01 in cosine) plus a 256-bit
//! SimHash signature (random ±1 hyperplanes). A partition of a few hundred
//! entries is scanned exactly; a larger one is narrowed first by the
//! signatures' Hamming distance — a few popcounts per entry — to the
//! closest candidates, which are then scored exactly. `benches/semantic.rs`
//! measures a lookup among 100,000 entries.
//!
//! The index is bounded by entry count across partitions (oldest out
//! first), and an entry past its deadline is never returned.

use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// Bits in a signature.
const BITS: usize = 256;
const WORDS: usize = BITS / 64;
/// Up to this many entries a partition is scanned exactly.
const EXACT_SCAN: usize = 256;
/// Candidates the signatures pass on to exact scoring.
const CANDIDATES: usize = 64;

#[derive(Default)]
struct Part {
    dims: usize,
    keys: Vec<String>,
    slot: HashMap<String, usize>,
    sigs: Vec<[u64; WORDS]>,
    quant: Vec<i8>,
    scale: Vec<f32>,
    until: Vec<Instant>,
    /// For a shared backend: the last change read from it, and when.
    cursor: String,
    synced: Option<Instant>,
}

impl Part {
    fn len(&self) -> usize {
        self.keys.len()
    }

    fn remove(&mut self, key: &str) -> bool {
        let Some(i) = self.slot.remove(key) else { return false };
        let last = self.keys.len() - 1;
        self.keys.swap_remove(i);
        self.sigs.swap_remove(i);
        self.scale.swap_remove(i);
        self.until.swap_remove(i);
        for d in 0..self.dims {
            self.quant.swap(i * self.dims + d, last * self.dims + d);
        }
        self.quant.truncate(last * self.dims);
        if i < last {
            self.slot.insert(self.keys[i].clone(), i);
        }
        true
    }

    /// Cosine of entry `i` with the quantized unit query.
    fn score(&self, i: usize, q: &Quantized) -> f32 {
        let row = &self.quant[i * self.dims..(i + 1) * self.dims];
        dot_i8(row, &q.values) as f32 * self.scale[i] * q.scale
    }
}

/// A unit vector as int8 and the scale that maps it back.
struct Quantized {
    values: Vec<i8>,
    scale: f32,
}

impl Quantized {
    fn of(v: &[f32]) -> Quantized {
        let max = v.iter().fold(0f32, |m, x| m.max(x.abs()));
        let scale = if max > 0.0 { max / 127.0 } else { 1.0 };
        Quantized { values: v.iter().map(|x| (x / scale).round().clamp(-127.0, 127.0) as i8).collect(), scale }
    }
}

/// Integer dot product in 16 independent lanes, which the compiler turns
/// into SIMD (an f32 sum it may not reorder, so it would stay scalar).
fn dot_i8(a: &[i8], b: &[i8]) -> i32 {
    let (ca, cb) = (a.chunks_exact(16), b.chunks_exact(16));
    let tail: i32 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| i32::from(*x) * i32::from(*y)).sum();
    let mut lanes = [0i32; 16];
    for (x, y) in ca.zip(cb) {
        for k in 0..16 {
            lanes[k] += i32::from(x[k]) * i32::from(y[k]);
        }
    }
    lanes.iter().sum::<i32>() + tail
}

/// A match: the kept answer's key and its similarity to the query.
#[derive(Debug, Clone, PartialEq)]
pub struct Match {
    pub key: String,
    pub similarity: f32,
}

#[derive(Default)]
pub struct Index {
    parts: RwLock<HashMap<String, Arc<RwLock<Part>>>>,
    /// Insertion order across partitions, for the bound.
    order: Mutex<VecDeque<(String, String)>>,
    /// The ±1 hyperplanes for each vector length seen.
    planes: RwLock<HashMap<usize, Arc<Vec<i8>>>>,
}

impl Index {
    fn part(&self, partition: &str) -> Option<Arc<RwLock<Part>>> {
        self.parts.read().unwrap_or_else(|p| p.into_inner()).get(partition).cloned()
    }

    fn part_or_new(&self, partition: &str) -> Arc<RwLock<Part>> {
        if let Some(p) = self.part(partition) {
            return p;
        }
        let mut parts = self.parts.write().unwrap_or_else(|p| p.into_inner());
        parts.entry(partition.to_string()).or_default().clone()
    }

    fn planes(&self, dims: usize) -> Arc<Vec<i8>> {
        if let Some(p) = self.planes.read().unwrap_or_else(|p| p.into_inner()).get(&dims) {
            return p.clone();
        }
        // Deterministic (xorshift from a fixed seed): every instance draws the same planes.
        let mut s: u64 = 0x9e37_79b9_7f4a_7c15 ^ dims as u64;
        let planes: Vec<i8> = (0..BITS * dims)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                if s & 1 == 1 { 1 } else { -1 }
            })
            .collect();
        let planes = Arc::new(planes);
        self.planes.write().unwrap_or_else(|p| p.into_inner()).insert(dims, planes.clone());
        planes
    }

    fn signature(&self, q: &Quantized) -> [u64; WORDS] {
        let planes = self.planes(q.values.len());
        let mut sig = [0u64; WORDS];
        for (b, plane) in planes.chunks_exact(q.values.len()).enumerate() {
            if dot_i8(plane, &q.values) >= 0 {
                sig[b / 64] |= 1 << (b % 64);
            }
        }
        sig
    }

    /// Adds (or replaces) the vector of the answer kept under `key`; keeps
    /// at most `max_entries` across partitions.
    pub fn insert(&self, partition: &str, key: &str, vector: &[f32], ttl: Duration, max_entries: usize) {
        let mut v = vector.to_vec();
        super::embed::normalize(&mut v);
        if v.is_empty() || max_entries == 0 || v.iter().all(|x| *x == 0.0) {
            return;
        }
        let q = Quantized::of(&v);
        let sig = self.signature(&q);
        let part = self.part_or_new(partition);
        {
            let mut p = part.write().unwrap_or_else(|p| p.into_inner());
            if p.dims != v.len() {
                // Another embedding model: the old vectors cannot be compared.
                let (cursor, synced) = (std::mem::take(&mut p.cursor), p.synced);
                *p = Part { dims: v.len(), cursor, synced, ..Part::default() };
            }
            p.remove(key);
            let i = p.len();
            p.keys.push(key.to_string());
            p.slot.insert(key.to_string(), i);
            p.sigs.push(sig);
            p.scale.push(q.scale);
            p.until.push(Instant::now() + ttl);
            p.quant.extend_from_slice(&q.values);
        }
        let mut order = self.order.lock().unwrap_or_else(|p| p.into_inner());
        order.push_back((partition.to_string(), key.to_string()));
        while order.len() > max_entries {
            let Some((pt, k)) = order.pop_front() else { break };
            if let Some(p) = self.part(&pt) {
                p.write().unwrap_or_else(|p| p.into_inner()).remove(&k);
            }
        }
    }

    /// Forgets an entry (its answer is gone from the backend).
    pub fn remove(&self, partition: &str, key: &str) {
        if let Some(p) = self.part(partition) {
            p.write().unwrap_or_else(|p| p.into_inner()).remove(key);
        }
    }

    /// The entries at least `threshold` similar to `query`, best first, at
    /// most `limit`.
    pub fn search(&self, partition: &str, query: &[f32], threshold: f32, limit: usize) -> Vec<Match> {
        let Some(part) = self.part(partition) else { return Vec::new() };
        let mut unit = query.to_vec();
        super::embed::normalize(&mut unit);
        let q = Quantized::of(&unit);
        let p = part.read().unwrap_or_else(|p| p.into_inner());
        if p.dims != unit.len() || p.len() == 0 {
            return Vec::new();
        }
        let now = Instant::now();
        let candidates: Vec<usize> = if p.len() <= EXACT_SCAN {
            (0..p.len()).collect()
        } else {
            let sig = self.signature(&q);
            // The closest signatures, kept in a max-heap of the best so far.
            let mut best: BinaryHeap<(u32, usize)> = BinaryHeap::with_capacity(CANDIDATES + 1);
            for (i, s) in p.sigs.iter().enumerate() {
                let d: u32 = s.iter().zip(&sig).map(|(a, b)| (a ^ b).count_ones()).sum();
                if best.len() < CANDIDATES {
                    best.push((d, i));
                } else if best.peek().is_some_and(|(worst, _)| d < *worst) {
                    best.pop();
                    best.push((d, i));
                }
            }
            best.into_iter().map(|(_, i)| i).collect()
        };
        let mut found: Vec<Match> = candidates
            .into_iter()
            .filter(|i| p.until[*i] > now)
            .map(|i| (i, p.score(i, &q)))
            .filter(|(_, s)| *s >= threshold)
            .map(|(i, s)| Match { key: p.keys[i].clone(), similarity: s.min(1.0) })
            .collect();
        found.sort_by(|a, b| b.similarity.total_cmp(&a.similarity));
        found.truncate(limit);
        found
    }

    /// Entries across partitions.
    pub fn len(&self) -> usize {
        self.parts.read().unwrap_or_else(|p| p.into_inner()).values().map(|p| p.read().map_or(0, |p| p.len())).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A shared backend's position in a partition's changes: (last change
    /// read, when last read).
    pub fn cursor(&self, partition: &str) -> (String, Option<Instant>) {
        self.part(partition).map_or((String::new(), None), |p| {
            let p = p.read().unwrap_or_else(|p| p.into_inner());
            (p.cursor.clone(), p.synced)
        })
    }

    pub fn set_cursor(&self, partition: &str, cursor: String) {
        let part = self.part_or_new(partition);
        let mut p = part.write().unwrap_or_else(|p| p.into_inner());
        p.cursor = cursor;
        p.synced = Some(Instant::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::embed::builtin;

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn the_nearest_entry_above_the_threshold_is_found_within_its_partition() {
        let ix = Index::default();
        ix.insert("t1", "k-france", &builtin("What is the capital of France?"), HOUR, 100);
        ix.insert("t1", "k-germany", &builtin("What is the capital of Germany?"), HOUR, 100);
        ix.insert("t2", "k-other", &builtin("What is the capital of France?"), HOUR, 100);
        let m = ix.search("t1", &builtin("what's the capital of france"), 0.9, 3);
        assert_eq!(m.len(), 1, "{m:?}");
        assert_eq!(m[0].key, "k-france");
        assert!(m[0].similarity > 0.95);
        assert!(ix.search("t3", &builtin("what's the capital of france"), 0.9, 3).is_empty(), "partitions part");
        ix.remove("t1", "k-france");
        assert!(ix.search("t1", &builtin("what's the capital of france"), 0.9, 3).is_empty());
        assert_eq!(ix.len(), 2);
    }

    #[test]
    fn expired_entries_are_not_found_and_the_bound_evicts_the_oldest() {
        let ix = Index::default();
        ix.insert("t", "old", &builtin("alpha beta gamma"), Duration::ZERO, 2);
        assert!(ix.search("t", &builtin("alpha beta gamma"), 0.9, 1).is_empty(), "expired");
        ix.insert("t", "a", &builtin("one two three"), HOUR, 2);
        ix.insert("t", "b", &builtin("four five six"), HOUR, 2);
        assert_eq!(ix.len(), 2, "the oldest went first");
        assert_eq!(ix.search("t", &builtin("one two three"), 0.9, 1)[0].key, "a");
        ix.insert("t", "a", &builtin("seven eight nine"), HOUR, 2);
        assert!(ix.search("t", &builtin("one two three"), 0.9, 1).is_empty(), "replaced in place");
        ix.insert("t", "x", &[1.0, 0.0], HOUR, 2);
        assert_eq!(ix.search("t", &[0.6, 0.8], 0.5, 1)[0].key, "x", "another length resets the partition");
    }

    #[test]
    fn a_large_partition_is_searched_through_signatures_without_losing_the_match() {
        let ix = Index::default();
        // 5,000 random unit vectors of 64 dimensions, and one near the query.
        let mut s: u64 = 42;
        let mut rnd = || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s % 2001) as f32 / 1000.0 - 1.0
        };
        for i in 0..5000 {
            let v: Vec<f32> = (0..64).map(|_| rnd()).collect();
            ix.insert("big", &format!("k{i}"), &v, HOUR, 10_000);
        }
        let q: Vec<f32> = (0..64).map(|_| rnd()).collect();
        let near: Vec<f32> = q.iter().map(|x| x + 0.1 * rnd()).collect();
        ix.insert("big", "near", &near, HOUR, 10_000);
        let m = ix.search("big", &q, 0.9, 1);
        assert_eq!(m.first().map(|m| m.key.as_str()), Some("near"), "{m:?}");
    }
}
