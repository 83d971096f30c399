//! The files of a replica: a generation's base (every page of the database
//! at the generation's start) and its segments (the commits shipped since,
//! in order), each proven by a checksum of the whole database after it.
//!
//! Owns their format and their crash-safe writing. A file is written to a
//! temp in its directory, fsynced and renamed (never over an existing
//! file), then the directory fsynced: a kill leaves either the whole file
//! or none. Both are zstd streams of:
//!
//! ```text
//! base:    "LWBASE01" page_size:u32 pages:u32 taken_ms:i64 sum:u64 page*
//! segment: "LWSEG001" page_size:u32 commits:u32
//!          (observed_ms:i64 pages_after:u32 changed:u32 sum:u64 (pgno:u32 page)*)*
//! both end "LWEND001"
//! ```
//!
//! `sum` is [`PageSums::total`] of the database after the base or commit,
//! so each step of a restore is checked against what the capture saw.

use std::io::{self, Read, Write};
use std::path::Path;

use sha2::{Digest, Sha256};

use super::wal::Commit;
use crate::durable::PendingFile;

const BASE_MAGIC: &[u8; 8] = b"LWBASE01";
const SEGMENT_MAGIC: &[u8; 8] = b"LWSEG001";
const END_MAGIC: &[u8; 8] = b"LWEND001";

/// The zstd level of replica files: fast (the capture runs every second).
const LEVEL: i32 = 1;

/// A hash per page and their combination: the checksum of a whole
/// database, updated page by page as commits change it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PageSums {
    sums: Vec<u64>,
    total: u64,
}

impl PageSums {
    /// The hash of page `number` holding `data`.
    fn of(number: u32, data: &[u8]) -> u64 {
        let mut hasher = Sha256::new();
        hasher.update(number.to_be_bytes());
        hasher.update(data);
        u64::from_be_bytes(hasher.finalize()[..8].try_into().expect("8 bytes"))
    }

    /// Sets page `number` (1-based) to `data`.
    pub fn set(&mut self, number: u32, data: &[u8]) {
        let index = number as usize - 1;
        if self.sums.len() <= index {
            self.sums.resize(index + 1, 0);
        }
        let sum = Self::of(number, data);
        self.total ^= self.sums[index] ^ sum;
        self.sums[index] = sum;
    }

    /// Cuts (or grows, with pages not yet set) the database to `pages`.
    pub fn resize(&mut self, pages: u32) {
        let pages = pages as usize;
        for dropped in self.sums.iter().skip(pages) {
            self.total ^= dropped;
        }
        self.sums.resize(pages, 0);
    }

    /// Applies a commit.
    pub fn apply(&mut self, commit: &Commit) {
        for (number, data) in &commit.pages {
            self.set(*number, data);
        }
        self.resize(commit.database_pages);
    }

    /// The checksum of the whole database.
    pub fn total(&self) -> u64 {
        self.total
    }
}

/// A base's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BaseHeader {
    /// Page size.
    pub page_size: u32,
    /// Pages.
    pub pages: u32,
    /// When it was taken (milliseconds since the epoch).
    pub taken_ms: i64,
    /// [`PageSums::total`] of its pages.
    pub sum: u64,
}

/// A commit as stored in a segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCommit {
    /// When the capture saw it (it was committed at most one `sync_every`
    /// before).
    pub observed_ms: i64,
    /// Its pages and the database size after it.
    pub commit: Commit,
    /// [`PageSums::total`] of the database after it.
    pub sum: u64,
}

/// Writes a base at `target` from `pages` (page 1 first), returning its
/// header.
pub fn write_base(
    target: &Path,
    page_size: u32,
    taken_ms: i64,
    pages: impl Iterator<Item = io::Result<Vec<u8>>>,
    sums: &mut PageSums,
) -> io::Result<(BaseHeader, u64)> {
    let pending = PendingFile::create(target)?;
    let mut body = Vec::new();
    let mut count = 0u32;
    for page in pages {
        let page = page?;
        count += 1;
        sums.set(count, &page);
        body.extend_from_slice(&page);
    }
    sums.resize(count);
    let header = BaseHeader {
        page_size,
        pages: count,
        taken_ms,
        sum: sums.total(),
    };
    let mut encoder = zstd::Encoder::new(pending.file(), LEVEL)?;
    encoder.write_all(BASE_MAGIC)?;
    encoder.write_all(&page_size.to_be_bytes())?;
    encoder.write_all(&count.to_be_bytes())?;
    encoder.write_all(&taken_ms.to_be_bytes())?;
    encoder.write_all(&header.sum.to_be_bytes())?;
    encoder.write_all(&body)?;
    encoder.write_all(END_MAGIC)?;
    encoder.finish()?;
    let size = pending.file().metadata()?.len();
    pending.commit()?;
    Ok((header, size))
}

/// Reads the base at `path`: its header and every page, checked against
/// its sum.
pub fn read_base(path: &Path) -> io::Result<(BaseHeader, Vec<u8>)> {
    let mut input = zstd::Decoder::new(std::fs::File::open(path)?)?;
    expect_magic(&mut input, BASE_MAGIC, path)?;
    let page_size = read_u32(&mut input)?;
    let pages = read_u32(&mut input)?;
    let taken_ms = read_u64(&mut input)? as i64;
    let sum = read_u64(&mut input)?;
    let mut body = vec![0u8; page_size as usize * pages as usize];
    input.read_exact(&mut body)?;
    expect_magic(&mut input, END_MAGIC, path)?;
    let mut sums = PageSums::default();
    for (index, page) in body.chunks(page_size as usize).enumerate() {
        sums.set(index as u32 + 1, page);
    }
    if sums.total() != sum {
        return Err(damaged(path, "its pages do not match its checksum"));
    }
    Ok((
        BaseHeader {
            page_size,
            pages,
            taken_ms,
            sum,
        },
        body,
    ))
}

/// Writes a segment of `commits` at `target`; its size in bytes.
pub fn write_segment(target: &Path, page_size: u32, commits: &[StoredCommit]) -> io::Result<u64> {
    let pending = PendingFile::create(target)?;
    let mut encoder = zstd::Encoder::new(pending.file(), LEVEL)?;
    encoder.write_all(SEGMENT_MAGIC)?;
    encoder.write_all(&page_size.to_be_bytes())?;
    encoder.write_all(&(commits.len() as u32).to_be_bytes())?;
    for stored in commits {
        encoder.write_all(&stored.observed_ms.to_be_bytes())?;
        encoder.write_all(&stored.commit.database_pages.to_be_bytes())?;
        encoder.write_all(&(stored.commit.pages.len() as u32).to_be_bytes())?;
        encoder.write_all(&stored.sum.to_be_bytes())?;
        for (number, data) in &stored.commit.pages {
            encoder.write_all(&number.to_be_bytes())?;
            encoder.write_all(data)?;
        }
    }
    encoder.write_all(END_MAGIC)?;
    encoder.finish()?;
    let size = pending.file().metadata()?.len();
    pending.commit()?;
    Ok(size)
}

/// Reads the segment at `path`.
pub fn read_segment(path: &Path) -> io::Result<Vec<StoredCommit>> {
    let mut input = zstd::Decoder::new(std::fs::File::open(path)?)?;
    expect_magic(&mut input, SEGMENT_MAGIC, path)?;
    let page_size = read_u32(&mut input)? as usize;
    let count = read_u32(&mut input)?;
    let mut commits = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let observed_ms = read_u64(&mut input)? as i64;
        let database_pages = read_u32(&mut input)?;
        let changed = read_u32(&mut input)?;
        let sum = read_u64(&mut input)?;
        let mut pages = std::collections::BTreeMap::new();
        for _ in 0..changed {
            let number = read_u32(&mut input)?;
            let mut data = vec![0u8; page_size];
            input.read_exact(&mut data)?;
            pages.insert(number, data);
        }
        commits.push(StoredCommit {
            observed_ms,
            commit: Commit {
                database_pages,
                pages,
            },
            sum,
        });
    }
    expect_magic(&mut input, END_MAGIC, path)?;
    Ok(commits)
}

fn expect_magic(input: &mut impl Read, magic: &[u8; 8], path: &Path) -> io::Result<()> {
    let mut read = [0u8; 8];
    input.read_exact(&mut read)?;
    if &read != magic {
        return Err(damaged(path, "it is not a litewarden replica file"));
    }
    Ok(())
}

fn damaged(path: &Path, why: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("{}: {why}", crate::paths::display(path)),
    )
}

fn read_u32(input: &mut impl Read) -> io::Result<u32> {
    let mut bytes = [0u8; 4];
    input.read_exact(&mut bytes)?;
    Ok(u32::from_be_bytes(bytes))
}

fn read_u64(input: &mut impl Read) -> io::Result<u64> {
    let mut bytes = [0u8; 8];
    input.read_exact(&mut bytes)?;
    Ok(u64::from_be_bytes(bytes))
}
