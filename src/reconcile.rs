//! The daemon (`litewarden run`): one loop that owns all runtime state.
//!
//! Owns the loaded configuration, the job table (schedule, next run, the run
//! in progress, skipped ticks), the per-database executors and the file
//! watcher. Everything that happens arrives as an [`Event`] on one channel:
//! debounced file changes, SIGHUP, SIGTERM/SIGINT, finished jobs; timer
//! ticks are the channel's receive timeout. Nothing else mutates this state,
//! so there are no shared locks.
//!
//! Each change of the config or of a migrations directory converges the
//! files (`plan::diff` + `apply`, which creates databases, sets pragmas and
//! runs `apply: auto` migrations) and then re-arms only the jobs whose
//! definition changed: an unchanged job keeps its next-run time, a new or
//! changed one starts from its last recorded run (so restarts never push a
//! backup back), a removed one stops being scheduled. A running job always
//! finishes with the definition it started with. An invalid or missing file
//! at reload keeps the last good config, logs every error and records the
//! failure; only startup fails fast.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::time::Duration;

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use crate::apply::{self, ApplyOptions};
use crate::clock::Clock;
use crate::config::watch::Watcher;
use crate::config::{self, Config, Database, Environment, JobKind, Schedule};
use crate::error::Error;
use crate::jobs::backup::{self, BackupRequest};
use crate::jobs::progress::Quiet;
use crate::jobs::prune;
use crate::plan::{self, Desired, Observed};
use crate::scheduler;
use crate::state::catalog::BackupTrigger;
use crate::state::daemon::{DaemonRow, ScheduledJob};
use crate::state::{JobRun, Outcome, StateDb, Trigger};

/// How often the config is re-read even without a file event (a missed
/// event, a network file system).
pub const POLL_INTERVAL: Duration = Duration::from_secs(30);

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
}

/// A finished job run.
#[derive(Debug)]
pub struct Finished {
    key: JobKey,
    started: DateTime<Utc>,
    result: Result<String, String>,
}

/// A job: its database and kind.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct JobKey {
    database: String,
    kind: &'static str,
}

impl std::fmt::Display for JobKey {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "{}/{}", self.database, self.kind)
    }
}

struct Job {
    kind: JobKind,
    schedule: Schedule,
    timeout: Duration,
    database: Arc<Database>,
    next: Option<DateTime<Utc>>,
    running: Option<DateTime<Utc>>,
    skipped: u64,
    skip_logged: bool,
    stuck_reported: bool,
}

/// Work handed to a database's executor thread.
struct Work {
    key: JobKey,
    kind: JobKind,
    database: Arc<Database>,
    config: Arc<Config>,
    started: DateTime<Utc>,
}

/// Startup options of the daemon.
#[derive(Debug, Clone)]
pub struct Options {
    /// The config file.
    pub config: PathBuf,
}

/// Runs the daemon until SIGTERM/SIGINT (or the channel closes).
pub fn run(options: Options, clock: Arc<dyn Clock>) -> Result<(), Error> {
    let loaded = config::load(&options.config, &Environment::from_process())?;
    for warning in &loaded.warnings {
        tracing::warn!(warning = %warning, "config warning");
    }
    let config = Arc::new(loaded.config);
    let _lock = lock_state_dir(&config.settings.state_dir)?;
    let state = StateDb::open(&config.settings.state_dir)?;
    if let Some(listen) = config.settings.listen {
        crate::http::serve(listen, config.settings.state_dir.clone()).map_err(Error::Daemon)?;
    }
    let (events, inbox) = channel();
    spawn_signal_thread(events.clone())?;
    let started_at = clock.now().to_rfc3339();
    let mut daemon = Reconciler {
        hash: file_hash(&options.config),
        config,
        config_path: options.config,
        jobs: BTreeMap::new(),
        executors: BTreeMap::new(),
        events,
        state,
        clock,
        watcher: None,
        started_at,
        config_error: None,
        observed: Observed::default(),
    };
    tracing::info!(config = %daemon.config_path.display(), databases = daemon.config.databases.len(), "litewarden run started");
    daemon.restart_watcher();
    daemon.converge(&|_| true);
    tracing::info!(jobs = daemon.jobs.len(), "ready");
    daemon.event_loop(&inbox);
    Ok(())
}

struct Reconciler {
    config: Arc<Config>,
    config_path: PathBuf,
    hash: Option<Vec<u8>>,
    jobs: BTreeMap<JobKey, Job>,
    executors: BTreeMap<String, Sender<Work>>,
    events: Sender<Event>,
    state: StateDb,
    clock: Arc<dyn Clock>,
    watcher: Option<Watcher>,
    started_at: String,
    config_error: Option<String>,
    observed: Observed,
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
    fn event_loop(&mut self, inbox: &Receiver<Event>) {
        let mut last_poll = std::time::Instant::now();
        loop {
            self.fire_due_jobs();
            self.write_status();
            let wait = self
                .time_to_next_job()
                .min(POLL_INTERVAL.saturating_sub(last_poll.elapsed()));
            match inbox.recv_timeout(wait) {
                Ok(Event::FilesChanged) => self.reload(Reload::Changed),
                Ok(Event::Reload) => self.reload(Reload::Forced),
                Ok(Event::JobFinished(finished)) => self.finished(finished),
                Ok(Event::Shutdown) => break,
                Err(RecvTimeoutError::Timeout) => {
                    if last_poll.elapsed() >= POLL_INTERVAL {
                        last_poll = std::time::Instant::now();
                        self.reload(Reload::Poll);
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
        let deadline = std::time::Instant::now() + grace;
        let running = || {
            self.jobs
                .values()
                .filter(|job| job.running.is_some())
                .count()
        };
        tracing::info!(
            running = running(),
            grace_s = grace.as_secs(),
            "shutting down"
        );
        let mut aborting = false;
        while self.jobs.values().any(|job| job.running.is_some()) {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                tracing::warn!("shutdown grace is over; aborting the jobs still running");
                aborting = true;
                break;
            }
            match inbox.recv_timeout(left) {
                Ok(Event::JobFinished(finished)) => self.finished(finished),
                Ok(Event::Shutdown) => {
                    tracing::warn!("second signal: exiting at once");
                    break;
                }
                Ok(_) | Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        self.write_status();
        if aborting {
            self.remove_partial_backups();
        }
        tracing::info!("litewarden run stopped");
    }

    /// Time until something is due: a job's next tick (also while it runs,
    /// to count a skipped tick) or a running job's timeout. Jobs waiting for
    /// a free slot are woken by the finishing job's event instead.
    /// Removes the temp files of backups that are being aborted (the daemon
    /// holds the state directory's lock, so they are its own).
    fn remove_partial_backups(&self) {
        for (key, job) in &self.jobs {
            if job.running.is_none() || job.kind != JobKind::Backup {
                continue;
            }
            let dir = backup::database_dir(&self.config.settings.backup_dir, &key.database);
            match crate::durable::remove_stale_temps(
                &dir,
                Duration::ZERO,
                std::time::SystemTime::now() + Duration::from_secs(1),
            ) {
                Ok(removed) => {
                    tracing::info!(job = %key, removed, "removed the aborted backup's temp files")
                }
                Err(e) => {
                    tracing::error!(job = %key, error = %e, "cannot remove the aborted backup's temp files")
                }
            }
        }
    }

    fn time_to_next_job(&self) -> Duration {
        let now = self.clock.now();
        let timeouts = self
            .jobs
            .values()
            .filter(|job| !job.stuck_reported)
            .filter_map(|job| {
                let started = job.running?;
                Some(
                    started
                        + chrono::TimeDelta::from_std(job.timeout).ok()?
                        + chrono::TimeDelta::milliseconds(1),
                )
            });
        let running = self
            .jobs
            .values()
            .filter(|job| job.running.is_some())
            .count();
        let slot_free = running < self.config.settings.max_parallel_jobs as usize;
        self.jobs
            .values()
            .filter(|job| {
                job.running.is_some() || slot_free || job.next.is_some_and(|next| next > now)
            })
            .filter_map(|job| job.next)
            .chain(timeouts)
            .map(|at| (at - now).to_std().unwrap_or(Duration::ZERO))
            .min()
            .unwrap_or(POLL_INTERVAL)
    }

    /// Starts every due job while fewer than `max_parallel_jobs` run (the
    /// rest stay due); a job still running skips its tick; a job past its
    /// timeout is reported stuck once.
    fn fire_due_jobs(&mut self) {
        let now = self.clock.now();
        let timezone = self.config.settings.timezone;
        let mut slots = (self.config.settings.max_parallel_jobs as usize)
            .saturating_sub(self.jobs.values().filter(|j| j.running.is_some()).count());
        let mut to_start = Vec::new();
        let mut stuck = Vec::new();
        for (key, job) in &mut self.jobs {
            if let Some(started) = job.running
                && !job.stuck_reported
                && (now - started)
                    .to_std()
                    .is_ok_and(|running| running > job.timeout)
            {
                job.stuck_reported = true;
                stuck.push((key.clone(), job.kind, started, job.timeout));
            }
            let Some(next) = job.next else { continue };
            if next > now {
                continue;
            }
            if job.running.is_some() {
                job.skipped += 1;
                if !job.skip_logged {
                    tracing::warn!(job = %key, "job still running at its next tick; tick skipped");
                    job.skip_logged = true;
                }
                job.next = scheduler::next_due(&job.schedule, timezone, next, now);
                continue;
            }
            if slots == 0 {
                continue;
            }
            slots -= 1;
            job.running = Some(now);
            job.skip_logged = false;
            job.stuck_reported = false;
            job.next = scheduler::next_due(&job.schedule, timezone, now, now);
            to_start.push(Work {
                key: key.clone(),
                kind: job.kind,
                database: Arc::clone(&job.database),
                config: Arc::clone(&self.config),
                started: now,
            });
        }
        for (key, kind, started, timeout) in stuck {
            tracing::error!(job = %key, timeout = %humantime::format_duration(timeout), "job_stuck: running past its timeout");
            let run = JobRun {
                job: kind,
                database: Some(key.database.clone()),
                trigger: Trigger::Schedule,
                started_at: started,
                finished_at: now,
                outcome: Outcome::Failed,
                error: Some(format!(
                    "job_stuck: still running after {}",
                    humantime::format_duration(timeout)
                )),
                detail: None,
            };
            if let Err(e) = self.state.record_run(&run) {
                tracing::error!(error = %e, "cannot record a stuck job");
            }
        }
        for work in to_start {
            tracing::info!(db = %work.key.database, job = work.key.kind, trigger = "schedule", "job started");
            self.executor(&work.key.database.clone())
                .send(work)
                .unwrap_or_else(|e| {
                    tracing::error!(error = %e, "executor is gone");
                });
        }
    }

    fn executor(&mut self, database: &str) -> &Sender<Work> {
        let events = self.events.clone();
        let clock = Arc::clone(&self.clock);
        self.executors
            .entry(database.to_string())
            .or_insert_with(|| {
                let (work_tx, work_rx) = channel::<Work>();
                let name = database.to_string();
                let spawned = std::thread::Builder::new()
                    .name(format!("db-{name}"))
                    .spawn(move || {
                        for work in work_rx {
                            let result = execute(&work, clock.as_ref());
                            let _ = events.send(Event::JobFinished(Finished {
                                key: work.key,
                                started: work.started,
                                result,
                            }));
                        }
                    });
                if let Err(e) = spawned {
                    tracing::error!(db = %name, error = %e, "cannot start the executor thread");
                }
                work_tx
            })
    }

    fn finished(&mut self, finished: Finished) {
        let now = self.clock.now();
        let duration_ms = (now - finished.started).num_milliseconds();
        let (outcome, error, detail) = match &finished.result {
            Ok(detail) => (Outcome::Success, None, Some(detail.clone())),
            Err(error) => (Outcome::Failed, Some(error.clone()), None),
        };
        match &finished.result {
            Ok(detail) => {
                tracing::info!(db = %finished.key.database, job = finished.key.kind, duration_ms, outcome = "success", detail = %detail, "job finished")
            }
            Err(error) => {
                tracing::error!(db = %finished.key.database, job = finished.key.kind, duration_ms, outcome = "failed", error = %error, "job finished")
            }
        }
        if let Some(job) = self.jobs.get_mut(&finished.key) {
            let record = JobRun {
                job: job.kind,
                database: Some(finished.key.database.clone()),
                trigger: Trigger::Schedule,
                started_at: finished.started,
                finished_at: now,
                outcome,
                error,
                detail,
            };
            if let Err(e) = self.state.record_run(&record) {
                tracing::error!(error = %e, "cannot record a job run");
            }
            job.running = None;
            job.next = scheduler::next_due(
                &job.schedule,
                self.config.settings.timezone,
                finished.started,
                now,
            );
        }
    }

    /// Re-reads the config when its content changed (or always on SIGHUP),
    /// then converges.
    fn reload(&mut self, why: Reload) {
        let forced = why == Reload::Forced;
        let started = std::time::Instant::now();
        let hash = file_hash(&self.config_path);
        let reloaded = forced || hash != self.hash || self.config_error.is_some();
        let mut previous: Option<Arc<Config>> = None;
        if reloaded {
            match config::load(&self.config_path, &Environment::from_process()) {
                Ok(loaded) => {
                    self.hash = hash;
                    previous = Some(std::mem::replace(&mut self.config, Arc::new(loaded.config)));
                    if self.config_error.take().is_some() {
                        tracing::info!("config is valid again");
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
                        let run = JobRun {
                            job: JobKind::Apply,
                            database: None,
                            trigger: Trigger::Schedule,
                            started_at: now,
                            finished_at: now,
                            outcome: Outcome::Failed,
                            error: Some(format!("config_invalid: {text}")),
                            detail: None,
                        };
                        if let Err(e) = self.state.record_run(&run) {
                            tracing::error!(error = %e, "cannot record the invalid config");
                        }
                    }
                    self.hash = hash;
                    self.config_error = Some(text);
                    return;
                }
            }
        }
        match (why, previous) {
            (Reload::Changed, Some(old)) => {
                self.converge(&|db: &Database| old.databases.get(&db.name) != Some(db))
            }
            (Reload::Changed, None) => self.converge(&|db: &Database| db.migrations.is_some()),
            _ => self.converge(&|_| true),
        }
        let duration_ms = started.elapsed().as_millis() as u64;
        if reloaded {
            tracing::info!(duration_ms, jobs = self.jobs.len(), "reload applied");
        } else {
            tracing::debug!(duration_ms, "files checked");
        }
    }

    /// Converges the files, then re-arms the jobs whose definition changed.
    /// Converges the files: re-observes the databases `fresh` selects
    /// (reusing the last observation for the others), applies the plan, then
    /// re-arms the jobs whose definition changed.
    fn converge(&mut self, fresh: &dyn Fn(&Database) -> bool) {
        let config = Arc::clone(&self.config);
        match crate::db::observe::observe_with(&config, fresh, &self.observed) {
            Ok(mut observed) => {
                let plan = plan::diff(&observed, &Desired::from_config(&config));
                if !plan.is_empty() {
                    let options = ApplyOptions {
                        allow_vacuum: false,
                        scheduled: true,
                    };
                    match apply::apply(&config, &plan, options, self.clock.as_ref()) {
                        Ok(report) => tracing::info!(summary = %report.summary(), "converged"),
                        Err(e) => tracing::error!(error = %e, "cannot converge"),
                    }
                    for change in &plan.changes {
                        if let Some(database) = config
                            .databases
                            .values()
                            .find(|db| db.name.as_str() == change.database())
                        {
                            observed.files.remove(&database.path);
                        }
                    }
                }
                self.observed = observed;
            }
            Err(e) => tracing::error!(error = %e, "cannot observe the databases"),
        }
        self.rearm();
        self.restart_watcher();
    }

    fn rearm(&mut self) {
        let now = self.clock.now();
        let timezone = self.config.settings.timezone;
        let mut desired = BTreeMap::new();
        for database in self.config.databases.values() {
            if database.backup.enabled {
                desired.insert(
                    JobKey {
                        database: database.name.to_string(),
                        kind: JobKind::Backup.as_str(),
                    },
                    (
                        JobKind::Backup,
                        database.backup.schedule.clone(),
                        database.backup.timeout,
                        database.backup.jitter,
                        Arc::new(database.clone()),
                    ),
                );
            }
        }
        self.jobs.retain(|key, job| {
            let keep = desired.contains_key(key) || job.running.is_some();
            if !keep {
                tracing::info!(job = %key, "job no longer scheduled");
            }
            keep
        });
        for (key, (kind, schedule, timeout, jitter, database)) in desired {
            match self.jobs.get_mut(&key) {
                Some(job) if job.schedule == schedule => {
                    job.database = database;
                    job.timeout = timeout;
                }
                existing => {
                    let last = self.state.last_start(kind, &key.database).unwrap_or(None);
                    let offset = scheduler::jitter_offset(&key.to_string(), jitter);
                    let next = scheduler::first_due(&schedule, timezone, last, now).map(|due| {
                        if last.is_none() || matches!(schedule, Schedule::Cron(_)) {
                            due + offset
                        } else {
                            due
                        }
                    });
                    tracing::info!(job = %key, schedule = %schedule, next = ?next, "job scheduled");
                    match existing {
                        Some(job) => {
                            job.schedule = schedule;
                            job.timeout = timeout;
                            job.database = database;
                            job.next = next;
                        }
                        None => {
                            self.jobs.insert(
                                key,
                                Job {
                                    kind,
                                    schedule,
                                    timeout,
                                    database,
                                    next,
                                    running: None,
                                    skipped: 0,
                                    skip_logged: false,
                                    stuck_reported: false,
                                },
                            );
                        }
                    }
                }
            }
        }
        for (key, job) in &mut self.jobs {
            if !self
                .config
                .databases
                .keys()
                .any(|name| name.as_str() == key.database)
            {
                job.next = None;
            }
        }
    }

    fn restart_watcher(&mut self) {
        let dirs: Vec<PathBuf> = self
            .config
            .databases
            .values()
            .filter_map(|db| db.migrations.as_ref().map(|m| m.dir.clone()))
            .collect();
        let wanted = crate::config::watch::watched_dirs(&self.config_path, &dirs);
        if self
            .watcher
            .as_ref()
            .is_some_and(|w| w.watched() == wanted.as_slice())
        {
            return;
        }
        self.watcher = None;
        match Watcher::start(&self.config_path, &dirs, self.events.clone()) {
            Ok(watcher) => self.watcher = Some(watcher),
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch files; changes are picked up every 30s and on SIGHUP")
            }
        }
    }

    fn write_status(&self) {
        let jobs: Vec<ScheduledJob> = self
            .jobs
            .iter()
            .map(|(key, job)| ScheduledJob {
                database: key.database.clone(),
                job: key.kind.to_string(),
                schedule: job.schedule.to_string(),
                next_run: job.next.map(|t| t.to_rfc3339()),
                running_since: job.running.map(|t| t.to_rfc3339()),
                skipped: job.skipped as i64,
            })
            .collect();
        let row = DaemonRow {
            pid: i64::from(std::process::id()),
            started_at: self.started_at.clone(),
            config_ok: self.config_error.is_none(),
            config_error: self.config_error.clone(),
            heartbeat_at: self.clock.now().to_rfc3339(),
        };
        if let Err(e) = self
            .state
            .write_schedule(&jobs)
            .and_then(|()| self.state.write_daemon(&row))
        {
            tracing::error!(error = %e, "cannot write the daemon status");
        }
    }
}

/// Runs one job on an executor thread; returns its summary or error.
fn execute(work: &Work, clock: &dyn Clock) -> Result<String, String> {
    match work.kind {
        JobKind::Backup => {
            let state =
                StateDb::open(&work.config.settings.state_dir).map_err(|e| e.to_string())?;
            let request = BackupRequest {
                database: &work.database,
                backup_dir: &work.config.settings.backup_dir,
                trigger: BackupTrigger::Schedule,
                pin: false,
            };
            let report =
                backup::take(request, &state, clock, &mut Quiet).map_err(|e| e.to_string())?;
            let entries = prune::decide(
                &state,
                &work.database,
                &work.config.settings.backup_dir,
                work.config.settings.timezone,
            )
            .map_err(|e| e.to_string())?;
            let removed = prune::remove(&state, work.database.name.as_str(), &entries)
                .map_err(|e| e.to_string())?;
            Ok(format!(
                "{} ({} bytes), {} pruned",
                crate::paths::display(&report.record.path),
                report.record.size,
                removed.len()
            ))
        }
        other => Err(format!("{other} jobs are not scheduled by this version")),
    }
}

fn file_hash(path: &Path) -> Option<Vec<u8>> {
    std::fs::read(path)
        .ok()
        .map(|bytes| Sha256::digest(&bytes).to_vec())
}

/// Takes `<state_dir>/daemon.lock` for the life of the daemon; a second
/// daemon gets an error naming the holder's pid.
fn lock_state_dir(state_dir: &Path) -> Result<File, Error> {
    let io = |source| Error::Daemon(format!("{}: {source}", crate::paths::display(state_dir)));
    crate::durable::create_private_dir(state_dir).map_err(io)?;
    let path = state_dir.join("daemon.lock");
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io)?;
    match file.try_lock() {
        Ok(()) => {
            file.set_len(0).map_err(io)?;
            file.rewind().map_err(io)?;
            writeln!(file, "{}", std::process::id()).map_err(io)?;
            Ok(file)
        }
        Err(TryLockError::WouldBlock) => {
            let mut pid = String::new();
            let _ = file.read_to_string(&mut pid);
            Err(Error::Daemon(format!(
                "another `litewarden run` (pid {}) manages {}; stop it first",
                pid.trim(),
                crate::paths::display(state_dir)
            )))
        }
        Err(TryLockError::Error(source)) => Err(io(source)),
    }
}

fn spawn_signal_thread(events: Sender<Event>) -> Result<(), Error> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP])
        .map_err(|e| Error::Daemon(format!("cannot handle signals: {e}")))?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                let event = if signal == SIGHUP {
                    Event::Reload
                } else {
                    Event::Shutdown
                };
                if events.send(event).is_err() {
                    break;
                }
            }
        })
        .map_err(|e| Error::Daemon(format!("cannot handle signals: {e}")))?;
    Ok(())
}
