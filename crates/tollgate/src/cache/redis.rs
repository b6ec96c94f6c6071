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

/// One vector of a partition's stream: (stream id, answer key, vector, ttl).
pub type Change = (String, String, Vec<f32>, Duration);

/// Entries read from a partition's stream per command.
const BATCH: usize = 5000;

impl Redis {
    /// Appends a kept answer's vector to its partition's stream, so every
    /// instance's index can find it. The stream lives as long as its
    /// longest-lived entry and is trimmed to about `max_len`.
    pub async fn append(&self, partition: &str, key: &str, vector: &[f32], ttl: Duration, max_len: usize) {
        let Some(mut c) = self.conn().await else { return };
        let stream = format!("{PREFIX}sem:{partition}");
        let ms = ttl.as_millis().max(1) as u64;
        let bytes: Vec<u8> = vector.iter().flat_map(|x| x.to_le_bytes()).collect();
        let mut p = redis::pipe();
        p.cmd("XADD").arg(&stream).arg("MAXLEN").arg("~").arg(max_len.max(1)).arg("*");
        p.arg("k").arg(key).arg("v").arg(bytes).arg("t").arg(ms).ignore();
        // NX sets a first expiry, GT only ever lengthens it.
        p.cmd("PEXPIRE").arg(&stream).arg(ms).arg("NX").ignore();
        p.cmd("PEXPIRE").arg(&stream).arg(ms).arg("GT").ignore();
        if !matches!(tokio::time::timeout(DEADLINE, p.query_async::<()>(&mut c)).await, Ok(Ok(()))) {
            tracing::debug!("a cache vector could not be stored in Redis");
        }
    }

    /// The vectors added to a partition's stream after `after` (from the
    /// start when empty), oldest first; `None` when Redis did not answer.
    pub async fn changes(&self, partition: &str, after: &str) -> Option<Vec<Change>> {
        let mut c = self.conn().await?;
        let stream = format!("{PREFIX}sem:{partition}");
        let mut out = Vec::new();
        let mut from = if after.is_empty() { "-".to_string() } else { format!("({after}") };
        let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        // Bounded, so a first read of a long stream cannot hold a request for long.
        for _ in 0..20 {
            let cmd = redis::cmd("XRANGE").arg(&stream).arg(&from).arg("+").arg("COUNT").arg(BATCH).to_owned();
            let v: redis::Value = tokio::time::timeout(DEADLINE, cmd.query_async(&mut c)).await.ok()?.ok()?;
            let redis::Value::Array(rows) = v else { return Some(out) };
            let n = rows.len();
            for row in rows {
                if let Some(ch) = change(row, now_ms) {
                    from = format!("({}", ch.0);
                    out.push(ch);
                }
            }
            if n < BATCH {
                break;
            }
        }
        Some(out)
    }
}

/// One XRANGE row as a change; `None` if malformed or already expired.
fn change(row: redis::Value, now_ms: u64) -> Option<Change> {
    let redis::Value::Array(mut parts) = row else { return None };
    let fields = parts.pop()?;
    let id = match parts.pop()? {
        redis::Value::BulkString(b) => String::from_utf8(b).ok()?,
        redis::Value::SimpleString(s) => s,
        _ => return None,
    };
    let redis::Value::Array(fields) = fields else { return None };
    let (mut key, mut vector, mut ttl_ms) = (None, None, None);
    for pair in fields.chunks(2) {
        let (redis::Value::BulkString(name), redis::Value::BulkString(value)) = (&pair[0], pair.get(1)?) else { continue };
        match name.as_slice() {
            b"k" => key = String::from_utf8(value.clone()).ok(),
            b"v" => vector = Some(value.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()),
            b"t" => ttl_ms = std::str::from_utf8(value).ok().and_then(|t| t.parse::<u64>().ok()),
            _ => {}
        }
    }
    // The id starts with Redis's clock in ms when the vector was added.
    let added: u64 = id.split('-').next()?.parse().ok()?;
    let left = (added + ttl_ms?).checked_sub(now_ms).filter(|l| *l > 0)?;
    Some((id.clone(), key?, vector?, Duration::from_millis(left)))
}
