//! The latest health result of each database.
//!
//! Owns the `health` table: one row per database with its latest report
//! (as JSON, for `status`, `/status` and `/metrics`) and when its last
//! `quick_check` and `integrity_check` ran, so the slow checks keep their
//! own, longer interval across restarts.

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};

use super::runs::RunFigures;
use super::{StateDb, StateError, sqlite};
use crate::config::JobKind;

/// How healthy a database is, worst first in severity order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Every check passed.
    #[default]
    Healthy,
    /// Something to look at; the data is not at risk.
    Degraded,
    /// The database or its backups are at risk.
    Unhealthy,
}

impl Status {
    /// The name in output and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Healthy => "healthy",
            Status::Degraded => "degraded",
            Status::Unhealthy => "unhealthy",
        }
    }
}

/// One check and its verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    /// The check (`file`, `wal_size`, `free_disk`, ...).
    pub name: String,
    /// Its verdict.
    pub status: Status,
    /// What it found, on one line.
    pub detail: String,
}

/// What a run measured.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Figures {
    /// Database file size in bytes.
    pub db_size_bytes: u64,
    /// `-wal` file size in bytes.
    pub wal_size_bytes: u64,
    /// Pages in the database.
    pub page_count: u64,
    /// Pages on the freelist.
    pub freelist_count: u64,
    /// Free bytes on the database's file system.
    pub free_disk_bytes: Option<u64>,
    /// Free bytes on the backup directory's file system.
    pub backup_free_disk_bytes: Option<u64>,
    /// Age of the newest verified backup, in seconds.
    pub backup_age_seconds: Option<i64>,
    /// Size of the newest verified backup, in bytes.
    pub backup_size_bytes: Option<u64>,
    /// WAL frames a passive checkpoint could not back-fill.
    pub wal_frames_pinned: Option<i64>,
    /// Age of the newest copy on the offsite store, in seconds.
    #[serde(default)]
    pub offsite_age_seconds: Option<i64>,
}

/// The result of one health run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The database.
    pub database: String,
    /// The worst verdict of its checks.
    pub status: Status,
    /// When it ran.
    pub checked_at: DateTime<Utc>,
    /// Database size in MiB (the seed's `db_size_mb`).
    pub db_size_mb: f64,
    /// WAL size in MiB.
    pub wal_size_mb: f64,
    /// Every check.
    pub checks: Vec<Check>,
    /// The figures.
    pub figures: Figures,
    /// The slow check this run included: `quick_check` or
    /// `integrity_check`.
    pub deep: Option<String>,
}

impl Report {
    /// The failed checks, as "name: detail".
    pub fn reasons(&self) -> Vec<String> {
        self.checks
            .iter()
            .filter(|c| c.status != Status::Healthy)
            .map(|c| format!("{}: {}", c.name, c.detail))
            .collect()
    }
}

/// Which slow check a health run should include.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeepCheck {
    /// `PRAGMA quick_check`.
    Quick,
    /// `PRAGMA integrity_check`.
    Integrity,
}

impl StateDb {
    /// Records `report` as the latest of its database (an
    /// `integrity_check` counts as a `quick_check` too).
    pub fn record_health(&self, report: &Report) -> Result<(), StateError> {
        let text = serde_json::to_string(report).map_err(|e| StateError::Corrupt {
            path: self.path.clone(),
            detail: e.to_string(),
        })?;
        let at = report.checked_at.to_rfc3339();
        let quick = report.deep.is_some().then(|| at.clone());
        let integrity = (report.deep.as_deref() == Some("integrity_check")).then(|| at.clone());
        self.conn
            .execute(
                "INSERT INTO health (database, checked_at, status, report, quick_check_at, integrity_check_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (database) DO UPDATE SET checked_at = excluded.checked_at,
                   status = excluded.status, report = excluded.report,
                   quick_check_at = coalesce(excluded.quick_check_at, quick_check_at),
                   integrity_check_at = coalesce(excluded.integrity_check_at, integrity_check_at)",
                params![report.database, at, report.status.as_str(), text, quick, integrity],
            )
            .map_err(sqlite(&self.path, "cannot record a health result"))?;
        let sample = super::samples::SizeSample {
            at: report.checked_at,
            db_bytes: report.figures.db_size_bytes,
            wal_bytes: report.figures.wal_size_bytes,
        };
        self.record_size_sample(&report.database, sample)
    }

    /// The latest health report of `database`.
    pub fn health(&self, database: &str) -> Result<Option<Report>, StateError> {
        let text: Option<String> = self
            .conn
            .query_row(
                "SELECT report FROM health WHERE database = ?1",
                params![database],
                |row| row.get(0),
            )
            .optional()
            .map_err(sqlite(&self.path, "cannot read health results"))?;
        text.map(|text| self.parse_report(&text)).transpose()
    }

    /// The latest health report of every database, by name.
    pub fn all_health(&self) -> Result<Vec<Report>, StateError> {
        let mut statement = self
            .conn
            .prepare("SELECT report FROM health ORDER BY database")
            .map_err(sqlite(&self.path, "cannot read health results"))?;
        let texts: Vec<String> = statement
            .query_map([], |row| row.get(0))
            .and_then(|rows| rows.collect())
            .map_err(sqlite(&self.path, "cannot read health results"))?;
        texts.iter().map(|t| self.parse_report(t)).collect()
    }

    /// The slow check due for `database` at `now`: an `integrity_check`
    /// every `integrity_every`, else a `quick_check` every `quick_every`
    /// (zero: never).
    pub fn deep_check_due(
        &self,
        database: &str,
        quick_every: std::time::Duration,
        integrity_every: std::time::Duration,
        now: DateTime<Utc>,
    ) -> Result<Option<DeepCheck>, StateError> {
        let row: Option<(Option<String>, Option<String>)> = self
            .conn
            .query_row(
                "SELECT quick_check_at, integrity_check_at FROM health WHERE database = ?1",
                params![database],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()
            .map_err(sqlite(&self.path, "cannot read health results"))?;
        let (quick, integrity) = row.unwrap_or_default();
        let due = |last: Option<String>, every: std::time::Duration| {
            !every.is_zero()
                && last
                    .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
                    .and_then(|t| chrono::TimeDelta::from_std(every).ok().map(|e| (t, e)))
                    .is_none_or(|(t, e)| now - t.with_timezone(&Utc) >= e)
        };
        Ok(if due(integrity, integrity_every) {
            Some(DeepCheck::Integrity)
        } else if due(quick, quick_every) {
            Some(DeepCheck::Quick)
        } else {
            None
        })
    }

    fn parse_report(&self, text: &str) -> Result<Report, StateError> {
        serde_json::from_str(text).map_err(|e| StateError::Corrupt {
            path: self.path.clone(),
            detail: format!("a health report is unreadable: {e}"),
        })
    }
}

/// When a job last succeeded on a database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastSuccess {
    /// The database.
    pub database: String,
    /// The job kind.
    pub job: JobKind,
    /// When its last successful run started.
    pub at: DateTime<Utc>,
}

/// One run's duration, for the duration histograms.
#[derive(Debug, Clone, PartialEq)]
pub struct RunDuration {
    /// The database.
    pub database: String,
    /// The job kind.
    pub job: JobKind,
    /// Seconds from start to finish.
    pub seconds: f64,
}

impl StateDb {
    /// The last successful run of every (job, database).
    pub fn last_successes(&self) -> Result<Vec<LastSuccess>, StateError> {
        let mut statement = self
            .conn
            .prepare(
                "SELECT database, job, max(started_at) FROM job_runs
                 WHERE outcome = 'success' AND database IS NOT NULL GROUP BY job, database",
            )
            .map_err(sqlite(&self.path, "cannot read job runs"))?;
        statement
            .query_map([], |row| {
                Ok(LastSuccess {
                    database: row.get(0)?,
                    job: row.get(1)?,
                    at: row.get(2)?,
                })
            })
            .and_then(|rows| rows.collect())
            .map_err(sqlite(&self.path, "cannot read job runs"))
    }

    /// The durations of the recorded runs (the history the daemon keeps).
    pub fn run_durations(&self) -> Result<Vec<RunDuration>, StateError> {
        let mut statement = self
            .conn
            .prepare(
                "SELECT database, job, started_at, finished_at FROM job_runs WHERE database IS NOT NULL",
            )
            .map_err(sqlite(&self.path, "cannot read job runs"))?;
        statement
            .query_map([], |row| {
                let started: DateTime<Utc> = row.get(2)?;
                let finished: DateTime<Utc> = row.get(3)?;
                Ok(RunDuration {
                    database: row.get(0)?,
                    job: row.get(1)?,
                    seconds: (finished - started).num_milliseconds().max(0) as f64 / 1000.0,
                })
            })
            .and_then(|rows| rows.collect())
            .map_err(sqlite(&self.path, "cannot read job runs"))
    }

    /// The figures of the latest run of `job` on each database that
    /// recorded some, by database.
    pub fn latest_figures(&self, job: JobKind) -> Result<Vec<(String, RunFigures)>, StateError> {
        let mut statement = self
            .conn
            .prepare(
                "SELECT database, figures FROM job_runs WHERE id IN
                 (SELECT max(id) FROM job_runs WHERE job = ?1 AND figures IS NOT NULL GROUP BY database)",
            )
            .map_err(sqlite(&self.path, "cannot read job runs"))?;
        statement
            .query_map(params![job], |row| Ok((row.get(0)?, row.get(1)?)))
            .and_then(|rows| rows.collect())
            .map_err(sqlite(&self.path, "cannot read job runs"))
    }
}
