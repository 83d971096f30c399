//! Crash-safe file writes: the one way litewarden creates a final file.
//!
//! Owns the temp → fsync → rename → fsync-directory sequence (as Litestream's
//! `WriteLTXFile`). A [`PendingFile`] is a uniquely named, mode 0600 temp
//! file next to its target; dropping it without [`PendingFile::commit`]
//! deletes it, so an error at any step leaves no partial file. A crash
//! (kill -9) can leave a hidden temp file behind; [`remove_stale_temps`]
//! removes those, and nothing lists them meanwhile.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use tempfile::NamedTempFile;

/// Prefix of every temp file; listings skip names starting with it.
pub const TEMP_PREFIX: &str = ".lw-tmp-";

/// A temp file that becomes `target` on commit.
#[derive(Debug)]
pub struct PendingFile {
    temp: NamedTempFile,
    target: PathBuf,
}

impl PendingFile {
    /// Creates an empty temp file (mode 0600) in `target`'s directory.
    pub fn create(target: &Path) -> io::Result<Self> {
        let dir = parent(target);
        let temp = tempfile::Builder::new()
            .prefix(TEMP_PREFIX)
            .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .tempfile_in(dir)?;
        Ok(Self {
            temp,
            target: target.to_path_buf(),
        })
    }

    /// The temp file's path (for tools such as SQLite that open by name).
    pub fn path(&self) -> &Path {
        self.temp.path()
    }

    /// The open temp file.
    pub fn file(&self) -> &File {
        self.temp.as_file()
    }

    /// The final path.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// fsyncs the file, renames it to the target (never replacing an
    /// existing file) and fsyncs the directory.
    pub fn commit(self) -> io::Result<PathBuf> {
        self.temp.as_file().sync_all()?;
        self.temp
            .persist_noclobber(&self.target)
            .map_err(|e| e.error)?;
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
        self.temp.as_file().sync_all()?;
        self.temp.persist(&self.target).map_err(|e| e.error)?;
        sync_dir(parent(&self.target))?;
        Ok(self.target)
    }
}

fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

/// fsyncs a directory so a rename or unlink in it is durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Creates `dir` and its parents with mode 0700 when missing.
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// Removes temp files in `dir` untouched for longer than `age` at `now`
/// (file-system time, as the files' mtimes are): leftovers of a process
/// that was killed. Returns how many were removed.
pub fn remove_stale_temps(dir: &Path, age: Duration, now: SystemTime) -> io::Result<usize> {
    remove_temps_where(dir, |modified| {
        now.duration_since(modified).unwrap_or_default() > age
    })
}

/// Removes every temp file in `dir`: the caller knows no write into it is
/// under way (the daemon aborting its own backups at exit). Returns how
/// many were removed.
pub fn remove_all_temps(dir: &Path) -> io::Result<usize> {
    remove_temps_where(dir, |_| true)
}

fn remove_temps_where(dir: &Path, remove: impl Fn(SystemTime) -> bool) -> io::Result<usize> {
    let mut removed = 0;
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        if !entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
            continue;
        }
        if remove(entry.metadata()?.modified()?) {
            std::fs::remove_file(entry.path())?;
            removed += 1;
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
    fn stale_temps_are_removed_and_fresh_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(format!("{TEMP_PREFIX}old")), b"x").unwrap();
        std::fs::write(dir.path().join("keep.db"), b"x").unwrap();
        let now = SystemTime::now();
        assert_eq!(
            remove_stale_temps(dir.path(), Duration::from_secs(3600), now).unwrap(),
            0
        );
        let later = now + Duration::from_secs(7200);
        assert_eq!(
            remove_stale_temps(dir.path(), Duration::from_secs(3600), later).unwrap(),
            1
        );
        assert!(dir.path().join("keep.db").exists());
    }

    #[test]
    fn remove_all_temps_takes_even_a_fresh_temp_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(format!("{TEMP_PREFIX}fresh")), b"x").unwrap();
        std::fs::write(dir.path().join("keep.db"), b"x").unwrap();
        assert_eq!(remove_all_temps(dir.path()).unwrap(), 1);
        assert!(dir.path().join("keep.db").exists());
        assert_eq!(remove_all_temps(&dir.path().join("missing")).unwrap(), 0);
    }
}
