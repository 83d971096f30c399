//! Routine maintenance of one database, without freezing the application.
//!
//! Owns the maintenance sequence: `PRAGMA optimize=0x10002` (a fresh
//! connection must ask for the analysis, per the SQLite docs; bounded by
//! `analysis_limit`, inside `BEGIN IMMEDIATE` so it waits for the write lock
//! through the busy timeout instead of failing on a snapshot that a
//! concurrent commit made stale), then a
//! checkpoint: when the WAL is over `max_wal_size`, one `TRUNCATE` attempt
//! with a zero busy timeout (a `TRUNCATE` that waits would hold the write
//! lock and freeze the application), falling back to `PASSIVE`; otherwise
//! `PASSIVE`. No checkpoint at all when the database carries
//! `_litestream_seq` (Litestream owns its WAL). Then `incremental_vacuum`
//! when `auto_vacuum` is incremental, and a full `VACUUM` only with
//! `optimize.vacuum: true`. The daemon runs it on the database's worker, so
//! never during that database's backup or migration. Reports the pages and
//! bytes reclaimed and the longest time any step held the write lock.

use std::path::Path;
use std::time::{Duration, Instant};

use rusqlite::Connection;
use serde::Serialize;

use super::health::{litestream_owns, wal_path};
use crate::config::Database;
use crate::db::{self, DbError, sqlite_error};

/// Which checkpoint ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Checkpoint {
    /// `wal_checkpoint(PASSIVE)`.
    Passive,
    /// `wal_checkpoint(TRUNCATE)`: the WAL was reset to zero bytes.
    Truncate,
    /// `TRUNCATE` could not get the lock at once; `PASSIVE` ran instead.
    TruncateFellBack,
    /// None: Litestream owns the WAL.
    SkippedForLitestream,
    /// None: the database is replicated, and its capture is its only
    /// checkpointer (another checkpoint could drop frames not yet shipped).
    SkippedForReplication,
    /// None: not in WAL mode.
    NotWal,
}

/// What a maintenance run did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// The database.
    pub database: String,
    /// The checkpoint that ran.
    pub checkpoint: Checkpoint,
    /// Pages the file shrank by (incremental or full vacuum).
    pub pages_reclaimed: u64,
    /// Bytes the database and its WAL shrank by together.
    pub bytes_reclaimed: u64,
    /// WAL size before and after, in bytes.
    pub wal_bytes: (u64, u64),
    /// The longest any step held (or waited for) the write lock, in ms.
    pub lock_ms: u64,
    /// Whether `PRAGMA optimize` ran; false when the application kept the
    /// write lock busy past the busy timeout (maintenance yields, and runs
    /// again at its next slot).
    pub analyzed: bool,
    /// Whether a full VACUUM ran.
    pub vacuumed: bool,
    /// Wall time in milliseconds.
    pub duration_ms: u64,
}

/// Runs maintenance on `database`.
pub fn run(database: &Database) -> Result<Report, DbError> {
    let started = Instant::now();
    let path = &database.path;
    let conn = db::open(path, &database.pragmas.connection)?;
    let size = |conn: &Connection| -> Result<(u64, u64), DbError> {
        let pages: i64 = conn
            .pragma_query_value(None, "page_count", |r| r.get(0))
            .map_err(sqlite_error(path, "cannot read page_count"))?;
        let page_size: i64 = conn
            .pragma_query_value(None, "page_size", |r| r.get(0))
            .map_err(sqlite_error(path, "cannot read page_size"))?;
        Ok((pages.max(0) as u64, page_size.max(0) as u64))
    };
    let (pages_before, page_size) = size(&conn)?;
    let wal_before = file_size(&wal_path(path));
    let mut lock = Duration::ZERO;
    let analyzed = yielding(timed(
        &conn,
        path,
        &mut lock,
        "PRAGMA optimize",
        "PRAGMA analysis_limit=400; BEGIN IMMEDIATE; PRAGMA optimize=0x10002; COMMIT;",
    ))?;
    let journal: String = conn
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .map_err(sqlite_error(path, "cannot read journal_mode"))?;
    let checkpoint = if !journal.eq_ignore_ascii_case("wal") {
        Checkpoint::NotWal
    } else if database.replicate.is_some() {
        Checkpoint::SkippedForReplication
    } else if litestream_owns(&conn) {
        Checkpoint::SkippedForLitestream
    } else if wal_before > database.health.max_wal_size.0 {
        truncate_or_passive(
            &conn,
            path,
            database.pragmas.connection.busy_timeout,
            &mut lock,
        )?
    } else {
        checkpoint(&conn, path, "PASSIVE")?;
        Checkpoint::Passive
    };
    let auto_vacuum: i64 = conn
        .pragma_query_value(None, "auto_vacuum", |r| r.get(0))
        .map_err(sqlite_error(path, "cannot read auto_vacuum"))?;
    if auto_vacuum == 2 {
        yielding(timed(
            &conn,
            path,
            &mut lock,
            "incremental_vacuum",
            "BEGIN IMMEDIATE; PRAGMA incremental_vacuum; COMMIT;",
        ))?;
    }
    if database.optimize.vacuum {
        timed(&conn, path, &mut lock, "VACUUM", "VACUUM;")?;
    }
    let (pages_after, _) = size(&conn)?;
    drop(conn);
    let wal_after = file_size(&wal_path(path));
    let pages_reclaimed = pages_before.saturating_sub(pages_after);
    Ok(Report {
        database: database.name.to_string(),
        checkpoint,
        pages_reclaimed,
        bytes_reclaimed: (pages_reclaimed * page_size) + wal_before.saturating_sub(wal_after),
        wal_bytes: (wal_before, wal_after),
        lock_ms: lock.as_millis() as u64,
        analyzed,
        vacuumed: database.optimize.vacuum,
        duration_ms: started.elapsed().as_millis() as u64,
    })
}

/// A step's result, where a database kept busy by the application past the
/// busy timeout only skips the step (`Ok(false)`): maintenance never fights
/// the application for the write lock.
fn yielding(result: Result<(), DbError>) -> Result<bool, DbError> {
    match result {
        Ok(()) => Ok(true),
        Err(DbError::Sqlite {
            source,
            path,
            action,
        }) if source.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy) => {
            tracing::warn!(path = %path.display(), step = %action, "the database stayed busy past the busy timeout; maintenance step skipped until the next run");
            Ok(false)
        }
        Err(other) => Err(other),
    }
}

/// Runs `sql`, keeping in `lock` the longest any such step took.
fn timed(
    conn: &Connection,
    path: &Path,
    lock: &mut Duration,
    what: &str,
    sql: &str,
) -> Result<(), DbError> {
    let at = Instant::now();
    let result = conn.execute_batch(sql);
    if result.is_err() && !conn.is_autocommit() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    result.map_err(sqlite_error(path, format!("cannot run {what}")))?;
    *lock = (*lock).max(at.elapsed());
    Ok(())
}

/// One `TRUNCATE` attempt that never waits (busy timeout 0), falling back
/// to `PASSIVE` when a reader or writer is active.
fn truncate_or_passive(
    conn: &Connection,
    path: &Path,
    busy_timeout: Duration,
    lock: &mut Duration,
) -> Result<Checkpoint, DbError> {
    conn.busy_timeout(Duration::ZERO)
        .map_err(sqlite_error(path, "cannot set busy_timeout"))?;
    let at = Instant::now();
    let truncated = matches!(checkpoint(conn, path, "TRUNCATE"), Ok(0));
    *lock = (*lock).max(at.elapsed());
    conn.busy_timeout(busy_timeout)
        .map_err(sqlite_error(path, "cannot set busy_timeout"))?;
    if truncated {
        return Ok(Checkpoint::Truncate);
    }
    checkpoint(conn, path, "PASSIVE")?;
    Ok(Checkpoint::TruncateFellBack)
}

/// Runs `wal_checkpoint(mode)`; returns its busy flag (0: completed).
fn checkpoint(conn: &Connection, path: &Path, mode: &str) -> Result<i64, DbError> {
    conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |r| r.get(0))
        .map_err(sqlite_error(path, format!("cannot checkpoint ({mode})")))
}

fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}
