//! One manager per database file: an advisory lock next to the file.
//!
//! Owns `<database>-litewarden.lock`. Like SQLite's own `-shm`, it lives
//! beside the database, so two litewardens with different state
//! directories (two `jobs.yaml`, a copied deployment) see each other. The
//! holder writes its pid and state directory into the file. A process of the
//! same state directory (the operator's `backup` while the daemon runs)
//! cooperates through the state database and proceeds without the lock; a
//! process of another state directory is refused, naming the holder.

use std::fs::{File, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use crate::paths;

/// Why a database could not be locked.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another litewarden, with another state directory, manages the file.
    #[error("database `{database}`: {} is managed by another litewarden ({holder}); stop it, or give both configs the same settings.state_dir", paths::display(.path))]
    Foreign {
        /// The database.
        database: String,
        /// Its file.
        path: PathBuf,
        /// Who holds it (pid, state directory).
        holder: String,
    },
    /// The lock file could not be used.
    #[error("database `{database}`: {}: cannot lock: {source}", paths::display(.path))]
    Io {
        /// The database.
        database: String,
        /// The lock file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// The path of the lock file of the database at `database`.
pub fn lock_path(database: &Path) -> PathBuf {
    let mut name = database.as_os_str().to_os_string();
    name.push("-litewarden.lock");
    PathBuf::from(name)
}

/// A held (or shared) claim on one database file; released on drop.
#[derive(Debug)]
pub enum DatabaseLock {
    /// This process holds the lock.
    Held(File),
    /// A process with the same state directory holds it; this one
    /// cooperates through the state database.
    Shared,
    /// The database's directory does not exist yet: nothing to manage.
    NotYet,
}

impl DatabaseLock {
    /// Claims `path` (database `name`) for a litewarden using `state_dir`.
    pub fn acquire(name: &str, path: &Path, state_dir: &Path) -> Result<Self, LockError> {
        let lock = lock_path(path);
        let io = |source| LockError::Io {
            database: name.to_string(),
            path: lock.clone(),
            source,
        };
        if lock
            .parent()
            .is_some_and(|dir| !dir.as_os_str().is_empty() && !dir.is_dir())
        {
            return Ok(DatabaseLock::NotYet);
        }
        let mut file = crate::durable::open_lock_file(&lock).map_err(io)?;
        let ours = owner(state_dir);
        match file.try_lock() {
            Ok(()) => {
                file.set_len(0).map_err(io)?;
                file.rewind().map_err(io)?;
                file.write_all(format!("{}\n{ours}\n", std::process::id()).as_bytes())
                    .map_err(io)?;
                Ok(DatabaseLock::Held(file))
            }
            Err(TryLockError::WouldBlock) => {
                let text = holder_text(&mut file).map_err(io)?;
                let mut lines = text.lines();
                let pid = lines.next().unwrap_or("?").to_string();
                let theirs = lines.next().unwrap_or_default();
                if theirs == ours {
                    Ok(DatabaseLock::Shared)
                } else {
                    Err(LockError::Foreign {
                        database: name.to_string(),
                        path: path.to_path_buf(),
                        holder: format!("pid {pid}, state dir {theirs}"),
                    })
                }
            }
            Err(TryLockError::Error(source)) => Err(io(source)),
        }
    }

    /// Whether this process holds the lock itself.
    pub fn held(&self) -> bool {
        matches!(self, DatabaseLock::Held(_))
    }
}

/// How a state directory is named in a lock file: its absolute path.
/// What the holder wrote into the lock file. A holder that has just taken
/// the lock may not have written it yet (the two are separate calls): an
/// incomplete text is read again for up to a second.
fn holder_text(file: &mut File) -> std::io::Result<String> {
    let mut text = String::new();
    for _ in 0..100 {
        text.clear();
        file.rewind()?;
        file.read_to_string(&mut text)?;
        if text.ends_with('\n') && text.lines().count() >= 2 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    Ok(text)
}

fn owner(state_dir: &Path) -> String {
    std::fs::canonicalize(state_dir)
        .unwrap_or_else(|_| paths::from_cwd(state_dir))
        .display()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_holder_that_has_not_written_its_name_yet_is_waited_for() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("app.db");
        let state = dir.path().join("a");
        std::fs::create_dir(&state).unwrap();
        let mut holder = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(lock_path(&db))
            .unwrap();
        holder.try_lock().unwrap();
        let text = format!("1\n{}\n", owner(&state));
        let writer = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(50));
            holder.write_all(text.as_bytes()).unwrap();
            holder
        });
        let second = DatabaseLock::acquire("app", &db, &state).unwrap();
        assert!(
            matches!(second, DatabaseLock::Shared),
            "regression: a run started at the same moment was refused as foreign"
        );
        drop(writer.join().unwrap());
    }

    #[test]
    fn a_second_state_dir_is_refused_and_the_same_one_cooperates() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("app.db");
        let first = DatabaseLock::acquire("app", &db, &dir.path().join("a")).unwrap();
        assert!(first.held());
        let same = DatabaseLock::acquire("app", &db, &dir.path().join("a")).unwrap();
        assert!(matches!(same, DatabaseLock::Shared));
        let other = DatabaseLock::acquire("app", &db, &dir.path().join("b")).unwrap_err();
        assert!(
            other
                .to_string()
                .contains("managed by another litewarden (pid "),
            "{other}"
        );
        drop(first);
        assert!(
            DatabaseLock::acquire("app", &db, &dir.path().join("b"))
                .unwrap()
                .held()
        );
    }

    #[test]
    fn a_database_whose_directory_does_not_exist_needs_no_lock() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("missing/app.db");
        let lock = DatabaseLock::acquire("app", &db, dir.path()).unwrap();
        assert!(matches!(lock, DatabaseLock::NotYet));
        assert!(!dir.path().join("missing").exists());
    }
}
