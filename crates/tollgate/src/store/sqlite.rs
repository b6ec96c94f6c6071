//! The embedded SQLite store: one connection, WAL journal, schema migrations
//! by `user_version`. Only the background writer and start-up touch it.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{Connection, params};

use crate::budgets::AccountRow;
use crate::config::overlay::{Entry, Kind};
use crate::identity::keys::KeyRecord;

/// Each entry migrates the schema from version i to i + 1.
const MIGRATIONS: &[&str] = &[
    "CREATE TABLE budget_spend (
        key TEXT PRIMARY KEY,
        period INTEGER NOT NULL,
        spent_nanos INTEGER NOT NULL,
        updated_at INTEGER NOT NULL DEFAULT (unixepoch())
    );",
    "CREATE TABLE meta (name TEXT PRIMARY KEY, value BLOB NOT NULL);
     CREATE TABLE virtual_keys (
        id TEXT PRIMARY KEY,
        hash BLOB NOT NULL UNIQUE,
        record TEXT NOT NULL
    );",
    "ALTER TABLE budget_spend ADD COLUMN alerted INTEGER NOT NULL DEFAULT 0;",
    "CREATE TABLE overlays (kind TEXT NOT NULL, id TEXT NOT NULL, body TEXT NOT NULL, PRIMARY KEY (kind, id));",
    "CREATE TABLE audit_log (seq INTEGER PRIMARY KEY, time INTEGER NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL,
        target TEXT NOT NULL, outcome TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL);",
    "CREATE TABLE request_log (id TEXT PRIMARY KEY, time INTEGER NOT NULL, entry TEXT NOT NULL);
     CREATE INDEX request_log_time ON request_log (time);",
    "CREATE TABLE mcp_pins (tool TEXT PRIMARY KEY, hash TEXT NOT NULL);",
    // The Batches API: files with their content, batches with the creator's
    // sealed credential and a runner's lease, one row per finished line.
    "CREATE TABLE batch_files (id TEXT PRIMARY KEY, owner TEXT NOT NULL, created_at INTEGER NOT NULL,
        record TEXT NOT NULL, content BLOB NOT NULL);
     CREATE INDEX batch_files_owner ON batch_files (owner);
     CREATE TABLE batches (id TEXT PRIMARY KEY, owner TEXT NOT NULL, created_at INTEGER NOT NULL, status TEXT NOT NULL,
        input_file_id TEXT NOT NULL, record TEXT NOT NULL, credential BLOB NOT NULL,
        completed INTEGER NOT NULL DEFAULT 0, failed INTEGER NOT NULL DEFAULT 0,
        runner TEXT, lease_until INTEGER NOT NULL DEFAULT 0);
     CREATE INDEX batches_owner ON batches (owner);
     CREATE TABLE batch_lines (batch_id TEXT NOT NULL, line INTEGER NOT NULL, ok INTEGER NOT NULL, result TEXT NOT NULL,
        PRIMARY KEY (batch_id, line));",
    // Prompt templates made through the admin API: versions written once, labels moved.
    "CREATE TABLE prompt_versions (prompt_id TEXT NOT NULL, version INTEGER NOT NULL, body TEXT NOT NULL,
        created_at INTEGER NOT NULL, created_by TEXT NOT NULL, PRIMARY KEY (prompt_id, version));
     CREATE TABLE prompt_labels (prompt_id TEXT NOT NULL, label TEXT NOT NULL, version INTEGER NOT NULL,
        updated_at INTEGER NOT NULL, updated_by TEXT NOT NULL, PRIMARY KEY (prompt_id, label));",
];

pub struct SqliteStore {
    conn: Mutex<Connection>,
}

pub(super) fn err(e: rusqlite::Error) -> String {
    format!("sqlite: {e}")
}

impl SqliteStore {
    pub fn open(path: &Path) -> Result<SqliteStore, String> {
        let conn = Connection::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(err)?;
        conn.pragma_update(None, "synchronous", "NORMAL").map_err(err)?;
        conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(err)?;
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).map_err(err)?;
        let version = usize::try_from(version).unwrap_or(usize::MAX);
        if version > MIGRATIONS.len() {
            return Err(format!(
                "{} was written by a newer tollgate (schema {version}, this build knows {})",
                path.display(),
                MIGRATIONS.len()
            ));
        }
        for (i, m) in MIGRATIONS.iter().enumerate().skip(version) {
            let tx = conn.unchecked_transaction().map_err(err)?;
            tx.execute_batch(m).map_err(err)?;
            tx.pragma_update(None, "user_version", (i + 1) as i64).map_err(err)?;
            tx.commit().map_err(err)?;
        }
        Ok(SqliteStore { conn: Mutex::new(conn) })
    }

    pub(super) fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn load_spend(&self) -> Result<Vec<AccountRow>, String> {
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT key, period, spent_nanos, alerted FROM budget_spend").map_err(err)?;
        let rows = stmt
            .query_map([], |r| {
                Ok(AccountRow {
                    key: r.get(0)?,
                    period: r.get::<_, i64>(1)? as u64,
                    spent: r.get::<_, i64>(2)? as u64,
                    alerted: r.get::<_, i64>(3)? as u32,
                    reserved: 0,
                })
            })
            .map_err(err)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(err)
    }

    /// The secret virtual keys are hashed with, created on first use.
    pub fn key_secret(&self) -> Result<[u8; 32], String> {
        let conn = self.conn();
        let existing: Option<Vec<u8>> = conn
            .query_row("SELECT value FROM meta WHERE name = 'key_secret'", [], |r| r.get(0))
            .map(Some)
            .or_else(|e| if e == rusqlite::Error::QueryReturnedNoRows { Ok(None) } else { Err(e) })
            .map_err(err)?;
        if let Some(v) = existing {
            return v.try_into().map_err(|_| "stored key secret has the wrong length".to_string());
        }
        let secret = crate::digest::os_random::<32>();
        conn.execute("INSERT INTO meta (name, value) VALUES ('key_secret', ?1)", params![secret.to_vec()])
            .map_err(err)?;
        Ok(secret)
    }

    pub fn load_keys(&self) -> Result<Vec<(Vec<u8>, KeyRecord)>, String> {
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT hash, record FROM virtual_keys").map_err(err)?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, String>(1)?))).map_err(err)?;
        rows.map(|r| {
            let (hash, json) = r.map_err(err)?;
            let rec: KeyRecord = serde_json::from_str(&json).map_err(|e| format!("stored key record: {e}"))?;
            Ok((hash, rec))
        })
        .collect()
    }

    /// Inserts or replaces a key record (`hash` only for new keys).
    pub fn put_key(&self, hash: &[u8], record: &KeyRecord) -> Result<(), String> {
        let json = serde_json::to_string(record).map_err(|e| e.to_string())?;
        self.conn()
            .execute(
                "INSERT INTO virtual_keys (id, hash, record) VALUES (?1, ?2, ?3)
                 ON CONFLICT(id) DO UPDATE SET record = excluded.record",
                params![record.id, hash, json],
            )
            .map_err(err)?;
        Ok(())
    }

    /// Appends records to the chain in one transaction.
    pub fn append_audit(&self, records: &[crate::audit::chain::Record]) -> Result<(), String> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(err)?;
        let (mut seq, mut prev): (u64, String) = tx
            .query_row("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1", [], |r| {
                Ok((r.get::<_, i64>(0)? as u64, r.get(1)?))
            })
            .or_else(|e| {
                if e == rusqlite::Error::QueryReturnedNoRows {
                    Ok((0, crate::audit::chain::GENESIS.to_string()))
                } else {
                    Err(e)
                }
            })
            .map_err(err)?;
        for r in records {
            seq += 1;
            let hash = crate::audit::chain::entry_hash(seq, &prev, r);
            tx.execute(
                "INSERT INTO audit_log (seq, time, actor, action, target, outcome, prev_hash, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![seq as i64, r.time as i64, r.actor, r.action, r.target, r.outcome, prev, hash],
            )
            .map_err(err)?;
            prev = hash;
        }
        tx.commit().map_err(err)
    }

    pub fn load_audit(&self) -> Result<Vec<crate::audit::chain::Entry>, String> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare("SELECT seq, time, actor, action, target, outcome, prev_hash, hash FROM audit_log ORDER BY seq")
            .map_err(err)?;
        let rows = stmt
            .query_map([], |r| {
                Ok(crate::audit::chain::Entry {
                    seq: r.get::<_, i64>(0)? as u64,
                    record: crate::audit::chain::Record {
                        time: r.get::<_, i64>(1)? as u64,
                        actor: r.get(2)?,
                        action: r.get(3)?,
                        target: r.get(4)?,
                        outcome: r.get(5)?,
                    },
                    prev_hash: r.get(6)?,
                    hash: r.get(7)?,
                })
            })
            .map_err(err)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(err)
    }

    /// Inserts entries; an id already stored is left as it is.
    pub fn append_logs(&self, entries: &[crate::reqlog::entry::LogEntry]) -> Result<(), String> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(err)?;
        {
            let mut stmt = tx
                .prepare_cached(
                    "INSERT INTO request_log (id, time, entry) VALUES (?1, ?2, ?3) ON CONFLICT(id) DO NOTHING",
                )
                .map_err(err)?;
            for e in entries {
                let json = serde_json::to_string(e).map_err(|e| e.to_string())?;
                stmt.execute(params![e.id, e.time as i64, json]).map_err(err)?;
            }
        }
        tx.commit().map_err(err)
    }

    pub fn prune_logs(&self, before_ms: u64) -> Result<usize, String> {
        self.conn()
            .execute("DELETE FROM request_log WHERE time < ?1", params![before_ms.min(i64::MAX as u64) as i64])
            .map_err(err)
    }

    /// Entries between two times (unix ms), oldest first.
    pub fn load_logs(&self, from: u64, to: u64) -> Result<Vec<crate::reqlog::entry::LogEntry>, String> {
        let conn = self.conn();
        let mut stmt =
            conn.prepare("SELECT entry FROM request_log WHERE time >= ?1 AND time <= ?2 ORDER BY time").map_err(err)?;
        let rows = stmt
            .query_map(params![from.min(i64::MAX as u64) as i64, to.min(i64::MAX as u64) as i64], |r| {
                r.get::<_, String>(0)
            })
            .map_err(err)?;
        rows.map(|r| serde_json::from_str(&r.map_err(err)?).map_err(|e| format!("stored log entry: {e}"))).collect()
    }

    pub fn load_overlays(&self) -> Result<Vec<Entry>, String> {
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT kind, id, body FROM overlays ORDER BY kind, id").map_err(err)?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?)))
            .map_err(err)?;
        rows.filter_map(|r| match r {
            Ok((k, id, body)) => Kind::parse(&k).map(|kind| Ok(Entry { kind, id, body })),
            Err(e) => Some(Err(err(e))),
        })
        .collect()
    }

    pub fn put_overlay(&self, e: &Entry) -> Result<(), String> {
        self.conn()
            .execute(
                "INSERT INTO overlays (kind, id, body) VALUES (?1, ?2, ?3) ON CONFLICT(kind, id) DO UPDATE SET body = excluded.body",
                params![e.kind.as_str(), e.id, e.body],
            )
            .map_err(err)?;
        Ok(())
    }

    pub fn delete_overlay(&self, kind: Kind, id: &str) -> Result<(), String> {
        self.conn()
            .execute("DELETE FROM overlays WHERE kind = ?1 AND id = ?2", params![kind.as_str(), id])
            .map_err(err)?;
        Ok(())
    }

    /// Upserts rows in one transaction (one writer, batched).
    pub fn load_mcp_pins(&self) -> Result<Vec<(String, String)>, String> {
        let conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let mut stmt = conn.prepare("SELECT tool, hash FROM mcp_pins").map_err(err)?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).map_err(err)?;
        rows.collect::<Result<_, _>>().map_err(err)
    }

    pub fn put_mcp_pin(&self, tool: &str, hash: &str) -> Result<(), String> {
        let conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        conn.execute(
            "INSERT INTO mcp_pins (tool, hash) VALUES (?1, ?2) ON CONFLICT (tool) DO UPDATE SET hash = excluded.hash",
            params![tool, hash],
        )
        .map_err(err)?;
        Ok(())
    }

    pub fn save_spend(&self, rows: &[AccountRow]) -> Result<(), String> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(err)?;
        {
            let mut stmt = tx
                .prepare_cached(
                    "INSERT INTO budget_spend (key, period, spent_nanos, alerted, updated_at) VALUES (?1, ?2, ?3, ?4, unixepoch())
                     ON CONFLICT(key) DO UPDATE SET period = excluded.period, spent_nanos = excluded.spent_nanos,
                     alerted = excluded.alerted, updated_at = excluded.updated_at",
                )
                .map_err(err)?;
            for r in rows {
                stmt.execute(params![
                    r.key,
                    r.period as i64,
                    r.spent.min(i64::MAX as u64) as i64,
                    i64::from(r.alerted)
                ])
                .map_err(err)?;
            }
        }
        tx.commit().map_err(err)
    }
}
