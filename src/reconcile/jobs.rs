//! The daemon's job table: which jobs exist, when each runs next, which
//! are running, skipped ticks and stuck reports.
//!
//! Pure bookkeeping over an injected `now`: nothing here reads a clock,
//! touches a file or starts a thread, so every scheduling rule (overlap
//! skip, most-overdue first, re-arming only what changed, a running job
//! outliving its removal) is tested with fixed timestamps. Due jobs go to
//! the runner, which keeps `max_parallel_jobs`; a job counts as running
//! from then on (waiting in the runner's queue included), and its timeout
//! counts from when a worker took it ([`JobTable::started`]).
//!
//! Every change marks its job, so the daemon writes only the schedule rows
//! that changed ([`JobTable::take_changes`]), and the index of next runs
//! and running jobs is brought up to date for those jobs only: a pass over
//! the table costs what is due, not the number of jobs.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use crate::config::{Config, Database, JobKind, Schedule};
pub use crate::runner::JobKey;
use crate::scheduler;
use crate::state::daemon::ScheduledJob;

/// A job the table decided to start now.
#[derive(Debug)]
pub struct Start {
    /// Which job.
    pub key: JobKey,
    /// Its kind.
    pub kind: JobKind,
    /// The definition it runs with, even if a reload changes it meanwhile.
    pub database: Arc<Database>,
}

/// A running job found past its timeout (reported once per run).
#[derive(Debug, PartialEq, Eq)]
pub struct Stuck {
    /// Which job.
    pub key: JobKey,
    /// Its kind.
    pub kind: JobKind,
    /// When the run started.
    pub started: DateTime<Utc>,
    /// The timeout it exceeded.
    pub timeout: Duration,
}

/// What one pass over the table decided.
#[derive(Debug, Default)]
pub struct Due {
    /// Jobs to start now.
    pub start: Vec<Start>,
    /// Jobs newly found stuck.
    pub stuck: Vec<Stuck>,
    /// Jobs whose tick was skipped for the first time in this run (the
    /// caller logs these once; later skips are only counted).
    pub first_skips: Vec<JobKey>,
}

/// A job re-armed by a config change.
#[derive(Debug, PartialEq, Eq)]
pub enum Armed {
    /// New or with a changed schedule; runs next at this time.
    Scheduled(JobKey, Option<DateTime<Utc>>),
    /// No longer in the config.
    Removed(JobKey),
}

#[derive(Debug)]
struct Job {
    kind: JobKind,
    schedule: Schedule,
    timeout: Duration,
    database: Arc<Database>,
    /// The splay it was armed with (`backup.jitter` or `settings.splay`).
    splay: Option<Duration>,
    /// Its splay offset (see [`scheduler::splay_window`]).
    offset: Option<TimeDelta>,
    next: Option<DateTime<Utc>>,
    running: Option<DateTime<Utc>>,
    /// A worker took the run (else it waits in the runner's queue).
    taken: bool,
    skipped: u64,
    skip_logged: bool,
    stuck_reported: bool,
    /// Removed from the config while running: dropped when the run ends.
    retired: bool,
    /// Failed runs in a row (0 after a success).
    failures: u32,
}

/// A scheduled job as the config declares it.
struct Wanted {
    kind: JobKind,
    schedule: Schedule,
    timeout: Duration,
    splay: Option<Duration>,
    database: Arc<Database>,
}

/// Every scheduled job of the daemon.
#[derive(Debug, Default)]
pub struct JobTable {
    jobs: BTreeMap<JobKey, Job>,
    /// Jobs changed since the schedule was last written.
    changed: BTreeSet<JobKey>,
    /// Jobs changed since the index was last brought up to date.
    unindexed: BTreeSet<JobKey>,
    /// Every job's next run, in order.
    by_next: BTreeSet<(DateTime<Utc>, JobKey)>,
    /// The next run `by_next` holds for each job.
    indexed: BTreeMap<JobKey, DateTime<Utc>>,
    /// Jobs a worker runs that are not reported stuck yet (their timeouts).
    watched: BTreeSet<JobKey>,
}

/// Marks `key` changed, for the schedule table and for the index.
fn mark(changed: &mut BTreeSet<JobKey>, unindexed: &mut BTreeSet<JobKey>, key: &JobKey) {
    changed.insert(key.clone());
    unindexed.insert(key.clone());
}

/// The schedule rows changed since the last [`JobTable::take_changes`].
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ScheduleChanges {
    /// Rows to write (new or changed jobs).
    pub write: Vec<ScheduledJob>,
    /// Jobs no longer scheduled.
    pub remove: Vec<(String, JobKind)>,
}

impl ScheduleChanges {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.write.is_empty() && self.remove.is_empty()
    }
}

impl JobTable {
    /// How many jobs are scheduled (or still running after their removal).
    pub fn len(&self) -> usize {
        self.jobs.len()
    }

    /// How many jobs are running or waiting in the runner's queue.
    #[cfg(test)]
    pub fn running(&self) -> usize {
        self.jobs
            .values()
            .filter(|job| job.running.is_some())
            .count()
    }

    /// The wall clock stepped back by `by`: `every:` jobs keep their real
    /// distance to the next run (they are anchored to elapsed time), so the
    /// step never pushes a backup out. Cron jobs follow the clock.
    pub fn clock_stepped_back(&mut self, by: chrono::TimeDelta) {
        for (key, job) in &mut self.jobs {
            if let (Schedule::Every(_), Some(next)) = (&job.schedule, job.next) {
                job.next = Some(next - by);
                mark(&mut self.changed, &mut self.unindexed, key);
            }
        }
    }

    /// Time until something is due: a job's next tick (also while it runs,
    /// to count a skipped tick) or a running job's timeout.
    pub fn time_to_next(&mut self, now: DateTime<Utc>) -> Option<Duration> {
        self.update_index();
        let timeouts = self
            .watched
            .iter()
            .filter_map(|key| self.jobs.get(key))
            .filter_map(|job| {
                Some(
                    job.running?
                        + TimeDelta::from_std(job.timeout).ok()?
                        + TimeDelta::milliseconds(1),
                )
            });
        self.by_next
            .first()
            .map(|(at, _)| *at)
            .into_iter()
            .chain(timeouts)
            .map(|at| (at - now).to_std().unwrap_or(Duration::ZERO))
            .min()
    }

    /// Brings `by_next`, `indexed` and `watched` up to date for the jobs
    /// changed since the last time.
    fn update_index(&mut self) {
        for key in std::mem::take(&mut self.unindexed) {
            if let Some(at) = self.indexed.remove(&key) {
                self.by_next.remove(&(at, key.clone()));
            }
            self.watched.remove(&key);
            let Some(job) = self.jobs.get(&key) else {
                continue;
            };
            if job.taken && !job.stuck_reported {
                self.watched.insert(key.clone());
            }
            if let Some(next) = job.next {
                self.by_next.insert((next, key.clone()));
                self.indexed.insert(key, next);
            }
        }
    }

    /// Marks every due job as started, the most overdue first (the runner
    /// keeps that order among jobs of the same priority); a job still
    /// running (or waiting in the runner) skips its tick; a job past its
    /// timeout is reported stuck once.
    pub fn fire(&mut self, now: DateTime<Utc>, timezone: chrono_tz::Tz) -> Due {
        self.update_index();
        let mut due = Due::default();
        for key in self.watched.clone() {
            let Some(job) = self.jobs.get_mut(&key) else {
                continue;
            };
            if let Some(started) = job.running
                && (now - started)
                    .to_std()
                    .is_ok_and(|running| running > job.timeout)
            {
                job.stuck_reported = true;
                mark(&mut self.changed, &mut self.unindexed, &key);
                due.stuck.push(Stuck {
                    key,
                    kind: job.kind,
                    started,
                    timeout: job.timeout,
                });
            }
        }
        let overdue: Vec<(DateTime<Utc>, JobKey)> = self
            .by_next
            .iter()
            .take_while(|(next, _)| *next <= now)
            .cloned()
            .collect();
        let mut waiting: Vec<(DateTime<Utc>, JobKey)> = Vec::new();
        for (next, key) in overdue {
            let Some(job) = self.jobs.get_mut(&key) else {
                continue;
            };
            mark(&mut self.changed, &mut self.unindexed, &key);
            if job.running.is_some() && !job.taken {
                // The run waiting in the queue is this tick's run.
                job.next = scheduler::next_due(&job.schedule, timezone, next, now, job.offset);
                continue;
            }
            if job.running.is_some() {
                job.skipped += 1;
                if !job.skip_logged {
                    job.skip_logged = true;
                    due.first_skips.push(key.clone());
                }
                job.next = scheduler::next_due(&job.schedule, timezone, next, now, job.offset);
                continue;
            }
            waiting.push((next, key));
        }
        for (_, key) in waiting {
            let Some(job) = self.jobs.get_mut(&key) else {
                continue;
            };
            job.running = Some(now);
            job.taken = false;
            job.skip_logged = false;
            job.stuck_reported = false;
            job.next = scheduler::next_due(&job.schedule, timezone, now, now, job.offset);
            due.start.push(Start {
                kind: job.kind,
                database: Arc::clone(&job.database),
                key,
            });
        }
        due
    }

    /// Brings the next run of `key` forward to `now` (the offsite upload
    /// after a backup); a job already running or waiting keeps that run.
    pub fn run_soon(&mut self, key: &JobKey, now: DateTime<Utc>) {
        if let Some(job) = self.jobs.get_mut(key)
            && !job.retired
            && job.running.is_none()
            && job.next.is_none_or(|next| next > now)
        {
            job.next = Some(now);
            mark(&mut self.changed, &mut self.unindexed, key);
        }
    }

    /// A worker took the run of `key` at `at`: its timeout counts from now.
    pub fn started(&mut self, key: &JobKey, at: DateTime<Utc>) {
        if let Some(job) = self.jobs.get_mut(key)
            && job.running.is_some()
        {
            job.running = Some(at);
            job.taken = true;
            mark(&mut self.changed, &mut self.unindexed, key);
        }
    }

    /// The run of `key` was cancelled before a worker took it (shutdown).
    pub fn cancelled(&mut self, key: &JobKey) {
        mark(&mut self.changed, &mut self.unindexed, key);
        match self.jobs.get_mut(key) {
            Some(job) if job.retired => {
                self.jobs.remove(key);
            }
            Some(job) => {
                job.running = None;
                job.taken = false;
            }
            None => {}
        }
    }

    /// Records that the run of `key` started at `started` ended at `now`
    /// and schedules its next run (a job removed from the config meanwhile
    /// leaves the table); returns the job's kind, or `None` when the job is
    /// not in the table. A failed run is retried after [`retry_after`] its
    /// failures in a row, unless the next scheduled run comes first.
    pub fn finish(
        &mut self,
        key: &JobKey,
        started: DateTime<Utc>,
        now: DateTime<Utc>,
        timezone: chrono_tz::Tz,
        failed: bool,
    ) -> Option<JobKind> {
        let job = self.jobs.get_mut(key)?;
        mark(&mut self.changed, &mut self.unindexed, key);
        let kind = job.kind;
        if job.retired {
            self.jobs.remove(key);
            return Some(kind);
        }
        job.running = None;
        job.taken = false;
        job.next = scheduler::next_due(&job.schedule, timezone, started, now, job.offset);
        job.failures = if failed {
            job.failures.saturating_add(1)
        } else {
            0
        };
        if job.failures > 0
            && let Ok(wait) = TimeDelta::from_std(retry_after(job.failures))
        {
            let retry = now + wait;
            job.next = Some(job.next.map_or(retry, |next| next.min(retry)));
        }
        Some(kind)
    }

    /// Brings the table in line with `config`: an unchanged job keeps its
    /// next-run time (its definition is refreshed for the next run), a new
    /// or re-scheduled one starts from `last_start` (its last recorded run),
    /// a removed one stops being scheduled but stays until its run ends.
    pub fn rearm(
        &mut self,
        config: &Config,
        now: DateTime<Utc>,
        last_start: impl Fn(JobKind, &str) -> Option<DateTime<Utc>>,
    ) -> Vec<Armed> {
        let timezone = config.settings.timezone;
        let wanted = wanted_jobs(config);
        let mut armed = Vec::new();
        let (changed, unindexed) = (&mut self.changed, &mut self.unindexed);
        self.jobs.retain(|key, job| {
            if wanted.contains_key(key) {
                return true;
            }
            if !job.retired {
                armed.push(Armed::Removed(key.clone()));
                mark(changed, unindexed, key);
            }
            job.retired = true;
            job.next = None;
            job.running.is_some()
        });
        for (key, want) in wanted {
            if let Some(job) = self.jobs.get_mut(&key)
                && job.schedule == want.schedule
                && job.splay == want.splay
                && !job.retired
            {
                job.database = want.database;
                job.timeout = want.timeout;
                continue;
            }
            mark(&mut self.changed, &mut self.unindexed, &key);
            let last = last_start(want.kind, key.database.as_str());
            let offset = scheduler::splay_window(&want.schedule, timezone, want.splay, now)
                .map(|window| scheduler::jitter_offset(&key.to_string(), window));
            let next = scheduler::first_due(&want.schedule, timezone, last, now, offset);
            armed.push(Armed::Scheduled(key.clone(), next));
            match self.jobs.get_mut(&key) {
                Some(job) => {
                    job.retired = false;
                    job.schedule = want.schedule;
                    job.timeout = want.timeout;
                    job.database = want.database;
                    job.splay = want.splay;
                    job.offset = offset;
                    job.next = next;
                }
                None => {
                    let job = Job {
                        kind: want.kind,
                        schedule: want.schedule,
                        timeout: want.timeout,
                        database: want.database,
                        splay: want.splay,
                        offset,
                        next,
                        running: None,
                        taken: false,
                        skipped: 0,
                        skip_logged: false,
                        stuck_reported: false,
                        retired: false,
                        failures: 0,
                    };
                    self.jobs.insert(key, job);
                }
            }
        }
        armed
    }

    /// The table as `litewarden status` shows it.
    #[cfg(test)]
    pub fn snapshot(&self) -> Vec<ScheduledJob> {
        self.jobs.iter().map(|(key, job)| row(key, job)).collect()
    }

    /// The rows changed since the last call (every row after
    /// [`JobTable::mark_all_changed`]).
    pub fn take_changes(&mut self) -> ScheduleChanges {
        let mut changes = ScheduleChanges::default();
        for key in std::mem::take(&mut self.changed) {
            match self.jobs.get(&key) {
                Some(job) => changes.write.push(row(&key, job)),
                None => changes.remove.push((key.database.to_string(), key.kind)),
            }
        }
        changes
    }

    /// Marks every job changed (the schedule table must be written anew).
    pub fn mark_all_changed(&mut self) {
        self.changed.extend(self.jobs.keys().cloned());
    }
}

/// A job as a schedule row.
fn row(key: &JobKey, job: &Job) -> ScheduledJob {
    ScheduledJob {
        database: key.database.to_string(),
        job: key.kind,
        schedule: job.schedule.to_string(),
        next_run: job.next,
        running_since: job.running,
        skipped: job.skipped as i64,
        retry: i64::from(job.failures),
    }
}

/// The first retry of a failed job waits this long; each further failure
/// doubles it (a scheduled run that comes first runs instead).
pub const FIRST_RETRY: Duration = Duration::from_secs(30);

/// The wait before the retry after `failures` failed runs in a row: 30 s,
/// 1 min, 2 min ... at most a day.
pub fn retry_after(failures: u32) -> Duration {
    FIRST_RETRY
        .saturating_mul(2u32.saturating_pow(failures.saturating_sub(1).min(12)))
        .min(Duration::from_secs(86_400))
}

/// How long a health run may take before it counts as stuck.
pub const HEALTH_TIMEOUT: Duration = Duration::from_secs(600);

/// How long maintenance may take before it counts as stuck.
pub const OPTIMIZE_TIMEOUT: Duration = Duration::from_secs(3600);

/// The scheduled jobs `config` declares (their splay offsets are worked out
/// only for the jobs [`JobTable::rearm`] re-arms).
fn wanted_jobs(config: &Config) -> BTreeMap<JobKey, Wanted> {
    let settings = &config.settings;
    let mut wanted = BTreeMap::new();
    for database in config.databases.values() {
        let shared = Arc::clone(database);
        let mut want = |kind: JobKind, schedule: Schedule, timeout: Duration| {
            let key = JobKey {
                database: database.name.clone(),
                kind,
            };
            let splay = match database.backup.jitter {
                jitter if kind == JobKind::Backup && !jitter.is_zero() => Some(jitter),
                _ => settings.splay,
            };
            wanted.insert(
                key,
                Wanted {
                    kind,
                    schedule,
                    timeout,
                    splay,
                    database: Arc::clone(&shared),
                },
            );
        };
        if database.backup.enabled {
            want(
                JobKind::Backup,
                database.backup.schedule.clone(),
                database.backup.timeout,
            );
        }
        if database.health.enabled {
            want(
                JobKind::Health,
                Schedule::Every(database.health.every),
                HEALTH_TIMEOUT,
            );
        }
        if database.optimize.enabled {
            want(
                JobKind::Optimize,
                database.optimize.schedule.clone(),
                OPTIMIZE_TIMEOUT,
            );
        }
        if database.backup.offsite.is_some() {
            want(
                JobKind::Offsite,
                database.backup.schedule.clone(),
                database.backup.timeout,
            );
        }
        if let Some(drill) = &database.drill {
            want(
                JobKind::Drill,
                drill.schedule.clone(),
                database.backup.timeout,
            );
        }
    }
    wanted
}

#[cfg(test)]
#[path = "jobs_tests.rs"]
mod tests;
