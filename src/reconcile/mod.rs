//! The daemon (`litewarden run`): one loop that owns all runtime state.
//!
//! Owns the loaded configuration, the job table (schedule, next run, the run
//! in progress, skipped ticks), the [`Runner`] that runs every job on a
//! bounded pool, and the file watcher. Everything that happens arrives as an [`Event`] on one channel:
//! debounced file changes, SIGHUP, SIGTERM/SIGINT, finished jobs; timer
//! ticks are the channel's receive timeout. Nothing else mutates this state,
//! so there are no shared locks.
//!
//! Each change of the config or of a migrations directory converges the
//! files (`plan::diff` + `apply`, which creates databases, sets pragmas and
//! runs `apply: auto` migrations; see `converge.rs`: inline at startup, on
//! each database's worker after that) and then re-arms only the jobs whose
//! definition changed: an unchanged job keeps its next-run time, a new or
//! changed one starts from its last recorded run (so restarts never push a
//! backup back), a removed one stops being scheduled. A running job always
//! finishes with the definition it started with. An invalid or missing file
//! at reload keeps the last good config, logs every error and records the
//! failure; only startup fails fast.

mod alerting;
mod converge;
mod held;
mod jobs;
mod process;
mod replication;
mod rows;
mod turn;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use self::converge::Mode;
use self::held::HeldChanges;
use self::jobs::{Armed, JobTable};
use self::turn::Turn;

use crate::clock::Clock;
use crate::config::watch::Watcher;
use crate::config::{self, Config, Database, DbName, Environment, JobKind};
use crate::db::lock::DatabaseLock;
use crate::jobs::outcome::{FailureKind, JobFailure, JobOutcome, JobSuccess};
use crate::plan::Observed;
use crate::runner::{Finished, Runner, Task, Work};
use crate::state::{RUN_HISTORY, StateDb, Trigger};

/// How often the config is re-read even without a file event (a missed
/// event, a network file system).
pub const POLL_INTERVAL: Duration = Duration::from_secs(30);

/// The longest the loop sleeps without checking that its state database
/// is still there and intact (deleted or overwritten: it is reopened, and a
/// damaged one kept aside, so backups go on and `status` keeps working).
const STATE_CHECK_INTERVAL: Duration = Duration::from_secs(5);

/// The shortest time between two looks at the files (state database,
/// database headers): a busy loop (many databases, many finished jobs)
/// wakes far more often than that, and each look opens every file.
const FILE_CHECK_SPACING: Duration = Duration::from_secs(1);

/// At most this many databases have their file header read per look (and
/// are re-observed per periodic pass): with more databases, each is looked
/// at in turn, so the work of a look stays the same at 10 000 databases.
const FILES_PER_LOOK: usize = 256;

/// How far back the wall clock must step between two wake-ups to count as
/// a step (NTP slews smaller corrections).
const CLOCK_STEP: chrono::TimeDelta = chrono::TimeDelta::seconds(2);

/// Why the daemon cannot start.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The config file cannot be loaded.
    #[error(transparent)]
    Config(#[from] config::LoadError),
    /// The state database cannot be opened.
    #[error(transparent)]
    State(#[from] crate::state::StateError),
    /// Another litewarden manages a database.
    #[error(transparent)]
    Lock(#[from] crate::db::lock::LockError),
    /// The process cannot be set up (state directory lock, signals, the
    /// HTTP listener).
    #[error("{0}")]
    Process(String),
}

/// Something the reconciler reacts to.
#[derive(Debug)]
pub enum Event {
    /// A watched file changed (debounced).
    FilesChanged,
    /// SIGHUP: reload now.
    Reload,
    /// SIGTERM or SIGINT.
    Shutdown,
    /// A job finished.
    JobFinished(Finished),
    /// A capture reported where its replication stands.
    Replicated(crate::replicate::Report),
}

/// Startup options of the daemon.
#[derive(Debug, Clone)]
pub struct Options {
    /// The config file.
    pub config: PathBuf,
    /// The environment `${VAR}`s expand from, at startup and every reload.
    pub environment: Environment,
}

/// Logs the faults of the environment a load found: the config stays
/// valid, and the jobs they break fail and alert on their own.
fn log_faults(faults: &[config::Diagnostic]) {
    for fault in faults {
        tracing::error!(fault = %fault, "environment fault: jobs that need it will fail until it is fixed");
    }
}

/// Runs the daemon until SIGTERM/SIGINT (or the channel closes).
/// `claimed` is called once the state directory is the daemon's, with the
/// loaded config, before anything is converged (the CLI starts the HTTP
/// endpoints there: they read the state database, the daemon never calls
/// them).
pub fn run(
    options: Options,
    clock: Arc<dyn Clock>,
    claimed: impl FnOnce(&Config) -> Result<(), String>,
) -> Result<(), DaemonError> {
    let loaded = config::load_reporting_faults(&options.config, &options.environment)?;
    for warning in &loaded.warnings {
        tracing::warn!(warning = %warning, "config warning");
    }
    log_faults(&loaded.faults);
    let config = Arc::new(loaded.config);
    let _lock = process::lock_state_dir(&config.settings.state_dir)?;
    let state = StateDb::open(&config.settings.state_dir)?;
    claimed(&config).map_err(DaemonError::Process)?;
    let (events, inbox) = channel();
    process::spawn_signal_thread(events.clone())?;
    let locks = claim_all(&config)?;
    let mut daemon = Reconciler::new(
        options.config,
        options.environment,
        config,
        state,
        clock,
        events,
    );
    daemon.locks = locks;
    daemon.start_outbox();
    tracing::info!(config = %daemon.config_path.display(), databases = daemon.config.databases.len(), "litewarden run started");
    daemon.start();
    daemon.event_loop(&inbox);
    Ok(())
}

/// Claims every database of `config` at startup: another litewarden (with
/// another state directory) managing one of them stops the daemon.
fn claim_all(config: &Config) -> Result<BTreeMap<String, DatabaseLock>, DaemonError> {
    config
        .databases
        .values()
        .map(|db| {
            DatabaseLock::acquire(db.name.as_str(), &db.path, &config.settings.state_dir)
                .map(|lock| (db.name.to_string(), lock))
                .map_err(DaemonError::from)
        })
        .collect()
}

struct Reconciler {
    config: Arc<Config>,
    config_path: PathBuf,
    environment: Environment,
    hash: Option<Vec<u8>>,
    jobs: JobTable,
    runner: Runner,
    events: Sender<Event>,
    state: StateDb,
    clock: Arc<dyn Clock>,
    watcher: Option<Watcher>,
    started_at: String,
    config_error: Option<String>,
    observed: Observed,
    /// The schedule table must be written anew (first write, a state
    /// database made anew, a failed write); otherwise only changed rows
    /// are written.
    schedule_stale: bool,
    /// When the daemon row was last written.
    status_written_at: Option<Instant>,
    /// When the alert rules were last evaluated.
    alerts_evaluated_at: Option<Instant>,
    /// A shutdown signal arrived: no more scheduling or reloads.
    draining: bool,
    /// Runs started since the daemon started (the last run's `run_id`).
    runs_started: u64,
    /// Changes not run on every reload (failed migrations, the operator's).
    held: HeldChanges,
    /// When the run history was last pruned.
    history_pruned_at: Option<DateTime<Utc>>,
    /// Databases whose reload changes a worker is applying.
    converging: BTreeSet<String>,
    /// Converging databases a later reload wanted to change again.
    replan: BTreeSet<String>,
    /// Problems announced and still lasting (`<db>/<event>`).
    problems: BTreeSet<String>,
    /// The clock's time at the last wake-up, to notice it stepping back.
    last_now: Option<DateTime<Utc>>,
    /// The claim on each database file (one manager per file).
    locks: BTreeMap<String, DatabaseLock>,
    /// The thread that delivers alert mail and heartbeats.
    outbox: Option<crate::alert::outbox::Outbox>,
    /// When the last heartbeat was sent.
    heartbeat_at: Option<DateTime<Utc>>,
    /// When the files were last looked at (see [`FILE_CHECK_SPACING`]).
    files_checked_at: Option<Instant>,
    /// Where the next look at the file headers starts.
    headers_turn: Turn,
    /// Where the next periodic pass starts re-observing.
    poll_turn: Turn,
    captures: replication::Captures,
}

/// What the loop does after an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    /// Keep going.
    Continue,
    /// Stop scheduling and wait for the running jobs.
    Drain,
    /// Exit now (a second signal while draining).
    Exit,
}

/// Why a reload runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reload {
    /// A watched file changed: re-observe only what changed.
    Changed,
    /// SIGHUP: re-read and re-observe everything.
    Forced,
    /// The periodic pass: re-observe everything.
    Poll,
}

impl Reconciler {
    fn new(
        config_path: PathBuf,
        environment: Environment,
        config: Arc<Config>,
        state: StateDb,
        clock: Arc<dyn Clock>,
        events: Sender<Event>,
    ) -> Self {
        let report = {
            let events = events.clone();
            Arc::new(move |finished| {
                let _ = events.send(Event::JobFinished(finished));
            })
        };
        let runner = Runner::new(
            workers(&config),
            config.settings.max_parallel_jobs as usize,
            config.settings.state_dir.clone(),
            Arc::clone(&clock),
            report,
        );
        Reconciler {
            hash: process::file_hash(&config_path),
            config,
            runner,
            config_path,
            environment,
            jobs: JobTable::default(),
            events,
            state,
            started_at: clock.now().to_rfc3339(),
            clock,
            watcher: None,
            config_error: None,
            observed: Observed::default(),
            schedule_stale: true,
            status_written_at: None,
            alerts_evaluated_at: None,
            draining: false,
            runs_started: 0,
            held: HeldChanges::default(),
            history_pruned_at: None,
            converging: BTreeSet::new(),
            replan: BTreeSet::new(),
            problems: BTreeSet::new(),
            last_now: None,
            locks: BTreeMap::new(),
            outbox: None,
            heartbeat_at: None,
            files_checked_at: None,
            headers_turn: Turn::default(),
            poll_turn: Turn::default(),
            captures: replication::Captures::default(),
        }
    }

    /// Watches the files, converges them and schedules the jobs.
    fn start(&mut self) {
        self.prune_history();
        self.sweep_leftovers();
        self.restart_watcher();
        self.converge(&|_| true, Mode::Inline);
        tracing::info!(jobs = self.jobs.len(), "ready");
    }

    /// Reacts to one event: the daemon's only `match` on [`Event`].
    fn handle(&mut self, event: Event) -> Next {
        match event {
            Event::FilesChanged | Event::Reload if self.draining => Next::Continue,
            Event::FilesChanged => {
                self.reload(Reload::Changed);
                Next::Continue
            }
            Event::Reload => {
                self.held.release_all();
                self.reload(Reload::Forced);
                Next::Continue
            }
            Event::JobFinished(finished) => {
                self.finished(finished);
                Next::Continue
            }
            Event::Replicated(report) => {
                self.replicated(report);
                Next::Continue
            }
            Event::Shutdown if self.draining => {
                tracing::warn!("second signal: exiting at once");
                Next::Exit
            }
            Event::Shutdown => {
                self.draining = true;
                Next::Drain
            }
        }
    }

    fn event_loop(&mut self, inbox: &Receiver<Event>) {
        let mut last_poll = Instant::now();
        loop {
            if self
                .files_checked_at
                .is_none_or(|at| at.elapsed() >= FILE_CHECK_SPACING)
            {
                self.files_checked_at = Some(Instant::now());
                self.keep_state_intact();
                self.notice_changed_files();
            }
            self.fire_due_jobs();
            self.write_status(false);
            if self
                .alerts_evaluated_at
                .is_none_or(|at| at.elapsed() >= FILE_CHECK_SPACING)
            {
                self.alerts_evaluated_at = Some(Instant::now());
                self.evaluate_alerts();
            }
            let wait = self
                .jobs
                .time_to_next(self.clock.now())
                .unwrap_or(POLL_INTERVAL)
                .min(POLL_INTERVAL.saturating_sub(last_poll.elapsed()))
                .min(STATE_CHECK_INTERVAL);
            match inbox.recv_timeout(wait) {
                Ok(event) => {
                    if self.handle(event) != Next::Continue {
                        break;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    if last_poll.elapsed() >= POLL_INTERVAL {
                        last_poll = Instant::now();
                        self.reload(Reload::Poll);
                        self.prune_history();
                        self.sweep_leftovers();
                    }
                }
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        let grace = self.config.settings.shutdown_grace;
        self.shut_down(inbox, grace);
    }

    /// Stops scheduling, lets running jobs finish up to `grace`; a second
    /// signal ends the wait at once.
    fn shut_down(&mut self, inbox: &Receiver<Event>, grace: Duration) {
        self.draining = true;
        let deadline = Instant::now() + grace;
        let cancelled = self.runner.cancel_waiting();
        for work in &cancelled {
            if work.key.kind == JobKind::Apply {
                self.converging.remove(work.key.database.as_str());
            } else {
                self.jobs.cancelled(&work.key);
            }
        }
        tracing::info!(
            running = self.runner.in_flight(),
            cancelled = cancelled.len(),
            grace_s = grace.as_secs(),
            "shutting down"
        );
        while self.runner.in_flight() > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                let removed = crate::durable::remove_own_temps();
                tracing::warn!(
                    removed,
                    "shutdown grace is over; aborting the jobs still running and removing their temp files"
                );
                break;
            }
            match inbox.recv_timeout(left) {
                Ok(event) => {
                    if self.handle(event) == Next::Exit {
                        break;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        let left = self
            .runner
            .stop_long(deadline.saturating_duration_since(Instant::now()));
        if left > 0 {
            tracing::warn!(
                left,
                "long-running tasks did not end within the shutdown grace"
            );
        }
        self.write_status(true);
        tracing::info!("litewarden run stopped");
    }

    /// Hands the due jobs to the runner, logs first skips and records
    /// stuck jobs (their workers are set aside so the pool goes on).
    fn fire_due_jobs(&mut self) {
        let now = self.clock.now();
        if let Some(before) = self.last_now.replace(now)
            && before - now > CLOCK_STEP
        {
            tracing::warn!(
                by_s = (before - now).num_seconds(),
                "the wall clock stepped back; interval jobs keep their real distance to the next run"
            );
            self.jobs.clock_stepped_back(before - now);
        }
        if self.draining {
            return;
        }
        let due = self.jobs.fire(now, self.config.settings.timezone);
        for key in &due.first_skips {
            tracing::warn!(db = %key.database, job = key.kind.as_str(), "job still running at its next tick; tick skipped");
        }
        for stuck in due.stuck {
            let timeout = humantime::format_duration(stuck.timeout);
            tracing::error!(db = %stuck.key.database, job = stuck.key.kind.as_str(), timeout = %timeout, "job_stuck: running past its timeout");
            self.runner.set_aside(&stuck.key.database);
            let error = format!("still running after {timeout}");
            self.record(
                stuck.kind,
                Some(stuck.key.database.to_string()),
                stuck.started,
                Err(JobFailure::new(FailureKind::Stuck, error)),
            );
        }
        for start in due.start {
            self.runs_started += 1;
            self.runner.submit(Work {
                key: start.key,
                task: Task::Job(start.kind),
                database: start.database,
                config: Arc::clone(&self.config),
                started: now,
                run_id: self.runs_started,
            });
        }
        self.dispatch();
    }

    /// Starts waiting work on free workers.
    pub(super) fn dispatch(&mut self) {
        for started in self.runner.dispatch() {
            let key = &started.key;
            tracing::info!(db = %key.database, job = key.kind.as_str(), run_id = started.run_id, trigger = started.trigger, "job started");
            self.jobs.started(key, started.started);
        }
    }

    fn finished(&mut self, finished: Finished) {
        let now = self.clock.now();
        let duration_ms = (now - finished.started).num_milliseconds();
        let key = &finished.key;
        self.runner.done(&key.database);
        self.dispatch();
        match &finished.result {
            Ok(success) => {
                tracing::info!(db = %key.database, job = key.kind.as_str(), run_id = finished.run_id, duration_ms, outcome = "success", detail = %success.summary, "job finished")
            }
            Err(failure) => {
                tracing::error!(db = %key.database, job = key.kind.as_str(), run_id = finished.run_id, duration_ms, outcome = "failed", failure = failure.kind.as_str(), error = %failure.message, "job finished")
            }
        }
        if key.kind == JobKind::Apply {
            self.converged(finished);
            return;
        }
        let timezone = self.config.settings.timezone;
        let failed = finished.result.is_err();
        let Some(kind) = self
            .jobs
            .finish(key, finished.started, now, timezone, failed)
        else {
            return;
        };
        self.record(
            kind,
            Some(finished.key.database.to_string()),
            finished.started,
            finished.result,
        );
        if kind == JobKind::Health {
            self.heartbeat();
        }
        if kind == JobKind::Backup && !failed {
            let offsite = crate::runner::JobKey {
                database: key.database.clone(),
                kind: JobKind::Offsite,
            };
            self.jobs.run_soon(&offsite, now);
        }
    }

    /// Records a run of the daemon's in the state database; failing to
    /// record is logged, never fatal.
    fn record(
        &self,
        job: JobKind,
        database: Option<String>,
        started_at: DateTime<Utc>,
        result: JobOutcome,
    ) {
        let recorded = crate::jobs::run::record(
            &self.state,
            job,
            database.as_deref(),
            Trigger::Schedule,
            started_at,
            self.clock.now(),
            &result,
        );
        if let Err(e) = recorded {
            tracing::error!(error = %e, "cannot record a run in the state database");
        }
    }

    /// Re-reads the config when its content changed (or always on SIGHUP),
    /// then converges.
    fn reload(&mut self, why: Reload) {
        let forced = why == Reload::Forced;
        let started = Instant::now();
        let hash = process::file_hash(&self.config_path);
        let reloaded = forced || hash != self.hash || self.config_error.is_some();
        let mut previous: Option<Arc<Config>> = None;
        if reloaded {
            match config::load_reporting_faults(&self.config_path, &self.environment) {
                Ok(loaded) => {
                    log_faults(&loaded.faults);
                    self.hash = hash;
                    let fresh = self.keep_restart_only_settings(loaded.config);
                    self.runner
                        .resize(workers(&fresh), fresh.settings.max_parallel_jobs as usize);
                    let before = std::mem::replace(&mut self.config, Arc::new(fresh));
                    self.reconfigure_outbox(&before);
                    previous = Some(before);
                    if self.config_error.take().is_some() {
                        tracing::info!("config is valid again");
                        self.record(
                            JobKind::Apply,
                            None,
                            self.clock.now(),
                            Ok(JobSuccess::summary("config valid again")),
                        );
                    }
                    tracing::info!(config = %self.config_path.display(), "config reloaded");
                }
                Err(error) => {
                    let text = error.to_string();
                    if self.config_error.as_deref() != Some(text.as_str()) {
                        for line in text.lines() {
                            tracing::error!(error = %line, "invalid config; keeping the last good one");
                        }
                        let now = self.clock.now();
                        self.record(
                            JobKind::Apply,
                            None,
                            now,
                            Err(JobFailure::new(FailureKind::Config, text.clone())),
                        );
                    }
                    self.hash = hash;
                    self.config_error = Some(text);
                    return;
                }
            }
        }
        match (why, previous) {
            (Reload::Changed | Reload::Poll, Some(old)) => self.converge(
                &|db: &Database| old.databases.get(&db.name).map(|old| &**old) != Some(db),
                Mode::OnWorkers,
            ),
            (Reload::Changed, None) => {
                self.converge(&|db: &Database| db.migrations.is_some(), Mode::OnWorkers)
            }
            (Reload::Poll, None) => {
                let turn = self.poll_turn.next(&self.config.databases, FILES_PER_LOOK);
                self.converge(&|db: &Database| turn.contains(&db.name), Mode::OnWorkers)
            }
            _ => self.converge(&|_| true, Mode::OnWorkers),
        }
        let duration_ms = started.elapsed().as_millis() as u64;
        if reloaded {
            tracing::info!(duration_ms, jobs = self.jobs.len(), "reload applied");
        } else {
            tracing::debug!(duration_ms, "files checked");
        }
    }

    /// Removes what killed restores left beside the databases, one look at
    /// each database directory (a backup no longer looks: with thousands of
    /// databases in one directory, that look was most of a backup's cost).
    fn sweep_leftovers(&self) {
        let dirs: BTreeSet<&std::path::Path> = self
            .config
            .databases
            .values()
            .map(|db| crate::durable::parent(&db.path))
            .collect();
        for dir in dirs {
            crate::jobs::backup::remove_restore_leftovers(dir);
        }
    }

    /// Deletes job runs older than [`RUN_HISTORY`], at most once an hour.
    fn prune_history(&mut self) {
        let now = self.clock.now();
        if self
            .history_pruned_at
            .is_some_and(|at| now - at < chrono::TimeDelta::hours(1))
        {
            return;
        }
        self.history_pruned_at = Some(now);
        match self.state.prune_history(now - RUN_HISTORY) {
            Ok(0) => {}
            Ok(removed) => tracing::info!(removed, "pruned the run history"),
            Err(e) => tracing::error!(error = %e, "cannot prune the run history"),
        }
    }

    /// Re-arms the jobs whose definition changed (see [`JobTable::rearm`]).
    fn rearm(&mut self) {
        let state = &self.state;
        let armed = self
            .jobs
            .rearm(&self.config, self.clock.now(), |kind, database| {
                state.last_start(kind, database).unwrap_or(None)
            });
        for change in armed {
            match change {
                Armed::Scheduled(key, next) => {
                    let next = next.map_or_else(|| "never".to_string(), |at| at.to_rfc3339());
                    tracing::info!(db = %key.database, job = key.kind.as_str(), next = %next, "job scheduled")
                }
                Armed::Removed(key) => {
                    tracing::info!(db = %key.database, job = key.kind.as_str(), "job no longer scheduled")
                }
            }
        }
    }

    /// Settings read once at startup (the state directory the daemon has
    /// locked, the HTTP listener it has bound) keep their running values;
    /// a change is logged as needing a restart.
    fn keep_restart_only_settings(&self, mut fresh: Config) -> Config {
        let running = &self.config.settings;
        if fresh.settings.state_dir != running.state_dir {
            tracing::warn!(
                state_dir = %crate::paths::display(&fresh.settings.state_dir),
                "settings.state_dir changed; it takes effect when litewarden run restarts"
            );
            fresh.settings.state_dir = running.state_dir.clone();
        }
        if fresh.settings.listen != running.listen {
            tracing::warn!("settings.listen changed; it takes effect when litewarden run restarts");
            fresh.settings.listen = running.listen;
        }
        fresh
    }

    /// Watches the config file (its link target) and the migrations
    /// directories the config names, when those changed.
    fn restart_watcher(&mut self) {
        let dirs: Vec<PathBuf> = self
            .config
            .databases
            .values()
            .filter_map(|db| db.migrations.as_ref().map(|m| m.dir.clone()))
            .collect();
        if self
            .watcher
            .as_ref()
            .is_some_and(|w| w.is_for(&self.config_path, &dirs))
        {
            return;
        }
        self.watcher = None;
        let events = self.events.clone();
        let changed = move || {
            let _ = events.send(Event::FilesChanged);
        };
        match Watcher::start(&self.config_path, &dirs, changed) {
            Ok(watcher) => {
                self.watcher = Some(watcher);
                // A save between reading the config and watching its new
                // target would otherwise wait for the periodic pass.
                if process::file_hash(&self.config_path) != self.hash {
                    let _ = self.events.send(Event::FilesChanged);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch files; changes are picked up every 30s and on SIGHUP")
            }
        }
    }

    /// Re-observes, at once, each database whose file header no longer says
    /// what the last observation saw (deleted, restored, journal mode or
    /// page size changed: e.g. an `apply --allow-vacuum` killed half-way
    /// left it out of WAL), unless a schema change holds it now. A 100-byte
    /// read per database, at most [`FILES_PER_LOOK`] per look, in turn; the
    /// full observation runs only for those that changed, read through
    /// SQLite's own file handle ([`crate::db::file`]) so a running job's
    /// locks on the file stay.
    fn notice_changed_files(&mut self) {
        if self.draining {
            return;
        }
        let turn = self
            .headers_turn
            .next(&self.config.databases, FILES_PER_LOOK);
        let changed: BTreeSet<DbName> = turn
            .iter()
            .filter_map(|name| self.config.databases.get(name))
            .filter(|db| !self.converging.contains(db.name.as_str()))
            .filter(|db| {
                self.observed.files.get(&db.path).is_some_and(|observed| {
                    crate::db::observe::read_header(&db.path).contradicts(observed)
                })
            })
            .filter(|db| !crate::db::schema_lock::is_held(&db.path))
            .map(|db| db.name.clone())
            .collect();
        if changed.is_empty() {
            return;
        }
        for name in &changed {
            tracing::info!(db = %name, "the file changed since it was observed; observing it again");
        }
        self.converge(&|db: &Database| changed.contains(&db.name), Mode::OnWorkers);
    }
}

/// The pool size `config` asks for (default twice the cores).
fn workers(config: &Config) -> usize {
    config
        .settings
        .workers
        .map_or_else(crate::runner::default_workers, |n| n as usize)
}

#[cfg(test)]
mod tests;
