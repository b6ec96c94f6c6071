//! Durable state: what must survive a restart (budget spend today; keys,
//! usage and logs as they arrive). The request path never waits on it:
//! state is loaded into memory at start-up and written behind by a
//! background task (`writer.rs`).
//!
//! `store.url`: `sqlite://<path>` (the default, `sqlite://tollgate.db`), or
//! `memory://` for nothing persisted.

mod sqlite;
pub mod writer;

use std::path::PathBuf;

use crate::budgets::AccountRow;
use crate::keys::KeyRecord;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreUrl {
    Sqlite(PathBuf),
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
            return Err("the PostgreSQL store is not available in this build yet; use sqlite://<path>".into());
        }
        Err(format!("`{url}` is not a store URL; use sqlite://<path> or memory://"))
    }
}

pub enum Store {
    Sqlite(sqlite::SqliteStore),
    Memory(MemoryStore),
}

/// Keeps keys for the life of the process only.
#[derive(Default)]
pub struct MemoryStore {
    secret: std::sync::OnceLock<[u8; 32]>,
    keys: std::sync::Mutex<Vec<(Vec<u8>, KeyRecord)>>,
}

impl Store {
    pub fn open(url: &StoreUrl) -> Result<Store, String> {
        match url {
            StoreUrl::Memory => Ok(Store::Memory(MemoryStore::default())),
            StoreUrl::Sqlite(p) => sqlite::SqliteStore::open(p).map(Store::Sqlite),
        }
    }

    pub fn load_spend(&self) -> Result<Vec<AccountRow>, String> {
        match self {
            Store::Sqlite(s) => s.load_spend(),
            Store::Memory(_) => Ok(Vec::new()),
        }
    }

    pub fn save_spend(&self, rows: &[AccountRow]) -> Result<(), String> {
        match self {
            Store::Sqlite(s) => s.save_spend(rows),
            Store::Memory(_) => Ok(()),
        }
    }

    pub fn key_secret(&self) -> Result<[u8; 32], String> {
        match self {
            Store::Sqlite(s) => s.key_secret(),
            Store::Memory(m) => Ok(*m.secret.get_or_init(crate::keys::os_random::<32>)),
        }
    }

    pub fn load_keys(&self) -> Result<Vec<(Vec<u8>, KeyRecord)>, String> {
        match self {
            Store::Sqlite(s) => s.load_keys(),
            Store::Memory(m) => Ok(m.keys.lock().unwrap_or_else(|p| p.into_inner()).clone()),
        }
    }

    pub fn put_key(&self, hash: &[u8], record: &KeyRecord) -> Result<(), String> {
        match self {
            Store::Sqlite(s) => s.put_key(hash, record),
            Store::Memory(m) => {
                let mut keys = m.keys.lock().unwrap_or_else(|p| p.into_inner());
                match keys.iter_mut().find(|(_, r)| r.id == record.id) {
                    Some(entry) => entry.1 = record.clone(),
                    None => keys.push((hash.to_vec(), record.clone())),
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
        assert!(StoreUrl::parse("postgres://x").unwrap_err().contains("not available"));
        assert!(StoreUrl::parse("mysql://x").is_err());
    }

    #[test]
    fn spend_round_trips_through_sqlite() {
        let dir = tempfile::tempdir().unwrap();
        let url = StoreUrl::Sqlite(dir.path().join("t.db"));
        let s = Store::open(&url).unwrap();
        let rows = vec![
            AccountRow { key: "b\0team-a".into(), period: 20_000, spent: 123, alerted: 1, reserved: 0 },
            AccountRow { key: "b\0team-b".into(), period: 20_000, spent: 7, alerted: 0, reserved: 0 },
        ];
        s.save_spend(&rows).unwrap();
        s.save_spend(&[AccountRow { key: "b\0team-a".into(), period: 20_000, spent: 500, alerted: 3, reserved: 9 }]).unwrap();
        drop(s);
        let s = Store::open(&url).unwrap();
        let mut got = s.load_spend().unwrap();
        got.sort_by(|a, b| a.key.cmp(&b.key));
        assert_eq!((got[0].spent, got[0].alerted), (500, 3));
        assert_eq!(got[1].spent, 7);
        assert_eq!(got[0].reserved, 0, "reservations are not persisted");
    }
}
