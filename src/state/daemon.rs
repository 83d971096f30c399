//! The daemon's rows in the state database: its schedule (next run,
//! running since, skipped ticks per job), its own liveness and config
//! health, and the queries `status` and the scheduler need.
//!
//! Owns the `daemon_jobs` and `daemon` tables; only the reconciler writes
//! them, `status` reads them.

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};
use serde::Serialize;

use super::runs::{FailureKind, RunFigures};
use super::{Outcome, StateDb, StateError, Trigger, sqlite};
use crate::config::JobKind;

/// A scheduled job as the daemon last saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ScheduledJob {
    /// The database.
    pub database: String,
    /// The job kind.
    pub job: JobKind,
    /// The schedule, as shown.
    pub schedule: String,
    /// When it runs next.
    pub next_run: Option<DateTime<Utc>>,
    /// When the run in progress started.
    pub running_since: Option<DateTime<Utc>>,
    /// Ticks skipped because a run was still going.
    pub skipped: i64,
    /// Failed runs in a row; when not 0, the next run is retry number
    /// `retry` of the failed job.
    pub retry: i64,
}

/// The daemon's own row: who runs and whether its config is good.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DaemonRow {
    /// Process id.
    pub pid: i64,
    /// When it started.
    pub started_at: String,
    /// Whether the last reload succeeded.
    pub config_ok: bool,
    /// The errors of the last failed reload.
    pub config_error: Option<String>,
    /// Last time the daemon wrote this row.
    pub heartbeat_at: String,
}

impl StateDb {
    /// Writes the changed schedule rows: `write` are upserted, `remove`
    /// (database, job) deleted; with `replace_all` the table is emptied
    /// first (a daemon's first write, or a state database made anew). One
    /// transaction, cached statements: the cost follows what changed.
    pub fn write_schedule(
        &self,
        write: &[ScheduledJob],
        remove: &[(String, JobKind)],
        replace_all: bool,
    ) -> Result<(), StateError> {
        let failed = sqlite(&self.path, "cannot write the schedule");
        let tx = self.conn.unchecked_transaction().map_err(&failed)?;
        if replace_all {
            tx.execute("DELETE FROM daemon_jobs", []).map_err(&failed)?;
        }
        {
            let mut delete = tx
                .prepare_cached("DELETE FROM daemon_jobs WHERE database = ?1 AND job = ?2")
                .map_err(&failed)?;
            for (database, job) in remove {
                delete.execute(params![database, job]).map_err(&failed)?;
            }
            let mut upsert = tx
                .prepare_cached(
                    "INSERT INTO daemon_jobs (database, job, schedule, next_run, running_since, skipped, retry) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                     ON CONFLICT (database, job) DO UPDATE SET schedule = excluded.schedule, next_run = excluded.next_run,
                       running_since = excluded.running_since, skipped = excluded.skipped, retry = excluded.retry",
                )
                .map_err(&failed)?;
            for job in write {
                upsert
                    .execute(params![
                        job.database,
                        job.job,
                        job.schedule,
                        job.next_run.map(|t| t.to_rfc3339()),
                        job.running_since.map(|t| t.to_rfc3339()),
                        job.skipped,
                        job.retry
                    ])
                    .map_err(&failed)?;
            }
        }
        tx.commit().map_err(&failed)
    }

    /// The schedule the daemon last wrote.
    pub fn schedule(&self) -> Result<Vec<ScheduledJob>, StateError> {
        let mut statement = self
            .conn
            .prepare("SELECT database, job, schedule, next_run, running_since, skipped, retry FROM daemon_jobs ORDER BY database, job")
            .map_err(sqlite(&self.path, "cannot read the schedule"))?;
        statement
            .query_map([], |row| {
                Ok(ScheduledJob {
                    database: row.get(0)?,
                    job: row.get(1)?,
                    schedule: row.get(2)?,
                    next_run: row.get(3)?,
                    running_since: row.get(4)?,
                    skipped: row.get(5)?,
                    retry: row.get(6)?,
                })
            })
            .and_then(|rows| rows.collect())
            .map_err(sqlite(&self.path, "cannot read the schedule"))
    }

    /// Records the daemon's own state.
    pub fn write_daemon(&self, row: &DaemonRow) -> Result<(), StateError> {
        self.conn
            .prepare_cached(
                "INSERT INTO daemon (id, pid, started_at, config_ok, config_error, heartbeat_at) VALUES (1, ?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (id) DO UPDATE SET pid = excluded.pid, started_at = excluded.started_at, config_ok = excluded.config_ok,
                   config_error = excluded.config_error, heartbeat_at = excluded.heartbeat_at",
            )
            .and_then(|mut statement| {
                statement.execute(params![row.pid, row.started_at, row.config_ok, row.config_error, row.heartbeat_at])
            })
            .map_err(sqlite(&self.path, "cannot record the daemon"))?;
        Ok(())
    }

    /// The daemon's row, if a daemon ever ran.
    pub fn daemon(&self) -> Result<Option<DaemonRow>, StateError> {
        self.conn
            .query_row("SELECT pid, started_at, config_ok, config_error, heartbeat_at FROM daemon WHERE id = 1", [], |row| {
                Ok(DaemonRow {
                    pid: row.get(0)?,
                    started_at: row.get(1)?,
                    config_ok: row.get(2)?,
                    config_error: row.get(3)?,
                    heartbeat_at: row.get(4)?,
                })
            })
            .optional()
            .map_err(sqlite(&self.path, "cannot read the daemon row"))
    }

    /// How many runs each (job, database, outcome) has had, history
    /// pruning notwithstanding.
    pub fn run_counts(&self) -> Result<Vec<RunCount>, StateError> {
        let mut statement = self
            .conn
            .prepare("SELECT job, nullif(database, ''), outcome, count FROM run_totals ORDER BY job, database, outcome")
            .map_err(sqlite(&self.path, "cannot read job runs"))?;
        statement
            .query_map([], |row| {
                Ok(RunCount {
                    job: row.get(0)?,
                    database: row.get(1)?,
                    outcome: row.get(2)?,
                    count: row.get(3)?,
                })
            })
            .and_then(|rows| rows.collect())
            .map_err(sqlite(&self.path, "cannot read job runs"))
    }

    /// The latest run of every (job, database) pair.
    pub fn latest_runs(&self) -> Result<Vec<JobRunRow>, StateError> {
        self.runs_where(
            "id IN (SELECT max(id) FROM job_runs GROUP BY job, database)",
            10_000,
        )
    }

    /// The most recent runs, newest first.
    pub fn recent_runs(&self, limit: usize) -> Result<Vec<JobRunRow>, StateError> {
        self.runs_where("1", limit)
    }

    fn runs_where(&self, filter: &str, limit: usize) -> Result<Vec<JobRunRow>, StateError> {
        let sql = format!(
            "SELECT job, database, trigger, started_at, finished_at, outcome, error, detail, failure, figures FROM job_runs WHERE {filter} ORDER BY id DESC LIMIT ?1"
        );
        let mut statement = self
            .conn
            .prepare(&sql)
            .map_err(sqlite(&self.path, "cannot read job runs"))?;
        statement
            .query_map(params![limit as i64], |row| {
                Ok(JobRunRow {
                    job: row.get(0)?,
                    database: row.get(1)?,
                    trigger: row.get(2)?,
                    started_at: row.get(3)?,
                    finished_at: row.get(4)?,
                    outcome: row.get(5)?,
                    error: row.get(6)?,
                    detail: row.get(7)?,
                    failure: row.get(8)?,
                    figures: row.get::<_, Option<RunFigures>>(9)?.unwrap_or_default(),
                })
            })
            .and_then(|rows| rows.collect())
            .map_err(sqlite(&self.path, "cannot read job runs"))
    }
}

/// A job run as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JobRunRow {
    /// Job kind.
    pub job: JobKind,
    /// Database, if any.
    pub database: Option<String>,
    /// What started it.
    pub trigger: Trigger,
    /// Start.
    pub started_at: DateTime<Utc>,
    /// End.
    pub finished_at: DateTime<Utc>,
    /// How it ended.
    pub outcome: Outcome,
    /// The error, when it failed.
    pub error: Option<String>,
    /// Its summary.
    pub detail: Option<String>,
    /// The kind of failure, when it failed.
    pub failure: Option<FailureKind>,
    /// What it measured.
    pub figures: RunFigures,
}

/// The number of runs of one (job, database, outcome).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunCount {
    /// Job kind.
    pub job: JobKind,
    /// Database, if any.
    pub database: Option<String>,
    /// How they ended.
    pub outcome: Outcome,
    /// How many.
    pub count: i64,
}
