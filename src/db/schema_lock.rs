//! The schema lock of one database: `<database>.migrate-lock`.
//!
//! Owns that file. Whoever changes a database's schema or rewrites its file
//! (a migration run, a `page_size` or `auto_vacuum` change with VACUUM)
//! holds an exclusive `flock` on it for the whole change, so two such
//! changes never interleave, and the daemon can tell a change in progress
//! (leave it alone) from one that was interrupted (the kernel released the
//! lock with the process: converge at once).

use std::fs::{File, TryLockError};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The lock file of the database at `database`.
pub fn path(database: &Path) -> PathBuf {
    let mut name = database.as_os_str().to_owned();
    name.push(".migrate-lock");
    PathBuf::from(name)
}

/// Takes the lock, waiting up to `timeout` for its holder; `Ok(None)` when
/// it is still held then.
pub fn take(database: &Path, timeout: Duration) -> std::io::Result<Option<File>> {
    let lock = crate::durable::open_lock_file(&path(database))?;
    let deadline = Instant::now() + timeout;
    loop {
        match lock.try_lock() {
            Ok(()) => return Ok(Some(lock)),
            Err(TryLockError::WouldBlock) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20))
            }
            Err(TryLockError::WouldBlock) => return Ok(None),
            Err(TryLockError::Error(e)) => return Err(e),
        }
    }
}

/// Whether a process holds the lock now (a schema change is running).
pub fn is_held(database: &Path) -> bool {
    let Ok(file) = crate::regular::open_io(&path(database)) else {
        return false;
    };
    match file.try_lock_shared() {
        Ok(()) => false,
        Err(TryLockError::WouldBlock) => true,
        Err(TryLockError::Error(_)) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_lock_is_seen_and_not_taken_twice() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("a.db");
        assert!(!is_held(&db));
        let held = take(&db, Duration::ZERO).unwrap().unwrap();
        assert!(is_held(&db));
        assert!(take(&db, Duration::from_millis(50)).unwrap().is_none());
        drop(held);
        assert!(!is_held(&db));
    }
}
