//! Reading one database file: whether it exists, its stored pragmas, its
//! identity, its declared tables' columns.
//!
//! Owns no state and changes nothing: files are opened read-only and a
//! missing file stays missing. Knows no job kinds and no config as a whole:
//! [`crate::observe`] puts these readings together for every database.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use rusqlite::{Connection, OpenFlags};
use sha2::{Digest, Sha256};

use super::{DbError, sqlite_error};
use crate::config::{AutoVacuum, Database, PageSize};
use crate::plan::identity::Identity;
use crate::plan::{FileFacts, ObservedFile, TableColumns};

const SQLITE_HEADER: &[u8; 16] = b"SQLite format 3\0";

/// What is at `path`: nothing, or a SQLite file and its stored pragmas.
pub fn observe_file(path: &Path) -> Result<ObservedFile, DbError> {
    let io = |action| {
        move |source| DbError::Io {
            path: path.to_path_buf(),
            action,
            source,
        }
    };
    let mut file = match crate::regular::open_io(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ObservedFile::Missing),
        Err(e) => return Err(io("cannot open")(e)),
    };
    let mut header = Vec::with_capacity(SQLITE_HEADER.len());
    file.by_ref()
        .take(SQLITE_HEADER.len() as u64)
        .read_to_end(&mut header)
        .map_err(io("cannot read"))?;
    if !header.is_empty() && header.as_slice() != SQLITE_HEADER {
        return Err(DbError::NotADatabase {
            path: path.to_path_buf(),
        });
    }
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)
        .map_err(sqlite_error(path, "cannot open read-only"))?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(sqlite_error(path, "cannot set busy_timeout"))?;
    read_facts(&conn, path).map(ObservedFile::Present)
}

/// The identity of the database at `path` (`None` when there is no file):
/// its size, application id, user version, change counter and schema, read
/// through a read-only connection.
pub fn read_identity(path: &Path) -> Result<Option<Identity>, DbError> {
    let mut header = [0u8; 100];
    match crate::regular::open(path) {
        Ok(mut file) => {
            let read = file.read(&mut header).map_err(|source| DbError::Io {
                path: path.to_path_buf(),
                action: "cannot read",
                source,
            })?;
            if read > 0 && (read < SQLITE_HEADER.len() || &header[..16] != SQLITE_HEADER) {
                return Err(DbError::NotADatabase {
                    path: path.to_path_buf(),
                });
            }
        }
        Err(crate::regular::OpenError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(None);
        }
        Err(crate::regular::OpenError::Io(source)) => {
            return Err(DbError::Io {
                path: path.to_path_buf(),
                action: "cannot open",
                source,
            });
        }
        Err(crate::regular::OpenError::NotRegular(what)) => {
            return Err(DbError::Io {
                path: path.to_path_buf(),
                action: "cannot open",
                source: std::io::Error::other(format!("not a regular file ({what})")),
            });
        }
    }
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)
        .map_err(sqlite_error(path, "cannot open read-only"))?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(sqlite_error(path, "cannot set busy_timeout"))?;
    identity_of(
        &conn,
        path,
        u32::from_be_bytes([header[24], header[25], header[26], header[27]]),
    )
    .map(Some)
}

/// The identity read through an open connection; `change_counter` comes
/// from the file's header.
pub fn identity_of(
    conn: &Connection,
    path: &Path,
    change_counter: u32,
) -> Result<Identity, DbError> {
    let schema_error = sqlite_error(path, "cannot read the schema");
    let mut statement = conn
        .prepare("SELECT type, name, coalesce(sql, '') FROM sqlite_schema ORDER BY type, name")
        .map_err(|source| match source.sqlite_error_code() {
            Some(rusqlite::ErrorCode::NotADatabase) => DbError::NotADatabase {
                path: path.to_path_buf(),
            },
            _ => sqlite_error(path, "cannot read the schema")(source),
        })?;
    let entries: Vec<(String, String, String)> = statement
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
        .and_then(|rows| rows.collect())
        .map_err(schema_error)?;
    let mut hasher = Sha256::new();
    for (_, _, sql) in &entries {
        hasher.update(sql.as_bytes());
        hasher.update(b"\n");
    }
    Ok(Identity {
        page_size: pragma::<i64>(conn, path, "page_size")?.max(0) as u64,
        page_count: pragma::<i64>(conn, path, "page_count")?.max(0) as u64,
        application_id: pragma(conn, path, "application_id")?,
        user_version: pragma(conn, path, "user_version")?,
        change_counter,
        tables: entries
            .into_iter()
            .filter(|(kind, name, _)| kind == "table" && !name.starts_with("sqlite_"))
            .map(|(_, name, _)| name)
            .collect(),
        schema_sha256: format!("{:x}", hasher.finalize()),
    })
}

/// Reads the stored pragmas through an open connection.
pub fn read_facts(conn: &Connection, path: &Path) -> Result<FileFacts, DbError> {
    let journal_mode: String = pragma(conn, path, "journal_mode")?;
    let auto_vacuum = match pragma::<i64>(conn, path, "auto_vacuum")? {
        1 => AutoVacuum::Full,
        2 => AutoVacuum::Incremental,
        _ => AutoVacuum::None,
    };
    let page_size =
        PageSize::new(pragma::<i64>(conn, path, "page_size")?.max(0) as u64).map_err(|_| {
            DbError::NotADatabase {
                path: path.to_path_buf(),
            }
        })?;
    Ok(FileFacts {
        wal: journal_mode.eq_ignore_ascii_case("wal"),
        auto_vacuum,
        page_size,
        application_id: pragma(conn, path, "application_id")?,
        page_count: pragma::<i64>(conn, path, "page_count")?.max(0) as u64,
    })
}

/// Reads one pragma, mapping "file is not a database" to its own error.
pub(crate) fn pragma<T: rusqlite::types::FromSql>(
    conn: &Connection,
    path: &Path,
    name: &str,
) -> Result<T, DbError> {
    conn.pragma_query_value(None, name, |row| row.get(0))
        .map_err(|source| match source.sqlite_error_code() {
            Some(rusqlite::ErrorCode::NotADatabase) => DbError::NotADatabase {
                path: path.to_path_buf(),
            },
            _ => sqlite_error(path, format!("cannot read {name}"))(source),
        })
}

/// The columns (name, declared type) of each table `database` declares
/// columns for; `None` for a table that does not exist (or a missing file).
pub fn declared_tables(database: &Database) -> Result<TableColumns, DbError> {
    let path = &database.path;
    let mut tables = BTreeMap::new();
    let conn = if path.exists() {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(sqlite_error(path, "cannot open read-only"))?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(sqlite_error(path, "cannot set busy_timeout"))?;
        Some(conn)
    } else {
        None
    };
    for column in &database.columns {
        if tables.contains_key(&column.table) {
            continue;
        }
        let columns = match &conn {
            Some(conn) => {
                let mut statement = conn
                    .prepare("SELECT name, type FROM pragma_table_info(?1)")
                    .map_err(sqlite_error(path, "cannot read the schema"))?;
                let found: Vec<(String, String)> = statement
                    .query_map([&column.table], |row| Ok((row.get(0)?, row.get(1)?)))
                    .and_then(|rows| rows.collect())
                    .map_err(sqlite_error(path, "cannot read the schema"))?;
                (!found.is_empty()).then_some(found)
            }
            None => None,
        };
        tables.insert(column.table.clone(), columns);
    }
    Ok(tables)
}
