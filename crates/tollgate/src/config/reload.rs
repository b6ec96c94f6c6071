//! The live configuration and its atomic reload.
//!
//! `Live` holds the current snapshot behind an `ArcSwap`: a request takes
//! one `Arc` at its start and keeps it, so a reload never changes the rules
//! under a request in flight, and readers never take a lock. Reloads (file
//! change, SIGHUP, admin API) are serialised and go through the same loading
//! path as start-up; a config that fails to load is logged and the old one
//! keeps serving.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;

use super::load::{ConfigErrors, env_properties, load_path, load_text};
use crate::config::snapshot::Snapshot;
use crate::state::Shared;

#[derive(Debug, Clone)]
pub enum Source {
    File(PathBuf),
    /// Text held in memory (embedded defaults), with its interpolation values.
    Text {
        text: String,
        origin: String,
        props: HashMap<String, String>,
    },
}

pub struct Live {
    current: ArcSwap<Snapshot>,
    versions: AtomicU64,
    source: Source,
    shared: Arc<Shared>,
    reloading: Mutex<()>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Applied { version: u64, digest: String },
    Unchanged { version: u64 },
}

impl Live {
    pub fn new(source: Source, shared: Shared) -> Result<Arc<Live>, ConfigErrors> {
        let snap = load(&source, 1, &shared, false)?.expect("loaded without skip_empty");
        Ok(Arc::new(Live {
            current: ArcSwap::from_pointee(snap),
            versions: AtomicU64::new(1),
            source,
            shared: Arc::new(shared),
            reloading: Mutex::new(()),
        }))
    }

    /// The snapshot a new request runs under.
    #[inline]
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// State that outlives snapshots: pools, health, counters, budgets.
    pub fn shared(&self) -> Arc<Shared> {
        self.shared.clone()
    }

    pub fn source(&self) -> &Source {
        &self.source
    }

    /// Loads the source again and swaps it in if valid. With
    /// `only_if_changed`, identical text is not a new version (editors and
    /// file systems report spurious writes).
    pub fn reload(&self, trigger: &str, only_if_changed: bool) -> Result<Outcome, ConfigErrors> {
        self.reload_as("-", trigger, only_if_changed)
    }

    /// `reload`, audited as done by `actor` (a principal id).
    pub fn reload_as(&self, actor: &str, trigger: &str, only_if_changed: bool) -> Result<Outcome, ConfigErrors> {
        self.reload_inner(actor, trigger, only_if_changed, false)
    }

    fn reload_inner(
        &self,
        actor: &str,
        trigger: &str,
        only_if_changed: bool,
        mid_write_guard: bool,
    ) -> Result<Outcome, ConfigErrors> {
        let _one_at_a_time = self.reloading.lock().unwrap_or_else(|p| p.into_inner());
        let version = self.versions.load(Ordering::Relaxed) + 1;
        let result = load(&self.source, version, &self.shared, mid_write_guard);
        let old = self.current.load();
        match result {
            // The file was caught between truncation and write: the write's
            // own change event brings the next reload.
            Ok(None) => Ok(Outcome::Unchanged { version: old.version }),
            Ok(Some(snap)) if only_if_changed && snap.digest == old.digest => {
                Ok(Outcome::Unchanged { version: old.version })
            }
            Ok(Some(snap)) => {
                if snap.server.listen != old.server.listen || snap.server.admin_listen != old.server.admin_listen {
                    tracing::warn!("listen addresses changed in the config; they take effect at the next restart");
                }
                for w in &snap.warnings {
                    tracing::warn!(warning = %w, "config");
                }
                let digest = snap.digest.clone();
                self.versions.store(version, Ordering::Relaxed);
                self.current.store(Arc::new(snap));
                tracing::info!(version, %digest, trigger, "config reloaded");
                self.shared.audit.record(
                    actor,
                    "config.reload",
                    &format!("version {version}"),
                    &format!("ok ({trigger})"),
                );
                Ok(Outcome::Applied { version, digest })
            }
            Err(e) => {
                self.shared.audit.record(
                    actor,
                    "config.reload",
                    "-",
                    &format!("refused ({trigger}): {} error(s)", e.diags.len()),
                );
                tracing::error!(trigger, errors = %e, "config reload rejected; the previous config keeps serving");
                Err(e)
            }
        }
    }

    /// Reloads on SIGHUP and, for file sources with `watch`, when the file
    /// changes. The tasks end when the process does.
    pub fn spawn_watchers(self: &Arc<Self>, watch: bool) {
        #[cfg(unix)]
        {
            let live = self.clone();
            crate::task::spawn("config-sighup", async move {
                use tokio::signal::unix::{SignalKind, signal};
                let Ok(mut hup) = signal(SignalKind::hangup()) else {
                    tracing::warn!("cannot listen for SIGHUP; reload through the admin API instead");
                    return;
                };
                while hup.recv().await.is_some() {
                    let live = live.clone();
                    let _ = tokio::task::spawn_blocking(move || live.reload("sighup", false)).await;
                }
            });
        }
        if let (Source::File(path), true) = (&self.source, watch)
            && let Err(e) = watch_file(self.clone(), path)
        {
            tracing::warn!(error = %e, "cannot watch the config file; reload with SIGHUP or the admin API");
        }
    }
}

/// With `skip_empty`, an empty file loads as `None`: a
/// watcher that wakes on a write (`open(O_TRUNC)` then `write`) can read the
/// file in between, and an empty config is valid — it would drop every key
/// until the next event.
fn load(source: &Source, version: u64, shared: &Shared, skip_empty: bool) -> Result<Option<Snapshot>, ConfigErrors> {
    match source {
        Source::File(p) if skip_empty => {
            let origin = p.display().to_string();
            match std::fs::read_to_string(p) {
                Ok(text) if text.trim().is_empty() => Ok(None),
                Ok(text) => load_text(&text, &origin, version, shared, env_properties()).map(Some),
                Err(_) => load_path(p, version, shared).map(Some),
            }
        }
        Source::File(p) => load_path(p, version, shared).map(Some),
        Source::Text { text, origin, props } => {
            let mut all = env_properties();
            all.extend(props.iter().map(|(k, v)| (k.clone(), v.clone())));
            load_text(text, origin, version, shared, all).map(Some)
        }
    }
}

/// Watches the file's directory (editors often replace a file by renaming a
/// new one over it, which a watch on the file itself would miss) and
/// reloads after a change settles.
fn watch_file(live: Arc<Live>, path: &Path) -> std::io::Result<()> {
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let dir = abs.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."));
    let name = abs.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(1);
    let keep_alive = watch_dir(&dir, name, tx)?;
    crate::task::spawn("config-watch", async move {
        let _keep_alive = keep_alive;
        while rx.recv().await.is_some() {
            // Let a burst of writes settle before reading the file.
            tokio::time::sleep(Duration::from_millis(100)).await;
            while rx.try_recv().is_ok() {}
            let live = live.clone();
            let _ = tokio::task::spawn_blocking(move || live.reload_inner("-", "file change", true, true)).await;
        }
    });
    Ok(())
}

/// On Linux, inotify with only the events that finish a change: a write
/// closed, a file renamed or created in the directory. Not "modified":
/// the directory often also holds the SQLite store, whose every write
/// would otherwise wake the watcher (measured at about 8% of the gateway's
/// CPU with the request log on). `..data` is the symlink Kubernetes swaps
/// when a mounted ConfigMap changes. The events are read by a task, so the
/// inotify instance closes with the runtime.
#[cfg(target_os = "linux")]
fn watch_dir(
    dir: &Path,
    name: std::ffi::OsString,
    tx: tokio::sync::mpsc::Sender<()>,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    use futures_util::StreamExt;
    use inotify::{Inotify, WatchMask};
    let ino = Inotify::init()?;
    ino.watches().add(dir, WatchMask::CLOSE_WRITE | WatchMask::MOVED_TO | WatchMask::CREATE)?;
    let mut events = ino.into_event_stream(vec![0u8; 4096])?;
    Ok(crate::task::spawn("config-watch-events", async move {
        while let Some(ev) = events.next().await {
            match ev {
                Ok(ev) => {
                    if ev.name.is_some_and(|n| n == name || n == "..data") {
                        let _ = tx.try_send(());
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "the config file is no longer watched; reload with SIGHUP or the admin API");
                    return;
                }
            }
        }
    }))
}

#[cfg(not(target_os = "linux"))]
fn watch_dir(dir: &Path, name: std::ffi::OsString, tx: tokio::sync::mpsc::Sender<()>) -> std::io::Result<notify::RecommendedWatcher> {
    use notify::{RecursiveMode, Watcher};
    let mut watcher = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
        if let Ok(ev) = ev
            && !ev.kind.is_access()
            && ev.paths.iter().any(|p| p.file_name() == Some(name.as_os_str()))
        {
            let _ = tx.try_send(());
        }
    })
    .map_err(std::io::Error::other)?;
    watcher.watch(dir, RecursiveMode::NonRecursive).map_err(std::io::Error::other)?;
    Ok(watcher)
}
