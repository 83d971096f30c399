//! Opening a file the user named, for reading, without ever blocking.
//!
//! Owns no state. A FIFO blocks `open(2)` until a writer comes, and a device
//! such as `/dev/zero` never ends, so every path litewarden reads on a
//! user's word (a backup to restore or verify, `jobs.yaml`, a migration)
//! goes through [`open`]: the file is opened with `O_NONBLOCK` (a FIFO opens
//! at once, and a regular file ignores the flag) and refused unless it is a
//! regular file.

use std::fs::File;
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Why a path could not be opened for reading.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The path exists but is a directory, FIFO, socket or device.
    #[error("not a regular file ({0})")]
    NotRegular(&'static str),
    /// `open` or `fstat` failed.
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Opens `path` for reading when it is a regular file (following
/// symbolic links), never blocking on a FIFO.
pub fn open(path: &Path) -> Result<File, OpenError> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags((rustix::fs::OFlags::NONBLOCK | rustix::fs::OFlags::NOCTTY).bits() as i32)
        .open(path)?;
    match not_regular(&file.metadata()?) {
        None => Ok(file),
        Some(what) => Err(OpenError::NotRegular(what)),
    }
}

/// Whether `path` is a regular file (following symbolic links), without
/// opening it: for paths SQLite opens itself (see [`crate::db::file`]).
pub fn check(path: &Path) -> Result<(), OpenError> {
    match not_regular(&std::fs::metadata(path)?) {
        None => Ok(()),
        Some(what) => Err(OpenError::NotRegular(what)),
    }
}

/// What a file that is not regular is, or `None` for a regular file.
fn not_regular(metadata: &std::fs::Metadata) -> Option<&'static str> {
    use std::os::unix::fs::FileTypeExt;
    let kind = metadata.file_type();
    if kind.is_file() {
        None
    } else if kind.is_dir() {
        Some("a directory")
    } else if kind.is_fifo() {
        Some("a FIFO")
    } else if kind.is_socket() {
        Some("a socket")
    } else {
        Some("a device")
    }
}

impl OpenError {
    /// This error as an `io::Error`: a path that is not a regular file is an
    /// `InvalidInput` error saying so.
    pub fn into_io(self) -> io::Error {
        match self {
            OpenError::Io(e) => e,
            not_regular => io::Error::new(io::ErrorKind::InvalidInput, not_regular.to_string()),
        }
    }
}

/// [`open`] for callers that report an `io::Error` (see
/// [`OpenError::into_io`]).
pub fn open_io(path: &Path) -> io::Result<File> {
    open(path).map_err(OpenError::into_io)
}

/// The whole content of the regular file at `path`.
pub fn read(path: &Path) -> Result<Vec<u8>, OpenError> {
    read_at_most(path, u64::MAX)
}

/// The whole content of the regular file at `path`, refused with
/// an `io::ErrorKind::FileTooLarge` error when it holds more than `limit`
/// bytes (checked before reading, and again while reading a file that
/// grows).
pub fn read_at_most(path: &Path, limit: u64) -> Result<Vec<u8>, OpenError> {
    use std::io::Read;
    let file = open(path)?;
    let too_large = |size: u64| {
        OpenError::Io(io::Error::new(
            io::ErrorKind::FileTooLarge,
            format!("{size} bytes, more than the {limit} accepted"),
        ))
    };
    let size = file.metadata()?.len();
    if size > limit {
        return Err(too_large(size));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    file.take(limit.saturating_add(1)).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(too_large(bytes.len() as u64));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fifo_a_directory_and_a_device_are_refused_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        rustix::fs::mkfifoat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::Mode::RUSR | rustix::fs::Mode::WUSR,
        )
        .unwrap();
        for (path, what) in [
            (fifo.as_path(), "a FIFO"),
            (dir.path(), "a directory"),
            (Path::new("/dev/zero"), "a device"),
        ] {
            let error = open(path).unwrap_err();
            assert_eq!(error.to_string(), format!("not a regular file ({what})"));
        }
    }

    #[test]
    fn a_file_over_the_limit_is_refused_before_it_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::File::create(&path)
            .unwrap()
            .set_len(1 << 40)
            .unwrap();
        let error = read_at_most(&path, 1024).unwrap_err();
        assert_eq!(
            error.to_string(),
            "1099511627776 bytes, more than the 1024 accepted"
        );
    }

    #[test]
    fn a_regular_file_is_read_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"abc").unwrap();
        assert_eq!(read(&path).unwrap(), b"abc");
    }
}
