//! Noticing and surviving a broken state database.
//!
//! state.db is a cache: the backup catalog is rebuilt from the manifests in
//! the backup directory, each database's identity from the newest backup's
//! manifest. So a damaged file (garbage, truncated, a failed `quick_check`)
//! is never a reason to stop backing up: [`StateDb::open`] keeps it aside as
//! `state.db.damaged-N` (never deleted; the operator may want it) and starts
//! a new one. A long-lived holder (the daemon, a database's worker) asks
//! [`StateDb::is_intact`] before it relies on its connection, so a file
//! deleted, replaced or overwritten under it is recreated at once.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::{StateDb, StateError, sqlite};

/// The first 16 bytes of every SQLite database.
const MAGIC: &[u8; 16] = b"SQLite format 3\0";

/// Whether `error` says the file itself is damaged (as opposed to busy,
/// unwritable or too new).
pub(super) fn is_damage(error: &StateError) -> bool {
    match error {
        StateError::Damaged { .. } => true,
        StateError::Sqlite { source, .. } => matches!(
            source.sqlite_error_code(),
            Some(rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase)
        ),
        _ => false,
    }
}

/// Whether SQLite refused because another connection holds a lock.
pub(super) fn is_busy(error: &rusqlite::Error) -> bool {
    matches!(
        error.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

/// Refuses a file that is neither empty (a new database, or one whose
/// pages are all still in its WAL) nor starts with SQLite's header. Read
/// through SQLite's handle ([`crate::db::file`]): this runs every second
/// beside the daemon's own open connections, whose locks a descriptor of
/// our own would drop when closed. A file that cannot be opened is left to
/// SQLite to report.
pub(super) fn check_header(path: &Path) -> Result<(), StateError> {
    let damaged = |detail: &str| StateError::Damaged {
        path: path.to_path_buf(),
        detail: detail.to_string(),
    };
    let mut header = [0u8; 16];
    match crate::db::file::read_start(path, &mut header) {
        Ok(None | Some(0)) => Ok(()),
        Ok(Some(size)) if size < 16 => Err(damaged("truncated")),
        Ok(Some(_)) if &header == MAGIC => Ok(()),
        Ok(Some(_)) => Err(damaged("not a SQLite database")),
        Err(_) => Ok(()),
    }
}

/// The (device, inode) of `path`, `None` when it cannot be read.
pub(super) fn file_id(path: &Path) -> Option<(u64, u64)> {
    std::fs::symlink_metadata(path)
        .ok()
        .map(|m| (m.dev(), m.ino()))
}

/// Renames `path` (with its `-wal` and `-shm`) to the first free
/// `<name>.damaged-N`; returns the new name of the main file.
pub(super) fn move_aside(path: &Path) -> std::io::Result<PathBuf> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let kept = (1..)
        .map(|n| path.with_file_name(format!("{name}.damaged-{n}")))
        .find(|candidate| std::fs::symlink_metadata(candidate).is_err())
        .unwrap_or_else(|| path.with_file_name(format!("{name}.damaged")));
    std::fs::rename(path, &kept)?;
    for suffix in ["-wal", "-shm"] {
        let side = path.with_file_name(format!("{name}{suffix}"));
        if side.exists() {
            let kept_side = kept.with_file_name(format!(
                "{}{suffix}",
                kept.file_name().unwrap_or_default().to_string_lossy()
            ));
            std::fs::rename(&side, kept_side)?;
        }
    }
    if let Some(dir) = path.parent() {
        crate::durable::sync_dir(dir)?;
    }
    Ok(kept)
}

impl StateDb {
    /// `PRAGMA quick_check` of the whole file (a state database is small).
    pub(super) fn quick_check(&self) -> Result<(), StateError> {
        let verdict: String = self
            .conn
            .query_row("PRAGMA quick_check(1)", [], |row| row.get(0))
            .map_err(sqlite(&self.path, "cannot check"))?;
        if verdict == "ok" {
            Ok(())
        } else {
            Err(StateError::Damaged {
                path: self.path.clone(),
                detail: verdict,
            })
        }
    }

    /// Whether the file this connection opened is still at its path and
    /// still starts like a SQLite database. `false` after it was deleted,
    /// replaced or overwritten: reopen with [`StateDb::open`].
    pub fn is_intact(&self) -> bool {
        self.file_id.is_some()
            && file_id(&self.path) == self.file_id
            && check_header(&self.path).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_garbage_state_database_is_kept_aside_and_a_new_one_opened() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        std::fs::write(&path, vec![0x5a; 8192]).unwrap();
        let state = StateDb::open(dir.path()).unwrap();
        assert!(state.is_intact());
        assert_eq!(
            std::fs::read(dir.path().join("state.db.damaged-1")).unwrap(),
            vec![0x5a; 8192]
        );
    }

    #[test]
    fn a_truncated_state_database_is_kept_aside_too() {
        let dir = tempfile::tempdir().unwrap();
        drop(StateDb::open(dir.path()).unwrap());
        let path = dir.path().join("state.db");
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len().min(10)]).unwrap();
        StateDb::open(dir.path()).unwrap();
        assert!(dir.path().join("state.db.damaged-1").exists());
    }

    #[test]
    fn a_deleted_or_replaced_file_is_no_longer_intact() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDb::open(dir.path()).unwrap();
        assert!(state.is_intact());
        std::fs::remove_file(dir.path().join("state.db")).unwrap();
        assert!(!state.is_intact());
        let again = StateDb::open(dir.path()).unwrap();
        std::fs::write(dir.path().join("state.db"), b"garbage garbage garbage").unwrap();
        assert!(!again.is_intact());
    }
}
