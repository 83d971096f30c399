//! Which backups to keep: restic `forget` semantics as a pure function.
//!
//! Owns [`select`]. Rules are ORed: a backup is kept when any rule keeps it.
//! Bucketed rules (hourly ... yearly) walk the backups newest first and keep
//! the newest backup of each of the last N calendar buckets that have one,
//! in the configured time zone; weeks are ISO weeks. `keep_within` is
//! measured from the newest backup, not from now, so a stopped backup job
//! never ages everything out. `max_age` takes away the rule reasons of
//! anything older than that before the newest backup, or before now when
//! the clock is behind it: a clock that jumped ahead, or a backup job that
//! stopped, never ages the history out. With no rule at all
//! nothing is removed (but `max_age`), as restic refuses to forget without
//! a policy.
//!
//! Invariants whatever the rules say: the newest verified backup, pinned
//! backups and protected ones (a pre-migration backup until the next
//! successful migration, the backups from before a discontinuity, one being
//! restored) are never removed. Candidates that do not count (pre-restore
//! safety copies) never take a `keep_last` or bucket slot from a real one.
//!
//! "Newest" is the catalog's sequence, not the time in a name: a backup
//! written under a clock that ran ahead is dated in the future relative to
//! the backups after it, so its time is clamped to theirs (and to `now`)
//! and it is flagged.

use std::fmt;

use chrono::{DateTime, Datelike, TimeZone, Timelike, Utc};
use serde::Serialize;

use crate::config::Retention;

/// One backup as retention sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Catalog id.
    pub id: i64,
    /// The catalog's sequence number of the backup (higher is newer).
    pub seq: i64,
    /// When it was taken, by the clock of the time.
    pub created_at: DateTime<Utc>,
    /// Whether it passed verification.
    pub verified: bool,
    /// Pinned by the operator.
    pub pinned: bool,
    /// Kept regardless of rules, and why (e.g. a pre-migration backup).
    pub protected: Option<String>,
    /// Whether it counts toward the rules; a pre-restore safety copy does
    /// not (it is kept only while protected).
    pub counted: bool,
}

/// Why a backup is kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KeepReason {
    /// Among the newest `keep_last`.
    Last,
    /// Newest of its hour.
    Hourly,
    /// Newest of its day.
    Daily,
    /// Newest of its ISO week.
    Weekly,
    /// Newest of its month.
    Monthly,
    /// Newest of its year.
    Yearly,
    /// Younger than `keep_within` before the newest backup.
    Within,
    /// The newest verified backup.
    NewestVerified,
    /// Pinned.
    Pinned,
    /// Protected, with the reason.
    Protected(String),
    /// No retention rule is configured.
    NoPolicy,
}

impl KeepReason {
    /// Whether the reason comes from a retention rule (which `max_age`
    /// overrides) rather than a protection (which nothing overrides).
    fn is_rule(&self) -> bool {
        !matches!(
            self,
            KeepReason::NewestVerified | KeepReason::Pinned | KeepReason::Protected(_)
        )
    }
}

impl fmt::Display for KeepReason {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            KeepReason::Last => f.write_str("last"),
            KeepReason::Hourly => f.write_str("hourly"),
            KeepReason::Daily => f.write_str("daily"),
            KeepReason::Weekly => f.write_str("weekly"),
            KeepReason::Monthly => f.write_str("monthly"),
            KeepReason::Yearly => f.write_str("yearly"),
            KeepReason::Within => f.write_str("within"),
            KeepReason::NewestVerified => f.write_str("newest verified"),
            KeepReason::Pinned => f.write_str("pinned"),
            KeepReason::Protected(why) => f.write_str(why),
            KeepReason::NoPolicy => f.write_str("no retention rule"),
        }
    }
}

/// The verdict on one backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// Catalog id.
    pub id: i64,
    /// Why it is kept; empty means it is removed.
    pub reasons: Vec<KeepReason>,
    /// Its name's time is later than a newer backup's (or than now): it was
    /// written under a clock that ran ahead, and is treated as if taken at
    /// the clamped time.
    pub dated_in_future: bool,
}

impl Decision {
    /// Whether the backup is kept.
    pub fn keep(&self) -> bool {
        !self.reasons.is_empty()
    }
}

fn has_rules(policy: &Retention) -> bool {
    Retention {
        max_age: None,
        ..*policy
    } != Retention::default()
}

/// Decides for every candidate, newest (highest sequence) first.
pub fn select<Tz: TimeZone>(
    candidates: &[Candidate],
    policy: &Retention,
    timezone: &Tz,
    now: DateTime<Utc>,
) -> Vec<Decision> {
    let mut sorted: Vec<&Candidate> = candidates.iter().collect();
    sorted.sort_by(|a, b| b.seq.cmp(&a.seq).then(b.id.cmp(&a.id)));
    let mut ceiling = now;
    let effective: Vec<DateTime<Utc>> = sorted
        .iter()
        .map(|c| {
            ceiling = c.created_at.min(ceiling);
            ceiling
        })
        .collect();
    let newest = sorted
        .iter()
        .zip(&effective)
        .find(|(c, _)| c.counted)
        .map(|(_, at)| *at);
    let newest_verified = sorted
        .iter()
        .find(|c| c.verified && c.counted)
        .map(|c| c.id);
    let reference = newest.map_or(now, |newest| newest.min(now));
    let too_old = policy
        .max_age
        .and_then(|age| chrono::TimeDelta::from_std(age).ok())
        .map(|age| reference - age);

    type Bucket = fn(&DateTime<chrono::FixedOffset>) -> i64;
    let buckets: [(u32, KeepReason, Bucket); 5] = [
        (policy.keep_hourly, KeepReason::Hourly, |t| {
            t.date_naive().num_days_from_ce() as i64 * 24 + t.hour() as i64
        }),
        (policy.keep_daily, KeepReason::Daily, |t| {
            t.date_naive().num_days_from_ce() as i64
        }),
        (policy.keep_weekly, KeepReason::Weekly, |t| {
            let week = t.iso_week();
            week.year() as i64 * 100 + week.week() as i64
        }),
        (policy.keep_monthly, KeepReason::Monthly, |t| {
            t.year() as i64 * 100 + t.month() as i64
        }),
        (policy.keep_yearly, KeepReason::Yearly, |t| t.year() as i64),
    ];
    let mut remaining: Vec<u32> = buckets.iter().map(|(n, _, _)| *n).collect();
    let mut last_bucket: Vec<Option<i64>> = vec![None; buckets.len()];
    let mut last_left = policy.keep_last;

    sorted
        .into_iter()
        .zip(effective)
        .map(|(candidate, at)| {
            let mut reasons = Vec::new();
            if candidate.counted {
                if last_left > 0 {
                    last_left -= 1;
                    reasons.push(KeepReason::Last);
                }
                let local = at.with_timezone(timezone).fixed_offset();
                for (i, (_, reason, bucket_of)) in buckets.iter().enumerate() {
                    let bucket = bucket_of(&local);
                    if remaining[i] > 0 && last_bucket[i] != Some(bucket) {
                        remaining[i] -= 1;
                        last_bucket[i] = Some(bucket);
                        reasons.push(reason.clone());
                    }
                }
                if let (Some(within), Some(newest)) = (policy.keep_within, newest)
                    && chrono::TimeDelta::from_std(within).is_ok_and(|w| at >= newest - w)
                {
                    reasons.push(KeepReason::Within);
                }
                if !has_rules(policy) {
                    reasons.push(KeepReason::NoPolicy);
                }
                if too_old.is_some_and(|limit| at < limit) {
                    reasons.retain(|r| !r.is_rule());
                }
            }
            if Some(candidate.id) == newest_verified {
                reasons.push(KeepReason::NewestVerified);
            }
            if candidate.pinned {
                reasons.push(KeepReason::Pinned);
            }
            if let Some(why) = &candidate.protected {
                reasons.push(KeepReason::Protected(why.clone()));
            }
            Decision {
                id: candidate.id,
                reasons,
                dated_in_future: candidate.created_at > at,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeDelta;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    fn start() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap()
    }

    /// Well after every generated backup.
    fn now() -> DateTime<Utc> {
        start() + TimeDelta::days(365)
    }

    fn hourly(count: i64) -> Vec<Candidate> {
        (0..count)
            .map(|i| Candidate {
                id: i,
                seq: i,
                created_at: start() + TimeDelta::hours(i),
                verified: true,
                pinned: false,
                protected: None,
                counted: true,
            })
            .collect()
    }

    fn kept(decisions: &[Decision]) -> BTreeSet<i64> {
        decisions
            .iter()
            .filter(|d| d.keep())
            .map(|d| d.id)
            .collect()
    }

    #[test]
    fn keep_last_keeps_the_newest_n() {
        let policy = Retention {
            keep_last: 3,
            ..Default::default()
        };
        assert_eq!(
            kept(&select(&hourly(10), &policy, &Utc, now())),
            BTreeSet::from([7, 8, 9])
        );
    }

    #[test]
    fn keep_daily_keeps_the_newest_of_each_day() {
        let policy = Retention {
            keep_daily: 2,
            ..Default::default()
        };
        let decisions = select(&hourly(72), &policy, &Utc, now());
        let days: Vec<_> = decisions
            .iter()
            .filter(|d| d.keep())
            .map(|d| d.id)
            .collect();
        assert_eq!(days.len(), 2);
        let newest = 71;
        assert_eq!(days[0], newest);
        let previous_day_end = (start() + TimeDelta::hours(newest))
            .date_naive()
            .pred_opt()
            .unwrap();
        let expected = (0..72)
            .rev()
            .find(|i| (start() + TimeDelta::hours(*i)).date_naive() == previous_day_end)
            .unwrap();
        assert_eq!(days[1], expected);
    }

    #[test]
    fn keep_within_is_measured_from_the_newest_backup_not_now() {
        let policy = Retention {
            keep_within: Some(std::time::Duration::from_secs(3 * 3600)),
            ..Default::default()
        };
        assert_eq!(
            kept(&select(&hourly(10), &policy, &Utc, now())),
            BTreeSet::from([6, 7, 8, 9])
        );
    }

    #[test]
    fn rules_are_ored_and_every_reason_is_listed() {
        let policy = Retention {
            keep_last: 1,
            keep_hourly: 1,
            keep_daily: 1,
            ..Default::default()
        };
        let decisions = select(&hourly(5), &policy, &Utc, now());
        assert_eq!(
            decisions[0].reasons,
            [
                KeepReason::Last,
                KeepReason::Hourly,
                KeepReason::Daily,
                KeepReason::NewestVerified
            ]
        );
        assert!(!decisions[1].keep());
    }

    #[test]
    fn retention_keeps_newest_verified_when_all_newer_are_unverified() {
        let mut candidates = hourly(5);
        for c in &mut candidates[2..] {
            c.verified = false;
        }
        let policy = Retention {
            keep_last: 1,
            ..Default::default()
        };
        assert_eq!(
            kept(&select(&candidates, &policy, &Utc, now())),
            BTreeSet::from([1, 4])
        );
    }

    #[test]
    fn pinned_and_protected_backups_are_kept() {
        let mut candidates = hourly(5);
        candidates[0].pinned = true;
        candidates[1].protected = Some("before migration 2".into());
        let policy = Retention {
            keep_last: 1,
            ..Default::default()
        };
        let decisions = select(&candidates, &policy, &Utc, now());
        assert_eq!(kept(&decisions), BTreeSet::from([0, 1, 4]));
        assert_eq!(
            decisions[3].reasons,
            [KeepReason::Protected("before migration 2".into())]
        );
    }

    #[test]
    fn without_any_rule_nothing_is_removed() {
        assert_eq!(
            kept(&select(&hourly(5), &Retention::default(), &Utc, now())).len(),
            5
        );
    }

    #[test]
    fn buckets_follow_the_time_zone() {
        let tz: chrono_tz::Tz = "America/New_York".parse().unwrap();
        let t = DateTime::parse_from_rfc3339("2026-03-02T03:30:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let candidates = vec![
            Candidate {
                id: 1,
                seq: 1,
                created_at: t,
                verified: false,
                pinned: false,
                protected: None,
                counted: true,
            },
            Candidate {
                id: 2,
                seq: 2,
                created_at: t + TimeDelta::hours(2),
                verified: false,
                pinned: false,
                protected: None,
                counted: true,
            },
        ];
        let policy = Retention {
            keep_daily: 2,
            ..Default::default()
        };
        assert_eq!(
            kept(&select(&candidates, &policy, &Utc, now())).len(),
            1,
            "one UTC day"
        );
        assert_eq!(
            kept(&select(&candidates, &policy, &tz, now())).len(),
            2,
            "two New York days"
        );
    }

    #[test]
    fn max_age_removes_older_backups_but_never_the_newest_verified() {
        let mut candidates = hourly(3);
        candidates[2].verified = false;
        let policy = Retention {
            keep_last: 10,
            max_age: Some(std::time::Duration::from_secs(7 * 86400)),
            ..Default::default()
        };
        let mut old = hourly(1);
        old[0].id = 7;
        old[0].seq = -1;
        old[0].created_at = start() - TimeDelta::days(40);
        candidates.extend(old);
        let decisions = select(&candidates, &policy, &Utc, start() + TimeDelta::days(1));
        assert_eq!(kept(&decisions), BTreeSet::from([0, 1, 2]), "{decisions:?}");
        let young = select(&candidates, &policy, &Utc, start() + TimeDelta::hours(3));
        assert_eq!(kept(&young).len(), 3);
    }

    #[test]
    fn a_clock_jumped_forward_does_not_age_out_the_history() {
        let candidates: Vec<Candidate> = (0..10)
            .map(|i| {
                let mut c = hourly(1).remove(0);
                c.id = i;
                c.seq = i;
                c.created_at = start() + TimeDelta::hours(15 * i);
                c
            })
            .collect();
        let policy = Retention {
            keep_last: 3,
            keep_hourly: 24,
            keep_daily: 7,
            max_age: Some(std::time::Duration::from_secs(7 * 86400)),
            ..Default::default()
        };
        let thirty_days_ahead = start() + TimeDelta::days(36);
        let decisions = select(&candidates, &policy, &Utc, thirty_days_ahead);
        assert_eq!(kept(&decisions).len(), 10, "{decisions:?}");
    }

    #[test]
    fn max_age_alone_keeps_everything_younger() {
        let policy = Retention {
            max_age: Some(std::time::Duration::from_secs(3 * 3600)),
            ..Default::default()
        };
        let now = start() + TimeDelta::hours(10);
        assert_eq!(
            kept(&select(&hourly(10), &policy, &Utc, now)),
            BTreeSet::from([6, 7, 8, 9])
        );
    }

    #[test]
    fn safety_copies_do_not_push_real_backups_out_of_keep_last() {
        let mut candidates = hourly(6);
        for c in &mut candidates[3..] {
            c.counted = false;
        }
        let policy = Retention {
            keep_last: 3,
            ..Default::default()
        };
        assert_eq!(
            kept(&select(&candidates, &policy, &Utc, now())),
            BTreeSet::from([0, 1, 2])
        );
    }

    #[test]
    fn a_backup_dated_in_the_future_does_not_displace_the_ones_after_it() {
        let mut candidates = hourly(4);
        candidates[2].created_at = start() + TimeDelta::days(2);
        let policy = Retention {
            keep_hourly: 2,
            ..Default::default()
        };
        let decisions = select(&candidates, &policy, &Utc, start() + TimeDelta::hours(4));
        assert_eq!(decisions[0].id, 3, "the catalog sequence orders them");
        assert!(decisions[1].dated_in_future && !decisions[0].dated_in_future);
        assert_eq!(
            kept(&decisions),
            BTreeSet::from([1, 3]),
            "it counts as taken when the backup after it was, so it shares that hour"
        );
    }

    fn arb_candidates() -> impl Strategy<Value = Vec<Candidate>> {
        prop::collection::vec(
            (
                0i64..90 * 24 * 3600,
                any::<bool>(),
                prop::bool::weighted(0.1),
            ),
            0..60,
        )
        .prop_map(|mut items| {
            items.sort_by_key(|(offset, _, _)| *offset);
            items
                .into_iter()
                .enumerate()
                .map(|(i, (offset, verified, pinned))| Candidate {
                    id: i as i64,
                    seq: i as i64,
                    created_at: start() + TimeDelta::seconds(offset),
                    verified,
                    pinned,
                    protected: None,
                    counted: true,
                })
                .collect()
        })
    }

    fn arb_policy() -> impl Strategy<Value = Retention> {
        (
            0u32..5,
            0u32..30,
            0u32..10,
            0u32..6,
            0u32..4,
            0u32..3,
            prop::option::of(0u64..30 * 86400),
            prop::option::of(0u64..400 * 86400),
        )
            .prop_map(
                |(last, hourly, daily, weekly, monthly, yearly, within, max_age)| Retention {
                    keep_last: last,
                    keep_hourly: hourly,
                    keep_daily: daily,
                    keep_weekly: weekly,
                    keep_monthly: monthly,
                    keep_yearly: yearly,
                    keep_within: within.map(std::time::Duration::from_secs),
                    max_age: max_age.map(std::time::Duration::from_secs),
                },
            )
    }

    proptest! {
        #[test]
        fn every_candidate_gets_exactly_one_decision(candidates in arb_candidates(), policy in arb_policy()) {
            let decisions = select(&candidates, &policy, &Utc, now());
            let ids: BTreeSet<i64> = decisions.iter().map(|d| d.id).collect();
            prop_assert_eq!(decisions.len(), candidates.len());
            prop_assert_eq!(ids, candidates.iter().map(|c| c.id).collect::<BTreeSet<_>>());
        }

        #[test]
        fn newest_verified_and_pinned_are_never_removed(candidates in arb_candidates(), policy in arb_policy()) {
            let kept = kept(&select(&candidates, &policy, &Utc, now()));
            let newest_verified = candidates.iter().filter(|c| c.verified).max_by_key(|c| c.seq);
            if let Some(newest) = newest_verified {
                prop_assert!(kept.contains(&newest.id));
            }
            for pinned in candidates.iter().filter(|c| c.pinned) {
                prop_assert!(kept.contains(&pinned.id));
            }
        }

        #[test]
        fn protected_backups_are_never_removed(candidates in arb_candidates(), policy in arb_policy(), which in any::<prop::sample::Index>()) {
            prop_assume!(!candidates.is_empty());
            let mut candidates = candidates;
            let i = which.index(candidates.len());
            candidates[i].protected = Some("before discontinuity".into());
            let id = candidates[i].id;
            prop_assert!(kept(&select(&candidates, &policy, &Utc, now())).contains(&id));
        }

        #[test]
        fn the_newest_backup_is_always_kept_without_max_age(candidates in arb_candidates(), policy in arb_policy()) {
            let policy = Retention { max_age: None, ..policy };
            if let Some(first) = select(&candidates, &policy, &Utc, now()).first() {
                prop_assert!(first.keep());
            }
        }

        #[test]
        fn raising_a_count_never_removes_a_kept_backup(candidates in arb_candidates(), policy in arb_policy(), extra in 1u32..5) {
            prop_assume!(has_rules(&policy));
            let before = kept(&select(&candidates, &policy, &Utc, now()));
            let more = Retention { keep_daily: policy.keep_daily + extra, keep_last: policy.keep_last + extra, ..policy };
            let after = kept(&select(&candidates, &more, &Utc, now()));
            prop_assert!(before.is_subset(&after), "{:?} not in {:?}", before, after);
        }
    }
}
