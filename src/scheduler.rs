//! When scheduled jobs run: pure timer arithmetic over an injected "now".
//!
//! Owns the rules, not the timers themselves (the reconciler holds those):
//! - `every:` intervals are anchored to the last recorded run, so a restart
//!   never pushes a backup back;
//! - after downtime, one missed run is caught up (it runs now), never all of
//!   them;
//! - cron patterns run in `settings.timezone` through croner: a fixed-time
//!   job in a skipped DST hour runs once at the jump, in a repeated hour
//!   once, and wildcard-hour jobs follow real elapsed time.
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

/// When a job should first run when scheduling starts (daemon start or a
/// reload that changed the schedule), given its last recorded start.
pub fn first_due(
    schedule: &Schedule,
    timezone: chrono_tz::Tz,
    last_run: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
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
            let missed = last_run
                .and_then(|last| next_cron(schedule, timezone, last))
                .is_some_and(|at| at <= now);
            if missed {
                Some(now)
            } else {
                next_cron(schedule, timezone, now)
            }
        }
    }
}

/// When a job runs next after a run that started at `started`, seen at
/// `now` (a run longer than its interval is followed by one right away,
/// not by a burst).
pub fn next_due(
    schedule: &Schedule,
    timezone: chrono_tz::Tz,
    started: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    match schedule {
        Schedule::Every(every) => {
            Some((started.min(now) + chrono::TimeDelta::from_std(*every).ok()?).max(now))
        }
        Schedule::Cron(_) => next_cron(schedule, timezone, started.max(now)),
    }
}

/// The first cron occurrence strictly after `after`.
fn next_cron(
    schedule: &Schedule,
    timezone: chrono_tz::Tz,
    after: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let Schedule::Cron(pattern) = schedule else {
        return None;
    };
    pattern
        .cron()
        .find_next_occurrence(&after.with_timezone(&timezone), false)
        .ok()
        .map(|at| at.with_timezone(&Utc))
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
        Schedule::Cron(Box::new(CronPattern::parse_scalar(pattern).unwrap()))
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
        );
        assert_eq!(due, Some(at("2026-11-29T11:00:00Z")));
    }

    #[test]
    fn every_without_a_previous_run_runs_now() {
        assert_eq!(
            first_due(&HOURLY, chrono_tz::UTC, None, at("2026-11-29T10:20:00Z")),
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
                now
            ),
            Some(now)
        );
        let next = next_due(
            &HOURLY,
            chrono_tz::UTC,
            now,
            now + chrono::TimeDelta::seconds(5),
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
                now
            ),
            Some(now)
        );
        assert_eq!(
            first_due(
                &daily,
                chrono_tz::UTC,
                Some(at("2026-11-29T03:00:00Z")),
                now
            ),
            Some(at("2026-11-30T03:00:00Z"))
        );
    }

    #[test]
    fn a_run_longer_than_its_interval_is_followed_at_once_not_by_a_burst() {
        let started = at("2026-11-29T10:00:00Z");
        let finished = at("2026-11-29T12:30:00Z");
        assert_eq!(
            next_due(&HOURLY, chrono_tz::UTC, started, finished),
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
        )
        .unwrap();
        assert_eq!(
            first,
            at("2026-03-08T07:00:00Z"),
            "03:00 EDT, the moment 02:00 jumps to"
        );
        let second = next_due(&job, new_york(), first, first).unwrap();
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
        )
        .unwrap();
        assert_eq!(first, at("2026-11-01T05:30:00Z"), "01:30 EDT");
        let second = next_due(&job, new_york(), first, first).unwrap();
        assert_eq!(second, at("2026-11-02T06:30:00Z"), "not again at 01:30 EST");
    }

    #[test]
    fn wildcard_hour_jobs_follow_real_elapsed_time_through_fall_back() {
        let job = cron("*/30 * * * *");
        let mut times = Vec::new();
        let mut now = at("2026-11-01T04:45:00Z");
        for _ in 0..4 {
            now = next_due(&job, new_york(), now, now).unwrap();
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
