//! Prompt template versions and labels made through the admin API, on
//! every backend. A version row is written once and never updated — the
//! primary key makes a second writer of the same number (another instance,
//! a retried request) fail instead of replacing it; a label row is
//! replaced on each promotion. Read at start-up and by admin routes only.

use rusqlite::params;

use super::postgres::PgStore;
use super::sqlite::SqliteStore;
use super::{Store, blocking};
use crate::prompts::{Stored, StoredLabel, StoredVersion};

fn i(n: u64) -> i64 {
    n.min(i64::MAX as u64) as i64
}

impl Store {
    pub async fn load_prompts(&self) -> Result<Stored, String> {
        match self {
            Store::Sqlite(s) => blocking(s, load_sqlite).await,
            Store::Postgres(p) => load_pg(p).await,
            Store::Memory(m) => Ok(m.prompts.lock().unwrap_or_else(|p| p.into_inner()).clone()),
        }
    }

    /// Keeps a new version; `Ok(false)` when its number is already taken.
    pub async fn insert_prompt_version(&self, v: StoredVersion) -> Result<bool, String> {
        match self {
            Store::Sqlite(s) => {
                blocking(s, move |s| {
                    s.conn()
                        .execute(
                            "INSERT OR IGNORE INTO prompt_versions (prompt_id, version, body, created_at, created_by)
                             VALUES (?1, ?2, ?3, ?4, ?5)",
                            params![v.prompt_id, v.version, v.body, i(v.created_at), v.created_by],
                        )
                        .map(|n| n == 1)
                        .map_err(super::sqlite::err)
                })
                .await
            }
            Store::Postgres(p) => {
                let mut g = p.client().await?;
                let c = g.as_mut().ok_or_else(|| "postgres: no connection".to_string())?;
                c.execute(
                    "INSERT INTO prompt_versions (prompt_id, version, body, created_at, created_by)
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (prompt_id, version) DO NOTHING",
                    &[&v.prompt_id, &i64::from(v.version), &v.body, &i(v.created_at), &v.created_by],
                )
                .await
                .map(|n| n == 1)
                .map_err(super::postgres::err)
            }
            Store::Memory(m) => {
                let mut s = m.prompts.lock().unwrap_or_else(|p| p.into_inner());
                if s.versions.iter().any(|x| x.prompt_id == v.prompt_id && x.version == v.version) {
                    return Ok(false);
                }
                s.versions.push(v);
                Ok(true)
            }
        }
    }

    /// Points a label at a version, replacing where it pointed before.
    pub async fn put_prompt_label(&self, l: StoredLabel) -> Result<(), String> {
        match self {
            Store::Sqlite(s) => {
                blocking(s, move |s| {
                    s.conn()
                        .execute(
                            "INSERT INTO prompt_labels (prompt_id, label, version, updated_at, updated_by)
                             VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (prompt_id, label) DO UPDATE SET
                             version = excluded.version, updated_at = excluded.updated_at, updated_by = excluded.updated_by",
                            params![l.prompt_id, l.label, l.version, i(l.updated_at), l.updated_by],
                        )
                        .map(|_| ())
                        .map_err(super::sqlite::err)
                })
                .await
            }
            Store::Postgres(p) => {
                let mut g = p.client().await?;
                let c = g.as_mut().ok_or_else(|| "postgres: no connection".to_string())?;
                c.execute(
                    "INSERT INTO prompt_labels (prompt_id, label, version, updated_at, updated_by)
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (prompt_id, label) DO UPDATE SET
                     version = EXCLUDED.version, updated_at = EXCLUDED.updated_at, updated_by = EXCLUDED.updated_by",
                    &[&l.prompt_id, &l.label, &i64::from(l.version), &i(l.updated_at), &l.updated_by],
                )
                .await
                .map(|_| ())
                .map_err(super::postgres::err)
            }
            Store::Memory(m) => {
                let mut s = m.prompts.lock().unwrap_or_else(|p| p.into_inner());
                s.labels.retain(|x| !(x.prompt_id == l.prompt_id && x.label == l.label));
                s.labels.push(l);
                Ok(())
            }
        }
    }
}

fn load_sqlite(s: &SqliteStore) -> Result<Stored, String> {
    let err = super::sqlite::err;
    let conn = s.conn();
    let mut stmt = conn
        .prepare(
            "SELECT prompt_id, version, body, created_at, created_by FROM prompt_versions ORDER BY prompt_id, version",
        )
        .map_err(err)?;
    let versions = stmt
        .query_map([], |r| {
            Ok(StoredVersion {
                prompt_id: r.get(0)?,
                version: r.get(1)?,
                body: r.get(2)?,
                created_at: r.get::<_, i64>(3)?.max(0) as u64,
                created_by: r.get(4)?,
            })
        })
        .map_err(err)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(err)?;
    let mut stmt = conn
        .prepare(
            "SELECT prompt_id, label, version, updated_at, updated_by FROM prompt_labels ORDER BY prompt_id, label",
        )
        .map_err(err)?;
    let labels = stmt
        .query_map([], |r| {
            Ok(StoredLabel {
                prompt_id: r.get(0)?,
                label: r.get(1)?,
                version: r.get(2)?,
                updated_at: r.get::<_, i64>(3)?.max(0) as u64,
                updated_by: r.get(4)?,
            })
        })
        .map_err(err)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(err)?;
    Ok(Stored { versions, labels })
}

async fn load_pg(p: &PgStore) -> Result<Stored, String> {
    let err = super::postgres::err;
    let g = p.client().await?;
    let c = g.as_ref().ok_or_else(|| "postgres: no connection".to_string())?;
    let rows = c
        .query(
            "SELECT prompt_id, version, body, created_at, created_by FROM prompt_versions ORDER BY prompt_id, version",
            &[],
        )
        .await
        .map_err(err)?;
    let versions = rows
        .iter()
        .map(|r| StoredVersion {
            prompt_id: r.get(0),
            version: u32::try_from(r.get::<_, i64>(1)).unwrap_or(0),
            body: r.get(2),
            created_at: r.get::<_, i64>(3).max(0) as u64,
            created_by: r.get(4),
        })
        .collect();
    let rows = c
        .query(
            "SELECT prompt_id, label, version, updated_at, updated_by FROM prompt_labels ORDER BY prompt_id, label",
            &[],
        )
        .await
        .map_err(err)?;
    let labels = rows
        .iter()
        .map(|r| StoredLabel {
            prompt_id: r.get(0),
            label: r.get(1),
            version: u32::try_from(r.get::<_, i64>(2)).unwrap_or(0),
            updated_at: r.get::<_, i64>(3).max(0) as u64,
            updated_by: r.get(4),
        })
        .collect();
    Ok(Stored { versions, labels })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The same checks for every backend: a version is kept once, a label
    /// moves, and both are there after the store is opened again.
    pub(crate) async fn round_trip(url: &super::super::StoreUrl) {
        let v = |n: u32, body: &str| StoredVersion {
            prompt_id: "triage".into(),
            version: n,
            body: body.into(),
            created_at: 5,
            created_by: "admin".into(),
        };
        let s = Store::open(url).await.unwrap();
        assert!(s.insert_prompt_version(v(1, "one")).await.unwrap());
        assert!(!s.insert_prompt_version(v(1, "other")).await.unwrap(), "a taken number is refused");
        assert!(s.insert_prompt_version(v(2, "two")).await.unwrap());
        let label = |n: u32| StoredLabel {
            prompt_id: "triage".into(),
            label: "production".into(),
            version: n,
            updated_at: 6,
            updated_by: "admin".into(),
        };
        s.put_prompt_label(label(1)).await.unwrap();
        s.put_prompt_label(label(2)).await.unwrap();
        let reopened = match url {
            super::super::StoreUrl::Memory => s,
            _ => {
                drop(s);
                Store::open(url).await.unwrap()
            }
        };
        let got = reopened.load_prompts().await.unwrap();
        assert_eq!(got.versions, vec![v(1, "one"), v(2, "two")], "versions are immutable");
        assert_eq!(got.labels, vec![label(2)]);
    }

    #[tokio::test]
    async fn sqlite_keeps_versions_and_labels() {
        let dir = tempfile::tempdir().unwrap();
        round_trip(&super::super::StoreUrl::Sqlite(dir.path().join("p.db"))).await;
    }

    #[tokio::test]
    async fn memory_keeps_versions_and_labels() {
        round_trip(&super::super::StoreUrl::Memory).await;
    }

    /// Needs PostgreSQL (`TOLLGATE_TEST_POSTGRES_URL`, default the local one).
    #[tokio::test]
    async fn postgres_keeps_versions_and_labels() {
        let admin_url = std::env::var("TOLLGATE_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let (admin, conn) = tokio_postgres::connect(&admin_url, tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL is needed for this test at {admin_url}: {e}"));
        crate::task::spawn("test-postgres-admin", conn);
        let db = format!("tollgate_prompts_{}", hex::encode(crate::digest::os_random::<6>()));
        admin.batch_execute(&format!("CREATE DATABASE {db}")).await.unwrap();
        let mut cfg: tokio_postgres::Config = admin_url.parse().unwrap();
        cfg.dbname(&db);
        let host = match &cfg.get_hosts()[0] {
            tokio_postgres::config::Host::Tcp(h) => h.clone(),
            #[cfg_attr(not(unix), expect(unreachable_patterns, reason = "only Unix has socket hosts"))]
            _ => "127.0.0.1".into(),
        };
        let port = cfg.get_ports().first().copied().unwrap_or(5432);
        let url = format!("postgres://{}@{host}:{port}/{db}", cfg.get_user().unwrap_or("postgres"));
        round_trip(&super::super::StoreUrl::Postgres(url)).await;
        admin.batch_execute(&format!("DROP DATABASE {db} WITH (FORCE)")).await.unwrap();
    }
}
