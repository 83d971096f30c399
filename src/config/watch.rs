//! Watching `jobs.yaml` and the migrations directories for changes.
//!
//! Owns the file-system watcher. It watches directories, not files: editors
//! save by writing a new file and renaming it over the old one, and
//! Kubernetes swaps a `..data` symlink, so a watch on the file itself would
//! go stale. Events are debounced (~300 ms) and become one call of the
//! caller's callback each (the daemon turns it into an event); the reconciler decides
//! whether anything really changed (it compares a content hash).
//!
//! A `jobs.yaml` that is a symbolic link to a file elsewhere (a git
//! checkout, `/etc`) is edited at its target, so the target's directory is
//! watched too; the daemon restarts the watcher when the link is pointed
//! elsewhere ([`Watcher::is_for`] compares the resolved target).

use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::RecursiveMode;
use notify_debouncer_full::{DebounceEventResult, Debouncer, RecommendedCache, new_debouncer};

/// How long events must be quiet before a change is reported.
pub const DEBOUNCE: Duration = Duration::from_millis(300);

/// A running watcher; dropping it stops watching.
pub struct Watcher {
    _debouncer: Debouncer<notify::RecommendedWatcher, RecommendedCache>,
    watched: Vec<PathBuf>,
    config_target: Option<PathBuf>,
}

impl Watcher {
    /// Watches the directory of `config` and every directory in `dirs`;
    /// `changed` is called once per debounced batch of relevant changes.
    pub fn start(
        config: &Path,
        dirs: &[PathBuf],
        changed: impl Fn() + Send + 'static,
    ) -> Result<Self, notify::Error> {
        let config_target = resolved_target(config);
        let relevant = Relevance::new(config, config_target.clone(), dirs);
        let mut debouncer = new_debouncer(DEBOUNCE, None, move |result: DebounceEventResult| {
            match result {
                Ok(changes) => {
                    if changes.iter().any(|change| relevant.wakes(change)) {
                        changed();
                    }
                }
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
            config_target,
        })
    }

    /// Whether this watcher watches what [`Watcher::start`] would watch for
    /// `config` and `dirs` now (same directories, same link target).
    pub fn is_for(&self, config: &Path, dirs: &[PathBuf]) -> bool {
        self.watched == watched_dirs(config, dirs) && self.config_target == resolved_target(config)
    }
}

/// Where `config` leads when it is a symbolic link (`None` when it is not
/// one or cannot be resolved).
fn resolved_target(config: &Path) -> Option<PathBuf> {
    let is_link = std::fs::symlink_metadata(config).is_ok_and(|m| m.file_type().is_symlink());
    is_link
        .then(|| std::fs::canonicalize(config).ok())
        .flatten()
}

/// The directories to watch: the config file's own, its link target's
/// (when it is a link) and each existing directory of `dirs`, without
/// repeats.
pub fn watched_dirs(config: &Path, dirs: &[PathBuf]) -> Vec<PathBuf> {
    let config_dir = match config.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let target_dir = resolved_target(config).and_then(|t| t.parent().map(Path::to_path_buf));
    let mut watched: Vec<PathBuf> = Vec::new();
    for dir in std::iter::once(config_dir)
        .chain(target_dir)
        .chain(dirs.iter().cloned())
    {
        if dir.is_dir() && !watched.contains(&dir) {
            watched.push(dir);
        }
    }
    watched
}

/// Which changed paths matter: the config file (or the `..data` link it may
/// go through) and `.sql` files in the migrations directories. Database
/// files often live beside `jobs.yaml`, and their writes must not wake the
/// daemon.
struct Relevance {
    config_name: Option<std::ffi::OsString>,
    config_target: Option<PathBuf>,
    migration_dirs: Vec<PathBuf>,
}

impl Relevance {
    fn new(config: &Path, config_target: Option<PathBuf>, dirs: &[PathBuf]) -> Self {
        Self {
            config_name: config.file_name().map(|n| n.to_os_string()),
            config_target,
            migration_dirs: dirs
                .iter()
                .map(|d| std::path::absolute(d).unwrap_or_else(|_| d.clone()))
                .collect(),
        }
    }

    /// Whether `event` should wake the daemon: a change (not a mere read:
    /// the daemon reading `jobs.yaml` must not wake itself) to a path that
    /// matters.
    fn wakes(&self, event: &notify::Event) -> bool {
        !matches!(event.kind, notify::EventKind::Access(_))
            && event.paths.iter().any(|path| self.matters(path))
    }

    fn matters(&self, path: &Path) -> bool {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if path.file_name() == self.config_name.as_deref() || name.starts_with("..") {
            return true;
        }
        if self.config_target.as_deref() == Some(path) {
            return true;
        }
        let parent = path
            .parent()
            .map(|p| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf()));
        name.ends_with(".sql") && parent.is_some_and(|parent| self.migration_dirs.contains(&parent))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_config_its_data_link_and_migration_files_matter() {
        let relevance = Relevance::new(
            Path::new("/etc/lw/jobs.yaml"),
            Some(PathBuf::from("/srv/git/ops/litewarden.yaml")),
            &[PathBuf::from("/etc/lw/migrations/app")],
        );
        assert!(relevance.matters(Path::new("/srv/git/ops/litewarden.yaml")));
        assert!(!relevance.matters(Path::new("/srv/git/ops/other.yaml")));
        assert!(relevance.matters(Path::new("/etc/lw/jobs.yaml")));
        assert!(relevance.matters(Path::new("/etc/lw/..data")));
        assert!(relevance.matters(Path::new("/etc/lw/migrations/app/0002_x.sql")));
        assert!(!relevance.matters(Path::new("/etc/lw/app.db-wal")));
        assert!(!relevance.matters(Path::new("/etc/lw/jobs.yaml.swp")));
        assert!(!relevance.matters(Path::new("/etc/lw/migrations/app/README.md")));
    }

    #[test]
    fn reading_the_config_does_not_wake_the_daemon() {
        let relevance = Relevance::new(Path::new("/etc/lw/jobs.yaml"), None, &[]);
        let event = |kind| notify::Event::new(kind).add_path(PathBuf::from("/etc/lw/jobs.yaml"));
        assert!(!relevance.wakes(&event(notify::EventKind::Access(
            notify::event::AccessKind::Close(notify::event::AccessMode::Read)
        ))));
        assert!(relevance.wakes(&event(notify::EventKind::Modify(
            notify::event::ModifyKind::Any
        ))));
        assert!(relevance.wakes(&event(notify::EventKind::Create(
            notify::event::CreateKind::File
        ))));
    }
}
