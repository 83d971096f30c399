//! Changing the pragmas stored in a database file, and creating new files.
//!
//! Owns the SQL for each persistent pragma change. Every change is read back
//! and an unchanged value is an error ([`DbError::NotApplied`]): SQLite
//! silently ignores some changes, e.g. `journal_mode` while another process
//! holds the file, or `page_size` in WAL mode.

use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use rusqlite::Connection;

use super::observe::{pragma, read_facts};
use super::{DbError, sqlite_error};
use crate::config::{AutoVacuum, ConnectionPragmas, JournalMode};
use crate::plan::PragmaValue;

/// Creates a new database file (mode 0600, parent directories as needed)
/// and sets `pragmas` before anything else is written. Never overwrites: an
/// existing file is an error.
pub fn create(
    path: &Path,
    pragmas: &[PragmaValue],
    connection: &ConnectionPragmas,
) -> Result<(), DbError> {
    let io = |action| {
        move |source| DbError::Io {
            path: path.to_path_buf(),
            action,
            source,
        }
    };
    if let Some(parent) = path.parent() {
        crate::durable::create_private_dir(parent).map_err(io("cannot create the directory"))?;
    }
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(path)
        .map_err(io("cannot create the file"))?;
    let conn = super::open(path, connection)?;
    for value in pragmas {
        set_on_empty(&conn, path, *value)?;
    }
    // An empty file keeps no pragmas; writing the header makes them stick.
    conn.pragma_update(None, "user_version", 0)
        .map_err(sqlite_error(path, "cannot write the database header"))?;
    for value in pragmas {
        verify(&conn, path, *value)?;
    }
    Ok(())
}

/// Sets a pragma on a database nothing has been written to yet.
fn set_on_empty(conn: &Connection, path: &Path, value: PragmaValue) -> Result<(), DbError> {
    match value {
        PragmaValue::JournalMode(mode) => set_journal_mode(conn, path, mode),
        other => update(conn, path, other),
    }
}

/// Changes one stored pragma of an existing database. `allow_vacuum` must be
/// true for changes that rewrite the file. The whole change holds the
/// database's schema lock, so a `page_size` change (WAL off, VACUUM, WAL
/// on) never interleaves with a migration or the daemon's convergence, and
/// one that is killed half-way is seen as interrupted (the lock is free).
pub fn change(path: &Path, to: PragmaValue, connection: &ConnectionPragmas) -> Result<(), DbError> {
    let lock_error = |source| DbError::Io {
        path: super::schema_lock::path(path),
        action: "cannot take the schema lock",
        source,
    };
    let _schema_lock = super::schema_lock::take(path, connection.busy_timeout)
        .map_err(lock_error)?
        .ok_or_else(|| {
            lock_error(std::io::Error::other(
                "a migration or file rewrite of this database is running; try again when it ends",
            ))
        })?;
    let conn = super::open(path, connection)?;
    match to {
        PragmaValue::JournalMode(mode) => set_journal_mode(&conn, path, mode)?,
        PragmaValue::ApplicationId(_) => update(&conn, path, to)?,
        PragmaValue::AutoVacuum(mode) => {
            let current = read_facts(&conn, path)?;
            update(&conn, path, to)?;
            let toggles = mode == AutoVacuum::None || current.auto_vacuum == AutoVacuum::None;
            if toggles && current.page_count > 0 {
                vacuum(&conn, path)?;
            }
        }
        PragmaValue::PageSize(_) => {
            let current = read_facts(&conn, path)?;
            if current.wal {
                set_journal_mode(&conn, path, JournalMode::Delete)?;
            }
            update(&conn, path, to)?;
            let result = if current.page_count > 0 {
                vacuum(&conn, path)
            } else {
                Ok(())
            };
            if current.wal {
                set_journal_mode(&conn, path, JournalMode::Wal)?;
            }
            result?;
        }
    }
    verify(&conn, path, to)
}

fn update(conn: &Connection, path: &Path, value: PragmaValue) -> Result<(), DbError> {
    let result = match value {
        PragmaValue::AutoVacuum(mode) => conn.pragma_update(None, "auto_vacuum", mode.as_str()),
        PragmaValue::PageSize(size) => conn.pragma_update(None, "page_size", size.bytes()),
        PragmaValue::ApplicationId(id) => conn.pragma_update(None, "application_id", id),
        PragmaValue::JournalMode(mode) => conn.pragma_update(None, "journal_mode", mode.as_str()),
    };
    result.map_err(sqlite_error(path, format!("cannot set {}", value.name())))
}

fn set_journal_mode(conn: &Connection, path: &Path, mode: JournalMode) -> Result<(), DbError> {
    let actual: String = conn
        .pragma_update_and_check(None, "journal_mode", mode.as_str(), |row| row.get(0))
        .map_err(sqlite_error(path, "cannot set journal_mode"))?;
    if actual.eq_ignore_ascii_case(mode.as_str()) {
        Ok(())
    } else {
        Err(DbError::NotApplied {
            path: path.to_path_buf(),
            pragma: "journal_mode",
            wanted: mode.to_string(),
            actual,
        })
    }
}

fn vacuum(conn: &Connection, path: &Path) -> Result<(), DbError> {
    conn.execute_batch("VACUUM")
        .map_err(sqlite_error(path, "VACUUM failed"))
}

fn verify(conn: &Connection, path: &Path, wanted: PragmaValue) -> Result<(), DbError> {
    let facts = read_facts(conn, path)?;
    let actual = match wanted {
        PragmaValue::JournalMode(mode) if (mode == JournalMode::Wal) == facts.wal => return Ok(()),
        PragmaValue::JournalMode(_) => pragma::<String>(conn, path, "journal_mode")?,
        PragmaValue::AutoVacuum(mode) if mode == facts.auto_vacuum => return Ok(()),
        PragmaValue::AutoVacuum(_) => facts.auto_vacuum.to_string(),
        PragmaValue::PageSize(size) if size == facts.page_size => return Ok(()),
        PragmaValue::PageSize(_) => facts.page_size.to_string(),
        PragmaValue::ApplicationId(id) if id == facts.application_id => return Ok(()),
        PragmaValue::ApplicationId(_) => facts.application_id.to_string(),
    };
    Err(DbError::NotApplied {
        path: path.to_path_buf(),
        pragma: wanted.name(),
        wanted: wanted.value(),
        actual,
    })
}
