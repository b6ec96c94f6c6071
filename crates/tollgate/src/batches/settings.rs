//! The `batches` config section, validated. A leaf the snapshot holds, so
//! it names nothing of the executor.

use std::time::Duration;

use crate::config::diag::Diags;
use crate::config::file::BatchesSection;
use crate::config::loc::Loc;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Batch lines in flight at once, over all batches of this instance.
    pub concurrency: usize,
    /// Largest file accepted on `POST /v1/files`, in bytes.
    pub max_file_size: u64,
    /// How long files and finished batches are kept (`None`: until deleted).
    pub retention: Option<Duration>,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings { concurrency: 8, max_file_size: 100 << 20, retention: None }
    }
}

pub fn build(s: &BatchesSection, d: &mut Diags) -> Settings {
    let default = Settings::default();
    let concurrency = match s.concurrency {
        Some(0) => {
            d.at(&Loc::unplaced(()), "batches.concurrency is 0: no batch would ever run", "use 1 or more, e.g. 8");
            1
        }
        Some(n) => n as usize,
        None => default.concurrency,
    };
    let max_file_size = s.max_file_size.as_ref().map_or(default.max_file_size, |b| b.0);
    if max_file_size == 0 {
        d.at(&Loc::unplaced(()), "batches.max_file_size is 0: no file could be uploaded", "e.g. 100MiB");
    }
    Settings { concurrency, max_file_size, retention: s.retention.map(|r| r.0) }
}
