//! Reading one database file: whether it exists, its stored pragmas, its
//! identity, its declared tables' columns.
//!
//! Owns no state and changes nothing: files are opened read-only and a
//! missing file stays missing. Knows no job kinds and no config as a whole:
//! [`crate::observe`] puts these readings together for every database.

use std::collections::BTreeMap;
use std::path::Path;

use rusqlite::{Connection, OpenFlags};
use sha2::{Digest, Sha256};

use super::{DbError, sqlite_error};
use crate::config::{AutoVacuum, Database, PageSize};
use crate::plan::identity::Identity;
use crate::plan::{FileFacts, ObservedFile, TableColumns};

const SQLITE_HEADER: &[u8; 16] = b"SQLite format 3\0";

/// A read-only connection to the database at `path`. A read-only
/// connection cannot roll back a hot `-journal` (a rollback-mode writer,
/// or a VACUUM, killed mid-transaction) and fails with "attempt to write a
/// readonly database"; so when a non-empty journal is there, a read-write
/// connection first reads the schema, which is SQLite's own crash recovery:
/// it restores the last committed state and changes nothing else.
pub(crate) fn open_read_only(path: &Path) -> Result<Connection, DbError> {
    roll_back_hot_journal(path);
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)
        .map_err(sqlite_error(path, "cannot open read-only"))?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(sqlite_error(path, "cannot set busy_timeout"))?;
    Ok(conn)
}

/// Lets SQLite roll back a hot `-journal` beside `path`, if there is one,
/// so read-only connections can read the database (see `open_read_only`).
pub fn roll_back_hot_journal(path: &Path) {
    let mut journal = path.as_os_str().to_owned();
    journal.push("-journal");
    if std::fs::metadata(&journal).is_ok_and(|m| m.len() > 0) {
        let recover = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .and_then(|conn| {
            conn.busy_timeout(std::time::Duration::from_secs(5))?;
            conn.query_row("PRAGMA schema_version", [], |row| row.get::<_, i64>(0))
        });
        match recover {
            Ok(_) => {
                tracing::debug!(path = %path.display(), "read through a rollback journal (rolled back if hot)")
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot roll back the journal an interrupted writer left")
            }
        }
    }
}

/// What is at `path`: nothing, or a SQLite file and its stored pragmas.
pub fn observe_file(path: &Path) -> Result<ObservedFile, DbError> {
    let io = |action| {
        move |source| DbError::Io {
            path: path.to_path_buf(),
            action,
            source,
        }
    };
    let mut header = [0u8; SQLITE_HEADER.len()];
    let size = match super::file::read_start(path, &mut header) {
        Ok(Some(size)) => size,
        Ok(None) => return Ok(ObservedFile::Missing),
        Err(e) => return Err(io("cannot open")(e.into_io())),
    };
    if size > 0 && &header != SQLITE_HEADER {
        return Err(DbError::NotADatabase {
            path: path.to_path_buf(),
        });
    }
    let conn = open_read_only(path)?;
    read_facts(&conn, path).map(ObservedFile::Present)
}

/// What a database file's first 100 bytes say, read without SQLite: cheap
/// enough to ask of every database on every wake-up of the daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Header {
    /// No file.
    Missing,
    /// A file too short (or too strange) to say: a new empty database.
    Unknown,
    /// A SQLite header: whether it is in WAL mode and its page size.
    Known {
        /// Bytes 18 and 19 are 2 (WAL).
        wal: bool,
        /// Bytes 16-17 (1 meaning 65536).
        page_size: u32,
    },
}

impl Header {
    /// Whether `observed` (a full observation) says something else than
    /// this header: the file changed since it was observed.
    pub fn contradicts(self, observed: &ObservedFile) -> bool {
        match (self, observed) {
            (Header::Missing, ObservedFile::Missing) | (Header::Unknown, _) => false,
            (Header::Known { wal, page_size }, ObservedFile::Present(facts)) => {
                facts.page_count > 0 && (wal != facts.wal || page_size != facts.page_size.bytes())
            }
            _ => true,
        }
    }
}

/// Reads the [`Header`] of the file at `path`.
pub fn read_header(path: &Path) -> Header {
    let mut header = [0u8; 100];
    match super::file::read_start(path, &mut header) {
        Ok(None) => return Header::Missing,
        Ok(Some(size)) if size >= 100 && &header[..16] == SQLITE_HEADER => {}
        _ => return Header::Unknown,
    }
    let page_size = match u16::from_be_bytes([header[16], header[17]]) {
        1 => 65_536,
        n => u32::from(n),
    };
    Header::Known {
        wal: header[18] == 2 && header[19] == 2,
        page_size,
    }
}

/// The identity of the database at `path` (`None` when there is no file):
/// its size, application id, user version, change counter and schema, read
/// through a read-only connection.
pub fn read_identity(path: &Path) -> Result<Option<Identity>, DbError> {
    let mut header = [0u8; 100];
    match super::file::read_start(path, &mut header) {
        Ok(Some(size)) => {
            if size > 0 && (size < SQLITE_HEADER.len() as u64 || &header[..16] != SQLITE_HEADER) {
                return Err(DbError::NotADatabase {
                    path: path.to_path_buf(),
                });
            }
        }
        Ok(None) => return Ok(None),
        Err(e) => {
            return Err(DbError::Io {
                path: path.to_path_buf(),
                action: "cannot open",
                source: e.into_io(),
            });
        }
    }
    let conn = open_read_only(path)?;
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
        Some(open_read_only(path)?)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_says_wal_and_page_size_and_contradicts_an_older_observation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.db");
        assert_eq!(read_header(&path), Header::Missing);
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch("PRAGMA page_size=8192; PRAGMA journal_mode=wal; CREATE TABLE t (x);")
            .unwrap();
        let observed = observe_file(&path).unwrap();
        assert_eq!(
            read_header(&path),
            Header::Known {
                wal: true,
                page_size: 8192
            }
        );
        assert!(!read_header(&path).contradicts(&observed));
        conn.pragma_update(None, "journal_mode", "delete").unwrap();
        assert!(read_header(&path).contradicts(&observed));
        assert!(Header::Missing.contradicts(&observed));
    }

    #[test]
    fn a_hot_journal_left_by_a_killed_writer_is_rolled_back_before_a_read_only_look() {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("live.db");
        let conn = Connection::open(&live).unwrap();
        conn.execute_batch(
            "PRAGMA journal_mode=delete; PRAGMA cache_size=5; CREATE TABLE t (x); INSERT INTO t VALUES (1);
             BEGIN; WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000)
             INSERT INTO t SELECT randomblob(100) FROM n;",
        )
        .unwrap();
        let crashed = dir.path().join("crashed.db");
        std::fs::copy(&live, &crashed).unwrap();
        std::fs::copy(
            dir.path().join("live.db-journal"),
            dir.path().join("crashed.db-journal"),
        )
        .unwrap();
        let plain =
            Connection::open_with_flags(&crashed, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
        assert!(
            plain
                .query_row("SELECT count(*) FROM t", [], |r| r.get::<_, i64>(0))
                .is_err(),
            "a read-only connection cannot read through a hot journal"
        );
        assert!(matches!(
            observe_file(&crashed).unwrap(),
            ObservedFile::Present(_)
        ));
        let after =
            Connection::open_with_flags(&crashed, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
        assert_eq!(
            after
                .query_row("SELECT count(*) FROM t", [], |r| r.get::<_, i64>(0))
                .unwrap(),
            1
        );
    }
}
