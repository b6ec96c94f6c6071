//! Background tasks, spawned in one place. Every task has a name; the
//! number running is kept (`live`), and a task that panics is logged with
//! its name before the panic goes on to its `JoinHandle`. `tokio::spawn`
//! is a disallowed method elsewhere (clippy.toml), so no task can start
//! unnamed and unnoticed.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures_util::FutureExt;
use tokio::task::JoinHandle;

static LIVE: AtomicUsize = AtomicUsize::new(0);

/// Background tasks running now.
pub fn live() -> usize {
    LIVE.load(Ordering::Relaxed)
}

struct Running;

impl Drop for Running {
    fn drop(&mut self) {
        LIVE.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Spawns `fut` as the background task `name`.
pub fn spawn<F>(name: &'static str, fut: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    LIVE.fetch_add(1, Ordering::Relaxed);
    let running = Running;
    #[expect(clippy::disallowed_methods, reason = "the one place a task is spawned")]
    tokio::spawn(async move {
        let _running = running;
        match AssertUnwindSafe(fut).catch_unwind().await {
            Ok(out) => out,
            Err(panic) => {
                tracing::error!(task = name, "background task panicked");
                std::panic::resume_unwind(panic)
            }
        }
    })
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn tasks_are_counted_and_a_panic_reaches_the_handle() {
        let before = super::live();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let h = super::spawn("test-wait", async move {
            let _ = rx.await;
            7
        });
        assert!(super::live() > before);
        tx.send(()).unwrap();
        assert_eq!(h.await.unwrap(), 7);
        let p = super::spawn("test-panic", async { panic!("boom") });
        assert!(p.await.unwrap_err().is_panic());
    }
}
