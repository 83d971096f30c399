//! Reading a database file's bytes through SQLite's own file handle.
//!
//! POSIX advisory locks belong to a process and a file, not to a
//! descriptor: closing *any* descriptor of a database file drops every lock
//! this process's SQLite connections hold on it ("How To Corrupt An SQLite
//! Database File", §2.2). Another process may then take the file for
//! itself: switch it out of WAL mode, or, closing its last connection,
//! checkpoint and delete the WAL under a read transaction here (a snapshot
//! backup under load once failed "malformed" this way). So litewarden never
//! opens a database file with a descriptor of its own: [`FileReader`] reads
//! through the handle SQLite opened for a connection, and SQLite closes
//! that handle only once no connection of this process holds a lock on the
//! file.
//!
//! Owns no state. The only `unsafe` code of the crate is here: two calls
//! through SQLite's documented VFS interface (`sqlite3_file_control` with
//! `SQLITE_FCNTL_FILE_POINTER`, then the file's `xFileSize` and `xRead`).

use std::io;
use std::marker::PhantomData;
use std::path::Path;

use rusqlite::{Connection, OpenFlags, ffi};

use crate::regular::OpenError;

/// Reads the main database file of one connection, through the file handle
/// that connection's pager uses.
pub struct FileReader<'c> {
    file: *mut ffi::sqlite3_file,
    methods: &'c ffi::sqlite3_io_methods,
    connection: PhantomData<&'c Connection>,
}

impl<'c> FileReader<'c> {
    /// The reader of `conn`'s main database file.
    pub fn of(conn: &'c Connection) -> io::Result<Self> {
        let mut file: *mut ffi::sqlite3_file = std::ptr::null_mut();
        // SAFETY: `conn.handle()` is a live connection for the borrow of
        // `conn`; SQLITE_FCNTL_FILE_POINTER writes one `sqlite3_file*` into
        // the pointer it is given.
        let code = unsafe {
            ffi::sqlite3_file_control(
                conn.handle(),
                c"main".as_ptr(),
                ffi::SQLITE_FCNTL_FILE_POINTER,
                (&raw mut file).cast(),
            )
        };
        // SAFETY: a non-null `file` is the pager's open file, which lives as
        // long as the connection; its `pMethods` is null or points to the
        // VFS's static method table.
        let methods = (code == ffi::SQLITE_OK && !file.is_null())
            .then(|| unsafe { (*file).pMethods.as_ref() })
            .flatten()
            .ok_or_else(|| io::Error::other("SQLite has no open file for this database"))?;
        Ok(Self {
            file,
            methods,
            connection: PhantomData,
        })
    }

    /// The file's size in bytes.
    pub fn size(&self) -> io::Result<u64> {
        let size_of = self
            .methods
            .xFileSize
            .ok_or_else(|| io::Error::other("SQLite's file has no xFileSize"))?;
        let mut size: ffi::sqlite3_int64 = 0;
        // SAFETY: `self.file` is open (see `of`) and `size` is a valid
        // out-pointer.
        let code = unsafe { size_of(self.file, &raw mut size) };
        check(code, "cannot stat")?;
        Ok(size.max(0) as u64)
    }

    /// Fills `buf` from `offset`. Bytes past the end of the file read as
    /// zeros, as SQLite reads them.
    pub fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let read = self
            .methods
            .xRead
            .ok_or_else(|| io::Error::other("SQLite's file has no xRead"))?;
        for (index, chunk) in buf.chunks_mut(1 << 30).enumerate() {
            let at = offset + (index as u64) * (1 << 30);
            let at = ffi::sqlite3_int64::try_from(at)
                .map_err(|_| io::Error::other("offset beyond SQLite's range"))?;
            // SAFETY: `self.file` is open (see `of`); `chunk` is valid for
            // writes of its length, which fits an `int` (at most 2^30).
            let code =
                unsafe { read(self.file, chunk.as_mut_ptr().cast(), chunk.len() as i32, at) };
            if code != ffi::SQLITE_IOERR_SHORT_READ {
                check(code, "cannot read")?;
            }
        }
        Ok(())
    }
}

fn check(code: i32, action: &str) -> io::Result<()> {
    if code == ffi::SQLITE_OK {
        return Ok(());
    }
    // SAFETY: sqlite3_errstr returns a static NUL-terminated string.
    let message = unsafe { std::ffi::CStr::from_ptr(ffi::sqlite3_errstr(code)) };
    Err(io::Error::other(format!(
        "{action}: {}",
        message.to_string_lossy()
    )))
}

/// A read-only connection on `path` for a [`FileReader`] (`None` when there
/// is no file). It reads nothing until asked, so it takes no lock.
pub fn open(path: &Path) -> Result<Option<Connection>, OpenError> {
    match crate::regular::check(path) {
        Err(OpenError::Io(e)) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        checked => checked?,
    }
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    match Connection::open_with_flags(path, flags) {
        Ok(conn) => Ok(Some(conn)),
        Err(_) if !path.exists() => Ok(None),
        Err(e) => Err(OpenError::Io(io::Error::other(e))),
    }
}

/// The first `buf.len()` bytes of the file at `path` (zeros past its end),
/// and its size; `None` when there is no file.
pub fn read_start(path: &Path, buf: &mut [u8]) -> Result<Option<u64>, OpenError> {
    let Some(conn) = open(path)? else {
        return Ok(None);
    };
    let reader = FileReader::of(&conn)?;
    reader.read_at(buf, 0)?;
    Ok(Some(reader.size()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wal_database(dir: &Path) -> (std::path::PathBuf, Connection) {
        let path = dir.join("app.db");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "PRAGMA journal_mode=wal; CREATE TABLE t (x); INSERT INTO t VALUES (1);",
        )
        .unwrap();
        conn.query_row("SELECT count(*) FROM t", [], |_| Ok(()))
            .unwrap();
        (path, conn)
    }

    /// Another process tries to take the file out of WAL mode, which needs
    /// every other connection gone.
    fn another_process_can_leave_wal(path: &Path) -> bool {
        let output = std::process::Command::new("python3")
            .args([
                "-c",
                "import sqlite3,sys\nc=sqlite3.connect(sys.argv[1],timeout=0.1)\nprint(c.execute('PRAGMA journal_mode=delete').fetchone()[0])",
                &path.display().to_string(),
            ])
            .output()
            .expect("python3 is on every CI machine");
        String::from_utf8_lossy(&output.stdout).trim() == "delete"
    }

    #[test]
    fn reading_the_file_keeps_the_locks_of_this_process_connections() {
        let dir = tempfile::tempdir().unwrap();
        let (path, _holder) = wal_database(dir.path());
        let mut header = [0u8; 100];
        let size = read_start(&path, &mut header).unwrap().unwrap();
        assert_eq!(&header[..16], b"SQLite format 3\0");
        assert_eq!(size, std::fs::metadata(&path).unwrap().len());
        assert!(
            !another_process_can_leave_wal(&path),
            "reading the header dropped the lock of the open connection"
        );
    }

    /// Regression: each of these opened the file with a descriptor of its
    /// own (the health job's and restore's `check_database`, the
    /// observations, the daemon's header check).
    #[test]
    fn every_reader_of_a_live_file_keeps_the_locks() {
        let dir = tempfile::tempdir().unwrap();
        let (path, _holder) = wal_database(dir.path());
        crate::db::observe::observe_file(&path).unwrap();
        crate::db::observe::read_identity(&path).unwrap().unwrap();
        crate::db::observe::read_header(&path);
        crate::jobs::verify::check_database(&path, crate::config::VerifyLevel::Quick).unwrap();
        assert!(!another_process_can_leave_wal(&path));
    }

    #[test]
    fn a_descriptor_of_our_own_would_have_dropped_them() {
        let dir = tempfile::tempdir().unwrap();
        let (path, _holder) = wal_database(dir.path());
        drop(std::fs::File::open(&path).unwrap());
        assert!(another_process_can_leave_wal(&path));
    }

    #[test]
    fn bytes_past_the_end_read_as_zeros_and_a_missing_file_is_none() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("short");
        std::fs::write(&path, b"abc").unwrap();
        let mut buf = [7u8; 8];
        assert_eq!(read_start(&path, &mut buf).unwrap(), Some(3));
        assert_eq!(&buf, b"abc\0\0\0\0\0");
        assert_eq!(
            read_start(&dir.path().join("none"), &mut buf).unwrap(),
            None
        );
        assert!(matches!(
            read_start(dir.path(), &mut buf),
            Err(OpenError::NotRegular("a directory"))
        ));
    }
}
