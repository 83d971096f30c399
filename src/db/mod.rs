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

use rusqlite::{Connection, OpenFlags};

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
