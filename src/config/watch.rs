//! Watching `jobs.yaml` and the migrations directories for changes.
//!
//! Owns the file-system watcher. It watches directories, not files: editors
//! save by writing a new file and renaming it over the old one, and
//! Kubernetes swaps a `..data` symlink, so a watch on the file itself would
//! go stale. Events are debounced (~300 ms) and become one
//! [`crate::reconcile::Event::FilesChanged`] each; the reconciler decides
//! whether anything really changed (it compares a content hash).

use std::path::{Path, PathBuf};
use std::sync::mpsc::Sender;
use std::time::Duration;

use notify::RecursiveMode;
use notify_debouncer_full::{DebounceEventResult, Debouncer, RecommendedCache, new_debouncer};

use crate::reconcile::Event;

/// How long events must be quiet before a change is reported.
pub const DEBOUNCE: Duration = Duration::from_millis(300);

/// A running watcher; dropping it stops watching.
pub struct Watcher {
    _debouncer: Debouncer<notify::RecommendedWatcher, RecommendedCache>,
    watched: Vec<PathBuf>,
}

impl Watcher {
    /// Watches the directory of `config` and every directory in `dirs`.
    pub fn start(
        config: &Path,
        dirs: &[PathBuf],
        events: Sender<Event>,
    ) -> Result<Self, notify::Error> {
        let mut debouncer = new_debouncer(DEBOUNCE, None, move |result: DebounceEventResult| {
            match result {
                Ok(changes) if !changes.is_empty() => {
                    let _ = events.send(Event::FilesChanged);
                }
                Ok(_) => {}
                Err(errors) => {
                    for error in errors {
                        tracing::warn!(error = %error, "file watcher error; the periodic re-read still catches changes");
                    }
                }
            }
        })?;
        let watched = watched_dirs(config, dirs);
        for dir in &watched {
            debouncer.watch(dir, RecursiveMode::NonRecursive)?;
        }
        Ok(Self {
            _debouncer: debouncer,
            watched,
        })
    }

    /// The directories being watched.
    pub fn watched(&self) -> &[PathBuf] {
        &self.watched
    }
}

/// The directories to watch: the config file's own and each existing
/// directory of `dirs`, without repeats.
pub fn watched_dirs(config: &Path, dirs: &[PathBuf]) -> Vec<PathBuf> {
    let config_dir = match config.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut watched: Vec<PathBuf> = Vec::new();
    for dir in std::iter::once(config_dir).chain(dirs.iter().cloned()) {
        if dir.is_dir() && !watched.contains(&dir) {
            watched.push(dir);
        }
    }
    watched
}
