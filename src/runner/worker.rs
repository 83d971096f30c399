//! One worker of the runner's pool: a thread that runs whatever work the
//! runner hands it, one piece at a time, and reports each finished run.
//!
//! The worker owns its connection to the state database for its whole life
//! (opened on first use, reopened after a failed run). The connection to
//! the database itself is opened per run, on purpose: an idle connection
//! held between runs would block a `journal_mode` change away from WAL
//! (SQLite needs it to be the only connection), and if an operator replaces
//! the file by rename it would sit on the old inode while sharing the
//! `-wal`/`-shm` files by name with the new one, the pattern SQLite's
//! "How To Corrupt" page warns about.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Sender, channel};

use chrono::{DateTime, Utc};

use super::{JobKey, Priority};
use crate::apply::{self, ApplyOptions, ApplyReport};
use crate::clock::Clock;
use crate::config::{Config, Database, JobKind};
use crate::db::lock::DatabaseLock;
use crate::jobs::backup::{self, BackupRequest};
use crate::jobs::outcome::{FailureKind, JobFailure, JobOutcome, JobSuccess};
use crate::jobs::progress::Quiet;
use crate::jobs::prune;
use crate::jobs::{drill, health, optimize};
use crate::plan::Plan;
use crate::state::StateDb;
use crate::state::catalog::BackupTrigger;
use crate::state::expect::HoldKind;
use crate::store::LocalDir;

/// What a worker runs.
#[derive(Debug)]
pub enum Task {
    /// A scheduled job.
    Job(JobKind),
    /// The changes a reload planned for this database.
    Converge(Box<Plan>),
}

impl Task {
    /// What caused it, as logs show it.
    pub fn trigger(&self) -> &'static str {
        match self {
            Task::Job(_) => "schedule",
            Task::Converge(_) => "reload",
        }
    }

    /// How urgent it is.
    pub fn priority(&self) -> Priority {
        match self {
            Task::Converge(_) => Priority::Converge,
            Task::Job(JobKind::Backup) => Priority::Backup,
            Task::Job(_) => Priority::Maintenance,
        }
    }
}

/// Work handed to the runner.
#[derive(Debug)]
pub struct Work {
    /// Which job (`<db>/apply` for a converge).
    pub key: JobKey,
    /// What to run.
    pub task: Task,
    /// The database definition the run uses.
    pub database: Arc<Database>,
    /// The config the run started with (its directories and settings).
    pub config: Arc<Config>,
    /// When the run started (set by the runner when a worker takes it).
    pub started: DateTime<Utc>,
    /// The daemon's sequence number of this run, in every log line of it.
    pub run_id: u64,
}

/// A finished job run.
#[derive(Debug)]
pub struct Finished {
    /// Which job.
    pub key: JobKey,
    /// When it started.
    pub started: DateTime<Utc>,
    /// The run's sequence number.
    pub run_id: u64,
    /// How it ended.
    pub result: JobOutcome,
    /// For a converge, what became of each change.
    pub report: Option<ApplyReport>,
}

/// Where a worker reports finished runs.
pub type Report = Arc<dyn Fn(Finished) + Send + Sync>;

/// Starts a worker thread numbered `number`; returns where to send it work.
/// The thread ends when that sender is dropped.
pub fn spawn(
    number: usize,
    state_dir: PathBuf,
    report: Report,
    clock: Arc<dyn Clock>,
) -> std::io::Result<Sender<Work>> {
    let (work, inbox) = channel::<Work>();
    std::thread::Builder::new()
        .name(format!("worker-{number}"))
        .spawn(move || {
            let mut worker = Worker {
                state_dir,
                state: None,
                clock,
            };
            for work in inbox {
                let span = tracing::info_span!(
                    "job",
                    db = %work.key.database,
                    job = work.key.kind.as_str(),
                    run_id = work.run_id,
                    trigger = work.task.trigger()
                );
                let (result, report_of_changes) = span.in_scope(|| worker.execute(&work));
                report(Finished {
                    key: work.key,
                    started: work.started,
                    run_id: work.run_id,
                    result,
                    report: report_of_changes,
                });
            }
        })?;
    Ok(work)
}

/// The state a worker keeps between runs.
struct Worker {
    state_dir: PathBuf,
    state: Option<StateDb>,
    clock: Arc<dyn Clock>,
}

impl Worker {
    /// Runs one piece of work; returns its summary or error, and for a
    /// converge the report of each change.
    fn execute(&mut self, work: &Work) -> (JobOutcome, Option<ApplyReport>) {
        let (result, report) = match &work.task {
            Task::Job(JobKind::Backup) => (self.backup(work), None),
            Task::Job(JobKind::Health) => (self.health(work), None),
            Task::Job(JobKind::Optimize) => (optimize_job(work), None),
            Task::Job(JobKind::Drill) => (self.drill(work), None),
            Task::Job(other) => (
                Err(JobFailure::new(
                    FailureKind::Config,
                    format!("{other} jobs are not scheduled by this version"),
                )),
                None,
            ),
            Task::Converge(plan) => self.converge(work, plan),
        };
        if result.is_err() {
            self.state = None;
        }
        (result, report)
    }

    /// Applies a reload's changes to this database (`apply` records the run
    /// itself).
    fn converge(&self, work: &Work, plan: &Plan) -> (JobOutcome, Option<ApplyReport>) {
        let options = ApplyOptions {
            allow_vacuum: false,
            scheduled: true,
        };
        match apply::apply(&work.config, plan, options, self.clock.as_ref()) {
            Ok(report) if report.failed() => (
                Err(JobFailure::new(FailureKind::Other, report.summary())),
                Some(report),
            ),
            Ok(report) => (Ok(JobSuccess::summary(report.summary())), Some(report)),
            Err(e) => (Err(JobFailure::from_error(&e)), None),
        }
    }

    /// A backup, then the retention prune of that database.
    fn backup(&mut self, work: &Work) -> JobOutcome {
        let failed = |e: &(dyn std::error::Error + 'static)| JobFailure::from_error(e);
        let state = open_state(&mut self.state, &self.state_dir)?;
        let name = work.database.name.as_str();
        if let Some(hold) = state
            .hold(name, HoldKind::Backups)
            .map_err(|e| failed(&e))?
        {
            return Ok(JobSuccess::summary(format!(
                "paused by operator since {}; no backup taken (`litewarden resume {name}`)",
                hold.since.format("%Y-%m-%d %H:%M:%SZ")
            )));
        }
        let settings = &work.config.settings;
        let _claim = DatabaseLock::acquire(name, &work.database.path, &settings.state_dir)
            .map_err(|e| failed(&e))?;
        let request = BackupRequest {
            database: &work.database,
            backup_dir: &settings.backup_dir,
            trigger: BackupTrigger::Schedule,
            pin: false,
        };
        let report = backup::take(request, state, self.clock.as_ref(), &mut Quiet)
            .map_err(|e| failed(&e))?;
        let store = LocalDir::new(&settings.backup_dir);
        let entries = prune::decide(
            state,
            &work.database,
            &store,
            settings.timezone,
            self.clock.now(),
        )
        .map_err(|e| failed(&e))?;
        let removed = prune::remove(state, &store, &entries).map_err(|e| failed(&e))?;
        Ok(JobSuccess {
            summary: format!(
                "{} ({} bytes), {} pruned",
                crate::paths::display(&report.path),
                report.record.size,
                removed.len()
            ),
            bytes: Some(report.record.size),
            ..JobSuccess::default()
        })
    }
}

impl Worker {
    /// A health run (with the slow check when it is due), recorded as the
    /// database's latest health.
    fn health(&mut self, work: &Work) -> JobOutcome {
        let state = open_state(&mut self.state, &self.state_dir)?;
        let now = self.clock.now();
        let deep = health::due_deep_check(state, &work.database, now)
            .map_err(|e| JobFailure::from_error(&e))?;
        let request = health::Request {
            database: &work.database,
            backup_dir: &work.config.settings.backup_dir,
            deep,
            now,
        };
        let report = health::run(request, Some(state));
        state
            .record_health(&report)
            .map_err(|e| JobFailure::from_error(&e))?;
        let reasons = report.reasons();
        Ok(JobSuccess::summary(if reasons.is_empty() {
            report.status.as_str().to_string()
        } else {
            format!("{}: {}", report.status.as_str(), reasons.join("; "))
        }))
    }

    /// A restore drill; a failed drill is a failed run and a
    /// `drill_failed` event.
    fn drill(&mut self, work: &Work) -> JobOutcome {
        let state = open_state(&mut self.state, &self.state_dir)?;
        let settings = &work.config.settings;
        let report = drill::run(
            &work.database,
            &settings.backup_dir,
            state,
            self.clock.as_ref(),
        )
        .map_err(|e| JobFailure::from_error(&e))?;
        if report.passed {
            return Ok(JobSuccess::summary(format!(
                "drill passed on {}",
                report
                    .backup
                    .as_deref()
                    .map(crate::paths::display)
                    .unwrap_or_default()
            )));
        }
        let reason = report.reason.unwrap_or_default();
        if let Err(e) = state.record_event(
            Some(work.database.name.as_str()),
            "drill_failed",
            &reason,
            self.clock.now(),
        ) {
            tracing::error!(error = %e, "cannot record an event");
        }
        Err(JobFailure::new(
            FailureKind::Other,
            format!("drill_failed: {reason}"),
        ))
    }
}

/// Maintenance of the work's database.
fn optimize_job(work: &Work) -> JobOutcome {
    let report = optimize::run(&work.database).map_err(|e| JobFailure::from_error(&e))?;
    Ok(JobSuccess {
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
        bytes: Some(report.bytes_reclaimed),
        pages_reclaimed: Some(report.pages_reclaimed),
        lock_ms: Some(report.lock_ms),
    })
}

/// The worker's connection to the state database in `slot`, opened on first
/// use, after a failed run and when the file was deleted, replaced or
/// overwritten under it (then [`StateDb::open`] keeps a damaged one aside
/// and starts anew, so backups go on).
fn open_state<'a>(slot: &'a mut Option<StateDb>, dir: &Path) -> Result<&'a StateDb, JobFailure> {
    if slot.as_ref().is_some_and(|state| !state.is_intact()) {
        tracing::warn!(state_dir = %dir.display(), "the state database changed under this worker; reopening it");
        *slot = None;
    }
    match slot {
        Some(state) => Ok(state),
        None => Ok(slot.insert(StateDb::open(dir).map_err(|e| JobFailure::from_error(&e))?)),
    }
}
