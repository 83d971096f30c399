//! When scheduled jobs run: pure timer arithmetic over an injected "now".
//!
//! Owns the rules, not the timers themselves (the reconciler holds those):
//! - `every:` intervals are anchored to the last recorded run, so a restart
//!   never pushes a backup back;
//! - after downtime, one missed run is caught up (it runs now), never all of
//!   them;
//! - cron patterns run in `settings.timezone` through croner: a fixed-time
//!   job in a skipped DST hour runs once at the jump, in a repeated hour
//!   once, and wildcard-hour jobs follow real elapsed time;
//! - a splay offset (stable per job, see [`splay_window`]) spreads jobs
//!   sharing a schedule: cron occurrences move later by it, and an `every:`
//!   job runs on the grid `k × interval + offset` once it ran, reaching its
//!   place by running earlier, never later, than its interval.
//!
//! No clock is read here: every function takes `now`.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use sha2::{Digest, Sha256};

use crate::config::Schedule;

/// The stable delay in `[0, jitter)` for the job `key`: the same on every
/// start, different across databases, so jobs sharing a schedule spread out
/// without drifting.
pub fn jitter_offset(key: &str, jitter: Duration) -> TimeDelta {
    if jitter.is_zero() {
        return TimeDelta::zero();
    }
    let digest = Sha256::digest(key.as_bytes());
    let seed = u64::from_be_bytes([
        digest[0], digest[1], digest[2], digest[3], digest[4], digest[5], digest[6], digest[7],
    ]);
    TimeDelta::milliseconds((seed % jitter.as_millis().max(1) as u64) as i64)
}

/// How far the jobs of `schedule` are spread: `splay` (`None`: the whole
/// period for an interval, at most an hour for cron, so a nightly job stays
/// in its hour), never more than the schedule's period; `None` when not
/// spread.
pub fn splay_window(
    schedule: &Schedule,
    timezone: chrono_tz::Tz,
    splay: Option<Duration>,
    now: DateTime<Utc>,
) -> Option<Duration> {
    let period = match schedule {
        Schedule::Every(every) => *every,
        Schedule::Cron(_) => {
            let first = next_cron(schedule, timezone, now, TimeDelta::zero())?;
            let second = next_cron(schedule, timezone, first, TimeDelta::zero())?;
            (second - first).to_std().ok()?
        }
    };
    let default = match schedule {
        Schedule::Every(_) => period,
        Schedule::Cron(_) => period.min(Duration::from_secs(3600)),
    };
    let window = splay.unwrap_or(default).min(period);
    (!window.is_zero()).then_some(window)
}

/// When a job should first run when scheduling starts (daemon start or a
/// reload that changed the schedule), given its last recorded start and
/// its splay offset.
pub fn first_due(
    schedule: &Schedule,
    timezone: chrono_tz::Tz,
    last_run: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    offset: Option<TimeDelta>,
) -> Option<DateTime<Utc>> {
    match schedule {
        Schedule::Every(every) => {
            let Some(last) = last_run else {
                return Some(now);
            };
            // A last run dated after now was stamped by a clock that ran
            // ahead; counting from it would push the next run out.
            let due = last.min(now) + chrono::TimeDelta::from_std(*every).ok()?;
            Some(due.max(now))
        }
        Schedule::Cron(_) => {
            let offset = offset.unwrap_or_default();
            let missed = last_run
                .and_then(|last| next_cron(schedule, timezone, last, offset))
                .is_some_and(|at| at <= now);
            if missed {
                Some(now)
            } else {
                next_cron(schedule, timezone, now, offset)
            }
        }
    }
}

/// When a job runs next after a run that started at `started`, seen at
/// `now` (a run longer than its interval is followed by one right away,
/// not by a burst). With a splay `offset`, an `every:` job goes to the
/// first point of its grid after `started`: the interval itself when it
/// ran on the grid, sooner when it did not (a catch-up, its first run).
pub fn next_due(
    schedule: &Schedule,
    timezone: chrono_tz::Tz,
    started: DateTime<Utc>,
    now: DateTime<Utc>,
    offset: Option<TimeDelta>,
) -> Option<DateTime<Utc>> {
    match schedule {
        Schedule::Every(every) => {
            let every = TimeDelta::from_std(*every).ok()?;
            let base = started.min(now);
            let next = match offset {
                Some(offset) => grid_after(base, every, offset),
                None => base + every,
            };
            Some(next.max(now))
        }
        Schedule::Cron(_) => next_cron(
            schedule,
            timezone,
            started.max(now),
            offset.unwrap_or_default(),
        ),
    }
}

/// The first point of the grid `k × every + offset` (from the Unix epoch)
/// strictly after `after`.
fn grid_after(after: DateTime<Utc>, every: TimeDelta, offset: TimeDelta) -> DateTime<Utc> {
    let period = every.num_milliseconds().max(1);
    let since = (after - offset).timestamp_millis();
    let next = (since.div_euclid(period) + 1) * period;
    DateTime::from_timestamp_millis(next).map_or(after + every, |at| at + offset)
}

/// The first cron occurrence moved later by `offset` that lies strictly
/// after `after`.
fn next_cron(
    schedule: &Schedule,
    timezone: chrono_tz::Tz,
    after: DateTime<Utc>,
    offset: TimeDelta,
) -> Option<DateTime<Utc>> {
    let Schedule::Cron(pattern) = schedule else {
        return None;
    };
    pattern
        .cron()
        .find_next_occurrence(&(after - offset).with_timezone(&timezone), false)
        .ok()
        .map(|at| at.with_timezone(&Utc) + offset)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::values::{CronPattern, ScalarValue};
    use std::time::Duration;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn cron(pattern: &str) -> Schedule {
        Schedule::Cron(std::sync::Arc::new(
            CronPattern::parse_scalar(pattern).unwrap(),
        ))
    }

    fn new_york() -> chrono_tz::Tz {
        "America/New_York".parse().unwrap()
    }

    const HOURLY: Schedule = Schedule::Every(Duration::from_secs(3600));

    #[test]
    fn every_is_anchored_to_the_last_run_so_restarts_do_not_push_it_back() {
        let due = first_due(
            &HOURLY,
            chrono_tz::UTC,
            Some(at("2026-11-29T10:00:00Z")),
            at("2026-11-29T10:20:00Z"),
            None,
        );
        assert_eq!(due, Some(at("2026-11-29T11:00:00Z")));
    }

    #[test]
    fn every_without_a_previous_run_runs_now() {
        assert_eq!(
            first_due(
                &HOURLY,
                chrono_tz::UTC,
                None,
                at("2026-11-29T10:20:00Z"),
                None
            ),
            Some(at("2026-11-29T10:20:00Z"))
        );
    }

    #[test]
    fn after_downtime_one_missed_run_is_caught_up_not_all_of_them() {
        let now = at("2026-11-29T18:00:00Z");
        assert_eq!(
            first_due(
                &HOURLY,
                chrono_tz::UTC,
                Some(at("2026-11-29T10:00:00Z")),
                now,
                None
            ),
            Some(now)
        );
        let next = next_due(
            &HOURLY,
            chrono_tz::UTC,
            now,
            now + chrono::TimeDelta::seconds(5),
            None,
        );
        assert_eq!(
            next,
            Some(at("2026-11-29T19:00:00Z")),
            "after the catch-up the interval resumes"
        );
        let daily = cron("0 3 * * *");
        assert_eq!(
            first_due(
                &daily,
                chrono_tz::UTC,
                Some(at("2026-11-25T03:00:00Z")),
                now,
                None
            ),
            Some(now)
        );
        assert_eq!(
            first_due(
                &daily,
                chrono_tz::UTC,
                Some(at("2026-11-29T03:00:00Z")),
                now,
                None
            ),
            Some(at("2026-11-30T03:00:00Z"))
        );
    }

    #[test]
    fn a_run_longer_than_its_interval_is_followed_at_once_not_by_a_burst() {
        let started = at("2026-11-29T10:00:00Z");
        let finished = at("2026-11-29T12:30:00Z");
        assert_eq!(
            next_due(&HOURLY, chrono_tz::UTC, started, finished, None),
            Some(finished)
        );
    }

    #[test]
    fn jitter_is_stable_per_key_bounded_and_spreads_keys() {
        let jitter = Duration::from_secs(300);
        let a = jitter_offset("crawler/backup", jitter);
        assert_eq!(a, jitter_offset("crawler/backup", jitter));
        let offsets: std::collections::BTreeSet<_> = (0..50)
            .map(|i| jitter_offset(&format!("db{i}/backup"), jitter))
            .collect();
        assert!(offsets.len() > 40, "{offsets:?}");
        assert!(
            offsets
                .iter()
                .all(|o| *o >= TimeDelta::zero() && *o < TimeDelta::seconds(300))
        );
        assert_eq!(jitter_offset("x", Duration::ZERO), TimeDelta::zero());
    }

    #[test]
    fn cron_runs_in_the_configured_time_zone() {
        let due = first_due(
            &cron("0 3 * * *"),
            new_york(),
            None,
            at("2026-11-29T12:00:00Z"),
            None,
        );
        assert_eq!(due, Some(at("2026-11-30T08:00:00Z")));
    }

    #[test]
    fn a_fixed_time_job_in_the_skipped_spring_forward_hour_runs_once_at_the_jump() {
        let job = cron("30 2 * * *");
        let first = next_due(
            &job,
            new_york(),
            at("2026-03-08T05:00:00Z"),
            at("2026-03-08T05:00:00Z"),
            None,
        )
        .unwrap();
        assert_eq!(
            first,
            at("2026-03-08T07:00:00Z"),
            "03:00 EDT, the moment 02:00 jumps to"
        );
        let second = next_due(&job, new_york(), first, first, None).unwrap();
        assert_eq!(
            second,
            at("2026-03-09T06:30:00Z"),
            "back to 02:30 the next day, once"
        );
    }

    #[test]
    fn a_fixed_time_job_in_the_repeated_fall_back_hour_runs_once() {
        let job = cron("30 1 * * *");
        let first = next_due(
            &job,
            new_york(),
            at("2026-11-01T04:00:00Z"),
            at("2026-11-01T04:00:00Z"),
            None,
        )
        .unwrap();
        assert_eq!(first, at("2026-11-01T05:30:00Z"), "01:30 EDT");
        let second = next_due(&job, new_york(), first, first, None).unwrap();
        assert_eq!(second, at("2026-11-02T06:30:00Z"), "not again at 01:30 EST");
    }

    #[test]
    fn wildcard_hour_jobs_follow_real_elapsed_time_through_fall_back() {
        let job = cron("*/30 * * * *");
        let mut times = Vec::new();
        let mut now = at("2026-11-01T04:45:00Z");
        for _ in 0..4 {
            now = next_due(&job, new_york(), now, now, None).unwrap();
            times.push(now);
        }
        assert_eq!(
            times,
            [
                at("2026-11-01T05:00:00Z"),
                at("2026-11-01T05:30:00Z"),
                at("2026-11-01T06:00:00Z"),
                at("2026-11-01T06:30:00Z")
            ]
        );
    }
}
