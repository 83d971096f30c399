//! Where a database's replica lives and what it holds:
//! `<backup_dir>/<db>/wal/<generation>/base.lwb` and its segments
//! `<sequence>-<last observed ms>.lws`.
//!
//! Owns the names of those files, listing them in order, the restorable
//! range, and which generations the window no longer needs.

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
pub fn segment_name(sequence: u64, last_observed_ms: i64) -> String {
    format!("{sequence:010}-{last_observed_ms}.lws")
}

/// One segment on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentFile {
    /// Its order in the generation.
    pub sequence: u64,
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
        let Some((sequence, observed)) = stem.split_once('-') else {
            continue;
        };
        let (Ok(sequence), Ok(last_observed_ms)) = (sequence.parse(), observed.parse()) else {
            continue;
        };
        found.push(SegmentFile {
            sequence,
            last_observed_ms,
            path: entry.path(),
        });
    }
    found.sort_by_key(|s| s.sequence);
    Ok(found)
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
