//! Where a database's replica lives and what it holds:
//! `<backup_dir>/<db>/wal/<generation>/base.lwb` and its segments
//! `<first>-<last>-<last observed ms>.lws` (the sequence numbers of the
//! steps they hold: one, or a run of them once compacted).
//!
//! Owns the names of those files, listing them in order (a compacted file
//! hides the files it replaced, should a kill have left them), the
//! restorable range, and which generations the window no longer needs.

use std::io;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

/// The base of a generation.
pub const BASE: &str = "base.lwb";

/// The replica directory of `database` under `backup_dir`.
pub fn replica_dir(backup_dir: &Path, database: &str) -> PathBuf {
    backup_dir.join(database).join("wal")
}

/// A generation's name: the time its base was taken, sortable.
pub fn generation_name(at: DateTime<Utc>) -> String {
    at.format("%Y%m%dT%H%M%S%3fZ").to_string()
}

/// A segment's file name.
pub fn segment_name(first: u64, last: u64, last_observed_ms: i64) -> String {
    format!("{first:010}-{last:010}-{last_observed_ms}.lws")
}

/// One segment on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentFile {
    /// The first step it holds.
    pub first: u64,
    /// The last step it holds.
    pub last: u64,
    /// When its last commit was seen.
    pub last_observed_ms: i64,
    /// Its path.
    pub path: PathBuf,
}

/// One generation on disk: a base and the segments after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generation {
    /// Its name.
    pub name: String,
    /// Its directory.
    pub dir: PathBuf,
    /// When its base was taken.
    pub started: DateTime<Utc>,
    /// Its segments, in order.
    pub segments: Vec<SegmentFile>,
}

impl Generation {
    /// Its base file.
    pub fn base(&self) -> PathBuf {
        self.dir.join(BASE)
    }

    /// The newest point it restores to.
    pub fn newest(&self) -> DateTime<Utc> {
        self.segments
            .last()
            .and_then(|s| DateTime::from_timestamp_millis(s.last_observed_ms))
            .unwrap_or(self.started)
    }
}

/// The generations under `dir` that have a base, oldest first.
pub fn generations(dir: &Path) -> io::Result<Vec<Generation>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Ok(started) = chrono::NaiveDateTime::parse_from_str(&name, "%Y%m%dT%H%M%S%3fZ") else {
            continue;
        };
        let dir = entry.path();
        if !dir.join(BASE).is_file() {
            continue;
        }
        let segments = segments(&dir)?;
        found.push(Generation {
            name,
            dir,
            started: started.and_utc(),
            segments,
        });
    }
    found.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(found)
}

fn segments(dir: &Path) -> io::Result<Vec<SegmentFile>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(stem) = name.strip_suffix(".lws") else {
            continue;
        };
        let parts: Vec<&str> = stem.split('-').collect();
        let [first, last, observed] = parts[..] else {
            continue;
        };
        let (Ok(first), Ok(last), Ok(last_observed_ms)) =
            (first.parse(), last.parse(), observed.parse())
        else {
            continue;
        };
        found.push(SegmentFile {
            first,
            last,
            last_observed_ms,
            path: entry.path(),
        });
    }
    found.sort_by_key(|s| (s.first, std::cmp::Reverse(s.last)));
    let mut kept: Vec<SegmentFile> = Vec::with_capacity(found.len());
    for segment in found {
        if kept
            .last()
            .is_none_or(|previous| segment.first > previous.last)
        {
            kept.push(segment);
        }
    }
    Ok(kept)
}

/// Runs of segments to compact into one file each: consecutive segments
/// of one `bucket` (a minute, an hour) of observed time that ended before
/// `now`, two or more of them.
pub fn compactable(
    segments: &[SegmentFile],
    bucket: std::time::Duration,
    now: DateTime<Utc>,
) -> Vec<&[SegmentFile]> {
    let bucket_ms = bucket.as_millis().max(1) as i64;
    let current = now.timestamp_millis() / bucket_ms;
    segments
        .chunk_by(|a, b| a.last_observed_ms / bucket_ms == b.last_observed_ms / bucket_ms)
        .filter(|run| run.len() > 1 && run[0].last_observed_ms / bucket_ms < current)
        .collect()
}

/// The oldest and newest points the generations restore to.
pub fn range(generations: &[Generation]) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    Some((generations.first()?.started, generations.last()?.newest()))
}

/// What a replica holds, for `backups`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Summary {
    /// The oldest point it restores to.
    pub oldest: DateTime<Utc>,
    /// The newest point it restores to.
    pub newest: DateTime<Utc>,
    /// Its generations.
    pub generations: usize,
    /// Its segments.
    pub segments: usize,
    /// Bytes on disk.
    pub bytes: u64,
}

/// What the replica under `dir` holds; `None` when it holds nothing.
pub fn summary(dir: &Path) -> io::Result<Option<Summary>> {
    let generations = generations(dir)?;
    let Some((oldest, newest)) = range(&generations) else {
        return Ok(None);
    };
    let size = |path: &Path| std::fs::metadata(path).map_or(0, |m| m.len());
    let bytes = generations
        .iter()
        .map(|g| size(&g.base()) + g.segments.iter().map(|s| size(&s.path)).sum::<u64>())
        .sum();
    Ok(Some(Summary {
        oldest,
        newest,
        generations: generations.len(),
        segments: generations.iter().map(|g| g.segments.len()).sum(),
        bytes,
    }))
}

/// The generations no point of the window (`since` onwards) needs: every
/// one before the newest generation that started at or before `since`.
/// The newest generation is always kept.
pub fn outside_window(generations: &[Generation], since: DateTime<Utc>) -> &[Generation] {
    let covering = generations
        .iter()
        .rposition(|g| g.started <= since)
        .unwrap_or(0);
    &generations[..covering.min(generations.len().saturating_sub(1))]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generation(minute: u32) -> Generation {
        let started = DateTime::parse_from_rfc3339(&format!("2026-12-03T07:{minute:02}:00Z"))
            .unwrap()
            .to_utc();
        Generation {
            name: generation_name(started),
            dir: PathBuf::new(),
            started,
            segments: Vec::new(),
        }
    }

    #[test]
    fn a_compacted_file_hides_the_files_a_kill_left_behind_it() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            segment_name(0, 0, 10),
            segment_name(1, 1, 20),
            segment_name(0, 1, 20),
            segment_name(2, 2, 30),
        ] {
            std::fs::write(dir.path().join(name), b"").unwrap();
        }
        let listed: Vec<(u64, u64)> = segments(dir.path())
            .unwrap()
            .iter()
            .map(|s| (s.first, s.last))
            .collect();
        assert_eq!(listed, [(0, 1), (2, 2)]);
    }

    #[test]
    fn the_window_keeps_the_generation_that_covers_its_start_and_every_later_one() {
        let all = [
            generation(0),
            generation(10),
            generation(20),
            generation(30),
        ];
        let at = |minute| generation(minute).started;
        assert_eq!(outside_window(&all, at(15)).len(), 1, "10 covers 15");
        assert_eq!(outside_window(&all, at(20)).len(), 2);
        assert_eq!(outside_window(&all, at(5)).len(), 0);
        assert_eq!(outside_window(&all, at(59)).len(), 3, "the newest stays");
        assert!(outside_window(&[], at(59)).is_empty());
    }
}
