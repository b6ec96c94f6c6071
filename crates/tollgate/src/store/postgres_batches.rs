//! The Batches API's tables on PostgreSQL (see `batches.rs` for what each
//! call means).

use super::batches::FINAL;
use super::postgres::{PgStore, err};
use crate::batches::record::{BatchRecord, FileRecord, LineResult};

fn i(n: u64) -> i64 {
    n.min(i64::MAX as u64) as i64
}

fn json<T: serde::Serialize>(v: &T) -> Result<String, String> {
    serde_json::to_string(v).map_err(|e| e.to_string())
}

fn parse_file(s: &str) -> Result<FileRecord, String> {
    serde_json::from_str(s).map_err(|e| format!("stored file record: {e}"))
}

fn parse_batch(r: &tokio_postgres::Row) -> Result<BatchRecord, String> {
    let mut b: BatchRecord =
        serde_json::from_str(r.get::<_, &str>(0)).map_err(|e| format!("stored batch record: {e}"))?;
    b.completed = r.get::<_, i64>(1).max(0) as u64;
    b.failed = r.get::<_, i64>(2).max(0) as u64;
    Ok(b)
}

macro_rules! client {
    ($self:ident, $guard:ident) => {{
        $guard = $self.client().await?;
        $guard.as_mut().ok_or_else(|| "postgres: no connection".to_string())?
    }};
}

impl PgStore {
    pub async fn put_file(&self, rec: &FileRecord, content: &[u8]) -> Result<(), String> {
        let mut g;
        let c = client!(self, g);
        c.execute(
            "INSERT INTO batch_files (id, owner, created_at, record, content) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (id) DO UPDATE SET record = EXCLUDED.record, content = EXCLUDED.content",
            &[&rec.id, &rec.owner, &i(rec.created_at), &json(rec)?, &content],
        )
        .await
        .map(|_| ())
        .map_err(err)
    }

    pub async fn get_file(&self, id: &str) -> Result<Option<FileRecord>, String> {
        let mut g;
        let c = client!(self, g);
        let row = c.query_opt("SELECT record FROM batch_files WHERE id = $1", &[&id]).await.map_err(err)?;
        row.map(|r| parse_file(r.get(0))).transpose()
    }

    pub async fn file_content(&self, id: &str) -> Result<Option<Vec<u8>>, String> {
        let mut g;
        let c = client!(self, g);
        let row = c.query_opt("SELECT content FROM batch_files WHERE id = $1", &[&id]).await.map_err(err)?;
        Ok(row.map(|r| r.get(0)))
    }

    pub async fn list_files(&self, owner: Option<&str>) -> Result<Vec<FileRecord>, String> {
        let mut g;
        let c = client!(self, g);
        let rows = c
            .query("SELECT record FROM batch_files WHERE $1::TEXT IS NULL OR owner = $1", &[&owner])
            .await
            .map_err(err)?;
        rows.iter().map(|r| parse_file(r.get(0))).collect()
    }

    pub async fn delete_file(&self, id: &str) -> Result<bool, String> {
        let mut g;
        let c = client!(self, g);
        c.execute("DELETE FROM batch_files WHERE id = $1", &[&id]).await.map(|n| n > 0).map_err(err)
    }

    pub async fn insert_batch(&self, rec: &BatchRecord, credential: &[u8]) -> Result<(), String> {
        let mut g;
        let c = client!(self, g);
        c.execute(
            "INSERT INTO batches (id, owner, created_at, status, input_file_id, record, credential)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[
                &rec.id,
                &rec.owner,
                &i(rec.created_at),
                &rec.status.as_str(),
                &rec.input_file_id,
                &json(rec)?,
                &credential,
            ],
        )
        .await
        .map(|_| ())
        .map_err(err)
    }

    /// `from`: the quoted statuses the row may have now (`'a', 'b'`).
    pub async fn update_batch(&self, rec: &BatchRecord, from: &str) -> Result<bool, String> {
        let mut g;
        let c = client!(self, g);
        c.execute(
            &format!("UPDATE batches SET status = $2, record = $3 WHERE id = $1 AND status IN ({from})"),
            &[&rec.id, &rec.status.as_str(), &json(rec)?],
        )
        .await
        .map(|n| n > 0)
        .map_err(err)
    }

    pub async fn get_batch(&self, id: &str) -> Result<Option<BatchRecord>, String> {
        let mut g;
        let c = client!(self, g);
        let row =
            c.query_opt("SELECT record, completed, failed FROM batches WHERE id = $1", &[&id]).await.map_err(err)?;
        row.as_ref().map(parse_batch).transpose()
    }

    pub async fn list_batches(&self, owner: Option<&str>, unfinished: bool) -> Result<Vec<BatchRecord>, String> {
        let mut g;
        let c = client!(self, g);
        let sql = format!(
            "SELECT record, completed, failed FROM batches WHERE ($1::TEXT IS NULL OR owner = $1) {}",
            if unfinished { format!("AND status NOT IN {FINAL}") } else { String::new() }
        );
        let rows = c.query(&sql, &[&owner]).await.map_err(err)?;
        rows.iter().map(parse_batch).collect()
    }

    pub async fn batch_credential(&self, id: &str) -> Result<Option<Vec<u8>>, String> {
        let mut g;
        let c = client!(self, g);
        let row = c.query_opt("SELECT credential FROM batches WHERE id = $1", &[&id]).await.map_err(err)?;
        Ok(row.map(|r| r.get(0)))
    }

    pub async fn claim_batch(&self, id: &str, runner: &str, now: u64, until: u64) -> Result<bool, String> {
        let mut g;
        let c = client!(self, g);
        c.execute(
            "UPDATE batches SET runner = $2, lease_until = $4 WHERE id = $1 AND (lease_until < $3 OR runner = $2)",
            &[&id, &runner, &i(now), &i(until)],
        )
        .await
        .map(|n| n > 0)
        .map_err(err)
    }

    pub async fn record_line(&self, batch: &str, l: &LineResult) -> Result<bool, String> {
        let mut g;
        let c = client!(self, g);
        let tx = c.transaction().await.map_err(err)?;
        let n = tx
            .execute(
                "INSERT INTO batch_lines (batch_id, line, ok, result) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (batch_id, line) DO NOTHING",
                &[&batch, &i(l.line), &l.ok, &l.json],
            )
            .await
            .map_err(err)?;
        if n > 0 {
            let column = if l.ok { "completed" } else { "failed" };
            tx.execute(&format!("UPDATE batches SET {column} = {column} + 1 WHERE id = $1"), &[&batch])
                .await
                .map_err(err)?;
        }
        tx.commit().await.map_err(err)?;
        Ok(n > 0)
    }

    pub async fn done_lines(&self, batch: &str) -> Result<Vec<u64>, String> {
        let mut g;
        let c = client!(self, g);
        let rows = c.query("SELECT line FROM batch_lines WHERE batch_id = $1", &[&batch]).await.map_err(err)?;
        Ok(rows.iter().map(|r| r.get::<_, i64>(0).max(0) as u64).collect())
    }

    pub async fn batch_lines(&self, batch: &str) -> Result<Vec<LineResult>, String> {
        let mut g;
        let c = client!(self, g);
        let rows = c
            .query("SELECT line, ok, result FROM batch_lines WHERE batch_id = $1 ORDER BY line", &[&batch])
            .await
            .map_err(err)?;
        Ok(rows
            .iter()
            .map(|r| LineResult { line: r.get::<_, i64>(0).max(0) as u64, ok: r.get(1), json: r.get(2) })
            .collect())
    }

    pub async fn prune_batches(&self, before: u64) -> Result<usize, String> {
        let mut g;
        let c = client!(self, g);
        let tx = c.transaction().await.map_err(err)?;
        let before = i(before);
        let old = format!("SELECT id FROM batches WHERE created_at < $1 AND status IN {FINAL}");
        tx.execute(&format!("DELETE FROM batch_lines WHERE batch_id IN ({old})"), &[&before]).await.map_err(err)?;
        let batches = tx
            .execute(&format!("DELETE FROM batches WHERE created_at < $1 AND status IN {FINAL}"), &[&before])
            .await
            .map_err(err)?;
        let files = tx
            .execute(
                &format!(
                    "DELETE FROM batch_files WHERE created_at < $1
                     AND id NOT IN (SELECT input_file_id FROM batches WHERE status NOT IN {FINAL})"
                ),
                &[&before],
            )
            .await
            .map_err(err)?;
        tx.commit().await.map_err(err)?;
        Ok((batches + files) as usize)
    }
}
