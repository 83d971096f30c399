//! Rebuilding a database from its replica: the newest base before the
//! point, then its segments' commits up to the point, each step checked
//! against the checksum the capture recorded.
//!
//! Owns [`rebuild`]; the restore command verifies and installs its result
//! like any other copy.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use super::catalog::{self, Generation};
use super::segment::{self, PageSums};

/// Why a replica could not be rebuilt.
#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    /// Nothing replicated yet.
    #[error(
        "database `{0}` has no replica yet (is `litewarden run` capturing it?); restore a backup with --from latest"
    )]
    Empty(String),
    /// The point is before the replica.
    #[error(
        "database `{database}`: the replica reaches back to {oldest}, not to {at}; restore a backup taken before it with --before"
    )]
    TooOld {
        /// The database.
        database: String,
        /// The point asked for.
        at: String,
        /// The oldest point replicated.
        oldest: String,
    },
    /// A file of the replica is damaged or unreadable.
    #[error("database `{database}`: {} — the replica is damaged from there on; restore an earlier point (--at {good}) or a backup (--from latest)", crate::paths::display(.path))]
    Damaged {
        /// The database.
        database: String,
        /// The file.
        path: PathBuf,
        /// The newest point that was rebuilt and checked.
        good: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The output could not be written.
    #[error("{}: cannot write the rebuilt database: {source}", crate::paths::display(.path))]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

/// What a rebuild gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rebuilt {
    /// The generation it came from.
    pub generation: String,
    /// The point it holds: when its last commit was seen (or its base
    /// taken).
    pub point: DateTime<Utc>,
    /// Commits applied on top of the base.
    pub commits: usize,
}

/// Rebuilds `database`'s replica under `replica_dir` at `at` (the newest
/// point when `None`) into `into` (an empty file at `into_path`). A
/// segment that vanished while it was read (the daemon compacted it into
/// a larger one) makes it list the replica again, once.
pub fn rebuild(
    database: &str,
    replica_dir: &Path,
    at: Option<DateTime<Utc>>,
    into: &File,
    into_path: &Path,
) -> Result<Rebuilt, RebuildError> {
    match rebuild_once(database, replica_dir, at, into, into_path) {
        Err(RebuildError::Damaged { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
            into.set_len(0).map_err(|source| RebuildError::Write {
                path: into_path.to_path_buf(),
                source,
            })?;
            rebuild_once(database, replica_dir, at, into, into_path)
        }
        other => other,
    }
}

fn rebuild_once(
    database: &str,
    replica_dir: &Path,
    at: Option<DateTime<Utc>>,
    into: &File,
    into_path: &Path,
) -> Result<Rebuilt, RebuildError> {
    let generations =
        catalog::generations(replica_dir).map_err(|source| RebuildError::Damaged {
            database: database.to_string(),
            path: replica_dir.to_path_buf(),
            good: "an earlier time".into(),
            source,
        })?;
    let chosen = match at {
        None => generations.last(),
        Some(at) => generations.iter().rev().find(|g| g.started <= at),
    };
    let Some(generation) = chosen else {
        return Err(match (at, generations.first()) {
            (Some(at), Some(oldest)) => RebuildError::TooOld {
                database: database.to_string(),
                at: shown(at),
                oldest: shown(oldest.started),
            },
            _ => RebuildError::Empty(database.to_string()),
        });
    };
    apply(database, generation, at, into, into_path)
}

fn apply(
    database: &str,
    generation: &Generation,
    at: Option<DateTime<Utc>>,
    into: &File,
    into_path: &Path,
) -> Result<Rebuilt, RebuildError> {
    let write = |source| RebuildError::Write {
        path: into_path.to_path_buf(),
        source,
    };
    let base = generation.base();
    let (header, body) = segment::read_base(&base).map_err(|source| RebuildError::Damaged {
        database: database.to_string(),
        path: base.clone(),
        good: "an earlier time".into(),
        source,
    })?;
    into.write_all_at(&body, 0).map_err(write)?;
    let page_size = u64::from(header.page_size);
    let mut sums = PageSums::default();
    for (index, page) in body.chunks(page_size as usize).enumerate() {
        sums.set(index as u32 + 1, page);
    }
    drop(body);
    let mut point = generation.started;
    let mut commits = 0;
    'segments: for file in &generation.segments {
        let damaged = |source, point: DateTime<Utc>| RebuildError::Damaged {
            database: database.to_string(),
            path: file.path.clone(),
            good: shown(point),
            source,
        };
        let stored = segment::read_segment(&file.path).map_err(|e| damaged(e, point))?;
        for one in stored {
            if at.is_some_and(|at| one.observed_ms > at.timestamp_millis()) {
                break 'segments;
            }
            for (number, data) in &one.commit.pages {
                into.write_all_at(data, (u64::from(*number) - 1) * page_size)
                    .map_err(write)?;
            }
            into.set_len(u64::from(one.commit.database_pages) * page_size)
                .map_err(write)?;
            sums.apply(&one.commit);
            if sums.total() != one.sum {
                return Err(damaged(
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        "a commit does not give the database the capture saw",
                    ),
                    point,
                ));
            }
            point = DateTime::from_timestamp_millis(one.observed_ms).unwrap_or(point);
            commits += 1;
        }
    }
    into.sync_all().map_err(write)?;
    Ok(Rebuilt {
        generation: generation.name.clone(),
        point,
        commits,
    })
}

/// A point as `--at` takes it back.
pub fn shown(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}
