//! The semantic cache's lookup: the built-in embedding of a question, and a
//! search of one partition holding 1,000 to 100,000 kept answers, for the
//! built-in 256-dimension vectors and for 1,536-dimension ones (the size of
//! OpenAI's text-embedding-3-small). Run:
//!
//! ```sh
//! cargo bench -p tollgate --bench semantic
//! ```

use std::time::Duration;

use tollgate::cache::embed::builtin;
use tollgate::cache::semantic::Index;

fn main() {
    divan::main();
}

/// Random unit-ish vectors from a fixed seed.
fn vectors(n: usize, dims: usize) -> Vec<Vec<f32>> {
    let mut s: u64 = 7;
    (0..n)
        .map(|_| {
            (0..dims)
                .map(|_| {
                    s ^= s << 13;
                    s ^= s >> 7;
                    s ^= s << 17;
                    (s % 2001) as f32 / 1000.0 - 1.0
                })
                .collect()
        })
        .collect()
}

fn filled(n: usize, dims: usize) -> (Index, Vec<f32>) {
    let ix = Index::default();
    let vs = vectors(n + 1, dims);
    for (i, v) in vs[..n].iter().enumerate() {
        ix.insert("tenant", &format!("{i:064x}"), v, Duration::from_secs(3600), n);
    }
    (ix, vs[n].clone())
}

#[divan::bench]
fn embed_builtin(b: divan::Bencher) {
    b.bench(|| builtin(divan::black_box("Could you tell me what the capital of France is, and why it became the capital?")));
}

#[divan::bench(args = [1_000, 10_000, 100_000])]
fn search_256_dims(b: divan::Bencher, n: usize) {
    let (ix, q) = filled(n, 256);
    b.bench(|| ix.search("tenant", divan::black_box(&q), 0.9, 3));
}

#[divan::bench(args = [1_000, 10_000, 100_000])]
fn search_1536_dims(b: divan::Bencher, n: usize) {
    let (ix, q) = filled(n, 1536);
    b.bench(|| ix.search("tenant", divan::black_box(&q), 0.9, 3));
}
