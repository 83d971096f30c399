//! Continuous replication: the commits of a database's write-ahead log
//! shipped every `sync_every` into a replica beside its backups, restorable
//! to any point of the `window` (`restore --at`).
//!
//! Owns the replica's files ([`catalog`], [`segment`]), reading the log
//! ([`wal`]), the capture of one database ([`capture`]), rebuilding a
//! point ([`rebuild`]), the window's retention ([`window`]), and [`run`]:
//! the long-running task the daemon starts for each replicated database,
//! which steps the capture, removes the generations the window no longer
//! needs, and reports where it stands.

pub mod capture;
pub mod catalog;
pub mod mirror;
pub mod rebuild;
pub mod segment;
pub mod wal;
pub mod window;

use std::path::Path;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use crate::clock::Clock;
use crate::config::{Database, ReplicateTo};

/// How often the window's retention and the compaction run.
const RETENTION_EVERY: Duration = Duration::from_secs(60);

/// Segments are compacted per minute once the minute is over, then per
/// hour once the hour is over: a restore reads a few files, not one per
/// step. Compaction joins commits and drops none, so every point stays.
const COMPACTION_BUCKETS: [Duration; 2] = [Duration::from_secs(60), Duration::from_secs(3600)];

/// How long a failing capture waits before it tries again (an offsite
/// store that fails does not slow the capture: it is tried every step).
const RETRY_AFTER: Duration = Duration::from_secs(5);

pub use crate::state::replication::Report;

/// Runs the capture of `db` (a replicated database) until `cancelled`,
/// mirroring its replica to the offsite store with `to: offsite`, and
/// calls `report` after each step that changed what it reports.
pub fn run(
    db: &Database,
    backup_dir: &Path,
    clock: &dyn Clock,
    cancelled: &dyn Fn() -> bool,
    report: &mut dyn FnMut(Report),
) {
    let Some(replicate) = db.replicate.as_ref() else {
        return;
    };
    let database = db.name.as_str();
    let replica_dir = catalog::replica_dir(backup_dir, database);
    let mut capture = capture::Capture::new(&db.path, &replica_dir)
        .truncate_log_past(db.health.max_wal_size.bytes());
    let mut mirror: Option<mirror::Mirror> = None;
    let mut last = Report {
        database: database.to_string(),
        generation: None,
        segments: 0,
        bytes: 0,
        frames: 0,
        caught_up_at: None,
        error: None,
        generations_started: 0,
    };
    let mut watch = window::Watch::resume(&replica_dir, clock.now());
    let mut last_retention: Option<Instant> = None;
    let mut last_sent: Option<Instant> = None;
    loop {
        let stepped = Instant::now();
        let now = clock.now();
        let mut next = last.clone();
        let stepped_ok = match capture.step(clock) {
            Ok(step) => {
                next.error = None;
                next.caught_up_at = Some(now);
                next.generations_started += u64::from(step.new_generation.is_some());
                true
            }
            Err(e) => {
                if next.error.as_deref() != Some(&e.to_string()) {
                    tracing::error!(db = database, error = %e, "replication: the capture failed; it tries again");
                }
                next.error = Some(e.to_string());
                capture.close();
                false
            }
        };
        if replicate.to == ReplicateTo::Offsite && next.error.is_none() {
            let synced = match mirror.as_mut() {
                Some(mirror) => mirror.sync(&replica_dir).map_err(|e| e.to_string()),
                None => match mirror::open(db, backup_dir) {
                    Ok(opened) => mirror
                        .insert(opened)
                        .sync(&replica_dir)
                        .map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                },
            };
            if let Err(e) = synced {
                if last.error.as_deref() != Some(e.as_str()) {
                    tracing::error!(db = database, error = %e, "replication: cannot copy the replica to the offsite store; it tries again");
                }
                next.error = Some(e);
            }
        }
        if let Some(standing) = capture.standing() {
            next.generation = Some(standing.generation);
            next.segments = standing.segments;
            next.bytes = standing.bytes;
            next.frames = standing.frames;
        }
        if last_retention.is_none_or(|at| at.elapsed() >= RETENTION_EVERY) {
            last_retention = Some(Instant::now());
            keep_the_window(
                database,
                &replica_dir,
                replicate.window,
                &mut watch,
                clock.now(),
            );
            if let Err(e) = compact(&replica_dir, now) {
                tracing::warn!(db = database, error = %e, "replication: cannot compact the segments; they stay as they are");
            }
        }
        let changed = Report {
            caught_up_at: last.caught_up_at,
            ..next.clone()
        } != last;
        if changed || last_sent.is_none_or(|at| at.elapsed() >= Duration::from_secs(5)) {
            report(next.clone());
            last_sent = Some(Instant::now());
        }
        last = next;
        let pause = if stepped_ok {
            replicate.sync_every
        } else {
            RETRY_AFTER
        };
        if !wait(cancelled, pause.saturating_sub(stepped.elapsed())) {
            break;
        }
    }
    let _ = capture.step(clock);
    capture.close();
    let _ = watch.record(clock.now());
}

/// Records the time the capture watched, then removes the generations the
/// window measured in it no longer needs (also when the record cannot be
/// written: a full disk needs the room).
fn keep_the_window(
    database: &str,
    replica_dir: &Path,
    window: Duration,
    watch: &mut window::Watch,
    wall: DateTime<Utc>,
) {
    if let Some(ahead) = watch.newly_ahead(wall) {
        tracing::info!(
            db = database,
            ahead = %humantime::format_duration(std::time::Duration::from_secs(ahead.num_seconds().unsigned_abs())),
            "replication: the clock is ahead of the time the capture watched (the daemon was stopped, or the clock jumped ahead); the window counts only watched time, so the replica keeps that much more"
        );
    }
    if let Err(e) = watch.record(wall) {
        tracing::warn!(db = database, error = %e, "replication: cannot record the time the capture watched; the next run resumes from the last record (and keeps more)");
    }
    window::remove_outside(database, replica_dir, window, watch.now(wall));
}

/// Waits `pause` unless cancelled first; whether to go on.
fn wait(cancelled: &dyn Fn() -> bool, pause: Duration) -> bool {
    let until = Instant::now() + pause;
    while !cancelled() {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return true;
        }
        std::thread::sleep(left.min(Duration::from_millis(50)));
    }
    false
}

/// Compacts the segments of each generation under `replica_dir` (see
/// `COMPACTION_BUCKETS`); how many files it wrote. The joined file is
/// written (temp, fsync, rename) before the files it replaces are
/// removed; a kill in between leaves both, and listing hides the old ones.
pub fn compact(replica_dir: &Path, now: DateTime<Utc>) -> std::io::Result<usize> {
    let mut written = 0;
    for bucket in COMPACTION_BUCKETS {
        for generation in catalog::generations(replica_dir)? {
            for run in catalog::compactable(&generation.segments, bucket, now) {
                let mut commits = Vec::new();
                for file in run {
                    commits.extend(segment::read_segment(&file.path)?);
                }
                let Some(page_size) = commits
                    .iter()
                    .find_map(|c| c.commit.pages.values().next())
                    .map(|page| page.len() as u32)
                else {
                    continue;
                };
                let (first, last) = (&run[0], &run[run.len() - 1]);
                let target = generation.dir.join(catalog::segment_name(
                    first.first,
                    last.last,
                    last.last_observed_ms,
                ));
                segment::write_segment(&target, page_size, &commits)?;
                for file in run {
                    std::fs::remove_file(&file.path)?;
                }
                written += 1;
            }
        }
    }
    Ok(written)
}

#[cfg(test)]
mod tests;
