//! Watching `jobs.yaml` and the migrations directories for changes.
//!
//! Owns the file-system watcher: an inotify instance and its thread. It
//! watches directories, not files: editors save by writing a new file and
//! renaming it over the old one, and Kubernetes swaps a `..data` symlink,
//! so a watch on the file itself would go stale. It asks only for the
//! events a save makes (`SAVES`), never for every write and open, so a
//! database written beside `jobs.yaml` costs it nothing. Events are
//! debounced (~300 ms) and become one call of the caller's callback each
//! (the daemon turns it into an event); the reconciler decides whether
//! anything really changed (it compares a content hash).
//!
//! A `jobs.yaml` that is a symbolic link to a file elsewhere (a git
//! checkout, `/etc`) is edited at its target, so the target's directory is
//! watched too; the daemon restarts the watcher when the link is pointed
//! elsewhere ([`Watcher::is_for`] compares the resolved target).

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use inotify::{EventMask, Inotify, WatchDescriptor, WatchMask};

/// How long events must be quiet before a change is reported.
pub const DEBOUNCE: Duration = Duration::from_millis(300);

/// How often the watcher thread looks at its queue (and whether to stop).
const LOOK_EVERY: Duration = Duration::from_millis(50);

/// The events a save makes: a file closed after writing, renamed in or
/// out, created, removed, its attributes changed (a `touch`, the link of a
/// `..data` swap). Not `MODIFY` or `OPEN`: a database beside `jobs.yaml`
/// writes its `-wal` hundreds of times a second, and each of those woke
/// a watcher that asked for every event (notify's fixed mask did).
const SAVES: WatchMask = WatchMask::CLOSE_WRITE
    .union(WatchMask::MOVED_TO)
    .union(WatchMask::MOVED_FROM)
    .union(WatchMask::CREATE)
    .union(WatchMask::DELETE)
    .union(WatchMask::ATTRIB);

/// A running watcher; dropping it stops watching.
pub struct Watcher {
    stop: Arc<AtomicBool>,
    watched: Vec<PathBuf>,
    config_target: Option<PathBuf>,
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}

impl Watcher {
    /// Watches the directory of `config` and every directory in `dirs`;
    /// `changed` is called once per debounced batch of relevant changes.
    pub fn start(
        config: &Path,
        dirs: &[PathBuf],
        changed: impl Fn() + Send + 'static,
    ) -> io::Result<Self> {
        let config_target = resolved_target(config);
        let relevant = Relevance::new(config, config_target.clone(), dirs);
        let inotify = Inotify::init()?;
        let watched = watched_dirs(config, dirs);
        let mut dirs_by_watch = HashMap::new();
        for dir in &watched {
            let watch = inotify.watches().add(dir, SAVES)?;
            dirs_by_watch.insert(watch, dir.clone());
        }
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        std::thread::Builder::new()
            .name("config-watch".into())
            .spawn(move || watch(inotify, &dirs_by_watch, &relevant, &stopped, &changed))?;
        Ok(Self {
            stop,
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

/// The watcher thread: reads the queue every [`LOOK_EVERY`] until `stop`,
/// calls `changed` once relevant events have been quiet for [`DEBOUNCE`].
/// A full queue (events lost) counts as a change.
fn watch(
    mut inotify: Inotify,
    dirs_by_watch: &HashMap<WatchDescriptor, PathBuf>,
    relevant: &Relevance,
    stop: &AtomicBool,
    changed: &dyn Fn(),
) {
    let mut buffer = [0u8; 4096];
    let mut last_relevant: Option<Instant> = None;
    while !stop.load(Ordering::Acquire) {
        loop {
            match inotify.read_events(&mut buffer) {
                Ok(events) => {
                    for event in events {
                        let overflow = event.mask.contains(EventMask::Q_OVERFLOW);
                        let path = event
                            .name
                            .zip(dirs_by_watch.get(&event.wd))
                            .map(|(name, dir)| dir.join(name));
                        if overflow || path.is_some_and(|path| relevant.matters(&path)) {
                            last_relevant = Some(Instant::now());
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    tracing::warn!(error = %e, "file watcher error; the periodic re-read still catches changes");
                    return;
                }
            }
        }
        if last_relevant.is_some_and(|at| at.elapsed() >= DEBOUNCE) {
            last_relevant = None;
            changed();
        }
        std::thread::sleep(LOOK_EVERY);
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
    fn reads_opens_and_database_writes_beside_the_config_queue_no_event_and_a_save_does() {
        use std::io::{Read, Write};
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("jobs.yaml");
        std::fs::write(&config, "version: 1\n").unwrap();
        let mut wal = std::fs::File::create(dir.path().join("app.db-wal")).unwrap();
        let mut inotify = Inotify::init().unwrap();
        inotify.watches().add(dir.path(), SAVES).unwrap();
        let mut buffer = [0u8; 4096];
        let queued = |inotify: &mut Inotify, buffer: &mut [u8]| match inotify.read_events(buffer) {
            Ok(events) => events.count(),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
            Err(e) => panic!("{e}"),
        };
        for _ in 0..100 {
            wal.write_all(&[0u8; 4096]).unwrap();
        }
        wal.sync_all().unwrap();
        std::fs::File::open(&config)
            .unwrap()
            .read_to_string(&mut String::new())
            .unwrap();
        assert_eq!(queued(&mut inotify, &mut buffer), 0);
        let saved = dir.path().join(".jobs.yaml.tmp");
        std::fs::write(&saved, "version: 1\n# edited\n").unwrap();
        std::fs::rename(&saved, &config).unwrap();
        assert!(queued(&mut inotify, &mut buffer) > 0);
    }
}
