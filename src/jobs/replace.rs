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
//!
//! The safety copy of a restore is taken before this transaction, so
//! commits can land between the two. Inside the transaction every live page
//! is read anyway; each one that differs from the safety copy is written
//! into the copy, which is cut to the live size and fsynced before the
//! commit (`SafetyCopy`). So the copy holds every write that was committed
//! before the pages were replaced, whatever the application did meanwhile.

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
    /// Pages of the safety copy brought up to the live content: writes
    /// committed after the copy was taken.
    pub topped_up: u64,
}

/// The plain-file safety copy of the live content, brought up to date
/// inside the replacing transaction.
struct SafetyCopy<'a> {
    file: File,
    path: &'a Path,
    topped_up: u64,
}

impl<'a> SafetyCopy<'a> {
    fn open(path: &'a Path) -> Result<Self, String> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| format!("safety copy {}: {e}", display(path)))?;
        Ok(Self {
            file,
            path,
            topped_up: 0,
        })
    }

    fn error(&self, e: std::io::Error) -> String {
        format!("safety copy {}: {e}", display(self.path))
    }

    /// Makes page `number` of the copy the live page (page 1 keeps the
    /// copy's own file-format bytes).
    fn keep(&mut self, number: u64, live: &[u8]) -> Result<(), String> {
        let offset = (number - 1) * live.len() as u64;
        let mut page = vec![0u8; live.len()];
        let have = self.file.read_exact_at(&mut page, offset).is_ok();
        let mut wanted = live.to_vec();
        if number == 1 && have && page.len() >= 20 {
            wanted[18..20].copy_from_slice(&page[18..20]);
        }
        if !have || page != wanted {
            self.file
                .write_all_at(&wanted, offset)
                .map_err(|e| self.error(e))?;
            self.topped_up += 1;
        }
        Ok(())
    }

    /// Cuts the copy to `pages` and makes it durable.
    fn finish(&mut self, pages: u64, page_size: u64) -> Result<u64, String> {
        let length = pages * page_size;
        let current = self.file.metadata().map_err(|e| self.error(e))?.len();
        if current != length {
            self.file.set_len(length).map_err(|e| self.error(e))?;
            self.topped_up = self.topped_up.max(1);
        }
        self.file.sync_all().map_err(|e| self.error(e))?;
        Ok(self.topped_up)
    }
}

/// Replaces the content of the database at `live` with the plain database
/// file `plain` (same page size), in one write transaction. `safety_copy`,
/// a plain copy of the live content taken before, is brought up to the
/// content being replaced before the transaction commits.
pub fn replace_live(
    plain: &Path,
    live: &Path,
    safety_copy: Option<&Path>,
    busy_timeout: Duration,
    progress: &mut dyn Progress,
) -> Result<Replaced, String> {
    let source = File::open(plain).map_err(|e| format!("{}: {e}", display(plain)))?;
    let mut safety = safety_copy.map(SafetyCopy::open).transpose()?;
    let conn = Connection::open_with_flags(live, OpenFlags::SQLITE_OPEN_READ_WRITE)
        .map_err(|e| e.to_string())?;
    conn.busy_timeout(busy_timeout).map_err(|e| e.to_string())?;
    crate::db::begin_immediate(&conn).map_err(|e| match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::DatabaseBusy) => format!(
            "the application held the write lock longer than busy_timeout ({}); retry when it is quieter",
            humantime::format_duration(busy_timeout)
        ),
        _ => e.to_string(),
    })?;
    let result = write_differing_pages(&conn, &source, plain, safety.as_mut(), progress);
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
    mut safety: Option<&mut SafetyCopy>,
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
    if let Some(safety) = safety.as_deref_mut() {
        safety.keep(1, &live_first)?;
    }

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
            let differs = if at > live_pages {
                true
            } else {
                let live = live_page(at, &mut read_live)?;
                if let Some(safety) = safety.as_deref_mut() {
                    safety.keep(at, &live)?;
                }
                live != page
            };
            if differs {
                write.execute(params![at as i64, page]).map_err(sql)?;
                written += 1;
            }
        }
        number += count;
        progress.advance((number - 1) * page_size);
    }
    let mut topped_up = 0;
    if let Some(safety) = safety {
        for at in pages + 1..=live_pages {
            safety.keep(at, &live_page(at, &mut read_live)?)?;
        }
        topped_up = safety.finish(live_pages, page_size)?;
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
    Ok(Replaced {
        pages,
        written,
        topped_up,
    })
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

        let replaced =
            replace_live(&plain, &live, None, Duration::from_secs(1), &mut Quiet).unwrap();
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
        let replaced =
            replace_live(&plain, &live, None, Duration::from_secs(1), &mut Quiet).unwrap();
        assert_eq!(replaced.written, 1, "{replaced:?}");
    }

    #[test]
    fn writes_committed_after_the_safety_copy_land_in_it_before_the_pages_are_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("live.db");
        let conn = database(&live, 300);
        conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
            .unwrap();
        let safety = dir.path().join("safety.db");
        std::fs::copy(&live, &safety).unwrap();
        database(&live, 700);
        conn.execute("DELETE FROM t WHERE id <= 5", []).unwrap();
        let plain = dir.path().join("plain.db");
        database(&dir.path().join("source.db"), 3)
            .execute("VACUUM INTO ?1", [plain.to_str().unwrap()])
            .unwrap();

        let replaced = replace_live(
            &plain,
            &live,
            Some(&safety),
            Duration::from_secs(1),
            &mut Quiet,
        )
        .unwrap();
        assert!(replaced.topped_up > 0, "{replaced:?}");

        let copy = Connection::open_with_flags(&safety, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
        let (count, check): (i64, String) = copy
            .query_row(
                "SELECT (SELECT count(*) FROM t), (SELECT integrity_check FROM pragma_integrity_check)",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!((count, check.as_str()), (995, "ok"));
        let restored: i64 = conn
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(restored, 3);
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
        replace_live(&plain, &live, None, Duration::from_secs(1), &mut Quiet).unwrap();
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
