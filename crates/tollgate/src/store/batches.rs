//! Files and batches of the Batches API: their records, file contents, the
//! creator's sealed credential, and one row per finished line — so a batch
//! resumes after a restart without running a finished line again. Only
//! the files and batches routes and the batch executor use these; never
//! the request path.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::{Store, blocking};
use crate::batches::record::{BatchRecord, FileRecord, LineResult, Status};

/// The statuses after which nothing more happens to a batch, as stored.
pub(super) const FINAL: &str = "('completed', 'failed', 'cancelled', 'expired')";

/// `memory://`: files and batches for the life of the process.
#[derive(Default)]
pub struct MemoryBatches {
    files: HashMap<String, (FileRecord, Arc<Vec<u8>>)>,
    batches: HashMap<String, MemBatch>,
}

struct MemBatch {
    rec: BatchRecord,
    credential: Vec<u8>,
    runner: Option<String>,
    lease_until: u64,
    lines: BTreeMap<u64, LineResult>,
}

impl MemBatch {
    fn counted(&self) -> BatchRecord {
        let mut r = self.rec.clone();
        r.completed = self.lines.values().filter(|l| l.ok).count() as u64;
        r.failed = self.lines.values().filter(|l| !l.ok).count() as u64;
        r
    }
}

/// Newest first; the id breaks ties, so pages are stable.
fn newest_first<T>(v: &mut [T], key: impl Fn(&T) -> (u64, &str)) {
    v.sort_by(|a, b| key(b).cmp(&key(a)));
}

impl Store {
    fn mem(&self) -> Option<std::sync::MutexGuard<'_, MemoryBatches>> {
        match self {
            Store::Memory(m) => Some(m.batches.lock().unwrap_or_else(|p| p.into_inner())),
            _ => None,
        }
    }

    /// Inserts a file, or replaces one with the same id.
    pub async fn put_file(&self, rec: FileRecord, content: Vec<u8>) -> Result<(), String> {
        match self {
            Store::Sqlite(s) => blocking(s, move |s| s.put_file(&rec, &content)).await,
            Store::Postgres(p) => p.put_file(&rec, &content).await,
            Store::Memory(_) => {
                let mut m = self.mem().ok_or("memory store")?;
                m.files.insert(rec.id.clone(), (rec, Arc::new(content)));
                Ok(())
            }
        }
    }

    pub async fn get_file(&self, id: String) -> Result<Option<FileRecord>, String> {
        match self {
            Store::Sqlite(s) => blocking(s, move |s| s.get_file(&id)).await,
            Store::Postgres(p) => p.get_file(&id).await,
            Store::Memory(_) => Ok(self.mem().and_then(|m| m.files.get(&id).map(|f| f.0.clone()))),
        }
    }

    pub async fn file_content(&self, id: String) -> Result<Option<Vec<u8>>, String> {
        match self {
            Store::Sqlite(s) => blocking(s, move |s| s.file_content(&id)).await,
            Store::Postgres(p) => p.file_content(&id).await,
            Store::Memory(_) => Ok(self.mem().and_then(|m| m.files.get(&id).map(|f| f.1.as_ref().clone()))),
        }
    }

    /// The files of one owner (`None`: everyone's), newest first.
    pub async fn list_files(&self, owner: Option<String>) -> Result<Vec<FileRecord>, String> {
        let mut v = match self {
            Store::Sqlite(s) => blocking(s, move |s| s.list_files(owner.as_deref())).await?,
            Store::Postgres(p) => p.list_files(owner.as_deref()).await?,
            Store::Memory(_) => self
                .mem()
                .map(|m| {
                    m.files
                        .values()
                        .filter(|f| owner.as_ref().is_none_or(|o| &f.0.owner == o))
                        .map(|f| f.0.clone())
                        .collect()
                })
                .unwrap_or_default(),
        };
        newest_first(&mut v, |f| (f.created_at, f.id.as_str()));
        Ok(v)
    }

    /// Whether the file existed.
    pub async fn delete_file(&self, id: String) -> Result<bool, String> {
        match self {
            Store::Sqlite(s) => blocking(s, move |s| s.delete_file(&id)).await,
            Store::Postgres(p) => p.delete_file(&id).await,
            Store::Memory(_) => Ok(self.mem().is_some_and(|mut m| m.files.remove(&id).is_some())),
        }
    }

    pub async fn insert_batch(&self, rec: BatchRecord, credential: Vec<u8>) -> Result<(), String> {
        match self {
            Store::Sqlite(s) => blocking(s, move |s| s.insert_batch(&rec, &credential)).await,
            Store::Postgres(p) => p.insert_batch(&rec, &credential).await,
            Store::Memory(_) => {
                let mut m = self.mem().ok_or("memory store")?;
                let b = MemBatch { rec, credential, runner: None, lease_until: 0, lines: BTreeMap::new() };
                m.batches.insert(b.rec.id.clone(), b);
                Ok(())
            }
        }
    }

    /// Writes the record's status, times, files and errors — only if the
    /// stored status is one of `from` (a cancel and the executor never
    /// overwrite each other's step); whether it was written. The counts
    /// are the store's own (one row per finished line) and are left alone.
    pub async fn update_batch(&self, rec: BatchRecord, from: &[Status]) -> Result<bool, String> {
        let list = from.iter().map(|s| format!("'{}'", s.as_str())).collect::<Vec<_>>().join(", ");
        let from = from.to_vec();
        match self {
            Store::Sqlite(s) => blocking(s, move |s| s.update_batch(&rec, &list)).await,
            Store::Postgres(p) => p.update_batch(&rec, &list).await,
            Store::Memory(_) => Ok(self
                .mem()
                .and_then(|mut m| {
                    let b = m.batches.get_mut(&rec.id).filter(|b| from.contains(&b.rec.status))?;
                    b.rec = rec;
                    Some(())
                })
                .is_some()),
        }
    }

    pub async fn get_batch(&self, id: String) -> Result<Option<BatchRecord>, String> {
        match self {
            Store::Sqlite(s) => blocking(s, move |s| s.get_batch(&id)).await,
            Store::Postgres(p) => p.get_batch(&id).await,
            Store::Memory(_) => Ok(self.mem().and_then(|m| m.batches.get(&id).map(MemBatch::counted))),
        }
    }

    /// The batches of one owner (`None`: everyone's), newest first.
    pub async fn list_batches(&self, owner: Option<String>) -> Result<Vec<BatchRecord>, String> {
        let mut v = match self {
            Store::Sqlite(s) => blocking(s, move |s| s.list_batches(owner.as_deref(), false)).await?,
            Store::Postgres(p) => p.list_batches(owner.as_deref(), false).await?,
            Store::Memory(_) => self
                .mem()
                .map(|m| {
                    m.batches
                        .values()
                        .filter(|b| owner.as_ref().is_none_or(|o| &b.rec.owner == o))
                        .map(MemBatch::counted)
                        .collect()
                })
                .unwrap_or_default(),
        };
        newest_first(&mut v, |b| (b.created_at, b.id.as_str()));
        Ok(v)
    }

    /// Every batch not yet in a final status: the executor's work.
    pub async fn unfinished_batches(&self) -> Result<Vec<BatchRecord>, String> {
        let mut v = match self {
            Store::Sqlite(s) => blocking(s, |s| s.list_batches(None, true)).await?,
            Store::Postgres(p) => p.list_batches(None, true).await?,
            Store::Memory(_) => self
                .mem()
                .map(|m| m.batches.values().filter(|b| !b.rec.status.is_final()).map(MemBatch::counted).collect())
                .unwrap_or_default(),
        };
        // Oldest first: batches run in the order they were created.
        newest_first(&mut v, |b| (b.created_at, b.id.as_str()));
        v.reverse();
        Ok(v)
    }

    /// The creator's sealed credential.
    pub async fn batch_credential(&self, id: String) -> Result<Option<Vec<u8>>, String> {
        match self {
            Store::Sqlite(s) => blocking(s, move |s| s.batch_credential(&id)).await,
            Store::Postgres(p) => p.batch_credential(&id).await,
            Store::Memory(_) => Ok(self.mem().and_then(|m| m.batches.get(&id).map(|b| b.credential.clone()))),
        }
    }

    /// Takes (or renews) the right to run a batch until `until` (unix
    /// seconds): granted when no other runner holds an unexpired lease.
    /// Instances sharing a PostgreSQL store run each batch once this way.
    pub async fn claim_batch(&self, id: String, runner: String, now: u64, until: u64) -> Result<bool, String> {
        match self {
            Store::Sqlite(s) => blocking(s, move |s| s.claim_batch(&id, &runner, now, until)).await,
            Store::Postgres(p) => p.claim_batch(&id, &runner, now, until).await,
            Store::Memory(_) => Ok(self.mem().and_then(|mut m| {
                let b = m.batches.get_mut(&id)?;
                let free = b.lease_until < now || b.runner.as_deref() == Some(runner.as_str());
                if free {
                    b.runner = Some(runner);
                    b.lease_until = until;
                }
                Some(free)
            }) == Some(true)),
        }
    }

    /// Keeps a finished line; a line already kept stays as it was (and
    /// `false` says so), so a line re-run after a crash counts once.
    pub async fn record_line(&self, batch: String, line: LineResult) -> Result<bool, String> {
        match self {
            Store::Sqlite(s) => blocking(s, move |s| s.record_line(&batch, &line)).await,
            Store::Postgres(p) => p.record_line(&batch, &line).await,
            Store::Memory(_) => Ok(self.mem().and_then(|mut m| {
                let b = m.batches.get_mut(&batch)?;
                if b.lines.contains_key(&line.line) {
                    return Some(false);
                }
                b.lines.insert(line.line, line);
                Some(true)
            }) == Some(true)),
        }
    }

    /// Positions of the lines already finished.
    pub async fn done_lines(&self, batch: String) -> Result<Vec<u64>, String> {
        match self {
            Store::Sqlite(s) => blocking(s, move |s| s.done_lines(&batch)).await,
            Store::Postgres(p) => p.done_lines(&batch).await,
            Store::Memory(_) => Ok(self
                .mem()
                .and_then(|m| m.batches.get(&batch).map(|b| b.lines.keys().copied().collect()))
                .unwrap_or_default()),
        }
    }

    /// Every finished line, in input order.
    pub async fn batch_lines(&self, batch: String) -> Result<Vec<LineResult>, String> {
        match self {
            Store::Sqlite(s) => blocking(s, move |s| s.batch_lines(&batch)).await,
            Store::Postgres(p) => p.batch_lines(&batch).await,
            Store::Memory(_) => Ok(self
                .mem()
                .and_then(|m| m.batches.get(&batch).map(|b| b.lines.values().cloned().collect()))
                .unwrap_or_default()),
        }
    }

    /// Deletes finished batches (with their lines) and files created before
    /// `before` (unix seconds) — except a file an unfinished batch still
    /// reads. How many objects went.
    pub async fn prune_batches(&self, before: u64) -> Result<usize, String> {
        match self {
            Store::Sqlite(s) => blocking(s, move |s| s.prune_batches(before)).await,
            Store::Postgres(p) => p.prune_batches(before).await,
            Store::Memory(_) => {
                let mut m = self.mem().ok_or("memory store")?;
                let n = m.batches.len() + m.files.len();
                m.batches.retain(|_, b| !(b.rec.status.is_final() && b.rec.created_at < before));
                let inputs: Vec<String> = m
                    .batches
                    .values()
                    .filter(|b| !b.rec.status.is_final())
                    .map(|b| b.rec.input_file_id.clone())
                    .collect();
                m.files.retain(|id, f| f.0.created_at >= before || inputs.contains(id));
                Ok(n - m.batches.len() - m.files.len())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreUrl;

    fn file(id: &str, owner: &str, at: u64) -> FileRecord {
        FileRecord {
            id: id.into(),
            owner: owner.into(),
            created_at: at,
            filename: "f.jsonl".into(),
            purpose: "batch".into(),
            bytes: 3,
        }
    }

    fn batch(id: &str, owner: &str, at: u64) -> BatchRecord {
        BatchRecord {
            id: id.into(),
            owner: owner.into(),
            endpoint: "/v1/chat/completions".into(),
            input_file_id: "file-a".into(),
            completion_window: "24h".into(),
            status: Status::Validating,
            output_file_id: None,
            error_file_id: None,
            errors: vec![],
            metadata: None,
            created_at: at,
            expires_at: at + 86_400,
            in_progress_at: None,
            finalizing_at: None,
            completed_at: None,
            failed_at: None,
            expired_at: None,
            cancelling_at: None,
            cancelled_at: None,
            total: 2,
            completed: 0,
            failed: 0,
        }
    }

    fn line(n: u64, ok: bool) -> LineResult {
        LineResult { line: n, ok, json: format!("{{\"n\":{n}}}") }
    }

    /// The same checks for every backend.
    async fn exercise(url: &StoreUrl) {
        let s = Store::open(url).await.unwrap();
        s.put_file(file("file-a", "key:a", 10), b"abc".to_vec()).await.unwrap();
        s.put_file(file("file-b", "key:b", 20), b"xyz".to_vec()).await.unwrap();
        assert_eq!(s.get_file("file-a".into()).await.unwrap(), Some(file("file-a", "key:a", 10)));
        assert_eq!(s.file_content("file-b".into()).await.unwrap().as_deref(), Some(&b"xyz"[..]));
        let all: Vec<String> = s.list_files(None).await.unwrap().into_iter().map(|f| f.id).collect();
        assert_eq!(all, ["file-b", "file-a"], "newest first");
        assert_eq!(s.list_files(Some("key:a".into())).await.unwrap().len(), 1);

        s.insert_batch(batch("batch_1", "key:a", 30), b"sealed".to_vec()).await.unwrap();
        assert_eq!(s.batch_credential("batch_1".into()).await.unwrap().as_deref(), Some(&b"sealed"[..]));
        assert!(s.claim_batch("batch_1".into(), "r1".into(), 100, 160).await.unwrap());
        assert!(!s.claim_batch("batch_1".into(), "r2".into(), 120, 180).await.unwrap(), "a held lease");
        assert!(s.claim_batch("batch_1".into(), "r2".into(), 161, 220).await.unwrap(), "an expired lease");

        // Status changes only from the expected status.
        let mut b = batch("batch_1", "key:a", 30);
        b.status = Status::InProgress;
        assert!(s.update_batch(b.clone(), &[Status::Validating]).await.unwrap());
        assert!(!s.update_batch(b.clone(), &[Status::Validating]).await.unwrap());
        // Each line counts once, however often it is recorded.
        assert!(s.record_line("batch_1".into(), line(1, true)).await.unwrap());
        assert!(!s.record_line("batch_1".into(), line(1, false)).await.unwrap());
        assert!(s.record_line("batch_1".into(), line(0, false)).await.unwrap());
        let got = s.get_batch("batch_1".into()).await.unwrap().unwrap();
        assert_eq!((got.status, got.completed, got.failed), (Status::InProgress, 1, 1));
        let mut done = s.done_lines("batch_1".into()).await.unwrap();
        done.sort();
        assert_eq!(done, [0, 1]);
        assert_eq!(s.batch_lines("batch_1".into()).await.unwrap(), [line(0, false), line(1, true)]);
        assert_eq!(s.unfinished_batches().await.unwrap().len(), 1);
        assert!(s.list_batches(Some("key:b".into())).await.unwrap().is_empty());

        // Retention spares the input of an unfinished batch.
        assert_eq!(s.prune_batches(1_000).await.unwrap(), 1, "file-b only");
        assert!(s.get_file("file-a".into()).await.unwrap().is_some());
        b.status = Status::Completed;
        assert!(s.update_batch(b, &[Status::InProgress]).await.unwrap());
        assert!(s.unfinished_batches().await.unwrap().is_empty());
        assert_eq!(s.prune_batches(1_000).await.unwrap(), 2);
        assert!(s.list_batches(None).await.unwrap().is_empty());
        assert!(s.batch_lines("batch_1".into()).await.unwrap().is_empty());
        assert!(!s.delete_file("file-a".into()).await.unwrap());
    }

    #[tokio::test]
    async fn memory_and_sqlite_keep_files_batches_and_lines() {
        exercise(&StoreUrl::Memory).await;
        let dir = tempfile::tempdir().unwrap();
        exercise(&StoreUrl::Sqlite(dir.path().join("b.db"))).await;
    }

    /// Needs a PostgreSQL server (`TOLLGATE_TEST_POSTGRES_URL`, default the
    /// local one); a missing server fails the test rather than skipping it.
    #[tokio::test]
    async fn postgres_keeps_files_batches_and_lines() {
        let admin_url = std::env::var("TOLLGATE_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let (admin, conn) = tokio_postgres::connect(&admin_url, tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL is needed for this test at {admin_url}: {e}"));
        crate::task::spawn("test-postgres-admin", conn);
        let db = format!("tollgate_batches_{}", hex::encode(crate::digest::os_random::<6>()));
        admin.batch_execute(&format!("CREATE DATABASE {db}")).await.unwrap();
        let url = format!("{}/{db}", admin_url.rsplit_once('/').unwrap().0);
        exercise(&StoreUrl::Postgres(url)).await;
        admin.batch_execute(&format!("DROP DATABASE {db} WITH (FORCE)")).await.unwrap();
    }
}
