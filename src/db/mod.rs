//! Managed database files: opening them with litewarden's per-connection
//! pragmas, reading their stored pragmas, and changing those.
//!
//! Owns every SQLite connection litewarden opens on a managed database. A
//! connection lives only as long as the step that needs it. Nothing here decides what
//! to change: that is [`crate::plan`]'s job.

pub mod columns;
pub mod file;
pub mod lock;
pub mod observe;
pub mod pragmas;
pub mod schema_lock;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::{Connection, ErrorCode, OpenFlags};

use crate::config::{ConnectionPragmas, Synchronous};
use crate::paths;

/// Why a managed database could not be read or changed.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The file (or its directory) could not be created or inspected.
    #[error("{}: {action}: {source}", paths::display(.path))]
    Io {
        /// The database file.
        path: PathBuf,
        /// What litewarden was doing.
        action: &'static str,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file exists but is not a SQLite database.
    #[error("{}: not a SQLite database (wrong path, or the file is encrypted or damaged)", paths::display(.path))]
    NotADatabase {
        /// The file.
        path: PathBuf,
    },
    /// SQLite refused a step.
    #[error("{}: {action}: {source}", paths::display(.path))]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// What litewarden was doing.
        action: String,
        /// The cause.
        #[source]
        source: rusqlite::Error,
    },
    /// A column definition that SQLite refused, or that is not one column.
    #[error("{}: cannot add column `{definition}` to {table}: {detail}", paths::display(.path))]
    BadColumn {
        /// The database file.
        path: PathBuf,
        /// The table.
        table: String,
        /// The definition as given.
        definition: String,
        /// SQLite's message, or what is wrong.
        detail: String,
    },
    /// A pragma did not take the value it was set to.
    #[error("{}: {pragma} is still {actual} after setting it to {wanted} (another connection may hold the database)", paths::display(.path))]
    NotApplied {
        /// The database file.
        path: PathBuf,
        /// The pragma.
        pragma: &'static str,
        /// The value asked for.
        wanted: String,
        /// The value read back.
        actual: String,
    },
}

pub(crate) fn sqlite_error(
    path: &Path,
    action: impl Into<String>,
) -> impl FnOnce(rusqlite::Error) -> DbError {
    let path = path.to_path_buf();
    let action = action.into();
    move |source| DbError::Sqlite {
        path,
        action,
        source,
    }
}

/// Opens an existing database read-write (never creating it) with the
/// per-connection pragmas of `jobs.yaml`.
pub fn open(path: &Path, pragmas: &ConnectionPragmas) -> Result<Connection, DbError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI;
    let conn =
        Connection::open_with_flags(path, flags).map_err(sqlite_error(path, "cannot open"))?;
    apply_connection_pragmas(&conn, path, pragmas)?;
    Ok(conn)
}

/// Sets the per-connection pragmas on `conn`.
pub fn apply_connection_pragmas(
    conn: &Connection,
    path: &Path,
    pragmas: &ConnectionPragmas,
) -> Result<(), DbError> {
    conn.busy_timeout(pragmas.busy_timeout)
        .map_err(sqlite_error(path, "cannot set busy_timeout"))?;
    if let Some(mode) = pragmas.synchronous {
        let value = match mode {
            Synchronous::Off => 0,
            Synchronous::Normal => 1,
            Synchronous::Full => 2,
            Synchronous::Extra => 3,
        };
        conn.pragma_update(None, "synchronous", value)
            .map_err(sqlite_error(path, "cannot set synchronous"))?;
    }
    if let Some(on) = pragmas.foreign_keys {
        conn.pragma_update(None, "foreign_keys", on)
            .map_err(sqlite_error(path, "cannot set foreign_keys"))?;
    }
    if let Some(size) = pragmas.cache_size {
        let kibibytes = -((size.bytes() / 1024).max(1) as i64);
        conn.pragma_update(None, "cache_size", kibibytes)
            .map_err(sqlite_error(path, "cannot set cache_size"))?;
    }
    if let Some(size) = pragmas.mmap_size {
        conn.pragma_update(None, "mmap_size", size.bytes() as i64)
            .map_err(sqlite_error(path, "cannot set mmap_size"))?;
    }
    Ok(())
}

/// Starts a `BEGIN IMMEDIATE` transaction on `conn`, waiting up to the
/// connection's `busy_timeout` for the write lock.
///
/// SQLite's own busy handler backs off to 100 ms between attempts. Behind an
/// application that commits back to back, the lock is free only for
/// microseconds between its commits, and fifty attempts can miss every gap;
/// this one tries again every millisecond, so litewarden's write (a restore,
/// a migration) gets its turn instead of timing out.
pub fn begin_immediate(conn: &Connection) -> rusqlite::Result<()> {
    let timeout_ms: i64 = conn.pragma_query_value(None, "busy_timeout", |r| r.get(0))?;
    let timeout = Duration::from_millis(timeout_ms.max(0) as u64);
    let deadline = Instant::now() + timeout;
    conn.busy_timeout(Duration::ZERO)?;
    let begun = loop {
        match conn.execute_batch("BEGIN IMMEDIATE") {
            Err(e)
                if e.sqlite_error_code() == Some(ErrorCode::DatabaseBusy)
                    && Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(1));
            }
            other => break other,
        }
    };
    conn.busy_timeout(timeout)?;
    begun
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::Duration;

    use rusqlite::{Connection, ErrorCode};

    use super::begin_immediate;

    fn wal_database(dir: &std::path::Path) -> std::path::PathBuf {
        let path = dir.join("app.db");
        Connection::open(&path)
            .unwrap()
            .execute_batch("PRAGMA journal_mode=wal; CREATE TABLE t (id INTEGER PRIMARY KEY);")
            .unwrap();
        path
    }

    #[test]
    fn begin_immediate_waits_for_a_writer_and_keeps_the_busy_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let path = wal_database(dir.path());
        let (locked, wait_for_lock) = mpsc::channel();
        let (release, wait_for_release) = mpsc::channel::<()>();
        let writer = std::thread::spawn({
            let path = path.clone();
            move || {
                let conn = Connection::open(path).unwrap();
                conn.execute_batch("BEGIN IMMEDIATE; INSERT INTO t VALUES (1);")
                    .unwrap();
                locked.send(()).unwrap();
                wait_for_release.recv().unwrap();
                conn.execute_batch("COMMIT").unwrap();
            }
        });
        wait_for_lock.recv().unwrap();
        let conn = Connection::open(&path).unwrap();
        conn.busy_timeout(Duration::from_secs(30)).unwrap();
        let releaser = std::thread::spawn(move || release.send(()).unwrap());
        begin_immediate(&conn).unwrap();
        conn.execute_batch("INSERT INTO t VALUES (2); COMMIT")
            .unwrap();
        releaser.join().unwrap();
        writer.join().unwrap();
        let timeout: i64 = conn
            .pragma_query_value(None, "busy_timeout", |r| r.get(0))
            .unwrap();
        assert_eq!(timeout, 30_000);
    }

    #[test]
    fn begin_immediate_gives_up_busy_after_the_busy_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let path = wal_database(dir.path());
        let holder = Connection::open(&path).unwrap();
        holder.execute_batch("BEGIN IMMEDIATE").unwrap();
        let conn = Connection::open(&path).unwrap();
        conn.busy_timeout(Duration::from_millis(20)).unwrap();
        let error = begin_immediate(&conn).unwrap_err();
        assert_eq!(error.sqlite_error_code(), Some(ErrorCode::DatabaseBusy));
        let timeout: i64 = conn
            .pragma_query_value(None, "busy_timeout", |r| r.get(0))
            .unwrap();
        assert_eq!(timeout, 20);
    }
}
