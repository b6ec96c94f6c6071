//! The Redis backend, shared by every instance pointed at it. An answer is
//! one key with a PX expiry. Redis being slow or down is a miss (and a
//! skipped store), never a failed request: each command has a short
//! deadline, and the connection is re-made in the background by the
//! connection manager.

use std::time::Duration;

use bytes::Bytes;
use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use std::sync::Mutex;
use std::time::Instant;

/// Longest a cache command may hold up a request.
const DEADLINE: Duration = Duration::from_millis(250);
const PREFIX: &str = "tollgate:cache:";

/// A Redis that could not be reached is tried again after this long.
const RETRY: Duration = Duration::from_secs(5);

#[derive(Default)]
struct State {
    conn: Option<ConnectionManager>,
    connecting: bool,
    tried: Option<Instant>,
}

pub struct Redis {
    url: String,
    state: Mutex<State>,
}

impl Redis {
    pub fn new(url: &str) -> Redis {
        Redis { url: url.to_string(), state: Mutex::default() }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// The connection; while one is being made, or soon after a failed
    /// attempt, `None` (a miss) rather than a wait.
    async fn conn(&self) -> Option<ConnectionManager> {
        {
            let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(c) = &s.conn {
                return Some(c.clone());
            }
            if s.connecting || s.tried.is_some_and(|t| t.elapsed() < RETRY) {
                return None;
            }
            s.connecting = true;
        }
        let made = match redis::Client::open(self.url.as_str()) {
            Ok(client) => tokio::time::timeout(Duration::from_secs(1), ConnectionManager::new(client)).await.ok().and_then(Result::ok),
            Err(_) => None,
        };
        if made.is_none() {
            tracing::warn!("the cache's Redis cannot be reached; requests go upstream until it can");
        }
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.connecting = false;
        s.tried = Some(Instant::now());
        s.conn = made.clone();
        made
    }

    pub async fn get(&self, key: &str) -> Option<Bytes> {
        let mut c = self.conn().await?;
        let got: Result<Option<Vec<u8>>, _> =
            tokio::time::timeout(DEADLINE, c.get(format!("{PREFIX}{key}"))).await.ok()?;
        got.ok().flatten().map(Bytes::from)
    }

    pub async fn put(&self, key: &str, value: Bytes, ttl: Duration) {
        let Some(mut c) = self.conn().await else { return };
        let ms = ttl.as_millis().max(1) as u64;
        let set = c.pset_ex::<_, _, ()>(format!("{PREFIX}{key}"), value.to_vec(), ms);
        if !matches!(tokio::time::timeout(DEADLINE, set).await, Ok(Ok(()))) {
            tracing::debug!("an answer could not be stored in Redis");
        }
    }
}
