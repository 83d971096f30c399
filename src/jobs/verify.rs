//! Checking a backup or database file: SHA-256 and SQLite's own checks.
//!
//! Owns reading a stored file back: hashing it, decompressing `.zst`
//! backups, and running `quick_check` / `integrity_check` on a plain file
//! opened read-only. A compressed backup is checked by decompressing it to a
//! temp file beside it (deleted afterwards, whatever happens).

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags};
use sha2::{Digest, Sha256};

use super::progress::Progress;
use crate::config::VerifyLevel;
use crate::durable::PendingFile;

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
        (hex(&self.hasher.finalize()), self.bytes, self.inner)
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

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The hex SHA-256 of the file at `path`.
pub fn sha256_file(path: &Path) -> Result<String, VerifyError> {
    let file = File::open(path).map_err(VerifyError::io(path, "cannot open"))?;
    let mut hashing = Hashing::new(file);
    io::copy(&mut hashing, &mut io::sink()).map_err(VerifyError::io(path, "cannot read"))?;
    Ok(hashing.finish().0)
}

/// Whether `path` names a compressed backup.
pub fn is_compressed(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "zst")
}

/// Runs `check` on the plain SQLite file at `path`, opened read-only.
pub fn check_database(path: &Path, level: VerifyLevel) -> Result<(), VerifyError> {
    let pragma = match level {
        VerifyLevel::None => return Ok(()),
        VerifyLevel::Quick => "quick_check",
        VerifyLevel::Full => "integrity_check",
    };
    let mut header = [0u8; 16];
    let mut file = File::open(path).map_err(VerifyError::io(path, "cannot open"))?;
    if file.read_exact(&mut header).is_err() || &header != b"SQLite format 3\0" {
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

/// A plain SQLite file for a stored backup: the file itself, or a
/// decompressed temp copy beside it that is removed when this is dropped.
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

/// The plain form of the backup at `path`, decompressing `.zst` files.
pub fn plain_copy(path: &Path, progress: &mut dyn Progress) -> Result<PlainCopy, VerifyError> {
    if !is_compressed(path) {
        return Ok(PlainCopy {
            path: path.to_path_buf(),
            _temp: None,
        });
    }
    decompressed_copy(path, progress).map(|(plain, _)| plain)
}

/// Decompresses the zstd file at `path` (whatever its name) into a temp
/// file beside it; returns it with the SHA-256 of the decompressed bytes.
pub fn decompressed_copy(
    path: &Path,
    progress: &mut dyn Progress,
) -> Result<(PlainCopy, String), VerifyError> {
    let temp = PendingFile::create(&path.with_extension("plain"))
        .map_err(VerifyError::io(path, "cannot create a temp file"))?;
    let sha = decompress_into(path, temp.file(), progress)?;
    Ok((
        PlainCopy {
            path: temp.path().to_path_buf(),
            _temp: Some(temp),
        },
        sha,
    ))
}

/// Streams the zstd file at `path` into `out`; returns the hex SHA-256 of
/// the decompressed bytes.
pub fn decompress_into(
    path: &Path,
    mut out: impl Write,
    progress: &mut dyn Progress,
) -> Result<String, VerifyError> {
    let file = File::open(path).map_err(VerifyError::io(path, "cannot open"))?;
    let total = file
        .metadata()
        .map_err(VerifyError::io(path, "cannot stat"))?
        .len();
    progress.start("decompress", Some(total));
    let mut decoder = zstd::Decoder::new(ProgressReader {
        inner: file,
        done: 0,
        progress: &mut *progress,
    })
    .map_err(VerifyError::io(path, "cannot read"))?;
    let mut hashing = Hashing::new(&mut out);
    io::copy(&mut decoder, &mut hashing).map_err(|e| match e.kind() {
        io::ErrorKind::Other | io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof => {
            VerifyError::damaged(path, format!("not a valid zstd file: {e}"))
        }
        _ => VerifyError::io(path, "cannot decompress")(e),
    })?;
    let (sha, _, _) = hashing.finish();
    progress.finish();
    Ok(sha)
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
/// (when known), then decompression and `level` checks.
pub fn verify_file(
    path: &Path,
    expected: Option<&str>,
    level: VerifyLevel,
    progress: &mut dyn Progress,
) -> Result<Verified, VerifyError> {
    if !path.is_file() {
        return Err(VerifyError::io(path, "cannot open")(io::Error::from(
            io::ErrorKind::NotFound,
        )));
    }
    let sha256 = sha256_file(path)?;
    if let Some(expected) = expected
        && expected != sha256
    {
        return Err(VerifyError::damaged(
            path,
            format!(
                "SHA-256 is {sha256}, the catalog recorded {expected}: the file changed since it was written"
            ),
        ));
    }
    check_database(plain_copy(path, progress)?.path(), level)?;
    Ok(Verified {
        matches_catalog: expected.map(|_| true),
        sha256,
    })
}
