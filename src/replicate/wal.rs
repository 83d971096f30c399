//! Reading SQLite's `-wal` file beside a live database: its header, and its
//! frames cut at commit frames, each checked by salt and checksum.
//!
//! Owns one open file descriptor of the `-wal` file. Reading it with a
//! descriptor of our own is safe where reading the database file is not:
//! SQLite's POSIX locks live on the database file and the `-shm` file, and
//! closing any descriptor of a file drops every lock the process holds on
//! it, but SQLite never locks the `-wal` file itself, so opening and
//! closing it here drops nothing. What makes the frames we read stable is
//! the capture's read transaction (see `capture.rs`): SQLite never restarts
//! the log while a reader uses it; a frame written after that is checked
//! by its checksum chain, so a half-written or overwritten frame ends the
//! read rather than being shipped.
//!
//! The format is SQLite's (<https://sqlite.org/fileformat2.html#walformat>):
//! a 32-byte header, then frames of a 24-byte header and one page.

use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Size of the WAL header.
pub const HEADER_SIZE: u64 = 32;

/// Size of a frame's header.
const FRAME_HEADER_SIZE: u64 = 24;

/// The header of a WAL file: what identifies one life of the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalHeader {
    /// Checksums read words big-endian (magic ends in 1).
    pub big_endian: bool,
    /// Page size.
    pub page_size: u32,
    /// Checkpoint sequence, as the connection that wrote the header counted.
    pub checkpoint_seq: u32,
    /// Salts, copied into every frame of this life of the log.
    pub salts: (u32, u32),
    /// The running checksum after the header, which seeds the first frame.
    pub checksum: (u32, u32),
}

impl WalHeader {
    /// Whether `next` is this log restarted exactly once: SQLite adds one
    /// to the first salt at every restart (in the shared index, whichever
    /// connection restarts it). The checkpoint sequence is no proof: each
    /// connection writes its own count into the header it writes.
    pub fn restarted_once_into(&self, next: &WalHeader) -> bool {
        next.salts.0 == self.salts.0.wrapping_add(1) && next.page_size == self.page_size
    }
}

/// Where reading stopped: the frame after the last commit frame, and the
/// checksum chain there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// Frames of the log up to and including the last commit read.
    pub frames: u64,
    /// Running checksum after that frame.
    pub checksum: (u32, u32),
}

impl Position {
    /// The start of the log described by `header`.
    pub fn start(header: &WalHeader) -> Self {
        Position {
            frames: 0,
            checksum: header.checksum,
        }
    }
}

/// One committed transaction: the pages it wrote (the last image of each)
/// and the database size after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    /// Database size in pages after the commit.
    pub database_pages: u32,
    /// Page number to page image.
    pub pages: BTreeMap<u32, Vec<u8>>,
}

/// The `-wal` file of a database.
#[derive(Debug)]
pub struct WalFile {
    path: PathBuf,
    file: Option<File>,
}

impl WalFile {
    /// The `-wal` file beside `database` (opened when first read).
    pub fn beside(database: &Path) -> Self {
        let mut path = database.as_os_str().to_owned();
        path.push("-wal");
        WalFile {
            path: PathBuf::from(path),
            file: None,
        }
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reopens the file on the next read (after SQLite may have deleted and
    /// recreated it).
    pub fn reopen(&mut self) {
        self.file = None;
    }

    fn file(&mut self) -> io::Result<Option<&File>> {
        if self.file.is_none() {
            match File::open(&self.path) {
                Ok(file) => self.file = Some(file),
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(e),
            }
        }
        Ok(self.file.as_ref())
    }

    /// The header, or `None` while the log is empty (never written, or
    /// truncated by a checkpoint).
    pub fn header(&mut self) -> io::Result<Option<WalHeader>> {
        let Some(file) = self.file()? else {
            return Ok(None);
        };
        let mut bytes = [0u8; HEADER_SIZE as usize];
        match file.read_exact_at(&mut bytes, 0) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(e),
        }
        Ok(parse_header(&bytes))
    }

    /// The commits after `from`, in order, up to the last valid commit
    /// frame (at most `max_frames` frames read); with the position after
    /// the last one.
    pub fn commits_after(
        &mut self,
        header: &WalHeader,
        from: Position,
        max_frames: u64,
    ) -> io::Result<(Vec<Commit>, Position)> {
        let Some(file) = self.file()? else {
            return Ok((Vec::new(), from));
        };
        let page_size = u64::from(header.page_size);
        let frame_size = FRAME_HEADER_SIZE + page_size;
        let mut frame = vec![0u8; frame_size as usize];
        let mut commits = Vec::new();
        let mut pending = BTreeMap::new();
        let mut running = from.checksum;
        let mut at = from;
        let mut index = from.frames;
        while index - from.frames < max_frames {
            let offset = HEADER_SIZE + index * frame_size;
            match file.read_exact_at(&mut frame, offset) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => break,
                Err(e) => return Err(e),
            }
            let word = |i: usize| u32::from_be_bytes(frame[i..i + 4].try_into().expect("4 bytes"));
            let (page, commit_size) = (word(0), word(4));
            if (word(8), word(12)) != header.salts || page == 0 {
                break;
            }
            running = checksum(header.big_endian, &frame[..8], running);
            running = checksum(header.big_endian, &frame[24..], running);
            if running != (word(16), word(20)) {
                break;
            }
            index += 1;
            pending.insert(page, frame[24..].to_vec());
            if commit_size != 0 {
                commits.push(Commit {
                    database_pages: commit_size,
                    pages: std::mem::take(&mut pending),
                });
                at = Position {
                    frames: index,
                    checksum: running,
                };
            }
        }
        Ok((commits, at))
    }

    /// The position after the last valid commit frame, without keeping the
    /// pages (the start of a generation).
    pub fn end(&mut self, header: &WalHeader) -> io::Result<Position> {
        let mut at = Position::start(header);
        loop {
            let (commits, next) = self.commits_after(header, at, 4096)?;
            if commits.is_empty() {
                return Ok(at);
            }
            at = next;
        }
    }
}

fn parse_header(bytes: &[u8; HEADER_SIZE as usize]) -> Option<WalHeader> {
    let word = |i: usize| u32::from_be_bytes(bytes[i..i + 4].try_into().expect("4 bytes"));
    let magic = word(0);
    if magic & !1 != 0x377f_0682 {
        return None;
    }
    let big_endian = magic & 1 == 1;
    let expected = checksum(big_endian, &bytes[..24], (0, 0));
    if expected != (word(24), word(28)) {
        return None;
    }
    let page_size = match word(8) {
        1 => 65536,
        size => size,
    };
    Some(WalHeader {
        big_endian,
        page_size,
        checkpoint_seq: word(12),
        salts: (word(16), word(20)),
        checksum: expected,
    })
}

/// SQLite's WAL checksum (`walChecksumBytes`) of `data` (a multiple of 8
/// bytes), continuing from `seed`.
pub fn checksum(big_endian: bool, data: &[u8], seed: (u32, u32)) -> (u32, u32) {
    let (mut s1, mut s2) = seed;
    for pair in data.chunks_exact(8) {
        let read = |b: &[u8]| {
            let bytes: [u8; 4] = b.try_into().expect("4 bytes");
            if big_endian {
                u32::from_be_bytes(bytes)
            } else {
                u32::from_le_bytes(bytes)
            }
        };
        s1 = s1.wrapping_add(read(&pair[..4])).wrapping_add(s2);
        s2 = s2.wrapping_add(read(&pair[4..])).wrapping_add(s1);
    }
    (s1, s2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::Connection;

    #[test]
    fn reads_each_commit_of_a_live_wal_and_stops_at_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.db");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "PRAGMA journal_mode=wal; PRAGMA wal_autocheckpoint=0;
             CREATE TABLE t (x); INSERT INTO t VALUES (1); INSERT INTO t VALUES (2);",
        )
        .unwrap();
        let mut wal = WalFile::beside(&path);
        let header = wal.header().unwrap().expect("a header");
        assert_eq!(header.page_size, 4096);
        let (commits, at) = wal
            .commits_after(&header, Position::start(&header), u64::MAX)
            .unwrap();
        assert_eq!(commits.len(), 3);
        assert!(commits.iter().all(|c| c.database_pages == 2));
        assert_eq!(wal.end(&header).unwrap(), at);
        let (none, same) = wal.commits_after(&header, at, u64::MAX).unwrap();
        assert!(none.is_empty());
        assert_eq!(same, at);
        conn.execute("INSERT INTO t VALUES (3)", []).unwrap();
        let (one, _) = wal.commits_after(&header, at, u64::MAX).unwrap();
        assert_eq!(one.len(), 1);
    }

    #[test]
    fn a_restart_after_a_checkpoint_is_one_sequence_and_salt_on() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.db");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch("PRAGMA journal_mode=wal; CREATE TABLE t (x);")
            .unwrap();
        let mut wal = WalFile::beside(&path);
        let before = wal.header().unwrap().unwrap();
        conn.execute_batch("PRAGMA wal_checkpoint(PASSIVE); INSERT INTO t VALUES (1);")
            .unwrap();
        let after = wal.header().unwrap().unwrap();
        assert!(before.restarted_once_into(&after), "{before:?} {after:?}");
        conn.execute_batch("PRAGMA wal_checkpoint(PASSIVE); INSERT INTO t VALUES (1);")
            .unwrap();
        let twice = wal.header().unwrap().unwrap();
        assert!(!before.restarted_once_into(&twice));
    }
}
