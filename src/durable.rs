//! Crash-safe file writes: the one way litewarden creates a final file.
//!
//! Owns the temp → fsync → rename → fsync-directory sequence (as Litestream's
//! `WriteLTXFile`) and what a crash may leave of it. A [`PendingFile`] is a
//! mode 0600 temp file in its target's directory; dropping it without a
//! commit deletes it, so an error at any step leaves no partial file.
//!
//! On Linux a pending file is anonymous (`O_TMPFILE`): it has no name until
//! [`PendingFile::commit`] links it into place, so a killed process (SIGKILL,
//! the OOM killer, a crash loop) leaves nothing at all. Where the file system
//! cannot (or a caller such as SQLite must open the temp by a name that can
//! take side files, [`PendingFile::create_named`]), the temp is a hidden
//! `.lw-tmp-*` file. Every pending file holds an exclusive `flock` for its
//! whole life, so a named temp that nobody holds locked belongs to a dead
//! process: [`remove_unlocked_temps`] removes all of those at once, and never
//! one that a live process (another CLI run, the daemon) is still writing.
//!
//! SQLite resolves the `/proc/self/fd` link of an anonymous file to a name
//! that no longer exists, so every temp that SQLite opens is named. The named
//! temps of this process are listed in one process-wide set, so that a
//! command interrupted by a signal removes them before it exits
//! ([`exit_removing_temps`]): a signal is delivered to the process, not to
//! the code that owns a file, and this set is the one piece of process
//! state.

use std::collections::BTreeSet;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rustix::fs::{AtFlags, CWD, FlockOperation, Mode, OFlags};
use tempfile::TempPath;

/// Prefix of every temp file; listings skip names starting with it.
pub const TEMP_PREFIX: &str = ".lw-tmp-";

/// A temp file that becomes `target` on commit.
#[derive(Debug)]
pub struct PendingFile {
    file: File,
    temp: Temp,
    target: PathBuf,
}

#[derive(Debug)]
enum Temp {
    /// `O_TMPFILE`: no name; readable by others in this process through
    /// `/proc/self/fd/N`.
    Anonymous { by_fd: PathBuf },
    /// A hidden named file, removed when dropped.
    Named(TempPath, Registered),
}

/// The named temps of this process that are not yet committed or dropped.
static OWN_TEMPS: Mutex<BTreeSet<PathBuf>> = Mutex::new(BTreeSet::new());

/// A path listed in [`OWN_TEMPS`] until this is dropped.
#[derive(Debug)]
struct Registered(PathBuf);

impl Registered {
    /// Lists `path` in `temps` (the locked [`OWN_TEMPS`]).
    fn listed_in(temps: &mut BTreeSet<PathBuf>, path: &Path) -> Self {
        temps.insert(path.to_path_buf());
        Registered(path.to_path_buf())
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        own_temps().remove(&self.0);
    }
}

fn own_temps() -> std::sync::MutexGuard<'static, BTreeSet<PathBuf>> {
    OWN_TEMPS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Removes the named temp files this process is still writing (the
/// daemon, when its shutdown grace is over). Returns how many were removed.
pub fn remove_own_temps() -> usize {
    remove_listed(&own_temps())
}

/// For a command interrupted by a signal: removes the named temp files this
/// process is still writing, says how many (`say`), and exits with `code`
/// while still holding the set. A temp is created and listed, and an
/// anonymous one named and renamed into place, while holding the set too,
/// so another thread is either done (and its temp listed, so removed here)
/// or waits until the process is gone: nothing is left behind between two
/// system calls.
pub fn exit_removing_temps(code: i32, say: impl FnOnce(usize)) -> ! {
    let temps = own_temps();
    say(remove_listed(&temps));
    std::process::exit(code)
}

fn remove_listed(temps: &BTreeSet<PathBuf>) -> usize {
    for path in temps.iter() {
        for suffix in SIDE_FILES {
            let mut side = path.as_os_str().to_os_string();
            side.push(suffix);
            let _ = std::fs::remove_file(side);
        }
    }
    temps
        .iter()
        .filter(|path| std::fs::remove_file(path).is_ok())
        .count()
}

/// Files SQLite may create beside a temp it opens.
const SIDE_FILES: [&str; 3] = ["-journal", "-wal", "-shm"];

impl PendingFile {
    /// Creates an empty temp file (mode 0600) for `target`, in its
    /// directory: anonymous where the file system allows it, else named.
    /// Its [`path`](Self::path) can be opened for reading (SQLite read-only
    /// included), not by a writer that creates side files next to it.
    pub fn create(target: &Path) -> io::Result<Self> {
        match anonymous(parent(target)) {
            Some((file, by_fd)) => {
                lock(&file)?;
                Ok(Self {
                    file,
                    temp: Temp::Anonymous { by_fd },
                    target: target.to_path_buf(),
                })
            }
            None => Self::create_named(target),
        }
    }

    /// Creates an empty, named temp file (mode 0600) in `target`'s
    /// directory, for a writer that opens it by name and may create side
    /// files beside it (SQLite's backup API, `VACUUM INTO`).
    pub fn create_named(target: &Path) -> io::Result<Self> {
        let mut temps = own_temps();
        let (file, path) = named_and_locked(parent(target))?;
        let registered = Registered::listed_in(&mut temps, &path);
        drop(temps);
        Ok(Self {
            file,
            temp: Temp::Named(path, registered),
            target: target.to_path_buf(),
        })
    }

    /// A path that opens the temp file (for tools such as SQLite that open
    /// by name).
    pub fn path(&self) -> &Path {
        match &self.temp {
            Temp::Anonymous { by_fd } => by_fd,
            Temp::Named(path, _) => path,
        }
    }

    /// The open temp file.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// The final path.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// fsyncs the file, moves it to the target (never replacing an
    /// existing file) and fsyncs the directory.
    pub fn commit(self) -> io::Result<PathBuf> {
        self.file.sync_all()?;
        match self.temp {
            Temp::Anonymous { by_fd } => link(&by_fd, &self.target)?,
            Temp::Named(path, _registered) => {
                path.persist_noclobber(&self.target).map_err(|e| e.error)?
            }
        }
        sync_dir(parent(&self.target))?;
        Ok(self.target)
    }

    /// Like [`PendingFile::commit`], to another target in the same
    /// directory.
    pub fn commit_to(mut self, target: &Path) -> io::Result<PathBuf> {
        self.target = target.to_path_buf();
        self.commit()
    }

    /// fsyncs the file and renames it over the target, replacing it
    /// atomically, then fsyncs the directory.
    pub fn commit_replacing(self) -> io::Result<PathBuf> {
        self.file.sync_all()?;
        match self.temp {
            Temp::Anonymous { by_fd } => {
                // Named only from the link to the rename, with the set held
                // so that a signal's exit cannot fall in between.
                let _no_exit_meanwhile = own_temps();
                tempfile::Builder::new()
                    .prefix(TEMP_PREFIX)
                    .make_in(parent(&self.target), |name| link(&by_fd, name))?
                    .into_temp_path()
                    .persist(&self.target)
                    .map_err(|e| e.error)?;
            }
            Temp::Named(path, _registered) => {
                path.persist(&self.target).map_err(|e| e.error)?;
            }
        }
        sync_dir(parent(&self.target))?;
        Ok(self.target)
    }
}

/// A new named temp in `dir`, locked. Creating and locking are two system
/// calls: a sweeper ([`remove_unlocked_temps`]) that locks the file between
/// them removes it, and then this takes another name.
fn named_and_locked(dir: &Path) -> io::Result<(File, TempPath)> {
    locked_temp(dir, "")
}

/// A new named temp in `dir` whose name ends in `suffix` (so a reader
/// that goes by the extension, `.zst`, reads it right), locked while the
/// returned file is open: a killed process's temp is swept by
/// [`remove_unlocked_temps`], a live one's is not. Removed when the path
/// is dropped.
pub fn locked_temp(dir: &Path, suffix: &str) -> io::Result<(File, TempPath)> {
    let mut attempts = 0;
    loop {
        let (file, path) = tempfile::Builder::new()
            .prefix(TEMP_PREFIX)
            .suffix(suffix)
            .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .tempfile_in(dir)?
            .into_parts();
        match lock(&file) {
            Ok(()) => return Ok((file, path)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && attempts < 8 => {
                let _ = path.keep();
                attempts += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

/// An `O_TMPFILE` file in `dir` and the `/proc/self/fd` path that opens it,
/// or `None` where either is unavailable.
fn anonymous(dir: &Path) -> Option<(File, PathBuf)> {
    let fd = rustix::fs::openat(
        CWD,
        dir,
        OFlags::TMPFILE | OFlags::RDWR | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )
    .ok()?;
    let file = File::from(fd);
    let by_fd = PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()));
    std::fs::metadata(&by_fd).ok()?;
    Some((file, by_fd))
}

/// Gives the anonymous file behind `by_fd` the name `target` (fails with
/// `AlreadyExists` when the name is taken).
fn link(by_fd: &Path, target: &Path) -> io::Result<()> {
    rustix::fs::linkat(CWD, by_fd, CWD, target, AtFlags::SYMLINK_FOLLOW)?;
    Ok(())
}

fn lock(file: &File) -> io::Result<()> {
    rustix::fs::flock(file, FlockOperation::NonBlockingLockExclusive)?;
    Ok(())
}

/// `path` as a person should read it in a message: an anonymous temp file
/// (`/proc/self/fd/N`) is named by the file it stands for in its directory
/// (`/backups/app/#1234`, without the kernel's ` (deleted)`).
pub fn shown(path: &Path) -> PathBuf {
    if path.starts_with("/proc/self/fd")
        && let Ok(target) = std::fs::read_link(path)
    {
        let text = target.to_string_lossy();
        return PathBuf::from(text.strip_suffix(" (deleted)").unwrap_or(&text));
    }
    path.to_path_buf()
}

/// The directory holding `path` (`.` for a bare file name).
pub fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

/// fsyncs a directory so a rename or unlink in it is durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Opens (creating, mode 0600) a lock file of litewarden's own: never
/// through a symbolic link (a dangling one would make litewarden create
/// its target), and narrowed to 0600 when an older version left it
/// readable by others (anyone who can open a lock file can `flock` it and
/// block every run).
pub fn open_lock_file(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags((OFlags::NOFOLLOW | OFlags::CLOEXEC).bits() as i32)
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) {
                io::Error::other(
                    "a symbolic link where litewarden keeps a lock file; remove it (lock files are never links)",
                )
            } else {
                e
            }
        })?;
    let metadata = file.metadata()?;
    if !metadata.is_file() {
        return Err(io::Error::other("not a regular file; remove it"));
    }
    if metadata.permissions().mode() & 0o077 != 0 {
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(file)
}

/// Creates `dir` and its parents with mode 0700 when missing.
///
/// The mode is given explicitly, so a umask of 000 still gives 0700; a
/// directory that already exists keeps its mode (it is the operator's).
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// Removes every temp file in `dir` that no process holds locked: the
/// leftovers of processes that were killed. A temp that a live process is
/// writing (this one included) is kept, and so are SQLite's side files of a
/// temp that still exists. Returns how many were removed.
pub fn remove_unlocked_temps(dir: &Path) -> io::Result<usize> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut removed = 0;
    for entry in entries {
        let entry = entry?;
        if !entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
            continue;
        }
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        let owner = SIDE_FILES
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix))
            .map_or_else(|| path.clone(), |temp| dir.join(temp));
        if owner != path && owner.exists() {
            continue;
        }
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        if rustix::fs::flock(&file, FlockOperation::NonBlockingLockExclusive).is_err() {
            continue;
        }
        match std::fs::remove_file(&path) {
            Ok(()) => removed += 1,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn commit_renames_a_private_file_into_place() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out.db");
        let pending = PendingFile::create(&target).unwrap();
        pending.file().write_all(b"data").unwrap();
        assert_eq!(pending.commit().unwrap(), target);
        assert_eq!(std::fs::read(&target).unwrap(), b"data");
        assert_eq!(
            std::fs::metadata(&target).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn dropping_without_commit_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let pending = PendingFile::create(&dir.path().join("out.db")).unwrap();
        pending.file().write_all(b"partial").unwrap();
        drop(pending);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn commit_never_replaces_an_existing_file() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out.db");
        std::fs::write(&target, b"old").unwrap();
        let pending = PendingFile::create(&target).unwrap();
        assert!(pending.commit().is_err());
        assert_eq!(std::fs::read(&target).unwrap(), b"old");
    }

    #[test]
    fn an_anonymous_temp_has_no_name_until_committed() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out.db");
        let pending = PendingFile::create(&target).unwrap();
        pending.file().write_all(b"data").unwrap();
        assert_eq!(std::fs::read(pending.path()).unwrap(), b"data");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        pending.commit().unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"data");
    }

    #[test]
    fn commit_replacing_swaps_the_content_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out.json");
        std::fs::write(&target, b"old").unwrap();
        let create: [fn(&Path) -> io::Result<PendingFile>; 2] =
            [PendingFile::create, PendingFile::create_named];
        for create in create {
            let pending = create(&target).unwrap();
            pending.file().write_all(b"new").unwrap();
            pending.commit_replacing().unwrap();
            assert_eq!(std::fs::read(&target).unwrap(), b"new");
            assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
            std::fs::write(&target, b"old").unwrap();
        }
    }

    #[test]
    fn only_unlocked_temps_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let dead = dir.path().join(format!("{TEMP_PREFIX}dead"));
        std::fs::write(&dead, b"left by a killed process").unwrap();
        std::fs::write(dir.path().join("keep.db"), b"x").unwrap();
        let live = PendingFile::create_named(&dir.path().join("out.db")).unwrap();
        live.file().write_all(b"being written").unwrap();
        assert_eq!(remove_unlocked_temps(dir.path()).unwrap(), 1);
        assert!(!dead.exists());
        assert!(live.path().exists(), "a temp that is being written stays");
        assert!(dir.path().join("keep.db").exists());
        assert_eq!(
            remove_unlocked_temps(&dir.path().join("missing")).unwrap(),
            0
        );
    }
}
