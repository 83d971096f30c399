//! The daemon's job table: which jobs exist, when each runs next, which
//! are running, skipped ticks and stuck reports.
//!
//! Pure bookkeeping over an injected `now`: nothing here reads a clock,
//! touches a file or starts a thread, so every scheduling rule (overlap
//! skip, the `max_parallel_jobs` cap, re-arming only what changed, a
//! running job outliving its removal) is tested with fixed timestamps.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use crate::config::{Config, Database, DbName, JobKind, Schedule};
use crate::scheduler;
use crate::state::daemon::ScheduledJob;

/// A job: its database and kind.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct JobKey {
    /// The database.
    pub database: DbName,
    /// The job kind.
    pub kind: JobKind,
}

impl std::fmt::Display for JobKey {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "{}/{}", self.database, self.kind.as_str())
    }
}

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
    next: Option<DateTime<Utc>>,
    running: Option<DateTime<Utc>>,
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
    jitter: Duration,
    database: Arc<Database>,
}

/// Every scheduled job of the daemon.
#[derive(Debug, Default)]
pub struct JobTable {
    jobs: BTreeMap<JobKey, Job>,
}

impl JobTable {
    /// How many jobs are scheduled (or still running after their removal).
    pub fn len(&self) -> usize {
        self.jobs.len()
    }

    /// How many jobs are running.
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
        for job in self.jobs.values_mut() {
            if let (Schedule::Every(_), Some(next)) = (&job.schedule, job.next) {
                job.next = Some(next - by);
            }
        }
    }

    /// Time until something is due: a job's next tick (also while it runs,
    /// to count a skipped tick) or a running job's timeout. Jobs waiting for
    /// a free slot are woken by the finishing job's event instead.
    pub fn time_to_next(&self, now: DateTime<Utc>, max_parallel: usize) -> Option<Duration> {
        let timeouts = self
            .jobs
            .values()
            .filter(|job| !job.stuck_reported)
            .filter_map(|job| {
                Some(
                    job.running?
                        + TimeDelta::from_std(job.timeout).ok()?
                        + TimeDelta::milliseconds(1),
                )
            });
        let slot_free = self.running() < max_parallel;
        self.jobs
            .values()
            .filter(|job| {
                job.running.is_some() || slot_free || job.next.is_some_and(|next| next > now)
            })
            .filter_map(|job| job.next)
            .chain(timeouts)
            .map(|at| (at - now).to_std().unwrap_or(Duration::ZERO))
            .min()
    }

    /// Marks due jobs as started while fewer than `max_parallel` run, the
    /// longest-waiting first (the earliest due time; the rest stay due, so
    /// they are older at the next pass and no database is starved by the
    /// ones before it in name order); a job still running skips its tick; a
    /// job past its timeout is reported stuck once.
    pub fn fire(
        &mut self,
        now: DateTime<Utc>,
        timezone: chrono_tz::Tz,
        max_parallel: usize,
    ) -> Due {
        let slots = max_parallel.saturating_sub(self.running());
        let mut due = Due::default();
        let mut waiting: Vec<(DateTime<Utc>, JobKey)> = Vec::new();
        for (key, job) in &mut self.jobs {
            if let Some(started) = job.running
                && !job.stuck_reported
                && (now - started)
                    .to_std()
                    .is_ok_and(|running| running > job.timeout)
            {
                job.stuck_reported = true;
                due.stuck.push(Stuck {
                    key: key.clone(),
                    kind: job.kind,
                    started,
                    timeout: job.timeout,
                });
            }
            let Some(next) = job.next else { continue };
            if next > now {
                continue;
            }
            if job.running.is_some() {
                job.skipped += 1;
                if !job.skip_logged {
                    job.skip_logged = true;
                    due.first_skips.push(key.clone());
                }
                job.next = scheduler::next_due(&job.schedule, timezone, next, now);
                continue;
            }
            waiting.push((next, key.clone()));
        }
        waiting.sort();
        for (_, key) in waiting.into_iter().take(slots) {
            let Some(job) = self.jobs.get_mut(&key) else {
                continue;
            };
            job.running = Some(now);
            job.skip_logged = false;
            job.stuck_reported = false;
            job.next = scheduler::next_due(&job.schedule, timezone, now, now);
            due.start.push(Start {
                kind: job.kind,
                database: Arc::clone(&job.database),
                key,
            });
        }
        due
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
        let kind = job.kind;
        if job.retired {
            self.jobs.remove(key);
            return Some(kind);
        }
        job.running = None;
        job.next = scheduler::next_due(&job.schedule, timezone, started, now);
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
        self.jobs.retain(|key, job| {
            if wanted.contains_key(key) {
                return true;
            }
            if !job.retired {
                armed.push(Armed::Removed(key.clone()));
            }
            job.retired = true;
            job.next = None;
            job.running.is_some()
        });
        for (key, want) in wanted {
            if let Some(job) = self.jobs.get_mut(&key)
                && job.schedule == want.schedule
                && !job.retired
            {
                job.database = want.database;
                job.timeout = want.timeout;
                continue;
            }
            let last = last_start(want.kind, key.database.as_str());
            let offset = scheduler::jitter_offset(&key.to_string(), want.jitter);
            let next = scheduler::first_due(&want.schedule, timezone, last, now).map(|due| {
                if last.is_none() || matches!(want.schedule, Schedule::Cron(_)) {
                    due + offset
                } else {
                    due
                }
            });
            armed.push(Armed::Scheduled(key.clone(), next));
            match self.jobs.get_mut(&key) {
                Some(job) => {
                    job.retired = false;
                    job.schedule = want.schedule;
                    job.timeout = want.timeout;
                    job.database = want.database;
                    job.next = next;
                }
                None => {
                    let job = Job {
                        kind: want.kind,
                        schedule: want.schedule,
                        timeout: want.timeout,
                        database: want.database,
                        next,
                        running: None,
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
    pub fn snapshot(&self) -> Vec<ScheduledJob> {
        self.jobs
            .iter()
            .map(|(key, job)| ScheduledJob {
                database: key.database.to_string(),
                job: key.kind.as_str().to_string(),
                schedule: job.schedule.to_string(),
                next_run: job.next.map(|t| t.to_rfc3339()),
                running_since: job.running.map(|t| t.to_rfc3339()),
                skipped: job.skipped as i64,
                retry: i64::from(job.failures),
            })
            .collect()
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

/// The scheduled jobs `config` declares.
/// How long a health run may take before it counts as stuck.
pub const HEALTH_TIMEOUT: Duration = Duration::from_secs(600);

/// How long maintenance may take before it counts as stuck.
pub const OPTIMIZE_TIMEOUT: Duration = Duration::from_secs(3600);

fn wanted_jobs(config: &Config) -> BTreeMap<JobKey, Wanted> {
    let mut wanted = BTreeMap::new();
    for database in config.databases.values() {
        let shared = Arc::new(database.clone());
        let mut want = |kind: JobKind, schedule: Schedule, timeout: Duration| {
            wanted.insert(
                JobKey {
                    database: database.name.clone(),
                    kind,
                },
                Wanted {
                    kind,
                    schedule,
                    timeout,
                    jitter: database.backup.jitter,
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
