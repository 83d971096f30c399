//! One job run, the same wherever it starts.
//!
//! Owns [`run`]: what each job of a database does (a backup and then its
//! retention prune, health, optimize, a restore drill) and how its outcome
//! reads ([`outcome`]); and [`record`], the one place a finished run of any
//! kind (these, `apply`, migrations, the daemon's own conditions) becomes a
//! row of `job_runs`. The daemon's workers, the command line and
//! `live::Manager` run jobs through [`run`]; the caller holds the
//! database's one-manager claim and sweeps what killed restores left beside
//! it (once per command; the daemon on its own pass).

use std::path::Path;

use chrono::{DateTime, Utc};

use super::backup::{self, BackupError, BackupReport, BackupRequest};
use super::outcome::{JobFailure, JobOutcome, JobSuccess, RunFigures};
use super::progress::Progress;
use super::{drill, health, offsite, optimize, prune};
use crate::clock::Clock;
use crate::config::{Database, JobKind, VerifyLevel};
use crate::state::expect::HoldKind;
use crate::state::{JobRun, Outcome, StateDb, StateError, Trigger};
use crate::store::{BackupRecord, BackupTrigger, LocalDir};

/// What a run needs besides its database.
pub struct Context<'a> {
    /// The state database.
    pub state: &'a StateDb,
    /// `settings.backup_dir`.
    pub backup_dir: &'a Path,
    /// `settings.timezone` (retention's calendar).
    pub timezone: chrono_tz::Tz,
    /// The clock.
    pub clock: &'a dyn Clock,
    /// Who started it.
    pub trigger: Trigger,
}

/// A job of one database, with its options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Job {
    /// A verified backup, pinned or not; with `prune`, the database's
    /// retention runs after it.
    Backup {
        /// Never prune it.
        pin: bool,
        /// Apply the retention afterwards.
        prune: bool,
    },
    /// The health checks; `deep` forces the slow check at that level,
    /// otherwise it runs when due.
    Health {
        /// Force the slow check.
        deep: Option<VerifyLevel>,
    },
    /// Checkpoint, `PRAGMA optimize`, incremental vacuum.
    Optimize,
    /// Restore the latest backup into a scratch file and check it.
    Drill,
    /// Upload the verified copies waiting for the offsite store, then
    /// apply its retention.
    Offsite,
}

impl Job {
    /// Its kind, as recorded.
    pub fn kind(self) -> JobKind {
        match self {
            Job::Backup { .. } => JobKind::Backup,
            Job::Health { .. } => JobKind::Health,
            Job::Optimize => JobKind::Optimize,
            Job::Drill => JobKind::Drill,
            Job::Offsite => JobKind::Offsite,
        }
    }

    /// The job the scheduler runs for `kind`: a backup is pruned after;
    /// `None` for kinds that are not scheduled per database.
    pub fn scheduled(kind: JobKind) -> Option<Job> {
        match kind {
            JobKind::Backup => Some(Job::Backup {
                pin: false,
                prune: true,
            }),
            JobKind::Health => Some(Job::Health { deep: None }),
            JobKind::Optimize => Some(Job::Optimize),
            JobKind::Drill => Some(Job::Drill),
            JobKind::Offsite => Some(Job::Offsite),
            JobKind::Apply | JobKind::Prune | JobKind::Migrate | JobKind::Replicate => None,
        }
    }
}

/// What a successful run did.
#[derive(Debug)]
pub enum Done {
    /// A backup, and the copies its retention removed.
    Backup {
        /// The backup.
        report: BackupReport,
        /// The copies pruned after it.
        pruned: Vec<BackupRecord>,
    },
    /// A scheduled backup of a database the operator paused: none taken.
    Paused {
        /// Since when.
        since: DateTime<Utc>,
    },
    /// The health report (also stored as the database's latest).
    Health(health::Report),
    /// The maintenance report.
    Optimize(optimize::Report),
    /// A drill that passed.
    Drill(drill::Report),
    /// Copies uploaded to the offsite store.
    Offsite(offsite::Report),
}

impl Done {
    /// The summary and figures recorded for it.
    pub fn success(&self) -> JobSuccess {
        match self {
            Done::Backup { report, pruned } => JobSuccess {
                summary: format!(
                    "{} ({} bytes), {} pruned",
                    crate::paths::display(&report.path),
                    report.record.size,
                    pruned.len()
                ),
                figures: RunFigures {
                    bytes: Some(report.record.size),
                    ..RunFigures::default()
                },
            },
            Done::Paused { since } => JobSuccess::summary(format!(
                "paused by operator since {}; no backup taken",
                since.format("%Y-%m-%d %H:%M:%SZ")
            )),
            Done::Health(report) => {
                let reasons = report.reasons();
                JobSuccess::summary(if reasons.is_empty() {
                    report.status.as_str().to_string()
                } else {
                    format!("{}: {}", report.status.as_str(), reasons.join("; "))
                })
            }
            Done::Optimize(report) => JobSuccess {
                summary: format!(
                    "{}checkpoint {:?}, {} pages reclaimed, write lock at most {} ms",
                    if report.analyzed {
                        ""
                    } else {
                        "PRAGMA optimize skipped (the database stayed busy), "
                    },
                    report.checkpoint,
                    report.pages_reclaimed,
                    report.lock_ms
                ),
                figures: RunFigures {
                    bytes: Some(report.bytes_reclaimed),
                    pages_reclaimed: Some(report.pages_reclaimed),
                    lock_ms: Some(report.lock_ms),
                },
            },
            Done::Offsite(report) => JobSuccess {
                summary: format!(
                    "{} uploaded ({} bytes), {} removed by the remote retention, newest remote copy {}",
                    report.uploaded.len(),
                    report.bytes,
                    report.pruned.len(),
                    report.newest.map_or("none".to_string(), |at| at
                        .format("%Y-%m-%d %H:%M:%SZ")
                        .to_string())
                ),
                figures: RunFigures {
                    bytes: Some(report.bytes),
                    ..RunFigures::default()
                },
            },
            Done::Drill(report) => JobSuccess::summary(format!(
                "drill passed on {}{}",
                report
                    .backup
                    .as_deref()
                    .map(crate::paths::display)
                    .unwrap_or_else(|| "no backup".into()),
                report.replica_point.map_or(String::new(), |point| format!(
                    " and the replica at {}",
                    crate::replicate::rebuild::shown(point)
                ))
            )),
        }
    }
}

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The backup (or its prune) failed.
    #[error(transparent)]
    Backup(#[from] BackupError),
    /// Maintenance failed.
    #[error(transparent)]
    Optimize(#[from] crate::db::DbError),
    /// The offsite upload failed.
    #[error(transparent)]
    Offsite(#[from] offsite::OffsiteError),
    /// The drill ran and did not pass.
    #[error("{}", .0.reason.as_deref().unwrap_or("the drill failed"))]
    DrillFailed(Box<drill::Report>),
    /// The state database failed.
    #[error(transparent)]
    State(#[from] StateError),
}

/// Runs `job` on `database`.
pub fn run(
    job: Job,
    database: &Database,
    context: &Context,
    progress: &mut dyn Progress,
) -> Result<Done, RunError> {
    let state = context.state;
    match job {
        Job::Backup { pin, prune } => {
            let name = database.name.as_str();
            if context.trigger == Trigger::Schedule
                && let Some(hold) = state.hold(name, HoldKind::Backups)?
            {
                tracing::info!(
                    db = name,
                    "backups paused by operator; no backup taken (`litewarden resume {name}`)"
                );
                return Ok(Done::Paused { since: hold.since });
            }
            let request = BackupRequest {
                database,
                backup_dir: context.backup_dir,
                trigger: match context.trigger {
                    Trigger::Manual => BackupTrigger::Manual,
                    Trigger::Schedule => BackupTrigger::Schedule,
                },
                pin,
            };
            let report = backup::take(request, state, context.clock, progress)?;
            let pruned = if prune {
                let store = LocalDir::new(context.backup_dir);
                let now = context.clock.now();
                let entries = prune::decide(state, database, &store, context.timezone, now)?;
                prune::remove(state, &store, &entries)?
            } else {
                Vec::new()
            };
            Ok(Done::Backup { report, pruned })
        }
        Job::Health { deep } => {
            let now = context.clock.now();
            let deep = match deep {
                Some(level) => Some(level),
                None => health::due_deep_check(state, database, now)?,
            };
            let request = health::Request {
                database,
                backup_dir: context.backup_dir,
                deep,
                now,
            };
            let report = health::run(request, Some(state));
            state.record_health(&report)?;
            Ok(Done::Health(report))
        }
        Job::Optimize => Ok(Done::Optimize(optimize::run(database)?)),
        Job::Offsite => {
            let remote = offsite::open(database, context.backup_dir)?;
            let report = offsite::run(
                database,
                &*remote,
                context.backup_dir,
                state,
                context.timezone,
                context.clock,
            )?;
            Ok(Done::Offsite(report))
        }
        Job::Drill => {
            let report = drill::run(database, context.backup_dir, state, context.clock)?;
            if report.passed {
                return Ok(Done::Drill(report));
            }
            let reason = report.reason.clone().unwrap_or_default();
            state.record_event(
                Some(database.name.as_str()),
                "drill_failed",
                &reason,
                context.clock.now(),
            )?;
            Err(RunError::DrillFailed(Box::new(report)))
        }
    }
}

/// How `result` reads as a run's outcome: its summary and figures, or its
/// failure classified by its causes (from the job's own error: a
/// transparent wrapper would hide it from the classification).
pub fn outcome(result: &Result<Done, RunError>) -> JobOutcome {
    match result {
        Ok(done) => Ok(done.success()),
        Err(RunError::Backup(error)) => Err(JobFailure::from_error(error)),
        Err(RunError::Optimize(error)) => Err(JobFailure::from_error(error)),
        Err(RunError::State(error)) => Err(JobFailure::from_error(error)),
        Err(RunError::Offsite(error)) => Err(JobFailure::from_error(error)),
        Err(failed @ RunError::DrillFailed(_)) => Err(JobFailure::from_error(failed)),
    }
}

/// Records a finished run of `job` as a row of `job_runs` (and in the run
/// totals); returns its id.
pub fn record(
    state: &StateDb,
    job: JobKind,
    database: Option<&str>,
    trigger: Trigger,
    started_at: DateTime<Utc>,
    finished_at: DateTime<Utc>,
    outcome: &JobOutcome,
) -> Result<i64, StateError> {
    let (outcome, failure, error, detail, figures) = match outcome {
        Ok(success) => (
            Outcome::Success,
            None,
            None,
            Some(success.summary.clone()),
            success.figures,
        ),
        Err(failed) => (
            Outcome::Failed,
            Some(failed.kind),
            Some(failed.message.clone()),
            None,
            RunFigures::default(),
        ),
    };
    state.record_run(&JobRun {
        job,
        database: database.map(str::to_string),
        trigger,
        started_at,
        finished_at,
        outcome,
        failure,
        error,
        detail,
        figures,
    })
}
