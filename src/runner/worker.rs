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
use crate::jobs::outcome::{FailureKind, JobFailure, JobOutcome, JobSuccess};
use crate::jobs::progress::Quiet;
use crate::jobs::run::{self, Context, Job};
use crate::plan::Plan;
use crate::state::{StateDb, Trigger};

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
            Task::Job(kind) => match Job::scheduled(*kind) {
                Some(job) => (self.job(work, job), None),
                None => (
                    Err(JobFailure::new(
                        FailureKind::Config,
                        format!("{kind} jobs are not scheduled by this version"),
                    )),
                    None,
                ),
            },
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
                Err(JobFailure::new(report.failure_kind(), report.summary())),
                Some(report),
            ),
            Ok(report) => (Ok(JobSuccess::summary(report.summary())), Some(report)),
            Err(e) => (Err(JobFailure::from_error(&e)), None),
        }
    }

    /// A scheduled job of the work's database (a backup holds the
    /// database's claim while it runs).
    fn job(&mut self, work: &Work, job: Job) -> JobOutcome {
        let state = open_state(&mut self.state, &self.state_dir)?;
        let settings = &work.config.settings;
        let _claim = match job {
            Job::Backup { .. } => Some(
                DatabaseLock::acquire(
                    work.database.name.as_str(),
                    &work.database.path,
                    &settings.state_dir,
                )
                .map_err(|e| JobFailure::from_error(&e))?,
            ),
            _ => None,
        };
        let context = Context {
            state,
            backup_dir: &settings.backup_dir,
            timezone: settings.timezone,
            clock: self.clock.as_ref(),
            trigger: Trigger::Schedule,
        };
        run::outcome(&run::run(job, &work.database, &context, &mut Quiet))
    }
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
