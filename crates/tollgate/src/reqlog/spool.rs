//! The request log's disk spool: entries the store could not take, kept in
//! an append-only file (one JSON entry per line, oldest first) so that a
//! restart during a store outage loses none of them. The file is read back
//! at start-up and removed once everything in it is in the store; an entry
//! written twice (a crash between the store's commit and the file's
//! removal) is stored once, because inserts are keyed by the request id.
//!
//! The file is bounded by size: entries that would grow it past the bound
//! wait in memory only, and are lost (counted and logged) if the process
//! stops before the store takes them.

use std::io::{BufRead, Write};
use std::path::PathBuf;

use super::LogEntry;

pub const FILE: &str = "tollgate-request-log.spool";

#[derive(Debug, Clone)]
pub struct DiskSpool {
    path: PathBuf,
    max_bytes: u64,
}

impl DiskSpool {
    pub fn new(dir: PathBuf, max_bytes: u64) -> DiskSpool {
        DiskSpool { path: dir.join(FILE), max_bytes }
    }

    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// The entries left by an earlier run, oldest first. A line that does not
    /// parse (a write cut short by a crash) is skipped.
    pub fn load(&self) -> Vec<LogEntry> {
        let Ok(f) = std::fs::File::open(&self.path) else { return Vec::new() };
        let mut out = Vec::new();
        let mut broken = 0;
        for line in std::io::BufReader::new(f).lines() {
            let Ok(line) = line else { break };
            match serde_json::from_str::<LogEntry>(&line) {
                Ok(e) => out.push(e),
                Err(_) if line.trim().is_empty() => {}
                Err(_) => broken += 1,
            }
        }
        if broken > 0 {
            tracing::warn!(lines = broken, path = %self.path.display(), "unreadable lines in the request log spool were skipped");
        }
        out
    }

    /// Appends entries in order until one would grow the file past its
    /// bound; returns how many were written (the rest stay where they are).
    pub fn append<'a>(&self, entries: impl Iterator<Item = &'a LogEntry>) -> std::io::Result<usize> {
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&self.path)?;
        let mut size = f.metadata()?.len();
        let mut buf = Vec::new();
        // A line cut short by a crash is ended first, so it costs only itself.
        if size > 0 && !ends_with_newline(&self.path)? {
            buf.push(b'\n');
            size += 1;
        }
        let mut written = 0;
        for e in entries {
            let mut line = serde_json::to_vec(e).map_err(std::io::Error::other)?;
            line.push(b'\n');
            if size + line.len() as u64 > self.max_bytes {
                break;
            }
            size += line.len() as u64;
            buf.extend_from_slice(&line);
            written += 1;
        }
        if !buf.is_empty() {
            f.write_all(&buf)?;
            f.sync_data()?;
        }
        Ok(written)
    }

    /// Everything in the file is in the store.
    pub fn clear(&self) {
        match std::fs::remove_file(&self.path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!(error = %e, path = %self.path.display(), "could not remove the request log spool"),
        }
    }
}

fn ends_with_newline(path: &std::path::Path) -> std::io::Result<bool> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(path)?;
    f.seek(SeekFrom::End(-1))?;
    let mut last = [0u8; 1];
    f.read_exact(&mut last)?;
    Ok(last[0] == b'\n')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str) -> LogEntry {
        LogEntry { id: id.into(), ..LogEntry::default() }
    }

    #[test]
    fn entries_round_trip_in_order_within_the_bound() {
        let dir = tempfile::tempdir().unwrap();
        let s = DiskSpool::new(dir.path().to_path_buf(), 10_000);
        assert!(s.load().is_empty());
        assert_eq!(s.append([entry("a"), entry("b")].iter()).unwrap(), 2);
        assert_eq!(s.append([entry("c")].iter()).unwrap(), 1);
        // A line cut short by a crash is skipped, the rest still read.
        std::fs::OpenOptions::new().append(true).open(s.path()).unwrap().write_all(b"{\"id\":\"cut").unwrap();
        let ids: Vec<String> = s.load().into_iter().map(|e| e.id).collect();
        assert_eq!(ids, ["a", "b", "c"]);
        // An entry appended after the cut line is not glued to it.
        assert_eq!(s.append([entry("d")].iter()).unwrap(), 1);
        let ids: Vec<String> = s.load().into_iter().map(|e| e.id).collect();
        assert_eq!(ids, ["a", "b", "c", "d"]);
        let one = serde_json::to_vec(&entry("x")).unwrap().len() as u64 + 1;
        let small = DiskSpool::new(dir.path().join("small"), one * 2);
        assert_eq!(small.append([entry("x"), entry("y"), entry("z")].iter()).unwrap(), 2, "the third does not fit");
        assert_eq!(small.load().len(), 2);
        s.clear();
        assert!(s.load().is_empty());
    }
}
