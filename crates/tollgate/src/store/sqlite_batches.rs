//! The Batches API's tables on SQLite (see `batches.rs` for what each call
//! means).

use rusqlite::{OptionalExtension, params};

use super::batches::FINAL;
use super::sqlite::{SqliteStore, err};
use crate::batches::record::{BatchRecord, FileRecord, LineResult};

fn i(n: u64) -> i64 {
    n.min(i64::MAX as u64) as i64
}

fn json<T: serde::Serialize>(v: &T) -> Result<String, String> {
    serde_json::to_string(v).map_err(|e| e.to_string())
}

fn file_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<String> {
    r.get::<_, String>(0)
}

fn parse_file(s: &str) -> Result<FileRecord, String> {
    serde_json::from_str(s).map_err(|e| format!("stored file record: {e}"))
}

/// `record, completed, failed` → the record with the store's counts.
fn batch_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(String, i64, i64)> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
}

fn parse_batch((s, completed, failed): (String, i64, i64)) -> Result<BatchRecord, String> {
    let mut b: BatchRecord = serde_json::from_str(&s).map_err(|e| format!("stored batch record: {e}"))?;
    b.completed = completed.max(0) as u64;
    b.failed = failed.max(0) as u64;
    Ok(b)
}

impl SqliteStore {
    pub fn put_file(&self, rec: &FileRecord, content: &[u8]) -> Result<(), String> {
        self.conn()
            .execute(
                "INSERT INTO batch_files (id, owner, created_at, record, content) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT(id) DO UPDATE SET record = excluded.record, content = excluded.content",
                params![rec.id, rec.owner, i(rec.created_at), json(rec)?, content],
            )
            .map(|_| ())
            .map_err(err)
    }

    pub fn get_file(&self, id: &str) -> Result<Option<FileRecord>, String> {
        let s = self
            .conn()
            .query_row("SELECT record FROM batch_files WHERE id = ?1", params![id], file_row)
            .optional()
            .map_err(err)?;
        s.as_deref().map(parse_file).transpose()
    }

    pub fn file_content(&self, id: &str) -> Result<Option<Vec<u8>>, String> {
        self.conn()
            .query_row("SELECT content FROM batch_files WHERE id = ?1", params![id], |r| r.get(0))
            .optional()
            .map_err(err)
    }

    pub fn list_files(&self, owner: Option<&str>) -> Result<Vec<FileRecord>, String> {
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT record FROM batch_files WHERE ?1 IS NULL OR owner = ?1").map_err(err)?;
        let rows = stmt.query_map(params![owner], file_row).map_err(err)?;
        rows.map(|r| parse_file(&r.map_err(err)?)).collect()
    }

    pub fn delete_file(&self, id: &str) -> Result<bool, String> {
        self.conn().execute("DELETE FROM batch_files WHERE id = ?1", params![id]).map(|n| n > 0).map_err(err)
    }

    pub fn insert_batch(&self, rec: &BatchRecord, credential: &[u8]) -> Result<(), String> {
        self.conn()
            .execute(
                "INSERT INTO batches (id, owner, created_at, status, input_file_id, record, credential)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    rec.id,
                    rec.owner,
                    i(rec.created_at),
                    rec.status.as_str(),
                    rec.input_file_id,
                    json(rec)?,
                    credential
                ],
            )
            .map(|_| ())
            .map_err(err)
    }

    /// `from`: the quoted statuses the row may have now (`'a', 'b'`).
    pub fn update_batch(&self, rec: &BatchRecord, from: &str) -> Result<bool, String> {
        self.conn()
            .execute(
                &format!("UPDATE batches SET status = ?2, record = ?3 WHERE id = ?1 AND status IN ({from})"),
                params![rec.id, rec.status.as_str(), json(rec)?],
            )
            .map(|n| n > 0)
            .map_err(err)
    }

    pub fn get_batch(&self, id: &str) -> Result<Option<BatchRecord>, String> {
        let row = self
            .conn()
            .query_row("SELECT record, completed, failed FROM batches WHERE id = ?1", params![id], batch_row)
            .optional()
            .map_err(err)?;
        row.map(parse_batch).transpose()
    }

    /// One owner's (or everyone's); only unfinished ones with `unfinished`.
    pub fn list_batches(&self, owner: Option<&str>, unfinished: bool) -> Result<Vec<BatchRecord>, String> {
        let conn = self.conn();
        let sql = format!(
            "SELECT record, completed, failed FROM batches WHERE (?1 IS NULL OR owner = ?1) {}",
            if unfinished { format!("AND status NOT IN {FINAL}") } else { String::new() }
        );
        let mut stmt = conn.prepare(&sql).map_err(err)?;
        let rows = stmt.query_map(params![owner], batch_row).map_err(err)?;
        rows.map(|r| parse_batch(r.map_err(err)?)).collect()
    }

    pub fn batch_credential(&self, id: &str) -> Result<Option<Vec<u8>>, String> {
        self.conn()
            .query_row("SELECT credential FROM batches WHERE id = ?1", params![id], |r| r.get(0))
            .optional()
            .map_err(err)
    }

    pub fn claim_batch(&self, id: &str, runner: &str, now: u64, until: u64) -> Result<bool, String> {
        self.conn()
            .execute(
                "UPDATE batches SET runner = ?2, lease_until = ?4 WHERE id = ?1 AND (lease_until < ?3 OR runner = ?2)",
                params![id, runner, i(now), i(until)],
            )
            .map(|n| n > 0)
            .map_err(err)
    }

    /// The line and its count in one transaction: a count never drifts
    /// from the lines kept.
    pub fn record_line(&self, batch: &str, l: &LineResult) -> Result<bool, String> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(err)?;
        let n = tx
            .execute(
                "INSERT INTO batch_lines (batch_id, line, ok, result) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(batch_id, line) DO NOTHING",
                params![batch, i(l.line), l.ok, l.json],
            )
            .map_err(err)?;
        if n > 0 {
            let column = if l.ok { "completed" } else { "failed" };
            tx.execute(&format!("UPDATE batches SET {column} = {column} + 1 WHERE id = ?1"), params![batch])
                .map_err(err)?;
        }
        tx.commit().map_err(err)?;
        Ok(n > 0)
    }

    pub fn done_lines(&self, batch: &str) -> Result<Vec<u64>, String> {
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT line FROM batch_lines WHERE batch_id = ?1").map_err(err)?;
        let rows = stmt.query_map(params![batch], |r| r.get::<_, i64>(0)).map_err(err)?;
        rows.map(|r| r.map(|n| n.max(0) as u64).map_err(err)).collect()
    }

    pub fn batch_lines(&self, batch: &str) -> Result<Vec<LineResult>, String> {
        let conn = self.conn();
        let mut stmt =
            conn.prepare("SELECT line, ok, result FROM batch_lines WHERE batch_id = ?1 ORDER BY line").map_err(err)?;
        let rows = stmt
            .query_map(params![batch], |r| {
                Ok(LineResult { line: r.get::<_, i64>(0)?.max(0) as u64, ok: r.get(1)?, json: r.get(2)? })
            })
            .map_err(err)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(err)
    }

    pub fn prune_batches(&self, before: u64) -> Result<usize, String> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(err)?;
        let old = format!("SELECT id FROM batches WHERE created_at < ?1 AND status IN {FINAL}");
        tx.execute(&format!("DELETE FROM batch_lines WHERE batch_id IN ({old})"), params![i(before)]).map_err(err)?;
        let batches = tx
            .execute(&format!("DELETE FROM batches WHERE created_at < ?1 AND status IN {FINAL}"), params![i(before)])
            .map_err(err)?;
        let files = tx
            .execute(
                &format!(
                    "DELETE FROM batch_files WHERE created_at < ?1
                     AND id NOT IN (SELECT input_file_id FROM batches WHERE status NOT IN {FINAL})"
                ),
                params![i(before)],
            )
            .map_err(err)?;
        tx.commit().map_err(err)?;
        Ok(batches + files)
    }
}
