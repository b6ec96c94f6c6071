//! Durable state: what must survive a restart (budget spend and the alerts
//! already raised, virtual keys). The request path never waits on it:
//! state is loaded into memory at start-up and written behind by a
//! background task (`writer.rs`); admin routes write through it.
//!
//! `store.url`: `sqlite://<path>` (the default, `sqlite://tollgate.db`),
//! `postgres://user:password@host:port/database`, or `memory://` for
//! nothing persisted.

mod batches;
mod postgres;
mod postgres_batches;
mod prompts;
mod sqlite;
mod sqlite_batches;
pub mod writer;

use std::path::PathBuf;
use std::sync::Arc;

use crate::budgets::AccountRow;
use crate::config::overlay::{Entry, Kind};
use crate::identity::keys::KeyRecord;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreUrl {
    Sqlite(PathBuf),
    Postgres(String),
    Memory,
}

impl StoreUrl {
    pub fn parse(url: &str) -> Result<StoreUrl, String> {
        if let Some(path) = url.strip_prefix("sqlite://") {
            if path.is_empty() {
                return Err("sqlite:// needs a file path, e.g. sqlite://tollgate.db".into());
            }
            if path == ":memory:" {
                return Ok(StoreUrl::Memory);
            }
            return Ok(StoreUrl::Sqlite(PathBuf::from(path)));
        }
        if url == "memory://" {
            return Ok(StoreUrl::Memory);
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return url
                .parse::<tokio_postgres::Config>()
                .map(|_| StoreUrl::Postgres(url.to_string()))
                .map_err(|e| format!("store.url is not a usable PostgreSQL URL: {e}"));
        }
        Err("store.url must be sqlite://<path>, postgres://… or memory://".to_string())
    }
}

/// Keeps keys for the life of the process only.
#[derive(Default)]
pub struct MemoryStore {
    secret: std::sync::OnceLock<[u8; 32]>,
    keys: std::sync::Mutex<Vec<(Vec<u8>, KeyRecord)>>,
    overlays: std::sync::Mutex<Vec<Entry>>,
    pins: std::sync::Mutex<std::collections::HashMap<String, String>>,
    batches: std::sync::Mutex<batches::MemoryBatches>,
    prompts: std::sync::Mutex<crate::prompts::Stored>,
    audit: std::sync::Mutex<Vec<crate::audit::chain::Entry>>,
    /// The newest `MEMORY_LOG_CAP` entries, oldest first, and their ids.
    logs: std::sync::Mutex<(
        std::collections::VecDeque<crate::reqlog::entry::LogEntry>,
        std::collections::HashSet<String>,
    )>,
}

/// `memory://` keeps this many request log entries, dropping the oldest.
const MEMORY_LOG_CAP: usize = 100_000;

pub enum Store {
    Sqlite(Arc<sqlite::SqliteStore>),
    Postgres(postgres::PgStore),
    Memory(MemoryStore),
}

/// Runs a blocking SQLite call off the async workers.
async fn blocking<T: Send + 'static>(
    s: &Arc<sqlite::SqliteStore>,
    f: impl FnOnce(&sqlite::SqliteStore) -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    let s = s.clone();
    tokio::task::spawn_blocking(move || f(&s)).await.map_err(|e| format!("store task: {e}"))?
}

impl Store {
    pub async fn open(url: &StoreUrl) -> Result<Store, String> {
        match url {
            StoreUrl::Memory => Ok(Store::Memory(MemoryStore::default())),
            StoreUrl::Sqlite(p) => {
                let p = p.clone();
                let s = tokio::task::spawn_blocking(move || sqlite::SqliteStore::open(&p))
                    .await
                    .map_err(|e| format!("store task: {e}"))??;
                Ok(Store::Sqlite(Arc::new(s)))
            }
            StoreUrl::Postgres(u) => postgres::PgStore::open(u).await.map(Store::Postgres),
        }
    }

    pub async fn load_spend(&self) -> Result<Vec<AccountRow>, String> {
        match self {
            Store::Sqlite(s) => blocking(s, |s| s.load_spend()).await,
            Store::Postgres(p) => p.load_spend().await,
            Store::Memory(_) => Ok(Vec::new()),
        }
    }

    pub async fn save_spend(&self, rows: Vec<AccountRow>) -> Result<(), String> {
        match self {
            Store::Sqlite(s) => blocking(s, move |s| s.save_spend(&rows)).await,
            Store::Postgres(p) => p.save_spend(&rows).await,
            Store::Memory(_) => Ok(()),
        }
    }

    pub async fn key_secret(&self) -> Result<[u8; 32], String> {
        match self {
            Store::Sqlite(s) => blocking(s, |s| s.key_secret()).await,
            Store::Postgres(p) => p.key_secret().await,
            Store::Memory(m) => Ok(*m.secret.get_or_init(crate::digest::os_random::<32>)),
        }
    }

    pub async fn load_keys(&self) -> Result<Vec<(Vec<u8>, KeyRecord)>, String> {
        match self {
            Store::Sqlite(s) => blocking(s, |s| s.load_keys()).await,
            Store::Postgres(p) => p.load_keys().await,
            Store::Memory(m) => Ok(m.keys.lock().unwrap_or_else(|p| p.into_inner()).clone()),
        }
    }

    pub async fn append_audit(&self, records: Vec<crate::audit::chain::Record>) -> Result<(), String> {
        match self {
            Store::Sqlite(s) => blocking(s, move |s| s.append_audit(&records)).await,
            Store::Postgres(p) => p.append_audit(&records).await,
            Store::Memory(m) => {
                let mut log = m.audit.lock().unwrap_or_else(|p| p.into_inner());
                for r in records {
                    let (seq, prev) = log
                        .last()
                        .map_or((1, crate::audit::chain::GENESIS.to_string()), |e| (e.seq + 1, e.hash.clone()));
                    let hash = crate::audit::chain::entry_hash(seq, &prev, &r);
                    log.push(crate::audit::chain::Entry { seq, record: r, prev_hash: prev, hash });
                }
                Ok(())
            }
        }
    }

    pub async fn load_audit(&self) -> Result<Vec<crate::audit::chain::Entry>, String> {
        match self {
            Store::Sqlite(s) => blocking(s, |s| s.load_audit()).await,
            Store::Postgres(p) => p.load_audit().await,
            Store::Memory(m) => Ok(m.audit.lock().unwrap_or_else(|p| p.into_inner()).clone()),
        }
    }

    pub async fn append_logs(&self, entries: impl Into<Arc<Vec<crate::reqlog::entry::LogEntry>>>) -> Result<(), String> {
        let entries = entries.into();
        match self {
            Store::Sqlite(s) => blocking(s, move |s| s.append_logs(&entries)).await,
            Store::Postgres(p) => p.append_logs(&entries).await,
            Store::Memory(m) => {
                let mut guard = m.logs.lock().unwrap_or_else(|p| p.into_inner());
                let (logs, ids) = &mut *guard;
                for e in Arc::unwrap_or_clone(entries) {
                    if ids.insert(e.id.clone()) {
                        logs.push_back(e);
                    }
                }
                while logs.len() > MEMORY_LOG_CAP {
                    if let Some(old) = logs.pop_front() {
                        ids.remove(&old.id);
                    }
                }
                Ok(())
            }
        }
    }

    /// Deletes entries older than `before_ms` (unix ms); how many went.
    pub async fn prune_logs(&self, before_ms: u64) -> Result<usize, String> {
        match self {
            Store::Sqlite(s) => blocking(s, move |s| s.prune_logs(before_ms)).await,
            Store::Postgres(p) => p.prune_logs(before_ms).await,
            Store::Memory(m) => {
                let mut guard = m.logs.lock().unwrap_or_else(|p| p.into_inner());
                let (logs, ids) = &mut *guard;
                let before = logs.len();
                logs.retain(|e| e.time >= before_ms);
                *ids = logs.iter().map(|e| e.id.clone()).collect();
                Ok(before - logs.len())
            }
        }
    }

    /// Entries between two times (unix ms), oldest first.
    pub async fn load_logs(&self, from: u64, to: u64) -> Result<Vec<crate::reqlog::entry::LogEntry>, String> {
        match self {
            Store::Sqlite(s) => blocking(s, move |s| s.load_logs(from, to)).await,
            Store::Postgres(p) => p.load_logs(from, to).await,
            Store::Memory(m) => {
                let guard = m.logs.lock().unwrap_or_else(|p| p.into_inner());
                let mut v: Vec<_> = guard.0.iter().filter(|e| e.time >= from && e.time <= to).cloned().collect();
                v.sort_by_key(|e| e.time);
                Ok(v)
            }
        }
    }

    /// Approved MCP tool definitions: `<server>/<tool>` → definition hash.
    pub async fn load_mcp_pins(&self) -> Result<Vec<(String, String)>, String> {
        match self {
            Store::Sqlite(s) => blocking(s, |s| s.load_mcp_pins()).await,
            Store::Postgres(p) => p.load_mcp_pins().await,
            Store::Memory(m) => Ok(m
                .pins
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()),
        }
    }

    pub async fn put_mcp_pin(&self, tool: String, hash: String) -> Result<(), String> {
        match self {
            Store::Sqlite(s) => blocking(s, move |s| s.put_mcp_pin(&tool, &hash)).await,
            Store::Postgres(p) => p.put_mcp_pin(&tool, &hash).await,
            Store::Memory(m) => {
                m.pins.lock().unwrap_or_else(|p| p.into_inner()).insert(tool, hash);
                Ok(())
            }
        }
    }

    pub async fn load_overlays(&self) -> Result<Vec<Entry>, String> {
        match self {
            Store::Sqlite(s) => blocking(s, |s| s.load_overlays()).await,
            Store::Postgres(p) => p.load_overlays().await,
            Store::Memory(m) => Ok(m.overlays.lock().unwrap_or_else(|p| p.into_inner()).clone()),
        }
    }

    pub async fn put_overlay(&self, e: Entry) -> Result<(), String> {
        match self {
            Store::Sqlite(s) => blocking(s, move |s| s.put_overlay(&e)).await,
            Store::Postgres(p) => p.put_overlay(&e).await,
            Store::Memory(m) => {
                let mut v = m.overlays.lock().unwrap_or_else(|p| p.into_inner());
                v.retain(|x| !(x.kind == e.kind && x.id == e.id));
                v.push(e);
                Ok(())
            }
        }
    }

    pub async fn delete_overlay(&self, kind: Kind, id: String) -> Result<(), String> {
        match self {
            Store::Sqlite(s) => blocking(s, move |s| s.delete_overlay(kind, &id)).await,
            Store::Postgres(p) => p.delete_overlay(kind, &id).await,
            Store::Memory(m) => {
                m.overlays.lock().unwrap_or_else(|p| p.into_inner()).retain(|x| !(x.kind == kind && x.id == id));
                Ok(())
            }
        }
    }

    pub async fn put_key(&self, hash: Vec<u8>, record: KeyRecord) -> Result<(), String> {
        match self {
            Store::Sqlite(s) => blocking(s, move |s| s.put_key(&hash, &record)).await,
            Store::Postgres(p) => p.put_key(&hash, &record).await,
            Store::Memory(m) => {
                let mut keys = m.keys.lock().unwrap_or_else(|p| p.into_inner());
                match keys.iter_mut().find(|(_, r)| r.id == record.id) {
                    Some(entry) => entry.1 = record,
                    None => keys.push((hash, record)),
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse() {
        assert_eq!(StoreUrl::parse("sqlite://a/b.db"), Ok(StoreUrl::Sqlite("a/b.db".into())));
        assert_eq!(StoreUrl::parse("sqlite://:memory:"), Ok(StoreUrl::Memory));
        assert!(matches!(StoreUrl::parse("postgres://u@localhost/db"), Ok(StoreUrl::Postgres(_))));
        assert!(StoreUrl::parse("mysql://x").is_err());
    }

    fn rows() -> Vec<AccountRow> {
        vec![
            AccountRow { key: "b@cost_total|team-a".into(), period: 20_000, spent: 123, alerted: 1, reserved: 0 },
            AccountRow { key: "b@cost_total|team-b".into(), period: 20_000, spent: 7, alerted: 0, reserved: 0 },
        ]
    }

    fn key(id: &str) -> KeyRecord {
        KeyRecord {
            id: id.into(),
            name: id.into(),
            prefix: "tg-abcdef".into(),
            owner: None,
            team: Some("t".into()),
            models: None,
            tools: None,
            agents: None,
            metadata: Default::default(),
            role: None,
            created_at: 1,
            expires_at: None,
            revoked_at: None,
            rotated_from: None,
        }
    }

    /// The same checks for every backend.
    async fn round_trip(url: &StoreUrl) {
        let s = Store::open(url).await.unwrap();
        s.save_spend(rows()).await.unwrap();
        s.save_spend(vec![AccountRow {
            key: "b@cost_total|team-a".into(),
            period: 20_000,
            spent: 500,
            alerted: 3,
            reserved: 9,
        }])
        .await
        .unwrap();
        let secret = s.key_secret().await.unwrap();
        s.put_key(vec![1; 32], key("vk_1")).await.unwrap();
        let mut revoked = key("vk_1");
        revoked.revoked_at = Some(5);
        s.put_key(vec![1; 32], revoked).await.unwrap();
        drop(s);
        let s = Store::open(url).await.unwrap();
        let mut got = s.load_spend().await.unwrap();
        got.sort_by(|a, b| a.key.cmp(&b.key));
        assert_eq!((got[0].spent, got[0].alerted, got[0].reserved), (500, 3, 0));
        assert_eq!(got[1].spent, 7);
        assert_eq!(s.key_secret().await.unwrap(), secret, "the key secret is stable");
        let keys = s.load_keys().await.unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].1.revoked_at, Some(5));

        // Request log: idempotent inserts, time range, retention.
        // A tool call's entry: its kind survives the round trip.
        let entry = |id: &str, time: u64| crate::reqlog::entry::LogEntry {
            id: id.into(),
            kind: crate::resource::Kind::Mcp,
            time,
            subject: "key:a".into(),
            metadata: Default::default(),
            requested_model: "m".into(),
            resolved_model: None,
            provider: None,
            route: "chat".into(),
            stream: false,
            status: 200,
            error: None,
            prompt_tokens: 1,
            completion_tokens: 2,
            usage_estimated: false,
            cost_nanos: 3,
            total_ms: 1.0,
            upstream_ms: 1.0,
            backoff_ms: 0.0,
            attempts: vec![],
            config_version: 1,
            trace_id: String::new(),
            span_id: String::new(),
            parent_span_id: None,
            request_body: None,
            response_body: None,
            // Guardrail decisions survive the round trip too.
            guardrails: vec![crate::reqlog::entry::GuardrailLog {
                name: "pii".into(),
                hook: "llm_input".into(),
                outcome: "mutated".into(),
                duration_us: 7,
                reason: Some("found EMAIL".into()),
            }],
            // And a tool call's particulars.
            mcp: Some(crate::reqlog::entry::McpLog {
                endpoint: "files".into(),
                server: "files".into(),
                tool: "read".into(),
                arguments_sha256: "ab".repeat(32),
                result_bytes: 12,
                decision: "allowed".into(),
                is_error: false,
            }),
            // And an agent call's.
            a2a: Some(crate::reqlog::entry::A2aLog {
                agent: "researcher".into(),
                method: "SendMessage".into(),
                binding: "jsonrpc".into(),
                task_id: Some("t-1".into()),
                task_state: Some("completed".into()),
                decision: "allowed".into(),
                rpc_error: None,
                events: 0,
            }),
            parent_id: Some("req-parent".into()),
            agent: None,
            cache: Some(crate::reqlog::entry::CacheLog { status: "hit".into(), saved_nanos: 42, similarity: Some(0.5) }),
            // And the prompt template a model call used.
            prompt: Some(crate::reqlog::entry::PromptLog {
                id: "support-triage".into(),
                version: 3,
                label: Some("production".into()),
                override_for: Some("claude".into()),
            }),
            log: true,
        };
        s.append_logs(vec![entry("r1", 1_000), entry("r2", 2_000), entry("r3", 3_000)]).await.unwrap();
        s.append_logs(vec![entry("r2", 2_000)]).await.unwrap();
        assert_eq!(s.load_logs(0, u64::MAX).await.unwrap().len(), 3, "a replayed entry is stored once");
        assert_eq!(s.load_logs(1_500, 2_500).await.unwrap()[0].id, "r2");
        assert_eq!(s.load_logs(1_500, 2_500).await.unwrap()[0].prompt, entry("r2", 2_000).prompt);
        assert_eq!(s.prune_logs(2_500).await.unwrap(), 2);
        assert_eq!(s.load_logs(0, u64::MAX).await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn sqlite_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        round_trip(&StoreUrl::Sqlite(dir.path().join("t.db"))).await;
    }

    /// Needs a PostgreSQL server (`TOLLGATE_TEST_POSTGRES_URL`, default the
    /// local one); a missing server fails the test rather than skipping it.
    #[tokio::test]
    async fn postgres_round_trip() {
        let admin_url = std::env::var("TOLLGATE_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let (admin, conn) = tokio_postgres::connect(&admin_url, tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL is needed for this test at {admin_url}: {e}"));
        crate::task::spawn("test-postgres-admin", conn);
        let db = format!("tollgate_test_{}", hex::encode(crate::digest::os_random::<6>()));
        admin.batch_execute(&format!("CREATE DATABASE {db}")).await.unwrap();
        let mut cfg: tokio_postgres::Config = admin_url.parse().unwrap();
        cfg.dbname(&db);
        let url = format!(
            "postgres://{}@{}:{}/{db}",
            cfg.get_user().unwrap_or("postgres"),
            match &cfg.get_hosts()[0] {
                tokio_postgres::config::Host::Tcp(h) => h.clone(),
                #[cfg_attr(not(unix), expect(unreachable_patterns, reason = "only Unix has socket hosts"))]
                _ => "127.0.0.1".into(),
            },
            cfg.get_ports().first().copied().unwrap_or(5432)
        );
        round_trip(&StoreUrl::Postgres(url)).await;
        admin.batch_execute(&format!("DROP DATABASE {db} WITH (FORCE)")).await.unwrap();
    }
}
