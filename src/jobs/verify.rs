//! Checking a backup or database file: SHA-256 and SQLite's own checks.
//!
//! Owns reading a stored file back: hashing it, decoding `.zst` backups, and
//! running `quick_check` / `integrity_check` on a plain file opened
//! read-only. Nothing here writes next to the file it reads (a backup
//! directory may be a read-only mount): a compressed backup that SQLite must
//! open is decoded into a temp file in a scratch directory the caller names
//! (the state directory), removed when dropped, on a signal, or by the next
//! sweep after a crash (see [`crate::durable`]).
//!
//! Every decode is bounded by the SQLite header of the decoded stream: the
//! in-header page count × page size is the database's size, so a stream that
//! decodes to more (a zstd bomb) is refused as soon as it passes that size,
//! one that decodes to less is reported truncated, and a plain file is read
//! only up to that size (a sparse 20 GB file holding two pages costs two
//! pages).

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use rusqlite::{Connection, OpenFlags};
use sha2::{Digest, Sha256};

use super::progress::Progress;
use crate::config::VerifyLevel;
use crate::durable::PendingFile;

/// How much of a database SQLite's checks read through a memory map
/// (SQLite's own ceiling): a check then costs its CPU work, not one `pread`
/// system call per page (a third of the time at 1 GiB). SQLite keeps reads
/// inside the read transaction's snapshot, which no checkpoint can shrink.
const CHECK_MMAP: i64 = 0x7fff_0000;

/// Bytes of the SQLite header that say how large the database is.
const HEADER: usize = 100;

/// Why a file failed verification or could not be read.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The file could not be read.
    #[error("{}: {action}: {source}", crate::paths::display(.path))]
    Io {
        /// The file.
        path: PathBuf,
        /// What was being done.
        action: &'static str,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The file is not what it should be.
    #[error("{}: {detail}", crate::paths::display(.path))]
    Damaged {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
}

impl VerifyError {
    fn io<'a>(path: &'a Path, action: &'static str) -> impl FnOnce(io::Error) -> Self + 'a {
        move |source| VerifyError::Io {
            path: path.to_path_buf(),
            action,
            source,
        }
    }

    fn damaged(path: &Path, detail: impl Into<String>) -> Self {
        VerifyError::Damaged {
            path: path.to_path_buf(),
            detail: detail.into(),
        }
    }
}

/// A writer or reader wrapper that hashes what passes through.
pub struct Hashing<T> {
    inner: T,
    hasher: Sha256,
    bytes: u64,
}

impl<T> Hashing<T> {
    /// Wraps `inner`.
    pub fn new(inner: T) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            bytes: 0,
        }
    }

    /// The hex SHA-256 and byte count of everything seen.
    pub fn finish(self) -> (String, u64, T) {
        (
            crate::store::hex(&self.hasher.finalize()),
            self.bytes,
            self.inner,
        )
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

/// The hex SHA-256 of the file at `path`.
pub fn sha256_file(path: &Path) -> Result<String, VerifyError> {
    let mut file = open_regular(path)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        match file.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => hasher.update(&buffer[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(VerifyError::io(path, "cannot read")(e)),
        }
    }
    Ok(crate::store::hex(&hasher.finalize()))
}

/// Whether `path` names a compressed backup.
pub fn is_compressed(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "zst")
}

/// Runs `level`'s check on the plain SQLite file at `path`, opened
/// read-only. The file may be a live database (health checks, restore):
/// its header is read through SQLite's handle ([`crate::db::file`]).
pub fn check_database(path: &Path, level: VerifyLevel) -> Result<(), VerifyError> {
    if level == VerifyLevel::None {
        return Ok(());
    }
    let mut header = [0u8; 16];
    let size = crate::db::file::read_start(path, &mut header)
        .map_err(|error| open_error(path, error))?
        .ok_or_else(|| VerifyError::io(path, "cannot open")(io::ErrorKind::NotFound.into()))?;
    if size < 16 || &header != b"SQLite format 3\0" {
        return Err(VerifyError::damaged(
            path,
            "not a SQLite database (truncated or damaged)",
        ));
    }
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| VerifyError::damaged(path, format!("cannot open: {e}")))?;
    check_connection(&conn, path, level)?;
    check_schema_loads(&conn, path)
}

/// [`check_database`] for a stored file (a backup, a file to restore from)
/// that nothing writes: refused when a `-wal` beside it holds commits the
/// file lacks, else opened immutable, so SQLite writes no `-shm` or `-wal`
/// beside it.
pub fn check_stored(path: &Path, level: VerifyLevel) -> Result<(), VerifyError> {
    no_wal_beside(path)?;
    if level == VerifyLevel::None {
        return Ok(());
    }
    if !is_closed_wal_file(path) {
        return check_database(path, level);
    }
    let conn = Connection::open_with_flags(
        immutable_uri(path),
        OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI,
    )
    .map_err(|e| VerifyError::damaged(path, format!("cannot open: {e}")))?;
    check_connection(&conn, path, level)?;
    check_schema_loads(&conn, path)
}

/// A WAL-format file that no process has open (no `-shm` beside it):
/// SQLite would create `-shm` and `-wal` to read it, so it is read
/// immutable. Anything else is read with SQLite's locks.
fn is_closed_wal_file(path: &Path) -> bool {
    let mut header = [0u8; 19];
    let wal_format = matches!(crate::db::file::read_start(path, &mut header), Ok(Some(size)) if size >= 19)
        && header[18] == 2;
    wal_format && !beside(path, "-shm").exists()
}

fn beside(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(suffix);
    PathBuf::from(name)
}

/// Refuses a file with a non-empty `-wal` beside it: its content is the
/// file plus that log (a live or uncleanly closed database), so reading the
/// file alone would check, or restore, less than it holds.
pub fn no_wal_beside(path: &Path) -> Result<(), VerifyError> {
    let wal = beside(path, "-wal");
    match std::fs::metadata(&wal) {
        Ok(meta) if meta.len() > 0 => Err(VerifyError::damaged(
            path,
            format!(
                "{} beside it holds {} bytes of commits that are not in the file (a live or uncleanly closed database, not a backup); copy it consistently first, e.g. sqlite3 {} \".backup copy.db\", and use copy.db",
                crate::paths::display(&wal),
                meta.len(),
                crate::paths::display(path),
            ),
        )),
        _ => Ok(()),
    }
}

/// `file:` URI opening `path` immutable: no locks, and nothing written beside it.
fn immutable_uri(path: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut uri = String::from("file:");
    for &byte in absolute.as_os_str().as_bytes() {
        if byte.is_ascii_alphanumeric() || b"/-_.~".contains(&byte) {
            uri.push(byte as char);
        } else {
            uri.push_str(&format!("%{byte:02X}"));
        }
    }
    uri.push_str("?immutable=1");
    uri
}

/// Replays the schema into an in-memory database the way a read-write
/// connection loads it. A read-only connection skips CHECK constraints, so
/// a schema no writer can load (a CHECK calling `load_extension()`, written
/// through `writable_schema`) would pass its checks, and then every backup
/// and in-place restore of the database would fail.
fn check_schema_loads(conn: &Connection, path: &Path) -> Result<(), VerifyError> {
    let failed =
        |e: rusqlite::Error| VerifyError::damaged(path, format!("cannot read the schema: {e}"));
    let mut statement = conn
        .prepare(
            "SELECT type, name, sql FROM sqlite_schema
             WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite!_%' ESCAPE '!'
             ORDER BY CASE type WHEN 'table' THEN 0 WHEN 'index' THEN 1 WHEN 'view' THEN 2 ELSE 3 END, rowid",
        )
        .map_err(failed)?;
    let objects: Vec<(String, String, String)> = statement
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .and_then(|rows| rows.collect())
        .map_err(failed)?;
    let memory = Connection::open_in_memory().map_err(failed)?;
    for (kind, name, sql) in objects {
        let exists: bool = memory
            .query_row(
                "SELECT count(*) > 0 FROM sqlite_schema WHERE name = ?1",
                [&name],
                |r| r.get(0),
            )
            .map_err(failed)?;
        if exists {
            continue;
        }
        if let Err(e) = memory.execute_batch(&sql) {
            if e.to_string().starts_with("no such module") {
                continue;
            }
            return Err(VerifyError::damaged(
                path,
                format!(
                    "the schema of {kind} {name} cannot be loaded by a writer ({e}); litewarden could not back up or restore into it"
                ),
            ));
        }
    }
    Ok(())
}

/// Runs `level`'s check on the database behind `conn` (inside the caller's
/// transaction, if one is open: then it checks that snapshot).
pub fn check_connection(
    conn: &Connection,
    path: &Path,
    level: VerifyLevel,
) -> Result<(), VerifyError> {
    let pragma = match level {
        VerifyLevel::None => return Ok(()),
        VerifyLevel::Quick => "quick_check",
        VerifyLevel::Full => "integrity_check",
    };
    conn.pragma_update(None, "mmap_size", CHECK_MMAP)
        .map_err(|e| VerifyError::damaged(path, format!("{pragma} failed: {e}")))?;
    let mut statement = conn
        .prepare(&format!("PRAGMA {pragma}"))
        .map_err(|e| VerifyError::damaged(path, format!("{pragma} failed: {e}")))?;
    let problems: Vec<String> = statement
        .query_map([], |row| row.get::<_, String>(0))
        .and_then(|rows| rows.collect())
        .map_err(|e| VerifyError::damaged(path, format!("{pragma} failed: {e}")))?;
    if problems.len() == 1 && problems[0] == "ok" {
        Ok(())
    } else {
        let shown: Vec<_> = problems.iter().take(3).cloned().collect();
        Err(VerifyError::damaged(
            path,
            format!("{pragma} failed: {}", shown.join("; ")),
        ))
    }
}

/// A plain SQLite file for a stored backup: the file itself, or a decoded
/// copy in a scratch directory, removed when this is dropped.
#[derive(Debug)]
pub struct PlainCopy {
    path: PathBuf,
    _temp: Option<PendingFile>,
}

impl PlainCopy {
    /// Path of the plain database file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The plain form of the backup at `path`: the file itself, or for `.zst`
/// files a decoded copy in `scratch_dir`.
pub fn plain_copy(
    path: &Path,
    scratch_dir: &Path,
    progress: &mut dyn Progress,
) -> Result<PlainCopy, VerifyError> {
    if !is_compressed(path) {
        return Ok(PlainCopy {
            path: path.to_path_buf(),
            _temp: None,
        });
    }
    decoded_copy(path, true, scratch_dir, progress).map(|(plain, _)| plain)
}

/// Decodes the backup at `path` (zstd when `compressed`) into a temp file
/// in `scratch_dir`; returns it with what reading `path` found.
pub fn decoded_copy(
    path: &Path,
    compressed: bool,
    scratch_dir: &Path,
    progress: &mut dyn Progress,
) -> Result<(PlainCopy, ReadBack), VerifyError> {
    let temp = scratch_file(scratch_dir)
        .map_err(VerifyError::io(scratch_dir, "cannot create a scratch file"))?;
    let read = decode_into(
        path,
        compressed,
        &mut BufWriter::with_capacity(1 << 20, temp.file()),
        progress,
    )?;
    Ok((
        PlainCopy {
            path: temp.path().to_path_buf(),
            _temp: Some(temp),
        },
        read,
    ))
}

/// A new scratch file in `scratch_dir` for SQLite to open, after removing
/// the scratch files that killed runs left there.
pub fn scratch_file(scratch_dir: &Path) -> io::Result<PendingFile> {
    if let Err(e) = crate::durable::remove_unlocked_temps(scratch_dir) {
        tracing::warn!(dir = %scratch_dir.display(), error = %e, "cannot look for the scratch files of interrupted runs");
    }
    PendingFile::create_named(&scratch_dir.join("scratch.db"))
}

/// What reading a stored backup back found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadBack {
    /// Hex SHA-256 of the file as stored.
    pub sha256: String,
    /// Bytes of the plain database it holds.
    pub plain_bytes: u64,
}

/// Reads the backup at `path` through without writing anything: its
/// SHA-256, and when `compressed` the whole zstd decode (zstd's own content
/// checksum included), bounded by the SQLite header.
pub fn read_back(
    path: &Path,
    compressed: bool,
    progress: &mut dyn Progress,
) -> Result<ReadBack, VerifyError> {
    decode_into(path, compressed, &mut io::sink(), progress)
}

/// Streams the plain database held by the backup at `path` (decoding zstd
/// when `compressed`; see [`is_compressed`]) into `out`, bounded by its
/// SQLite header; hashes the stored bytes on the way.
pub fn decode_into(
    path: &Path,
    compressed: bool,
    out: &mut dyn Write,
    progress: &mut dyn Progress,
) -> Result<ReadBack, VerifyError> {
    let file = open_regular(path)?;
    let total = file
        .metadata()
        .map_err(VerifyError::io(path, "cannot stat"))?
        .len();
    let mut header = [0u8; HEADER];
    let plain_limit = match file.read_exact_at(&mut header, 0) {
        Ok(()) => declared_size(&header).unwrap_or(u64::MAX),
        Err(_) => u64::MAX,
    };
    progress.start(if compressed { "decompress" } else { "copy" }, Some(total));
    let read = decode_stream(
        path,
        ProgressReader {
            inner: file,
            done: 0,
            progress: &mut *progress,
        },
        compressed,
        plain_limit,
        out,
    )?;
    progress.finish();
    Ok(read)
}

/// Reads back the zstd file at `path` while another thread is still
/// writing it (until `writing` turns false), as [`read_back`] does once it
/// is complete: so the decode overlaps the compression.
pub fn read_back_following(path: &Path, writing: &AtomicBool) -> Result<ReadBack, VerifyError> {
    let file = File::open(path).map_err(VerifyError::io(path, "cannot open"))?;
    decode_stream(
        path,
        Following { file, writing },
        true,
        u64::MAX,
        &mut io::sink(),
    )
}

/// A file another thread appends to: at its current end a read waits until
/// more is written, and ends only once `writing` is false.
struct Following<'a> {
    file: File,
    writing: &'a AtomicBool,
}

impl Read for Following<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let still_writing = self.writing.load(Ordering::Acquire);
            let n = self.file.read(buf)?;
            if n > 0 || !still_writing {
                return Ok(n);
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }
}

fn decode_stream(
    path: &Path,
    source: impl Read,
    compressed: bool,
    plain_limit: u64,
    out: &mut dyn Write,
) -> Result<ReadBack, VerifyError> {
    let mut stored = Hashing::new(source);
    let mut bounded = Bounded::new(path, out, compressed);
    if compressed {
        let mut decoder =
            zstd::Decoder::new(&mut stored).map_err(VerifyError::io(path, "cannot read"))?;
        copy_decoded(path, true, &mut decoder, &mut bounded)?;
        drop(decoder);
        io::copy(&mut stored, &mut io::sink()).map_err(VerifyError::io(path, "cannot read"))?;
    } else {
        copy_decoded(
            path,
            false,
            &mut (&mut stored).take(plain_limit),
            &mut bounded,
        )?;
    }
    let plain_bytes = bounded.finish()?;
    let (sha256, _, _) = stored.finish();
    Ok(ReadBack {
        sha256,
        plain_bytes,
    })
}

/// Copies `from` (the decoder, or the plain file) into `to` through a
/// 1 MiB buffer; a read error is the source's (damaged when `compressed`
/// and the decoder refuses it), a write error is `to`'s.
fn copy_decoded(
    path: &Path,
    compressed: bool,
    from: &mut dyn Read,
    to: &mut Bounded,
) -> Result<(), VerifyError> {
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let n = match from.read(&mut buffer) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(match e.kind() {
                    io::ErrorKind::Other
                    | io::ErrorKind::InvalidData
                    | io::ErrorKind::UnexpectedEof
                        if compressed =>
                    {
                        VerifyError::damaged(path, format!("not a valid zstd file: {e}"))
                    }
                    _ => VerifyError::io(path, "cannot read")(e),
                });
            }
        };
        if let Err(e) = to.write_all(&buffer[..n]) {
            return Err(to
                .failure
                .take()
                .unwrap_or_else(|| VerifyError::io(path, "cannot write")(e)));
        }
    }
}

/// Opens `path` for reading, refusing what is not a regular file (a FIFO or
/// a device would block or never end).
fn open_regular(path: &Path) -> Result<File, VerifyError> {
    crate::regular::open(path).map_err(|error| open_error(path, error))
}

fn open_error(path: &Path, error: crate::regular::OpenError) -> VerifyError {
    match error {
        crate::regular::OpenError::NotRegular(what) => VerifyError::damaged(
            path,
            if what == "a directory" {
                "a directory, not a backup or database file"
            } else {
                "not a regular file"
            },
        ),
        crate::regular::OpenError::Io(e) => VerifyError::io(path, "cannot open")(e),
    }
}

/// A writer that passes on at most the size the SQLite header of what it
/// is given declares (page count × page size, bytes 28 and 16).
struct Bounded<'a> {
    path: &'a Path,
    out: &'a mut dyn Write,
    /// A stream longer than its header says is an error (decoded backups);
    /// else the rest is dropped (a plain file's trailing bytes or holes).
    strict: bool,
    header: Vec<u8>,
    declared: Option<u64>,
    written: u64,
    failure: Option<VerifyError>,
}

impl<'a> Bounded<'a> {
    fn new(path: &'a Path, out: &'a mut dyn Write, strict: bool) -> Self {
        Self {
            path,
            out,
            strict,
            header: Vec::with_capacity(HEADER),
            declared: None,
            written: 0,
            failure: None,
        }
    }

    fn fail(&mut self, detail: String) -> io::Error {
        self.failure = Some(VerifyError::damaged(self.path, detail));
        io::Error::other("refused")
    }

    /// Flushes and returns the bytes written, or why the stream is short.
    fn finish(self) -> Result<u64, VerifyError> {
        if self.declared.is_none() {
            return Err(VerifyError::damaged(
                self.path,
                "not a SQLite database (truncated or damaged)",
            ));
        }
        let declared = self.declared.unwrap_or_default();
        if self.written < declared {
            return Err(VerifyError::damaged(
                self.path,
                format!(
                    "holds {} bytes, but its SQLite header declares {declared} (page count × page size): truncated",
                    self.written
                ),
            ));
        }
        self.out
            .flush()
            .map_err(VerifyError::io(self.path, "cannot write"))?;
        Ok(self.written)
    }
}

/// The database size an SQLite header declares, when it records one.
fn declared_size(header: &[u8]) -> Result<u64, &'static str> {
    if header.len() < HEADER || &header[..16] != b"SQLite format 3\0" {
        return Err("not a SQLite database (truncated or damaged)");
    }
    let page_size = match u16::from_be_bytes([header[16], header[17]]) {
        1 => 65536,
        n => u64::from(n),
    };
    let page_count = u64::from(u32::from_be_bytes([
        header[28], header[29], header[30], header[31],
    ]));
    if header[24..28] != header[92..96] || page_count == 0 {
        return Err(
            "its SQLite header does not record the database size (written by SQLite before 3.7.0), so its size cannot be bounded",
        );
    }
    Ok(page_size * page_count)
}

impl Write for Bounded<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut rest = buf;
        if self.declared.is_none() {
            let need = (HEADER - self.header.len()).min(rest.len());
            self.header.extend_from_slice(&rest[..need]);
            rest = &rest[need..];
            if self.header.len() < HEADER {
                return Ok(buf.len());
            }
            match declared_size(&self.header) {
                Ok(size) => self.declared = Some(size),
                Err(detail) => return Err(self.fail(detail.to_string())),
            }
            let header = std::mem::take(&mut self.header);
            self.pass(&header)?;
        }
        self.pass(rest)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

impl Bounded<'_> {
    fn pass(&mut self, buf: &[u8]) -> io::Result<()> {
        let declared = self.declared.unwrap_or_default();
        let room = declared.saturating_sub(self.written);
        if buf.len() as u64 > room {
            if self.strict {
                return Err(self.fail(format!(
                    "decodes to more than the {declared} bytes its SQLite header declares (page count × page size); refused"
                )));
            }
            self.out.write_all(&buf[..room as usize])?;
            self.written += room;
            return Ok(());
        }
        self.out.write_all(buf)?;
        self.written += buf.len() as u64;
        Ok(())
    }
}

struct ProgressReader<'a, R> {
    inner: R,
    done: u64,
    progress: &'a mut dyn Progress,
}

impl<R: Read> Read for ProgressReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.done += n as u64;
        self.progress.advance(self.done);
        Ok(n)
    }
}

/// The result of verifying a file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Verified {
    /// SHA-256 of the file as stored.
    pub sha256: String,
    /// Whether it matched the catalog (None: not catalogued).
    pub matches_catalog: Option<bool>,
}

/// Full verification of a stored file: its checksum against `expected`
/// (when known), then `level`'s check of the plain database (a `.zst` file
/// decoded into `scratch_dir` for it).
pub fn verify_file(
    path: &Path,
    expected: Option<&str>,
    level: VerifyLevel,
    scratch_dir: &Path,
    progress: &mut dyn Progress,
) -> Result<Verified, VerifyError> {
    open_regular(path)?;
    let (plain, sha256) = if is_compressed(path) {
        let (plain, read) = match decoded_copy(path, true, scratch_dir, progress) {
            Ok(decoded) => decoded,
            Err(error) => {
                return Err(match expected {
                    Some(expected) => match sha256_file(path) {
                        Ok(found) if found != expected => changed(path, &found, expected),
                        _ => error,
                    },
                    None => error,
                });
            }
        };
        (plain, read.sha256)
    } else {
        (plain_copy(path, scratch_dir, progress)?, sha256_file(path)?)
    };
    if let Some(expected) = expected
        && expected != sha256
    {
        return Err(changed(path, &sha256, expected));
    }
    check_stored(plain.path(), level)?;
    Ok(Verified {
        matches_catalog: expected.map(|_| true),
        sha256,
    })
}

/// The error for a stored file whose SHA-256 is not the catalogued one.
pub fn changed(path: &Path, found: &str, expected: &str) -> VerifyError {
    VerifyError::damaged(
        path,
        format!(
            "SHA-256 is {found}, the catalog recorded {expected}: the file changed since it was written"
        ),
    )
}
