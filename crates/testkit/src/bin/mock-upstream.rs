//! A fast OpenAI-compatible mock upstream for load benchmarks.
//!
//! Run: `mock-upstream 127.0.0.1:9100` — then point a provider's base_url at
//! `http://127.0.0.1:9100/v1`. Keeps no request history.
//!
//! `MOCK_STALL_AFTER=N`: every stream sends N events and then goes silent
//! for an hour — open, idle streams for memory benchmarks.

use std::net::SocketAddr;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9100".into())
        .parse()
        .expect("usage: mock-upstream HOST:PORT");
    let threads: usize = std::env::var("MOCK_THREADS").ok().and_then(|t| t.parse().ok()).unwrap_or(1);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(threads).enable_all().build().expect("runtime");
    rt.block_on(async {
        let up = testkit::MockUpstream::start_on(addr, false).await;
        if let Some(n) = std::env::var("MOCK_STALL_AFTER").ok().and_then(|n| n.parse().ok()) {
            up.set_fault(Some(testkit::Fault::StallStream {
                after_events: n,
                pause: std::time::Duration::from_secs(3600),
            }));
        }
        eprintln!("mock upstream listening on {}", up.base_url());
        let _ = tokio::signal::ctrl_c().await;
    });
}
