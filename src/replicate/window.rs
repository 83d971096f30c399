//! The window's retention: which generations the replica no longer needs,
//! measured in the time the capture watched pass, never in the wall clock
//! alone.
//!
//! Owns [`Watch`] and the `watched` file in the replica directory: the
//! replica's age as the capture saw it, carried from one run to the next.
//! A run starts from what the last one recorded and adds only the time it
//! measures itself (a monotonic clock), capped by the wall clock. So the
//! time the daemon was stopped does not count, and neither does a clock
//! that jumps ahead, whether while the daemon runs or while it is
//! stopped: nothing is removed because a clock said so. The price is
//! that the replica keeps generations the window no longer needs for as
//! long as the daemon was stopped. Restores are not concerned: they find
//! points by the time each commit was seen.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};

use super::catalog;
use crate::durable::PendingFile;

/// The file in the replica directory that records how far the capture
/// watched time pass.
pub const WATCHED: &str = "watched";

/// How far the wall clock may run ahead of the watched time before the
/// capture says so (once per run).
const AHEAD_SAID_PAST: TimeDelta = TimeDelta::minutes(1);

/// The replica's age as one run of the capture measures it.
#[derive(Debug)]
pub struct Watch {
    replica_dir: PathBuf,
    from: DateTime<Utc>,
    since: Instant,
    said_ahead: bool,
}

impl Watch {
    /// Resumes from the time the last run recorded; without one (a replica
    /// written before this file existed), from the newest point the replica
    /// holds; for a new replica, from `wall`.
    pub fn resume(replica_dir: &Path, wall: DateTime<Utc>) -> Self {
        let recorded = std::fs::read_to_string(replica_dir.join(WATCHED))
            .ok()
            .and_then(|text| DateTime::parse_from_rfc3339(text.trim()).ok())
            .map(|at| at.to_utc());
        let newest = || {
            catalog::generations(replica_dir)
                .ok()?
                .iter()
                .map(catalog::Generation::newest)
                .max()
        };
        let from = recorded.or_else(newest).unwrap_or(wall).min(wall);
        Self {
            replica_dir: replica_dir.to_path_buf(),
            from,
            since: Instant::now(),
            said_ahead: false,
        }
    }

    /// The watched time now, given the wall clock's `wall`.
    pub fn now(&self, wall: DateTime<Utc>) -> DateTime<Utc> {
        watched_time(self.from, self.since.elapsed(), wall)
    }

    /// Records the watched time now in the replica directory (temp file,
    /// fsync, rename), for the next run to resume from.
    pub fn record(&self, wall: DateTime<Utc>) -> io::Result<()> {
        std::fs::create_dir_all(&self.replica_dir)?;
        let pending = PendingFile::create(&self.replica_dir.join(WATCHED))?;
        writeln!(pending.file(), "{}", self.now(wall).to_rfc3339())?;
        pending.commit_replacing()?;
        Ok(())
    }

    /// Whether the wall clock runs ahead of the watched time by more than a
    /// minute, said for the first time in this run: how far, then.
    pub fn newly_ahead(&mut self, wall: DateTime<Utc>) -> Option<TimeDelta> {
        let ahead = wall - self.now(wall);
        if self.said_ahead || ahead <= AHEAD_SAID_PAST {
            return None;
        }
        self.said_ahead = true;
        Some(ahead)
    }
}

/// The watched time: `from` plus what a monotonic clock measured since,
/// never past the wall clock (a clock that went back keeps more).
pub fn watched_time(from: DateTime<Utc>, watched: Duration, wall: DateTime<Utc>) -> DateTime<Utc> {
    let watched = TimeDelta::from_std(watched).unwrap_or(TimeDelta::MAX);
    from.checked_add_signed(watched).unwrap_or(wall).min(wall)
}

/// Removes the generations no point of the last `window` before the
/// watched time `now` needs; how many.
pub fn remove_outside(
    database: &str,
    replica_dir: &Path,
    window: Duration,
    now: DateTime<Utc>,
) -> usize {
    let Ok(generations) = catalog::generations(replica_dir) else {
        return 0;
    };
    let since = now - TimeDelta::from_std(window).unwrap_or(TimeDelta::MAX);
    let mut removed = 0;
    for old in catalog::outside_window(&generations, since) {
        match std::fs::remove_dir_all(&old.dir) {
            Ok(()) => {
                removed += 1;
                tracing::info!(
                    db = database,
                    generation = old.name,
                    "replication: generation outside the window removed"
                )
            }
            Err(e) => {
                tracing::warn!(db = database, generation = old.name, error = %e, "replication: cannot remove a generation outside the window")
            }
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(hours: i64) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-12-03T00:00:00Z")
            .unwrap()
            .to_utc()
            + TimeDelta::hours(hours)
    }

    fn generations(dir: &Path, hours: &[i64]) {
        for hour in hours {
            let generation = dir.join(catalog::generation_name(at(*hour)));
            std::fs::create_dir_all(&generation).unwrap();
            std::fs::write(generation.join(catalog::BASE), b"").unwrap();
        }
    }

    fn left(dir: &Path) -> usize {
        catalog::generations(dir).unwrap().len()
    }

    #[test]
    fn the_watched_time_counts_only_what_was_measured_and_never_passes_the_wall_clock() {
        let hour = Duration::from_secs(3600);
        assert_eq!(watched_time(at(0), hour, at(30 * 24)), at(1));
        assert_eq!(watched_time(at(0), 2 * hour, at(1)), at(1));
    }

    #[test]
    fn a_clock_jumped_ahead_while_the_daemon_was_stopped_removes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        generations(dir.path(), &[0, 1, 2]);
        Watch::resume(dir.path(), at(2)).record(at(2)).unwrap();
        let jumped = at(30 * 24);
        let watch = Watch::resume(dir.path(), jumped);
        let three_hours = Duration::from_secs(3 * 3600);
        let removed = remove_outside("app", dir.path(), three_hours, watch.now(jumped));
        assert_eq!((removed, left(dir.path())), (0, 3));
    }

    #[test]
    fn a_replica_without_a_record_resumes_from_its_newest_point_not_the_clock() {
        let dir = tempfile::tempdir().unwrap();
        generations(dir.path(), &[0, 1, 2]);
        let mut watch = Watch::resume(dir.path(), at(30 * 24));
        assert!(watch.now(at(30 * 24)) < at(3));
        assert!(watch.newly_ahead(at(30 * 24)).is_some());
        assert_eq!(watch.newly_ahead(at(30 * 24)), None, "said once per run");
    }

    #[test]
    fn the_window_measured_in_watched_time_removes_what_no_point_needs() {
        let dir = tempfile::tempdir().unwrap();
        generations(dir.path(), &[0, 1, 2, 3]);
        let std_hour = Duration::from_secs(3600);
        std::fs::write(
            dir.path().join(WATCHED),
            format!("{}\n", at(4).to_rfc3339()),
        )
        .unwrap();
        let watch = Watch::resume(dir.path(), at(4));
        assert_eq!(watch.now(at(4)), at(4));
        let removed = remove_outside("app", dir.path(), 2 * std_hour, watch.now(at(4)));
        assert_eq!(
            (removed, left(dir.path())),
            (2, 2),
            "the generation of hour 2 covers the window's start"
        );
    }
}
