//! The task that keeps shared counters in step with Redis: every
//! `sync_interval` (or sooner, when a lease runs low) it takes each cell's
//! batch — debt, spend, a lease wanted — and sends them all in one Lua call,
//! which applies them atomically and grants leases from what the shared
//! count has left. A batch carries a token Redis remembers for an hour, so
//! a batch whose answer was lost is sent again without being applied
//! twice: spend reaches Redis exactly once.
//!
//! When Redis does not answer, cells are marked degraded (fail-open or
//! fail-closed, per config), the change is logged once and shown on
//! `/ready` and `/metrics`; what was counted meanwhile is sent when it
//! answers again.

use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::aio::ConnectionManager;
use tokio::sync::watch;

use super::cell::{Batch, Cell, Reply, Scope};
use super::cells::Cells;
use super::settings::Settings;

/// The longest a sync waits for Redis before counting it as down.
const DEADLINE: Duration = Duration::from_secs(1);
/// Cells per Lua call, so one call stays short.
const PER_CALL: usize = 256;
/// With nothing to send, Redis is still checked this often.
const HEARTBEAT: Duration = Duration::from_secs(1);

/// Applies batches: per cell 4 keys (count, previous window's count, spend,
/// batch token) and 9 arguments (limit, span ms or 0, ms into the window,
/// lease wanted, debt (negative: a lease returned), spend, key TTL ms or 0,
/// and the count and spend to start from if Redis has none). Answers per cell {granted, shared count, shared spend}. Integers
/// are formatted with %d: Lua would print large numbers as 1e+15.
const SCRIPT: &str = r#"
local out = {}
for i = 0, #KEYS / 4 - 1 do
  local kc, kp, ks, kt = KEYS[i*4+1], KEYS[i*4+2], KEYS[i*4+3], KEYS[i*4+4]
  local a = i * 9
  local limit, span, elapsed = tonumber(ARGV[a+1]), tonumber(ARGV[a+2]), tonumber(ARGV[a+3])
  local want, debt, spent = tonumber(ARGV[a+4]), tonumber(ARGV[a+5]), tonumber(ARGV[a+6])
  local ttl, seed, seed_spent = tonumber(ARGV[a+7]), tonumber(ARGV[a+8]), tonumber(ARGV[a+9])
  if not redis.call('SET', kt, '1', 'NX', 'PX', 3600000) then
    -- Applied before; its answer was lost. Apply nothing twice.
    want, debt, spent = 0, 0, 0
  end
  if seed > 0 and redis.call('EXISTS', kc) == 0 then
    redis.call('SET', kc, string.format('%d', seed))
  end
  if seed_spent > 0 and redis.call('EXISTS', ks) == 0 then
    redis.call('SET', ks, string.format('%d', seed_spent))
  end
  local cur = tonumber(redis.call('GET', kc) or '0')
  local weighted = 0
  if span > 0 then
    local prev = tonumber(redis.call('GET', kp) or '0')
    weighted = math.ceil(prev * (span - elapsed) / span)
  end
  local grant = 0
  local room = limit - weighted - cur - debt
  if want > 0 and room > 0 then grant = math.min(want, room) end
  local add = debt + grant
  if add ~= 0 then
    cur = redis.call('INCRBY', kc, string.format('%d', add))
    if cur < 0 then redis.call('SET', kc, '0'); cur = 0 end
  end
  local s = 0
  if spent > 0 then
    s = redis.call('INCRBY', ks, string.format('%d', spent))
  else
    s = tonumber(redis.call('GET', ks) or '0')
  end
  if ttl > 0 then
    redis.call('PEXPIRE', kc, ttl)
    redis.call('PEXPIRE', ks, ttl)
  end
  out[#out+1] = {grant, weighted + cur, s}
end
return out
"#;

/// Per cell: granted, shared count, shared spend.
type Answers = Vec<(u64, u64, u64)>;

pub struct Syncer {
    cells: Arc<Cells>,
    settings: Arc<Settings>,
    script: redis::Script,
    conn: Option<ConnectionManager>,
    last_try: Option<Instant>,
}

/// Connects (so the first requests are not refused while it does) and
/// starts the sync task; it ends after a last sync (debt, spend, unused
/// leases returned) once `stop` turns true. A Redis that cannot be reached
/// now is degraded mode from the first request on.
pub async fn start(
    cells: Arc<Cells>,
    settings: Arc<Settings>,
    stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let mut s = Syncer { cells, settings, script: redis::Script::new(SCRIPT), conn: None, last_try: None };
    let loaded = match s.connection().await {
        Some(mut c) => {
            let inv = s.script.prepare_invoke();
            matches!(tokio::time::timeout(DEADLINE, inv.load_async(&mut c)).await, Ok(Ok(_)))
        }
        None => false,
    };
    s.record(loaded);
    crate::task::spawn("distributed-sync", s.run(stop))
}

impl Syncer {
    async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let mut last_contact = Instant::now();
        loop {
            tokio::select! {
                _ = tokio::time::sleep(self.settings.sync_interval) => {}
                _ = self.cells.wake.notified() => {}
                _ = stop.wait_for(|s| *s) => break,
            }
            let sent = self.sync_once().await;
            match sent {
                Some(true) => last_contact = Instant::now(),
                Some(false) if last_contact.elapsed() >= HEARTBEAT || self.cells.degraded() => {
                    let ok = self.ping().await;
                    self.record(ok);
                    if ok {
                        last_contact = Instant::now();
                    }
                }
                _ => {}
            }
        }
        self.sync_once().await;
        self.return_leases().await;
    }

    /// Sends every cell's batch. `None`: Redis failed; `Some(false)`: there
    /// was nothing to send.
    pub async fn sync_once(&mut self) -> Option<bool> {
        let batches: Vec<(Arc<Cell>, Batch)> =
            self.cells.all().into_iter().filter_map(|c| c.begin_sync(|| fastrand::u64(..)).map(|b| (c, b))).collect();
        if batches.is_empty() {
            return Some(false);
        }
        let mut ok = true;
        for chunk in batches.chunks(PER_CALL) {
            let args: Vec<(&Cell, &Batch, i64)> = chunk.iter().map(|(c, b)| (&**c, b, b.debt as i64)).collect();
            let replies = self.call(&args).await;
            ok &= replies.is_some();
            for (i, (cell, batch)) in chunk.iter().enumerate() {
                cell.end_sync(batch, replies.as_ref().and_then(|r| r.get(i).copied()));
            }
        }
        self.record(ok);
        ok.then_some(true)
    }

    /// At shutdown: unused leases go back to the shared counts.
    async fn return_leases(&mut self) {
        let cells = self.cells.all();
        let held: Vec<(Arc<Cell>, Batch)> = cells
            .into_iter()
            .filter_map(|c| {
                let (index, lease) = c.unused_lease();
                let limit = 0;
                (lease > 0).then(|| {
                    let b = Batch {
                        token: fastrand::u64(..),
                        index,
                        debt: lease,
                        spent: 0,
                        want: 0,
                        limit,
                        seed_count: 0,
                        seed_spent: 0,
                    };
                    (c, b)
                })
            })
            .collect();
        for chunk in held.chunks(PER_CALL) {
            let args: Vec<(&Cell, &Batch, i64)> = chunk.iter().map(|(c, b)| (&**c, b, -(b.debt as i64))).collect();
            if self.call(&args).await.is_some() {
                chunk.iter().for_each(|(c, _)| c.drop_lease());
            }
        }
    }

    fn record(&self, ok: bool) {
        if !ok {
            self.cells.failures.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        if self.cells.set_degraded(!ok) {
            let redis = self.settings.redis_display();
            if ok {
                tracing::info!(%redis, "Redis answers again: shared limits and budgets resume; local counts are sent");
            } else if self.cells.fail_closed() {
                tracing::error!(%redis, "Redis cannot be reached: requests under rate limits and budgets are refused (distributed.fail_closed)");
            } else {
                tracing::warn!(%redis, "Redis cannot be reached: limits and budgets count locally, per instance, until it answers");
            }
        }
    }

    async fn connection(&mut self) -> Option<ConnectionManager> {
        if let Some(c) = &self.conn {
            return Some(c.clone());
        }
        // Not more than once a second while it cannot be reached.
        if self.last_try.is_some_and(|t| t.elapsed() < Duration::from_secs(1)) {
            return None;
        }
        self.last_try = Some(Instant::now());
        let client = redis::Client::open(self.settings.redis.clone()).ok()?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(DEADLINE))
            .set_response_timeout(Some(DEADLINE))
            .set_number_of_retries(1);
        let made = tokio::time::timeout(DEADLINE * 2, ConnectionManager::new_with_config(client, config)).await;
        self.conn = made.ok().and_then(Result::ok);
        self.conn.clone()
    }

    async fn ping(&mut self) -> bool {
        let Some(mut c) = self.connection().await else { return false };
        let pong: Option<Result<String, _>> =
            tokio::time::timeout(DEADLINE, redis::cmd("PING").query_async(&mut c)).await.ok();
        matches!(pong, Some(Ok(_)))
    }

    async fn call(&mut self, cells: &[(&Cell, &Batch, i64)]) -> Option<Vec<Reply>> {
        let mut conn = self.connection().await?;
        let ns = &self.settings.namespace;
        // The same clock the windows' indexes come from (`limits::now_ms`).
        let now =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        let mut inv = self.script.prepare_invoke();
        for (cell, b, debt) in cells {
            let (span, ttl) = match cell.scope {
                Scope::Window { span_ms } => (span_ms, span_ms * 2 + 60_000),
                Scope::Period { ttl_ms } => (0, ttl_ms),
            };
            let elapsed = if span > 0 { now.saturating_sub(b.index * span).min(span) } else { 0 };
            inv.key(format!("{ns}:c:{}:{}", cell.key, b.index))
                .key(format!("{ns}:c:{}:{}", cell.key, b.index.wrapping_sub(1)))
                .key(format!("{ns}:s:{}:{}", cell.key, b.index))
                .key(format!("{ns}:op:{}:{:016x}", self.settings.instance_id, b.token))
                .arg(b.limit)
                .arg(span)
                .arg(elapsed)
                .arg(b.want)
                .arg(*debt)
                .arg(b.spent)
                .arg(ttl)
                .arg(b.seed_count)
                .arg(b.seed_spent);
        }
        let answer: Result<redis::RedisResult<Answers>, _> =
            tokio::time::timeout(DEADLINE, inv.invoke_async(&mut conn)).await;
        match answer {
            Ok(Ok(v)) if v.len() == cells.len() => {
                Some(v.into_iter().map(|(granted, total, spent)| Reply { granted, total, spent }).collect())
            }
            Ok(Err(e)) => {
                tracing::debug!(error = ?e.kind(), "Redis sync failed");
                None
            }
            _ => None,
        }
    }
}
