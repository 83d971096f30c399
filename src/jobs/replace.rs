//! Replacing the content of a live database with a plain database file,
//! writing only the pages that differ.
//!
//! Owns the in-place step of a restore. It runs as one write transaction on
//! the live database (`BEGIN IMMEDIATE`, waiting up to `busy_timeout` for the
//! application's writer), so other connections see the old content or the
//! new, never a mix, and the WAL stays SQLite's own. Inside it, every page of
//! the new file is compared with the live page (read through `sqlite_dbpage`
//! in the transaction) and written through `sqlite_dbpage` only when it
//! differs; pages beyond the new size are cut off. Restoring the backup of a
//! database that changed a little writes a little, where SQLite's backup API
//! rewrites every page into the WAL.
//!
//! Page 1 is written last (its new schema cookie makes SQLite re-read the
//! schema on the next statement, which must find the new pages in place)
//! and always, with two header fields kept right for the open
//! connections, as the backup API does: the file-format bytes (18, 19) stay
//! the live file's (a WAL database stays WAL), and the schema cookie (40) is
//! set past both the live and the new one, so every connection re-reads the
//! schema. A new file whose page size, reserved bytes or text encoding
//! differ from the live one is refused here (the caller converts the page
//! size first).

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, params};

use super::progress::Progress;
use crate::paths::display;

/// What replacing wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Replaced {
    /// Pages in the new content.
    pub pages: u64,
    /// Pages written because they differed (page 1 included).
    pub written: u64,
}

/// Replaces the content of the database at `live` with the plain database
/// file `plain` (same page size), in one write transaction.
pub fn replace_live(
    plain: &Path,
    live: &Path,
    busy_timeout: Duration,
    progress: &mut dyn Progress,
) -> Result<Replaced, String> {
    let source = File::open(plain).map_err(|e| format!("{}: {e}", display(plain)))?;
    let conn = Connection::open_with_flags(live, OpenFlags::SQLITE_OPEN_READ_WRITE)
        .map_err(|e| e.to_string())?;
    conn.busy_timeout(busy_timeout).map_err(|e| e.to_string())?;
    conn.execute_batch("BEGIN IMMEDIATE").map_err(|e| match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::DatabaseBusy) => format!(
            "the application held the write lock longer than busy_timeout ({}); retry when it is quieter",
            humantime::format_duration(busy_timeout)
        ),
        _ => e.to_string(),
    })?;
    let result = write_differing_pages(&conn, &source, plain, progress);
    let end = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
    let ended = conn.execute_batch(end).map_err(|e| e.to_string());
    let replaced = result?;
    ended?;
    Ok(replaced)
}

fn write_differing_pages(
    conn: &Connection,
    source: &File,
    plain: &Path,
    progress: &mut dyn Progress,
) -> Result<Replaced, String> {
    let sql = |e: rusqlite::Error| e.to_string();
    let page_size = conn
        .pragma_query_value(None, "page_size", |r| r.get::<_, i64>(0))
        .map_err(sql)?
        .max(512) as u64;
    let live_pages = conn
        .pragma_query_value(None, "page_count", |r| r.get::<_, i64>(0))
        .map_err(sql)?
        .max(0) as u64;
    let bytes = source
        .metadata()
        .map_err(|e| format!("{}: {e}", display(plain)))?
        .len();
    let pages = bytes / page_size;
    if pages == 0 || bytes % page_size != 0 {
        return Err(format!(
            "{} is not a whole number of {page_size}-byte pages",
            display(plain)
        ));
    }
    let mut read_live = conn
        .prepare("SELECT data FROM sqlite_dbpage WHERE pgno = ?1")
        .map_err(sql)?;
    let mut write = conn
        .prepare("INSERT INTO sqlite_dbpage (pgno, data) VALUES (?1, ?2)")
        .map_err(sql)?;
    let live_page = |number: u64, statement: &mut rusqlite::Statement| -> Result<Vec<u8>, String> {
        statement
            .query_row(params![number as i64], |r| r.get(0))
            .map_err(sql)
    };

    let mut first = vec![0u8; page_size as usize];
    source
        .read_exact_at(&mut first, 0)
        .map_err(|e| format!("{}: {e}", display(plain)))?;
    let live_first = live_page(1, &mut read_live)?;
    patch_first_page(&mut first, &live_first)?;

    progress.start("restore pages", Some(bytes));
    let mut written = 0;
    let mut chunk = vec![0u8; (page_size as usize) * 256];
    let mut number = 1;
    while number <= pages {
        let count = (pages - number + 1).min(256);
        let span = &mut chunk[..(count * page_size) as usize];
        source
            .read_exact_at(span, (number - 1) * page_size)
            .map_err(|e| format!("{}: {e}", display(plain)))?;
        for (i, page) in span.chunks(page_size as usize).enumerate() {
            let at = number + i as u64;
            if at == 1 {
                continue;
            }
            if at > live_pages || live_page(at, &mut read_live)? != page {
                write.execute(params![at as i64, page]).map_err(sql)?;
                written += 1;
            }
        }
        number += count;
        progress.advance((number - 1) * page_size);
    }
    if live_pages > pages {
        conn.execute(
            "INSERT INTO sqlite_dbpage (pgno, data) VALUES (?1, NULL)",
            params![(pages + 1) as i64],
        )
        .map_err(sql)?;
    }
    write.execute(params![1, first]).map_err(sql)?;
    written += 1;
    progress.finish();
    Ok(Replaced { pages, written })
}

/// Makes page 1 of the new content right for the live file: its format
/// bytes, and a schema cookie past both; refuses a layout that differs.
fn patch_first_page(first: &mut [u8], live: &[u8]) -> Result<(), String> {
    if first.len() < 100 || live.len() != first.len() {
        return Err("the new content's page size differs from the live database's".into());
    }
    if first[20] != live[20] {
        return Err(format!(
            "the new content reserves {} bytes per page, the live database {}",
            first[20], live[20]
        ));
    }
    if first[56..60] != live[56..60] {
        return Err("the new content's text encoding differs from the live database's".into());
    }
    first[18..20].copy_from_slice(&live[18..20]);
    let cookie = |page: &[u8]| u32::from_be_bytes([page[40], page[41], page[42], page[43]]);
    let next = cookie(first).max(cookie(live)).wrapping_add(1);
    first[40..44].copy_from_slice(&next.to_be_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::progress::Quiet;

    fn database(path: &Path, rows: i64) -> Connection {
        let conn = Connection::open(path).unwrap();
        conn.execute_batch(
            "PRAGMA journal_mode=wal; CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v TEXT);",
        )
        .unwrap();
        for i in 0..rows {
            conn.execute(
                "INSERT INTO t (v) VALUES (?1)",
                [format!("row {i} {}", "x".repeat(200))],
            )
            .unwrap();
        }
        conn
    }

    #[test]
    fn a_reader_sees_the_new_content_and_the_wal_database_stays_wal() {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("live.db");
        let reader = database(&live, 500);
        let plain = dir.path().join("plain.db");
        let source = database(&dir.path().join("source.db"), 0);
        source
            .execute_batch("CREATE TABLE extra (x); INSERT INTO t (v) VALUES ('only');")
            .unwrap();
        source
            .execute("VACUUM INTO ?1", [plain.to_str().unwrap()])
            .unwrap();

        let replaced = replace_live(&plain, &live, Duration::from_secs(1), &mut Quiet).unwrap();
        assert!(replaced.written >= 1 && replaced.written <= replaced.pages);

        let count: i64 = reader
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(count, 1, "an open connection sees the restored rows");
        reader.execute("INSERT INTO extra VALUES (1)", []).unwrap();
        let mode: String = reader
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        let check: String = reader
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(check, "ok");
    }

    #[test]
    fn restoring_the_same_content_writes_only_the_first_page() {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("live.db");
        let conn = database(&live, 300);
        conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
            .unwrap();
        let plain = dir.path().join("plain.db");
        std::fs::copy(&live, &plain).unwrap();
        let replaced = replace_live(&plain, &live, Duration::from_secs(1), &mut Quiet).unwrap();
        assert_eq!(replaced.written, 1, "{replaced:?}");
    }

    #[test]
    fn a_database_that_grew_is_cut_back_to_the_restored_size() {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("live.db");
        let conn = database(&live, 10);
        let plain = dir.path().join("plain.db");
        conn.execute("VACUUM INTO ?1", [plain.to_str().unwrap()])
            .unwrap();
        database(&live, 2000);
        replace_live(&plain, &live, Duration::from_secs(1), &mut Quiet).unwrap();
        let (count, pages): (i64, i64) = conn
            .query_row(
                "SELECT (SELECT count(*) FROM t), (SELECT page_count FROM pragma_page_count)",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(count, 10);
        let expected = std::fs::metadata(&plain).unwrap().len() as i64 / 4096;
        assert_eq!(pages, expected);
    }
}
