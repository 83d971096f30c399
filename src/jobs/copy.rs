//! Consistent copies of a live database file, by three methods.
//!
//! Owns how bytes move from a database that keeps being written to into a
//! temp file. Every method yields a file holding exactly one committed state
//! of the source, in rollback-journal mode (header bytes 18 and 19 set to 1)
//! so it opens anywhere without `-wal`/`-shm` side files.
//!
//! - `api`: SQLite's online backup API in one `step(-1)`. It holds one read
//!   transaction for the whole copy, so a steady writer cannot restart it
//!   (paged steps, as the sqlite3 CLI's `.backup` takes, restart on every
//!   foreign commit and may never finish).
//! - `vacuum`: `VACUUM INTO`, which also compacts.
//! - `snapshot`, the fast path, for WAL databases:
//!   1. begin a read transaction and read from it, so this connection holds
//!      a WAL read mark (its snapshot), then read `page_count`;
//!   2. copy the main file's first `page_count` pages (zeros past its end)
//!      in 1 MiB chunks, read through the connection's own file handle
//!      ([`crate::db::file`]: a descriptor of our own, once closed, would
//!      drop this process's locks, this very read transaction's included);
//!   3. read every frame header of the `-wal` file and, for each page it
//!      names (up to `page_count`), overwrite that page in the copy with its
//!      snapshot content read through `sqlite_dbpage` in the same
//!      transaction;
//!   4. end the transaction.
//!
//!   Why this is consistent: while a reader holds a read mark, a checkpoint
//!   back-fills into the main file only frames up to that mark, so every
//!   page of the main file that changes during step 2 is one named in the
//!   WAL, and step 3 replaces all of those. A held non-zero read mark also
//!   stops writers from resetting the WAL, so the frames read in step 3 are
//!   still there; a reader on mark 0 (WAL fully checkpointed when it began)
//!   blocks back-fill entirely, so the main file does not change at all.
//!   Pages the WAL names beyond the snapshot's size are skipped; pages it
//!   names that did not change are rewritten with the same content.

use std::collections::BTreeSet;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, params};
use serde::Serialize;

use super::progress::Progress;
use crate::config::{BackupMethod, ConnectionPragmas};
use crate::db::file::FileReader;

/// The copy method actually used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CopyMethod {
    /// Kernel copy plus WAL page patching.
    Snapshot,
    /// Online backup API, one step.
    Api,
    /// `VACUUM INTO`.
    Vacuum,
}

impl CopyMethod {
    /// The name as in `jobs.yaml`.
    pub fn as_str(self) -> &'static str {
        match self {
            CopyMethod::Snapshot => "snapshot",
            CopyMethod::Api => "api",
            CopyMethod::Vacuum => "vacuum",
        }
    }
}

/// Why a copy failed.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// Reading the source or writing the copy failed.
    #[error("{}: {action}: {source}", crate::paths::display(.path))]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// What was being done.
        action: &'static str,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// SQLite refused a step.
    #[error("{}: {action}: {source}", crate::paths::display(.path))]
    Sqlite {
        /// The file concerned.
        path: PathBuf,
        /// What was being done.
        action: &'static str,
        /// The cause.
        #[source]
        source: rusqlite::Error,
    },
    /// `snapshot` was asked for but cannot be used on this file.
    #[error("{}: the snapshot method needs {needs}; use `method: api` or `auto`", crate::paths::display(.path))]
    SnapshotUnavailable {
        /// The database file.
        path: PathBuf,
        /// What is missing.
        needs: &'static str,
    },
}

impl CopyError {
    fn io<'a>(path: &'a Path, action: &'static str) -> impl FnOnce(io::Error) -> Self + 'a {
        move |source| CopyError::Io {
            path: path.to_path_buf(),
            action,
            source,
        }
    }

    fn sqlite<'a>(
        path: &'a Path,
        action: &'static str,
    ) -> impl FnOnce(rusqlite::Error) -> Self + 'a {
        move |source| CopyError::Sqlite {
            path: path.to_path_buf(),
            action,
            source,
        }
    }
}

/// What a copy produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CopyStats {
    /// The method used.
    pub method: CopyMethod,
    /// Pages in the copy.
    pub page_count: u64,
    /// Page size in bytes.
    pub page_size: u32,
    /// Pages rewritten from the WAL (snapshot method only).
    pub wal_pages: u64,
}

impl CopyStats {
    /// Size of the copy in bytes.
    pub fn bytes(&self) -> u64 {
        self.page_count * u64::from(self.page_size)
    }
}

const CHUNK_BYTES: usize = 1 << 20;

/// An open source database and the copy method resolved for it.
pub struct Source<'a> {
    conn: Connection,
    path: &'a Path,
    method: CopyMethod,
    busy_timeout: Duration,
}

impl<'a> Source<'a> {
    /// Opens the database at `path` and resolves `method` (`auto` is
    /// `snapshot` for a WAL database when SQLite has `sqlite_dbpage`, else
    /// `api`).
    pub fn open(
        path: &'a Path,
        method: BackupMethod,
        pragmas: &ConnectionPragmas,
    ) -> Result<Self, CopyError> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(CopyError::sqlite(path, "cannot open"))?;
        conn.busy_timeout(pragmas.busy_timeout)
            .map_err(CopyError::sqlite(path, "cannot set busy_timeout"))?;
        let method = match method {
            BackupMethod::Snapshot => match snapshot_blocker(&conn, path)? {
                Some(needs) => {
                    return Err(CopyError::SnapshotUnavailable {
                        path: path.to_path_buf(),
                        needs,
                    });
                }
                None => CopyMethod::Snapshot,
            },
            BackupMethod::Auto if snapshot_blocker(&conn, path)?.is_none() => CopyMethod::Snapshot,
            BackupMethod::Auto | BackupMethod::Api => CopyMethod::Api,
            BackupMethod::Vacuum => CopyMethod::Vacuum,
        };
        Ok(Self {
            conn,
            path,
            method,
            busy_timeout: pragmas.busy_timeout,
        })
    }

    /// The resolved method.
    pub fn method(&self) -> CopyMethod {
        self.method
    }

    /// Copies into the empty file `dest` (at `dest_path`), which must be
    /// open for reading and writing.
    pub fn copy_to(
        &self,
        dest: &File,
        dest_path: &Path,
        progress: &mut dyn Progress,
    ) -> Result<CopyStats, CopyError> {
        let stats = match self.method {
            CopyMethod::Snapshot => snapshot(&self.conn, self.path, dest, dest_path, progress)?,
            CopyMethod::Api => api(
                &self.conn,
                self.path,
                dest_path,
                self.busy_timeout,
                progress,
            )?,
            CopyMethod::Vacuum => vacuum(&self.conn, self.path, dest_path, progress)?,
        };
        mark_rollback_journal(dest, dest_path)?;
        Ok(stats)
    }

    /// Runs `work` inside one read transaction on the source, with a handle
    /// on that transaction's snapshot (for streaming it and checking it in
    /// the same transaction). Only for the snapshot method.
    pub fn in_snapshot<T, E>(
        &self,
        work: impl FnOnce(&Snapshot) -> Result<T, E>,
    ) -> Result<Result<T, E>, CopyError> {
        let snapshot = Snapshot {
            conn: &self.conn,
            path: self.path,
        };
        in_read_transaction(&self.conn, self.path, || Ok(work(&snapshot)))
    }
}

/// One read transaction on the source database: everything read through it
/// sees the same committed state.
pub struct Snapshot<'a> {
    conn: &'a Connection,
    path: &'a Path,
}

impl Snapshot<'_> {
    /// Streams the snapshot to `out` in one sequential pass, with no
    /// intermediate file (for compression).
    ///
    /// The WAL's page list is read right after the read transaction starts:
    /// every frame up to this reader's mark is in the file by then, and only
    /// those frames can be back-filled while the main file is streamed, so
    /// the list covers every page that may change under the stream.
    pub fn stream(
        &self,
        out: &mut dyn io::Write,
        out_path: &Path,
        progress: &mut dyn Progress,
    ) -> Result<CopyStats, CopyError> {
        stream_in_transaction(self.conn, self.path, out, out_path, progress)
    }

    /// The connection holding the transaction (SQLite's checks run through
    /// it see the snapshot).
    pub fn connection(&self) -> &Connection {
        self.conn
    }

    /// The source database file.
    pub fn path(&self) -> &Path {
        self.path
    }
}

/// Runs `copy` inside one read transaction on `conn`, which is ended
/// whether `copy` succeeds or not; the copy's error wins over the end's.
fn in_read_transaction<T>(
    conn: &Connection,
    source: &Path,
    copy: impl FnOnce() -> Result<T, CopyError>,
) -> Result<T, CopyError> {
    conn.execute_batch("BEGIN")
        .map_err(CopyError::sqlite(source, "cannot begin a read transaction"))?;
    let result = copy();
    let end = conn
        .execute_batch("COMMIT")
        .map_err(CopyError::sqlite(source, "cannot end the read transaction"));
    let value = result?;
    end?;
    Ok(value)
}

/// Starts the read transaction's snapshot; returns (page_size, page_count).
fn begin_snapshot(conn: &Connection, source: &Path) -> Result<(u32, u64), CopyError> {
    conn.query_row("SELECT count(*) FROM sqlite_schema", [], |_| Ok(()))
        .map_err(CopyError::sqlite(source, "cannot start a read transaction"))?;
    geometry(conn, source)
}

/// (page_size, page_count) of the database behind `conn`.
fn geometry(conn: &Connection, path: &Path) -> Result<(u32, u64), CopyError> {
    let page_size: u32 = conn
        .pragma_query_value(None, "page_size", |r| r.get(0))
        .map_err(CopyError::sqlite(path, "cannot read page_size"))?;
    let page_count: i64 = conn
        .pragma_query_value(None, "page_count", |r| r.get(0))
        .map_err(CopyError::sqlite(path, "cannot read page_count"))?;
    Ok((page_size, page_count.max(0) as u64))
}

fn stream_in_transaction(
    conn: &Connection,
    source: &Path,
    out: &mut dyn io::Write,
    out_path: &Path,
    progress: &mut dyn Progress,
) -> Result<CopyStats, CopyError> {
    let (page_size, page_count) = begin_snapshot(conn, source)?;
    let pages = wal_pages(&wal_path(source), page_count)?;
    let main = FileReader::of(conn).map_err(CopyError::io(source, "cannot open"))?;
    let total = page_count * u64::from(page_size);
    let page = page_size as usize;
    let mut buffer = vec![0u8; page * (CHUNK_BYTES / page).max(1)];
    let mut statement = conn
        .prepare("SELECT data FROM sqlite_dbpage WHERE pgno = ?1")
        .map_err(CopyError::sqlite(source, "cannot read sqlite_dbpage"))?;
    progress.start("snapshot", Some(total));
    let mut offset = 0u64;
    while offset < total {
        let len = buffer.len().min((total - offset) as usize);
        let chunk = &mut buffer[..len];
        main.read_at(chunk, offset)
            .map_err(CopyError::io(source, "cannot read"))?;
        let first = offset / u64::from(page_size) + 1;
        let last = first + (len / page) as u64 - 1;
        for number in pages.range(first..=last) {
            let data: Vec<u8> = statement
                .query_row(params![*number as i64], |row| row.get(0))
                .map_err(CopyError::sqlite(source, "cannot read a page"))?;
            let at = (number - first) as usize * page;
            chunk[at..at + page].copy_from_slice(&data[..page]);
        }
        if offset == 0 && len > 19 {
            chunk[18] = 1;
            chunk[19] = 1;
        }
        out.write_all(chunk)
            .map_err(CopyError::io(out_path, "cannot write"))?;
        offset += len as u64;
        progress.advance(offset);
    }
    progress.finish();
    Ok(CopyStats {
        method: CopyMethod::Snapshot,
        page_count,
        page_size,
        wal_pages: pages.len() as u64,
    })
}

/// Why the snapshot method cannot be used, if it cannot.
fn snapshot_blocker(conn: &Connection, source: &Path) -> Result<Option<&'static str>, CopyError> {
    let mode: String = conn
        .pragma_query_value(None, "journal_mode", |row| row.get(0))
        .map_err(CopyError::sqlite(source, "cannot read journal_mode"))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Ok(Some("a database in WAL mode"));
    }
    let has_dbpage = conn
        .prepare("SELECT 1 FROM sqlite_dbpage WHERE pgno = 1")
        .is_ok();
    Ok((!has_dbpage).then_some("SQLite built with SQLITE_ENABLE_DBPAGE_VTAB"))
}

fn snapshot(
    conn: &Connection,
    source: &Path,
    dest: &File,
    dest_path: &Path,
    progress: &mut dyn Progress,
) -> Result<CopyStats, CopyError> {
    in_read_transaction(conn, source, || {
        snapshot_in_transaction(conn, source, dest, dest_path, progress)
    })
}

fn snapshot_in_transaction(
    conn: &Connection,
    source: &Path,
    dest: &File,
    dest_path: &Path,
    progress: &mut dyn Progress,
) -> Result<CopyStats, CopyError> {
    let (page_size, page_count) = begin_snapshot(conn, source)?;
    let bytes = page_count * u64::from(page_size);

    let main = FileReader::of(conn).map_err(CopyError::io(source, "cannot open"))?;
    progress.start("copy", Some(bytes));
    copy_bytes(&main, source, bytes, dest, dest_path, &mut |done| {
        progress.advance(done)
    })?;
    progress.finish();

    let pages = wal_pages(&wal_path(source), page_count)?;
    progress.start(
        "patch pages from the WAL",
        Some(pages.len() as u64 * u64::from(page_size)),
    );
    let mut statement = conn
        .prepare("SELECT data FROM sqlite_dbpage WHERE pgno = ?1")
        .map_err(CopyError::sqlite(source, "cannot read sqlite_dbpage"))?;
    for (done, page) in pages.iter().enumerate() {
        let data: Vec<u8> = statement
            .query_row(params![*page as i64], |row| row.get(0))
            .map_err(CopyError::sqlite(source, "cannot read a page"))?;
        dest.write_all_at(&data, (page - 1) * u64::from(page_size))
            .map_err(CopyError::io(dest_path, "cannot write"))?;
        progress.advance((done as u64 + 1) * u64::from(page_size));
    }
    progress.finish();
    Ok(CopyStats {
        method: CopyMethod::Snapshot,
        page_count,
        page_size,
        wal_pages: pages.len() as u64,
    })
}

/// Copies the first `len` bytes of `main` (zeros past its end) to the same
/// offsets of `dest`, 1 MiB at a time, telling `advance` the bytes done.
fn copy_bytes(
    main: &FileReader,
    source: &Path,
    len: u64,
    dest: &File,
    dest_path: &Path,
    advance: &mut dyn FnMut(u64),
) -> Result<(), CopyError> {
    let mut buffer = vec![0u8; (CHUNK_BYTES as u64).min(len) as usize];
    let mut offset = 0;
    while offset < len {
        let chunk = &mut buffer[..(len - offset).min(CHUNK_BYTES as u64) as usize];
        main.read_at(chunk, offset)
            .map_err(CopyError::io(source, "cannot read"))?;
        dest.write_all_at(chunk, offset)
            .map_err(CopyError::io(dest_path, "cannot write"))?;
        offset += chunk.len() as u64;
        advance(offset);
    }
    Ok(())
}

/// Copies the file at `source` byte for byte into the empty file `dest`,
/// whatever it holds (a damaged database SQLite cannot read is kept this
/// way), through SQLite's handle (see [`crate::db::file`]); returns the
/// bytes copied.
pub fn copy_raw(source: &Path, dest: &File, dest_path: &Path) -> Result<u64, CopyError> {
    let cannot_open = |e| CopyError::io(source, "cannot open")(e);
    let conn = crate::db::file::open(source)
        .map_err(|e| cannot_open(e.into_io()))?
        .ok_or_else(|| cannot_open(io::ErrorKind::NotFound.into()))?;
    let main = FileReader::of(&conn).map_err(cannot_open)?;
    let len = main.size().map_err(CopyError::io(source, "cannot stat"))?;
    copy_bytes(&main, source, len, dest, dest_path, &mut |_| {})?;
    Ok(len)
}

fn wal_path(source: &Path) -> PathBuf {
    let mut name = source.as_os_str().to_owned();
    name.push("-wal");
    PathBuf::from(name)
}

/// Page numbers (1..=page_count) named by any frame header of the WAL file.
fn wal_pages(wal: &Path, page_count: u64) -> Result<BTreeSet<u64>, CopyError> {
    const WAL_HEADER: u64 = 32;
    const FRAME_HEADER: u64 = 24;
    let file = match File::open(wal) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(BTreeSet::new()),
        Err(e) => return Err(CopyError::io(wal, "cannot open")(e)),
    };
    let length = file
        .metadata()
        .map_err(CopyError::io(wal, "cannot stat"))?
        .len();
    let mut header = [0u8; WAL_HEADER as usize];
    if length < WAL_HEADER || file.read_exact_at(&mut header, 0).is_err() {
        return Ok(BTreeSet::new());
    }
    let magic = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
    if magic & !1 != 0x377f_0682 {
        return Ok(BTreeSet::new());
    }
    let wal_page_size = u64::from(u32::from_be_bytes([
        header[8], header[9], header[10], header[11],
    ]));
    let wal_page_size = if wal_page_size == 1 {
        65536
    } else {
        wal_page_size
    };
    let mut pages = BTreeSet::new();
    let mut frame = [0u8; 4];
    let mut offset = WAL_HEADER;
    while offset + FRAME_HEADER + wal_page_size <= length {
        file.read_exact_at(&mut frame, offset)
            .map_err(CopyError::io(wal, "cannot read"))?;
        let page = u64::from(u32::from_be_bytes(frame));
        if (1..=page_count).contains(&page) {
            pages.insert(page);
        }
        offset += FRAME_HEADER + wal_page_size;
    }
    Ok(pages)
}

/// SQLite says "database or disk is full" for either file; while copying,
/// a full disk is the copy's (the source is only read), so the error names
/// the copy's path.
fn blame_full_disk(
    error: rusqlite::Error,
    source: &Path,
    dest_path: &Path,
    action: &'static str,
) -> CopyError {
    if error.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull) {
        CopyError::Sqlite {
            path: dest_path.parent().unwrap_or(dest_path).to_path_buf(),
            action: "no space left for the copy (this disk is full)",
            source: error,
        }
    } else {
        CopyError::sqlite(source, action)(error)
    }
}

fn api(
    conn: &Connection,
    source: &Path,
    dest_path: &Path,
    busy_timeout: Duration,
    progress: &mut dyn Progress,
) -> Result<CopyStats, CopyError> {
    let mut dest =
        Connection::open(dest_path).map_err(CopyError::sqlite(dest_path, "cannot open"))?;
    dest.pragma_update(None, "journal_mode", "off")
        .map_err(CopyError::sqlite(
            dest_path,
            "cannot turn the copy's journal off",
        ))?;
    progress.start("backup API", None);
    {
        let backup = rusqlite::backup::Backup::new(conn, &mut dest)
            .map_err(CopyError::sqlite(source, "cannot start the backup"))?;
        let deadline = std::time::Instant::now() + busy_timeout;
        loop {
            match backup
                .step(-1)
                .map_err(|e| blame_full_disk(e, source, dest_path, "backup step failed"))?
            {
                rusqlite::backup::StepResult::Done => break,
                _ if std::time::Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                _ => {
                    return Err(CopyError::Sqlite {
                        path: source.to_path_buf(),
                        action: "backup step failed",
                        source: rusqlite::Error::SqliteFailure(
                            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
                            Some("database is busy".into()),
                        ),
                    });
                }
            }
        }
    }
    progress.finish();
    stats_of(&dest, dest_path, CopyMethod::Api)
}

fn vacuum(
    conn: &Connection,
    source: &Path,
    dest_path: &Path,
    progress: &mut dyn Progress,
) -> Result<CopyStats, CopyError> {
    progress.start("VACUUM INTO", None);
    conn.execute("VACUUM INTO ?1", params![dest_path.to_string_lossy()])
        .map_err(|e| blame_full_disk(e, source, dest_path, "VACUUM INTO failed"))?;
    progress.finish();
    let dest = Connection::open_with_flags(dest_path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(CopyError::sqlite(dest_path, "cannot open"))?;
    stats_of(&dest, dest_path, CopyMethod::Vacuum)
}

fn stats_of(conn: &Connection, path: &Path, method: CopyMethod) -> Result<CopyStats, CopyError> {
    let (page_size, page_count) = geometry(conn, path)?;
    Ok(CopyStats {
        method,
        page_count,
        page_size,
        wal_pages: 0,
    })
}

/// Sets the file-format bytes 18 and 19 to 1 (rollback journal), so the
/// copy opens without WAL side files. SQLite itself does this when leaving
/// WAL mode; the pages are complete, so nothing else changes.
fn mark_rollback_journal(dest: &File, dest_path: &Path) -> Result<(), CopyError> {
    let mut versions = [0u8; 2];
    dest.read_exact_at(&mut versions, 18)
        .map_err(CopyError::io(dest_path, "cannot read the header"))?;
    if versions != [1, 1] {
        dest.write_all_at(&[1, 1], 18)
            .map_err(CopyError::io(dest_path, "cannot write the header"))?;
    }
    Ok(())
}
