//! Reading job runs back: when a job last started or succeeded, and the
//! failure of the latest migration run; and [`FailureKind`], the kind of
//! failure a run is stored with.
//!
//! Owns no state: queries over `job_runs`, written by
//! [`StateDb::record_run`].

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};

use super::{StateDb, StateError, Trigger, sqlite};
use crate::config::JobKind;

impl StateDb {
    /// When the most recent `migrate` run on `database` started and its
    /// error, if that run failed (a later success clears it).
    pub fn failed_migration_run(
        &self,
        database: &str,
    ) -> Result<Option<(DateTime<Utc>, String)>, StateError> {
        let row = self
            .conn
            .query_row(
                "SELECT started_at, outcome, coalesce(error, '') FROM job_runs WHERE job = 'migrate' AND database = ?1 ORDER BY id DESC LIMIT 1",
                params![database],
                |row| Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?, row.get::<_, String>(2)?)),
            )
            .optional()
            .map_err(sqlite(&self.path, "cannot read job runs"))?;
        Ok(match row {
            Some((started_at, outcome, error)) if outcome == "failed" => {
                DateTime::parse_from_rfc3339(&started_at)
                    .ok()
                    .map(|at| (at.with_timezone(&Utc), error))
            }
            _ => None,
        })
    }

    /// When the last successful run of `job` on `database` started.
    pub fn last_success(
        &self,
        job: JobKind,
        database: &str,
    ) -> Result<Option<DateTime<Utc>>, StateError> {
        self.last_started(job, database, true)
    }

    /// When the last run of `job` on `database` that the daemon started
    /// (not one run by hand) started, whatever its outcome: what `every:`
    /// intervals are anchored to.
    pub fn last_start(
        &self,
        job: JobKind,
        database: &str,
    ) -> Result<Option<DateTime<Utc>>, StateError> {
        self.last_started(job, database, false)
    }

    fn last_started(
        &self,
        job: JobKind,
        database: &str,
        success_only: bool,
    ) -> Result<Option<DateTime<Utc>>, StateError> {
        let started: Option<String> = self
            .conn
            .query_row(
                "SELECT started_at FROM job_runs WHERE job = ?1 AND database = ?2
                 AND (outcome = 'success' OR NOT ?3) AND (?3 OR trigger != ?4)
                 ORDER BY id DESC LIMIT 1",
                params![job, database, success_only, Trigger::Manual],
                |row| row.get(0),
            )
            .optional()
            .map_err(sqlite(&self.path, "cannot read job runs"))?;
        started
            .map(|text| {
                DateTime::parse_from_rfc3339(&text)
                    .map(|t| t.with_timezone(&Utc))
                    .map_err(|_| StateError::Corrupt {
                        path: self.path.clone(),
                        detail: format!("job_runs has an invalid started_at `{text}`"),
                    })
            })
            .transpose()
    }
}

/// What a run measured, stored with it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunFigures {
    /// Bytes written (a backup's size) or given back (optimize).
    pub bytes: Option<u64>,
    /// Pages given back to the file system (optimize).
    pub pages_reclaimed: Option<u64>,
    /// The longest time a write lock was held, in milliseconds.
    pub lock_ms: Option<u64>,
}

impl RunFigures {
    /// The stored JSON; `None` when nothing was measured.
    pub(super) fn json(&self) -> Option<String> {
        (*self != RunFigures::default()).then(|| serde_json::to_string(self).unwrap_or_default())
    }
}

/// What kind of failure ended a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// The database file does not exist.
    SourceMissing,
    /// No space left on a device.
    DiskFull,
    /// SQLite stayed busy or locked past the timeout.
    Busy,
    /// A file is damaged, or not a database.
    Corrupt,
    /// The configuration or an operator's setting stopped it.
    Config,
    /// It ran past its timeout.
    Stuck,
    /// Anything else.
    Other,
}

impl FailureKind {
    /// The name in logs and the state database.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::SourceMissing => "source_missing",
            FailureKind::DiskFull => "disk_full",
            FailureKind::Busy => "busy",
            FailureKind::Corrupt => "corrupt",
            FailureKind::Config => "config",
            FailureKind::Stuck => "stuck",
            FailureKind::Other => "other",
        }
    }

    /// The kind named `text`.
    pub fn parse(text: &str) -> Option<Self> {
        [
            FailureKind::SourceMissing,
            FailureKind::DiskFull,
            FailureKind::Busy,
            FailureKind::Corrupt,
            FailureKind::Config,
            FailureKind::Stuck,
            FailureKind::Other,
        ]
        .into_iter()
        .find(|k| k.as_str() == text)
    }
}
