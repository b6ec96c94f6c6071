//! The PostgreSQL store, for deployments that share state between
//! instances or outgrow a local file. Same tables as SQLite; migrations
//! recorded in `tollgate_schema`. One connection, re-established on the
//! next call after a failure; only start-up, the writer and admin routes
//! use it.

use tokio::sync::Mutex;
use tokio_postgres::{Client, NoTls};

use crate::budgets::AccountRow;
use crate::config::overlay::{Entry, Kind};
use crate::identity::keys::KeyRecord;

const MIGRATIONS: &[&str] = &[
    "CREATE TABLE budget_spend (
        key TEXT PRIMARY KEY,
        period BIGINT NOT NULL,
        spent_nanos BIGINT NOT NULL,
        alerted INTEGER NOT NULL DEFAULT 0,
        updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
    )",
    "CREATE TABLE tollgate_meta (name TEXT PRIMARY KEY, value BYTEA NOT NULL)",
    "CREATE TABLE virtual_keys (id TEXT PRIMARY KEY, hash BYTEA NOT NULL UNIQUE, record TEXT NOT NULL)",
    "CREATE TABLE overlays (kind TEXT NOT NULL, id TEXT NOT NULL, body TEXT NOT NULL, PRIMARY KEY (kind, id))",
    "CREATE TABLE audit_log (seq BIGINT PRIMARY KEY, time BIGINT NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL,
        target TEXT NOT NULL, outcome TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL)",
    "CREATE TABLE request_log (id TEXT PRIMARY KEY, time BIGINT NOT NULL, entry TEXT NOT NULL);
     CREATE INDEX request_log_time ON request_log (time)",
    "CREATE TABLE mcp_pins (tool TEXT PRIMARY KEY, hash TEXT NOT NULL)",
    // The Batches API: files with their content, batches with the creator's
    // sealed credential and a runner's lease, one row per finished line.
    "CREATE TABLE batch_files (id TEXT PRIMARY KEY, owner TEXT NOT NULL, created_at BIGINT NOT NULL,
        record TEXT NOT NULL, content BYTEA NOT NULL);
     CREATE INDEX batch_files_owner ON batch_files (owner);
     CREATE TABLE batches (id TEXT PRIMARY KEY, owner TEXT NOT NULL, created_at BIGINT NOT NULL, status TEXT NOT NULL,
        input_file_id TEXT NOT NULL, record TEXT NOT NULL, credential BYTEA NOT NULL,
        completed BIGINT NOT NULL DEFAULT 0, failed BIGINT NOT NULL DEFAULT 0,
        runner TEXT, lease_until BIGINT NOT NULL DEFAULT 0);
     CREATE INDEX batches_owner ON batches (owner);
     CREATE TABLE batch_lines (batch_id TEXT NOT NULL, line BIGINT NOT NULL, ok BOOLEAN NOT NULL, result TEXT NOT NULL,
        PRIMARY KEY (batch_id, line))",
    // Prompt templates made through the admin API: versions written once, labels moved.
    "CREATE TABLE prompt_versions (prompt_id TEXT NOT NULL, version BIGINT NOT NULL, body TEXT NOT NULL,
        created_at BIGINT NOT NULL, created_by TEXT NOT NULL, PRIMARY KEY (prompt_id, version));
     CREATE TABLE prompt_labels (prompt_id TEXT NOT NULL, label TEXT NOT NULL, version BIGINT NOT NULL,
        updated_at BIGINT NOT NULL, updated_by TEXT NOT NULL, PRIMARY KEY (prompt_id, label))",
];

pub struct PgStore {
    url: String,
    client: Mutex<Option<Client>>,
}

pub(super) fn err(e: tokio_postgres::Error) -> String {
    // Neither form includes the password of the URL.
    match e.as_db_error() {
        Some(db) => format!("postgres: {} ({})", db.message(), db.code().code()),
        None => format!("postgres: {e}"),
    }
}

impl PgStore {
    pub async fn open(url: &str) -> Result<PgStore, String> {
        let s = PgStore { url: url.to_string(), client: Mutex::new(None) };
        s.migrate().await?;
        Ok(s)
    }

    pub(super) async fn client(&self) -> Result<tokio::sync::MutexGuard<'_, Option<Client>>, String> {
        let mut guard = self.client.lock().await;
        if guard.as_ref().is_none_or(Client::is_closed) {
            let (client, conn) = tokio_postgres::connect(&self.url, NoTls).await.map_err(err)?;
            crate::task::spawn("postgres-connection", async move {
                if let Err(e) = conn.await {
                    tracing::warn!(error = %e, "postgres connection ended");
                }
            });
            *guard = Some(client);
        }
        Ok(guard)
    }

    async fn migrate(&self) -> Result<(), String> {
        let mut guard = self.client().await?;
        let Some(client) = guard.as_mut() else { return Err("postgres: no connection".into()) };
        client
            .batch_execute("CREATE TABLE IF NOT EXISTS tollgate_schema (version INTEGER NOT NULL)")
            .await
            .map_err(err)?;
        let tx = client.transaction().await.map_err(err)?;
        // One migrator at a time, even with several instances starting together.
        tx.batch_execute("LOCK TABLE tollgate_schema IN EXCLUSIVE MODE").await.map_err(err)?;
        let version: i32 =
            tx.query_opt("SELECT version FROM tollgate_schema", &[]).await.map_err(err)?.map_or(0, |r| r.get(0));
        let version = usize::try_from(version).unwrap_or(0);
        if version > MIGRATIONS.len() {
            return Err(format!("the database was written by a newer tollgate (schema {version})"));
        }
        for m in &MIGRATIONS[version..] {
            tx.batch_execute(m).await.map_err(err)?;
        }
        tx.execute("DELETE FROM tollgate_schema", &[]).await.map_err(err)?;
        tx.execute("INSERT INTO tollgate_schema (version) VALUES ($1)", &[&(MIGRATIONS.len() as i32)])
            .await
            .map_err(err)?;
        tx.commit().await.map_err(err)
    }

    pub async fn load_spend(&self) -> Result<Vec<AccountRow>, String> {
        let guard = self.client().await?;
        let Some(client) = guard.as_ref() else { return Err("postgres: no connection".into()) };
        let rows =
            client.query("SELECT key, period, spent_nanos, alerted FROM budget_spend", &[]).await.map_err(err)?;
        Ok(rows
            .iter()
            .map(|r| AccountRow {
                key: r.get(0),
                period: r.get::<_, i64>(1) as u64,
                spent: r.get::<_, i64>(2) as u64,
                alerted: r.get::<_, i32>(3) as u32,
                reserved: 0,
            })
            .collect())
    }

    pub async fn save_spend(&self, rows: &[AccountRow]) -> Result<(), String> {
        let mut guard = self.client().await?;
        let Some(client) = guard.as_mut() else { return Err("postgres: no connection".into()) };
        let tx = client.transaction().await.map_err(err)?;
        let stmt = tx
            .prepare(
                // Several gateways may write one account (distributed mode):
                // within a period spend only grows, so a stale view never
                // lowers it; an older period never overwrites a newer one.
                "INSERT INTO budget_spend (key, period, spent_nanos, alerted, updated_at) VALUES ($1, $2, $3, $4, now())
                 ON CONFLICT (key) DO UPDATE SET period = EXCLUDED.period,
                 spent_nanos = CASE WHEN budget_spend.period = EXCLUDED.period
                     THEN GREATEST(budget_spend.spent_nanos, EXCLUDED.spent_nanos) ELSE EXCLUDED.spent_nanos END,
                 alerted = EXCLUDED.alerted, updated_at = now()
                 WHERE budget_spend.period <= EXCLUDED.period",
            )
            .await
            .map_err(err)?;
        for r in rows {
            let (period, spent, alerted) = (r.period as i64, r.spent.min(i64::MAX as u64) as i64, r.alerted as i32);
            tx.execute(&stmt, &[&r.key, &period, &spent, &alerted]).await.map_err(err)?;
        }
        tx.commit().await.map_err(err)
    }

    pub async fn key_secret(&self) -> Result<[u8; 32], String> {
        let guard = self.client().await?;
        let Some(client) = guard.as_ref() else { return Err("postgres: no connection".into()) };
        let fresh = crate::digest::os_random::<32>().to_vec();
        // Insert-if-absent, then read: concurrent starters agree on one secret.
        client
            .execute(
                "INSERT INTO tollgate_meta (name, value) VALUES ('key_secret', $1) ON CONFLICT (name) DO NOTHING",
                &[&fresh],
            )
            .await
            .map_err(err)?;
        let row =
            client.query_one("SELECT value FROM tollgate_meta WHERE name = 'key_secret'", &[]).await.map_err(err)?;
        let v: Vec<u8> = row.get(0);
        v.try_into().map_err(|_| "stored key secret has the wrong length".to_string())
    }

    /// Appends to the chain; the table lock keeps instances from forking it.
    pub async fn append_audit(&self, records: &[crate::audit::chain::Record]) -> Result<(), String> {
        let mut guard = self.client().await?;
        let Some(client) = guard.as_mut() else { return Err("postgres: no connection".into()) };
        let tx = client.transaction().await.map_err(err)?;
        tx.batch_execute("LOCK TABLE audit_log IN EXCLUSIVE MODE").await.map_err(err)?;
        let last = tx.query_opt("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1", &[]).await.map_err(err)?;
        let (mut seq, mut prev): (u64, String) =
            last.map_or((0, crate::audit::chain::GENESIS.to_string()), |r| (r.get::<_, i64>(0) as u64, r.get(1)));
        for r in records {
            seq += 1;
            let hash = crate::audit::chain::entry_hash(seq, &prev, r);
            tx.execute(
                "INSERT INTO audit_log (seq, time, actor, action, target, outcome, prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                &[&(seq as i64), &(r.time as i64), &r.actor, &r.action, &r.target, &r.outcome, &prev, &hash],
            )
            .await
            .map_err(err)?;
            prev = hash;
        }
        tx.commit().await.map_err(err)
    }

    pub async fn load_audit(&self) -> Result<Vec<crate::audit::chain::Entry>, String> {
        let guard = self.client().await?;
        let Some(client) = guard.as_ref() else { return Err("postgres: no connection".into()) };
        let rows = client
            .query("SELECT seq, time, actor, action, target, outcome, prev_hash, hash FROM audit_log ORDER BY seq", &[])
            .await
            .map_err(err)?;
        Ok(rows
            .iter()
            .map(|r| crate::audit::chain::Entry {
                seq: r.get::<_, i64>(0) as u64,
                record: crate::audit::chain::Record {
                    time: r.get::<_, i64>(1) as u64,
                    actor: r.get(2),
                    action: r.get(3),
                    target: r.get(4),
                    outcome: r.get(5),
                },
                prev_hash: r.get(6),
                hash: r.get(7),
            })
            .collect())
    }

    /// One statement, one round trip per batch: the rows go as three
    /// arrays unnested server-side (a row per statement would be a round
    /// trip per request, which is what stops a log from keeping up).
    pub async fn append_logs(&self, entries: &[crate::reqlog::entry::LogEntry]) -> Result<(), String> {
        let guard = self.client().await?;
        let Some(client) = guard.as_ref() else { return Err("postgres: no connection".into()) };
        let mut ids = Vec::with_capacity(entries.len());
        let mut times = Vec::with_capacity(entries.len());
        let mut rows = Vec::with_capacity(entries.len());
        for e in entries {
            ids.push(e.id.as_str());
            times.push(e.time as i64);
            rows.push(serde_json::to_string(e).map_err(|e| e.to_string())?);
        }
        client
            .execute(
                "INSERT INTO request_log (id, time, entry) \
                 SELECT * FROM UNNEST($1::text[], $2::bigint[], $3::text[]) ON CONFLICT (id) DO NOTHING",
                &[&ids, &times, &rows],
            )
            .await
            .map_err(err)?;
        Ok(())
    }

    pub async fn prune_logs(&self, before_ms: u64) -> Result<usize, String> {
        let guard = self.client().await?;
        let Some(client) = guard.as_ref() else { return Err("postgres: no connection".into()) };
        let n = client
            .execute("DELETE FROM request_log WHERE time < $1", &[&(before_ms.min(i64::MAX as u64) as i64)])
            .await
            .map_err(err)?;
        Ok(n as usize)
    }

    pub async fn load_logs(&self, from: u64, to: u64) -> Result<Vec<crate::reqlog::entry::LogEntry>, String> {
        let guard = self.client().await?;
        let Some(client) = guard.as_ref() else { return Err("postgres: no connection".into()) };
        let (from, to) = (from.min(i64::MAX as u64) as i64, to.min(i64::MAX as u64) as i64);
        let rows = client
            .query("SELECT entry FROM request_log WHERE time >= $1 AND time <= $2 ORDER BY time", &[&from, &to])
            .await
            .map_err(err)?;
        rows.iter()
            .map(|r| serde_json::from_str(r.get::<_, &str>(0)).map_err(|e| format!("stored log entry: {e}")))
            .collect()
    }

    pub async fn load_mcp_pins(&self) -> Result<Vec<(String, String)>, String> {
        let guard = self.client().await?;
        let Some(client) = guard.as_ref() else { return Err("postgres: no connection".into()) };
        let rows = client.query("SELECT tool, hash FROM mcp_pins", &[]).await.map_err(err)?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    pub async fn put_mcp_pin(&self, tool: &str, hash: &str) -> Result<(), String> {
        let guard = self.client().await?;
        let Some(client) = guard.as_ref() else { return Err("postgres: no connection".into()) };
        client
            .execute(
                "INSERT INTO mcp_pins (tool, hash) VALUES ($1, $2) ON CONFLICT (tool) DO UPDATE SET hash = EXCLUDED.hash",
                &[&tool, &hash],
            )
            .await
            .map_err(err)?;
        Ok(())
    }

    pub async fn load_overlays(&self) -> Result<Vec<Entry>, String> {
        let guard = self.client().await?;
        let Some(client) = guard.as_ref() else { return Err("postgres: no connection".into()) };
        let rows = client.query("SELECT kind, id, body FROM overlays ORDER BY kind, id", &[]).await.map_err(err)?;
        Ok(rows
            .iter()
            .filter_map(|r| Kind::parse(r.get::<_, &str>(0)).map(|kind| Entry { kind, id: r.get(1), body: r.get(2) }))
            .collect())
    }

    pub async fn put_overlay(&self, e: &Entry) -> Result<(), String> {
        let guard = self.client().await?;
        let Some(client) = guard.as_ref() else { return Err("postgres: no connection".into()) };
        client
            .execute(
                "INSERT INTO overlays (kind, id, body) VALUES ($1, $2, $3) ON CONFLICT (kind, id) DO UPDATE SET body = EXCLUDED.body",
                &[&e.kind.as_str(), &e.id, &e.body],
            )
            .await
            .map_err(err)?;
        Ok(())
    }

    pub async fn delete_overlay(&self, kind: Kind, id: &str) -> Result<(), String> {
        let guard = self.client().await?;
        let Some(client) = guard.as_ref() else { return Err("postgres: no connection".into()) };
        client
            .execute("DELETE FROM overlays WHERE kind = $1 AND id = $2", &[&kind.as_str(), &id])
            .await
            .map_err(err)?;
        Ok(())
    }

    pub async fn load_keys(&self) -> Result<Vec<(Vec<u8>, KeyRecord)>, String> {
        let guard = self.client().await?;
        let Some(client) = guard.as_ref() else { return Err("postgres: no connection".into()) };
        let rows = client.query("SELECT hash, record FROM virtual_keys", &[]).await.map_err(err)?;
        rows.iter()
            .map(|r| {
                let rec: KeyRecord =
                    serde_json::from_str(r.get::<_, &str>(1)).map_err(|e| format!("stored key record: {e}"))?;
                Ok((r.get::<_, Vec<u8>>(0), rec))
            })
            .collect()
    }

    pub async fn put_key(&self, hash: &[u8], record: &KeyRecord) -> Result<(), String> {
        let json = serde_json::to_string(record).map_err(|e| e.to_string())?;
        let guard = self.client().await?;
        let Some(client) = guard.as_ref() else { return Err("postgres: no connection".into()) };
        client
            .execute(
                "INSERT INTO virtual_keys (id, hash, record) VALUES ($1, $2, $3)
                 ON CONFLICT (id) DO UPDATE SET record = EXCLUDED.record",
                &[&record.id, &hash, &json],
            )
            .await
            .map_err(err)?;
        Ok(())
    }
}
